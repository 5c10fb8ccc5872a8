/**
 * Faults injected by the emulator (over HTTP, real client): 429 with Retry-After, 5xx bursts, timeouts, a region
 * down and back, an import token overwritten mid-run, the 1 h rule — and several runners on one group. Each case
 * is one rotation of the same group, an hour apart; each must end with exactly one new version per member holding
 * the same material.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Group } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { expectChain } from '../../support/assertions.js';
import { type ClobberProxy, startClobberProxy } from '../../support/clobberProxy.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';
import { leakedSecrets } from '../../support/rotationHarness.js';

const HOUR = 3_600_000;
const op = { kind: 'operator' as const, by: 'fault-test' };
let s: LocalStack;
let group: Group;
let generation = 1;
let proxy: ClobberProxy;

beforeAll(async () => {
  s = await startLocalStack({ regions: ['us-south', 'us-east', 'eu-de'], instancesPerRegion: 1 });
  group = await createStackGroup(s, 'faulty', 2);
  proxy = await startClobberProxy(s.stack.kp.regions['us-east']!.url);
});
afterAll(async () => {
  await proxy?.close();
  await s?.close();
});

async function rotate(svc = s.service()): Promise<RotationRun> {
  s.clock.advance(HOUR + 1_000);
  const { runId } = await svc.rotateNow(group.id, { trigger: op });
  generation += 1;
  return driveRun(s, svc, runId);
}

async function expectLockstep(): Promise<void> {
  for (const m of group.members) expect(await s.kp.listVersions(m)).toHaveLength(generation);
  await expectChain(s.stores, group, generation);
  expect((await s.service().verify(group.id)).ok).toBe(true);
}

describe('faults from the emulator', () => {
  it('429 with Retry-After: the member waits at least that long, then the run completes', async () => {
    s.stack.kp.setFaults({ region: 'us-east' }, { throttleRate: 1, retryAfterSeconds: 30, remaining: 4 });
    const run = await rotate();
    s.stack.kp.clearFaults();
    expect(run.status).toBe('completed');
    const throttled = run.transitions.some((t) => t.note?.includes('UPSTREAM_RATE_LIMITED'));
    expect(throttled).toBe(true);
    await expectLockstep();
  });

  it('a 5xx burst is retried and the run completes', async () => {
    s.stack.kp.setFaults({ region: 'eu-de' }, { errorRate: 1, errorStatus: 503, remaining: 8 });
    const run = await rotate();
    s.stack.kp.clearFaults();
    expect(run.status).toBe('completed');
    await expectLockstep();
  });

  it('timeouts (ambiguous rotates) never rotate a member twice', async () => {
    // The client gives up after 5 s; the emulator answers the next 2 requests of us-east after 8 s (and still
    // applies them): a rotate among them is ambiguous and must be settled by re-reading the versions.
    const impatient = s.service({ kp: s.kpClient({ timeoutMs: 5_000 }) });
    s.stack.kp.setFaults({ region: 'us-east' }, { latencyMs: 8_000, remaining: 2 });
    const run = await rotate(impatient);
    s.stack.kp.clearFaults();
    expect(run.status).toBe('completed');
    await expectLockstep();
  }, 240_000);

  it('a region down blocks promotion (degraded, primary untouched); back up, the run completes', async () => {
    s.clock.advance(HOUR + 1_000);
    const svc = s.service();
    const { runId } = await svc.rotateNow(group.id, { trigger: op });
    generation += 1;
    s.stack.kp.setFaults({ region: 'eu-de' }, { outage: 'reset' });
    // The first failure is retried after a backoff; from the second the run (and the group) is degraded.
    let status = '';
    for (let i = 0; i < 3 && status !== 'degraded'; i++) {
      const res = await svc.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: `w${i}` });
      status = res.status;
      s.clock.advance(Math.max(1_000, (res.nextAttemptAtMs ?? s.clock.nowMs()) - s.clock.nowMs()));
    }
    expect(status).toBe('degraded');
    const degraded = await svc.getRun(runId);
    expect(degraded.statusReason).toMatch(/eu-de|plan/);
    expect((await s.stores.groups.get(group.id)).value.status).toBe('degraded');
    expect(await s.kp.listVersions(group.members[0]!)).toHaveLength(generation - 1); // primary not promoted
    s.stack.kp.clearFaults();
    const run = await driveRun(s, svc, runId);
    expect(run.status).toBe('completed');
    expect((await s.stores.groups.get(group.id)).value.status).toBe('healthy');
    await expectLockstep();
  });

  it('an import token overwritten mid-run (nonce mismatch) is redone under the lease', async () => {
    const endpoints = Object.fromEntries(s.regions.map((r) => [r, s.stack.kp.regions[r]!.url]));
    endpoints['us-east'] = proxy.url;
    const svc = s.service({ kp: s.kpClient({ endpoints }) });
    proxy.arm(group.members.find((m) => m.region === 'us-east')!.instanceId);
    const run = await rotate(svc);
    expect(proxy.clobbered).toBe(1);
    expect(run.status).toBe('completed');
    await expectLockstep();
  });

  it('the 1 h rule: a second rotation is refused, a forced one waits until Key Protect allows it', async () => {
    const svc = s.service();
    await expect(svc.rotateNow(group.id, { trigger: op })).rejects.toMatchObject({ code: 'ROTATION_TOO_SOON' });
    const { runId } = await svc.rotateNow(group.id, { trigger: op, force: true });
    generation += 1;
    const res = await svc.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: 'w' });
    expect(res.status).toBe('pending');
    expect(res.nextAttemptAtMs).toBeGreaterThan(s.clock.nowMs());
    const run = await driveRun(s, svc, runId);
    expect(run.status).toBe('completed');
    await expectLockstep();
  });

  it('several runners on one group: exactly one rotation per generation', async () => {
    s.clock.advance(HOUR + 1_000);
    const services = [s.service(), s.service(), s.service()];
    const claims = await Promise.allSettled(services.map((x) => x.rotateNow(group.id, { trigger: op })));
    const won = claims.flatMap((c) => (c.status === 'fulfilled' ? [c.value.runId] : []));
    expect(won).toHaveLength(1);
    generation += 1;
    const results = await Promise.all(
      services.map((x, i) => x.advanceRun(won[0]!, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: `racer-${i}` })),
    );
    expect(results.filter((r) => r.reason === 'another worker holds the group lease').length).toBeGreaterThanOrEqual(1);
    const run = await driveRun(s, s.service(), won[0]!);
    expect(run.status).toBe('completed');
    await expectLockstep();
  });

  it('no key material in any log line or stored document of these runs', async () => {
    const docs: string[] = [];
    for (const db of Object.values(s.stores.databases)) {
      docs.push(JSON.stringify((await s.stores.client.postAllDocs({ db, includeDocs: true })).result));
    }
    expect(leakedSecrets([...s.log.lines, ...docs].join('\n'), s.random.secrets)).toEqual([]);
  });
});
