/**
 * The operator routes with the real rotation service: Key Protect emulator + local IAM, the embedded store through
 * the Cloudant adapter, the Key Protect client over HTTP. The group is seeded from keys created in the emulator with
 * one material (generation 1 and its lineage record built with src/lineage). POST /v1/groups/{id}/rotations claims a
 * run through the service; GET /v1/runs/{id} shows it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type HttpServerHandle, serveHttp } from '../../../src/api/index.js';
import {
  createRotationService,
  cryptoRandom,
  type KeyInfo,
  type KeyProtectPort,
  type RotationService,
} from '../../../src/app/index.js';
import {
  type Clock,
  fingerprintOf,
  type Group,
  type GroupId,
  type InstanceId,
  KeyMaterial,
  type RegionId,
  type RunId,
  silentLogger,
} from '../../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../../src/keyprotect/index.js';
import { buildLineageRecord } from '../../../src/lineage/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../../src/local/couch/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { type CloudantStores, createCloudantStores } from '../../../src/store/index.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';
import { createHttpClient } from './support.js';

const REGIONS = ['us-south', 'us-east'] as RegionId[];
let stack: EmulatorStack;
let couch: EmbeddedCouch;
let stores: CloudantStores;
let kp: KeyProtectPort;
let service: RotationService;
let server: HttpServerHandle;
let http: Awaited<ReturnType<typeof createHttpClient>>;
let operator: string;
let auditor: string;
let operatorIamId: string;

/** Creates one imported key per region from one material and stores the group with its generation-1 record. */
async function seedGroup(id: string, clock: Clock): Promise<Group> {
  const material = KeyMaterial.fromBytes(randomBytes(32));
  const instance = (r: RegionId) => stack.kp.regions[r]!.instances[0] as InstanceId;
  const keys: KeyInfo[] = [];
  for (const region of REGIONS) {
    keys.push(await kp.createImportedKey({ region, instanceId: instance(region), name: `${id}-${region}`, material }));
  }
  const escrow = await kp.createGeneratedRootKey({
    region: REGIONS[0]!,
    instanceId: instance(REGIONS[0]!),
    name: `${id}-escrow`,
  });
  const fingerprint = fingerprintOf(material);
  material.zero();
  const nowMs = clock.nowMs();
  const members = keys.map((k, i) => ({
    role: i === 0 ? ('primary' as const) : ('duplicate' as const),
    region: REGIONS[i]!,
    instanceId: instance(REGIONS[i]!),
    keyId: k.id,
    crn: k.crn,
  }));
  const group: Group = {
    id: id as GroupId,
    name: id,
    members,
    escrow: { region: REGIONS[0]!, instanceId: instance(REGIONS[0]!), keyId: escrow.id, crn: escrow.crn },
    schedule: { intervalMs: 30 * 24 * 3_600_000 },
    status: 'healthy',
    currentGeneration: 1,
    lastRotatedAtMs: nowMs,
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
  };
  await stores.groups.create(group);
  await stores.lineage.append(
    buildLineageRecord({
      groupId: group.id,
      generation: 1,
      fingerprint,
      trigger: { kind: 'operator', by: 'test-seed' },
      runId: `run-${id}-seed-0001` as RunId,
      startedAtMs: nowMs,
      finishedAtMs: nowMs,
      members: members.map((m, i) => ({
        ...m,
        keyVersionId: keys[i]!.currentVersionId,
        rotatedAtMs: keys[i]!.creationAtMs,
        evidence: [],
      })),
      verification: [],
      status: 'complete',
    }),
  );
  return group;
}

beforeAll(async () => {
  [stack, couch] = await Promise.all([
    startEmulatorStack({ regions: REGIONS, tokenKeyPairs: testTokenKeyPairs() }),
    startEmbeddedCouch(),
  ]);
  stores = await createCloudantStores({ ...couch.storeOptions });
  await stores.ensureSetup();
  // one clock for lockstep and the emulator
  const clock: Clock = { nowMs: () => stack.kp.nowMs() };
  kp = createKeyProtectClient({
    endpoints: Object.fromEntries(REGIONS.map((r) => [r, stack.kp.regions[r]!.url])),
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: stack.iam.apiKeyFor('lockstep'),
      iamUrl: stack.iam.url,
    }),
    random: cryptoRandom,
    clock,
  });
  service = createRotationService({ kp, stores, clock, random: cryptoRandom, logger: silentLogger });
  await seedGroup('orders', clock);
  const iamIdOf = (name: string) => stack.iam.identities.find((i) => i.name === name)!.iamId;
  operatorIamId = iamIdOf('operator');
  const api = createApi({
    stores,
    service,
    auth: {
      jwksUrl: stack.iam.jwksUrl,
      issuer: stack.iam.issuer,
      roles: { [operatorIamId]: 'operator', [iamIdOf('auditor')]: 'auditor' },
    },
    checkpointPublicKeys: {},
    clock,
    logger: silentLogger,
  });
  server = await serveHttp(api);
  http = await createHttpClient(server.url);
  operator = await stack.iam.issueToken('operator');
  auditor = await stack.iam.issueToken('auditor');
});

