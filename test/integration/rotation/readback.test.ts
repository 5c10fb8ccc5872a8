/**
 * The rotate's read-back is a canary wrap (its response names the answering version), and the verify and prove
 * steps unwrap those canaries elsewhere instead of wrapping again: fewer dependent Key Protect round trips and fewer
 * requests per rotation, with the same evidence (every member's version checked, every duplicate crossed). Import
 * tokens are fetched ahead of the step that uses them, under their instance's lease, and the leases are freed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyProtectPort } from '../../../src/app/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';

const HOUR = 3_600_000;
let s: LocalStack;

beforeAll(async () => {
  s = await startLocalStack();
});
afterAll(async () => {
  await s?.close();
});

/** The stack's Key Protect client, counting calls by method and logging when each starts and settles. */
function counting(kp: KeyProtectPort): { kp: KeyProtectPort; calls: Record<string, number>; events: string[] } {
  const calls: Record<string, number> = {};
  const events: string[] = [];
  const wrapped = new Proxy(kp, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const op = String(prop);
        calls[op] = (calls[op] ?? 0) + 1;
        events.push(`start ${op}`);
        const out = v.apply(target, args);
        if (out instanceof Promise) void out.finally(() => events.push(`end ${op}`)).catch(() => undefined);
        return out;
      };
    },
  });
  return { kp: wrapped, calls, events };
}

describe('read-back canaries and prefetched import tokens', () => {
  it.each([1, 2, 3])('1 + %i: one wrap per member, verify and prove only unwrap', async (dups) => {
    // Arrange
    const group = await createStackGroup(s, `readback-${dups}`, dups);
    const { kp, calls } = counting(s.kp);
    const svc = s.service({ kp });
    s.clock.advance(HOUR + 1_000);
    const logFrom = s.log.lines.length;
    // Act
    const { runId } = await svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'it' } });
    const run = await driveRun(s, svc, runId);
    // Assert: completed; each member's read-back names its staged version
    expect(run.status).toBe('completed');
    for (const m of run.members) {
      expect(m.stagedVia).toBe('rotate');
      expect(m.readBack?.wrappedAt).toBe(m.crn);
      expect(m.readBack?.reportedVersions[m.crn!]).toBe(m.versionId);
    }
    // one wrap for the escrow and one per member (its read-back): no canary wraps again
    expect(calls.wrap).toBe(1 + run.members.length);
    // versions listed once per member (the plan's reading): a first rotate goes on that snapshot, and the read-back
    // is the canary wrap
    expect(calls.listVersions).toBe(run.members.length);
    // verify crosses the first duplicate's read-back to the others; prove crosses primary ⇄ every duplicate
    const [first, ...rest] = run.members.filter((m) => m.role !== 'primary');
    const primary = run.members.find((m) => m.role === 'primary')!;
    const [verify, forward, ...reverse] = run.canaries;
    expect(run.canaries).toHaveLength(2 + dups);
    expect(verify).toMatchObject({ wrappedAt: first!.crn, ciphertext: first!.readBack!.ciphertext, ok: true });
    expect(verify!.unwrappedAt).toEqual(rest.map((m) => m.crn));
    expect(forward).toMatchObject({ wrappedAt: primary.crn, ciphertext: primary.readBack!.ciphertext, ok: true });
    expect(forward!.unwrappedAt).toHaveLength(dups);
    for (const r of reverse) expect(r.unwrappedAt).toEqual([primary.crn]);
    // unwraps: verify d − 1, prove 2d; no escrow unwrap (the pass that escrowed the material stages with it)
    expect(calls.unwrap).toBe(dups - 1 + 2 * dups);
    // every member's import token was fetched ahead (duplicates' while escrowing, the primary's while staging),
    // once: one POST /import_token per member, and no token lease is left held after the run
    expect(calls.prepareImportToken).toBe(run.members.length);
    const posts = s.log.lines.slice(logFrom).filter((l) => l.includes('"operation":"postImportToken"'));
    expect(posts).toHaveLength(run.members.length);
    for (const m of run.members) {
      const l = await s.stores.leases.acquire(`token:${m.region}:${m.instanceId}`, 'probe', 1_000, s.clock.nowMs());
      expect(l).toBeDefined();
      await s.stores.leases.release(l!);
    }
    // and the group still proves: a verification unwraps the recorded canary at every member
    const check = await svc.verify(group.id);
    expect(check.ok).toBe(true);
  });

  it("a run that plans in its pass reads, escrows and fetches the duplicates' tokens in one round trip", async () => {
    // Arrange: a forced rotation starts at plan (no reading by the claim), so the pass reads the members itself
    const group = await createStackGroup(s, 'readback-plan', 2);
    const { kp, events } = counting(s.kp);
    const svc = s.service({ kp, afterPersist: (r) => void events.push(`saved ${r.step}`) });
    s.clock.advance(HOUR + 1_000);
    // Act
    const { runId } = await svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'it' }, force: true });
    const run = await driveRun(s, svc, runId);
    // Assert: the escrow wrap started with the plan's readings, and both were saved in one save (the run goes from
    // plan straight to stage)
    expect(run.status).toBe('completed');
    const firstSave = events.findIndex((e) => e.startsWith('saved '));
    expect(events[firstSave]).toBe('saved stage');
    const firstRead = events.indexOf('end getKey');
    expect(firstRead).toBeGreaterThan(0);
    expect(events.indexOf('start wrap')).toBeLessThan(firstRead);
    // every member's token fetched ahead, once (when they start depends on the store's lease round trip)
    expect(events.filter((e) => e === 'start prepareImportToken')).toHaveLength(run.members.length);
    expect(events.filter((e) => e === 'start prepareImportToken')).toHaveLength(run.members.length);
  });
});
