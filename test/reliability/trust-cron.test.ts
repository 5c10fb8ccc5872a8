/**
 * Trust boundaries (issue 13, findings 2 and 4; issue 12 §2 cron): what an outsider can do with a header anyone may
 * send. Every case plays the attacker over real HTTP against the deployed shape of the local stack (the three
 * composition roots behind the local Code Engine runner, the Key Protect emulator, the embedded store):
 *
 * - a spoofed cron ping (`Ce-Type: dev.knative.sources.ping` without the subscription's secret, with a wrong one, or
 *   with the secret somewhere other than the subscription's data) against a group that is due → 401, no tick, no
 *   store change, and an answer that names no group, run or tick;
 * - a caller-chosen `Ce-Id` (`=HYPERLINK(…)`) on a ping that runs a rotation → it reaches no run, no lineage record,
 *   no JSON answer, no CSV cell and not the timeline page; the trigger is `cron:<uuid>` and an accepted ping is
 *   answered with a status, not the tick summary; a formula written into the history before this check (a legacy
 *   record) leaves the CSV export guarded;
 * - two ticks with the same `Ce-Id` → two different lease holders.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/api/index.js';
import { CE_PING_TYPE } from '../../src/codeengine/index.js';
import type { Group, GroupId, LineageRecord, RegionId } from '../../src/core/index.js';
import { hashRecord } from '../../src/lineage/index.js';
import { functionStackPerFile, MIN_ROTATION_INTERVAL_MS } from './_lib/accessStack.js';
import { recordScenario, scale } from './_lib/report.js';
import { liveDocuments, storeDigest } from './_lib/secretsStore.js';

const HOSTILE_ID = '=HYPERLINK("http://evil.example/x","approved by alice (operator)")';
const FORMULA = /^[=+\-@\t\r]/;

const stack = functionStackPerFile({ functionLogLevel: 'info' });

/** A group the next tick starts a run for (interval = Key Protect's shortened one-rotation rule × 2). */
async function dueGroup(id: string): Promise<Group> {
  const s = stack();
  const { group } = await s.service().createGroup({
    id,
    name: `group ${id}`,
    schedule: { intervalMs: 2 * MIN_ROTATION_INTERVAL_MS },
    primary: { region: s.regions[0] as RegionId, instanceId: s.instance(s.regions[0]!) },
    duplicates: s.regions.slice(1).map((r) => ({ region: r as RegionId, instanceId: s.instance(r) })),
    trigger: { kind: 'operator', by: 'reliability-test' },
  });
  await new Promise((r) => setTimeout(r, 2 * MIN_ROTATION_INTERVAL_MS + 200)); // due, and past the 1 h rule
  return group;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

async function post(url: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers, ...(body === undefined ? {} : { body }) });
  const out: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    out[k] = v;
  });
  return { status: res.status, headers: out, text: await res.text() };
}

const pingHeaders = (ceId: string, contentType = 'application/json') => ({
  'ce-type': CE_PING_TYPE,
  'ce-id': ceId,
  'ce-source': '/apis/v1/namespaces/x/pingsources/rotate-cron',
  'ce-specversion': '1.0',
  'ce-time': new Date().toISOString(),
  'content-type': contentType,
});

/** A ping that carries the subscription's secret (as Code Engine's delivery of the real subscription would). */
const genuineBody = () => JSON.stringify({ source: 'cron', cronSecret: stack().cronSecret });

