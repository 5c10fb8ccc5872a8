/**
 * Secrets and access (issue 8), secrets half: key material never leaves memory.
 *
 * One full flow over real HTTP on the deployed shape of the local stack (functions behind the Code Engine runner,
 * Key Protect emulator behind recording proxies, the embedded store): a group is created, rotated through the API
 * (run by the rotate function's cron ticks), rotated with a crash after a persisted step and resumed by another
 * worker, rotated through 503 / 429 faults; Activity Tracker events are delivered (webhook and a signed batch);
 * every read route is called (JSON, exports, proof, the timeline page with both login forms) and the CLI's `--json`
 * read commands run against it.
 *
 * Then every captured log line (service logger + function stderr), every revision of every document of every
 * database (design and deleted documents included) and every HTTP response (status, headers, body) and CLI output
 * is searched for every secret of the run: each material and canary DEK (recording random), every plaintext that
 * crossed the wire to Key Protect (escrow unwraps included), every import-token nonce, in hex (both cases), base64
 * and base64url; every IAM access token and API key, the events HMAC secret and token, the checkpoint private key;
 * and anything JWT-shaped. The one exemption: `POST /ui/login` answers with the caller's own token in its session
 * cookie (by design).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/cli.js';
import { EnvReader, readCommonConfig, signBody, TOKEN_HEADER } from '../../src/codeengine/index.js';
import { fingerprintOf, KeyMaterial } from '../../src/core/index.js';
import { encodingsOf, SimulatedCrash } from '../support/rotationHarness.js';
import { createGroupOn, driveToEnd, type FunctionStack, startFunctionStack } from './_lib/accessStack.js';
import { recordScenario } from './_lib/report.js';
import { type RecordingProxy, startRecordingProxy } from './_lib/secretsProxy.js';
import { allRevisions } from './_lib/secretsStore.js';

const LEASE_EXPIRY_MS = 150_000;
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;

let s: FunctionStack;
const proxies: RecordingProxy[] = [];
const cliDir = mkdtempSync(join(tmpdir(), 'lockstep-secrets-'));

beforeAll(async () => {
  s = await startFunctionStack({
    functionLogLevel: 'debug',
    endpoint: async (_region, url) => {
      const p = await startRecordingProxy(url);
      proxies.push(p);
      return p.url;
    },
  });
  s.emu.kp.setEventWebhook(s.runner.url('events'), { [TOKEN_HEADER]: s.eventsToken });
}, 120_000);

afterAll(async () => {
  s?.emu.kp.setEventWebhook(undefined);
  await s?.close();
  await Promise.all(proxies.map((p) => p.close()));
  rmSync(cliDir, { recursive: true, force: true });
});

interface Artefact {
  kind: 'log' | 'document' | 'response' | 'cli';
  where: string;
  text: string;
}

describe('secrets and access: no secret in any log, document or response', () => {
  it('a full flow (API rotation, crash/resume, faults, events, every read route, CLI) leaks nothing', async () => {
    const artefacts: Artefact[] = [];
    const issuedTokens: string[] = [];
    const token = async (name: 'operator' | 'auditor') => {
      const t = await s.emu.iam.issueToken(name);
      issuedTokens.push(t);
      return t;
    };
    const operator = await token('operator');
    const auditor = await token('auditor');

    /** A request whose whole answer (status, headers, body) becomes an artefact. */
    const hit = async (fn: string, path: string, init: RequestInit = {}, exemptCookie = false) => {
      const res = await fetch(`${s.runner.url(fn)}${path}`, { redirect: 'manual', ...init });
      const body = await res.text();
      const headers: string[] = [];
      res.headers.forEach((v, k) => {
        if (!(exemptCookie && k === 'set-cookie')) headers.push(`${k}: ${v}`);
      });
      artefacts.push({
        kind: 'response',
        where: `${fn} ${init.method ?? 'GET'} ${path}`,
        text: `${res.status}\n${headers.join('\n')}\n\n${body}`,
      });
      return { status: res.status, body, cookie: res.headers.get('set-cookie') ?? '' };
    };
    const get = (path: string, t = auditor) => hit('api', path, { headers: { authorization: `Bearer ${t}` } });

    // 1. generation 1: the group is created (material generated, escrowed, imported into three regions)
    const group = await createGroupOn(s, 'vault');
    const runIds: string[] = [(await s.stores.runs.listByGroup(group.id, 5))[0]!.id];
    const statuses: string[] = [];

    // 2. generation 2: an operator asks through the API; the rotate function runs it on its cron ticks (material
    //    generated inside the function: the scan knows it from the escrow wrap's plaintext the proxy saw)
    await new Promise((r) => setTimeout(r, 1_100)); // the (shortened) one-rotation-per-interval rule, wall clock
    const accepted = await hit('api', `/v1/groups/${group.id}/rotations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'secrets scenario' }),
    });
    expect(accepted.status, accepted.body).toBe(202);
    const run2 = JSON.parse(accepted.body).runId as string;
    runIds.push(run2);
    for (let tick = 0; tick < 5; tick++) {
      const pinged = await s.runner.fireCron('rotate');
      artefacts.push({
        kind: 'response',
        where: 'rotate cron ping',
        text: `${pinged.statusCode}\n${pinged.body.toString()}`,
      });
      if ((await s.service().getRun(run2)).status === 'completed') break;
    }
    statuses.push((await s.service().getRun(run2)).status);

    // 3. generation 3: the worker crashes after the first duplicate is staged; another resumes from escrow
    s.clock.advance(2_000);
    const { runId: run3 } = await s.service().rotateNow(group.id, { trigger: { kind: 'operator', by: 'secrets' } });
    runIds.push(run3);
    let persists = 0;
    const doomed = s.service({
      afterPersist: (_run, step) => {
        if (++persists === 3) throw new SimulatedCrash(step);
      },
    });
    const crash = await doomed.advanceRun(run3, { deadlineAtMs: s.clock.nowMs() + 3_600_000, holder: 'doomed' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(crash).toBeInstanceOf(SimulatedCrash);
    s.clock.advance(LEASE_EXPIRY_MS);
    statuses.push((await driveToEnd(s, s.service(), run3)).status);

    // 4. generation 4: a 503 burst on one duplicate region, 429 storms with Retry-After on the other
    s.clock.advance(2_000);
    s.emu.kp.setFaults({ region: s.regions[2]! }, { outage: '503', remaining: 8 });
    s.emu.kp.setFaults({ region: s.regions[1]! }, { throttleRate: 1, retryAfterSeconds: 1, remaining: 4 });
    const { runId: run4 } = await s.service().rotateNow(group.id, { trigger: { kind: 'operator', by: 'secrets' } });
    runIds.push(run4);
    statuses.push((await driveToEnd(s, s.service(), run4)).status);
    s.emu.kp.clearFaults();
    expect(statuses).toEqual(['completed', 'completed', 'completed']);

    // 5. events: the webhook deliveries (static token), then a signed batch re-delivering the last events
    await s.emu.kp.flushEvents();
    const batch = JSON.stringify(s.emu.kp.events().slice(-5));
    const signed = signBody(s.eventsHmacSecret, batch, Math.floor(Date.now() / 1000));
    const delivered = await hit('events', '/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signed },
      body: batch,
    });
    expect(delivered.status, delivered.body).toBe(200);

    // 6. every read route, with the error answers too
    const records = JSON.parse((await get(`/v1/groups/${group.id}/generations?limit=100`)).body).items as {
      generation: number;
      members: { keyVersionId: string }[];
    }[];
    expect(records.map((r) => r.generation)).toEqual([4, 3, 2, 1]);
    const firstPage = JSON.parse((await get(`/v1/groups/${group.id}/generations?limit=1`)).body) as {
      next: { cursor: string };
    };
    const reads = [
      '/openapi.json',
      '/v1/groups',
      `/v1/groups/${group.id}`,
      `/v1/groups/${group.id}/generations?limit=1&cursor=${encodeURIComponent(firstPage.next.cursor)}`,
      ...records.map((r) => `/v1/groups/${group.id}/generations/${r.generation}`),
      ...records.flatMap((r) => r.members.map((m) => `/v1/versions/${m.keyVersionId}`)),
      `/v1/groups/${group.id}/proof`,
      '/v1/export?format=jsonl',
      '/v1/export?format=csv',
      `/v1/export?format=jsonl&groupId=${group.id}`,
      `/v1/export?format=csv&groupId=${group.id}`,
      '/v1/groups/no-such-group',
      '/v1/groups?cursor=not-a-cursor',
      '/v1/versions/00000000-0000-4000-8000-000000000000',
    ];
    for (const r of reads) expect((await get(r)).status, r).toBeLessThan(500);
    for (const id of runIds) expect((await get(`/v1/runs/${id}`, operator)).status).toBe(200);
    expect((await get('/v1/groups')).status).toBe(200);
    // the timeline page: log in with a token (an API key is refused outside the local stack), browse, export, log out
    const form = (body: Record<string, string>) => ({
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(body).toString(),
    });
    const byToken = await hit('api', '/ui/login', form({ token: auditor }), true);
    const byKey = await hit('api', '/ui/login', form({ apikey: s.emu.iam.apiKeyFor('auditor') }), true);
    expect([byToken.status, byKey.status]).toEqual([303, 401]);
    // the cookie holds a sealed session, never the IAM token (issue 13)
    const session = /lockstep_session=([^;]+)/.exec(byToken.cookie)?.[1] ?? '';
    expect(session).not.toBe('');
    expect(byToken.cookie).not.toContain(auditor);
    issuedTokens.push(session);
    const cookie = { headers: { cookie: `lockstep_session=${session}` } };
    for (const p of ['/ui', `/ui/groups/${group.id}`, `/ui/export?format=csv&groupId=${group.id}`, '/ui/groups/nope']) {
      expect((await hit('api', p, cookie)).status, p).toBeLessThan(500);
    }
    await hit('api', '/ui/logout', { method: 'POST' });
    await hit('api', '/ui/login', form({ apikey: 'wrong-key' }));

    // 7. the CLI's --json read commands against the API
    const cli = async (args: string[], apiKey: string) => {
      let out = '';
      const code = await runCli([...args, '--json'], {
        stdout: (x) => {
          out += x;
        },
        stderr: (x) => {
          out += x;
        },
        env: { LOCKSTEP_API_URL: s.runner.url('api'), LOCKSTEP_IAM_URL: s.emu.iam.url, LOCKSTEP_API_KEY: apiKey },
        cwd: cliDir,
        isTty: false,
        interrupted: new Promise(() => undefined),
      });
      artefacts.push({ kind: 'cli', where: `lockstep ${args.join(' ')} --json (exit ${code})`, text: out });
      return code;
    };
    const operatorKey = s.emu.iam.apiKeyFor('operator');
    expect(await cli(['group', 'list'], operatorKey)).toBe(0);
    expect(await cli(['status'], operatorKey)).toBe(0);
    expect(await cli(['status', group.id], operatorKey)).toBe(0);
    expect(await cli(['history', group.id], s.emu.iam.apiKeyFor('auditor'))).toBe(0);
    expect(await cli(['audit', 'verify', group.id], s.emu.iam.apiKeyFor('auditor'))).toBe(0);

    // 8. collect: every log line, every revision of every stored document
    await s.emu.kp.flushEvents();
    for (const [i, l] of s.log.lines.entries()) artefacts.push({ kind: 'log', where: `service log #${i}`, text: l });
    for (const [i, l] of s.functionLogs.entries())
      artefacts.push({ kind: 'log', where: `function log #${i}`, text: l });
    for (const [i, l] of s.otherStderr.entries()) artefacts.push({ kind: 'log', where: `stderr line #${i}`, text: l });
    for (const d of await allRevisions(s.couch)) {
      artefacts.push({ kind: 'document', where: `${d.db}/${d.id}@${d.rev}`, text: d.text });
    }

    // 9. the secrets
    const bytes: Array<{ what: string; value: Buffer }> = [
      ...s.random.secrets.map((value, i) => ({ what: `random output #${i} (material or canary DEK)`, value })),
      ...proxies.flatMap((p) => p.nonces.map((value) => ({ what: 'import-token nonce', value }))),
      ...proxies.flatMap((p) =>
        p.plaintexts.map((value) => ({ what: 'plaintext sent to / returned by Key Protect', value })),
      ),
      { what: 'checkpoint signing seed', value: s.checkpointSeed },
    ];
    const pemBody = s.checkpointPrivatePem.split('\n').filter((l) => l && !l.startsWith('-----'));
    const strings: Array<{ what: string; value: string }> = [
      ...s.emu.iam.identities.map((i) => ({ what: `API key of ${i.name}`, value: i.apiKey })),
      { what: 'IAM compute-resource token', value: s.emu.iam.crToken },
      { what: 'events HMAC secret', value: s.eventsHmacSecret },
      { what: 'events token', value: s.eventsToken },
      { what: 'cron secret', value: s.cronSecret },
      { what: 'checkpoint private key (PEM body)', value: pemBody.join('') },
      ...pemBody.map((value) => ({ what: 'checkpoint private key (PEM line)', value })),
      ...proxies.flatMap((p) =>
        [...p.bearerTokens].map((value) => ({ what: 'IAM token lockstep sent to Key Protect', value })),
      ),
      ...issuedTokens.map((value) => ({ what: 'IAM token of an API caller', value })),
    ];
    const needles = [
      ...bytes.flatMap(({ what, value }) => encodingsOf(value).map((e) => ({ what, e }))),
      ...strings.filter((x) => x.value.length >= 16).map(({ what, value }) => ({ what, e: value })),
    ];

    // the scan list holds every material of every run (each run's fingerprint is one of a recorded secret)
    const recordedFingerprints = new Set(
      [...s.random.secrets, ...proxies.flatMap((p) => p.plaintexts)]
        .filter((b) => b.length === 32)
        .map((b) => fingerprintOf(KeyMaterial.fromBytes(b))),
    );
    const coverage: string[] = [];
    for (const id of runIds) {
      const run = await s.service().getRun(id);
      if (!run.fingerprint || !recordedFingerprints.has(run.fingerprint))
        coverage.push(`run ${id}: material not in the scan list`);
    }
    expect(proxies.reduce((n, p) => n + p.nonces.length, 0)).toBeGreaterThanOrEqual(9); // 3 members × 3 rotations
    expect(proxies.reduce((n, p) => n + p.bearerTokens.size, 0)).toBeGreaterThanOrEqual(1);
    // the scanner finds what it looks for (in every encoding)
    const probe = s.random.secrets[0]!;
    for (const e of encodingsOf(probe)) expect(needles.some((n) => `x"${e}"x`.includes(n.e))).toBe(true);

    const leaks: string[] = [...coverage];
    for (const a of artefacts) {
      for (const n of needles) if (a.text.includes(n.e)) leaks.push(`${a.kind} ${a.where}: ${n.what}`);
      if (JWT.test(a.text)) leaks.push(`${a.kind} ${a.where}: a JWT`);
    }
    const count = (k: Artefact['kind']) => artefacts.filter((a) => a.kind === k).length;
    const result = recordScenario({
      scenario: 'secrets: full flow, every log line, document revision and response scanned',
      area: 'secrets',
      runs: artefacts.length,
      violations: leaks.length,
      notes: `${count('log')} log lines, ${count('document')} document revisions (all databases, design + deleted), ${count('response')} HTTP responses, ${count('cli')} CLI outputs; ${bytes.length} byte secrets (materials, canary DEKs, ${proxies.reduce((n, p) => n + p.nonces.length, 0)} import-token nonces, Key Protect plaintexts) × hex/HEX/base64/base64url + ${strings.length} tokens/keys + any JWT; 4 generations: created, API-requested + run by the rotate function's cron ticks, crash/resume, 503/429 faults`,
      examples: [...new Set(leaks)].slice(0, 10),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 180_000);
  it('the rotate function, with no LOCKSTEP_TICK_IAM_IDS (this stack), refuses every IAM token over HTTP', async () => {
    expect(s.env.LOCKSTEP_TICK_IAM_IDS).toBeUndefined();
    const answers: number[] = [];
    for (const name of ['operator', 'auditor', 'outsider', 'lockstep']) {
      const t = await s.emu.iam.issueToken(name);
      const res = await fetch(s.runner.url('rotate'), { method: 'POST', headers: { authorization: `Bearer ${t}` } });
      answers.push(res.status);
    }
    expect(answers).toEqual([401, 401, 401, 401]);
  }, 60_000);
  it('the functions refuse to start with the IBM SDK HTTP traces on (they would print key material)', () => {
    // With NODE_DEBUG=axios this flow's scan finds every material, canary DEK and nonce in the SDK's request and
    // response traces (its redaction does not cover `plaintext` or `nonce`), so the configuration check refuses it.
    const problems = (extra: Record<string, string | undefined>) => {
      const r = new EnvReader({ ...s.env, ...extra });
      readCommonConfig(r);
      return r.problems.filter((p) => p.includes('SDK HTTP traces'));
    };
    for (const on of [
      { NODE_DEBUG: 'axios' },
      { DEBUG: '*' },
      { DEBUG: 'ibm-cloud-sdk-core:*' },
      { DEBUG: 'x,ibm-*' },
    ]) {
      expect(problems(on), JSON.stringify(on)).toHaveLength(1);
    }
    for (const off of [{}, { DEBUG: '*,-ibm-cloud-sdk-core:*' }, { DEBUG: 'lockstep:*' }, { NODE_DEBUG: 'http' }]) {
      expect(problems(off), JSON.stringify(off)).toHaveLength(0);
    }
  });
});
