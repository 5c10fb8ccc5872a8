/**
 * The failover client over HTTP against the Key Protect emulator: outages (refuse, reset, 503), latency, 429 storms,
 * answers that must not fail over, the circuit breaker and the deadline. Imported by the package name, as an
 * application would.
 */

import { GroupKeyring, KeyringError, type KeyringEvent } from 'lockstep/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { authenticatorFor, createTestGroup, type TestGroup } from '../../support/groupKeys.js';

const REGIONS = ['us-south', 'us-east', 'eu-de'];
let stack: EmulatorStack;
let group: TestGroup;

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: REGIONS, rules: { rotationMinIntervalMs: 0 } });
  group = await createTestGroup(stack, REGIONS);
});
afterAll(async () => stack?.close());
afterEach(() => stack.kp.clearFaults());

function ring(opts: Partial<ConstructorParameters<typeof GroupKeyring>[0]> = {}, events: KeyringEvent[] = []) {
  return new GroupKeyring({
    members: group.members,
    authenticator: authenticatorFor(stack, 'auditor'),
    attemptTimeoutMs: 2_000,
    onEvent: (e) => events.push(e),
    ...opts,
  });
}

async function wrapped(aad?: string[]) {
  const w = await ring().wrap(undefined, aad ? { aad } : {});
  return { ciphertext: w.ciphertext, sha: w.plaintext.toString('hex') };
}

