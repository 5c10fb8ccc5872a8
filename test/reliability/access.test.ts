/**
 * Secrets and access (issue 8), access half: who gets in.
 *
 * - API token matrix: every operation of the served `/openapi.json` (coverage asserted) over real HTTP through the
 *   `api` function as Code Engine runs it, with every credential case of `_lib/accessTokens.ts` → 401 / 403 with the
 *   error body of the design (JSON `{error:{code,message,requestId}}` + `WWW-Authenticate` on /v1, HTML on /ui), no
 *   store change for any refused request (digest of every document), no token echoed in a response or written to a
 *   log; the valid cases succeed (so every refusal could have been a success).
 * - Function authentication: the `events` function (HMAC signature with a time window, static token, IAM bearer)
 *   and the `rotate` function (IAM bearer of listed identities; cron pings by design) → 401 for every bad
 *   credential with no effect; a signed event replayed → answered as a duplicate with no second effect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CE_PING_TYPE, signBody, TOKEN_HEADER } from '../../src/codeengine/index.js';
import type { Group } from '../../src/core/index.js';
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

type RouteClass = 'public' | 'read' | 'act' | 'page' | 'login';
interface Operation {
  method: string;
  path: string;
  summary: string;
  security?: Record<string, unknown>[];
}

function classify(op: Operation): RouteClass {
  if (op.path === '/ui/login') return 'login';
  if (op.security?.some((x) => 'uiSession' in x)) return 'page';
  if (!op.security || op.security.length === 0) return 'public';
  return /\(operator\)/.test(op.summary) || op.method === 'POST' ? 'act' : 'read';
}

function expectedStatus(cls: RouteClass, c: CredentialCase, op: Operation): number {
  if (cls === 'public') return op.method === 'POST' ? 303 : 200;
  if (c.kind === 'bad') return 401;
  if (c.kind === 'no-role') return 403;
  // a rotation is accepted (202, it runs on later ticks); a drill runs at once and is created (201)
  if (cls === 'act')
    return c.kind === 'auditor' ? 403 : op.method !== 'POST' ? 200 : /\/drills$/.test(op.path) ? 201 : 202;
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

    const request = (op: Operation, cls: RouteClass, c: CredentialCase) => {
      const headers: Record<string, string> = {};
      let body: string | undefined;
      const auth = authorizationOf(c);
      if (cls === 'public' || cls === 'read' || cls === 'act') {
        if (auth) headers.authorization = auth;
      } else if (cls === 'page') {
        const v = c.token ?? c.rawAuthorization?.replace(/\s+/g, '');
        if (v) headers.cookie = `lockstep_session=${v}`;
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
      // no response echoes the credential (the login route's session cookie is the caller's own token, by design)
      const echoed = c.token && c.token.length > 20 ? c.token : undefined;
      const headerText = Object.entries(a.headers)
        .filter(([k]) => !(cls === 'login' && want === 303 && k === 'set-cookie'))
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
        const code = want === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN';
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
    const before = await storeDigest(s.couch.url);
    const routes = ops.map((op) => ({ op, cls: classify(op) }));
    for (const { op, cls } of routes) {
      covered.add(`${op.method} ${op.path}`);
      const refused = cases.filter((c) => expectedStatus(cls, c, op) >= 400 || cls === 'public');
      const answers = await Promise.all(refused.map((c) => request(op, cls, c)));
      for (const [i, c] of refused.entries()) check(op, cls, c, answers[i]!);
    }
    const after = await storeDigest(s.couch.url);
    if (after !== before) violations.push('the store changed during refused requests');

    // Pass 2: the credentials that must pass (the operator's POST last: it starts a run, so the store changes).
    for (const { op, cls } of [...routes].sort(
      (a, b) => Number(a.op.method === 'POST') - Number(b.op.method === 'POST'),
    )) {
      if (cls === 'public') continue;
      for (const c of cases.filter((x) => expectedStatus(cls, x, op) < 400))
        check(op, cls, c, await request(op, cls, c));
    }
    if ((await storeDigest(s.couch.url)) === after) violations.push('the operator POST changed nothing: check is void');

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
    const beforeVariants = await storeDigest(s.couch.url);
    for (const [method, path, headers] of variants) {
      const a = await call(`${api}${path}`, { method, headers, ...(method === 'POST' ? { body: '{}' } : {}) });
      requests += 1;
      // refused before any handler runs: 401/403, or no such route/method (404/405) — never a 2xx, 400 or 409
      if (![401, 403, 404, 405].includes(a.status) || /currentGeneration|fingerprint|"runId"/.test(a.text)) {
        violations.push(`${method} ${path} ${Object.keys(headers).join(',')}: ${a.status} ${a.text.slice(0, 120)}`);
      }
    }
    if ((await storeDigest(s.couch.url)) !== beforeVariants) violations.push('a variant request changed the store');

    // coverage: every documented operation was exercised, and the /v1 ones are bearer-protected
    const documented = ops.map((o) => `${o.method} ${o.path}`);
    for (const d of documented) if (!covered.has(d)) violations.push(`${d}: not exercised`);
    const v1 = routes.filter((r) => r.op.path.startsWith('/v1/'));
    for (const r of v1) if (r.cls !== 'read' && r.cls !== 'act') violations.push(`${r.op.path}: not bearer-protected`);
    const actRoutes = routes.filter((r) => r.cls === 'act').map((r) => `${r.op.method} ${r.op.path}`);

    // no presented token in any function log line
    const logText = s.functionLogs.join('\n');
    for (const c of cases)
      if (c.token && c.token.length > 20 && logText.includes(c.token)) violations.push(`${c.name}: token logged`);

    const result = recordScenario({
      scenario: 'API tokens: every route × 17 credential cases',
      area: 'access',
      runs: requests,
      violations: violations.length,
      notes: `${documented.length} documented operations (${v1.length} under /v1, operator-only: ${actRoutes.join(', ')}); no token, garbage, expired, forged (foreign key ×2, alg none ×2, HS256 confusion, tampered), wrong audience/issuer, no identity, not yet valid → 401; no role → 403; auditor on operator routes → 403; store unchanged by refusals; ${variants.length} path/method/carrier variants (trailing or double slashes, encoded segments, HEAD/OPTIONS/DELETE, session cookie on /v1, bearer on /ui) never 2xx`,
      examples: violations.slice(0, 8),
    });
    expect(documented.length).toBeGreaterThanOrEqual(15);
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);

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
      const before = await storeDigest(s.couch.url);
      const a = await call(url, init);
      requests += 1;
      const changed = (await storeDigest(s.couch.url)) !== before;
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
      const before = await storeDigest(s.couch.url);
      const answers = await Promise.all(list.map(([, init]) => call(url, init)));
      requests += list.length;
      for (const [k, a] of answers.entries()) {
        const name = `${what} ${list[k]![0]}`;
        if (a.status !== 401) violations.push(`${name}: ${a.status}, expected 401: ${a.text.slice(0, 160)}`);
        else if ((JSON.parse(a.text) as { error?: { code?: string } }).error?.code !== 'UNAUTHENTICATED')
          violations.push(`${name}: not UNAUTHENTICATED`);
      }
      if ((await storeDigest(s.couch.url)) !== before) violations.push(`${what}: a refused request changed the store`);
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

    // rotate: IAM bearer of listed identities only (here: the operator); cron pings pass by design
    const refusedRotate: Array<[string, Record<string, string>]> = [
      ['no credentials', {}],
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
    const ping = await call(rotateUrl, {
      method: 'POST',
      headers: { 'ce-type': CE_PING_TYPE, 'ce-id': 'access-ping', 'ce-source': '/ping', 'ce-specversion': '1.0' },
    });
    requests += 1;
    if (ping.status !== 200) violations.push(`rotate cron ping: ${ping.status}`);

    const logText = s.functionLogs.join('\n');
    for (const secret of [s.eventsHmacSecret, s.eventsToken, ...cases.flatMap((c) => (c.token ? [c.token] : []))]) {
      if (secret.length > 20 && logText.includes(secret)) violations.push('a credential was logged by a function');
    }

    const result = recordScenario({
      scenario: 'events and rotate function authentication',
      area: 'access',
      runs: requests,
      violations: violations.length,
      notes: `events: unsigned, wrong secret, other body, ±15 min outside the 300 s window, malformed, wrong token, ${cases.length - 1} bad bearer cases → 401, no store change; signed / token / IAM deliveries replayed → duplicate, no second effect. rotate: ${refusedRotate.length} bad credentials → 401; listed operator → 200; cron ping (Ce-Type header) → 200 by design`,
      examples: violations.slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);
});
