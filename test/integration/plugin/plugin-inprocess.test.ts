/** The plugin's failure paths and `invoke local --data`, driven in-process with a minimal Serverless object. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FunctionConfig, ProviderConfig } from '../../../plugins/ibm-code-engine/config.js';
import {
  cronSubscriptions,
  functionBody,
  renderCommand,
  validateConfig,
} from '../../../plugins/ibm-code-engine/config.js';
import { CodeEngineProviderPlugin } from '../../../plugins/ibm-code-engine/plugin.js';
import type { CeApiStandIn } from '../../../src/local/ce-api/index.js';
import { startCeApiStandIn } from '../../../src/local/ce-api/index.js';
import type { RegistryStandIn } from '../../../src/local/ce-api/registry.js';
import { startRegistryStandIn } from '../../../src/local/ce-api/registry.js';
import type { LocalIam } from '../../../src/local/iam/index.js';
import { startLocalIam } from '../../../src/local/iam/index.js';

const repo = path.resolve(__dirname, '../../..');
let dir: string;
let iam: LocalIam;
let api: CeApiStandIn;
let registry: RegistryStandIn;

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
  registry = await startRegistryStandIn({ acceptApiKey: (k) => k === iam.apiKeyFor('operator') });
  api = await startCeApiStandIn({ projectId: 'p1', deployingPolls: 0, codeBundleExists: (r) => registry.has(r) });
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
  writeFileSync(
    path.join(dir, 'functions/big.ts'),
    `import { IamAuthenticator } from 'ibm-cloud-sdk-core';\nexport const main = async () => ({ statusCode: 200, body: typeof IamAuthenticator });\n`,
  );
  process.env.IBMCLOUD_API_KEY = iam.apiKeyFor('operator');
  process.env.LOCKSTEP_CE_POLL_MS = '5';
});

afterAll(async () => {
  delete process.env.IBMCLOUD_API_KEY;
  delete process.env.LOCKSTEP_CE_POLL_MS;
  await api?.close();
  await registry?.close();
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

describe("CodeEngineProviderPlugin against Code Engine's rules", () => {
  const echo = { handler: 'functions/echo.main' };

  it('refuses nodejs-20 and CPU/memory outside the three function combinations before any API call', async () => {
    const before = api.calls.length;
    const old = makePlugin({ runtime: 'nodejs-20' as never }, { echo: { ...echo } });
    await expect(old.plugin.package()).rejects.toThrow(
      /provider.runtime nodejs-20 is not supported: use nodejs-22 or nodejs-24/,
    );
    await expect(old.plugin.deploy()).rejects.toThrow(/nodejs-20/);
    for (const [cpu, memory] of [
      ['1', '1G'],
      ['0.125', undefined],
      [undefined, '0.25G'],
    ]) {
      const { plugin } = makePlugin({}, { echo: { ...echo, cpu, memory } });
      await expect(plugin.deploy()).rejects.toThrow(
        /functions.echo: cpu .* is not a Code Engine function combination: use cpu\/memory 0.25\/1G, 0.5\/2G, 1\/4G/,
      );
    }
    expect(api.calls.length).toBe(before);
  });

  it('refuses a code bundle image with a cr:// scheme, a tag or outside ICR', () => {
    for (const image of ['cr://us.icr.io/lockstep/functions', 'us.icr.io/lockstep/functions:1', 'docker.io/me/fns']) {
      expect(() => validateConfig({ name: 'ibm-code-engine', codeBundle: { image } }, {})).toThrow(
        /is not an IBM Cloud Container Registry repository/,
      );
    }
    expect(() =>
      validateConfig({ name: 'ibm-code-engine', codeBundle: { image: 'private.us.icr.io/lockstep/functions' } }, {}),
    ).not.toThrow();
  });

  it('points a function at a code bundle only once the registry holds it, as REGISTRY/NS/REPO:TAG', async () => {
    const provider = {
      codeBundle: { image: 'private.us.icr.io/demo/functions', registrySecret: 'icr', registryEndpoint: registry.url },
    };
    const { plugin, out } = makePlugin(provider, { bundled: { handler: 'functions/big.main' } });
    await plugin.package();
    const pushHint = out.find((l) => l.includes('push the code bundle'))!;
    const image = /code bundle (\S+) before deploy/.exec(pushHint)![1]!;
    expect(image).toMatch(/^private\.us\.icr\.io\/demo\/functions:bundled-[0-9a-f]{12}$/);
    await expect(plugin.deploy()).rejects.toThrow(/is not in the registry; nothing was deployed[\s\S]*docker push/);
    expect(api.functions.has('demo-dev-bundled')).toBe(false);
    registry.push(image);
    await plugin.deploy();
    expect(api.functions.get('demo-dev-bundled')).toMatchObject({ code_reference: image, code_secret: 'icr' });
  });

  it.each([
    {
      case: 'the update is not applied (ready_last_update_failed)',
      key: 'upd',
      outcome: 'ready_last_update_failed' as const,
      msg: /demo-dev-upd failed to deploy: Code Engine could not apply this update/,
    },
    {
      case: 'Code Engine cannot load the code (no_code_bundle)',
      key: 'nobundle',
      outcome: 'no_code_bundle' as const,
      msg: /demo-dev-nobundle failed to deploy: Code Engine cannot load the code bundle/,
    },
    {
      case: 'the function is not ready in time',
      key: 'slow',
      outcome: 'never_ready' as const,
      msg: /demo-dev-slow did not become ready within 0.06 s \(last: status deploying, reason deploying\)/,
    },
  ])('fails the deploy when $case', async ({ key, outcome, msg }) => {
    const { plugin } = makePlugin({}, { [key]: { ...echo } });
    await plugin.package();
    if (outcome === 'ready_last_update_failed') await plugin.deploy(); // an update, not a create
    api.failNextRollout(`demo-dev-${key}`, outcome);
    process.env.LOCKSTEP_CE_READY_TIMEOUT_MS = '60';
    try {
      await expect(plugin.deploy()).rejects.toThrow(msg);
    } finally {
      delete process.env.LOCKSTEP_CE_READY_TIMEOUT_MS;
    }
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
