import { describe, expect, it } from 'vitest';
import { createJsonLogger, systemClock } from '../../../src/app/system.js';
import type { CeHandler } from '../../../src/codeengine/index.js';
import {
  createCeContext,
  createCeMain,
  hmacAuthenticator,
  maxExecutionTimeMsFromEnv,
  perContainer,
  signBody,
  staticTokenAuthenticator,
} from '../../../src/codeengine/index.js';
import { AppError, jsonResponse, Sensitive } from '../../../src/core/index.js';

const random = { bytes: (n: number) => Buffer.alloc(n, 7), uuid: () => '00000000-0000-4000-8000-000000000001' };
const SECRET = 'test-shared-secret-value';

function build(handler: CeHandler, extra: Partial<Parameters<typeof createCeMain>[0]> = {}) {
  const lines: string[] = [];
  const main = createCeMain({
    functionName: 'events',
    maxExecutionTimeMs: 30_000,
    clock: systemClock,
    random,
    logger: createJsonLogger({ write: (l) => lines.push(l), level: 'debug' }),
    auth: { authenticators: [hmacAuthenticator({ secrets: [{ id: 'k1', secret: new Sensitive(SECRET) }] })] },
    rules: { methods: ['POST'], requireJson: true, maxBodyBytes: 1000 },
    handler,
    ...extra,
  });
  return { main, lines };
}

function signedParams(body: string, opts: { secret?: string; ts?: number; ct?: string } = {}) {
  const ts = opts.ts ?? Math.floor(Date.now() / 1000);
  const sig = signBody(opts.secret ?? SECRET, body, ts);
  return {
    __ce_method: 'POST',
    __ce_headers: {
      'Content-Type': opts.ct ?? 'application/json',
      'X-Lockstep-Timestamp': sig['x-lockstep-timestamp']!,
      'X-Lockstep-Signature': sig['x-lockstep-signature']!,
      'X-Correlation-Id': 'corr-42',
    },
    __ce_path: '/',
    __ce_query: '',
    __ce_body: (opts.ct ?? 'application/json').startsWith('text/') ? body : Buffer.from(body).toString('base64'),
  };
}

const ok: CeHandler = async (event, context) =>
  jsonResponse(200, {
    got: JSON.parse(event.request.body!.toString()),
    principal: context.principal,
    corr: context.correlationId,
  });

