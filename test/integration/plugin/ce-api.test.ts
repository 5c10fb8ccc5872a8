/**
 * The Code Engine API stand-in validates requests the way the published v2 API does (sources: src/local/ce-api/README.md),
 * and the registry stand-in answers the manifest check the plugin makes before pointing a function at a code bundle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ceApiClient, iamToken } from '../../../plugins/ibm-code-engine/ceApi.js';
import { imageExists } from '../../../plugins/ibm-code-engine/registry.js';
import type { CeApiStandIn } from '../../../src/local/ce-api/index.js';
import { startCeApiStandIn } from '../../../src/local/ce-api/index.js';
import type { RegistryStandIn } from '../../../src/local/ce-api/registry.js';
import { startRegistryStandIn } from '../../../src/local/ce-api/registry.js';
import type { LocalIam } from '../../../src/local/iam/index.js';
import { createIamTokenVerifier, startLocalIam } from '../../../src/local/iam/index.js';

let iam: LocalIam;
let api: CeApiStandIn;
let registry: RegistryStandIn;
let token: string;
let apiKey: string;
/** The stand-in's clock: after nodejs-20's (2026-04-30) and python-3.11's (2026-10-31) end of life. */
const NOW = Date.parse('2026-12-05T10:00:00Z');

const V = 'version=2025-07-10';
const fnBody = (over: Record<string, unknown> = {}) => ({
  name: 'f1',
  runtime: 'nodejs-24',
  code_reference: `data:text/plain;base64,${Buffer.from('exports.main=()=>({statusCode:200})').toString('base64')}`,
  ...over,
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${api.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  iam = await startLocalIam();
  const verifier = createIamTokenVerifier({ jwksUrl: iam.jwksUrl, issuer: iam.issuer });
  apiKey = iam.apiKeyFor('operator');
  registry = await startRegistryStandIn({ acceptApiKey: (k) => k === apiKey });
  api = await startCeApiStandIn({
    projectId: 'p1',
    deployingPolls: 0,
    nowMs: () => NOW,
    codeBundleExists: (ref) => registry.has(ref),
    acceptToken: (t) =>
      verifier.verify(t).then(
        () => true,
        () => false,
      ),
  });
  token = await iamToken(iam.url, iam.apiKeyFor('operator'));
});

afterAll(async () => {
  await api?.close();
  await registry?.close();
  await iam?.close();
});

describe('Code Engine API stand-in', () => {
  it.each([
    { case: 'no version', path: '/projects/p1/functions', status: 400 },
    { case: 'version too new', path: '/projects/p1/functions?version=2099-01-01', status: 400 },
    { case: 'unknown project', path: `/projects/nope/functions?${V}`, status: 404 },
  ])('rejects $case', async ({ path, status }) => {
    expect((await call('GET', path)).status).toBe(status);
  });

  it('rejects a missing or forged bearer token with 401', async () => {
    const r = await fetch(`${api.url}/projects/p1/functions?${V}`, {
      headers: { authorization: 'Bearer forged.jwt.x' },
    });
    expect(r.status).toBe(401);
  });

  it.each([
    {
      case: 'missing runtime',
      body: { name: 'a', code_reference: 'icr.io/ns/img:1' },
      msg: 'runtime is required',
    },
    { case: 'bad name', body: fnBody({ name: 'Bad_Name' }), msg: 'name must match' },
    { case: 'unknown runtime', body: fnBody({ runtime: 'nodejs-12' }), msg: 'not a managed function runtime' },
    {
      case: 'max execution time over 120 s',
      body: fnBody({ scale_max_execution_time: 300 }),
      msg: 'between 1 and 120',
    },
    {
      case: 'bad cpu/memory pair',
      body: fnBody({ scale_cpu_limit: '1', scale_memory_limit: '1G' }),
      msg: 'combination',
    },
    {
      case: 'inline code over 100 KB',
      body: fnBody({ code_reference: `data:text/plain;base64,${Buffer.alloc(80 * 1024, 1).toString('base64')}` }),
      msg: 'exceeds',
    },
    {
      case: 'bad env entry',
      body: fnBody({ run_env_variables: [{ type: 'literal', name: 'X' }] }),
      msg: 'string value',
    },
  ])('refuses a create with $case (400)', async ({ body, msg }) => {
    const r = await call('POST', `/projects/p1/functions?${V}`, body);
    expect(r.status).toBe(400);
    expect(r.body.errors[0].message).toContain(msg);
  });

  it('creates (201), refuses a duplicate (409), and requires merge-patch + a current If-Match to update', async () => {
    const created = await call('POST', `/projects/p1/functions?${V}`, fnBody());
    expect(created.status).toBe(201);
    expect((await call('POST', `/projects/p1/functions?${V}`, fnBody())).status).toBe(409);
    const etag = created.body.entity_tag as string;
    const path = `/projects/p1/functions/f1?${V}`;
    const merge = { 'content-type': 'application/merge-patch+json' };
    expect((await call('PATCH', path, { scale_concurrency: 2 })).status).toBe(415);
    expect((await call('PATCH', path, { scale_concurrency: 2 }, merge)).status).toBe(400); // no If-Match
    expect((await call('PATCH', path, { scale_concurrency: 2 }, { ...merge, 'if-match': '"stale"' })).status).toBe(412);
    const ok = await call('PATCH', path, { scale_concurrency: 2 }, { ...merge, 'if-match': etag });
    expect(ok.status).toBe(200);
    expect(ok.body.scale_concurrency).toBe(2);
    expect(ok.body.entity_tag).not.toBe(etag);
    expect((await call('DELETE', path)).status).toBe(202);
    expect((await call('GET', path)).status).toBe(404);
  });

  it('serves the plugin client (get → undefined on 404, create, update with the ETag, delete)', async () => {
    const client = ceApiClient({ baseUrl: api.url, projectId: 'p1', version: '2025-07-10', token });
    expect(await client.getFunction('f2')).toBeUndefined();
    const f = await client.createFunction(fnBody({ name: 'f2' }));
    const u = await client.updateFunction('f2', f.entity_tag, { scale_down_delay: 5 });
    expect(u.entity_tag).not.toBe(f.entity_tag);
    await expect(client.updateFunction('f2', f.entity_tag, { scale_down_delay: 6 })).rejects.toThrow(/412/);
    expect(await client.deleteFunction('f2')).toBe(true);
    expect(await client.deleteFunction('f2')).toBe(false);
    expect(await client.secretExists('none')).toBe(false);
  });

  it('fails the IAM exchange clearly for an unknown API key', async () => {
    await expect(iamToken(iam.url, 'not-a-key')).rejects.toThrow(/IAM token exchange failed \(400\)/);
  });
});

const create = (over: Record<string, unknown>) => call('POST', `/projects/p1/functions?${V}`, fnBody(over));
const merge = { 'content-type': 'application/merge-patch+json' };
const patch = (name: string, body: unknown, ifMatch: string) =>
  call('PATCH', `/projects/p1/functions/${name}?${V}`, body, { ...merge, 'if-match': ifMatch });
const get = (name: string) => call('GET', `/projects/p1/functions/${name}?${V}`);

describe('Code Engine API stand-in: the published function rules', () => {
  it.each([
    { case: 'a cr:// scheme', ref: 'cr://icr.io/lockstep/functions:rotate-1', msg: 'no scheme' },
    { case: 'a registry other than ICR', ref: 'docker.io/library/node:22', msg: 'IBM Cloud Container Registry' },
    { case: 'an upper-case image', ref: 'us.icr.io/Lockstep/functions:1', msg: 'not an image reference' },
    { case: 'a data URL without base64', ref: 'data:text/plain,exports.main=1', msg: 'base64' },
  ])('rejects code_reference with $case (400)', async ({ ref, msg }) => {
    const r = await create({ name: 'ref-bad', code_reference: ref });
    expect(r.status).toBe(400);
    expect(r.body.errors[0].message).toContain(msg);
  });

  it('accepts code bundle images on icr.io, a regional and a private ICR host (no scheme)', async () => {
    for (const [i, ref] of [
      'icr.io/codeengine/samples/function-nodejs-codebundle',
      'us.icr.io/lockstep/functions:rotate-0123456789ab',
      'private.de.icr.io/lockstep/functions:api-0123456789ab',
    ].entries()) {
      const r = await create({ name: `ref-ok-${i}`, code_reference: ref });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body.code_binary).toBe(true);
    }
  });

  it('refuses runtimes past their end of life and lists only live ones', async () => {
    for (const runtime of ['nodejs-20', 'python-3.11']) {
      const r = await create({ name: 'old-runtime', runtime });
      expect(r.status).toBe(400);
      expect(r.body.errors[0].message).toMatch(/reached its end of life on 2026-\d\d-\d\d/);
    }
    expect((await create({ name: 'rt-22', runtime: 'nodejs-22' })).status).toBe(201);
    const list = await call('GET', `/function_runtimes?${V}`);
    const ids = (list.body.function_runtimes as Array<{ id: string; deprecated: boolean }>).map((r) => r.id);
    expect(ids).toEqual(['nodejs-22', 'nodejs-24', 'python-3.13']);
    expect(list.body.function_runtimes[0].deprecated).toBe(true); // nodejs-22: deprecated since 2026-10-20
  });

  it.each([
    { case: '0.125 vCPU / 0.25G (apps only)', over: { scale_cpu_limit: '0.125', scale_memory_limit: '0.25G' } },
    { case: '0.5 vCPU / 1G', over: { scale_cpu_limit: '0.5', scale_memory_limit: '1G' } },
    { case: 'memory 1G with the default 1 vCPU', over: { scale_memory_limit: '1G' } },
    { case: 'cpu 0.25 with the default 4G', over: { scale_cpu_limit: '0.25' } },
    { case: 'scale_down_delay 601', over: { scale_down_delay: 601 } },
    { case: 'scale_concurrency 0', over: { scale_concurrency: 0 } },
    { case: 'code_main with a hyphen', over: { code_main: 'my-main' } },
    { case: 'an upper-case code_secret', over: { code_secret: 'ICR' } },
    { case: 'a field the API does not have', over: { scale_min_instances: 1 } },
    { case: 'a name over 63 characters', over: { name: `f${'x'.repeat(63)}` } },
  ])('refuses a create with $case (400)', async ({ over }) => {
    const r = await create({ name: 'rules', ...over });
    expect(r.status).toBe(400);
  });

  it('accepts the three function combinations and defaults to 1 vCPU / 4G', async () => {
    const combos = [
      ['0.25', '1G'],
      ['0.5', '2G'],
      ['1', '4G'],
    ];
    for (const [i, [cpu, mem]] of combos.entries()) {
      expect((await create({ name: `combo-${i}`, scale_cpu_limit: cpu, scale_memory_limit: mem })).status).toBe(201);
    }
    const d = await create({ name: 'combo-default' });
    expect(d.body).toMatchObject({ scale_cpu_limit: '1', scale_memory_limit: '4G' });
  });

  it('keeps entity tags unquoted; If-Match must be the entity_tag verbatim (quoted → 412) or *', async () => {
    const c = await create({ name: 'etag', scale_cpu_limit: '0.25', scale_memory_limit: '1G' });
    const tag = (await get('etag')).body.entity_tag as string;
    expect(c.body.entity_tag).toMatch(/^\d+$/);
    expect(tag).toMatch(/^\d+$/);
    expect((await patch('etag', { scale_down_delay: 2 }, `"${tag}"`)).status).toBe(412);
    expect((await patch('etag', { scale_down_delay: 2 }, `W/"${tag}"`)).status).toBe(412);
    const ok = await patch('etag', { scale_down_delay: 2 }, tag);
    expect(ok.status).toBe(200);
    expect((await patch('etag', { scale_down_delay: 3 }, tag)).status).toBe(412); // stale now
    expect((await patch('etag', { scale_down_delay: 4 }, '*')).status).toBe(200);
    const r = await fetch(`${api.url}/projects/p1/functions/etag?${V}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(r.headers.get('etag')).toBe(((await r.json()) as { entity_tag: string }).entity_tag);
  });

  it('applies a merge patch: the merged cpu/memory must stay a combination, null resets, name/runtime stay', async () => {
    await create({ name: 'mp', scale_cpu_limit: '0.25', scale_memory_limit: '1G', scale_concurrency: 5 });
    const tag = () => get('mp').then((r) => r.body.entity_tag as string);
    expect((await patch('mp', { scale_memory_limit: '2G' }, await tag())).status).toBe(400);
    const both = await patch('mp', { scale_cpu_limit: '0.5', scale_memory_limit: '2G' }, await tag());
    expect(both.status).toBe(200);
    const reset = await patch('mp', { scale_concurrency: null }, await tag());
    expect(reset.body.scale_concurrency).toBe(1);
    expect((await patch('mp', { runtime: null }, await tag())).status).toBe(400);
    expect((await patch('mp', { name: 'other' }, await tag())).status).toBe(400);
    expect((await patch('mp', { runtime: 'nodejs-20' }, await tag())).status).toBe(400);
    const json = await call('PATCH', `/projects/p1/functions/mp?${V}`, { scale_concurrency: 2 }, { 'if-match': '*' });
    expect(json.status).toBe(415);
  });
});

describe('Code Engine API stand-in: readiness in status and status_details.reason', () => {
  it('deploys a new function (deploying → ready) and rolls out an update (ready_update_in_progress → ready)', async () => {
    const slow = await startCeApiStandIn({ projectId: 'p1', deployingPolls: 1, nowMs: () => NOW });
    try {
      const client = ceApiClient({ baseUrl: slow.url, projectId: 'p1', version: '2025-07-10', token });
      const created = await client.createFunction(fnBody({ name: 'r1' }));
      expect([created.status, created.status_details?.reason]).toEqual(['deploying', 'deploying']);
      const first = (await client.getFunction('r1'))!;
      expect([first.status, first.status_details?.reason]).toEqual(['deploying', 'deploying']);
      const ready = (await client.getFunction('r1'))!;
      expect([ready.status, ready.status_details?.reason]).toEqual(['ready', 'ready']);
      expect(ready.entity_tag).not.toBe(first.entity_tag); // the status change is a new version
      const updated = await client.updateFunction('r1', ready.entity_tag, { scale_down_delay: 9 });
      expect([updated.status, updated.status_details?.reason]).toEqual(['ready', 'ready_update_in_progress']);
      await client.getFunction('r1');
      expect((await client.getFunction('r1'))!.status_details?.reason).toBe('ready');
    } finally {
      await slow.close();
    }
  });

  it('reports ready_last_update_failed when told to, and no_code_bundle for an image the registry lacks', async () => {
    const client = ceApiClient({ baseUrl: api.url, projectId: 'p1', version: '2025-07-10', token });
    const f = await client.createFunction(fnBody({ name: 'r2' }));
    const ready = (await client.getFunction('r2'))!;
    expect(ready.status_details?.reason).toBe('ready');
    api.failNextRollout('r2', 'ready_last_update_failed');
    await client.updateFunction('r2', ready.entity_tag, { scale_down_delay: 3 });
    const failed = (await client.getFunction('r2'))!;
    expect([failed.status, failed.status_details?.reason]).toEqual(['ready', 'ready_last_update_failed']);
    expect(f.name).toBe('r2');

    await client.createFunction(fnBody({ name: 'r3', code_reference: 'us.icr.io/lockstep/functions:absent' }));
    const missing = (await client.getFunction('r3'))!;
    expect([missing.status, missing.status_details?.reason]).toEqual(['failed', 'no_code_bundle']);
    registry.push('us.icr.io/lockstep/functions:present');
    await client.createFunction(fnBody({ name: 'r4', code_reference: 'us.icr.io/lockstep/functions:present' }));
    expect((await client.getFunction('r4'))!.status_details?.reason).toBe('ready');
  });
});

describe('registry stand-in and the plugin manifest check', () => {
  it('answers 200/404 behind the token challenge, for the public and the private host alike', async () => {
    registry.push('private.us.icr.io/lockstep/functions:rotate-aaaaaaaaaaaa');
    expect(await imageExists('private.us.icr.io/lockstep/functions:rotate-aaaaaaaaaaaa', apiKey, registry.url)).toBe(
      true,
    );
    expect(await imageExists('us.icr.io/lockstep/functions:rotate-bbbbbbbbbbbb', apiKey, registry.url)).toBe(false);
    expect(
      registry.checks
        .filter((c) => c.status !== 401)
        .slice(-2)
        .map((c) => c.status),
    ).toEqual([200, 404]);
  });

  it('fails clearly when the registry refuses the API key', async () => {
    await expect(imageExists('us.icr.io/lockstep/functions:x', 'not-a-key', registry.url)).rejects.toThrow(
      /registry refused the API key .*Reader access/,
    );
  });
});
