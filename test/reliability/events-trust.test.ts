/**
 * Trust boundaries of the events path, played as the attacker first (issue 13 findings 1 and 3, issue 12 §1): the
 * real composition roots behind the local Code Engine runner, the Key Protect emulator reached over HTTP by the real
 * client (lockstep's identity and an outsider's), and the Cloud Logs alert + Event Notifications relay in front of
 * the events function. Each scenario counts its invariant checks and the violations among them.
 *
 * - a foreign identity rotates a member with `Correlation-Id: run-<group>-create` (a predictable run id): the group
 *   must become diverged and `verify` must report the drift, through the direct CADF route and the alert route;
 * - with the events credential: a forged enable cannot clear a member Key Protect reports suspended; a forged
 *   rotate dated 9999 schedules nothing; a forged initiator/correlation id never lands in a run or the lineage;
 * - fuzz: events on managed keys with arbitrary correlation ids (run ids included), initiators (lockstep's own IAM
 *   id included), names and times never count as own, never create or change a run, never touch the lineage;
 * - lockstep's own rotations, verified by alerts while they run, are never taken for drift;
 * - the real alert payload (truncated and not) gets 2xx and a verification; `resolved` gets 2xx and no work;
 * - Event Notifications' retry policy against the relay: retries, Retry-After, drop after the last retry; no alert
 *   lost when the function is unavailable for less than the retry budget.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMBER_ACTIONS } from '../../src/app/events.js';
import type { KeyProtectPort } from '../../src/app/ports.js';
import { type Group, KeyMaterial, parseKeyCrn } from '../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../src/keyprotect/index.js';
import { startFlakyFront } from '../../src/local/en-relay/flakyFront.js';
import { type EnRelay, memberActionsAlert, startEnRelay } from '../../src/local/en-relay/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { createGroupOn, type FunctionStack, startFunctionStack } from './_lib/accessStack.js';
import { createTally, fuzz, fuzzRuns, recordFuzzRow } from './_lib/fuzzCheck.js';
import { recordScenario, scale } from './_lib/report.js';

const TOKEN_HEADER = 'x-lockstep-token';
let s: FunctionStack;
let outsider: KeyProtectPort;

beforeAll(async () => {
  s = await startFunctionStack({ functionLogLevel: 'error' });
  outsider = createKeyProtectClient({
    endpoints: Object.fromEntries(s.regions.map((r) => [r, s.emu.kp.regions[r]!.url])),
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: s.emu.iam.apiKeyFor('outsider'),
      iamUrl: s.emu.iam.url,
    }),
    random: s.random,
    clock: s.clock,
    retry: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50, maxRetryAfterMs: 100 },
  });
}, 120_000);

afterAll(async () => {
  await s?.close();
});

/** Counts invariant checks and keeps the failed ones. */
function checker() {
  const t = { checks: 0, violations: [] as string[] };
  return {
    t,
    check(ok: unknown, what: string) {
      t.checks += 1;
      if (!ok) t.violations.push(what);
    },
  };
}

function report(scenario: string, notes: string, t: { checks: number; violations: string[] }) {
  const r = recordScenario({
    scenario,
    area: 'trust',
    runs: t.checks,
    violations: t.violations.length,
    notes,
    examples: t.violations.slice(0, 5),
  });
  expect(r.violations, t.violations.join('\n')).toBe(0);
}

const group = async (id: string) => (await s.stores.groups.get(id as Group['id'])).value;

/** The foreign identity rotates a member with new material and a chosen correlation id (over HTTP). */
async function foreignRotate(m: Group['members'][number], correlationId: string): Promise<void> {
  s.clock.advance(5_000); // past the (shortened) 1 h rule since lockstep's last rotation
  const material = KeyMaterial.fromBytes(randomBytes(32));
  try {
    await outsider.rotateWithMaterial(m, material, { correlationId });
  } finally {
    material.zero();
  }
}