describe('trust boundaries: cron pings', () => {
  it('a spoofed cron ping is refused with 401, runs no tick, changes nothing and reveals nothing', async () => {
    const s = stack();
    const group = await dueGroup('spoofed-ping');
    const url = s.runner.url('rotate');
    const wrong = `${s.cronSecret.slice(0, -2)}xx`;
    const spoofs: Array<[string, Record<string, string>, string | undefined, string]> = [
      ['header only', pingHeaders('spoof-1'), undefined, ''],
      ['header + subscription-shaped data', pingHeaders('spoof-2'), JSON.stringify({ source: 'cron' }), ''],
      ['wrong secret', pingHeaders('spoof-3'), JSON.stringify({ source: 'cron', cronSecret: wrong }), ''],
      ['empty secret', pingHeaders('spoof-4'), JSON.stringify({ cronSecret: '' }), ''],
      [
        'secret of another kind (events token)',
        pingHeaders('spoof-5'),
        JSON.stringify({ cronSecret: s.eventsToken }),
        '',
      ],
      ['secret as a non-string', pingHeaders('spoof-6'), JSON.stringify({ cronSecret: [s.cronSecret] }), ''],
      ['wrong secret as text', pingHeaders('spoof-7', 'text/plain'), `cronSecret=${wrong}`, ''],
      ['wrong secret in the query', pingHeaders('spoof-8'), undefined, `?cronSecret=${wrong}`],
      ['wrong secret in a header', { ...pingHeaders('spoof-9'), 'x-cron-secret': wrong }, undefined, ''],
      ['ping type in lower/upper case', { ...pingHeaders('spoof-10'), 'ce-type': CE_PING_TYPE.toUpperCase() }, '', ''],
    ];
    const rounds = scale({ bounded: 1, full: 3, soak: 10 });
    const violations: string[] = [];
    let requests = 0;
    for (let round = 0; round < rounds; round++) {
      const before = await storeDigest(s.couch);
      const runsBefore = (await s.stores.runs.listByGroup(group.id as GroupId, 50)).length;
      for (const [name, headers, body, query] of spoofs) {
        const a = await post(`${url}/${query}`, headers, body);
        requests += 1;
        if (a.status !== 401) violations.push(`${name}: answered ${a.status}`);
        for (const leak of [group.id, 'run-', 'resumed', 'deferred', 'holder', 'tick']) {
          if (a.text.includes(leak)) violations.push(`${name}: the answer names "${leak}"`);
        }
      }
      if ((await storeDigest(s.couch)) !== before) violations.push(`round ${round}: the store changed`);
      const runsAfter = (await s.stores.runs.listByGroup(group.id as GroupId, 50)).length;
      if (runsAfter !== runsBefore) violations.push(`round ${round}: ${runsAfter - runsBefore} run(s) started`);
    }
    // the genuine delivery (the runner's, as Code Engine's) still runs the tick: a refusal could have been a success
    const genuine = await s.runner.fireCron('rotate');
    requests += 1;
    if (genuine.statusCode !== 200) violations.push(`genuine cron delivery answered ${genuine.statusCode}`);
    const runs = await s.stores.runs.listByGroup(group.id as GroupId, 50);
    if (!runs.some((r) => (r as unknown as { trigger: { kind: string } }).trigger.kind === 'schedule')) {
      violations.push('the genuine ping started no run for the due group');
    }

    const result = recordScenario({
      scenario: 'spoofed cron ping (Ce-Type header without the subscription secret)',
      area: 'trust',
      runs: requests,
      violations: violations.length,
      notes: `${spoofs.length} spoof shapes × ${rounds} round(s) against a due group → 401, store digest unchanged, no run, no group/run/tick named in the answer; the runner's genuine delivery (secret in \`body\`, base64 JSON, as Code Engine documents) → 200 and the tick starts the run`,
      examples: [...new Set(violations)].slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);

  it('a caller-chosen Ce-Id never reaches runs, records, JSON, CSV or the page; a ping is answered with a status', async () => {
    const s = stack();
    const group = await dueGroup('hostile-ce-id');
    const violations: string[] = [];
    // the ping carries the secret (the attacker needs none on today's code; with it the header is all they choose)
    const ping = await post(s.runner.url('rotate'), pingHeaders(HOSTILE_ID), genuineBody());
    if (ping.status !== 200) violations.push(`authenticated ping answered ${ping.status}: ${ping.text.slice(0, 120)}`);
    const reply = (() => {
      try {
        return JSON.parse(ping.text) as Record<string, unknown>;
      } catch {
        return {};
      }
    })();
    if (Object.keys(reply).sort().join(',') !== 'ok,tick' || reply.ok !== true) {
      violations.push(`the ping's answer is not a status: ${ping.text.slice(0, 160)}`);
    }
    if (!/^cron:[0-9a-f-]{36}$/.test(String(reply.tick)))
      violations.push(`tick id ${String(reply.tick)} not cron:<uuid>`);
    if (ping.headers['x-request-id']?.includes('HYPERLINK')) violations.push('the Ce-Id is echoed in x-request-id');

    // the run and its record
    const runs = (await s.stores.runs.listByGroup(group.id as GroupId, 50)) as unknown as Array<{
      id: string;
      status: string;
      trigger: { kind: string; by: string };
    }>;
    const scheduled = runs.find((r) => r.trigger.kind === 'schedule');
    if (!scheduled) violations.push('the ping started no run');
    else {
      if (scheduled.trigger.by !== reply.tick) violations.push(`trigger.by is ${scheduled.trigger.by.slice(0, 80)}`);
      for (let i = 0; i < 40 && !['completed', 'failed', 'diverged'].includes(scheduled.status); i++) {
        const r = await s
          .service()
          .advanceRun(scheduled.id, { deadlineAtMs: s.clock.nowMs() + 3_600_000, holder: 'd' });
        scheduled.status = r.status;
        if (r.nextAttemptAtMs) s.clock.advance(Math.max(1_000, r.nextAttemptAtMs - s.clock.nowMs()));
      }
      if (scheduled.status !== 'completed') violations.push(`the run ended ${scheduled.status}`);
    }

    // everything an auditor reads
    const auditor = await s.emu.iam.issueToken('auditor');
    const api = s.runner.url('api');
    const get = async (path: string, headers: Record<string, string> = { authorization: `Bearer ${auditor}` }) => {
      const res = await fetch(`${api}${path}`, { headers, redirect: 'manual' });
      return { status: res.status, text: await res.text() };
    };
    const reads = [
      `/v1/groups/${group.id}/generations?limit=50`,
      `/v1/groups/${group.id}/generations/2`,
      `/v1/export?format=jsonl&groupId=${group.id}`,
      `/v1/export?format=csv&groupId=${group.id}`,
      ...(scheduled ? [`/v1/runs/${scheduled.id}`] : []),
    ];
    const texts: Array<[string, string]> = [];
    for (const p of reads) {
      const r = await get(
        p,
        p.startsWith('/v1/runs') ? { authorization: `Bearer ${await s.emu.iam.issueToken('operator')}` } : undefined,
      );
      if (r.status !== 200) violations.push(`${p}: ${r.status}`);
      texts.push([p, r.text]);
    }
    // the timeline page, with whatever session the login form hands out
    const login = await fetch(`${api}/ui/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: api },
      body: new URLSearchParams({ token: auditor }).toString(),
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const page = await get(`/ui/groups/${group.id}`, { cookie });
    if (page.status !== 200) violations.push(`timeline page: ${page.status}`);
    texts.push(['timeline page', page.text]);
    texts.push(['store', [...(await liveDocuments(s.couch)).values()].join('\n')]);
    for (const [where, text] of texts) if (text.includes('HYPERLINK')) violations.push(`${where} holds the Ce-Id`);

    // a legacy record (written before lineage text was validated) holding formulas: the CSV export is guarded
    const head = (await s.stores.lineage.head(group.id as GroupId))!;
    const legacyBody = {
      ...head,
      generation: head.generation + 1,
      runId: `run-${randomUUID()}`,
      prevHash: head.hash,
      trigger: { kind: 'schedule', by: HOSTILE_ID, reason: '+SUM(1,2)' },
      notes: ['@cmd', '-1'],
    } as unknown as LineageRecord;
    await s.stores.lineage.append({ ...legacyBody, hash: hashRecord(legacyBody) });
    const csv = await get(`/v1/export?format=csv&groupId=${group.id}`);
    let cells = 0;
    for (const row of parseCsv(csv.text)) {
      for (const cell of row) {
        cells += 1;
        if (FORMULA.test(cell)) violations.push(`CSV cell starts a formula: ${cell.slice(0, 60)}`);
      }
    }

    const result = recordScenario({
      scenario: 'hostile Ce-Id (=HYPERLINK) on a cron ping; formulas in the CSV export',
      area: 'trust',
      runs: reads.length + 3 + cells,
      violations: violations.length,
      notes: `ping answer is {ok, tick: cron:<uuid>}; the run's trigger is the server id; ${reads.length} API reads, the timeline page and every live document hold no trace of the Ce-Id; ${cells} CSV cells of a history with a legacy formula record: none starts with = + - @ tab CR`,
      examples: [...new Set(violations)].slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);

  it('two ticks with the same Ce-Id hold different leases', async () => {
    const s = stack();
    const ceId = `same-ce-id-${randomUUID().slice(0, 8)}`;
    const pairs = scale({ bounded: 2, full: 5, soak: 20 });
    const violations: string[] = [];
    const from = s.functionLogs.length;
    for (let i = 0; i < pairs; i++) {
      const answers = await Promise.all(
        [0, 1].map(() => post(s.runner.url('rotate'), pingHeaders(ceId), genuineBody())),
      );
      for (const a of answers) if (a.status !== 200) violations.push(`ping answered ${a.status}`);
    }
    const holders = s.functionLogs
      .slice(from)
      .map((l) => JSON.parse(l) as { msg?: string; tick?: string })
      .filter((l) => l.msg === 'tick.summary')
      .map((l) => String(l.tick));
    if (holders.length !== 2 * pairs) violations.push(`${holders.length} tick summaries logged, expected ${2 * pairs}`);
    const distinct = new Set(holders);
    if (distinct.size !== holders.length) violations.push(`${holders.length - distinct.size} lease holder(s) shared`);
    for (const h of distinct) if (h.includes(ceId)) violations.push(`holder ${h} is built from the Ce-Id`);

    const result = recordScenario({
      scenario: 'two ticks with the same Ce-Id',
      area: 'trust',
      runs: 2 * pairs,
      violations: violations.length,
      notes: `${pairs} pairs of concurrent pings with one Ce-Id: ${distinct.size} distinct lease holders of ${holders.length} ticks, none derived from the Ce-Id`,
      examples: violations.slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);
});
