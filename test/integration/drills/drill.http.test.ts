/**
 * DR drills and the endpoints route end to end: the Key Protect emulator + local IAM, the embedded store through the
 * Cloudant adapter, the real rotation service, the drill use case with the failover client as its switch-over
 * probe, and the API over HTTP (every response validated against /openapi.json). The failover client reads the
 * endpoints route with an auditor token and survives the API going away.
 */
import { generateKeyPairSync } from 'node:crypto';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import { GroupKeyring } from 'lockstep/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runApp } from '../../../examples/app/app.js';
import {
  createApi,
  drillsFromJsonl,
  type HttpServerHandle,
  recordsFromJsonl,
  serveHttp,
} from '../../../src/api/index.js';
import { createDrillService, type DrillService } from '../../../src/app/index.js';
import type { DrillCheckpoint, DrillRecord, Group } from '../../../src/core/index.js';
import { authenticatorFromConfig, createSwitchoverProbe } from '../../../src/keyprotect/index.js';
import { checkpointKeyring, verifyChain } from '../../../src/lineage/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';
import { createHttpClient } from '../api/support.js';
import { cliAgainst, groupPage } from './cli.js';

let s: LocalStack;
let group: Group;
let drills: DrillService;
let server: HttpServerHandle;
let http: Awaited<ReturnType<typeof createHttpClient>>;
let operator: string;
let auditor: string;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const privatePem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const publicPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();

beforeAll(async () => {
  s = await startLocalStack({ config: { rotationMinIntervalMs: 60_000 } });
  group = await createStackGroup(s, 'ledger', 2);
  // a second generation, so the drill checks the canaries of two
  const service = s.service({ config: { checkpointSigning: { privateKey: privatePem } } });
  s.clock.advance(3_600_000);
  const { runId } = await service.rotateNow(group.id, { trigger: { kind: 'operator', by: 'test' } });
  expect((await driveRun(s, service, runId)).status).toBe('completed');
  const endpoints = Object.fromEntries(s.regions.map((r) => [r, s.stack.kp.regions[r]!.url]));
  drills = createDrillService({
    kp: s.kp,
    stores: s.stores,
    switchover: createSwitchoverProbe({
      endpoints,
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: s.stack.iam.apiKeyFor('lockstep'),
        iamUrl: s.stack.iam.url,
      }),
      attemptTimeoutMs: 1_000,
    }),
    endpoints,
    clock: s.clock,
    random: s.random,
    logger: s.log.logger,
    notifier: { publish: async (e) => void s.notes.push(e) },
    config: { rotationMinIntervalMs: 60_000, checkpointSigning: { privateKey: privatePem } },
  });
  const iamIdOf = (name: string) => s.stack.iam.identities.find((i) => i.name === name)!.iamId;
  const api = createApi({
    stores: s.stores,
    service,
    drills,
    keyProtectEndpoints: endpoints,
    auth: {
      jwksUrl: s.stack.iam.jwksUrl,
      issuer: s.stack.iam.issuer,
      roles: { [iamIdOf('operator')]: 'operator', [iamIdOf('auditor')]: 'auditor' },
    },
    checkpointPublicKeys: { main: publicPem },
    clock: s.clock,
    logger: s.log.logger,
  });
  server = await serveHttp(api);
  http = await createHttpClient(server.url);
  operator = await s.stack.iam.issueToken('operator');
  auditor = await s.stack.iam.issueToken('auditor');
});

afterAll(async () => {
  await server?.close();
  await s?.close();
});

const auditorAuth = () => new IamAuthenticator({ apikey: s.stack.iam.apiKeyFor('auditor'), url: s.stack.iam.url });

describe('GET /v1/groups/{id}/endpoints and the failover client', () => {
  it('lists each member’s role, region, URLs, instance and key for an auditor', async () => {
    const res = await http.request('GET', `/v1/groups/${group.id}/endpoints`, { token: auditor });
    expect(res.status).toBe(200);
    const body = res.json();
    expect(body.members.map((m: { role: string; region: string }) => `${m.role}:${m.region}`)).toEqual([
      'primary:us-south',
      'duplicate:us-east',
      'duplicate:eu-de',
    ]);
    expect(body.members[0]).toMatchObject({
      instanceId: group.members[0]!.instanceId,
      keyId: group.members[0]!.keyId,
      keyRingId: null,
      endpoints: { public: s.stack.kp.regions['us-south']!.url, private: null },
    });
    expect((await http.request('GET', `/v1/groups/${group.id}/endpoints`)).status).toBe(401);
  });

  it('fromApi builds a keyring that fails over and keeps its descriptor while the API is down', async () => {
    const ring = await GroupKeyring.fromApi({
      apiUrl: server.url,
      groupId: group.id,
      authenticator: auditorAuth(),
      refreshIntervalMs: 0,
    });
    const w = await ring.wrap();
    s.stack.kp.setFaults({ region: 'us-south' }, { outage: 'refuse' });
    try {
      const u = await ring.unwrap(w.ciphertext);
      expect(u.plaintext.equals(w.plaintext)).toBe(true);
      expect(u.member.role).toBe('duplicate');
    } finally {
      s.stack.kp.clearFaults();
    }
    // the API goes away: refresh fails, the last known members stay
    const dead = await GroupKeyring.fromApi({
      apiUrl: 'http://127.0.0.1:9',
      groupId: group.id,
      authenticator: auditorAuth(),
      fallbackMembers: ring.members(),
      refreshIntervalMs: 0,
    });
    expect(await ring.refresh()).toBe(true);
    expect((await dead.unwrap(w.ciphertext)).plaintext.equals(w.plaintext)).toBe(true);
    await expect(
      GroupKeyring.fromApi({ apiUrl: 'http://127.0.0.1:9', groupId: group.id, authenticator: auditorAuth() }),
    ).rejects.toMatchObject({ code: 'DESCRIPTOR_UNAVAILABLE' });
    ring.close();
  });
});

