/**
 * The serverless plugin end to end: `serverless package|deploy|info|remove|invoke local` run as real CLI processes
 * against the local Code Engine API stand-in, authenticated by the local IAM (API key → JWT → verified by JWKS).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CeApiStandIn } from '../../../src/local/ce-api/index.js';
import { startCeApiStandIn } from '../../../src/local/ce-api/index.js';
import type { RegistryStandIn } from '../../../src/local/ce-api/registry.js';
import { startRegistryStandIn } from '../../../src/local/ce-api/registry.js';
import type { LocalIam } from '../../../src/local/iam/index.js';
import { createIamTokenVerifier, startLocalIam } from '../../../src/local/iam/index.js';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '../../..');
const slsBin = path.join(repo, 'node_modules/serverless/bin/serverless.js');

let dir: string;
let iam: LocalIam;
let api: CeApiStandIn;
let registry: RegistryStandIn;
let deployOut = '';

const yml = (extra = '') => `service: demo
frameworkVersion: '3'
configValidationMode: error
plugins:
  - ./plugins/ibm-code-engine
provider:
  name: ibm-code-engine
  region: us-south
  projectId: proj-1
  runtime: nodejs-24
  apiVersion: '2025-07-10'
  apiEndpoint: \${env:CE_API_URL}
  iamEndpoint: \${env:IBMCLOUD_IAM_URL}
  trustedProfile: lockstep
  subscriptions: print
  codeBundle:
    image: private.us.icr.io/demo/functions
    registrySecret: icr
    registryEndpoint: \${env:REGISTRY_URL}
  environment:
    SHARED: one
  secrets: [demo-secrets]
functions:
  tick:
    handler: functions/tick.main
    cpu: '0.25'
    memory: 1G
    maxExecutionTime: 120
    visibility: project
    environment:
      ONLY_TICK: yes-${'$'}{sls:stage}
    events:
      - schedule:
          cron: '*/5 * * * *'
          timeZone: Europe/Berlin
          data: { source: cron }
  big:
    handler: functions/big.main
    maxExecutionTime: 30
${extra}`;

async function sls(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, [slsBin, ...args], {
      cwd: dir,
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        CE_API_URL: api.url,
        REGISTRY_URL: registry.url,
        IBMCLOUD_IAM_URL: iam.url,
        IBMCLOUD_API_KEY: iam.apiKeyFor('operator'),
        LOCKSTEP_CE_POLL_MS: '10',
        ...env,
      },
      timeout: 90_000,
    });
    return { code: 0, out: `${r.stdout}\n${r.stderr}` };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: `${e.stdout}\n${e.stderr}` };
  }
}

beforeAll(async () => {
  iam = await startLocalIam();
  const verifier = createIamTokenVerifier({ jwksUrl: iam.jwksUrl, issuer: iam.issuer });
  registry = await startRegistryStandIn({ acceptApiKey: (k) => k === iam.apiKeyFor('operator') });
  api = await startCeApiStandIn({
    projectId: 'proj-1',
    codeBundleExists: (ref) => registry.has(ref),
    acceptToken: async (t) => {
      try {
        await verifier.verify(t);
        return true;
      } catch {
        return false;
      }
    },
  });
  dir = mkdtempSync(path.join(tmpdir(), 'lockstep-sls-'));
  symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  mkdirSync(path.join(dir, 'plugins'));
  symlinkSync(path.join(repo, 'plugins/ibm-code-engine'), path.join(dir, 'plugins/ibm-code-engine'));
  mkdirSync(path.join(dir, 'functions'));
  const ce = path.join(repo, 'src/codeengine/index.js');
  writeFileSync(
    path.join(dir, 'functions/tick.ts'),
    `import { createCeMain } from ${JSON.stringify(ce)};
const clock = { nowMs: () => Date.now() };
const random = { bytes: (n: number) => Buffer.alloc(n), uuid: () => 'u-1' };
export const main = createCeMain({
  functionName: 'tick', maxExecutionTimeMs: 120000, clock, random,
  handler: async (event, ctx) => ({ statusCode: 200, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind: event.kind, data: event.kind === 'cron' ? event.cron.data : null,
      shared: process.env.SHARED, remainingMs: ctx.getRemainingTimeInMillis() > 100000 }) }),
});
`,
  );
  // Pulls in ibm-cloud-sdk-core, which is far over the inline limit.
  writeFileSync(
    path.join(dir, 'functions/big.ts'),
    `import { IamAuthenticator } from 'ibm-cloud-sdk-core';
