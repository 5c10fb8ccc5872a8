/** The plugin's failure paths and `invoke local --data`, driven in-process with a minimal Serverless object. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FunctionConfig, ProviderConfig } from '../../../plugins/ibm-code-engine/config.js';
import { cronSubscriptions, functionBody, renderCommand } from '../../../plugins/ibm-code-engine/config.js';
import { CodeEngineProviderPlugin } from '../../../plugins/ibm-code-engine/plugin.js';
import type { CeApiStandIn } from '../../../src/local/ce-api/index.js';
import { startCeApiStandIn } from '../../../src/local/ce-api/index.js';
import type { LocalIam } from '../../../src/local/iam/index.js';
import { startLocalIam } from '../../../src/local/iam/index.js';

const repo = path.resolve(__dirname, '../../..');
let dir: string;
let iam: LocalIam;
let api: CeApiStandIn;

function makePlugin(provider: Partial<ProviderConfig>, functions: Record<string, FunctionConfig>, options = {}) {
  const out: string[] = [];
  const sls = {
    service: {
      service: 'demo',
      provider: { name: 'ibm-code-engine', projectId: 'p1', apiEndpoint: api.url, iamEndpoint: iam.url, ...provider },
      functions,
      getAllFunctions: () => Object.keys(functions),
      getFunction: (k: string) => Object.assign(functions[k]!, { name: functions[k]!.name ?? `demo-dev-${k}` }),
    },
    serviceDir: dir,
    setProvider: () => {},
    configSchemaHandler: { defineProvider: () => {} },
  };
  const plugin = new CodeEngineProviderPlugin(sls as never, options, { writeText: (t) => out.push(t) });
  return { plugin, out };
}

beforeAll(async () => {
  iam = await startLocalIam();
  api = await startCeApiStandIn({ projectId: 'p1', deployingPolls: 0 });
  dir = mkdtempSync(path.join(tmpdir(), 'lockstep-plugin-'));
  symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  mkdirSync(path.join(dir, 'functions'));
  writeFileSync(
    path.join(dir, 'functions/echo.ts'),
    `export async function main(params: Record<string, unknown>) {
  return { statusCode: 200, headers: { 'Content-Type': 'application/json' },
    body: { method: params.__ce_method, a: params.a, env: process.env.ECHO_ENV } };
}
`,
  );
  process.env.IBMCLOUD_API_KEY = iam.apiKeyFor('operator');
});

afterAll(async () => {
  delete process.env.IBMCLOUD_API_KEY;
  await api?.close();
  await iam?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('CodeEngineProviderPlugin', () => {
  it('refuses to deploy before packaging, and when a referenced secret is missing', async () => {
    const fns = { echo: { handler: 'functions/echo.main' } };
    const { plugin } = makePlugin({ secrets: ['missing-one'] }, fns);
    await expect(plugin.deploy()).rejects.toThrow(/run `serverless package` first/);
    await plugin.package();
    await expect(plugin.deploy()).rejects.toThrow(/secret\(s\) missing: missing-one/);
    expect(api.functions.size).toBe(0);
  });

  it('refuses a bundle over the inline limit when no code bundle image is configured', async () => {
    writeFileSync(
      path.join(dir, 'functions/big.ts'),
      `import { IamAuthenticator } from 'ibm-cloud-sdk-core';\nexport const main = async () => ({ statusCode: 200, body: typeof IamAuthenticator });\n`,
    );
    const { plugin } = makePlugin({}, { big: { handler: 'functions/big.main' } });
    await plugin.package();
    await expect(plugin.deploy()).rejects.toThrow(/over Code Engine's 100 KB limit: set provider.codeBundle.image/);
  });

  it('fails with a clear message without credentials', async () => {
    const key = process.env.IBMCLOUD_API_KEY;
    delete process.env.IBMCLOUD_API_KEY;
    try {
      const { plugin } = makePlugin({}, { echo: { handler: 'functions/echo.main' } });
      await expect(plugin.info()).rejects.toThrow(/set IBMCLOUD_API_KEY/);
    } finally {
      process.env.IBMCLOUD_API_KEY = key;
    }
  });

  it('invoke local sends --data as a Code Engine JSON request with the function env', async () => {
    const { plugin, out } = makePlugin(
      { environment: { ECHO_ENV: 'from-provider' } },
      { echo: { handler: 'functions/echo.main' } },
      { function: 'echo', data: '{"a":42}' },
    );
    await plugin.invokeLocal();
    expect(JSON.parse(out.at(-1)!).body).toEqual({ method: 'POST', a: 42, env: 'from-provider' });
  });
});

describe('config mapping', () => {
  it('maps visibility, cpu for memory, and leaves code_secret off inline code', () => {
    const body = functionBody(
      { name: 'ibm-code-engine', codeBundle: { image: 'i', registrySecret: 's' } },
      'api',
      { handler: 'functions/api.main', memory: '2G', visibility: 'private' },
      'lockstep-dev-api',
      'data:text/plain;base64,AA==',
    );
    expect(body).toMatchObject({
      managed_domain_mappings: 'local_private',
      scale_cpu_limit: '0.5',
      scale_memory_limit: '2G',
    });
    expect(body).not.toHaveProperty('code_secret');
  });

  it('renders cron commands with quoting and refuses data over 4096 bytes', () => {
    const [s] = cronSubscriptions('x', {
      handler: 'h.main',
      events: [{ schedule: { cron: '0 3 * * *', data: "it's" } }],
    });
    expect(renderCommand(s!.create)).toBe(
      "ibmcloud ce sub cron create --name x-cron --destination-type function --destination x --schedule '0 3 * * *' --time-zone UTC --content-type text/plain --data 'it'\\''s'",
    );
    expect(() =>
      cronSubscriptions('x', {
        handler: 'h.main',
        events: [{ schedule: { cron: '0 3 * * *', data: 'y'.repeat(5000) } }],
      }),
    ).toThrow(/4096/);
  });
});