describe('examples/app', () => {
  it('keeps wrapping and unwrapping with no failure while the primary region is down', async () => {
    const lines: string[] = [];
    const outage = setTimeout(() => s.stack.kp.setFaults({ region: 'us-south' }, { outage: 'refuse' }), 700);
    const restore = setTimeout(() => s.stack.kp.clearFaults(), 2_300);
    try {
      const stats = await runApp({
        apiUrl: server.url,
        iamUrl: s.stack.iam.url,
        apiKey: s.stack.iam.apiKeyFor('auditor'),
        groupId: group.id,
        durationMs: 3_000,
        intervalMs: 20,
        log: (l) => lines.push(l),
      });
      expect(stats.errors).toEqual([]);
      expect(stats.failures).toBe(0);
      expect(stats.byRegion['us-south']).toBeGreaterThan(0);
      expect(stats.byRegion['us-east']).toBeGreaterThan(0);
      expect(lines.some((l) => /breaker us-south: closed → open/.test(l))).toBe(true);
    } finally {
      clearTimeout(outage);
      clearTimeout(restore);
      s.stack.kp.clearFaults();
    }
  });
});

describe('DR drills', () => {
  let first: DrillRecord;

  it('POST /drills (operator) proves every duplicate can take over and records a signed drill', async () => {
    expect((await http.request('POST', `/v1/groups/${group.id}/drills`, { token: auditor })).status).toBe(403);
    const res = await http.request('POST', `/v1/groups/${group.id}/drills`, {
      token: operator,
      body: JSON.stringify({ reason: 'quarterly DR test' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(201);
    first = res.json();
    expect(first).toMatchObject({ kind: 'drill', seq: 1, result: 'passed', problems: [], generationsChecked: [1, 2] });
    expect(first.lineageHead?.generation).toBe(2);
    expect(first.switchover.switchoverMs).toBeGreaterThanOrEqual(0);
    expect(first.switchover.answeredBy).not.toBe(group.members[0]!.crn);
    for (const m of first.members) {
      expect(m.health).toBe('ok');
      expect(m.canaries.map((c) => c.ok)).toEqual([true, true]);
      expect(m.keyState).toBe('active');
      expect(m.earliestRotationAtMs).toBe((m.lastRotateAtMs ?? 0) + 60_000);
      if (m.role === 'duplicate') expect(m.switchover).toMatchObject({ ok: true });
      else expect(m.switchover).toBeNull();
    }
    const ep = (await http.request('GET', `/v1/groups/${group.id}/endpoints`, { token: auditor })).json();
    expect(ep.members[1].health).toMatchObject({ status: 'ok', source: 'drill', drillSeq: 1 });
  });

  it('a drill with a duplicate region down fails, marks the group drill-failed and notifies; the next one heals it', async () => {
    s.stack.kp.setFaults({ region: 'eu-de' }, { outage: '503' });
    let failed: DrillRecord;
    try {
      failed = await drills.run(group.id, { trigger: { kind: 'operator', by: 'test' } });
    } finally {
      s.stack.kp.clearFaults();
    }
    expect(failed.result).toBe('failed');
    expect(failed.problems.join('\n')).toMatch(/duplicate eu-de/);
    expect(failed.members.find((m) => m.region === 'eu-de')?.health).toBe('unreachable');
    const g = (await s.stores.groups.get(group.id)).value;
    expect(g).toMatchObject({ status: 'drill-failed', lastDrill: { seq: 2, result: 'failed' } });
    expect(g.statusReason).toMatch(/DR drill 2 failed/);
    expect(s.notes).toContainEqual(
      expect.objectContaining({ type: 'com.ibm.lockstep.drill.failed', subject: group.id }),
    );
    const healed = await drills.run(group.id, { trigger: { kind: 'operator', by: 'test' } });
    expect(healed.result).toBe('passed');
    expect((await s.stores.groups.get(group.id)).value.status).toBe('healthy');
  });

  it('the scheduler runs a due drill schedule, and not before it is due', async () => {
    await s.stores.groups.mutate(group.id, (g) => ({ ...g, drillSchedule: { intervalMs: 3_600_000 } }));
    const deadlineAtMs = s.clock.nowMs() + 60_000;
    expect(await drills.runDue({ deadlineAtMs, holder: 'tick-1' })).toEqual({ ran: 0, failed: 0 });
    s.clock.advance(3_600_000);
    expect(await drills.runDue({ deadlineAtMs: s.clock.nowMs() + 60_000, holder: 'tick-2' })).toEqual({
      ran: 1,
      failed: 0,
    });
    expect((await s.stores.drills.head(group.id))?.trigger).toMatchObject({ kind: 'schedule' });
  });

  it('GET /drills, the export and the proof carry the drill chain; it verifies and tampering is located', async () => {
    const page = (await http.request('GET', `/v1/groups/${group.id}/drills?limit=2`, { token: auditor })).json();
    expect(page.items.map((d: DrillRecord) => d.seq)).toEqual([4, 3]);
    expect(page.checkpoint).toMatchObject({ chain: 'drills', seq: 4 });
    expect(page.next).toBeDefined();
    const rest = (
      await http.request(
        'GET',
        `/v1/groups/${group.id}/drills?limit=2&cursor=${encodeURIComponent(page.next.cursor)}`,
        {
          token: auditor,
        },
      )
    ).json();
    expect(rest.items.map((d: DrillRecord) => d.seq)).toEqual([2, 1]);

    const jsonl = (await http.request('GET', `/v1/export?format=jsonl&groupId=${group.id}`, { token: auditor })).text;
    const records = recordsFromJsonl(jsonl);
    const drillRecords = drillsFromJsonl(jsonl);
    expect(records.map((r) => r.generation)).toEqual([1, 2]);
    expect(drillRecords.map((d) => d.seq)).toEqual([1, 2, 3, 4]);
    const proof = (await http.request('GET', `/v1/groups/${group.id}/proof`, { token: auditor })).json();
    expect(proof.chain.drills).toMatchObject({ ok: true, length: 4, signedThroughSeq: 4, unsigned: 0 });
    const keys = checkpointKeyring([publicPem]);
    const cp = page.checkpoint as DrillCheckpoint;
    const verified = verifyChain(records, proof.checkpoint ? [proof.checkpoint] : [], keys, {
      groupId: group.id,
      drills: { records: drillRecords, checkpoints: [cp] },
    });
    expect(verified.drills).toMatchObject({ ok: true, headSeq: 4 });
    // an operator turns the failed drill into a pass: located at drill 2, and the checkpoint no longer matches
    const forged = drillRecords.map((d) => (d.seq === 2 ? { ...d, result: 'passed' as const, problems: [] } : d));
    const broken = verifyChain(records, [], keys, {
      groupId: group.id,
      drills: { records: forged, checkpoints: [cp] },
    });
    expect(broken.ok).toBe(false);
    expect(broken.drills?.breaks[0]).toMatchObject({ seq: 2, kind: 'hash-mismatch' });
    // deleting the latest drill is caught by the signed checkpoint
    const cut = verifyChain(records, [], keys, {
      groupId: group.id,
      drills: { records: drillRecords.slice(0, 3), checkpoints: [cp] },
    });
    expect(cut.drills?.checkpoints[0]?.status).toBe('beyond-chain');
  });

  it('the timeline page shows the latest drill and the drill chain', async () => {
    const page = await groupPage(http, auditor, group.id);
    expect(page.status).toBe(200);
    const panel = /data-testid="drill-panel">([\s\S]*?)<\/div>/.exec(page.text)?.[1] ?? '';
    expect(panel).toContain('data-testid="drill-result">passed');
    expect(panel).toMatch(/Drill 4 at/);
    expect(panel).toMatch(/Drill chain: 4 record\(s\)/);
  });

  it('the CLI runs a drill (exit 0), shows drills in history and verifies the drill chain with audit verify', async () => {
    const cli = cliAgainst(s, () => server.url, 'operator');
    const run = await cli('--json', 'drill', group.id, '--reason', 'cli');
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ ok: true, drills: [{ seq: 5, result: 'passed', trigger: { reason: 'cli' } }] });
    const history = await cli('--json', 'history', group.id);
    expect(history.json().drills.map((d: DrillRecord) => d.seq)).toEqual([5, 4, 3, 2, 1]);
    const audit = await cli('--json', 'audit', 'verify', group.id);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.json()).toMatchObject({
      ok: true,
      groups: [{ groupId: group.id, records: 2, drills: 5, breaks: [] }],
    });
    expect((await cli('drill')).code).toBe(2);
  });
});