describe('GroupKeyring against the emulator', () => {
  it('wraps at the primary (Key Protect generates the DEK) and unwraps there', async () => {
    // Act
    const w = await ring().wrap();
    const u = await ring().unwrap(w.ciphertext);
    // Assert
    expect(w.member).toMatchObject({ role: 'primary', region: 'us-south' });
    expect(w.plaintext).toHaveLength(32);
    expect(u.plaintext.equals(w.plaintext)).toBe(true);
    expect(u).toMatchObject({ member: { role: 'primary' }, keyVersionId: w.keyVersionId, attempts: 1 });
  });

  it('wraps the caller’s plaintext with AAD; the wrong AAD is REJECTED without asking a duplicate', async () => {
    const events: KeyringEvent[] = [];
    const dek = Buffer.alloc(32, 7);
    const w = await ring().wrap(dek, { aad: ['orders', 'v1'] });
    expect(w.plaintext.equals(dek)).toBe(true);
    const err = await ring({}, events)
      .unwrap(w.ciphertext, { aad: ['orders', 'v2'] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyringError);
    expect(err).toMatchObject({
      code: 'REJECTED',
      attempts: [{ status: 422, reasonCode: 'UNPROCESSABLE_CIPHERTEXT_ERR' }],
    });
    expect(events.filter((e) => e.type === 'attempt')).toHaveLength(1);
  });

  it.each([
    ['refuse', 'connection'],
    ['reset', 'connection'],
    ['503', 'unavailable'],
  ] as const)('fails over to a duplicate when the primary region is down (%s)', async (outage, kind) => {
    const { ciphertext, sha } = await wrapped();
    stack.kp.setFaults({ region: 'us-south' }, { outage });
    const events: KeyringEvent[] = [];
    // Act
    const u = await ring({}, events).unwrap(ciphertext);
    // Assert
    expect(u.plaintext.toString('hex')).toBe(sha);
    expect(u.member).toMatchObject({ role: 'duplicate', region: 'us-east' });
    expect(u.attempts).toBe(2);
    expect(events).toContainEqual(expect.objectContaining({ type: 'failover', reason: kind }));
  });

  it('fails over on a 429 storm at the primary', async () => {
    const { ciphertext, sha } = await wrapped();
    stack.kp.setFaults({ region: 'us-south' }, { throttleRate: 1, retryAfterSeconds: 5 });
    const u = await ring().unwrap(ciphertext);
    expect(u.plaintext.toString('hex')).toBe(sha);
    expect(u.member.region).toBe('us-east');
  });

  it('fails over on a slow primary after attemptTimeoutMs, and hedging answers sooner', async () => {
    const { ciphertext } = await wrapped();
    stack.kp.setFaults({ region: 'us-south' }, { latencyMs: 1_500 });
    const events: KeyringEvent[] = [];
    const slow = await ring({ attemptTimeoutMs: 300 }, events).unwrap(ciphertext);
    expect(slow.member.region).toBe('us-east');
    expect(events).toContainEqual(expect.objectContaining({ type: 'failover', reason: 'timeout' }));
    // hedged: the duplicate is asked after 100 ms while the primary is still pending (no timeout involved)
    const hedgeEvents: KeyringEvent[] = [];
    const hedged = await ring({ attemptTimeoutMs: 5_000, hedgeDelayMs: 100 }, hedgeEvents).unwrap(ciphertext);
    expect(hedged.member.region).toBe('us-east');
    expect(hedgeEvents).toContainEqual(expect.objectContaining({ type: 'failover', reason: 'hedge' }));
    expect(hedgeEvents).not.toContainEqual(expect.objectContaining({ type: 'failover', reason: 'timeout' }));
  });

  it('with hedging, a primary outrun by a duplicate counts against its breaker, so a hang stops costing the hedge delay', async () => {
    const { ciphertext } = await wrapped();
    stack.kp.setFaults({ region: 'us-south' }, { latencyMs: 5_000 });
    // a cooldown far longer than the test, so the open breaker cannot half-open (and probe) on a slow machine
    const r = ring({ attemptTimeoutMs: 10_000, hedgeDelayMs: 50, breakerThreshold: 2, breakerCooldownMs: 600_000 });
    for (let i = 0; i < 2; i++) expect((await r.unwrap(ciphertext)).member.region).toBe('us-east');
    expect(r.metrics()[0]).toMatchObject({ breaker: 'open', failures: { timeout: 2 } });
    const direct = await r.unwrap(ciphertext);
    // the open primary is skipped: one attempt, straight at the duplicate, no hedge delay spent
    expect(direct.attempts).toBe(1);
    expect(direct.member.region).toBe('us-east');
  });

  it('never fails over on 401: a member the caller cannot use is DENIED', async () => {
    const { ciphertext } = await wrapped();
    const bad = group.members.map((m) =>
      m.role === 'primary' ? { ...m, instanceId: '00000000-0000-4000-8000-000000000000' } : m,
    );
    const err = await ring({ members: bad })
      .unwrap(ciphertext)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DENIED', attempts: [{ status: 401 }] });
  });

  it('reports UNAVAILABLE naming every member when all are down, and DEADLINE_EXCEEDED when none answers in time', async () => {
    const { ciphertext } = await wrapped();
    for (const region of REGIONS) stack.kp.setFaults({ region }, { outage: '503' });
    const err = await ring()
      .unwrap(ciphertext)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
    expect((err as KeyringError).attempts.map((a) => a.member.region)).toEqual(REGIONS);
    for (const region of REGIONS) stack.kp.setFaults({ region }, { latencyMs: 2_000 });
    const late = await ring({ deadlineMs: 300 })
      .unwrap(ciphertext)
      .catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });

  it('opens the primary’s breaker after repeated outages, then probes it half-open and closes it', async () => {
    const { ciphertext } = await wrapped();
    let now = 1_000_000;
    const events: KeyringEvent[] = [];
    const r = ring({ breakerThreshold: 2, breakerCooldownMs: 10_000, nowMs: () => now }, events);
    stack.kp.setFaults({ region: 'us-south' }, { outage: 'reset' });
    await r.unwrap(ciphertext);
    await r.unwrap(ciphertext);
    expect(r.metrics()[0]).toMatchObject({ breaker: 'open', failures: { connection: 2 } });
    // open: the duplicate is asked first
    expect((await r.unwrap(ciphertext)).attempts).toBe(1);
    stack.kp.clearFaults();
    now += 10_000;
    const probed = await r.unwrap(ciphertext);
    expect(probed.member.role).toBe('primary');
    expect(r.metrics()[0]?.breaker).toBe('closed');
    expect(events.filter((e) => e.type === 'breaker').map((e) => (e as { to: string }).to)).toEqual([
      'open',
      'half-open',
      'closed',
    ]);
  });

  it('does not let wrap fail over unless wrapFailover is set', async () => {
    stack.kp.setFaults({ region: 'us-south' }, { outage: '503' });
    await expect(ring().wrap()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const events: KeyringEvent[] = [];
    const r = ring({ wrapFailover: true, breakerThreshold: 1 }, events);
    expect((await r.wrap()).member.region).toBe('us-east');
    // the primary's breaker is open now: the next wrap goes straight to the duplicate
    const next = await r.wrap();
    expect(next.member.region).toBe('us-east');
    expect(
      events.filter((e) => e.type === 'attempt').map((e) => (e as { member: { region: string } }).member.region),
    ).toEqual(['us-south', 'us-east', 'us-east']);
  });

  it('unwraps a ciphertext of an older generation and returns it rewrapped under the latest version', async () => {
    const { ciphertext, sha } = await wrapped();
    await group.rotate();
    stack.kp.setFaults({ region: 'us-south' }, { outage: 'refuse' });
    const u = await ring().unwrap(ciphertext);
    expect(u.plaintext.toString('hex')).toBe(sha);
    expect(u.rewrapped?.keyVersionId).toBeDefined();
    expect(u.rewrapped?.keyVersionId).not.toBe(u.keyVersionId);
  });

  it('rejects bad arguments before calling Key Protect', async () => {
    expect(() => new GroupKeyring({ members: [], authenticator: authenticatorFor(stack) })).toThrow(
      /at least one member/,
    );
    await expect(ring().unwrap('')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(ring().wrap(Buffer.alloc(0))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(ring().unwrap('x', { aad: [1 as unknown as string] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});