describe('createCeMain', () => {
  it('runs the handler for a correctly signed JSON request and logs request and correlation ids', async () => {
    const { main, lines } = build(ok);
    const res = await main(signedParams('{"a":1}'));
    expect(res.statusCode).toBe(200);
    expect(res.body).toEqual({ got: { a: 1 }, principal: { method: 'hmac', subject: 'k1' }, corr: 'corr-42' });
    const start = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'request.start');
    expect(start).toMatchObject({ correlationId: 'corr-42', function: 'events', method: 'POST' });
    expect(lines.join('\n')).not.toContain(SECRET);
  });

  it.each([
    { $case: 'wrong secret', params: () => signedParams('{"a":1}', { secret: 'other' }) },
    {
      $case: 'stale timestamp (replay)',
      params: () => signedParams('{"a":1}', { ts: Math.floor(Date.now() / 1000) - 3600 }),
    },
    {
      $case: 'tampered body',
      params: () => ({ ...signedParams('{"a":1}'), __ce_body: Buffer.from('{"a":2}').toString('base64') }),
    },
    {
      $case: 'no credentials',
      params: () => ({ __ce_method: 'POST', __ce_headers: { 'Content-Type': 'application/json' }, __ce_body: 'e30=' }),
    },
  ])('answers 401 for $case without running the handler', async ({ params }) => {
    let ran = false;
    const { main } = build(async () => {
      ran = true;
      return jsonResponse(200, {});
    });
    const res = await main(params());
    expect(res.statusCode).toBe(401);
    expect((res.body as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
    expect(ran).toBe(false);
  });

  it.each([
    {
      $case: 'GET',
      params: () => ({ ...signedParams('{}'), __ce_method: 'GET' }),
      status: 405,
      code: 'METHOD_NOT_ALLOWED',
    },
    {
      $case: 'text body',
      params: () => signedParams('hello', { ct: 'text/plain' }),
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    { $case: 'bad JSON', params: () => signedParams('{nope'), status: 400, code: 'VALIDATION_FAILED' },
    {
      $case: 'too large',
      params: () => signedParams(JSON.stringify({ x: 'y'.repeat(2000) })),
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    },
  ])('rejects $case with a clear $status', async ({ params, status, code }) => {
    const { main } = build(ok);
    const res = await main(params());
    expect(res.statusCode).toBe(status);
    expect((res.body as { error: { code: string; message: string } }).error.code).toBe(code);
  });

  it('accepts a static token when configured', async () => {
    const { main } = build(ok, {
      auth: {
        authenticators: [staticTokenAuthenticator({ tokens: [{ id: 'en', secret: new Sensitive('tok-123') }] })],
      },
    });
    const good = await main({
      __ce_method: 'POST',
      __ce_headers: { 'Content-Type': 'application/json', 'X-Lockstep-Token': 'tok-123' },
      __ce_body: 'e30=',
    });
    expect(good.statusCode).toBe(200);
    const bad = await main({
      __ce_method: 'POST',
      __ce_headers: { 'Content-Type': 'application/json', 'X-Lockstep-Token': 'tok-124' },
      __ce_body: 'e30=',
    });
    expect(bad.statusCode).toBe(401);
  });

  it('accepts a cron ping only with a configured secret in its data, delivered in `body` as Code Engine does', async () => {
    const { main } = build(async (event) => jsonResponse(200, { kind: event.kind }), {
      auth: { authenticators: [], cronSecrets: [{ id: 'cron', secret: new Sensitive('cron-secret-0123456789') }] },
      rules: { methods: ['POST'] },
    });
    const ping = (data: string | undefined, ct = 'application/json') =>
      main({
        __ce_headers: { 'Ce-Type': 'dev.knative.sources.ping', 'Ce-Id': 'p1', 'Content-Type': ct },
        ...(data === undefined
          ? {}
          : { body: ct === 'application/json' ? Buffer.from(data).toString('base64') : data }),
      });
    expect(await ping('{"cronSecret":"cron-secret-0123456789"}')).toMatchObject({
      statusCode: 200,
      body: { kind: 'cron' },
    });
    for (const bad of [undefined, '{}', '{"cronSecret":"cron-secret-0123456780"}', '{"cronSecret":1}', '[]']) {
      const res = await ping(bad);
      expect(res.statusCode, String(bad)).toBe(401);
      expect(JSON.stringify(res.body)).not.toContain('cron');
    }
    expect((await ping('cronSecret=cron-secret-0123456789', 'text/plain')).statusCode).toBe(401);
  });

  it('refuses every cron ping when no cron secret is configured', async () => {
    const { main } = build(async (event) => jsonResponse(200, { kind: event.kind }), {
      auth: { authenticators: [], cronSecrets: [] },
    });
    const res = await main({
      __ce_headers: { 'Ce-Type': 'dev.knative.sources.ping', 'Ce-Id': 'p1', 'Content-Type': 'application/json' },
      body: Buffer.from('{"cronSecret":""}').toString('base64'),
    });
    expect(res.statusCode).toBe(401);
  });

  it('maps AppErrors through the error table; 5xx bodies are generic and carry the request id', async () => {
    const { main, lines } = build(async () => {
      throw new AppError('STORE_UNAVAILABLE', 'cloudant said: secret-internal-detail');
    });
    const res = await main(signedParams('{}'));
    expect(res.statusCode).toBe(503);
    const body = res.body as { error: { code: string; message: string; requestId: string } };
    expect(body.error.code).toBe('STORE_UNAVAILABLE');
    expect(body.error.message).not.toContain('secret-internal-detail');
    expect(body.error.requestId).toBe('00000000-0000-4000-8000-000000000001');
    expect(res.headers['X-Request-Id']).toBe(body.error.requestId);
    // logged once, with the real message, at error level
    const errs = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request.error');
    expect(errs).toHaveLength(1);
    expect(errs[0].error).toContain('secret-internal-detail');
  });

  it('turns an unknown throw into a generic 500', async () => {
    const { main } = build(async () => {
      throw new TypeError('x is undefined');
    });
    const res = await main(signedParams('{}'));
    expect(res.statusCode).toBe(500);
    expect(JSON.stringify(res.body)).not.toContain('undefined');
  });

  it('answers 400 for params whose body cannot be decoded', async () => {
    const { main } = build(ok);
    const res = await main({
      __ce_method: 'POST',
      __ce_headers: { 'Content-Type': 'application/octet-stream' },
      __ce_body: '%%',
    });
    expect(res.statusCode).toBe(400);
  });

  it('aborts a handler before the deadline with DEADLINE_EXCEEDED (middy early timeout armed by the context)', async () => {
    const { main } = build(
      (_e, _c, { signal }) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
      { maxExecutionTimeMs: 300, timeoutEarlyMs: 150 },
    );
    const res = await main(signedParams('{}'));
    expect(res.statusCode).toBe(503);
    expect((res.body as { error: { code: string } }).error.code).toBe('DEADLINE_EXCEEDED');
  });
});

describe('createCeContext', () => {
  it('derives the deadline from the max execution time and counts down with the clock', () => {
    let now = 1_000_000;
    const ctx = createCeContext({
      functionName: 'rotate',
      requestId: 'r',
      maxExecutionTimeMs: 120_000,
      clock: { nowMs: () => now },
    });
    expect(ctx.deadlineAtMs).toBe(1_120_000);
    expect(ctx.getRemainingTimeInMillis()).toBe(120_000);
    now += 100_000;
    expect(ctx.getRemainingTimeInMillis()).toBe(20_000);
    now += 50_000;
    expect(ctx.getRemainingTimeInMillis()).toBe(0);
  });
  it('caps at the Code Engine limit and reads the env', () => {
    const ctx = createCeContext({
      functionName: 'f',
      requestId: 'r',
      maxExecutionTimeMs: 999_999,
      clock: { nowMs: () => 0 },
    });
    expect(ctx.deadlineAtMs).toBe(120_000);
    expect(maxExecutionTimeMsFromEnv({ LOCKSTEP_MAX_EXECUTION_SECONDS: '90' })).toBe(90_000);
    expect(maxExecutionTimeMsFromEnv({})).toBe(60_000);
    expect(maxExecutionTimeMsFromEnv({ LOCKSTEP_MAX_EXECUTION_SECONDS: 'x' })).toBe(60_000);
  });
});

describe('perContainer', () => {
  it('builds once, but retries after a failure', async () => {
    let calls = 0;
    const get = perContainer(async () => {
      calls += 1;
      if (calls === 1) throw new Error('first fails');
      return calls;
    });
    await expect(get()).rejects.toThrow('first fails');
    expect(await get()).toBe(2);
    expect(await get()).toBe(2);
    expect(calls).toBe(2);
  });
});