export async function main() { return { statusCode: 200, body: typeof IamAuthenticator }; }
`,
  );
  writeFileSync(path.join(dir, 'serverless.yml'), yml());
  // the referenced secret must exist before deploy
  const token = await iam.issueToken('operator');
  const r = await fetch(`${api.url}/projects/proj-1/secrets?version=2025-07-10`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'demo-secrets', format: 'generic', data: { K: 'v' } }),
  });
  expect(r.status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await registry?.close();
  await iam?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('serverless deploy (package runs first) / info / remove against the Code Engine API stand-in', () => {
  it('packages one minified CJS bundle per function, refuses to deploy before the code bundle is pushed', async () => {
    const refused = await sls(['deploy']);
    expect(refused.code, refused.out).not.toBe(0);
    expect(refused.out).toContain('is not in the registry; nothing was deployed');
    expect(api.functions.size).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(dir, '.serverless/lockstep-package.json'), 'utf8')) as {
      functions: Array<{
        function: string;
        bytes: number;
        inlineBytes: number;
        mode: string;
        sha256: string;
        top: unknown[];
      }>;
    };
    const image = `private.us.icr.io/demo/functions:big-${manifest.functions.find((f) => f.function === 'big')!.sha256.slice(0, 12)}`;
    expect(refused.out).toContain(`docker build --platform linux/amd64 -t ${image}`);
    registry.push(image);
    const r = await sls(['deploy']);
    expect(r.code, r.out).toBe(0);
    const tick = manifest.functions.find((f) => f.function === 'tick')!;
    const big = manifest.functions.find((f) => f.function === 'big')!;
    expect(tick.mode).toBe('inline');
    expect(tick.inlineBytes).toBeLessThanOrEqual(100 * 1024);
    expect(big.mode).toBe('code-bundle');
    expect(big.bytes).toBeGreaterThan(100 * 1024);
    expect(r.out).toMatch(/tick: [\d.]+ KB minified .* → inline/);
    expect(r.out).toMatch(/big: .* → code-bundle/);
    expect(r.out).toContain('ibm-cloud-sdk-core');
    // the bundle is CommonJS exporting main
    const code = readFileSync(path.join(dir, '.serverless/tick/main.js'), 'utf8');
    expect(code).not.toMatch(/^import /m);
    const pkg = JSON.parse(readFileSync(path.join(dir, '.serverless/tick/package.json'), 'utf8'));
    expect(pkg.main).toBe('main.js');
    deployOut = r.out;
  }, 120_000);

  it('creates every function with env, secret references, limits and prints the cron commands', async () => {
    const r = { out: deployOut };
    const tick = api.functions.get('demo-dev-tick')!;
    expect(tick).toBeDefined();
    expect(tick.code_reference.startsWith('data:text/plain;base64,')).toBe(true);
    expect(tick).toMatchObject({
      runtime: 'nodejs-24',
      code_main: 'main',
      managed_domain_mappings: 'local',
      run_compute_resource_token_enabled: true,
      scale_cpu_limit: '0.25',
      scale_memory_limit: '1G',
      scale_max_execution_time: 120,
    });
    expect(tick.run_env_variables).toEqual(
      expect.arrayContaining([
        { type: 'literal', name: 'SHARED', value: 'one' },
        { type: 'literal', name: 'ONLY_TICK', value: 'yes-dev' },
        { type: 'literal', name: 'LOCKSTEP_MAX_EXECUTION_SECONDS', value: '120' },
        { type: 'literal', name: 'LOCKSTEP_TRUSTED_PROFILE', value: 'lockstep' },
        { type: 'secret_full_reference', reference: 'demo-secrets' },
      ]),
    );
    const big = api.functions.get('demo-dev-big')!;
    expect(big.code_reference).toMatch(/^private\.us\.icr\.io\/demo\/functions:big-[0-9a-f]{12}$/);
    expect(big.code_secret).toBe('icr');
    expect(r.out).toContain(
      'ibmcloud ce sub cron create --name demo-dev-tick-cron --destination-type function --destination demo-dev-tick --schedule \'*/5 * * * *\' --time-zone Europe/Berlin --content-type application/json --data \'{"source":"cron"}\'',
    );
    expect(r.out).toContain('docker build --platform linux/amd64');
    expect(api.calls.filter((c) => c.method === 'POST' && c.path.endsWith('/functions'))).toHaveLength(2);
    expect(api.calls.every((c) => c.version === '2025-07-10')).toBe(true);
  }, 120_000);

  it('updates with a merge patch and the current ETag on the second deploy', async () => {
    const before = api.functions.get('demo-dev-tick')!.entity_tag;
    expect(before).toMatch(/^\d+$/); // unquoted, and sent back unchanged
    writeFileSync(path.join(dir, 'serverless.yml'), yml().replace('SHARED: one', 'SHARED: two'));
    const r = await sls(['deploy']);
    expect(r.code, r.out).toBe(0);
    const patch = api.calls.find((c) => c.method === 'PATCH' && c.path.endsWith('/functions/demo-dev-tick'))!;
    expect(patch).toMatchObject({ status: 200, ifMatch: before, contentType: 'application/merge-patch+json' });
    const tick = api.functions.get('demo-dev-tick')!;
    expect(tick.entity_tag).not.toBe(before);
    expect(tick.run_env_variables).toContainEqual({ type: 'literal', name: 'SHARED', value: 'two' });
    writeFileSync(path.join(dir, 'serverless.yml'), yml());
  }, 120_000);

  it('prints status and endpoints with info, then removes everything', async () => {
    const info = await sls(['info']);
    expect(info.code, info.out).toBe(0);
    expect(info.out).toMatch(/tick: demo-dev-tick ready nodejs-24 https:\/\/demo-dev-tick\./);
    expect(info.out).toContain('cron demo-dev-tick-cron: */5 * * * * (Europe/Berlin)');
    const rm = await sls(['remove']);
    expect(rm.code, rm.out).toBe(0);
    expect(api.functions.size).toBe(0);
    expect(rm.out).toContain('ibmcloud ce sub cron delete --name demo-dev-tick-cron --force');
  }, 120_000);
});

describe('serverless invoke local', () => {
  it('calls the bundle with a cron ping shaped like Code Engine', async () => {
    const r = await sls(['invoke', 'local', '-f', 'tick']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('"kind": "cron"');
    expect(r.out).toContain('"source": "cron"');
    expect(r.out).toContain('"shared": "one"');
    expect(r.out).toContain('"remainingMs": true');
    expect(existsSync(path.join(dir, '.serverless/tick/main.js'))).toBe(true);
  }, 120_000);
});
