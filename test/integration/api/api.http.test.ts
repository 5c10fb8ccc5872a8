/**
 * The API over real HTTP (serveHttp) against the real local IAM (tokens, JWKS) and the embedded CouchDB-compatible
 * server through the Cloudant adapter, with real lineage records and checkpoints. Every response is validated
 * against the served OpenAPI document.
 */
import { createHash, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createApi,
  type HttpServerHandle,
  recordsFromCsv,
  recordsFromJsonl,
  serveHttp,
} from '../../../src/api/index.js';
import type { Checkpoint, LineageRecord } from '../../../src/core/index.js';
import { silentLogger } from '../../../src/core/index.js';
import { canonicalJson } from '../../../src/lineage/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../../src/local/couch/index.js';
import { type LocalIam, startLocalIam } from '../../../src/local/iam/index.js';
import { type CloudantStores, createCloudantStores } from '../../../src/store/index.js';
import { makeChain, makeGroup, testCheckpointKeys } from '../../unit/api/support/fakes.js';
import { createHttpClient } from './support.js';

let iam: LocalIam;
let couch: EmbeddedCouch;
let stores: CloudantStores;
let server: HttpServerHandle;
let http: Awaited<ReturnType<typeof createHttpClient>>;
const tokens: Record<'operator' | 'auditor' | 'outsider', string> = { operator: '', auditor: '', outsider: '' };
const keys = testCheckpointKeys(3);
let payments: LineageRecord[];
let ledger: LineageRecord[];
let checkpoint: Checkpoint;

beforeAll(async () => {
  [iam, couch] = await Promise.all([startLocalIam(), startEmbeddedCouch()]);
  stores = await createCloudantStores({ ...couch.storeOptions });
  await stores.ensureSetup();
  const paymentsGroup = makeGroup('payments', { name: 'Payments DEKs', generation: 6 });
  const ledgerGroup = makeGroup('ledger', { generation: 2 });
  const emptyGroup = makeGroup('empty');
  for (const g of [paymentsGroup, ledgerGroup, emptyGroup]) await stores.groups.create(g);
  payments = makeChain(paymentsGroup, 6, {
    statuses: ['complete', 'complete', 'degraded', 'complete', 'diverged', 'complete'],
  });
  ledger = makeChain(ledgerGroup, 2);
  for (const r of [...payments, ...ledger]) await stores.lineage.append(r);
  checkpoint = keys.sign(payments[4]!, Date.now());
  await stores.checkpoints.put(checkpoint);
  const roles = Object.fromEntries(
    iam.identities.filter((i) => i.name === 'operator' || i.name === 'auditor').map((i) => [i.iamId, i.name]),
  ) as Record<string, 'operator' | 'auditor'>;
  const api = createApi({
    stores,
    auth: { jwksUrl: iam.jwksUrl, issuer: iam.issuer, roles, iamTokenUrl: `${iam.url}/identity/token` },
    checkpointPublicKeys: { main: keys.pem },
    clock: { nowMs: () => Date.now() },
    logger: silentLogger,
  });
  server = await serveHttp(api, { port: 0 });
  http = await createHttpClient(server.url);
  for (const name of ['operator', 'auditor', 'outsider'] as const) tokens[name] = await iam.issueToken(name);
});

afterAll(async () => {
  await server?.close();
  await couch?.close();
  await iam?.close();
});

const get = (path: string, token?: string) => http.request('GET', path, { token });

