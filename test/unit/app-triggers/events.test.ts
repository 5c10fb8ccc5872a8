import { describe, expect, it } from 'vitest';
import {
  boundClaim,
  clampEventTime,
  type EventsDeps,
  handleActivityEvents,
  handleDelivery,
  parseActivityPayload,
  parseEventTime,
} from '../../../src/app/events.js';
import { runTick } from '../../../src/app/tick.js';
import type { RunId } from '../../../src/core/index.js';
import { hasCode } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { ACCOUNT } from '../../support/fakeKeyProtect.js';
import { createFakeGroup, type FakeWorld, fakeWorld } from '../../support/fakeWorld.js';

const HOUR = 3_600_000;
const OWN = 'iam-ServiceId-lockstep';
const OTHER_CRN =
  'crn:v1:bluemix:public:kms:us-south:a/acc:11111111-1111-4111-8111-111111111111:key:22222222-2222-4222-8222-222222222222';

function cadf(over: Record<string, unknown> = {}) {
  return {
    id: 'ev-1',
    action: 'kms.secrets.rotate',
    eventTime: '2026-11-01T09:00:00.00+0000',
    outcome: 'success',
    correlationId: 'c-1',
    initiator: { id: 'iam-ServiceId-someone', name: 'someone' },
    target: { id: OTHER_CRN, name: 'k', typeURI: 'kms/secrets' },
    observer: { name: 'ActivityTracker' },
    ...over,
  };
}

function alert(data: Record<string, unknown>, over: Record<string, unknown> = {}) {
  return {
    specversion: '1.0',
    id: '997355d5-4542-47fd-9868-84cf5df71e1b_c9fe7539-e901-4745-b3ad-29ca0ae987a0',
    source: `crn:v1:bluemix:public:logs:us-south:a/${ACCOUNT}:0b1c2d3e-0000-4000-8000-000000000001::`,
    type: 'com.ibm.cloud.logs.StandardMoreThanAlertEvent:AlertTriggered',
    time: '2026-11-01T09:00:05.000000Z',
    data: { alert_definition: { name: 'kms member actions', id: 'a-1' }, status: 'triggered', ...data },
    ...over,
  };
}

function expectValidation(fn: () => unknown, text: RegExp) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(hasCode(err, 'VALIDATION_FAILED')).toBe(true);
  expect((err as Error).message).toMatch(text);
}

describe('parseActivityPayload', () => {
  it('accepts one CADF event and keeps its claims bounded', () => {
    const p = parseActivityPayload(cadf({ initiator: { id: `=HYPERLINK("x")${'a'.repeat(300)}` } }));
    expect(p.source).toBe('cadf');
    expect(p.events[0]).toMatchObject({ id: 'ev-1', eventTimeMs: Date.UTC(2026, 10, 1, 9), correlationId: 'c-1' });
    expect(p.events[0]!.initiatorId).toHaveLength(128);
    expect(p.events[0]!.initiatorId).toMatch(/^[A-Za-z0-9._:@/+=-]+$/);
  });

  it('accepts a batch as an array or {events}', () => {
    expect(parseActivityPayload([cadf(), cadf({ id: 'ev-2' })]).events.map((e) => e.id)).toEqual(['ev-1', 'ev-2']);
    expect(parseActivityPayload({ events: [cadf()] }).source).toBe('batch');
  });

  it('reads a Cloud Logs alert: a truncated example is not bad input, its identifiers are hints', () => {
    const text = JSON.stringify(cadf({ target: { id: OTHER_CRN } }));
    const p = parseActivityPayload(alert({ log_example: `${text.slice(0, 997)}...`, log_example_truncated: true }));
    expect(p.events).toEqual([]);
    expect(p.alert).toMatchObject({ status: 'triggered', truncated: true, accountId: ACCOUNT });
    expect(p.alert!.crns).toEqual([OTHER_CRN]);
    expect(p.alert!.guids).toContain('22222222-2222-4222-8222-222222222222');
    expect(p.alert!.id).toMatch(/^alert-[0-9a-f]{32}$/);
  });

  it('reads full CADF events from an untruncated example', () => {
    const p = parseActivityPayload(alert({ log_example: cadf({ id: 'ev-9' }) }));
    expect(p.events.map((e) => e.id)).toEqual(['ev-9']);
  });

  it.each([
    { $case: 'a string', body: 'hello', msg: /Expected an Activity Tracker/ },
    { $case: 'an unrelated object', body: { hello: 'world' }, msg: /Expected an Activity Tracker/ },
    { $case: 'an empty batch', body: [], msg: /empty/ },
    { $case: 'a batch with junk', body: [cadf(), { x: 1 }], msg: /events\[1\] is not/ },
    { $case: 'a bad event id', body: cadf({ id: 'bad id!' }), msg: /id must be/ },
    { $case: 'a bad event time', body: cadf({ eventTime: 'yesterday' }), msg: /eventTime/ },
    {
      $case: 'a CloudEvent that is not a Cloud Logs alert',
      body: { specversion: '1.0', id: 'x', type: 't', data: { alert_definition: {} } },
      msg: /data.status/,
    },
    {
      $case: 'too many events',
      body: Array.from({ length: 501 }, (_, i) => cadf({ id: `e${i}` })),
      msg: /At most 500/,
    },
  ])('rejects $case with a clear message', ({ body, msg }) => {
    expectValidation(() => parseActivityPayload(body), msg);
  });

  it('parses Activity Tracker and ISO times; clamps claimed times to the receipt window', () => {
    expect(parseEventTime('2026-08-12T10:00:00.00+0000')).toBe(Date.UTC(2026, 7, 12, 10));
    expect(parseEventTime('2026-08-12T10:00:00Z')).toBe(Date.UTC(2026, 7, 12, 10));
    expect(parseEventTime(5)).toBeUndefined();
    expect(clampEventTime(Date.UTC(9999, 11, 31), 1_000_000_000_000)).toBe(1_000_000_000_000);
    expect(clampEventTime(0, 1_000_000_000_000)).toBe(1_000_000_000_000 - 24 * HOUR);
    expect(boundClaim('a b\nc')).toBe('a_b_c');
  });
});

