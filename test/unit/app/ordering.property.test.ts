/**
 * Property (fast-check) over step outcomes and crash points, through the real runner on fake ports: the primary is
 * never rotated before every duplicate holds the material, and resuming from any state reaches the same end state
 * (same fingerprint, one new version per member, identical material, lineage chained).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectChain } from '../../support/assertions.js';
import { type FakeFault, type FakeOp, kpError } from '../../support/fakeKeyProtect.js';
import { createFakeGroup, fakeWorld } from '../../support/fakeWorld.js';
import { SimulatedCrash } from '../../support/rotationHarness.js';

const HOUR = 3_600_000;

const arbFault = fc.constantFrom<'none' | 'down' | 'ambiguous' | 'throttle' | 'nonce'>(
  'none',
  'none',
  'none',
  'down',
  'ambiguous',
  'throttle',
  'nonce',
);

function faultFor(kind: string, op: FakeOp): FakeFault | undefined {
  switch (kind) {
    case 'down':
      return { when: 'before', error: kpError('UPSTREAM_UNAVAILABLE', { ambiguous: false }) };
    case 'ambiguous':
      return op === 'rotate' || op === 'wrap' || op === 'unwrap'
        ? { when: 'after', error: kpError('UPSTREAM_UNAVAILABLE', { ambiguous: true }) }
        : undefined;
    case 'throttle':
      return { when: 'before', error: kpError('UPSTREAM_RATE_LIMITED', { retryAfterMs: 5_000 }) };
    case 'nonce':
      return op === 'rotate' ? { when: 'before', error: kpError('IMPORT_TOKEN_NONCE_MISMATCH') } : undefined;
    default:
      return undefined;
  }
}

describe('ordering property (runner over fake ports)', () => {
  it('primary last; any faults and crashes resume to the same end state', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(arbFault, { minLength: 0, maxLength: 40 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 30 }), { maxLength: 4 }),
        async (dups, faults, crashes) => {
          const w = fakeWorld();
          const group = await createFakeGroup(w, 'prop', dups);
          const primaryKey = group.members[0]!.keyId;
          const dupKeys = group.members.slice(1).map((m) => m.keyId);
          w.clock.advance(HOUR + 1);
          const { runId } = await w.service.rotateNow(group.id, { trigger: { kind: 'schedule', by: 'tick' } });
          let call = 0;
          const violations: string[] = [];
          w.kp.fault = (op, ref) => {
            const f = faultFor(faults[call++] ?? 'none', op);
            if (op === 'rotate' && ref.keyId === primaryKey && f?.when !== 'before') {
              // The primary is about to take new material: every duplicate must already hold that material.
              const heads = dupKeys.map((k) => w.kp.handles(k));
              if (heads.some((h) => h.length !== 2) || new Set(heads.map((h) => h[0])).size !== 1) {
                violations.push(
                  `primary rotated at call ${call} while duplicates hold ${JSON.stringify(heads.map((h) => h.length))}`,
                );
              }
            }
            return f;
          };
          let persists = 0;
          let fingerprint: string | undefined;
          const crashing = w.serviceWith((run) => {
            fingerprint ??= run.fingerprint;
            if (run.fingerprint) expect(run.fingerprint).toBe(fingerprint);
            if (crashes.includes(++persists)) throw new SimulatedCrash(run.step);
          });
          let status = '';
          for (let pass = 0; pass < 200 && !['completed', 'failed', 'diverged'].includes(status); pass++) {
            try {
              const res = await crashing.advanceRun(runId, {
                deadlineAtMs: w.clock.nowMs() + HOUR,
                holder: `w${pass}`,
              });
              status = res.status;
              w.clock.set(Math.max(w.clock.nowMs() + 1_000, res.nextAttemptAtMs ?? w.clock.nowMs() + 150_000));
            } catch (err) {
              if (!(err instanceof SimulatedCrash)) throw err;
              w.clock.advance(150_000);
            }
          }
          expect(violations).toEqual([]);
          expect(status).toBe('completed');
          const heads = group.members.map((m) => w.kp.handles(m.keyId));
          for (const h of heads) expect(h).toHaveLength(2); // one new version per member
          expect(new Set(heads.map((h) => h[0])).size).toBe(1);
          const run = await w.service.getRun(runId);
          expect(run.fingerprint).toBe(fingerprint);
          await expectChain(w.stores, group, 2);
        },
      ),
      { numRuns: 60 },
    );
  });
});