describe('auth against the local IAM', () => {
  it('serves the OpenAPI document without a token', async () => {
    const res = await http.request('GET', '/openapi.json');
    expect(res.json()).toEqual(http.doc);
  });

  it('answers 401 without a token, with a bad one and with an expired one', async () => {
    const none = await get('/v1/groups');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="lockstep"');
    expect((await get('/v1/groups', 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln')).status).toBe(401);
    const expired = await iam.issueToken('auditor', { expiresInSeconds: -300 });
    const res = await get('/v1/groups', expired);
    expect(res.status).toBe(401);
    expect(res.json().error.message).toMatch(/expired/);
  });

  it('answers 403 for an identity without a lockstep role', async () => {
    expect((await get('/v1/groups', tokens.outsider)).status).toBe(403);
  });

  it('accepts a token obtained from an API key at the IAM token endpoint', async () => {
    const res = await fetch(`${iam.url}/identity/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
        apikey: iam.apiKeyFor('auditor'),
      }),
    });
    const { access_token } = (await res.json()) as { access_token: string };
    expect((await get('/v1/groups', access_token)).status).toBe(200);
  });
});

describe('reads (auditor and operator)', () => {
  it('lists groups with key-range paging', async () => {
    const ids: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await get(
        `/v1/groups?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        tokens.auditor,
      );
      expect(res.status).toBe(200);
      ids.push(...res.json().items.map((g: { id: string }) => g.id));
      cursor = res.json().next?.cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(ids.sort()).toEqual(['empty', 'ledger', 'payments']);
    expect(pages).toBe(2);
  });

  it('reads a group; 404 for an unknown one; 400 for a malformed id', async () => {
    expect((await get('/v1/groups/payments', tokens.operator)).json()).toMatchObject({
      id: 'payments',
      name: 'Payments DEKs',
    });
    expect((await get('/v1/groups/unknown', tokens.auditor)).json().error.code).toBe('GROUP_NOT_FOUND');
    expect((await get('/v1/groups/UPPER', tokens.auditor)).status).toBe(400);
  });

  it('pages generations newest first through the store cursor, and filters by time', async () => {
    const gens: number[] = [];
    let cursor: string | undefined;
    do {
      const res = await get(
        `/v1/groups/payments/generations?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        tokens.auditor,
      );
      gens.push(...res.json().items.map((r: LineageRecord) => r.generation));
      cursor = res.json().next?.cursor;
    } while (cursor);
    expect(gens).toEqual([6, 5, 4, 3, 2, 1]);
    const since = new Date(payments[2]!.finishedAtMs).toISOString();
    const filtered = await get(
      `/v1/groups/payments/generations?since=${since}&until=${payments[3]!.finishedAtMs}`,
      tokens.auditor,
    );
    expect(filtered.json().items.map((r: LineageRecord) => r.generation)).toEqual([4, 3]);
  });

  it('pages generations through an index, not a scan', async () => {
    const plan = (await stores.explainLineageList(payments[0]!.groupId)) as {
      index?: { ddoc?: string | null; type?: string };
    };
    expect(plan.index?.type).toBe('json');
    expect(plan.index?.ddoc).toBeTruthy();
  });

  it('refuses a tampered cursor with 400 INVALID_CURSOR', async () => {
    const first = await get('/v1/groups/payments/generations?limit=1', tokens.auditor);
    const next: string = first.json().next.cursor;
    const tampered = `${next.slice(0, -1)}${next.endsWith('A') ? 'B' : 'A'}`;
    const res = await get(`/v1/groups/payments/generations?cursor=${encodeURIComponent(tampered)}`, tokens.auditor);
    expect(res.status).toBe(400);
    expect(res.json().error.code).toBe('INVALID_CURSOR');
    const elsewhere = await get(`/v1/groups/ledger/generations?cursor=${encodeURIComponent(next)}`, tokens.auditor);
    expect(elsewhere.json().error.code).toBe('INVALID_CURSOR');
  });

  it('returns one generation exactly as stored; 404 and 400 otherwise', async () => {
    const res = await get('/v1/groups/payments/generations/3', tokens.auditor);
    expect(res.json()).toEqual(JSON.parse(JSON.stringify(payments[2])));
    expect((await get('/v1/groups/payments/generations/7', tokens.auditor)).json().error.code).toBe(
      'GENERATION_NOT_FOUND',
    );
    expect((await get('/v1/groups/payments/generations/zero', tokens.auditor)).status).toBe(400);
  });

  it('maps a member version id to its generation; 404 for an unknown version', async () => {
    const m = payments[3]!.members[1]!;
    const res = await get(`/v1/versions/${m.keyVersionId}`, tokens.auditor);
    expect(res.json()).toMatchObject({ groupId: 'payments', generation: 4, member: { region: m.region } });
    expect((await get('/v1/versions/11111111-2222-4333-8444-555555555555', tokens.auditor)).status).toBe(404);
  });

  it('serves a proof an auditor re-verifies offline from the export and the published key', async () => {
    const proof = (await get('/v1/groups/payments/proof', tokens.auditor)).json();
    expect(proof.chain).toMatchObject({ ok: true, length: 6, signedThroughGeneration: 5, breaks: [] });
    const records = recordsFromJsonl((await get('/v1/export?format=jsonl&groupId=payments', tokens.auditor)).text);
    // 1-2: recompute every hash and link, independently of lockstep's verifier
    let prev = '0'.repeat(64);
    for (const r of records) {
      const { hash, ...rest } = r;
      expect(createHash('sha256').update(canonicalJson(rest)).digest('hex')).toBe(hash);
      expect(r.prevHash).toBe(prev);
      prev = hash;
    }
    // 3-4: the checkpoint signature and the head it names
    const { signature, ...signed } = proof.checkpoint as Checkpoint;
    const key = proof.publicKeys.find((k: { keyId: string }) => k.keyId === signed.keyId);
    expect(verify(null, Buffer.from(canonicalJson(signed)), key.pem, Buffer.from(signature, 'base64'))).toBe(true);
    expect(records.find((r) => r.generation === signed.generation)?.hash).toBe(signed.headHash);
  });

  it('exports every group as JSONL and CSV that parse back into the same records', async () => {
    const jsonl = await get('/v1/export?format=jsonl', tokens.auditor);
    const csv = await get('/v1/export?format=csv', tokens.auditor);
    expect(csv.headers['content-disposition']).toMatch(
      /^attachment; filename="lockstep-lineage-\d{4}-\d{2}-\d{2}\.csv"$/,
    );
    const expected = JSON.parse(JSON.stringify([...ledger, ...payments]));
    expect(recordsFromJsonl(jsonl.text)).toEqual(expected);
    expect(recordsFromCsv(csv.text)).toEqual(expected);
    expect((await get('/v1/export?format=pdf', tokens.auditor)).status).toBe(400);
    expect((await get('/v1/export?format=csv&groupId=nobody', tokens.auditor)).status).toBe(404);
  });
});

describe('operator routes', () => {
  it('forbids auditors and reports a deployment without the rotation service', async () => {
    expect((await http.request('POST', '/v1/groups/payments/rotations', { token: tokens.auditor })).status).toBe(403);
    expect((await get('/v1/runs/run-aaaaaaaa-1', tokens.auditor)).json().error.code).toBe('RUN_NOT_FOUND');
    const res = await http.request('POST', '/v1/groups/payments/rotations', { token: tokens.operator });
    expect(res.status).toBe(500);
    expect(res.json().error.code).toBe('CONFIG_INVALID');
    expect((await get('/v1/runs/run-aaaaaaaa-1', tokens.operator)).json().error.code).toBe('RUN_NOT_FOUND');
  });
});

describe('transport', () => {
  it('refuses a body over the server limit with 413 before the handler runs', async () => {
    const res = await http.request('POST', '/v1/groups/payments/rotations', {
      token: tokens.operator,
      body: Buffer.alloc(2 * 1024 * 1024, 'a'),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
  });

  it('keeps a well-formed client request id and makes one otherwise', async () => {
    const kept = await http.request('GET', '/v1/groups', {
      token: tokens.auditor,
      headers: { 'x-request-id': 'audit-42' },
    });
    expect(kept.headers['x-request-id']).toBe('audit-42');
    const made = await http.request('GET', '/v1/groups', {
      token: tokens.auditor,
      headers: { 'x-request-id': 'bad id!' },
    });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 405 with Allow and 404 for unknown paths', async () => {
    const res = await http.request('PUT', '/v1/groups', { token: tokens.operator });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET');
    const raw = await fetch(`${server.url}/nothing/here`);
    expect(raw.status).toBe(404);
  });

  it('logs in to the page with an API key exchanged at IAM', async () => {
    const res = await http.request('POST', '/ui/login', {
      body: new URLSearchParams({ apikey: iam.apiKeyFor('auditor') }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(303);
    const cookie = (res.headers['set-cookie'] ?? '').split(';')[0] as string;
    const home = await http.request('GET', '/ui', { headers: { cookie } });
    expect(home.text.match(/data-testid="group-card"/g)).toHaveLength(3);
    const page = await http.request('GET', '/ui/groups/payments', { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.text.match(/data-testid="generation" /g)).toHaveLength(6);
    const jsonl = await http.request('GET', '/ui/export?format=jsonl&groupId=ledger', { headers: { cookie } });
    expect(recordsFromJsonl(jsonl.text)).toEqual(JSON.parse(JSON.stringify(ledger)));
    const wrong = await http.request('POST', '/ui/login', {
      body: new URLSearchParams({ apikey: 'not-a-key' }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(wrong.status).toBe(401);
  });
});

describe('the OpenAPI document', () => {
  it('was exercised by this file for every read route and page (rotations/runs: rotations.http.test.ts; endpoints/drills/evidence: drills/*.http.test.ts)', () => {
    const unseen = http.validator.unseen(
      (k) =>
        / (200|303)$/.test(k) &&
        !k.includes('/runs/') &&
        !k.startsWith('POST /ui/logout') &&
        !/\/(endpoints|drills|evidence) /.test(k),
    );
    expect(unseen).toEqual([]);
  });
});