afterAll(async () => {
  await server?.close();
  await couch?.close();
  await stack?.close();
});

describe('POST /v1/groups/{groupId}/rotations with the real service', () => {
  it('refuses auditors, and unknown groups with 404', async () => {
    expect((await http.request('POST', '/v1/groups/orders/rotations', { token: auditor })).status).toBe(403);
    expect((await http.request('POST', '/v1/groups/nobody/rotations', { token: operator })).status).toBe(404);
  });

  it('claims a run (202 + Location), shows it to operators without escrow, and refuses a second one with 409', async () => {
    const accepted = await http.request('POST', '/v1/groups/orders/rotations', {
      token: operator,
      body: JSON.stringify({ reason: 'quarterly rotation' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(accepted.status).toBe(202);
    const { runId } = accepted.json();
    expect(accepted.headers.location).toBe(`/v1/runs/${runId}`);

    const run = await http.request('GET', `/v1/runs/${runId}`, { token: operator });
    expect(run.status).toBe(200);
    expect(run.json()).toMatchObject({
      id: runId,
      groupId: 'orders',
      generation: 2,
      status: 'pending',
      trigger: { kind: 'operator', by: operatorIamId, reason: 'quarterly rotation' },
    });
    expect(run.json().escrow).toBeUndefined();
    const audited = await http.request('GET', `/v1/runs/${runId}`, { token: auditor });
    expect(audited.status).toBe(200);
    expect(audited.json()).toEqual(run.json());

    const again = await http.request('POST', '/v1/groups/orders/rotations', { token: operator });
    expect(again.status).toBe(409);
    expect(again.json().error).toMatchObject({ code: 'RUN_IN_PROGRESS', details: { runId } });
  });

  it('shows the new generation, its versions and an intact chain once the run has been advanced', async () => {
    const runId = (await stores.groups.get('orders' as GroupId)).value.activeRunId as string;
    const done = await service.advanceRun(runId, { deadlineAtMs: stack.kp.nowMs() + 120_000, holder: 'api-test' });
    expect(done.status).toBe('completed');
    expect((await http.request('GET', `/v1/runs/${runId}`, { token: operator })).json().status).toBe('completed');
    const gens = (await http.request('GET', '/v1/groups/orders/generations', { token: auditor })).json();
    expect(gens.items.map((r: { generation: number }) => r.generation)).toEqual([2, 1]);
    const g2 = gens.items[0];
    expect(g2.trigger).toMatchObject({ kind: 'operator', reason: 'quarterly rotation' });
    const primary = g2.members.find((m: { role: string }) => m.role === 'primary');
    const lookup = (await http.request('GET', `/v1/versions/${primary.keyVersionId}`, { token: auditor })).json();
    expect(lookup).toMatchObject({ groupId: 'orders', generation: 2, member: { role: 'primary' } });
    const proof = (await http.request('GET', '/v1/groups/orders/proof', { token: auditor })).json();
    expect(proof.chain).toMatchObject({ ok: true, length: 2, headGeneration: 2 });
  });

  it('stops a claimed run (200, what it left) and retries it (202): the real service behind the documented shapes', async () => {
    await seedGroup('ledger', { nowMs: () => stack.kp.nowMs() });
    stack.kp.advanceClock(3_700_000); // past the 1 h rule of the seeded keys
    const { runId } = (await http.request('POST', '/v1/groups/ledger/rotations', { token: operator })).json();
    expect((await http.request('POST', `/v1/runs/${runId}/stop`, { token: auditor })).status).toBe(403);
    const stopped = await http.request('POST', `/v1/runs/${runId}/stop`, {
      token: operator,
      body: JSON.stringify({ reason: 'change freeze' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(stopped.status).toBe(200);
    expect(stopped.json()).toMatchObject({
      action: 'stopped',
      status: 'stopped',
      groupStatus: 'healthy',
      stop: { by: `operator:${operatorIamId}`, reason: 'change freeze', staged: [] },
    });
    expect((await http.request('GET', `/v1/runs/${runId}`, { token: auditor })).json().status).toBe('stopped');
    const again = await http.request('POST', `/v1/runs/${runId}/stop`, { token: operator });
    expect(again.json().error.code).toBe('RUN_STATE_INVALID');
    const retried = await http.request('POST', `/v1/runs/${runId}/retry`, { token: operator });
    expect(retried.status).toBe(202);
    expect(retried.headers.location).toBe(`/v1/runs/${runId}`);
    expect(retried.json()).toMatchObject({ action: 'retried', groupStatus: 'rotating' });
    const done = await service.advanceRun(runId, { deadlineAtMs: stack.kp.nowMs() + 120_000, holder: 'api-test' });
    expect(done.status).toBe('completed');
  });

  it('answers 404 RUN_NOT_FOUND for an unknown run', async () => {
    const res = await http.request('GET', '/v1/runs/run-00000000-unknown', { token: operator });
    expect(res.status).toBe(404);
    expect(res.json().error.code).toBe('RUN_NOT_FOUND');
  });
});
