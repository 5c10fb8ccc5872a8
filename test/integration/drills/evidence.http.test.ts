/**
 * Late Activity Tracker evidence for auditors, end to end: the Key Protect emulator + local IAM, the embedded store
 * through the Cloudant adapter, the real rotation service (with checkpoint signing) and the API over HTTP (every
 * response validated against /openapi.json). Evidence that arrives after its generation record is chained and
 * signed; the proof, the JSONL export and `lockstep audit verify` carry and verify that chain, and a record edited
 * in the database is located by both.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createApi,
  evidenceFromJsonl,
  type HttpServerHandle,
  recordsFromJsonl,
  serveHttp,
} from '../../../src/api/index.js';
import type { RotationService } from '../../../src/app/index.js';
import type { EvidenceRecord, Group } from '../../../src/core/index.js';
import { checkpointKeyring, hashRecord, verifyChain } from '../../../src/lineage/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';
import { createHttpClient } from '../api/support.js';
import { cliAgainst, groupPage } from './cli.js';

const DB_PREFIX = `ev${Date.now().toString(36)}-`;
let s: LocalStack;
let group: Group;
let service: RotationService;
let server: HttpServerHandle;
let http: Awaited<ReturnType<typeof createHttpClient>>;
let auditor: string;
let runId: string;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const privatePem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const publicPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();

const event = (id: string) => ({
  eventId: id,
  action: 'kms.secrets.rotate',
  eventTimeMs: s.clock.nowMs(),
  initiator: 'lockstep',
  outcome: 'success',
});

/** The stored document of evidence record `seq`, read and written with the database's own HTTP API. */
async function evidenceDoc(seq: number) {
  const url = `${s.couch.url}/${DB_PREFIX}checkpoints/${encodeURIComponent(`evidence:${group.id}:${String(seq).padStart(10, '0')}`)}`;
  const headers = { authorization: s.couch.authorization, 'content-type': 'application/json' };
  const res = await fetch(url, { headers });
  expect(res.status).toBe(200);
  const doc = (await res.json()) as { data: EvidenceRecord };
  return {
    data: doc.data,
    async write(data: EvidenceRecord) {
      const put = await fetch(url, { method: 'PUT', headers, body: JSON.stringify({ ...doc, data }) });
      expect(put.status).toBeLessThan(300);
    },
  };
}

const cli = (...argv: string[]) => cliAgainst(s, () => server.url, 'auditor')(...argv);

const proof = async () => (await http.request('GET', `/v1/groups/${group.id}/proof`, { token: auditor })).json();

beforeAll(async () => {
  s = await startLocalStack({ config: { rotationMinIntervalMs: 60_000 }, dbPrefix: DB_PREFIX });
  group = await createStackGroup(s, 'ledger', 2);
  service = s.service({ config: { checkpointSigning: { privateKey: privatePem } } });
  s.clock.advance(3_600_000);
  runId = (await service.rotateNow(group.id, { trigger: { kind: 'operator', by: 'test' } })).runId;
  expect((await driveRun(s, service, runId)).status).toBe('completed');
  const iamIdOf = (name: string) => s.stack.iam.identities.find((i) => i.name === name)!.iamId;
  const api = createApi({
    stores: s.stores,
    service,
    auth: {
      jwksUrl: s.stack.iam.jwksUrl,
      issuer: s.stack.iam.issuer,
      roles: { [iamIdOf('auditor')]: 'auditor' },
    },
    checkpointPublicKeys: { main: publicPem },
    clock: s.clock,
    logger: s.log.logger,
  });
  server = await serveHttp(api);
  http = await createHttpClient(server.url);
  auditor = await s.stack.iam.issueToken('auditor');
});

afterAll(async () => {
  await server?.close();
  await s?.close();
});

