/**
 * Shared end-state checks of a rotation: identical material everywhere, one new version per member, lineage
 * complete and chained, version map correct.
 */
import { expect } from 'vitest';
import type { Stores } from '../../src/app/ports.js';
import type { Group, LineageRecord } from '../../src/core/index.js';
import { GENESIS_PREV_HASH, hashRecord } from '../../src/lineage/index.js';

/** The lineage chain of a group is complete (1..n), hash-chained and each hash matches its record. */
export async function expectChain(stores: Stores, group: Group, generations: number): Promise<LineageRecord[]> {
  const chain = await stores.lineage.chain(group.id);
  expect(chain.map((r) => r.generation)).toEqual(Array.from({ length: generations }, (_, i) => i + 1));
  let prev = GENESIS_PREV_HASH;
  for (const r of chain) {
    expect(r.prevHash).toBe(prev);
    expect(hashRecord(r)).toBe(r.hash);
    expect(r.members.map((m) => m.crn).sort()).toEqual(group.members.map((m) => m.crn).sort());
    prev = r.hash;
  }
  return chain;
}
