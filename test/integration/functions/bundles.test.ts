/**
 * The bundled functions (esbuild CJS, exactly what `serverless package` ships) invoked as `main(params)` through the
 * local Code Engine runner, against the local stack: IAM + Key Protect emulator (which posts its Activity Tracker
 * events to the events function) + the embedded store. Covers authentication, replay, dedupe, own vs foreign
 * actions end to end, a cron tick, the API, and CONFIG_INVALID.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFunction } from '../../../plugins/ibm-code-engine/build.js';
import { cryptoRandom, systemClock } from '../../../src/app/index.js';
import { signBody, TOKEN_HEADER } from '../../../src/codeengine/index.js';
import type { Group, GroupId, InstanceId, RegionId } from '../../../src/core/index.js';
import { KeyMaterial } from '../../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../../src/keyprotect/index.js';
import type { EmbeddedCouch } from '../../../src/local/couch/index.js';
import { startEmbeddedCouch } from '../../../src/local/couch/index.js';
import type { FunctionRunner } from '../../../src/local/function-runner/index.js';
import { loadBundle, startFunctionRunner } from '../../../src/local/function-runner/index.js';
import type { EmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import type { CloudantStores } from '../../../src/store/index.js';
import { createCloudantStores } from '../../../src/store/index.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';

const repo = path.resolve(__dirname, '../../..');
const REGIONS = ['us-south', 'us-east'];
const HMAC_SECRET = randomBytes(24).toString('hex');
const EVENTS_TOKEN = randomBytes(24).toString('hex');
const CRON_SECRET = randomBytes(24).toString('hex');

let out: string;
let stack: EmulatorStack;
let couch: EmbeddedCouch;
let stores: CloudantStores;
let runner: FunctionRunner;
let group: Group;
const saved = { ...process.env };

function kpClient(identity: string) {
  return createKeyProtectClient({
    endpoints: Object.fromEntries(REGIONS.map((r) => [r, stack.kp.regions[r]!.url])),
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: stack.iam.apiKeyFor(identity),
      iamUrl: stack.iam.url,
    }),
    random: cryptoRandom,
    clock: systemClock,
  });
}

async function postEvents(body: string, headers: Record<string, string>) {
  const r = await fetch(runner.url('events'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const unmanaged = (id: string) =>
  JSON.stringify({
    id,
    action: 'kms.secrets.rotate',
    eventTime: new Date().toISOString(),
    outcome: 'success',
    initiator: { id: 'iam-ServiceId-x' },
    target: {
      id: `crn:v1:bluemix:public:kms:us-south:a/acc:${'1'.repeat(8)}-1111-4111-8111-111111111111:key:${'2'.repeat(8)}-2222-4222-8222-222222222222`,
    },
  });

beforeAll(async () => {
  out = mkdtempSync(path.join(tmpdir(), 'lockstep-bundles-'));
  const built = await Promise.all(
    ['rotate', 'events', 'api'].map((fn) =>
      bundleFunction({ serviceDir: repo, outDir: out, fnKey: fn, handler: `functions/${fn}.main` }),
    ),
  );
  stack = await startEmulatorStack({ regions: REGIONS, instancesPerRegion: 1, tokenKeyPairs: testTokenKeyPairs() });
  couch = await startEmbeddedCouch();
  const dbPrefix = `b${randomBytes(3).toString('hex')}-`;
  stores = await createCloudantStores({ ...couch.storeOptions, dbPrefix });
  await stores.ensureSetup();
  const lockstep = stack.iam.identities.find((i) => i.name === 'lockstep')!;
  const operator = stack.iam.identities.find((i) => i.name === 'operator')!;
  Object.assign(process.env, {
    CLOUDANT_URL: couch.url,
    CLOUDANT_USERNAME: couch.credentials.username,
    CLOUDANT_PASSWORD: couch.credentials.password,
    CLOUDANT_DB_PREFIX: dbPrefix,
    IAM_URL: stack.iam.url,
    LOCKSTEP_API_KEY: lockstep.apiKey,
    LOCKSTEP_KP_ENDPOINTS: JSON.stringify(Object.fromEntries(REGIONS.map((r) => [r, stack.kp.regions[r]!.url]))),
    LOCKSTEP_EVENTS_TOKENS: `kp-emulator:${EVENTS_TOKEN}`,
    LOCKSTEP_EVENTS_HMAC_SECRETS: `test:${HMAC_SECRET}`,
    LOCKSTEP_CRON_SECRETS: `cron:${CRON_SECRET}`,
    LOCKSTEP_OWN_IAM_IDS: lockstep.iamId,
    LOCKSTEP_API_ROLES: `${operator.iamId}=operator`,
    LOCKSTEP_MAX_EXECUTION_SECONDS: '60',
    LOCKSTEP_LOG_LEVEL: 'error',
    LOCKSTEP_ROTATION_MIN_INTERVAL_MS: '1000',
  });
  const mains = Object.fromEntries(
    await Promise.all(built.map(async (b) => [b.function, await loadBundle(b.outFile)] as const)),
  );
  runner = await startFunctionRunner({
    startCron: false,
    functions: [
      { name: 'events', main: mains.events! },
      {
        name: 'rotate',
        main: mains.rotate!,
        schedules: [{ cron: '*/5 * * * *', data: { source: 'cron', cronSecret: CRON_SECRET } }],
      },
      { name: 'api', main: mains.api! },
    ],
  });
  stack.kp.setEventWebhook(runner.url('events'), { [TOKEN_HEADER]: EVENTS_TOKEN });
  // The group is written directly (keys created through the real client), so this test needs only the ports.
  stack.kp.setRules({ rotationMinIntervalMs: 1_000 });
  const kp = kpClient('lockstep');
  const material = KeyMaterial.fromBytes(randomBytes(32));
  const instance = (r: string) => stack.kp.regions[r]!.instances[0]! as InstanceId;
  const primary = await kp.createImportedKey({
    region: 'us-south' as RegionId,
    instanceId: instance('us-south'),
    name: 'p',
    material,
  });
  const dup = await kp.createImportedKey({
    region: 'us-east' as RegionId,
    instanceId: instance('us-east'),
    name: 'd',
    material,
  });
  material.zero();
  const escrow = await kp.createGeneratedRootKey({
    region: 'us-south' as RegionId,
    instanceId: instance('us-south'),
    name: 'escrow',
  });
  const nowMs = Date.now();
  const member = (role: 'primary' | 'duplicate', region: string, k: typeof primary) => ({
    role,
    region: region as RegionId,
    instanceId: instance(region),
    keyId: k.id,
    crn: k.crn,
  });
  group = (
    await stores.groups.create({
      id: 'bundles' as GroupId,
      name: 'bundles',
      members: [member('primary', 'us-south', primary), member('duplicate', 'us-east', dup)],
      escrow: { region: 'us-south' as RegionId, instanceId: instance('us-south'), keyId: escrow.id, crn: escrow.crn },
      schedule: { intervalMs: 90 * 24 * 3_600_000 },
      status: 'healthy',
      currentGeneration: 1,
      lastRotatedAtMs: nowMs,
      nextDueAtMs: nowMs + 90 * 24 * 3_600_000,
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
    })
  ).value;
  await stack.kp.flushEvents();
}, 120_000);

