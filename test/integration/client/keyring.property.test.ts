/**
 * Property (fast-check, over HTTP against the emulator): any ciphertext wrapped by any member of a group at any
 * generation unwraps through the keyring, to the same DEK, while at least one member is reachable — whatever the
 * other members' outages (refuse, reset, 503, 429 storm).
 */
import fc from 'fast-check';
import { GroupKeyring } from 'lockstep/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaultSpec } from '../../../src/local/kp-emulator/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { authenticatorFor, createTestGroup } from '../../support/groupKeys.js';

const REGIONS = ['us-south', 'us-east', 'eu-de'];
const OUTAGES: FaultSpec[] = [{ outage: 'refuse' }, { outage: 'reset' }, { outage: '503' }, { throttleRate: 1 }];
let stack: EmulatorStack;

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: REGIONS, rules: { rotationMinIntervalMs: 0 } });
});
afterAll(async () => stack?.close());

const step = fc.oneof(
  fc.record({ kind: fc.constant('wrap' as const), at: fc.integer({ min: 0, max: 2 }), own: fc.boolean() }),
  fc.record({ kind: fc.constant('rotate' as const) }),
);
/** Per member: reachable, or one of the outages; at least one member reachable. */
const downSet = fc
  .tuple(...REGIONS.map(() => fc.option(fc.integer({ min: 0, max: OUTAGES.length - 1 }), { nil: undefined })))
  .filter((t) => t.some((o) => o === undefined));

describe('GroupKeyring property', () => {
  it('every recorded ciphertext unwraps while one member is reachable', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), downSet, async (steps, down) => {
        runs += 1;
        stack.kp.clearFaults();
        const group = await createTestGroup(stack, REGIONS, `prop-${runs}`);
        const auth = authenticatorFor(stack, 'auditor');
        const recorded: { ciphertext: string; sha: string; aad: string[] }[] = [];
        for (const s of steps) {
          if (s.kind === 'rotate') {
            await group.rotate();
            continue;
          }
          const region = REGIONS[s.at] as string;
          const writer = new GroupKeyring({
            members: group.members,
            authenticator: auth,
            preferred: (m) => m.region === region,
          });
          const aad = [`gen-of-step-${recorded.length}`];
          const w = await writer.wrap(s.own ? Buffer.alloc(32, recorded.length + 1) : undefined, { aad });
          recorded.push({ ciphertext: w.ciphertext, sha: w.plaintext.toString('hex'), aad });
        }
        down.forEach((o, i) => {
          if (o !== undefined) stack.kp.setFaults({ region: REGIONS[i] as string }, OUTAGES[o] as FaultSpec);
        });
        const reader = new GroupKeyring({ members: group.members, authenticator: auth, attemptTimeoutMs: 2_000 });
        for (const r of recorded) {
          const u = await reader.unwrap(r.ciphertext, { aad: r.aad });
          expect(u.plaintext.toString('hex')).toBe(r.sha);
          expect(down[REGIONS.indexOf(u.member.region)]).toBeUndefined();
        }
        stack.kp.clearFaults();
      }),
      { numRuns: 25 },
    );
  });
});
