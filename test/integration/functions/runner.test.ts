/** The local function runner calls `main(params)` exactly as Code Engine does, and delivers cron pings. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CeParams } from '../../../src/codeengine/index.js';
import type { FunctionRunner } from '../../../src/local/function-runner/index.js';
import { startFunctionRunner } from '../../../src/local/function-runner/index.js';

const seen: CeParams[] = [];
let runner: FunctionRunner;
let runnerBody: FunctionRunner;

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
    ],
  });
  runnerBody = await startFunctionRunner({
    startCron: false,
    cronBodyField: 'body',
    functions: [{ name: 'echo', main: echo, schedules: [{ cron: '*/5 * * * *', data: { source: 'cron' } }] }],
  });
});

afterAll(async () => {
  await runner?.close();
  await runnerBody?.close();
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
    { $case: 'JSON data in __ce_body', r: () => runner, idx: 0, field: '__ce_body', decoded: '{"source":"cron"}' },
    { $case: 'text data in __ce_body', r: () => runner, idx: 1, field: '__ce_body', decoded: 'txt' },
    { $case: 'JSON data in body', r: () => runnerBody, idx: 0, field: 'body', decoded: '{"source":"cron"}' },
  ])('delivers a cron ping with $case', async ({ r, idx, field, decoded }) => {
    const resp = await r().fireCron('echo', idx);
    expect(resp.statusCode).toBe(200);
    const p = seen.at(-1)!;
    const h = p.__ce_headers as Record<string, string>;
    expect(h['Ce-Type']).toBe('dev.knative.sources.ping');
    expect(h['Ce-Specversion']).toBe('1.0');
    expect(h['Ce-Source']).toMatch(/^\/apis\/v1\/namespaces\/local\/pingsources\/echo-cron-\d$/);
    const raw = p[field] as string;
    expect(decoded === 'txt' ? raw : Buffer.from(raw, 'base64').toString()).toBe(decoded);
  });
});