afterAll(async () => {
  process.env = saved;
  await runner?.close();
  await stack?.close();
  await couch?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

describe('events function (bundled)', () => {
  it('answers 401 without credentials, with a wrong token, or with a stale signature', async () => {
    const body = unmanaged('ev-auth-1');
    expect((await postEvents(body, {})).status).toBe(401);
    expect((await postEvents(body, { [TOKEN_HEADER]: 'nope' })).status).toBe(401);
    const stale = signBody(HMAC_SECRET, body, Math.floor(Date.now() / 1000) - 3600);
    expect((await postEvents(body, stale)).status).toBe(401);
  });

  it('accepts a signed request, acknowledges events on unmanaged keys, and deduplicates a replay', async () => {
    const body = unmanaged('ev-replay-1');
    const headers = signBody(HMAC_SECRET, body, Math.floor(Date.now() / 1000));
    const first = await postEvents(body, headers);
    expect(first).toMatchObject({ status: 200, body: { received: 1, ignored: 1 } });
    const replay = await postEvents(body, headers);
    expect(replay).toMatchObject({ status: 200, body: { received: 1, duplicates: 1, ignored: 0 } });
  });

  it('rejects a body that is not an Activity Tracker payload with a clear 400', async () => {
    const body = JSON.stringify({ hello: 'world' });
    const r = await postEvents(body, signBody(HMAC_SECRET, body, Math.floor(Date.now() / 1000)));
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toContain('Expected an Activity Tracker');
  });

  it('marks a foreign rotation (emulator event, another identity): group diverged and a heal run scheduled', async () => {
    // Arrange: an operator rotates the duplicate out of band (the emulator's 1 h rule is shortened to 1 s)
    await new Promise((r) => setTimeout(r, 1_100));
    const dup = group.members.find((m) => m.role === 'duplicate')!;
    const material = KeyMaterial.fromBytes(randomBytes(32));
    await kpClient('operator').rotateWithMaterial(dup, material);
    material.zero();
    // Act: the emulator delivers the event to the events function
    await stack.kp.flushEvents();
    // Assert
    const after = (await stores.groups.get(group.id)).value;
    expect(after.status).toBe('diverged');
    expect(after.statusReason).toContain('kms.secrets.rotate');
    const heal = (await stores.runs.get(after.activeRunId!)).value as unknown as { trigger: { kind: string } };
    expect(heal.trigger.kind).toBe('event');
  });
});

describe('rotate function (bundled)', () => {
  it('heals on a cron tick; lockstep’s own rotations (emulator events) become evidence on the heal run', async () => {
    const healRunId = (await stores.groups.get(group.id)).value.activeRunId!;
    await new Promise((r) => setTimeout(r, 1_100)); // past the shortened 1 h rule
    const r = await runner.fireCron('rotate');
    expect(r.statusCode).toBe(200);
    // a ping is answered with a status only (the summary is logged)
    expect(JSON.parse(r.body.toString())).toEqual({ ok: true, tick: expect.stringMatching(/^cron:[0-9a-f-]{36}$/) });
    // On a loaded machine one tick may leave the run waiting (a busy lease, its deadline margin): later ticks finish
    // it, as on Code Engine. Bounded: at most 10 more pings.
    for (let i = 0; i < 10 && (await stores.runs.get(healRunId)).value.status !== 'completed'; i++) {
      await new Promise((res) => setTimeout(res, 300));
      expect((await runner.fireCron('rotate')).statusCode).toBe(200);
    }
    expect((await stores.runs.get(healRunId)).value.status).toBe('completed');
    await stack.kp.flushEvents();
    const run = (await stores.runs.get(healRunId)).value as unknown as {
      members: Array<{ crn: string; evidence: Array<{ action: string; initiator: string }> }>;
    };
    const lockstepId = stack.iam.identities.find((i) => i.name === 'lockstep')!.iamId;
    for (const m of run.members) {
      expect(m.evidence).toContainEqual(
        expect.objectContaining({ action: 'kms.secrets.rotate', initiator: lockstepId }),
      );
    }
  });

  it('refuses an HTTP call without an IAM token', async () => {
    const r = await fetch(runner.url('rotate'), { method: 'POST' });
    expect(r.status).toBe(401);
  });

  it('refuses a ping header without the cron secret (anyone can send the header)', async () => {
    const r = await fetch(runner.url('rotate'), {
      method: 'POST',
      headers: { 'ce-type': 'dev.knative.sources.ping', 'ce-id': 'spoof', 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'cron' }),
    });
    expect(r.status).toBe(401);
  });
});

describe('api function (bundled)', () => {
  it('lists groups for an operator token', async () => {
    const token = await stack.iam.issueToken('operator');
    const r = await fetch(`${runner.url('api')}/v1/groups`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('"bundles"');
  });
});

describe('configuration errors', () => {
  it('answers a generic 500 and logs every missing variable at once', async () => {
    const run = promisify(execFile);
    // an authenticated ping (the secret is configured, nothing else is)
    const ping = {
      __ce_headers: { 'Ce-Type': 'dev.knative.sources.ping', 'Ce-Id': 'p1', 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ cronSecret: CRON_SECRET })).toString('base64'),
    };
    const script = `require(${JSON.stringify(path.join(out, 'rotate/main.js'))}).main(${JSON.stringify(ping)}).then(r=>console.log(JSON.stringify(r)))`;
    const { stdout, stderr } = await run(process.execPath, ['-e', script], {
      env: { PATH: process.env.PATH ?? '', LOCKSTEP_CRON_SECRETS: `cron:${CRON_SECRET}` },
    });
    const res = JSON.parse(stdout) as { statusCode: number; body: { error: { code: string; message: string } } };
    expect(res.statusCode).toBe(500);
    expect(res.body.error.code).toBe('CONFIG_INVALID');
    expect(res.body.error.message).not.toContain('CLOUDANT_URL');
    expect(stderr).toContain('LOCKSTEP_TRUSTED_PROFILE or LOCKSTEP_API_KEY is not set');
    expect(stderr).toContain('CLOUDANT_URL is not set');
  });
});
