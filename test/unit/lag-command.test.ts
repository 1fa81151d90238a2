/** What `conveyor lag` prints for a measurement: levels, the table, human-readable lag in time. */
import { describe, expect, it } from 'vitest';
import { formatLagTime, lagTable, lagViews } from '../../src/cli/lag.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { GroupLag } from '../../src/ops/lag-reader.ts';

describe('conveyor lag output', () => {
  it('writes lag in time with its two largest units', () => {
    expect([0, 0.04, 2.46, 45, 59.6, 602, 3_600, 11_040, 190_800].map(formatLagTime)).toEqual(['0s', '0s', '2.5s', '45s', '1m 0s', '10m 2s', '1h 0m', '3h 4m', '2d 5h']);
  });

  it('rates each partition and the group, and adds a total line per group', () => {
    const measured: GroupLag[] = [
      {
        group: 'shop.orders',
        measuredAt: 0,
        missingTopics: [],
        partitions: [
          { topic: 'orders', partition: 0, committed: 4n, start: 0n, end: 10n, position: 4n, lag: 6, lagSeconds: 602, oldestTimestamp: 1 },
          { topic: 'orders', partition: 1, committed: null, start: 0n, end: 12_000n, position: 0n, lag: 12_000, lagSeconds: 5, oldestTimestamp: 1 },
        ],
      },
    ];
    const views = lagViews(measured, loadConfig({ env: {} }));
    expect(views[0]).toMatchObject({ group: 'shop.orders', level: 'warning', lag: 12_006, lagSeconds: 602 });
    expect(views[0]!.partitions.map((p) => [p.committed, p.level])).toEqual([
      ['4', 'warning'],
      [null, 'warning'],
    ]);
    expect(lagTable(views)).toEqual([
      'GROUP        TOPIC    PARTITION  COMMITTED    END    LAG  LAG (TIME)  LEVEL',
      'shop.orders  orders           0          4     10      6      10m 2s  warning',
      'shop.orders  orders           1          -  12000  12000          5s  warning',
      'shop.orders  (total)                               12006      10m 2s  warning',
    ]);
  });
});
