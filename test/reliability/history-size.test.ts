/**
 * History-sized responses (issue 13 finding 6): a group with thousands of generations, each with a signed checkpoint,
 * on the embedded store behind the HTTP API. The proof, the group page and every export page must stay under 1 MB
 * (Code Engine answers with one body of at most 5 MB) at any history length, eight concurrent page loads likewise,
 * and bounding must lose nothing: complete counts, every record in the export, a record appended later verified
 * incrementally, a rewritten head found at once. Sizes and contents only: speed is bench/history-api.ts's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ProofDocument, serveHttp } from '../../src/api/index.js';
import { type LineageRecord, silentLogger } from '../../src/core/index.js';
import {
  buildLineageRecord,
  checkpointKeyPairFromSeed,
  GENESIS_PREV_HASH,
  hashRecord,
  signCheckpoint,
} from '../../src/lineage/index.js';
import { startEmbeddedCouch } from '../../src/local/couch/index.js';
import { startLocalIam } from '../../src/local/iam/index.js';
import { checkpointDocId } from '../../src/store/checkpoints.js';
import { encode } from '../../src/store/documents.js';
import { type CloudantStores, createCloudantStores, toLineageDocument } from '../../src/store/index.js';
import { makeChain, makeGroup } from '../unit/api/support/fakes.js';
import { recordScenario, scale } from './_lib/report.js';

const GENERATIONS = scale({ bounded: 1_500, full: 10_000, soak: 10_000 });
const MAX_BODY = 1_000_000;
const GROUP = 'long-history';
const signer = checkpointKeyPairFromSeed(Buffer.alloc(32, 11));
const cp = (r: LineageRecord) =>
  signCheckpoint(
    { groupId: r.groupId, generation: r.generation, headHash: r.hash, signedAtMs: r.finishedAtMs + 1 },
    { privateKey: signer.privateKey },
  );

let couch: Awaited<ReturnType<typeof startEmbeddedCouch>>;
let iam: Awaited<ReturnType<typeof startLocalIam>>;
let stores: CloudantStores;
let server: Awaited<ReturnType<typeof serveHttp>>;
let token: string;
let cookie: string;
let chain: LineageRecord[];
const checks: string[] = [];
const violations: string[] = [];
const check = (ok: boolean, what: string) => {
  checks.push(what);
  if (!ok) violations.push(what);
};

const get = async (path: string, ui = false) => {
  const res = await fetch(`${server.url}${path}`, {
    headers: ui ? { cookie } : { authorization: `Bearer ${token}` },
  });
  const body = await res.text();
  return { status: res.status, body, bytes: Buffer.byteLength(body), next: res.headers.get('x-lockstep-next-cursor') };
};

beforeAll(async () => {
  [couch, iam] = await Promise.all([startEmbeddedCouch(), startLocalIam()]);
  stores = await createCloudantStores({ ...couch.storeOptions, dbPrefix: 'hsize-' });
  await stores.ensureSetup();
  const group = makeGroup(GROUP, { generation: GENERATIONS });
  await stores.groups.create(group);
  chain = makeChain(group, GENERATIONS);
  for (let i = 0; i < chain.length; i += 500) {
    const part = chain.slice(i, i + 500);
    await stores.client.postBulkDocs({
      db: stores.databases.lineage,
      bulkDocs: { docs: part.map((r) => toLineageDocument(r)) as never },
    });
    await stores.client.postBulkDocs({
      db: stores.databases.checkpoints,
      bulkDocs: {
        docs: part.map((r) => {
          const c = cp(r);
          return encode('checkpoint', checkpointDocId(c), c, { groupId: c.groupId });
        }) as never,
      },
    });
  }
  const auditor = iam.identities.find((i) => i.name === 'auditor')!;
  server = await serveHttp(
    createApi({
      stores,
      auth: { jwksUrl: iam.jwksUrl, issuer: iam.issuer, roles: { [auditor.iamId]: 'auditor' } },
      checkpointPublicKeys: { main: String(signer.publicKey.export({ format: 'pem', type: 'spki' })) },
      clock: { nowMs: () => Date.now() },
      logger: silentLogger,
    }),
  );
  token = await iam.issueToken('auditor');
  const login = await fetch(`${server.url}/ui/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
    redirect: 'manual',
  });
  cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
}, 240_000);

afterAll(async () => {
  await server?.close();
  await iam?.close();
  await couch?.close();
});

describe('history-sized responses stay bounded and complete', () => {
  it(`proof, group page, export pages and 8 concurrent loads at ${GENERATIONS} generations`, async () => {
    // the proof: small, complete counts, intact
    const proof = await get(`/v1/groups/${GROUP}/proof`);
    const p = JSON.parse(proof.body) as ProofDocument;
    check(proof.status === 200 && proof.bytes <= MAX_BODY, `proof ${proof.bytes} bytes ≤ 1 MB`);
    check(p.chain.ok && p.records === GENERATIONS, `proof: chain ok over ${GENERATIONS} records`);
    check(p.verification.checkpoints === GENERATIONS, 'proof: every checkpoint counted');
    check(p.chain.checkpoints.length <= p.verification.listedAtMost + 1, 'proof: bounded list of checks');
    // the group page: small, the newest generations, says how many there are
    const page = await get(`/ui/groups/${GROUP}`, true);
    check(page.status === 200 && page.bytes <= MAX_BODY, `group page ${page.bytes} bytes ≤ 1 MB`);
    check(page.body.includes(`of ${GENERATIONS} generations`), 'group page names the total');
    check(
      page.body.includes(`data-generation="${GENERATIONS}"`) && !page.body.includes('data-generation="1"'),
      'group page shows the newest generations',
    );
    // every export page is bounded, and together they are the whole history, in order
    const lines: string[] = [];
    let path: string | undefined = `/v1/export?format=jsonl&groupId=${GROUP}`;
    let pages = 0;
    while (path && pages < 200) {
      const r = await get(path);
      pages += 1;
      check(r.status === 200 && r.bytes <= MAX_BODY, `export page ${pages}: ${r.bytes} bytes ≤ 1 MB`);
      lines.push(...r.body.split('\n').filter(Boolean));
      path = r.next ? `/v1/export?format=jsonl&groupId=${GROUP}&cursor=${encodeURIComponent(r.next)}` : undefined;
    }
    const exported = lines.map((l) => JSON.parse(l) as LineageRecord);
    check(pages > 1, `the export is split by bytes (${pages} pages)`);
    check(
      exported.length === GENERATIONS && exported.every((r, i) => r.hash === chain[i]!.hash),
      'the export pages concatenate to every record, in order',
    );
    // eight concurrent loads of the page and the proof: all answered, all bounded
    const loads = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        i % 2 ? get(`/ui/groups/${GROUP}`, true) : get(`/v1/groups/${GROUP}/proof`),
      ),
    );
    for (const [i, l] of loads.entries())
      check(l.status === 200 && l.bytes <= MAX_BODY, `concurrent load ${i}: ${l.status}, ${l.bytes} bytes`);
    // a generation appended later is verified incrementally; a rewritten head is found at once
    const head = chain.at(-1)!;
    const { hash: _h, prevHash: _p, ...rest } = head;
    const next = buildLineageRecord(
      { ...rest, generation: head.generation + 1, finishedAtMs: head.finishedAtMs + 1000 },
      head,
    );
    await stores.lineage.append(next);
    await stores.checkpoints.put(cp(next));
    const after = JSON.parse((await get(`/v1/groups/${GROUP}/proof`)).body) as ProofDocument;
    check(
      after.verification.mode === 'incremental' && after.chain.ok && after.records === GENERATIONS + 1,
      'an appended generation is verified incrementally',
    );
    const doc = await stores.client.getDocument({
      db: stores.databases.lineage,
      docId: `lineage:${GROUP}:${String(next.generation).padStart(10, '0')}`,
    });
    const forged = doc.result as { data: LineageRecord };
    await stores.client.putDocument({
      db: stores.databases.lineage,
      docId: doc.result._id!,
      document: { ...doc.result, data: { ...forged.data, fingerprint: 'fp1:forged' } } as never,
    });
    const tampered = JSON.parse((await get(`/v1/groups/${GROUP}/proof`)).body) as ProofDocument;
    check(
      !tampered.chain.ok && tampered.chain.firstBreak?.generation === next.generation,
      'a rewritten head is found by the next proof',
    );
    check(hashRecord(next) === next.hash && next.prevHash !== GENESIS_PREV_HASH, 'the appended record is valid');

    const result = recordScenario({
      scenario: `history-sized responses (${GENERATIONS} generations, a checkpoint each)`,
      area: 'access',
      runs: checks.length,
      violations: violations.length,
      notes: `proof ${proof.bytes} B, group page ${page.bytes} B, export ${pages} pages (largest ${Math.max(...loads.map((l) => l.bytes))} B among the concurrent loads), all ≤ 1 MB; complete counts, every record exported in order, incremental check of an appended generation, a rewritten head found at once`,
      examples: violations.slice(0, 10),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 240_000);
});