function deps(w: FakeWorld, over: Partial<EventsDeps> = {}): EventsDeps {
  return { service: w.service, stores: w.stores, clock: w.clock, logger: w.log.logger, ownIamIds: [OWN], ...over };
}

async function rotated(w: FakeWorld, groupId: string): Promise<RotationRun> {
  w.clock.advance(HOUR + 1000);
  const { runId } = await w.service.rotateNow(groupId, { trigger: { kind: 'operator', by: 't' } });
  await w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + 60_000, holder: 't' });
  return w.service.getRun(runId);
}

describe('handleDelivery', () => {
  it('acknowledges and ignores events on keys lockstep does not manage, and irrelevant actions', async () => {
    const w = fakeWorld();
    await createFakeGroup(w, 'g1', 1);
    const { events } = parseActivityPayload([cadf(), cadf({ id: 'ev-2', action: 'kms.secrets.wrap' })]);
    const s = await handleActivityEvents(deps(w), events, { source: 'batch' });
    expect(s).toMatchObject({ received: 2, ignored: 2, own: 0, foreign: 0 });
    expect(s.outcomes.map((o) => o.reason)).toEqual(['unmanaged-key', 'action-not-relevant']);
  });

  it('a foreign rotation is found by reading Key Protect: diverged, heal after the 1 h rule, notified', async () => {
    // Arrange: someone rotates a duplicate out of band; the event claims a time in the year 9999
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g2', 2);
    const dup = g.members[1]!;
    w.kp.foreignRotate(dup.keyId);
    const ev = cadf({ id: 'ev-foreign', target: { id: dup.crn }, eventTime: '9999-12-31T00:00:00.00+0000' });
    // Act
    const s = await handleActivityEvents(deps(w), parseActivityPayload(ev).events, { source: 'cadf' });
    // Assert
    expect(s).toMatchObject({ foreign: 1, own: 0 });
    expect(s.verification.verified).toEqual([{ groupId: 'g2', result: 'problems' }]);
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after.status).toBe('diverged');
    expect(after.statusReason).toMatch(/^Verification/);
    expect(after.lastVerification).toMatchObject({ result: 'problems' });
    expect(after.verificationRequestedAtMs).toBeUndefined();
    const heal = await w.service.getRun(after.activeRunId!);
    // the 1 h rule is read from Key Protect (the foreign rotation just now), never from the event's claimed time
    expect(heal.nextAttemptAtMs).toBe(w.clock.nowMs() + HOUR);
    expect(heal.trigger.by).toMatch(/^verification:/);
    expect(JSON.stringify(heal)).not.toContain('someone');
    expect(w.notes.some((n) => n.type === 'com.ibm.lockstep.group.diverged')).toBe(true);
    // Act again: the same event delivered twice is a duplicate and changes nothing
    const again = await handleActivityEvents(deps(w), parseActivityPayload(ev).events, { source: 'cadf' });
    expect(again).toMatchObject({ duplicates: 1, foreign: 0 });
    expect((await w.stores.runs.listByGroup(g.id, 10)).filter((r) => r.kind === 'rotation')).toHaveLength(1);
  });

  it('a forged rotate event changes nothing when Key Protect shows no drift', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g2b', 1);
    const ev = cadf({ id: 'ev-forged', target: { id: g.members[0]!.crn }, eventTime: '9999-12-31T00:00:00Z' });
    const s = await handleActivityEvents(deps(w), parseActivityPayload(ev).events, { source: 'cadf' });
    expect(s.foreign).toBe(1);
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after).toMatchObject({ status: 'healthy', lastVerification: { result: 'ok' } });
    expect(after.activeRunId).toBeUndefined();
  });

  it('a forged enable cannot clear a member Key Protect still reports suspended', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g3', 1);
    w.kp.keys.get(g.members[1]!.keyId)!.state = 2;
    const disable = cadf({ id: 'ev-d', action: 'kms.secrets.disable', target: { id: g.members[1]!.crn } });
    await handleActivityEvents(deps(w), parseActivityPayload(disable).events, { source: 'cadf' });
    expect((await w.stores.groups.get(g.id)).value.status).toBe('degraded');
    const enable = cadf({ id: 'ev-e', action: 'kms.secrets.enable', target: { id: g.members[1]!.crn } });
    await handleActivityEvents(deps(w), parseActivityPayload(enable).events, { source: 'cadf' });
    expect((await w.stores.groups.get(g.id)).value.status).toBe('degraded');
    // Key Protect says active again: the next verification clears it
    w.kp.keys.get(g.members[1]!.keyId)!.state = 1;
    const again = cadf({ id: 'ev-e2', action: 'kms.secrets.enable', target: { id: g.members[1]!.crn } });
    await handleActivityEvents(deps(w), parseActivityPayload(again).events, { source: 'cadf' });
    expect((await w.stores.groups.get(g.id)).value.status).toBe('healthy');
  });

  it('own only with lockstep’s IAM id AND a correlation id the run persisted on that member', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g4', 1);
    const run = await rotated(w, g.id);
    const dup = run.members.find((m) => m.role === 'duplicate')!;
    const call = dup.calls!.find((c) => c.action === 'kms.secrets.rotate')!;
    expect(call.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    const target = { id: dup.crn };
    const own = cadf({ id: 'ev-own', initiator: { id: OWN }, correlationId: call.correlationId, target });
    const spoofA = cadf({ id: 'ev-s1', correlationId: call.correlationId, target });
    const spoofB = cadf({ id: 'ev-s2', initiator: { id: OWN }, correlationId: run.id, target });
    const s = await handleActivityEvents(deps(w), parseActivityPayload([own, spoofA, spoofB]).events, {
      source: 'batch',
    });
    expect(s.outcomes.map((o) => o.outcome)).toEqual(['own', 'foreign', 'foreign']);
    const after = await w.service.getRun(run.id);
    expect(after.members.find((m) => m.crn === dup.crn)!.evidence.map((e) => e.eventId)).toEqual(['ev-own']);
    expect((await w.stores.groups.get(g.id)).value.status).toBe('healthy');
  });

  it('never attaches own evidence the lineage text boundary would refuse (the record step could not complete)', async () => {
    // Arrange: an own event (lockstep's IAM id and a persisted correlation id) whose id starts with a formula sign
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g4b', 1);
    const run = await rotated(w, g.id);
    const dup = run.members.find((m) => m.role === 'duplicate')!;
    const call = dup.calls!.find((c) => c.action === 'kms.secrets.rotate')!;
    const ev = cadf({ id: '-1.1', initiator: { id: OWN }, correlationId: call.correlationId, target: { id: dup.crn } });
    // Act
    const s = await handleActivityEvents(deps(w), parseActivityPayload(ev).events, { source: 'cadf' });
    // Assert
    expect(s.outcomes[0]).toMatchObject({ outcome: 'ignored', reason: 'evidence-not-recordable' });
    const after = await w.service.getRun(run.id);
    expect(after.members.find((m) => m.crn === dup.crn)!.evidence).toEqual([]);
  });

  it('refuses a trigger the signed history would refuse, before anything changes', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g4c', 1);
    await expect(
      w.service.rotateNow(g.id, { trigger: { kind: 'operator', by: '=HYPERLINK("x")' } }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((await w.stores.groups.get(g.id)).value.activeRunId).toBeUndefined();
  });

  it('wakes a waiting run when its own event arrives', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g5', 1);
    const create = await w.service.getRun(`run-${g.id}-create`);
    const call = create.members[0]!.calls![0]!;
    const cur = await w.stores.runs.get(create.id as RunId);
    await w.stores.runs.save({ ...cur.value, status: 'degraded', nextAttemptAtMs: w.clock.nowMs() + HOUR }, cur.rev);
    const ev = cadf({
      id: 'ev-create',
      action: 'kms.secrets.create',
      initiator: { id: OWN },
      correlationId: call.correlationId,
      target: { id: create.members[0]!.crn },
    });
    const s = await handleActivityEvents(deps(w), parseActivityPayload(ev).events, { source: 'cadf' });
    expect(s.outcomes[0]).toMatchObject({ outcome: 'own', runId: create.id });
    expect((await w.service.getRun(create.id)).nextAttemptAtMs).toBe(w.clock.nowMs());
  });

  it('ignores failed actions', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g7', 1);
    const s = await handleActivityEvents(
      deps(w),
      parseActivityPayload(cadf({ outcome: 'failure', target: { id: g.members[1]!.crn } })).events,
      { source: 'cadf' },
    );
    expect(s.outcomes[0]).toMatchObject({ outcome: 'ignored', reason: 'action-failed' });
    expect((await w.stores.groups.get(g.id)).value.status).toBe('healthy');
  });
});

