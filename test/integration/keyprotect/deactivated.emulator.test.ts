/**
 * The decision on deactivated members, end to end over HTTP: Key Protect (the emulator, key-states.md) still
 * rotates a key past its expirationDate, but lockstep does not rotate a group with such a member — `plan` says why
 * and `rotateNow` refuses with the reason — because the key can never wrap again, even after a rotation.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegionId } from '../../../src/core/index.js';
import { type LocalStack, startLocalStack } from '../../support/localStack.js';
import { expectKpError, keyBody, sdkFor } from '../emulator/helpers.js';

const SOUTH = 'us-south' as RegionId;
const EAST = 'us-east' as RegionId;
let s: LocalStack;

beforeAll(async () => {
  s = await startLocalStack({ regions: [SOUTH, EAST], instancesPerRegion: 1 });
});
afterAll(async () => {
  await s?.close();
});

describe('a deactivated (expired) member', () => {
  it('is not rotated by lockstep, although Key Protect would rotate it', async () => {
    // Arrange: two imported keys with the same material, one expiring in two hours; adopted as a group
    const material = randomBytes(32).toString('base64');
    const expires = new Date(s.clock.nowMs() + 2 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const create = async (region: RegionId, extra: Record<string, unknown>) => {
      const sdk = sdkFor(s.stack.iam, s.stack.kp.regions[region]!.url, 'operator');
      const r = await sdk.createKey({
        bluemixInstance: s.instance(region),
        body: keyBody({ name: `adopt-${region}`, payload: material, ...extra }),
      });
      return (r.result as { resources: { id: string; crn: string }[] }).resources[0]!;
    };
    const primary = await create(SOUTH, {});
    const duplicate = await create(EAST, { expirationDate: expires });
    const service = s.service();
    await service.adoptGroup({
      id: 'expiring',
      name: 'expiring duplicate',
      schedule: { intervalMs: 30 * 86_400_000 },
      primaryCrn: primary.crn,
      duplicateCrns: [duplicate.crn],
      trigger: { kind: 'operator', by: 'test' },
    });
    s.clock.advance(2 * 3_600_000 + 1_000);

    // Act
    const plan = await service.plan('expiring');
    const refused = await service.rotateNow('expiring', { trigger: { kind: 'operator', by: 'test' } }).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assert: lockstep's decision
    const dup = plan.members.find((m) => m.role === 'duplicate')!;
    expect(dup.state).toBe('deactivated');
    expect(dup.problems.join(' ')).toMatch(/deactivated .*does not rotate the group; replace the member/);
    expect(plan.canStartNow).toBe(false);
    expect(refused).toMatchObject({ code: 'MEMBER_NOT_ACTIVE', message: expect.stringContaining('deactivated') });
    // Key Protect's rule: it would rotate it, but the key can no longer wrap
    const sdk = sdkFor(s.stack.iam, s.stack.kp.regions[EAST]!.url, 'operator');
    await expectKpError(
      sdk.wrapKey({
        id: duplicate.id,
        bluemixInstance: s.instance(EAST),
        keyActionWrapBody: Buffer.from(JSON.stringify({ plaintext: randomBytes(32).toString('base64') })),
      }),
      400,
      'KEY_EXPIRED_ERR',
    );
    expect(s.stack.kp.events({ action: 'kms.secrets.expire', targetCrn: duplicate.crn })).toHaveLength(1);
  });
});
