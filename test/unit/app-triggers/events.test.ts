import { describe, expect, it } from 'vitest';
import { handleActivityEvents, parseActivityPayload, parseEventTime } from '../../../src/app/events.js';
import type { RunId } from '../../../src/core/index.js';
import { hasCode } from '../../../src/core/index.js';
import { createFakeGroup, type FakeWorld, fakeWorld } from '../../support/fakeWorld.js';

const HOUR = 3_600_000;
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
  it('accepts one CADF event', () => {
    const p = parseActivityPayload(cadf());
    expect(p.source).toBe('cadf');
    expect(p.events).toEqual([
      {
        id: 'ev-1',
        action: 'kms.secrets.rotate',
        eventTimeMs: Date.UTC(2026, 10, 1, 9),
        outcome: 'success',
        targetCrn: OTHER_CRN,
        initiatorId: 'iam-ServiceId-someone',
        initiatorName: 'someone',
        correlationId: 'c-1',
      },
    ]);
  });

  it('accepts a batch as an array or {events}', () => {
    expect(parseActivityPayload([cadf(), cadf({ id: 'ev-2' })]).events.map((e) => e.id)).toEqual(['ev-1', 'ev-2']);
    expect(parseActivityPayload({ events: [cadf()] }).source).toBe('batch');
  });

  it('finds the events inside an Event Notifications CloudEvent carrying Cloud Logs alert data', () => {
    const en = {
      specversion: '1.0',
      id: 'en-1',
      source: 'crn:v1:bluemix:public:logs:us-south:a/acc:inst::',
      type: 'com.ibm.cloud.logs.alert.triggered',
      ibmensourceid: 'crn:v1:bluemix:public:logs:us-south:a/acc:inst::',
      time: '2026-11-01T09:00:05Z',
      data: {
        alert_definition: { name: 'kms rotate' },
        logs: [{ user_data: JSON.stringify(cadf({ id: 'ev-9' })) }, { text: 'unrelated line' }],
        sample: { nested: [cadf({ id: 'ev-10' })] },
      },
    };
    const p = parseActivityPayload(en);
    expect(p.source).toBe('event-notifications');
    expect(p.events.map((e) => e.id).sort()).toEqual(['ev-10', 'ev-9']);
  });

  it.each([
    { $case: 'a string', body: 'hello', msg: /Expected an Activity Tracker/ },
    { $case: 'an unrelated object', body: { hello: 'world' }, msg: /Expected an Activity Tracker/ },
    { $case: 'an empty batch', body: [], msg: /empty/ },
    { $case: 'a batch with junk', body: [cadf(), { x: 1 }], msg: /events\[1\] is not/ },
    { $case: 'a bad event id', body: cadf({ id: 'bad id!' }), msg: /id must be/ },
    { $case: 'a bad event time', body: cadf({ eventTime: 'yesterday' }), msg: /eventTime/ },
    {
      $case: 'an EN event without Activity Tracker events',
      body: { specversion: '1.0', id: 'x', type: 't', data: { alert_definition: {} } },
      msg: /carries no Activity Tracker events/,
    },
    {
      $case: 'too many events',
      body: Array.from({ length: 501 }, (_, i) => cadf({ id: `e${i}` })),
      msg: /At most 500/,
    },
  ])('rejects $case with a clear message', ({ body, msg }) => {
    expectValidation(() => parseActivityPayload(body), msg);
  });

  it('parses Activity Tracker and ISO times', () => {
    expect(parseEventTime('2026-08-12T10:00:00.00+0000')).toBe(Date.UTC(2026, 7, 12, 10));
    expect(parseEventTime('2026-08-12T10:00:00Z')).toBe(Date.UTC(2026, 7, 12, 10));
    expect(parseEventTime(5)).toBeUndefined();
  });
});

function deps(w: FakeWorld, ownIamIds?: string[]) {
  return {
    service: w.service,
    stores: w.stores,
    clock: w.clock,
    logger: w.log.logger,
    ...(ownIamIds ? { ownIamIds } : {}),
  };
}