async function postEvents(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(s.runner.url('events'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', [TOKEN_HEADER]: s.eventsToken },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/** Every run of the group and every lineage record, as text (what an auditor could read). */
async function historyText(groupId: string): Promise<string> {
  const runs = await s.stores.runs.listByGroup(groupId as Group['id'], 50);
  const chain = await s.stores.lineage.chain(groupId as Group['id']);
  return JSON.stringify({ runs, chain });
}

async function withRelay<T>(fn: (relay: EnRelay) => Promise<T>, o: { sleep?: (ms: number) => Promise<void> } = {}) {
  const relay = await startEnRelay({
    accountId: s.emu.kp.accountId,
    region: 'us-south',
    alert: memberActionsAlert(MEMBER_ACTIONS, 60_000),
    destination: { url: s.runner.url('events'), sensitiveHeaders: { [TOKEN_HEADER]: s.eventsToken } },
    ...(o.sleep ? { sleep: o.sleep } : {}),
  });
  try {
    return await fn(relay);
  } finally {
    await relay.close();
  }
}

describe('trust: events path (attacker first)', () => {
  it('a foreign rotation behind a predictable Correlation-Id is found, whatever route the event takes', async () => {
    const { t, check } = checker();
    for (const route of ['direct', 'alert'] as const) {
      const g = await createGroupOn(s, `spoof-${route}`);
      const createRun = `run-${g.id}-create`;
      const victim = route === 'direct' ? g.members[0]! : g.members[1]!;
      const before = (await s.stores.lineage.chain(g.id)).length;
      const run = async () => {
        await foreignRotate(victim, createRun);
        await s.emu.kp.flushEvents();
      };
      if (route === 'direct') {
        s.emu.kp.setEventWebhook(s.runner.url('events'), { [TOKEN_HEADER]: s.eventsToken });
        await run();
      } else {
        await withRelay(async (relay) => {
          s.emu.kp.setEventWebhook(relay.ingestUrl);
          await run();
          await relay.flush();
          const sent = relay.sent() as Array<{ data: { log_example: unknown; log_example_truncated?: boolean } }>;
          check(
            relay.stats().delivered === 1,
            `${route}: the alert was delivered once (${JSON.stringify(relay.stats())})`,
          );
          check(sent[0]?.data.log_example_truncated === true, `${route}: a Key Protect CADF event arrives truncated`);
          check(
            typeof sent[0]?.data.log_example === 'string' && (sent[0].data.log_example as string).length <= 1000,
            `${route}: the example is a string of at most 1,000 characters`,
          );
        });
      }
      s.emu.kp.setEventWebhook(undefined);
      const after = await group(g.id);
      check(after.status === 'diverged', `${route}: group is ${after.status}, expected diverged`);
      check(
        after.lastVerification?.result === 'problems',
        `${route}: lastVerification ${after.lastVerification?.result}`,
      );
      const create = (await s.stores.runs.get(createRun as RotationRun['id'])).value as unknown as RotationRun;
      check(
        create.members.every((m) => m.evidence.every((e) => e.correlationId !== createRun)),
        `${route}: the spoofed event was attached as evidence to the create run`,
      );
      check((await s.stores.lineage.chain(g.id)).length === before, `${route}: the lineage changed`);
      const v = await s.service().verify(g.id, { trigger: 'operator:test', probes: true });
      check(!v.ok && v.result === 'problems', `${route}: verify says ${v.result}`);
      check(
        v.problems.some((p) => p.includes(victim.crn) && /lineage records/.test(p)),
        `${route}: verify does not name the drifted member (${v.problems.join('; ')})`,
      );
      check(v.members.find((m) => m.crn === victim.crn)?.ok === false, `${route}: the member check passed`);
      check(after.activeRunId !== undefined, `${route}: no healing run was scheduled`);
    }
    report(
      'foreign rotation with a spoofed Correlation-Id',
      'an outsider identity rotates a member with Correlation-Id run-<group>-create over HTTP; direct CADF and Cloud Logs alert routes; group diverged, verify reports drift, no evidence bound',
      t,
    );
  }, 120_000);

  it('forged events (the events credential) change nothing Key Protect does not confirm', async () => {
    const { t, check } = checker();
    const g = await createGroupOn(s, 'forged');
    const dup = g.members[1]!;
    const cadf = (over: Record<string, unknown>) => ({
      id: `forged-${randomBytes(6).toString('hex')}`,
      action: 'kms.secrets.rotate',
      eventTime: '9999-12-31T23:59:59.00+0000',
      outcome: 'success',
      correlationId: `run-${g.id}-create`,
      initiator: { id: 'AUDITOR-SIGNED-OFF:=HYPERLINK("http://evil.example/x")', name: 'approved by alice (operator)' },
      target: { id: dup.crn },
      ...over,
    });
    // a forged rotate dated in the year 9999 (Key Protect shows no drift): 2xx, no run scheduled, group healthy
    const r1 = await postEvents(cadf({}));
    const g1 = await group(g.id);
    check(r1.status < 300, `forged rotate answered ${r1.status}`);
    check(g1.status === 'healthy' && !g1.activeRunId, `forged rotate: group ${g1.status}, run ${g1.activeRunId}`);
    check(g1.lastVerification?.result === 'ok', `forged rotate: verification ${g1.lastVerification?.result}`);
    const runs = await s.stores.runs.listByGroup(g.id, 20);
    check(
      runs.every((r) => (r.nextAttemptAtMs ?? 0) < s.clock.nowMs() + 2 * 3_600_000),
      'a run is scheduled beyond the receipt window',
    );
    // forged initiator text and correlation id never land in a run or the lineage
    const text = await historyText(g.id);
    check(!text.includes('AUDITOR-SIGNED-OFF') && !text.includes('HYPERLINK'), 'forged initiator text in the history');
    check(!text.includes('approved by alice'), 'forged initiator name in the history');
    // a member suspended in Key Protect: a forged enable cannot set the group healthy
    s.clock.advance(60_000);
    await kpAction(dup, 'disable');
    await postEvents(cadf({ action: 'kms.secrets.disable' }));
    check((await group(g.id)).status === 'degraded', `suspended member: group ${(await group(g.id)).status}`);
    await postEvents(cadf({ action: 'kms.secrets.enable' }));
    const g2 = await group(g.id);
    check(g2.status === 'degraded', `forged enable set the group ${g2.status}`);
    // Key Protect enables it: the next verification (here: the real enable event) clears it
    s.clock.advance(60_000);
    await kpAction(dup, 'enable');
    await postEvents(cadf({ action: 'kms.secrets.enable' }));
    check((await group(g.id)).status === 'healthy', `after a real enable: group ${(await group(g.id)).status}`);
    report(
      'forged events with the events credential',
      'forged rotate dated 9999, forged enable on a suspended member, formula/initiator text and a chosen correlation id; state changes only from Key Protect reads',
      t,
    );
  }, 120_000);

  it('the real alert payload (truncated or not) gets 2xx and a verification; resolved gets 2xx and no work', async () => {
    const { t, check } = checker();
    const g = await createGroupOn(s, 'alerts');
    const source = `crn:v1:bluemix:public:logs:us-south:a/${s.emu.kp.accountId}:${randomBytes(16).toString('hex')}::`;
    const alert = (data: Record<string, unknown>) => ({
      specversion: '1.0',
      id: `${crypto.randomUUID()}_${crypto.randomUUID()}`,
      source,
      ibmensourceid: source,
      type: 'com.ibm.cloud.logs.StandardMoreThanAlertEvent:AlertTriggered',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      notification_id: crypto.randomUUID(),
      ibmendefaultshort: 'WARNING - lockstep',
      ibmendefaultlong: `Triggered: ${new Date().toISOString()}`,
      ibmenseverity: 'info',
      data: { alert_definition: { name: 'lockstep', id: 'a' }, status: 'triggered', ...data },
    });
    const cases: Array<[string, Record<string, unknown>]> = [
      [
        'truncated, key id survives',
        { log_example: `{"target":{"id":"${g.members[1]!.crn}`, log_example_truncated: true },
      ],
      [
        'truncated, nothing identifiable',
        { log_example: '{"typeURI":"http://schemas.dmtf.org/cloud/au...', log_example_truncated: true },
      ],
      ['not truncated', { log_example: { action: 'kms.secrets.rotate', msg: `key ${g.members[0]!.keyId}` } }],
    ];
    for (const [name, data] of cases) {
      const before = (await group(g.id)).lastVerification?.atMs ?? 0;
      const started = Date.now();
      const r = await postEvents(alert(data));
      check(r.status === 200 || r.status === 202, `${name}: answered ${r.status}`);
      check(Date.now() - started < 10_000, `${name}: answered after ${Date.now() - started} ms`);
      const v = (await group(g.id)).lastVerification;
      check(v && v.atMs >= before && /^alert:/.test(v.trigger), `${name}: no verification (${JSON.stringify(v)})`);
    }
    const calls = s.emu.kp.events().length;
    const resolved = await postEvents(alert({ status: 'resolved' }));
    check(resolved.status === 200, `resolved answered ${resolved.status}`);
    check((resolved.json.verification as { requested: number }).requested === 0, 'resolved asked for verification');
    check(s.emu.kp.events().length === calls, 'resolved caused Key Protect calls');
    report(
      'Cloud Logs alert payload as IBM delivers it',
      'triggered (truncated with and without identifiers, untruncated) → 2xx within 10 s and a verification; resolved → 2xx, no work',
      t,
    );
  }, 120_000);

  it('lockstep’s own rotations, verified while they run, are never taken for drift', async () => {
    const { t, check } = checker();
    const g = await createGroupOn(s, 'own-busy');
    const service = s.service();
    const source = `crn:v1:bluemix:public:logs:us-south:a/${s.emu.kp.accountId}:${randomBytes(16).toString('hex')}::`;
    const wake = () =>
      postEvents({
        specversion: '1.0',
        id: crypto.randomUUID(),
        source,
        type: 'com.ibm.cloud.logs.StandardMoreThanAlertEvent:AlertTriggered',
        data: {
          alert_definition: { name: 'lockstep', id: 'a' },
          status: 'triggered',
          log_example: `{"target":{"id":"${g.members[0]!.crn}"...`,
          log_example_truncated: true,
        },
      });
    for (let round = 0; round < 3; round++) {
      s.clock.advance(5_000);
      const { runId } = await service.rotateNow(g.id, { trigger: { kind: 'operator', by: 'reliability-test' } });
      let done = false;
      const drive = (async () => {
        for (let i = 0; i < 20 && !done; i++) {
          const r = await service.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + 3_600_000, holder: `d-${i}` });
          done = ['completed', 'failed', 'diverged'].includes(r.status);
        }
        done = true;
      })();
      // verifications keep arriving while the run stages, promotes and records
      while (!done) {
        const r = await wake();
        check(r.status < 300, `round ${round}: alert answered ${r.status}`);
        const now = await group(g.id);
        check(
          now.status === 'healthy' || now.status === 'rotating',
          `round ${round}: group ${now.status} during its own run (${now.statusReason})`,
        );
      }
      await drive;
      await wake();
      const end = await group(g.id);
      check(end.status === 'healthy', `round ${round}: group ${end.status} after its run (${end.statusReason})`);
      check(end.lastVerification?.result === 'ok', `round ${round}: last verification ${end.lastVerification?.result}`);
    }
    report(
      'own rotations verified while they run',
      'three rotations driven while truncated alerts naming the group arrive back to back: never diverged or degraded, last verification ok',
      t,
    );
  }, 120_000);

  it(
    'fuzz: attacker-chosen claims (correlation ids, initiators, times, actions) on managed keys change nothing',
    async () => {
      const g = await createGroupOn(s, 'claims');
      const lockstepId = s.iamId('lockstep');
      const createRun = `run-${g.id}-create`;
      const beforeRuns = JSON.stringify(await s.stores.runs.listByGroup(g.id, 50));
      const beforeChain = JSON.stringify(await s.stores.lineage.chain(g.id));
      const claim = fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.constantFrom(createRun, `${createRun}:stage`, lockstepId, '=HYPERLINK("http://evil.example")', 'AUDITOR-OK'),
        fc.uuid(),
      );
      const event = fc.record({
        id: fc.stringMatching(/^[A-Za-z0-9._:-]{1,60}$/),
        action: fc.constantFrom(...MEMBER_ACTIONS),
        eventTime: fc.oneof(
          fc.constantFrom('9999-12-31T23:59:59.00+0000', '1970-01-01T00:00:00Z', '2026-12-05T10:00:00.00+0000'),
          fc
            .date({ min: new Date(0), max: new Date(253402214400000), noInvalidDate: true })
            .map((d) => d.toISOString()),
        ),
        outcome: fc.constant('success'),
        correlationId: claim,
        initiator: fc.record({ id: fc.oneof(claim, fc.constant(lockstepId)), name: claim }),
        target: fc.constantFrom(...g.members.map((m) => ({ id: m.crn }))),
      });
      const tally = createTally();
      await fuzz(
        tally,
        'claims',
        fc.array(event, { minLength: 1, maxLength: 3 }),
        async (events) => {
          const problems: string[] = [];
          const r = await postEvents(events);
          if (r.status >= 300) problems.push(`answered ${r.status}`);
          const summary = r.json as { own?: number };
          if (summary.own) problems.push('an event with made-up claims counted as lockstep’s own');
          const now = await group(g.id);
          if (now.status !== 'healthy' || now.activeRunId) problems.push(`group ${now.status}, run ${now.activeRunId}`);
          const runs = JSON.stringify(await s.stores.runs.listByGroup(g.id, 50));
          if (runs !== beforeRuns) problems.push('a run changed');
          if (JSON.stringify(await s.stores.lineage.chain(g.id)) !== beforeChain) problems.push('the lineage changed');
          return problems;
        },
        { numRuns: fuzzRuns(40) },
      );
      const result = recordFuzzRow(
        tally,
        [],
        'forged claims on managed keys (fuzz)',
        'signed-by-token CADF events on every member with arbitrary correlation ids (incl. run ids), initiators (incl. lockstep’s IAM id), names and times (years 1970-9999): 2xx, never own, no run, no evidence, lineage unchanged, group healthy (Key Protect shows no drift)',
      );
      expect(result.violations, result.examples?.join('\n')).toBe(0);
    },
    scale({ bounded: 120_000, full: 1_800_000, soak: 14_400_000 }),
  );

  it('Event Notifications retries, honours Retry-After, drops after the last retry — and loses no alert within its budget', async () => {
    const { t, check } = checker();
    // a front of the events function: answers 503 while `down` > 0 (a brief outage), else forwards
    let down = 0;
    let retryAfter: string | undefined;
    const front = await startFlakyFront({
      target: s.runner.url('events'),
      down: () => down-- > 0,
      retryAfter: () => retryAfter,
      forward: [TOKEN_HEADER],
    });
    const frontUrl = front.url;
    const g = await createGroupOn(s, 'retries');
    const slept: number[] = [];
    try {
      await withRelay(
        async (relay) => {
          relay.setDestination({ url: frontUrl, sensitiveHeaders: { [TOKEN_HEADER]: s.eventsToken } });
          check(relay.describeDestination()?.headers[TOKEN_HEADER] === '********', 'sensitive header shown');
          const example = { action: 'kms.secrets.rotate', target: { id: g.members[0]!.crn } };
          const alerts = 6;
          // brief outages: each alert's first 1..3 attempts fail (within 3 retries): none may be lost
          for (let i = 0; i < alerts; i++) {
            down = 1 + (i % 3);
            retryAfter = i === 4 ? '7' : undefined;
            relay.ingest([{ ...example, id: `a-${i}` }]);
            await relay.flush();
          }
          const st = relay.stats();
          check(st.triggered === alerts, `triggered ${st.triggered} of ${alerts}`);
          check(st.delivered === alerts && st.dropped === 0, `lost alerts: ${st.dropped} (delivered ${st.delivered})`);
          check(slept.slice(0, 3).join() === '1000,1000,2000', `retry delays ${slept.join()}`);
          check(slept.includes(7000), `Retry-After was not honoured (${slept.join()})`);
          check(
            slept.every((d) => d >= 1000 && d <= 10_000),
            'a delay outside 1-10 s',
          );
          // an outage longer than the retry budget: 1 + 3 attempts fail, the notification is dropped
          down = 4;
          retryAfter = undefined;
          relay.ingest([{ ...example, id: 'lost' }]);
          await relay.flush();
          check(relay.stats().dropped === 1, `dropped ${relay.stats().dropped} after 4 failures`);
          check(relay.stats().delivered === alerts, 'a dropped notification was delivered');
          // the group was verified by the delivered alerts
          check(/^alert:/.test((await group(g.id)).lastVerification?.trigger ?? ''), 'no verification from alerts');
        },
        {
          sleep: async (ms) => {
            slept.push(ms);
          },
        },
      );
    } finally {
      await front.close();
    }
    report(
      'Event Notifications delivery through brief outages',
      '6 alerts with 1-3 failed attempts each (503, one Retry-After: 7): 0 lost; 4 failures: dropped; delays 1, 2, 4 s or Retry-After',
      t,
    );
  }, 120_000);
});

/** Disables or enables a key through Key Protect's REST API as the outsider (a Key Protect caller of its own). */
async function kpAction(m: Group['members'][number], action: 'disable' | 'enable'): Promise<void> {
  const tokenRes = await fetch(`${s.emu.iam.url}/identity/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
      apikey: s.emu.iam.apiKeyFor('outsider'),
    }),
  });
  const { access_token } = (await tokenRes.json()) as { access_token: string };
  const res = await fetch(`${s.emu.kp.regions[m.region]!.url}/api/v2/keys/${m.keyId}/actions/${action}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${access_token}`, 'bluemix-instance': parseKeyCrn(m.crn).instanceId },
  });
  if (res.status >= 300) throw new Error(`${action} answered ${res.status}: ${await res.text()}`);
}