describe('alerts as wake-ups', () => {
  it('acknowledges a resolved alert without work', async () => {
    const w = fakeWorld();
    await createFakeGroup(w, 'a0', 1);
    const calls = w.kp.calls.length;
    const s = await handleDelivery(deps(w), parseActivityPayload(alert({ status: 'resolved' })));
    expect(s.alert).toMatchObject({ status: 'resolved' });
    expect(s.verification.requested).toBe(0);
    expect(w.kp.calls.length).toBe(calls);
  });

  it('verifies the group whose key id survives in a truncated example', async () => {
    const w = fakeWorld();
    const a = await createFakeGroup(w, 'a1', 1);
    await createFakeGroup(w, 'a2', 1);
    w.kp.foreignRotate(a.members[0]!.keyId);
    const example = `{"action":"kms.secrets.rotate","target":{"id":"${a.members[0]!.crn.slice(0, -10)}`;
    const s = await handleDelivery(
      deps(w),
      parseActivityPayload(alert({ log_example: `${example}...`, log_example_truncated: true })),
    );
    // the key id was cut off; the instance id survived, and both groups have a member in that instance
    expect(s.alert).toMatchObject({ scope: 'named', named: 2 });
    expect(s.verification.verified.sort((x, y) => x.groupId.localeCompare(y.groupId))).toEqual([
      { groupId: 'a1', result: 'problems' },
      { groupId: 'a2', result: 'ok' },
    ]);
    expect((await w.stores.groups.get(a.id)).value.status).toBe('diverged');
  });

  it('verifies every group of the alert’s account when nothing identifiable survives', async () => {
    const w = fakeWorld();
    await createFakeGroup(w, 'b1', 1);
    await createFakeGroup(w, 'b2', 1);
    const s = await handleDelivery(
      deps(w),
      parseActivityPayload(
        alert({ log_example: '{"typeURI":"http://schemas.dmtf.org/cl...', log_example_truncated: true }),
      ),
    );
    expect(s.alert).toMatchObject({ scope: 'account' });
    expect(s.verification.verified.map((v) => v.groupId).sort()).toEqual(['b1', 'b2']);
    const other = alert({ log_example: 'x' }, { source: 'crn:v1:bluemix:public:logs:us-south:a/otheracct:i::' });
    expect((await handleDelivery(deps(w), parseActivityPayload(other))).verification.requested).toBe(0);
  });

  it('answers within its budget and leaves the rest to the tick, which verifies it', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'c1', 1);
    w.kp.foreignRotate(g.members[1]!.keyId);
    // a verification that never finishes inside this delivery (Key Protect slow): the answer does not wait for it
    const stuck: EventsDeps['service'] = { ...w.service, verify: () => new Promise(() => undefined) };
    const s = await handleDelivery(
      deps(w, { service: stuck, inlineBudgetMs: 10 }),
      parseActivityPayload(alert({ log_example: g.members[1]!.keyId })),
    );
    expect(s.verification).toMatchObject({ requested: 1, verified: [], queued: ['c1'] });
    const marked = (await w.stores.groups.get(g.id)).value;
    expect(marked.verificationRequestedAtMs).toBe(w.clock.nowMs());
    expect(marked.status).toBe('healthy');
    // the next tick honours the request
    const tick = await runTick(
      { service: w.service, stores: w.stores, clock: w.clock, logger: w.log.logger },
      { deadlineAtMs: w.clock.nowMs() + 60_000, holder: 'tick-1' },
    );
    expect(tick.verified).toBe(1);
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after.status).toBe('diverged');
    expect(after.verificationRequestedAtMs).toBeUndefined();
    expect(after.lastVerification?.trigger).toMatch(/^tick:/);
  });
});
