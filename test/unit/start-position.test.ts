import { describe, expect, it } from 'vitest';
import { decideStart, type PartitionFacts } from '../../src/kafka/start-position.ts';

const facts = (f: Partial<PartitionFacts>): PartitionFacts => ({ partition: 0, committed: false, partitionsAtStart: 3, siblingsCommitted: false, ...f });

describe('where a newly assigned partition starts', () => {
  it('resumes from a committed offset whatever autoOffsetReset says', () => {
    expect(decideStart(facts({ committed: true }), 'latest')).toEqual({ start: 'committed' });
    expect(decideStart(facts({ committed: true, partition: 7 }), 'earliest')).toEqual({ start: 'committed' });
  });

  it("applies autoOffsetReset on the group's first start on the topic", () => {
    expect(decideStart(facts({}), 'latest')).toEqual({ start: 'latest' });
    expect(decideStart(facts({}), 'earliest')).toEqual({ start: 'earliest', reason: 'configured' });
  });

  it('reads a partition added after this member started from its beginning, even with latest', () => {
    expect(decideStart(facts({ partition: 3, partitionsAtStart: 3 }), 'latest')).toEqual({ start: 'earliest', reason: 'new-partition' });
  });

  it('reads a topic that did not exist when this member started from its beginning, even with latest', () => {
    expect(decideStart(facts({ partitionsAtStart: 0 }), 'latest')).toEqual({ start: 'earliest', reason: 'new-topic' });
  });

  it('reads a partition the group never committed while it committed others of the topic from its beginning', () => {
    expect(decideStart(facts({ siblingsCommitted: true }), 'latest')).toEqual({ start: 'earliest', reason: 'never-committed' });
  });

  it('reads from the beginning when a fact could not be read: repeat, never skip', () => {
    for (const unknown of [{ committed: undefined }, { partitionsAtStart: undefined }, { siblingsCommitted: undefined }]) {
      expect(decideStart(facts(unknown), 'latest')).toEqual({ start: 'earliest', reason: 'unknown' });
    }
  });
});
