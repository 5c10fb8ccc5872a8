/** The Code Engine API stand-in validates requests the way the documented v2 API does. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ceApiClient, iamToken } from '../../../plugins/ibm-code-engine/ceApi.js';
import type { CeApiStandIn } from '../../../src/local/ce-api/index.js';
import { startCeApiStandIn } from '../../../src/local/ce-api/index.js';
import type { LocalIam } from '../../../src/local/iam/index.js';
import { createIamTokenVerifier, startLocalIam } from '../../../src/local/iam/index.js';

let iam: LocalIam;
let api: CeApiStandIn;
let token: string;

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
  api = await startCeApiStandIn({
    projectId: 'p1',
    deployingPolls: 0,
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
  await iam?.close();
});

describe('Code Engine API stand-in', () => {
  it.each([
    { $case: 'no version', path: '/projects/p1/functions', status: 400 },
    { $case: 'version too new', path: '/projects/p1/functions?version=2099-01-01', status: 400 },
    { $case: 'unknown project', path: `/projects/nope/functions?${V}`, status: 404 },
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
      $case: 'missing runtime',
      body: { name: 'a', code_reference: 'cr://icr.io/ns/img:1' },
      msg: 'runtime is required',
    },
    { $case: 'bad name', body: fnBody({ name: 'Bad_Name' }), msg: 'name must be' },
    { $case: 'unknown runtime', body: fnBody({ runtime: 'nodejs-12' }), msg: 'runtime must be one of' },
    {
      $case: 'max execution time over 120 s',
      body: fnBody({ scale_max_execution_time: 300 }),
      msg: 'between 1 and 120',
    },
    {
      $case: 'bad cpu/memory pair',
      body: fnBody({ scale_cpu_limit: '1', scale_memory_limit: '1G' }),
      msg: 'combination',
    },
    {
      $case: 'inline code over 100 KB',
      body: fnBody({ code_reference: `data:text/plain;base64,${Buffer.alloc(80 * 1024, 1).toString('base64')}` }),
      msg: 'exceeds',
    },
    {
      $case: 'bad env entry',
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
