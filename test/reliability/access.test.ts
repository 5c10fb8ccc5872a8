/**
 * Secrets and access (issue 8), access half: who gets in.
 *
 * - API token matrix: every operation of the served `/openapi.json` (coverage asserted) over real HTTP through the
 *   `api` function as Code Engine runs it, with every credential case of `_lib/accessTokens.ts` → 401 / 403 with the
 *   error body of the design (JSON `{error:{code,message,requestId}}` + `WWW-Authenticate` on /v1, HTML on /ui), no
 *   store change for any refused request (digest of every document), no token echoed in a response or written to a
 *   log; the valid cases succeed (so every refusal could have been a success).
 * - Function authentication: the `events` function (HMAC signature with a time window, static token, IAM bearer)
 *   and the `rotate` function (IAM bearer of listed identities; cron pings with the subscription's secret in their
 *   data) → 401 for every bad credential with no effect; a signed event replayed → answered as a duplicate with no
 *   second effect.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CE_PING_TYPE, signBody, TOKEN_HEADER } from '../../src/codeengine/index.js';
import type { Group } from '../../src/core/index.js';
import { storeConfigFromEnv } from '../../src/store/index.js';
import { createGroupOn, type FunctionStack, startFunctionStack } from './_lib/accessStack.js';
import { authorizationOf, type CredentialCase, credentialCases } from './_lib/accessTokens.js';
import { recordScenario } from './_lib/report.js';
import { storeDigest } from './_lib/secretsStore.js';

let s: FunctionStack;
let group: Group;
let cases: CredentialCase[];

beforeAll(async () => {
  s = await startFunctionStack({
    functionLogLevel: 'debug',
    extraEnv: ({ iamId }) => ({ LOCKSTEP_EVENTS_IAM_IDS: iamId('operator'), LOCKSTEP_TICK_IAM_IDS: iamId('operator') }),
  });
  group = await createGroupOn(s, 'access');
  cases = await credentialCases(s.emu.iam, s.signingKey);
}, 120_000);

afterAll(async () => {
  await s?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

async function call(url: string, init: RequestInit): Promise<Answer> {
  const res = await fetch(url, { ...init, redirect: 'manual' });
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    headers[k] = v;
  });
  return { status: res.status, headers, text: await res.text() };
}

type RouteClass = 'public' | 'read' | 'act' | 'page' | 'page-act' | 'login';
interface Operation {
  method: string;
  path: string;
  summary: string;
  security?: Record<string, unknown>[];
}

function classify(op: Operation): RouteClass {
  if (op.path === '/ui/login') return 'login';
  if (op.security?.some((x) => 'uiSession' in x)) return op.method === 'POST' ? 'page-act' : 'page';
  if (!op.security || op.security.length === 0) return 'public';
  return /\(operator\)/.test(op.summary) || op.method === 'POST' ? 'act' : 'read';
}

/** Run actions (retry/stop) on the matrix's run — the group's completed create run — reach the handler, which refuses. */
const RUN_ACTION = /\/runs\/\{runId\}\/(retry|stop)$/;

function expectedStatus(cls: RouteClass, c: CredentialCase, op: Operation): number {
  if (cls === 'public') return op.method === 'POST' ? 303 : 200;
  if (c.kind === 'bad') return 401;
  // a page session exists only after a login with a role: the raw token as the cookie is no session
  if (c.kind === 'no-role') return cls === 'page' || cls === 'page-act' ? 401 : 403;
  if (cls === 'act' || cls === 'page-act') {
    if (c.kind === 'auditor') return 403;
    if (RUN_ACTION.test(op.path)) return 409;
    // a rotation is accepted (202, it runs on later ticks); a drill runs at once and is created (201)
    return op.method !== 'POST' ? 200 : /\/drills$/.test(op.path) ? 201 : 202;
  }
  return cls === 'login' ? 303 : 200;
}

