/** The local function runner calls `main(params)` exactly as Code Engine does, and delivers cron pings. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CeParams } from '../../../src/codeengine/index.js';
import type { FunctionRunner } from '../../../src/local/function-runner/index.js';
import { startFunctionRunner } from '../../../src/local/function-runner/index.js';

const seen: CeParams[] = [];
let runner: FunctionRunner;
const FIVE_MB = 5 * 1024 * 1024;

const echo = (params: CeParams) => {
  seen.push(params);
  return { statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: { ok: true } };
};

beforeAll(async () => {
  runner = await startFunctionRunner({
    startCron: false,
    functions: [
      {
        name: 'echo',
        main: echo,
        schedules: [
          { cron: '*/5 * * * *', data: { source: 'cron' } },
          { cron: '0 * * * *', data: 'txt' },
        ],
      },
      {
        name: 'bin',
        main: () => ({ statusCode: 201, headers: { 'Content-Type': 'application/octet-stream' }, body: 'AQI=' }),
      },
      { name: 'boom', main: () => Promise.reject(new Error('crash')) },
      { name: 'bad', main: () => ({ statusCode: 42, body: 'x' }) },
      {
        name: 'big',
        main: (p: CeParams) => ({
          statusCode: 200,
          headers: { 'Content-Type': 'text/plain' },
          body: 'x'.repeat(Number(p.n)),
        }),
      },
    ],
  });
});

afterAll(async () => {
  await runner?.close();
});

describe('function runner', () => {
  it('encodes a JSON request like Code Engine (base64 body, canonical headers, unfolded keys)', async () => {
    const r = await fetch(`${runner.url('echo')}/v1/x?q=1&b=2`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custom': 'v' },
      body: JSON.stringify({ b: 'body-wins', n: 1 }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-faas-activation-id')).toBeTruthy();
    expect(await r.json()).toEqual({ ok: true });
    const p = seen.at(-1)!;
    expect(p.__ce_method).toBe('POST');
    expect(p.__ce_path).toBe('/v1/x');
    expect(p.__ce_query).toBe('q=1&b=2');
    expect(p.__ce_headers).toMatchObject({ 'Content-Type': 'application/json', 'X-Custom': 'v' });
    expect(Buffer.from(p.__ce_body as string, 'base64').toString()).toBe('{"b":"body-wins","n":1}');
    expect(p).toMatchObject({ q: '1', b: 'body-wins', n: 1 });
  });

  it('passes text bodies as text', async () => {
    await fetch(runner.url('echo'), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(seen.at(-1)!.__ce_body).toBe('hello');
  });

  it.each([
    { $case: 'a __ce_ query key', init: { method: 'GET' }, q: '?__ce_method=x', status: 400 },
    {
      $case: 'a __ce_ JSON key',
      init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"__ce_path":"/x"}' },
      q: '',
      status: 400,
    },
    {
      $case: 'multipart',
      init: { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' },
      q: '',
      status: 415,
    },
  ])('refuses $case like the platform', async ({ init, q, status }) => {
    const before = runner.invocations('echo');
    const r = await fetch(`${runner.url('echo')}/${q}`, init as RequestInit);
    expect(r.status).toBe(status);
    expect(runner.invocations('echo')).toBe(before);
  });

  it('decodes binary results, reports crashes as 502 and invalid statuses as 422', async () => {
    const bin = await fetch(runner.url('bin'));
    expect(bin.status).toBe(201);
    expect(Buffer.from(await bin.arrayBuffer())).toEqual(Buffer.from([1, 2]));
    expect((await fetch(runner.url('boom'))).status).toBe(502);
    expect((await fetch(runner.url('bad'))).status).toBe(422);
  });

  it.each([
    {
      $case: 'JSON data (base64 in body, keys unfolded)',
      idx: 0,
      decoded: '{"source":"cron"}',
      ct: 'application/json',
    },
    { $case: 'text data (plain in body)', idx: 1, decoded: 'txt', ct: 'text/plain' },
  ])('delivers a cron ping as Code Engine documents it: $case', async ({ idx, decoded, ct }) => {
    const before = runner.invocations('echo');
    const resp = await runner.fireCron('echo', idx);
    expect(resp.statusCode).toBe(200);
    expect(runner.invocations('echo')).toBe(before + 1);
    const p = seen.at(-1)!;
    const h = p.__ce_headers as Record<string, string>;
    expect(h['Ce-Type']).toBe('dev.knative.sources.ping');
    expect(h['Ce-Specversion']).toBe('1.0');
    expect(h['Content-Type']).toBe(ct);
    expect(h['Ce-Source']).toMatch(/^\/apis\/v1\/namespaces\/local\/pingsources\/echo-cron-\d$/);
    expect(p.__ce_body).toBeUndefined();
    expect(p.__ce_method).toBeUndefined();
    const raw = p.body as string;
    expect(ct === 'text/plain' ? raw : Buffer.from(raw, 'base64').toString()).toBe(decoded);
    if (ct === 'application/json') expect(p.source).toBe('cron');
  });

  it('treats an HTTP request carrying a ping header as an ordinary request (body in __ce_body)', async () => {
    await fetch(runner.url('echo'), {
      method: 'POST',
      headers: { 'ce-type': 'dev.knative.sources.ping', 'ce-id': 'x', 'content-type': 'application/json' },
      body: '{"source":"cron"}',
    });
    const p = seen.at(-1)!;
    expect(p.__ce_method).toBe('POST');
    expect(Buffer.from(p.__ce_body as string, 'base64').toString()).toBe('{"source":"cron"}');
    expect(p.body).toBeUndefined();
  });

  it('enforces the 5 MB limit on request bodies: a larger one is answered 400 and not delivered', async () => {
    const before = runner.invocations('echo');
    const over = await fetch(runner.url('echo'), {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'x'.repeat(FIVE_MB + 1),
    });
    expect(over.status).toBe(400);
    expect(runner.invocations('echo')).toBe(before);
    const at = await fetch(runner.url('echo'), {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'x'.repeat(FIVE_MB),
    });
    expect(at.status).toBe(200);
  });

  it('enforces the 5 MB limit on response bodies: a larger one is answered 400', async () => {
    expect((await fetch(`${runner.url('big')}?n=${FIVE_MB}`)).status).toBe(200);
    const over = await fetch(`${runner.url('big')}?n=${FIVE_MB + 1}`);
    expect(over.status).toBe(400);
    expect((await over.text()).length).toBeLessThan(200);
  });
});