describe('handleActivityEvents', () => {
  it('acknowledges and ignores events on keys lockstep does not manage, and irrelevant actions', async () => {
    const w = fakeWorld();
    await createFakeGroup(w, 'g1', 1);
    const { events } = parseActivityPayload([cadf(), cadf({ id: 'ev-2', action: 'kms.secrets.wrap' })]);
    const s = await handleActivityEvents(deps(w), events, { source: 'batch' });
    expect(s).toMatchObject({ received: 2, ignored: 2, own: 0, foreign: 0 });
    expect(s.outcomes.map((o) => o.reason)).toEqual(['unmanaged-key', 'action-not-relevant']);
  });

  it('marks a foreign rotation: group diverged, heal run scheduled after the 1 h rule, notification sent', async () => {
    // Arrange: a healthy group; someone rotates a duplicate out of band
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g2', 2);
    const dup = g.members[1]!;
    const ev = cadf({ id: 'ev-foreign', target: { id: dup.crn }, eventTime: new Date(w.clock.nowMs()).toISOString() });
    // Act
    const s = await handleActivityEvents(deps(w, ['iam-ServiceId-lockstep']), parseActivityPayload(ev).events, {
      source: 'cadf',
    });
    // Assert
    expect(s).toMatchObject({ foreign: 1, own: 0 });
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after.status).toBe('diverged');
    expect(after.activeRunId).toBeDefined();
    const heal = await w.service.getRun(after.activeRunId!);
    expect(heal.trigger).toMatchObject({ kind: 'event', by: 'ev-foreign' });
    expect(heal.nextAttemptAtMs).toBeGreaterThanOrEqual(w.clock.nowMs() + HOUR - 1000);
    expect(w.notes.some((n) => n.type === 'com.ibm.lockstep.group.diverged')).toBe(true);
    // Act again: the same event delivered twice is a duplicate and changes nothing
    const again = await handleActivityEvents(deps(w, ['iam-ServiceId-lockstep']), parseActivityPayload(ev).events, {
      source: 'cadf',
    });
    expect(again).toMatchObject({ duplicates: 1, foreign: 0 });
    expect((await w.stores.runs.listByGroup(g.id, 10)).filter((r) => r.kind === 'rotation')).toHaveLength(1);
  });

  it('marks a deleted or disabled member as degraded', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g3', 1);
    const ev = cadf({ id: 'ev-del', action: 'kms.secrets.disable', target: { id: g.members[1]!.crn } });
    const s = await handleActivityEvents(deps(w, ['iam-ServiceId-lockstep']), parseActivityPayload(ev).events, {
      source: 'cadf',
    });
    expect(s.foreign).toBe(1);
    expect((await w.stores.groups.get(g.id)).value.status).toBe('degraded');
  });

  it('attaches its own action as evidence on the run named by the correlation id, and wakes the run', async () => {
    // Arrange: a run in progress, waiting (nextAttemptAtMs in the future)
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g4', 1);
    w.clock.advance(HOUR + 1000);
    const { runId } = await w.service.rotateNow(g.id, { trigger: { kind: 'operator', by: 't' } });
    const cur = await w.stores.runs.get(runId as RunId);
    await w.stores.runs.save({ ...cur.value, nextAttemptAtMs: w.clock.nowMs() + HOUR }, cur.rev);
    const ev = cadf({ id: 'ev-own', correlationId: `${runId}:stage`, target: { id: g.members[1]!.crn } });
    // Act
    const s = await handleActivityEvents(deps(w, ['iam-ServiceId-lockstep']), parseActivityPayload(ev).events, {
      source: 'cadf',
    });
    // Assert
    expect(s.outcomes[0]).toMatchObject({ outcome: 'own', runId });
    const run = await w.service.getRun(runId);
    const member = run.members.find((m) => m.crn === g.members[1]!.crn)!;
    expect(member.evidence.map((e) => e.eventId)).toEqual(['ev-own']);
    expect(run.nextAttemptAtMs).toBe(w.clock.nowMs());
    expect((await w.stores.groups.get(g.id)).value.status).not.toBe('diverged');
  });

  it('treats events by lockstep’s own IAM id as own, and by others as foreign even while a run is in progress', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g5', 1);
    w.clock.advance(HOUR + 1000);
    await w.service.rotateNow(g.id, { trigger: { kind: 'operator', by: 't' } });
    const crn = g.members[0]!.crn;
    const own = cadf({ id: 'ev-a', initiator: { id: 'iam-ServiceId-lockstep' }, target: { id: crn } });
    const other = cadf({ id: 'ev-b', target: { id: crn } });
    const s = await handleActivityEvents(
      deps(w, ['iam-ServiceId-lockstep']),
      parseActivityPayload([own, other]).events,
      {
        source: 'batch',
      },
    );
    expect(s.outcomes.map((o) => o.outcome)).toEqual(['own', 'foreign']);
  });

  it('without configured IAM ids, counts an event on a member of a group with a run in progress as own', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'g6', 1);
    w.clock.advance(HOUR + 1000);
    await w.service.rotateNow(g.id, { trigger: { kind: 'operator', by: 't' } });
    const s = await handleActivityEvents(
      deps(w),
      parseActivityPayload(cadf({ target: { id: g.members[1]!.crn } })).events,
      {
        source: 'cadf',
      },
    );
    expect(s.own).toBe(1);
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
