/**
 * Plain-text tables for the CLI's output: one header row, columns padded to their widest cell, two spaces
 * apart; numeric columns right-aligned. Pure.
 */

export interface Column<Row> {
  readonly header: string;
  readonly value: (row: Row) => string;
  /** Right-align (numbers). */
  readonly right?: boolean;
  /** Cut longer cells to this many characters, ending in "…". */
  readonly maxWidth?: number;
}

/** A cell as one line: newlines shown as spaces, cut to `max` characters. */
export function cell(text: string, max = Number.POSITIVE_INFINITY): string {
  const line = text.replace(/\s*\n\s*/g, ' ');
  return line.length > max ? `${line.slice(0, Math.max(0, max - 1))}…` : line;
}

export function formatTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string[] {
  const cells = rows.map((row) => columns.map((c) => cell(c.value(row), c.maxWidth)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)];
}
