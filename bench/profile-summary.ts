/**
 * Summarises V8 CPU profiles (node --cpu-prof writes one per thread): the top frames by self time, and by
 * total (inclusive) time, with the share of the profile's samples.
 *
 *   node bench/profile-summary.ts [--top N] <file.cpuprofile>...
 */
import { readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
const top = Number(values.top ?? 25);

function frameName(f: CallFrame): string {
  const where = f.url === '' ? '' : ` ${relative(process.cwd(), f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}`;
  return `${f.functionName || '(anonymous)'}${where}`;
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = profile.endTime - profile.startTime;
  let idleUs = 0;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const name = frameName(node.callFrame);
    if (node.callFrame.functionName === '(idle)') idleUs += us;
    self.set(name, (self.get(name) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = frameName(byId.get(cur)!.callFrame);
      if (seen.has(n)) continue;
      seen.add(n);
      inclusive.set(n, (inclusive.get(n) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number): string => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(6)} ms`;
  console.log(`\n== ${basename(file)}: ${(totalUs / 1000).toFixed(0)} ms profiled, ${(busyUs / 1000).toFixed(0)} ms busy (${((100 * busyUs) / totalUs).toFixed(0)}%); shares are of busy time`);
  console.log(`-- top ${top} by self time`);
  for (const [name, us] of [...self].filter(([n]) => !n.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(us)} ${pct(us)}  ${name}`);
  console.log(`-- top ${top} by total time`);
  for (const [name, us] of [...inclusive].filter(([n]) => !n.startsWith('(idle)') && !n.startsWith('(root)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${ms(us)} ${pct(us)}  ${name}`);
  }
}
