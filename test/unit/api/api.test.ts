import { verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApiHandler,
  createApi,
  FULL_CHECK_EVERY_MS,
  recordsFromCsv,
  recordsFromJsonl,
  SESSION_COOKIE,
} from '../../../src/api/index.js';
import type { RotationService } from '../../../src/app/index.js';
import { AppError, type HttpResponse, type LineageRecord, type Logger } from '../../../src/core/index.js';
import {
  buildDrillRecord,
  buildEvidenceRecord,
  canonicalJson,
  signDrillCheckpoint,
  signEvidenceCheckpoint,
} from '../../../src/lineage/index.js';
import { createFakeStores, makeChain, makeGroup, testCheckpointKeys } from './support/fakes.js';
import { startTestIssuer } from './support/jwks.js';
import { createOpenApiValidator } from './support/openapiValidator.js';

const OPERATOR = 'iam-ServiceId-operator-1';
const AUDITOR = 'IBMid-AUDITOR1';
const OUTSIDER = 'iam-ServiceId-outsider';
const NOW = Date.UTC(2026, 10, 29, 3);
// biome-ignore lint/suspicious/noExplicitAny: parsed response bodies are checked field by field
type Json = any;

describe('createApi (over in-memory port fakes)', () => {
  let issuer: Awaited<ReturnType<typeof startTestIssuer>>;
  let api: ApiHandler;
  let tokens: { operator: string; auditor: string; outsider: string };
  const stores = createFakeStores();
  const keys = testCheckpointKeys();
  const logLines: string[] = [];
  const rotateCalls: unknown[] = [];
  const openapi = createOpenApiValidator();
  let alphaChain: LineageRecord[];
  let seq = 0;
  let now = NOW;

  const logger: Logger = {
    debug: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
    info: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
    warn: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
    error: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
    child: () => logger,
  };

  const service = {
    async rotateNow(groupId: string, opts: unknown) {
      rotateCalls.push({ groupId, opts });
      if (groupId === 'busy') throw new AppError('RUN_IN_PROGRESS', 'a run is in progress');
      return { runId: 'run-0000-1111-2222' };
    },
    async getRun(runId: string) {
      return (await stores.runs.get(runId as never)).value;
    },
    async retryRun(runId: string, opts: unknown) {
      runCalls.push({ action: 'retry', runId, opts });
      if (runId === 'run-finished-1') throw new AppError('RUN_STATE_INVALID', 'Run run-finished-1 is completed');
      return { runId, groupId: 'alpha', action: 'retried', status: 'running', step: 'plan', groupStatus: 'rotating' };
    },
    async stopRun(runId: string, opts: unknown) {
      runCalls.push({ action: 'stop', runId, opts });
      if (runId === 'run-finished-1') throw new AppError('RUN_STATE_INVALID', 'Run run-finished-1 is completed');
      const stop = {
        atMs: NOW,
        by: `operator:${OPERATOR}`,
        step: 'stage',
        staged: [],
        notStaged: [{ slot: 'primary:us-south:i', role: 'primary', region: 'us-south' }],
        escrowKept: true,
        summary: 'Stopped before any member changed',
      };
      return {
        runId,
        groupId: 'alpha',
        action: 'stopped',
        status: 'stopped',
        step: 'stage',
        groupStatus: 'healthy',
        stop,
      };
    },
  } as unknown as RotationService;
  const runCalls: { action: string; runId: string; opts: unknown }[] = [];

  async function call(
    method: string,
    path: string,
    opts: {
      token?: string;
      query?: Record<string, string>;
      body?: string | Buffer;
      headers?: Record<string, string>;
    } = {},
  ): Promise<HttpResponse & { text: string; json: () => Json }> {
    const headers: Record<string, string> = { host: 'lockstep.test', ...(opts.headers ?? {}) };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const res = await api({
      method,
      path,
      query: opts.query ?? {},
      headers,
      ...(opts.body !== undefined ? { body: Buffer.from(opts.body) } : {}),
      requestId: `req-${++seq}`,
    });
    const text = typeof res.body === 'string' ? res.body : res.body.toString('utf8');
    openapi.validate({ method, path, statusCode: res.statusCode, headers: res.headers, body: text });
    return { ...res, text, json: () => JSON.parse(text) };
  }

  beforeAll(async () => {
    issuer = await startTestIssuer();
    tokens = {
      operator: await issuer.sign(OPERATOR),
      auditor: await issuer.sign(AUDITOR),
      outsider: await issuer.sign(OUTSIDER),
    };
    const alpha = makeGroup('alpha', { name: 'Payments <root>', generation: 5 });
    const beta = makeGroup('beta', { generation: 0 });
    const gamma = makeGroup('gamma');
    for (const g of [alpha, beta, gamma, makeGroup('busy')]) stores.data.groups.set(g.id, g);
    alphaChain = makeChain(alpha, 5, { statuses: ['complete', 'complete', 'degraded', 'complete', 'complete'] });
    stores.data.lineage.push(...alphaChain, ...makeChain(gamma, 2));
    stores.data.checkpoints.push(keys.sign(alphaChain[3]!, NOW - 1000));
    stores.data.runs.set('run-abcdefgh-1', {
      id: 'run-abcdefgh-1',
      groupId: 'alpha',
      generation: 6,
      kind: 'rotation',
      status: 'running',
      step: 'stage',
      members: [
        { role: 'primary', region: 'us-south', slot: 'primary:us-south:i', progress: 'pending', attempts: 0 },
        { role: 'duplicate', region: 'eu-de', slot: 'duplicate:eu-de:i', progress: 'staged', attempts: 0 },
      ],
      createdAtMs: NOW,
      updatedAtMs: NOW,
      escrow: { keyCrn: 'crn', ciphertext: 'ESCROW-CIPHERTEXT', aad: [], fingerprint: 'fp' },
    } as never);
    stores.data.runs.set('run-finished-1', {
      id: 'run-finished-1',
      groupId: 'alpha',
      generation: 5,
      kind: 'rotation',
      status: 'completed',
      step: 'done',
      createdAtMs: NOW - 1000,
      updatedAtMs: NOW - 1000,
    } as never);
    api = createApi({
      stores,
      service,
      auth: {
        jwksUrl: issuer.jwksUrl,
        issuer: issuer.issuer,
        roles: { [OPERATOR]: 'operator', [AUDITOR]: 'auditor' },
      },
      checkpointPublicKeys: { main: keys.pem },
      clock: { nowMs: () => now },
      logger,
    });
  });
  afterAll(async () => {
    await issuer?.close();
  });

  describe('authentication and roles', () => {
    it('serves /openapi.json without a token', async () => {
      const res = await call('GET', '/openapi.json');
      expect(res.statusCode).toBe(200);
      expect(res.json().openapi).toBe('3.1.0');
    });

    it('answers 401 with a Bearer challenge when no token is sent', async () => {
      const res = await call('GET', '/v1/groups');
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="lockstep"');
      expect(res.json().error.code).toBe('UNAUTHENTICATED');
    });

    it.each([
      { case: 'garbage', token: async () => 'not-a-jwt' },
      { case: 'expired', token: () => issuer.sign(AUDITOR, { expiresIn: -120 }) },
      { case: 'wrong issuer', token: () => issuer.sign(AUDITOR, { issuer: 'https://evil.example/identity' }) },
      { case: 'signed by a key IAM does not publish', token: () => issuer.sign(AUDITOR, { foreignKey: true }) },
      { case: 'unknown kid', token: () => issuer.sign(AUDITOR, { kid: 'k-unknown' }) },
    ])('answers 401 for a $case token', async ({ token }) => {
      const res = await call('GET', '/v1/groups', { token: await token() });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="lockstep", error="invalid_token"/);
      expect(res.json().error.message).not.toMatch(/eyJ/);
    });

    it('answers 401 for a malformed Authorization header', async () => {
      const res = await call('GET', '/v1/groups', { headers: { authorization: 'Basic dXNlcjpwdw==' } });
      expect(res.statusCode).toBe(401);
    });

    it('answers 403 for a valid token of an identity without a role', async () => {
      const res = await call('GET', '/v1/groups', { token: tokens.outsider });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('FORBIDDEN');
    });

    it('lets auditors read but not act, and operators do both', async () => {
      expect((await call('GET', '/v1/groups', { token: tokens.auditor })).statusCode).toBe(200);
      expect((await call('GET', '/v1/groups', { token: tokens.operator })).statusCode).toBe(200);
      const denied = await call('POST', '/v1/groups/alpha/rotations', { token: tokens.auditor });
      expect(denied.statusCode).toBe(403);
      // auditors read runs (issue 13)
      expect((await call('GET', '/v1/runs/run-abcdefgh-1', { token: tokens.auditor })).statusCode).toBe(200);
      expect(rotateCalls).toHaveLength(0);
    });

    it('checks the audience when one is configured', async () => {
      const withAud = createApi({
        stores,
        auth: { jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, audience: 'lockstep', roles: { [AUDITOR]: 'auditor' } },
        checkpointPublicKeys: {},
        clock: { nowMs: () => NOW },
        logger,
      });
      const req = (token: string) => ({
        method: 'GET',
        path: '/v1/groups',
        query: {},
        headers: { authorization: `Bearer ${token}` },
        requestId: 'r',
      });
      expect((await withAud(req(tokens.auditor))).statusCode).toBe(401);
      expect((await withAud(req(await issuer.sign(AUDITOR, { audience: 'lockstep' })))).statusCode).toBe(200);
    });

    it('caches the JWKS instead of fetching it per request', async () => {
      const before = issuer.jwksRequests();
      for (let i = 0; i < 5; i++) await call('GET', '/v1/groups', { token: tokens.auditor });
      expect(issuer.jwksRequests()).toBe(before);
      expect(before).toBeGreaterThan(0);
    });

    it('never logs a token', () => {
      const all = logLines.join('\n');
      for (const t of Object.values(tokens)) expect(all).not.toContain(t.split('.')[2]);
      expect(all).toContain('"route":"/v1/groups"');
    });
  });

  describe('GET /v1/groups', () => {
    it('pages with an opaque cursor', async () => {
      const first = await call('GET', '/v1/groups', { token: tokens.auditor, query: { limit: '2' } });
      expect(first.json().items.map((g: { id: string }) => g.id)).toEqual(['alpha', 'beta']);
      const next = first.json().next.cursor as string;
      const second = await call('GET', '/v1/groups', { token: tokens.auditor, query: { limit: '2', cursor: next } });
      expect(second.json().items.map((g: { id: string }) => g.id)).toEqual(['busy', 'gamma']);
      expect(second.json().next).toBeUndefined();
      // IBM API handbook page links: limit, first, next {href, cursor}
      expect(first.json()).toMatchObject({ limit: 2, first: { href: '/v1/groups?limit=2' } });
      expect(first.json().next.href).toBe(`/v1/groups?limit=2&cursor=${encodeURIComponent(next)}`);
      const href = new URL(first.json().next.href, 'http://x');
      const viaLink = await call('GET', href.pathname, {
        token: tokens.auditor,
        query: Object.fromEntries(href.searchParams),
      });
      expect(viaLink.json().items).toEqual(second.json().items);
    });

    it('refuses a tampered cursor with 400 INVALID_CURSOR', async () => {
      const first = await call('GET', '/v1/groups', { token: tokens.auditor, query: { limit: '1' } });
      const next = first.json().next.cursor as string;
      const [payload, sum] = next.split('.') as [string, string];
      const forged = Buffer.from(JSON.stringify({ s: 'zzz', q: 'groups' })).toString('base64url');
      for (const cursor of [`${payload}x.${sum}`, `${forged}.${sum}`, 'garbage', `${payload}.${'A'.repeat(16)}`]) {
        const res = await call('GET', '/v1/groups', { token: tokens.auditor, query: { cursor } });
        expect(res.statusCode).toBe(400);
        expect(res.json().error.code).toBe('INVALID_CURSOR');
      }
    });

    it.each(['0', '201', 'ten', '-1', '1.5'])('refuses limit=%s', async (limit) => {
      const res = await call('GET', '/v1/groups', { token: tokens.auditor, query: { limit } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'limit' } });
    });

    it('refuses unknown query parameters', async () => {
      const res = await call('GET', '/v1/groups', { token: tokens.auditor, query: { limt: '5' } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toContain('limt');
    });
  });

  describe('GET /v1/groups/{groupId}', () => {
    it('returns the group without store bookkeeping', async () => {
      const res = await call('GET', '/v1/groups/alpha', { token: tokens.auditor });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ id: 'alpha', currentGeneration: 5, status: 'healthy' });
      expect(res.json().members).toHaveLength(3);
    });

    it('shows when and why the group was last verified (validated against the OpenAPI schema)', async () => {
      const lastVerification = {
        atMs: Date.UTC(2026, 10, 2),
        trigger: 'alert:alert-0123 (truncated example)',
        result: 'problems' as const,
        problems: ['primary us-south (crn:…) holds version v9; the lineage records v5 (generation 5)'],
      };
      const alpha = stores.data.groups.get('alpha')!;
      stores.data.groups.set('alpha', { ...alpha, lastVerification });
      try {
        const res = await call('GET', '/v1/groups/alpha', { token: tokens.auditor });
        expect(res.statusCode).toBe(200);
        expect(res.json().lastVerification).toEqual(lastVerification);
      } finally {
        stores.data.groups.set('alpha', alpha);
      }
    });

    it('answers 404 GROUP_NOT_FOUND for an unknown group and 400 for an invalid id', async () => {
      const missing = await call('GET', '/v1/groups/nope', { token: tokens.auditor });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('GROUP_NOT_FOUND');
      const bad = await call('GET', '/v1/groups/Bad_Id', { token: tokens.auditor });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.details.field).toBe('groupId');
    });
  });

  describe('GET /v1/groups/{groupId}/generations', () => {
    it('lists newest first across pages', async () => {
      const seen: number[] = [];
      let cursor: string | undefined;
      do {
        const res = await call('GET', '/v1/groups/alpha/generations', {
          token: tokens.auditor,
          query: { limit: '2', ...(cursor ? { cursor } : {}) },
        });
        expect(res.statusCode).toBe(200);
        seen.push(...res.json().items.map((r: LineageRecord) => r.generation));
        cursor = res.json().next?.cursor;
      } while (cursor);
      expect(seen).toEqual([5, 4, 3, 2, 1]);
    });

    it('filters by since/until (RFC 3339 or epoch ms)', async () => {
      const since = new Date(alphaChain[1]!.finishedAtMs).toISOString();
      const until = String(alphaChain[3]!.finishedAtMs);
      const res = await call('GET', '/v1/groups/alpha/generations', { token: tokens.auditor, query: { since, until } });
      expect(res.json().items.map((r: LineageRecord) => r.generation)).toEqual([4, 3, 2]);
    });

    it('refuses a cursor of another query', async () => {
      const res = await call('GET', '/v1/groups/alpha/generations', { token: tokens.auditor, query: { limit: '1' } });
      const other = await call('GET', '/v1/groups/gamma/generations', {
        token: tokens.auditor,
        query: { cursor: res.json().next.cursor },
      });
      expect(other.statusCode).toBe(400);
      expect(other.json().error.code).toBe('INVALID_CURSOR');
    });

    it.each<{ case: string; query: Record<string, string> }>([
      { case: 'bad since', query: { since: 'yesterday' } },
      { case: 'since after until', query: { since: '2026-11-02T00:00:00Z', until: '2026-11-01T00:00:00Z' } },
    ])('answers 400 for $case', async ({ query }) => {
      const res = await call('GET', '/v1/groups/alpha/generations', { token: tokens.auditor, query });
      expect(res.statusCode).toBe(400);
    });

    it('answers 404 for an unknown group', async () => {
      expect((await call('GET', '/v1/groups/nope/generations', { token: tokens.auditor })).statusCode).toBe(404);
    });
  });

  describe('GET /v1/groups/{groupId}/generations/{n}', () => {
    it('returns the record exactly as chained', async () => {
      const res = await call('GET', '/v1/groups/alpha/generations/3', { token: tokens.auditor });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(JSON.parse(JSON.stringify(alphaChain[2])));
    });

    it.each(['0', 'abc', '-1', '1e3'])('answers 400 for n=%s', async (n) => {
      const res = await call('GET', `/v1/groups/alpha/generations/${n}`, { token: tokens.auditor });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.details.field).toBe('n');
    });

    it('answers 404 GENERATION_NOT_FOUND past the head', async () => {
      const res = await call('GET', '/v1/groups/alpha/generations/99', { token: tokens.auditor });
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toBe('GENERATION_NOT_FOUND');
    });
  });

  describe('GET /v1/versions/{keyVersionId}', () => {
    it('maps any member version to its group, generation and member', async () => {
      const member = alphaChain[1]!.members[2]!;
      const res = await call('GET', `/v1/versions/${member.keyVersionId.toUpperCase()}`, { token: tokens.auditor });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ groupId: 'alpha', generation: 2, member: { crn: member.crn } });
    });

    it('answers 404 VERSION_NOT_FOUND and 400 for a non-UUID', async () => {
      const missing = await call('GET', '/v1/versions/00000000-0000-4000-8000-000000000000', { token: tokens.auditor });
      expect(missing.json().error.code).toBe('VERSION_NOT_FOUND');
      expect((await call('GET', '/v1/versions/v1', { token: tokens.auditor })).statusCode).toBe(400);
    });
  });

  describe('GET /v1/groups/{groupId}/proof', () => {
    it('returns a proof an auditor can re-verify with the published key', async () => {
      const res = await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor });
      expect(res.statusCode).toBe(200);
      const proof = res.json();
      expect(proof.chain).toMatchObject({ ok: true, length: 5, headGeneration: 5, signedThroughGeneration: 4 });
      expect(proof.head).toEqual({ generation: 5, hash: alphaChain[4]!.hash });
      const { signature, ...signed } = proof.checkpoint;
      const pub = proof.publicKeys.find((k: { keyId: string }) => k.keyId === signed.keyId);
      expect(verify(null, Buffer.from(canonicalJson(signed)), pub.pem, Buffer.from(signature, 'base64'))).toBe(true);
      expect(signed.headHash).toBe(alphaChain[3]!.hash);
    });

    it('locates a rewritten record (at the next full check: at once for the head, within FULL_CHECK_EVERY_MS)', async () => {
      // Arrange: the chain was verified (and cached) by the test above
      const stored = stores.data.lineage.find((r) => r.groupId === 'alpha' && r.generation === 2)!;
      const head = stores.data.lineage.find((r) => r.groupId === 'alpha' && r.generation === 5)!;
      const original = stored.fingerprint;
      const originalHead = head.fingerprint;
      stored.fingerprint = 'fp1:forged';
      try {
        // Act + Assert: once the full check is due, the rewrite is located
        now = NOW + FULL_CHECK_EVERY_MS;
        const proof = (await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor })).json();
        expect(proof.verification).toMatchObject({ mode: 'full', lastFullCheckAtMs: now });
        expect(proof.chain.ok).toBe(false);
        expect(proof.chain.firstBreak).toMatchObject({ generation: 2, kind: 'hash-mismatch' });
        // a rewritten head is found at once, even right after a check
        stored.fingerprint = original;
        expect((await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor })).json().chain.ok).toBe(true);
        head.fingerprint = 'fp1:forged';
        const again = (await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor })).json();
        expect(again.verification.mode).toBe('full');
        expect(again.chain.firstBreak).toMatchObject({ generation: 5, kind: 'hash-mismatch' });
      } finally {
        stored.fingerprint = original;
        head.fingerprint = originalHead;
        now = NOW;
      }
    });

    it('reports an empty chain as ok with no head', async () => {
      const proof = (await call('GET', '/v1/groups/beta/proof', { token: tokens.auditor })).json();
      expect(proof).toMatchObject({ records: 0, head: null, checkpoint: null, chain: { ok: true } });
    });
  });

  describe('GET /v1/export', () => {
    it('exports JSONL and CSV that parse back into the same records', async () => {
      const jsonl = await call('GET', '/v1/export', { token: tokens.auditor, query: { format: 'jsonl' } });
      const csv = await call('GET', '/v1/export', { token: tokens.auditor, query: { format: 'csv' } });
      expect(jsonl.headers['content-disposition']).toMatch(
        /^attachment; filename="lockstep-lineage-2026-11-29\.jsonl"$/,
      );
      expect(csv.headers['content-type']).toMatch(/^text\/csv/);
      const expected = JSON.parse(JSON.stringify(stores.data.lineage)).sort(
        (a: LineageRecord, b: LineageRecord) => a.groupId.localeCompare(b.groupId) || a.generation - b.generation,
      );
      expect(recordsFromJsonl(jsonl.text)).toEqual(expected);
      expect(recordsFromCsv(csv.text)).toEqual(expected);
      expect(csv.text.split('\r\n').length - 2).toBe(7 * 3);
      expect(jsonl.text + csv.text).not.toContain('ESCROW');
    });

    it('exports one group', async () => {
      const res = await call('GET', '/v1/export', {
        token: tokens.auditor,
        query: { format: 'jsonl', groupId: 'gamma' },
      });
      expect(recordsFromJsonl(res.text).map((r) => r.groupId)).toEqual(['gamma', 'gamma']);
      expect(res.headers['content-disposition']).toContain('lockstep-lineage-gamma-');
    });

    it.each([{ format: 'xml' }, {}])('answers 400 for format %o', async (query) => {
      const res = await call('GET', '/v1/export', { token: tokens.auditor, query: query as Record<string, string> });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.details.field).toBe('format');
    });

    it('answers 404 for an unknown group', async () => {
      const res = await call('GET', '/v1/export', { token: tokens.auditor, query: { format: 'csv', groupId: 'nope' } });
      expect(res.statusCode).toBe(404);
    });

    it.each(['jsonl', 'csv'] as const)(
      'pages a %s export by limit; the pages concatenate to the whole export',
      async (format) => {
        // Arrange: the whole export in one response
        const whole = await call('GET', '/v1/export', { token: tokens.auditor, query: { format } });
        expect(whole.headers['x-lockstep-next-cursor']).toBeUndefined();
        // Act: pages of 3 records, following the cursor
        const pages: Array<{ text: string; headers: Record<string, string> }> = [];
        let cursor: string | undefined;
        do {
          const res = await call('GET', '/v1/export', {
            token: tokens.auditor,
            query: { format, limit: '3', ...(cursor ? { cursor } : {}) },
          });
          expect(res.statusCode).toBe(200);
          pages.push(res);
          cursor = res.headers['x-lockstep-next-cursor'];
          if (cursor)
            expect(res.headers.link).toBe(`</v1/export?format=${format}&limit=3&cursor=${cursor}>; rel="next"`);
        } while (cursor && pages.length < 10);
        // Assert: 7 records → pages of 3, 3, 1; the same bytes as the one-response export
        expect(pages.map((p) => p.headers['x-lockstep-records'])).toEqual(['3', '3', '1']);
        expect(pages.map((p) => p.text).join('')).toBe(whole.text);
      },
    );

    it('refuses a cursor of another export query, an edited cursor and a limit out of range (400)', async () => {
      const first = await call('GET', '/v1/export', { token: tokens.auditor, query: { format: 'jsonl', limit: '2' } });
      const cursor = first.headers['x-lockstep-next-cursor']!;
      const asCsv = await call('GET', '/v1/export', { token: tokens.auditor, query: { format: 'csv', cursor } });
      expect(asCsv.statusCode).toBe(400);
      expect(asCsv.json().error.code).toBe('INVALID_CURSOR');
      const edited = await call('GET', '/v1/export', {
        token: tokens.auditor,
        query: { format: 'jsonl', cursor: `x${cursor.slice(1)}` },
      });
      expect(edited.json().error.code).toBe('INVALID_CURSOR');
      for (const limit of ['0', '10001', 'ten']) {
        const res = await call('GET', '/v1/export', { token: tokens.auditor, query: { format: 'jsonl', limit } });
        expect(res.statusCode).toBe(400);
        expect(res.json().error.details.field).toBe('limit');
      }
    });
  });

  describe('POST /v1/groups/{groupId}/rotations', () => {
    it('accepts with 202, the run id and the operator as trigger', async () => {
      const res = await call('POST', '/v1/groups/alpha/rotations', {
        token: tokens.operator,
        body: JSON.stringify({ reason: 'key compromise drill' }),
        headers: { 'content-type': 'application/json' },
      });
      expect(res.statusCode).toBe(202);
      expect(res.json()).toEqual({
        runId: 'run-0000-1111-2222',
        groupId: 'alpha',
        status: 'accepted',
        links: { run: '/v1/runs/run-0000-1111-2222' },
      });
      expect(res.headers.location).toBe('/v1/runs/run-0000-1111-2222');
      expect(rotateCalls.at(-1)).toEqual({
        groupId: 'alpha',
        opts: { trigger: { kind: 'operator', by: OPERATOR, reason: 'key compromise drill' } },
      });
    });

    it('accepts an empty body', async () => {
      const res = await call('POST', '/v1/groups/alpha/rotations', { token: tokens.operator });
      expect(res.statusCode).toBe(202);
    });

    it.each([
      { case: 'not JSON', ct: 'text/plain', body: 'x', status: 415 },
      { case: 'malformed JSON', ct: 'application/json', body: '{', status: 400 },
      { case: 'an array', ct: 'application/json', body: '[]', status: 400 },
      { case: 'an unknown field', ct: 'application/json', body: '{"generation":9}', status: 400 },
      { case: 'a formula reason', ct: 'application/json', body: '{"reason":"=HYPERLINK(1)"}', status: 400 },
      { case: 'a non-boolean force', ct: 'application/json', body: '{"force":"yes"}', status: 400 },
      { case: 'too large', ct: 'application/json', body: `{"reason":"${'a'.repeat(17_000)}"}`, status: 413 },
    ])('refuses $case with $status and rotates nothing', async ({ ct, body, status }) => {
      const before = rotateCalls.length;
      const res = await call('POST', '/v1/groups/alpha/rotations', {
        token: tokens.operator,
        body,
        headers: { 'content-type': ct },
      });
      expect(res.statusCode).toBe(status);
      expect(rotateCalls.length).toBe(before);
    });

    it('answers 404 for an unknown group and 409 when a run is in progress', async () => {
      expect((await call('POST', '/v1/groups/nope/rotations', { token: tokens.operator })).statusCode).toBe(404);
      const busy = await call('POST', '/v1/groups/busy/rotations', { token: tokens.operator });
      expect(busy.statusCode).toBe(409);
      expect(busy.json().error.code).toBe('RUN_IN_PROGRESS');
    });
  });

  describe('GET /v1/runs/{runId}', () => {
    it('shows the run to operators without its escrow ciphertext', async () => {
      const res = await call('GET', '/v1/runs/run-abcdefgh-1', { token: tokens.operator });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ id: 'run-abcdefgh-1', status: 'running' });
      expect(res.text).not.toContain('ESCROW-CIPHERTEXT');
    });

    it('answers 404 RUN_NOT_FOUND and 400 for a malformed id', async () => {
      const missing = await call('GET', '/v1/runs/run-00000000-x', { token: tokens.operator });
      expect(missing.json().error.code).toBe('RUN_NOT_FOUND');
      expect((await call('GET', '/v1/runs/nope', { token: tokens.operator })).statusCode).toBe(400);
    });
  });

  describe('POST /v1/runs/{runId}/retry|stop', () => {
    it('retries (202) and stops (200) for operators, with the operator as trigger', async () => {
      const retried = await call('POST', '/v1/runs/run-abcdefgh-1/retry', {
        token: tokens.operator,
        body: JSON.stringify({ reason: 'unblock' }),
        headers: { 'content-type': 'application/json' },
      });
      expect(retried.statusCode).toBe(202);
      expect(retried.headers.location).toBe('/v1/runs/run-abcdefgh-1');
      expect(retried.json()).toMatchObject({ action: 'retried', links: { run: '/v1/runs/run-abcdefgh-1' } });
      const stopped = await call('POST', '/v1/runs/run-abcdefgh-1/stop', { token: tokens.operator });
      expect(stopped.statusCode).toBe(200);
      expect(stopped.json()).toMatchObject({ action: 'stopped', status: 'stopped', stop: { escrowKept: true } });
      expect(runCalls.slice(-2).map((c) => c.opts)).toEqual([
        { trigger: { kind: 'operator', by: OPERATOR, reason: 'unblock' } },
        { trigger: { kind: 'operator', by: OPERATOR } },
      ]);
    });

    it('refuses auditors, bad bodies and finished runs without acting', async () => {
      const before = runCalls.length;
      expect((await call('POST', '/v1/runs/run-abcdefgh-1/stop', { token: tokens.auditor })).statusCode).toBe(403);
      for (const body of ['{"force":true}', '{"reason":"=cmd"}', '{"runId":"x"}']) {
        const res = await call('POST', '/v1/runs/run-abcdefgh-1/retry', {
          token: tokens.operator,
          body,
          headers: { 'content-type': 'application/json' },
        });
        expect(res.statusCode).toBe(400);
      }
      expect(runCalls.length).toBe(before);
      const finished = await call('POST', '/v1/runs/run-finished-1/retry', { token: tokens.operator });
      expect(finished.statusCode).toBe(409);
      expect(finished.json().error.code).toBe('RUN_STATE_INVALID');
    });
  });

  describe('routing', () => {
    it('answers 404 NOT_FOUND for an unknown path and 405 with Allow for a wrong method', async () => {
      const missing = await call('GET', '/v2/everything', { token: tokens.auditor }).catch((e: Error) => e);
      // undocumented paths cannot be validated against the document; check the raw handler instead
      expect(missing).toBeInstanceOf(Error);
      const raw = await api({ method: 'GET', path: '/v2/everything', query: {}, headers: {}, requestId: 'x' });
      expect(raw.statusCode).toBe(404);
      expect(JSON.parse(String(raw.body)).error.code).toBe('NOT_FOUND');
      const wrong = await call('DELETE', '/v1/groups/alpha', { token: tokens.operator });
      expect(wrong.statusCode).toBe(405);
      expect(wrong.headers.allow).toBe('GET');
    });

    it('sets no-store, nosniff and the request id on every response', async () => {
      const res = await call('GET', '/v1/groups', { token: tokens.auditor });
      expect(res.headers).toMatchObject({ 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      expect(res.headers['x-request-id']).toMatch(/^req-/);
    });
  });

  describe('timeline page', () => {
    const cookieOf = (res: HttpResponse) => (res.headers['set-cookie'] ?? '').split(';')[0] as string;
    const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
    const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };

    it('shows the login form without a session', async () => {
      const res = await call('GET', '/ui');
      expect(res.statusCode).toBe(401);
      expect(res.text).toContain('name="token"');
      expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    });

    it('logs in with a token, renders the groups and the timeline, and escapes stored text', async () => {
      const login = await call('POST', '/ui/login', {
        body: form({ token: tokens.auditor }),
        headers: { ...formHeaders, origin: 'http://lockstep.test' },
      });
      expect(login.statusCode).toBe(303);
      // Secure by default (the Host is not loopback); a sealed value, never the IAM token; at most 30 min
      expect(login.headers['set-cookie']).toMatch(/HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
      expect(login.headers['set-cookie']).not.toContain(tokens.auditor);
      expect(login.headers['set-cookie']).toMatch(/^lockstep_session=v1\.[A-Za-z0-9_-]+;/);
      expect(Number(/Max-Age=(\d+)/.exec(login.headers['set-cookie'] ?? '')?.[1])).toBeLessThanOrEqual(1800);
      const cookie = cookieOf(login);
      expect(cookie.startsWith(`${SESSION_COOKIE}=`)).toBe(true);

      const home = await call('GET', '/ui', { headers: { cookie } });
      expect(home.statusCode).toBe(200);
      expect(home.text).toContain('Payments &lt;root&gt;');
      expect(home.text).not.toContain('Payments <root>');

      const page = await call('GET', '/ui/groups/alpha', { headers: { cookie } });
      expect(page.statusCode).toBe(200);
      expect(page.text.match(/data-testid="generation" /g)).toHaveLength(5);
      expect(page.text).toContain('data-testid="chain-status">chain ok');
      expect(page.text).toContain('checkpoint valid');
      expect(page.text).toContain(alphaChain[2]!.members[1]!.keyVersionId);
      expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(page.text).not.toContain('<script>');

      const csv = await call('GET', '/ui/export', { headers: { cookie }, query: { format: 'csv', groupId: 'alpha' } });
      expect(recordsFromCsv(csv.text)).toHaveLength(5);
    });

    it('refuses identities without a role, cross-site logins and bad tokens', async () => {
      const outsider = await call('POST', '/ui/login', {
        body: form({ token: tokens.outsider }),
        headers: formHeaders,
      });
      expect(outsider.statusCode).toBe(403);
      const crossSite = await call('POST', '/ui/login', {
        body: form({ token: tokens.auditor }),
        headers: { ...formHeaders, origin: 'https://evil.example' },
      });
      expect(crossSite.statusCode).toBe(403);
      const bad = await call('POST', '/ui/login', { body: form({ token: 'x.y.z' }), headers: formHeaders });
      expect(bad.statusCode).toBe(401);
      expect(bad.text).toContain('data-testid="login-error"');
      const notForm = await call('POST', '/ui/login', { body: '{}', headers: { 'content-type': 'application/json' } });
      expect(notForm.statusCode).toBe(415);
    });

    it('ends an expired session with the login form and clears the cookie', async () => {
      const expired = await issuer.sign(AUDITOR, { expiresIn: -120 });
      const res = await call('GET', '/ui/groups/alpha', { headers: { cookie: `${SESSION_COOKIE}=${expired}` } });
      expect(res.statusCode).toBe(401);
      expect(res.text).toContain('Your session ended');
      expect(res.headers['set-cookie']).toContain('Max-Age=0');
    });

    const loginAs = async (token: string) =>
      cookieOf(await call('POST', '/ui/login', { body: form({ token }), headers: formHeaders }));

    it('refuses the raw IAM token as the session cookie', async () => {
      const res = await call('GET', '/ui', { headers: { cookie: `${SESSION_COOKIE}=${tokens.auditor}` } });
      expect(res.statusCode).toBe(401);
      expect(res.headers['set-cookie']).toContain('Max-Age=0');
    });

    it('refuses an altered session value', async () => {
      const cookie = await loginAs(tokens.auditor);
      // a character in the middle (the last one may only carry padding bits)
      const at = Math.floor(cookie.length / 2);
      const altered = `${cookie.slice(0, at)}${cookie[at] === 'A' ? 'B' : 'A'}${cookie.slice(at + 1)}`;
      const res = await call('GET', '/ui', { headers: { cookie: altered } });
      expect(res.statusCode).toBe(401);
    });

    it('renders 404 and 400 as pages', async () => {
      const cookie = await loginAs(tokens.auditor);
      expect((await call('GET', '/ui/groups/nope', { headers: { cookie } })).statusCode).toBe(404);
      expect((await call('GET', '/ui/groups/Bad_Id', { headers: { cookie } })).statusCode).toBe(400);
    });

    it('logs out', async () => {
      const res = await call('POST', '/ui/logout', { headers: { origin: 'http://lockstep.test' } });
      expect(res.statusCode).toBe(303);
      expect(res.headers['set-cookie']).toMatch(/^lockstep_session=; .*Max-Age=0/);
    });

    it('refuses a logout posted from another origin (logout CSRF) and keeps the session', async () => {
      for (const origin of ['https://evil.example', 'null']) {
        const res = await call('POST', '/ui/logout', { headers: { origin } });
        expect(res.statusCode).toBe(403);
        expect(res.headers['set-cookie']).toBeUndefined();
      }
      const crossSite = await call('POST', '/ui/logout', { headers: { 'sec-fetch-site': 'cross-site' } });
      expect(crossSite.statusCode).toBe(403);
    });

    it('lets operators retry and stop runs from the page, same origin only', async () => {
      const operatorCookie = await loginAs(tokens.operator);
      const auditorCookie = await loginAs(tokens.auditor);
      const page = await call('GET', '/ui/groups/alpha', { headers: { cookie: operatorCookie } });
      expect(page.text).toContain('data-testid="retry-form"');
      expect(page.text).toContain('data-testid="stop-form"');
      const asAuditor = await call('GET', '/ui/groups/alpha', { headers: { cookie: auditorCookie } });
      expect(asAuditor.text).not.toContain('data-testid="stop-form"');
      const origin = 'http://lockstep.test';
      const post = (path: string, cookie: string, body: Record<string, string>, extra: Record<string, string> = {}) =>
        call('POST', path, { body: form(body), headers: { ...formHeaders, cookie, ...extra } });
      const before = runCalls.length;
      // no Origin, a foreign one, an auditor, an unconfirmed stop: refused, nothing called
      expect((await post('/ui/runs/run-abcdefgh-1/retry', operatorCookie, {})).statusCode).toBe(403);
      expect(
        (
          await post(
            '/ui/runs/run-abcdefgh-1/stop',
            operatorCookie,
            { confirm: 'yes' },
            { origin: 'https://x.example' },
          )
        ).statusCode,
      ).toBe(403);
      expect(
        (await post('/ui/runs/run-abcdefgh-1/stop', auditorCookie, { confirm: 'yes' }, { origin })).statusCode,
      ).toBe(403);
      expect((await post('/ui/runs/run-abcdefgh-1/stop', operatorCookie, {}, { origin })).statusCode).toBe(400);
      expect(runCalls.length).toBe(before);
      const retried = await post('/ui/runs/run-abcdefgh-1/retry', operatorCookie, { reason: 'now' }, { origin });
      expect(retried.statusCode).toBe(303);
      expect(retried.headers.location).toBe('/ui/groups/alpha');
      const stopped = await post('/ui/runs/run-abcdefgh-1/stop', operatorCookie, { confirm: 'yes' }, { origin });
      expect(stopped.statusCode).toBe(303);
      expect(runCalls.slice(before)).toEqual([
        {
          action: 'retry',
          runId: 'run-abcdefgh-1',
          opts: { trigger: { kind: 'operator', by: OPERATOR, reason: 'now' } },
        },
        { action: 'stop', runId: 'run-abcdefgh-1', opts: { trigger: { kind: 'operator', by: OPERATOR } } },
      ]);
      const refused = await post('/ui/runs/run-finished-1/stop', operatorCookie, { confirm: 'yes' }, { origin });
      expect(refused.statusCode).toBe(409);
      expect(refused.text).toContain('RUN_STATE_INVALID');
    });
  });

  it('prefixes links and the cookie path with the public base path, with Secure cookies on https', async () => {
    const mounted = createApi({
      stores,
      service,
      auth: { jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, roles: { [OPERATOR]: 'operator' } },
      checkpointPublicKeys: {},
      clock: { nowMs: () => NOW },
      logger,
      publicBaseUrl: 'https://lockstep.example/audit/',
    });
    const base = { query: {}, requestId: 'r' };
    const accepted = await mounted({
      ...base,
      method: 'POST',
      path: '/v1/groups/alpha/rotations',
      headers: { authorization: `Bearer ${tokens.operator}` },
    });
    expect(accepted.headers.location).toBe('/audit/v1/runs/run-0000-1111-2222');
    const login = await mounted({
      ...base,
      method: 'POST',
      path: '/ui/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from(new URLSearchParams({ token: tokens.operator }).toString()),
    });
    expect(login.headers.location).toBe('/audit/ui');
    expect(login.headers['set-cookie']).toMatch(/; Path=\/audit\/ui; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    const doc = JSON.parse(
      String((await mounted({ ...base, method: 'GET', path: '/openapi.json', headers: {} })).body),
    );
    expect(doc.servers).toEqual([{ url: 'https://lockstep.example/audit/' }]);
    expect(() =>
      createApi({
        stores,
        auth: { jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, roles: {} },
        checkpointPublicKeys: {},
        clock: { nowMs: () => NOW },
        logger,
        publicBaseUrl: 'not a url',
      }),
    ).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('page cookie: Secure unless served from a loopback http URL; sessions end after 30 min; API-key login only with the local IAM', async () => {
    let nowMs = NOW;
    const make = (publicBaseUrl?: string, iamTokenUrl?: string) =>
      createApi({
        stores,
        service,
        auth: {
          jwksUrl: issuer.jwksUrl,
          issuer: issuer.issuer,
          roles: { [OPERATOR]: 'operator' },
          ...(iamTokenUrl ? { iamTokenUrl } : {}),
        },
        checkpointPublicKeys: {},
        clock: { nowMs: () => nowMs },
        logger,
        ...(publicBaseUrl ? { publicBaseUrl } : {}),
      });
    const login = (handler: ApiHandler, host: string) =>
      handler({
        method: 'POST',
        path: '/ui/login',
        query: {},
        requestId: 'r',
        headers: { host, 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(new URLSearchParams({ token: tokens.operator }).toString()),
      });
    const cookieFlags = async (publicBaseUrl: string | undefined, host: string) =>
      (await login(make(publicBaseUrl), host)).headers['set-cookie'] ?? '';
    expect(await cookieFlags(undefined, 'lockstep.example')).toMatch(/; Secure$/);
    expect(await cookieFlags(undefined, '127.0.0.1:4610')).not.toMatch(/Secure/);
    expect(await cookieFlags(undefined, 'localhost:4610')).not.toMatch(/Secure/);
    expect(await cookieFlags('http://127.0.0.1:4610', 'lockstep.example')).not.toMatch(/Secure/);
    expect(await cookieFlags('http://lockstep.example', '127.0.0.1')).toMatch(/; Secure$/);
    expect(await cookieFlags('https://lockstep.example', '127.0.0.1')).toMatch(/; Secure$/);

    const handler = make();
    const cookie = ((await login(handler, 'lockstep.test')).headers['set-cookie'] ?? '').split(';')[0] as string;
    const home = () => handler({ method: 'GET', path: '/ui', query: {}, requestId: 'r', headers: { cookie } });
    expect((await home()).statusCode).toBe(200);
    nowMs += 31 * 60_000;
    const ended = await home();
    expect(ended.statusCode).toBe(401);
    expect(String(ended.body)).toContain('Your session ended: Your session expired');

    for (const url of ['https://iam.cloud.ibm.com/identity/token', 'http://iam.example/identity/token', 'nonsense']) {
      expect(() => make(undefined, url)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
    expect(() => make(undefined, 'http://127.0.0.1:4601/identity/token')).not.toThrow();
  });

  describe('DR routes', () => {
    it('serves the endpoints descriptor and the drill chain; POST /drills needs the drill service', async () => {
      // Arrange: one recorded drill and its signed checkpoint
      const drill = buildDrillRecord({
        kind: 'drill',
        groupId: 'alpha' as never,
        seq: 1,
        drillId: 'drill-1',
        trigger: { kind: 'operator', by: OPERATOR },
        startedAtMs: NOW,
        finishedAtMs: NOW,
        lineageHead: { generation: 5, hash: alphaChain[4]!.hash },
        generationsChecked: [5],
        switchover: {
          wrappedAt: null,
          keyVersionId: null,
          ciphertext: null,
          plaintextSha256: null,
          aad: [],
          switchoverMs: null,
          answeredBy: null,
        },
        members: [
          {
            role: 'primary',
            region: 'us-south',
            instanceId: '7c3a2b1e-0d4f-4a5b-9c8d-1e2f3a4b5c6d',
            keyId: '0f1e2d3c-4b5a-4968-8776-655443322110',
            crn: 'crn:v1:bluemix:public:kms:us-south:a/0123456789abcdef:7c3a2b1e-0d4f-4a5b-9c8d-1e2f3a4b5c6d:key:0f1e2d3c-4b5a-4968-8776-655443322110',
            endpoints: { public: 'https://us-south.kms.cloud.ibm.com', private: null },
            health: 'unreachable',
            canaries: [{ generation: 5, ok: false, error: 'connection refused' }],
            switchover: null,
          },
        ],
        result: 'failed',
        problems: ['the primary could not wrap a fresh DEK'],
      } as never);
      const cp = signDrillCheckpoint(
        { groupId: drill.groupId, seq: 1, headHash: drill.hash, signedAtMs: NOW },
        { privateKey: keys.pair.privateKey },
      );
      stores.drills = {
        append: async () => undefined,
        head: async () => drill,
        list: async () => ({ items: [drill] }),
        chain: async () => [drill],
        putCheckpoint: async () => undefined,
        checkpoints: async () => [cp],
      };
      try {
        // Act
        const ep = await call('GET', '/v1/groups/alpha/endpoints', { token: tokens.auditor });
        const list = await call('GET', '/v1/groups/alpha/drills', { token: tokens.auditor });
        const post = await call('POST', '/v1/groups/alpha/drills', { token: tokens.operator });
        const proof = await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor });
        // Assert
        expect(ep.statusCode).toBe(200);
        expect(ep.json().members[0].endpoints.public).toBe('https://us-south.kms.cloud.ibm.com');
        expect(ep.json().members[0].endpoints.private).toBe('https://private.us-south.kms.cloud.ibm.com');
        expect(list.json()).toMatchObject({ items: [{ seq: 1, hash: drill.hash }], checkpoint: { seq: 1 } });
        expect(post.statusCode).toBe(500);
        expect(post.json().error.code).toBe('CONFIG_INVALID');
        expect(proof.json().chain.drills).toMatchObject({ ok: true, length: 1, signedThroughSeq: 1 });
        expect((await call('GET', '/v1/groups/alpha/drills', { token: tokens.outsider })).statusCode).toBe(403);
      } finally {
        delete stores.drills;
      }
    });

    it('serves the late evidence chain, and the proof verifies it against the generation records', async () => {
      // Arrange: one late evidence record of generation 5 and its signed checkpoint
      const gen = alphaChain[4]!;
      const record = buildEvidenceRecord({
        kind: 'evidence',
        groupId: gen.groupId,
        seq: 1,
        generation: 5,
        generationHash: gen.hash,
        runId: gen.runId,
        crn: gen.members[0]!.crn,
        evidence: {
          eventId: '5d2b1a3e-6f4c-4b8a-9e1d-2c3b4a5f6e7d',
          action: 'kms.secrets.rotate',
          eventTimeMs: NOW,
          initiator: 'iam-ServiceId-lockstep',
          outcome: 'success',
        },
        recordedAtMs: NOW,
      });
      const cp = signEvidenceCheckpoint(
        { groupId: record.groupId, seq: 1, headHash: record.hash, signedAtMs: NOW },
        { privateKey: keys.pair.privateKey },
      );
      let stored = record;
      stores.evidence = {
        append: async () => undefined,
        head: async () => stored,
        list: async () => ({ items: [stored] }),
        chain: async () => [stored],
        putCheckpoint: async () => undefined,
        checkpoints: async () => [cp],
      };
      try {
        // Act
        const list = await call('GET', '/v1/groups/alpha/evidence', { token: tokens.auditor });
        const proof = await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor });
        stored = { ...record, generationHash: 'f'.repeat(64) };
        const forged = await call('GET', '/v1/groups/alpha/proof', { token: tokens.auditor });
        // Assert
        expect(list.json()).toMatchObject({
          items: [{ seq: 1, hash: record.hash }],
          checkpoint: { chain: 'evidence' },
        });
        expect(proof.json().chain.evidence).toMatchObject({ ok: true, length: 1, signedThroughSeq: 1 });
        expect(proof.json().evidenceCheckpoint).toMatchObject({ chain: 'evidence', seq: 1 });
        expect(forged.json().chain.ok).toBe(false);
        expect(forged.json().chain.evidence.breaks.map((b: { kind: string }) => b.kind)).toEqual([
          'hash-mismatch',
          'anchor-mismatch',
        ]);
        expect((await call('GET', '/v1/groups/alpha/evidence', { token: tokens.outsider })).statusCode).toBe(403);
      } finally {
        delete stores.evidence;
      }
    });
  });

  it('validated every documented operation at least once', () => {
    expect(openapi.unseen((k) => / (200|202|303)$/.test(k))).toEqual([]);
  });
});