describe('late Activity Tracker evidence for auditors', () => {
  it('is chained and signed; the proof, the export and audit verify carry and verify it', async () => {
    // Arrange: two events arrive after generation 2's record was written
    const [p, d] = [group.members[0]!, group.members[1]!];
    await service.attachEvidence({ crn: d.crn, runId }, event('late-1'));
    s.clock.advance(1_000);
    await service.attachEvidence({ crn: p.crn, runId }, event('late-2'));
    // Act
    const body = await proof();
    const jsonl = (await http.request('GET', `/v1/export?format=jsonl&groupId=${group.id}`, { token: auditor })).text;
    // Assert: the proof verified the chain and hands out its latest signed head
    expect(body.chain.ok).toBe(true);
    expect(body.chain.evidence).toMatchObject({ ok: true, length: 2, headSeq: 2, signedThroughSeq: 2, unsigned: 0 });
    expect(body.evidenceCheckpoint).toMatchObject({ chain: 'evidence', groupId: group.id, seq: 2 });
    // the export: generations first, then the evidence lines; each parser takes its own
    expect(recordsFromJsonl(jsonl).map((r) => r.generation)).toEqual([1, 2]);
    const evidence = evidenceFromJsonl(jsonl);
    expect(evidence.map((e) => [e.seq, e.generation, e.evidence.eventId])).toEqual([
      [1, 2, 'late-1'],
      [2, 2, 'late-2'],
    ]);
    // an auditor's own recomputation agrees
    const offline = verifyChain(recordsFromJsonl(jsonl), [body.checkpoint], checkpointKeyring([publicPem]), {
      groupId: group.id,
      evidence: { records: evidence, checkpoints: [body.evidenceCheckpoint] },
    });
    expect(offline.evidence).toMatchObject({ ok: true, length: 2, signedThroughSeq: 2 });
    // the auditor's list, newest first and paged, with the latest signed head
    const page = (await http.request('GET', `/v1/groups/${group.id}/evidence?limit=1`, { token: auditor })).json();
    expect(page.items.map((e: EvidenceRecord) => e.seq)).toEqual([2]);
    expect(page.checkpoint).toMatchObject({ chain: 'evidence', seq: 2 });
    const rest = (
      await http.request(
        'GET',
        `/v1/groups/${group.id}/evidence?limit=1&cursor=${encodeURIComponent(page.next.cursor)}`,
        { token: auditor },
      )
    ).json();
    expect(rest.items).toEqual([evidence[0]]);
    expect(rest.next).toBeUndefined();
    expect((await http.request('GET', `/v1/groups/${group.id}/evidence`)).status).toBe(401);
    expect((await http.request('GET', '/v1/groups/nogroup/evidence', { token: auditor })).status).toBe(404);
    const audit = await cli('--json', 'audit', 'verify', group.id);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.json()).toMatchObject({
      ok: true,
      groups: [{ groupId: group.id, records: 2, evidence: 2, breaks: [] }],
    });
  });

  it('the timeline page shows the evidence chain', async () => {
    const page = await groupPage(http, auditor, group.id);
    expect(page.status).toBe(200);
    const panel = /data-testid="evidence-panel">([\s\S]*?)<\/div>/.exec(page.text)?.[1] ?? '';
    expect(panel).toMatch(/Evidence chain: 2 record\(s\)/);
    expect(panel).toMatch(/signed through record 2/);
  });

  it('an evidence record edited in the database is located by the proof and by audit verify (exit 3)', async () => {
    const doc = await evidenceDoc(1);
    const original = doc.data;
    // Act: someone with database access changes who made the call
    await doc.write({ ...original, evidence: { ...original.evidence, initiator: 'mallory' } });
    // Assert
    const body = await proof();
    expect(body.chain.ok).toBe(false);
    expect(body.chain.evidence.breaks[0]).toMatchObject({ seq: 1, kind: 'hash-mismatch' });
    const audit = await cli('--json', 'audit', 'verify', group.id);
    expect(audit.code).toBe(3);
    expect(audit.json().groups[0].breaks).toContainEqual(
      expect.objectContaining({ generation: 1, kind: 'evidence-hash-mismatch' }),
    );

    // Act: a careful forger re-hashes the edited record (and the next one links to it)
    const forged = { ...original, evidence: { ...original.evidence, initiator: 'mallory' } };
    forged.hash = hashRecord(forged as unknown as Record<string, unknown>);
    await (await evidenceDoc(1)).write(forged);
    const second = await evidenceDoc(2);
    const relinked = { ...second.data, prevHash: forged.hash };
    relinked.hash = hashRecord(relinked as unknown as Record<string, unknown>);
    await second.write(relinked);
    // Assert: the chain links, but the signed head no longer matches
    const after = await proof();
    expect(after.chain.evidence.breaks).toEqual([]);
    expect(after.chain.evidence.checkpoints.at(-1)).toMatchObject({ seq: 2, status: 'head-mismatch' });
    expect(after.chain.ok).toBe(false);
    const again = await cli('--json', 'audit', 'verify', group.id);
    expect(again.code).toBe(3);
    expect(again.json().groups[0].breaks).toContainEqual(
      expect.objectContaining({ generation: 2, kind: 'evidence-checkpoint-head-mismatch' }),
    );
  });
});