describe('secrets and access: who gets in', () => {
  it('API: every route × every credential case → 401/403 with the error body, no state change, valid ones pass', async () => {
    const api = s.runner.url('api');
    const doc = JSON.parse((await call(`${api}/openapi.json`, {})).text) as {
      paths: Record<string, Record<string, { summary: string; security?: Record<string, unknown>[] }>>;
    };
    const ops: Operation[] = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([m, o]) => ({
        method: m.toUpperCase(),
        path,
        summary: o.summary,
        security: o.security,
      })),
    );
    const record = await s.stores.lineage.get(group.id, 1);
    const [firstRun] = await s.stores.runs.listByGroup(group.id, 5);
    const values: Record<string, string> = {
      groupId: group.id,
      n: '1',
      keyVersionId: record.members[0]!.keyVersionId,
      runId: firstRun!.id,
    };
    const violations: string[] = [];
    const covered = new Set<string>();
    let requests = 0;

    // page sessions of the cases with a role, from the login form (the cookie never holds the token itself)
    const sessions = new Map<string, string>();
    for (const c of cases.filter((x) => x.kind === 'auditor' || x.kind === 'operator')) {
      const res = await call(`${api}/ui/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: api },
        body: new URLSearchParams({ token: c.token! }).toString(),
      });
      sessions.set(c.name, (res.headers['set-cookie'] ?? '').split(';')[0]!);
    }
    const request = async (op: Operation, cls: RouteClass, c: CredentialCase) => {
      const headers: Record<string, string> = {};
      let body: string | undefined;
      const auth = authorizationOf(c);
      if (cls === 'public' || cls === 'read' || cls === 'act') {
        if (auth) headers.authorization = auth;
      } else if (cls === 'page' || cls === 'page-act') {
        const v = c.token ?? c.rawAuthorization?.replace(/\s+/g, '');
        const session = sessions.get(c.name);
        if (session) headers.cookie = session;
        else if (v) headers.cookie = `lockstep_session=${v}`;
        if (cls === 'page-act') {
          headers['content-type'] = 'application/x-www-form-urlencoded';
          headers.origin = api;
          body = new URLSearchParams({ reason: 'access matrix', confirm: 'yes' }).toString();
        }
      } else {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        body = new URLSearchParams({ token: c.token ?? c.rawAuthorization ?? '' }).toString();
      }
      if (op.method === 'POST' && op.path.startsWith('/v1/')) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify({ reason: 'access matrix' });
      }
      let path = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
        const v = values[name];
        if (v === undefined) throw new Error(`no value for path parameter ${name} of ${op.method} ${op.path}`);
        return encodeURIComponent(v);
      });
      if (op.path === '/v1/export') path += '?format=jsonl';
      if (op.path === '/ui/export') path += '?format=csv';
      return call(`${api}${path}`, { method: op.method, headers, ...(body === undefined ? {} : { body }) });
    };

    const check = (op: Operation, cls: RouteClass, c: CredentialCase, a: Answer) => {
      requests += 1;
      const where = `${op.method} ${op.path} [${c.name}]`;
      const want = expectedStatus(cls, c, op);
      if (a.status !== want) {
        const id = a.headers['x-request-id'];
        const logged = id ? s.functionLogs.filter((l) => l.includes(id) && l.includes('"level":"error"')) : [];
        violations.push(
          `${where}: ${a.status}, expected ${want}: ${a.text.slice(0, 160)} ${logged.join(' ').slice(0, 600)}`,
        );
        return;
      }
      // no response echoes the credential, the login's session cookie included (it holds a sealed session)
      const echoed = c.token && c.token.length > 20 ? c.token : undefined;
      const headerText = Object.entries(a.headers)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n');
      if (echoed && (a.text.includes(echoed) || headerText.includes(echoed))) violations.push(`${where}: token echoed`);
      if (want < 400) return;
      if (op.path.startsWith('/v1/')) {
        let body: { error?: { code?: unknown; message?: unknown; requestId?: unknown } } = {};
        try {
          body = JSON.parse(a.text);
        } catch {
          // reported below
        }
        const code = want === 401 ? 'UNAUTHENTICATED' : want === 409 ? 'RUN_STATE_INVALID' : 'FORBIDDEN';
        if (!a.headers['content-type']?.startsWith('application/json')) violations.push(`${where}: not JSON`);
        if (body.error?.code !== code) violations.push(`${where}: code ${String(body.error?.code)}, expected ${code}`);
        if (typeof body.error?.message !== 'string' || body.error.message.length < 10)
          violations.push(`${where}: no message saying what to fix`);
        if (typeof body.error?.requestId !== 'string') violations.push(`${where}: no requestId`);
        if (want === 401 && !a.headers['www-authenticate']?.startsWith('Bearer realm="lockstep"'))
          violations.push(`${where}: no WWW-Authenticate challenge`);
      } else if (!a.headers['content-type']?.startsWith('text/html')) {
        violations.push(`${where}: the page answered ${a.headers['content-type']}, not HTML`);
      }
    };

    // Pass 1: every refused case, every route. Nothing may change in the store.
    const before = await storeDigest(s.couch);
    const routes = ops.map((op) => ({ op, cls: classify(op) }));
    for (const { op, cls } of routes) {
      covered.add(`${op.method} ${op.path}`);
      const refused = cases.filter((c) => expectedStatus(cls, c, op) >= 400 || cls === 'public');
      const answers = await Promise.all(refused.map((c) => request(op, cls, c)));
      for (const [i, c] of refused.entries()) check(op, cls, c, answers[i]!);
    }
    const after = await storeDigest(s.couch);
    if (after !== before) violations.push('the store changed during refused requests');

    // Pass 2: the credentials that must pass (the operator's POST last: it starts a run, so the store changes).
    for (const { op, cls } of [...routes].sort(
      (a, b) => Number(a.op.method === 'POST') - Number(b.op.method === 'POST'),
    )) {
      if (cls === 'public') continue;
      for (const c of cases.filter((x) => expectedStatus(cls, x, op) < 400))
        check(op, cls, c, await request(op, cls, c));
    }
    if ((await storeDigest(s.couch)) === after) violations.push('the operator POST changed nothing: check is void');

    // path, method and credential-carrier variants: never let an unauthenticated caller read or act
    const operatorToken = cases.find((c) => c.kind === 'operator')!.token!;
    const variants: Array<[string, string, Record<string, string>]> = [
      ['GET', '/v1/groups/', {}],
      ['GET', '/v1//groups', {}],
      ['GET', '//v1/groups', {}],
      ['GET', `/v1/groups/${group.id}/`, {}],
      ['GET', `/v1/groups/%${group.id.charCodeAt(0).toString(16)}${group.id.slice(1)}`, {}],
      ['GET', '/v1/%67roups', {}],
      ['GET', '/V1/GROUPS', {}],
      ['GET', '/v1/groups?limit=1&limit=2', {}],
      ['HEAD', '/v1/groups', {}],
      ['OPTIONS', '/v1/groups', {}],
      ['DELETE', `/v1/groups/${group.id}`, {}],
      ['POST', `/v1/groups/${group.id}/rotations/`, { 'content-type': 'application/json' }],
      ['GET', `/v1/groups/${group.id}/generations/1/`, {}],
      ['GET', '/v1/export?format=csv', { cookie: `lockstep_session=${operatorToken}` }],
      ['POST', `/v1/groups/${group.id}/rotations`, { cookie: `lockstep_session=${operatorToken}` }],
      ['GET', '/ui/export?format=csv', { authorization: `Bearer ${operatorToken}` }],
      ['GET', '/v1/groups', { authorization: `bearer  ${operatorToken} x` }],
      ['GET', '/v1/groups', { authorization: `Bearer ${operatorToken.split('.').slice(0, 2).join('.')}.` }],
    ];
    const beforeVariants = await storeDigest(s.couch);
    for (const [method, path, headers] of variants) {
      const a = await call(`${api}${path}`, { method, headers, ...(method === 'POST' ? { body: '{}' } : {}) });
      requests += 1;
      // refused before any handler runs: 401/403, or no such route/method (404/405) — never a 2xx, 400 or 409
      if (![401, 403, 404, 405].includes(a.status) || /currentGeneration|fingerprint|"runId"/.test(a.text)) {
        violations.push(`${method} ${path} ${Object.keys(headers).join(',')}: ${a.status} ${a.text.slice(0, 120)}`);
      }
    }
    if ((await storeDigest(s.couch)) !== beforeVariants) violations.push('a variant request changed the store');

    // coverage: every documented operation was exercised, and the /v1 ones are bearer-protected
    const documented = ops.map((o) => `${o.method} ${o.path}`);
    for (const d of documented) if (!covered.has(d)) violations.push(`${d}: not exercised`);
    const v1 = routes.filter((r) => r.op.path.startsWith('/v1/'));
    for (const r of v1) if (r.cls !== 'read' && r.cls !== 'act') violations.push(`${r.op.path}: not bearer-protected`);
    const actRoutes = routes.filter((r) => r.cls === 'act').map((r) => `${r.op.method} ${r.op.path}`);
    // issue 13: auditors read everything, runs included (the README's promise)
    if (routes.find((r) => r.op.method === 'GET' && r.op.path === '/v1/runs/{runId}')?.cls !== 'read')
      violations.push('GET /v1/runs/{runId}: auditors cannot read runs');

    // no presented token in any function log line
    const logText = s.functionLogs.join('\n');
    for (const c of cases)
      if (c.token && c.token.length > 20 && logText.includes(c.token)) violations.push(`${c.name}: token logged`);

    const result = recordScenario({
      scenario: `API tokens: every route × ${cases.length} credential cases`,
      area: 'access',
      runs: requests,
      violations: violations.length,
      notes: `${documented.length} documented operations (${v1.length} under /v1, operator-only: ${actRoutes.join(', ')}); no token, garbage, expired, forged (foreign key ×2, alg none ×2, HS256 confusion, tampered), wrong audience/issuer, no identity, not yet valid, no exp, no iat, exp 300 years ahead, issued 2 h ago or in the future, non-string iam_id or sub → 401; no role → 403; auditor on operator routes → 403; store unchanged by refusals; ${variants.length} path/method/carrier variants (trailing or double slashes, encoded segments, HEAD/OPTIONS/DELETE, session cookie on /v1, bearer on /ui) never 2xx`,
      examples: violations.slice(0, 8),
    });
    expect(documented.length).toBeGreaterThanOrEqual(15);
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);

  it('page: sealed short-lived session cookie, Secure off only on loopback http, no cross-origin POST, no API-key login outside the local stack', async () => {
    const api = s.runner.url('api');
    const violations: string[] = [];
    let requests = 0;
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const operator = await s.emu.iam.issueToken('operator');
    const send = async (path: string, init: RequestInit) => {
      requests += 1;
      return call(`${api}${path}`, init);
    };
    /** A POST with a chosen Host header (fetch cannot set one). */
    const postWithHost = (path: string, host: string, body: string) =>
      new Promise<Answer>((resolve, reject) => {
        requests += 1;
        const u = new URL(`${api}${path}`);
        const req = httpRequest(
          { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { ...form, host } },
          (res) => {
            let text = '';
            res.on('data', (d) => {
              text += d;
            });
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, text }),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });

    // the session cookie: sealed, never the IAM token, HttpOnly, SameSite=Strict, /ui, at most 30 min
    const login = await send('/ui/login', {
      method: 'POST',
      headers: { ...form, origin: api },
      body: new URLSearchParams({ token: operator }).toString(),
    });
    const cookie = login.headers['set-cookie'] ?? '';
    const value = /^lockstep_session=([^;]*)/.exec(cookie)?.[1] ?? '';
    if (login.status !== 303) violations.push(`login: ${login.status}`);
    if (value === '' || cookie.includes(operator) || value.split('.').length === 3)
      violations.push('cookie: holds the IAM token or a JWT');
    for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/ui'])
      if (!cookie.includes(attr)) violations.push(`cookie: no ${attr}`);
    const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)?.[1] ?? 'NaN');
    if (!(maxAge > 0 && maxAge <= 1800)) violations.push(`cookie: Max-Age ${maxAge}`);
    if (/Secure/.test(cookie)) violations.push('cookie: Secure on a loopback http URL (browsers would drop it)');
    const session = `lockstep_session=${value}`;
    if ((await send('/ui', { headers: { cookie: session } })).status !== 200) violations.push('session: refused');
    if ((await send('/ui', { headers: { cookie: `lockstep_session=${operator}` } })).status !== 401)
      violations.push('session: the raw IAM token is accepted as a session');
    // served under a public host name: Secure by default (serverless.yml sets no public URL)
    for (const host of ['lockstep.example.com', 'lockstep.abc123.us-south.codeengine.appdomain.cloud']) {
      const a = await postWithHost('/ui/login', host, new URLSearchParams({ token: operator }).toString());
      if (a.status !== 303 || !/; Secure/.test(a.headers['set-cookie'] ?? ''))
        violations.push(`cookie for Host ${host}: ${a.status} ${a.headers['set-cookie'] ?? 'none'} (not Secure)`);
    }

    // logout CSRF: a foreign, null or cross-site POST changes nothing; the page's own logout works
    for (const [name, headers] of [
      ['foreign Origin', { origin: 'https://evil.example' }],
      ['null Origin', { origin: 'null' }],
      ['cross-site fetch metadata', { 'sec-fetch-site': 'cross-site' }],
    ] as const) {
      const a = await send('/ui/logout', { method: 'POST', headers: { ...headers, cookie: session } });
      if (a.status !== 403 || a.headers['set-cookie'] !== undefined)
        violations.push(`logout ${name}: ${a.status} ${a.headers['set-cookie'] ?? ''}`);
    }
    const own = await send('/ui/logout', { method: 'POST', headers: { origin: api, cookie: session } });
    if (own.status !== 303 || !/Max-Age=0/.test(own.headers['set-cookie'] ?? '')) violations.push('own logout failed');
    const loginCsrf = await send('/ui/login', {
      method: 'POST',
      headers: { ...form, origin: 'https://evil.example' },
      body: new URLSearchParams({ token: operator }).toString(),
    });
    if (loginCsrf.status !== 403 || loginCsrf.headers['set-cookie']) violations.push(`login CSRF: ${loginCsrf.status}`);
    // operator forms need the Origin header and this origin
    const [run] = await s.stores.runs.listByGroup(group.id, 1);
    for (const headers of [{}, { origin: 'https://evil.example' }] as Record<string, string>[]) {
      const before = await storeDigest(s.couch);
      const a = await send(`/ui/runs/${run!.id}/retry`, {
        method: 'POST',
        headers: { ...form, ...headers, cookie: session },
        body: '',
      });
      if (a.status !== 403) violations.push(`retry form ${JSON.stringify(headers)}: ${a.status}`);
      if ((await storeDigest(s.couch)) !== before) violations.push('a refused form changed the store');
    }

    // API-key login: not offered and not answered outside the local stack (no key-validity oracle)
    const loginPage = await send('/ui', {});
    if (loginPage.text.includes('name="apikey"')) violations.push('the login page offers API-key login');
    const withKey = async (apikey: string) =>
      send('/ui/login', {
        method: 'POST',
        headers: { ...form, origin: api },
        body: new URLSearchParams({ apikey }).toString(),
      });
    const valid = await withKey(s.emu.iam.apiKeyFor('operator'));
    const invalid = await withKey('not-a-key-0000000000000000000000');
    if (valid.status !== 401 || valid.headers['set-cookie']) violations.push(`API-key login: ${valid.status}`);
    const strip = (t: string) => t.replace(/req-[\w-]+|[0-9a-f]{8}-[0-9a-f-]{27}/g, '');
    if (valid.status !== invalid.status || strip(valid.text) !== strip(invalid.text))
      violations.push('API-key login: a valid and an invalid key get different answers');

    const result = recordScenario({
      scenario: 'page: session cookie, cross-origin POSTs, API-key login',
      area: 'access',
      runs: requests,
      violations: violations.length,
      notes:
        'login sets a sealed session (not the IAM token, not a JWT; HttpOnly, SameSite=Strict, Path=/ui, ≤ 30 min), Secure for public host names and off only on loopback http; the raw IAM token is no session; logout and login with a foreign/null Origin or cross-site fetch metadata → 403 without a cookie change; operator forms without or with a foreign Origin → 403, store unchanged; outside the local stack no API-key field and the same 401 for a valid and an invalid key',
      examples: violations.slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 60_000);

  it('local store: no admin party — without the credentials nothing is read or written', async () => {
    const violations: string[] = [];
    let requests = 0;
    const dbs = Object.values(s.stores.databases);
    const [run] = await s.stores.runs.listByGroup(group.id, 1);
    const runsDb = s.stores.databases.runs;
    const wrong = `Basic ${Buffer.from(`${s.couch.credentials.username}:not-the-password`).toString('base64')}`;
    const attempts: Array<[string, string, string, string?]> = [
      ['GET', '/', ''],
      ['GET', '/_all_dbs', ''],
      ['GET', `/${runsDb}/_all_docs?include_docs=true`, ''],
      ['GET', `/${runsDb}/${encodeURIComponent(`run:${run!.id}`)}`, ''],
      ['GET', `/${runsDb}/_changes?include_docs=true`, ''],
      ['POST', `/${runsDb}/_find`, '{"selector":{}}'],
      ['PUT', `/${runsDb}/forged`, '{"status":"completed"}'],
      ['POST', `/${runsDb}/_bulk_docs`, '{"docs":[{"_id":"forged2"}]}'],
      ['DELETE', `/${dbs[0]}`, ''],
      ['PUT', '/attacker-db', ''],
    ];
    const before = await storeDigest(s.couch);
    for (const [auth, label] of [
      [undefined, 'no credentials'],
      [wrong, 'wrong password'],
      ['Bearer x', 'a bearer token'],
    ] as const) {
      for (const [method, path, body] of attempts) {
        requests += 1;
        const res = await fetch(`${s.couch.url}${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
          ...(body ? { body } : {}),
        });
        const text = await res.text();
        if (res.status !== 401) violations.push(`${label}: ${method} ${path} → ${res.status}`);
        if (/escrow|ciphertext|"_rev"/.test(text)) violations.push(`${label}: ${method} ${path} leaked a document`);
      }
    }
    if ((await storeDigest(s.couch)) !== before) violations.push('the store changed');
    requests += 1;
    if (!(await fetch(`${s.couch.url}/_all_dbs`, { headers: { authorization: s.couch.authorization } })).ok)
      violations.push('the real credentials are refused: check is void');
    // and the functions refuse to start without store credentials, even for the loopback store
    const { CLOUDANT_USERNAME: _u, CLOUDANT_PASSWORD: _p, ...noCreds } = s.env;
    requests += 1;
    try {
      storeConfigFromEnv(noCreds);
      violations.push('storeConfigFromEnv accepted a loopback store without credentials');
    } catch (err) {
      if ((err as { code?: string }).code !== 'CONFIG_INVALID') violations.push(`config: ${String(err)}`);
    }
    const result = recordScenario({
      scenario: 'local store: credentials required',
      area: 'access',
      runs: requests,
      violations: violations.length,
      notes: `${attempts.length} reads and writes (all databases, run documents, _changes, _find, PUT, _bulk_docs, DELETE/PUT database) × no credentials, a wrong password, a bearer token → 401, nothing leaked, store unchanged; the real credentials work; storeConfigFromEnv without credentials → CONFIG_INVALID, loopback included`,
      examples: violations.slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 60_000);

  it('events and rotate functions: bad signatures, out-of-window or replayed events and bad tokens are refused or ignored', async () => {
    const eventsUrl = s.runner.url('events');
    const rotateUrl = s.runner.url('rotate');
    const raw = s.emu.kp.events().slice(0, 1)[0];
    expect(raw).toBeDefined();
    const eventBody = (suffix: string) => JSON.stringify({ ...raw, id: `${raw!.id}-${suffix}` });
    const violations: string[] = [];
    let requests = 0;
    const nowSec = () => Math.floor(Date.now() / 1000);
    const json = { 'content-type': 'application/json' };

    /** Sends one request; checks status, and that the store changed iff `effect`. Returns the answer. */
    const expectAnswer = async (name: string, url: string, init: RequestInit, want: number, effect: boolean) => {
      const before = await storeDigest(s.couch);
      const a = await call(url, init);
      requests += 1;
      const changed = (await storeDigest(s.couch)) !== before;
      if (a.status !== want) violations.push(`${name}: ${a.status}, expected ${want}: ${a.text.slice(0, 160)}`);
      else if (changed !== effect) violations.push(`${name}: store ${changed ? 'changed' : 'unchanged'}`);
      if (want === 401) {
        const body = JSON.parse(a.text) as { error?: { code?: string } };
        if (body.error?.code !== 'UNAUTHENTICATED') violations.push(`${name}: code ${body.error?.code}`);
      }
      return a;
    };

    /** Sends refused requests (concurrently); every one must get 401 UNAUTHENTICATED and the store must not change. */
    const expectRefused = async (what: string, url: string, list: Array<[string, RequestInit]>) => {
      const before = await storeDigest(s.couch);
      const answers = await Promise.all(list.map(([, init]) => call(url, init)));
      requests += list.length;
      for (const [k, a] of answers.entries()) {
        const name = `${what} ${list[k]![0]}`;
        if (a.status !== 401) violations.push(`${name}: ${a.status}, expected 401: ${a.text.slice(0, 160)}`);
        else if ((JSON.parse(a.text) as { error?: { code?: string } }).error?.code !== 'UNAUTHENTICATED')
          violations.push(`${name}: not UNAUTHENTICATED`);
      }
      if ((await storeDigest(s.couch)) !== before) violations.push(`${what}: a refused request changed the store`);
    };

    // events: HMAC signature
    const body1 = eventBody('hmac');
    const signed = signBody(s.eventsHmacSecret, body1, nowSec());
    const refusedEvents: Array<[string, Record<string, string>, string]> = [
      ['unsigned', {}, body1],
      ['wrong secret', signBody('not-the-secret', body1, nowSec()), body1],
      ['signature of another body', signed, eventBody('other')],
      ['too old (15 min)', signBody(s.eventsHmacSecret, body1, nowSec() - 900), body1],
      ['in the future (15 min)', signBody(s.eventsHmacSecret, body1, nowSec() + 900), body1],
      ['malformed signature', { ...signed, 'x-lockstep-signature': 'v1=zz' }, body1],
      ['non-numeric timestamp', { ...signed, 'x-lockstep-timestamp': `${nowSec()}.5` }, body1],
      ['wrong static token', { [TOKEN_HEADER]: 'not-the-token' }, body1],
      ...cases
        .filter((c) => c.kind !== 'operator' && authorizationOf(c))
        .map((c): [string, Record<string, string>, string] => [
          `bearer: ${c.name}`,
          { authorization: authorizationOf(c)! },
          body1,
        ]),
    ];
    await expectRefused(
      'events',
      eventsUrl,
      refusedEvents.map(([name, headers, body]) => [name, { method: 'POST', headers: { ...json, ...headers }, body }]),
    );
    const first = await expectAnswer(
      'events signed',
      eventsUrl,
      { method: 'POST', headers: { ...json, ...signed }, body: body1 },
      200,
      true,
    );
    const replay = await expectAnswer(
      'events replayed',
      eventsUrl,
      { method: 'POST', headers: { ...json, ...signed }, body: body1 },
      200,
      false,
    );
    if (JSON.parse(first.text).duplicates !== 0) violations.push('first delivery counted as duplicate');
    if (JSON.parse(replay.text).duplicates !== 1)
      violations.push(`replay not a duplicate: ${replay.text.slice(0, 200)}`);
    // static token and IAM bearer paths, each replayed once
    for (const [name, headers, suffix] of [
      ['static token', { [TOKEN_HEADER]: s.eventsToken }, 'token'],
      [
        'IAM bearer (listed identity)',
        { authorization: authorizationOf(cases.find((c) => c.kind === 'operator')!)! },
        'iam',
      ],
    ] as const) {
      const init = { method: 'POST', headers: { ...json, ...headers }, body: eventBody(suffix) };
      await expectAnswer(`events ${name}`, eventsUrl, init, 200, true);
      const again = await expectAnswer(`events ${name} replayed`, eventsUrl, init, 200, false);
      if (JSON.parse(again.text).duplicates !== 1) violations.push(`${name} replay not a duplicate`);
    }

    // rotate: IAM bearer of listed identities only (here: the operator); cron pings only with the subscription's
    // secret in their data (the Ce-Type header alone is something anyone can send)
    const ping = { 'ce-type': CE_PING_TYPE, 'ce-id': 'access-ping', 'ce-source': '/ping', 'ce-specversion': '1.0' };
    const refusedRotate: Array<[string, Record<string, string>]> = [
      ['no credentials', {}],
      ['a cron ping header without the secret', ping],
      [
        'a cron ping header with the operator token',
        { ...ping, authorization: authorizationOf(cases.find((c) => c.kind === 'operator')!)! },
      ],
      ['HMAC-signed (not accepted here)', signBody(s.eventsHmacSecret, '', nowSec())],
      ['events static token (not accepted here)', { [TOKEN_HEADER]: s.eventsToken }],
      ...cases
        .filter((c) => c.kind !== 'operator' && authorizationOf(c))
        .map((c): [string, Record<string, string>] => [`bearer: ${c.name}`, { authorization: authorizationOf(c)! }]),
    ];
    await expectRefused(
      'rotate',
      rotateUrl,
      refusedRotate.map(([name, headers]) => [name, { method: 'POST', headers }]),
    );
    const op = authorizationOf(cases.find((c) => c.kind === 'operator')!)!;
    const tick = await call(rotateUrl, { method: 'POST', headers: { authorization: op } });
    requests += 1;
    if (tick.status !== 200) violations.push(`rotate operator: ${tick.status} ${tick.text.slice(0, 160)}`);
    const pinged = await call(rotateUrl, {
      method: 'POST',
      headers: { ...ping, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'cron', cronSecret: s.cronSecret }),
    });
    requests += 1;
    if (pinged.status !== 200) violations.push(`rotate cron ping with the secret: ${pinged.status}`);
    const delivered = await s.runner.fireCron('rotate');
    requests += 1;
    if (delivered.statusCode !== 200) violations.push(`rotate cron delivery: ${delivered.statusCode}`);

    const logText = s.functionLogs.join('\n');
    for (const secret of [s.eventsHmacSecret, s.eventsToken, ...cases.flatMap((c) => (c.token ? [c.token] : []))]) {
      if (secret.length > 20 && logText.includes(secret)) violations.push('a credential was logged by a function');
    }

    const result = recordScenario({
      scenario: 'events and rotate function authentication',
      area: 'access',
      runs: requests,
      violations: violations.length,
      notes: `events: unsigned, wrong secret, other body, ±15 min outside the 300 s window, malformed, wrong token, ${cases.filter((c) => c.kind !== 'operator' && authorizationOf(c)).length} bad bearer cases → 401, no store change; signed / token / IAM deliveries replayed → duplicate, no second effect. rotate: ${refusedRotate.length} bad credentials → 401; listed operator → 200; cron ping with the subscription secret in its data (HTTP and the runner's delivery) → 200`,
      examples: violations.slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);
});
