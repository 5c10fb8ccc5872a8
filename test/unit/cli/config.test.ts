import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../src/cli/config.js';
import { CliError, ExitCode } from '../../../src/cli/exitCodes.js';

const G1 = '11111111-2222-3333-4444-555555555555';
const G2 = '22222222-2222-3333-4444-555555555555';
const ESCROW = `crn:v1:bluemix:public:kms:us-south:a/acct1:${G1}:key:${G2}`;

const dev = JSON.stringify({
  iam: { url: 'http://127.0.0.1:4600', apiKeys: { operator: 'op-key', auditor: 'aud-key' } },
  keyProtect: {
    'us-south': { url: 'http://127.0.0.1:4611', instanceId: G1 },
    'us-east': { url: 'http://127.0.0.1:4612', instanceId: G2 },
  },
  cloudant: { url: 'http://127.0.0.1:4604' },
  api: { url: 'http://127.0.0.1:4601/' },
  events: { url: 'http://127.0.0.1:4602', token: 'x' },
  groups: ['demo'],
  escrow: { crn: ESCROW },
  rotationMinIntervalMs: 120000,
});

function files(map: Record<string, string>) {
  return (p: string) => {
    for (const [k, v] of Object.entries(map)) if (p.endsWith(k)) return v;
    return undefined;
  };
}

function fail(fn: () => unknown): CliError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return err as CliError;
  }
  throw new Error('expected a CliError');
}

describe('resolveConfig', () => {
  it('reads .lockstep/dev.json when nothing else is set (operator key by default)', () => {
    // Act
    const r = resolveConfig({ flags: {}, env: {}, cwd: '/w', readFile: files({ '.lockstep/dev.json': dev }) });
    // Assert
    expect(r.config.api.url).toBe('http://127.0.0.1:4601');
    expect(r.config.iam.apiKey?.reveal()).toBe('op-key');
    expect(r.config.keyProtect['us-east']).toEqual({ url: 'http://127.0.0.1:4612', instanceId: G2 });
    expect(r.config.devGroups).toEqual(['demo']);
    expect(r.config.escrow?.keyId).toBe(G2);
    expect(r.config.rotationMinIntervalMs).toBe(120_000);
    expect(r.sources['api.url']).toBe('.lockstep/dev.json (api.url)');
    expect(r.files.dev).toBe('/w/.lockstep/dev.json');
  });

  it('uses the auditor key with --role auditor', () => {
    const r = resolveConfig({ flags: { role: 'auditor' }, env: {}, cwd: '/w', readFile: files({ 'dev.json': dev }) });
    expect(r.config.iam.apiKey?.reveal()).toBe('aud-key');
  });

  it('applies flags > env > config file > dev.json, per value', () => {
    // Arrange: every layer sets api.url; lower layers set other values
    const yaml = `api:\n  url: http://file:1\ncloudant:\n  url: http://file-couch:5984\n`;
    const env = { LOCKSTEP_API_URL: 'http://env:2', CLOUDANT_URL: undefined, LOCKSTEP_IAM_URL: 'http://env-iam:3' };
    // Act
    const all = resolveConfig({
      flags: { apiUrl: 'http://flag:3' },
      env,
      cwd: '/w',
      readFile: files({ 'lockstep.config.yaml': yaml, 'dev.json': dev }),
    });
    const noFlag = resolveConfig({
      flags: {},
      env,
      cwd: '/w',
      readFile: files({ 'lockstep.config.yaml': yaml, 'dev.json': dev }),
    });
    const noEnv = resolveConfig({
      flags: {},
      env: {},
      cwd: '/w',
      readFile: files({ 'lockstep.config.yaml': yaml, 'dev.json': dev }),
    });
    // Assert
    expect(all.config.api.url).toBe('http://flag:3');
    expect(all.sources['api.url']).toBe('flag --api-url');
    expect(noFlag.config.api.url).toBe('http://env:2');
    expect(noFlag.sources['api.url']).toBe('env LOCKSTEP_API_URL');
    expect(noEnv.config.api.url).toBe('http://file:1');
    expect(noEnv.sources['api.url']).toBe('lockstep.config.yaml (api.url)');
    expect(noEnv.config.cloudant.url).toBe('http://file-couch:5984');
    expect(noEnv.config.iam.url).toBe('http://127.0.0.1:4600');
    expect(all.config.iam.url).toBe('http://env-iam:3');
  });

  it('merges Key Protect regions across layers and reads region lists from env and flags', () => {
    const r = resolveConfig({
      flags: { kpEndpoint: ['eu-de=http://flag-eu:1'], kpInstance: [`eu-de=${G1}`] },
      env: { LOCKSTEP_KP_ENDPOINTS: 'us-east=http://env-east:1', LOCKSTEP_KP_INSTANCES: '' },
      cwd: '/w',
      readFile: files({ 'dev.json': dev }),
    });
    expect(Object.keys(r.config.keyProtect).sort()).toEqual(['eu-de', 'us-east', 'us-south']);
    expect(r.config.keyProtect['us-east']).toEqual({ url: 'http://env-east:1', instanceId: G2 });
    expect(r.config.keyProtect['eu-de']).toEqual({ url: 'http://flag-eu:1', instanceId: G1 });
  });

  it('prefers LOCKSTEP_API_KEY over IBMCLOUD_API_KEY and never prints the key', () => {
    const r = resolveConfig({
      flags: {},
      env: { LOCKSTEP_API_KEY: 'a', IBMCLOUD_API_KEY: 'b' },
      cwd: '/w',
      readFile: () => undefined,
    });
    const r2 = resolveConfig({ flags: {}, env: { IBMCLOUD_API_KEY: 'b' }, cwd: '/w', readFile: () => undefined });
    expect(r.config.iam.apiKey?.reveal()).toBe('a');
    expect(r2.config.iam.apiKey?.reveal()).toBe('b');
    expect(JSON.stringify(r.config)).not.toContain('"a"');
  });

  it.each([
    {
      case: 'bad URL from a flag',
      flags: { apiUrl: 'not a url' },
      env: {},
      msg: /invalid api\.url from flag --api-url: "not a url" is not a URL/,
    },
    {
      case: 'non-http URL from env',
      flags: {},
      env: { CLOUDANT_URL: 'ftp://x' },
      msg: /invalid cloudant\.url from env CLOUDANT_URL/,
    },
    {
      case: 'region list without =',
      flags: {},
      env: { LOCKSTEP_KP_ENDPOINTS: 'us-south' },
      msg: /env LOCKSTEP_KP_ENDPOINTS: "us-south" is not region=value/,
    },
    {
      case: 'url without instance',
      flags: { kpEndpoint: ['eu-gb=http://x:1'] },
      env: {},
      msg: /keyProtect\.eu-gb\.url from flag --kp-endpoint: region eu-gb has a url but no instanceId/,
    },
    {
      case: 'bad instance GUID',
      flags: { kpEndpoint: ['eu-gb=http://x:1'], kpInstance: ['eu-gb=nope'] },
      env: {},
      msg: /keyProtect\.eu-gb\.instanceId from flag --kp-instance: "nope" is not an instance GUID/,
    },
    {
      case: 'bad region name',
      flags: { kpEndpoint: ['Mars=http://x:1'], kpInstance: [`Mars=${G1}`] },
      env: {},
      msg: /"Mars" is not a region/,
    },
    {
      case: 'bad escrow CRN',
      flags: { escrowKey: 'crn:nope' },
      env: {},
      msg: /invalid escrow\.crn from flag --escrow-key/,
    },
    {
      case: 'bad duration',
      flags: {},
      env: { LOCKSTEP_ROTATION_MIN_INTERVAL: 'soon' },
      msg: /rotationMinIntervalMs from env LOCKSTEP_ROTATION_MIN_INTERVAL: expected a duration/,
    },
    { case: 'unknown role', flags: { role: 'admin' }, env: {}, msg: /"admin" is not a role/, dev: true },
  ])('rejects $case with exit 2 and names the source', ({ flags, env, msg, dev: withDev }) => {
    const e = fail(() =>
      resolveConfig({ flags, env, cwd: '/w', readFile: withDev ? files({ 'dev.json': dev }) : () => undefined }),
    );
    expect(e.exitCode).toBe(ExitCode.USAGE);
    expect(e.message).toMatch(msg);
  });

  it('requires an explicit config file to exist', () => {
    const e = fail(() =>
      resolveConfig({ flags: { config: 'missing.yaml' }, env: {}, cwd: '/w', readFile: () => undefined }),
    );
    expect(e.message).toMatch(/config file not found: missing\.yaml \(from flag --config\)/);
    const e2 = fail(() =>
      resolveConfig({ flags: {}, env: { LOCKSTEP_CONFIG: 'x.yaml' }, cwd: '/w', readFile: () => undefined }),
    );
    expect(e2.message).toMatch(/from env LOCKSTEP_CONFIG/);
  });

  it.each([
    {
      case: 'an unknown top-level key, with its line',
      text: 'api:\n  url: http://x:1\napiUrl: http://y\n',
      msg: /lockstep\.config\.yaml:3:1: unknown setting "apiUrl"/,
    },
    {
      case: 'an unknown nested key',
      text: 'iam:\n  url: http://x:1\n  apikey: k\n',
      msg: /:3:3: unknown setting "iam\.apikey"/,
    },
    { case: 'a section that is not a mapping', text: 'api: http://x\n', msg: /:1:1: "api" must be a mapping/ },
    { case: 'a YAML syntax error', text: 'api:\n  url: [http://x\n', msg: /is not valid YAML: line \d+, column \d+/ },
    {
      case: 'a wrong value type',
      text: 'api:\n  url: 42\n',
      msg: /invalid api\.url from lockstep\.config\.yaml \(api\.url\): expected a string, got number/,
    },
  ])('rejects a config file with $case', ({ text, msg }) => {
    const e = fail(() =>
      resolveConfig({ flags: {}, env: {}, cwd: '/w', readFile: files({ 'lockstep.config.yaml': text }) }),
    );
    expect(e.exitCode).toBe(ExitCode.USAGE);
    expect(e.message).toMatch(msg);
  });

  it('reads keyProtect regions and rotationMinInterval from a config file', () => {
    const text = `keyProtect:\n  us-south:\n    url: http://kp:1\n    instanceId: ${G1}\nrotationMinInterval: 1h\n`;
    const r = resolveConfig({ flags: {}, env: {}, cwd: '/w', readFile: files({ 'lockstep.config.yaml': text }) });
    expect(r.config.keyProtect['us-south']?.url).toBe('http://kp:1');
    expect(r.config.rotationMinIntervalMs).toBe(3_600_000);
    expect(r.sources['keyProtect.us-south.instanceId']).toBe('lockstep.config.yaml (keyProtect.us-south.instanceId)');
  });

  it('rejects a corrupt dev.json with a hint to restart the stack', () => {
    const e = fail(() => resolveConfig({ flags: {}, env: {}, cwd: '/w', readFile: files({ 'dev.json': '{oops' }) }));
    expect(e.message).toMatch(/\.lockstep\/dev\.json is not valid JSON/);
    expect(e.hint).toMatch(/start the stack again/);
  });
});

describe('resolveConfig with the functions environment', () => {
  it('accepts the JSON form of LOCKSTEP_KP_ENDPOINTS and LOCKSTEP_CLOUDANT_URL', () => {
    const r = resolveConfig({
      flags: {},
      env: {
        LOCKSTEP_KP_ENDPOINTS: '{"us-south":"http://kp:1"}',
        LOCKSTEP_KP_INSTANCES: `{"us-south":"${G1}"}`,
        LOCKSTEP_CLOUDANT_URL: 'http://couch:1',
        CLOUDANT_URL: 'http://other:2',
      },
      cwd: '/w',
      readFile: () => undefined,
    });
    expect(r.config.keyProtect['us-south']).toEqual({ url: 'http://kp:1', instanceId: G1 });
    expect(r.config.cloudant.url).toBe('http://couch:1');
    expect(r.sources['cloudant.url']).toBe('env LOCKSTEP_CLOUDANT_URL');
  });

  it('rejects broken JSON in a region list', () => {
    const e = fail(() =>
      resolveConfig({
        flags: {},
        env: { LOCKSTEP_KP_ENDPOINTS: '{"us-south":' },
        cwd: '/w',
        readFile: () => undefined,
      }),
    );
    expect(e.message).toMatch(/bad value from env LOCKSTEP_KP_ENDPOINTS: not valid JSON/);
  });
});

describe('resolveConfig with the variables IBM Cloud tools use', () => {
  const resolveEnv = (env: Record<string, string>, fileMap: Record<string, string> = {}) =>
    resolveConfig({ flags: {}, env, cwd: '/w', readFile: files(fileMap) });

  it('takes the API key from LOCKSTEP_API_KEY, else IBMCLOUD_API_KEY, else IC_API_KEY', () => {
    expect(resolveEnv({ IC_API_KEY: 'ic' }).sources['iam.apiKey']).toBe('env IC_API_KEY');
    expect(resolveEnv({ IC_API_KEY: 'ic', IBMCLOUD_API_KEY: 'ibm' }).config.iam.apiKey?.reveal()).toBe('ibm');
    const all = resolveEnv({ IC_API_KEY: 'ic', IBMCLOUD_API_KEY: 'ibm', LOCKSTEP_API_KEY: 'ls' });
    expect(all.config.iam.apiKey?.reveal()).toBe('ls');
  });

  it('reads IBMCLOUD_API_KEY=@file from the file, as ibmcloud does, and says when the file is missing', () => {
    const r = resolveEnv({ IBMCLOUD_API_KEY: '@keys/apikey.txt' }, { '/w/keys/apikey.txt': 'from-file\n' });
    expect(r.config.iam.apiKey?.reveal()).toBe('from-file');
    expect(r.sources['iam.apiKey']).toBe('env IBMCLOUD_API_KEY (file keys/apikey.txt)');
    const e = fail(() => resolveEnv({ IBMCLOUD_API_KEY: '@missing.txt' }));
    expect(e.exitCode).toBe(ExitCode.USAGE);
    expect(e.message).toMatch(/env IBMCLOUD_API_KEY: API key file "missing.txt" not found/);
  });

  it('takes the region from IBMCLOUD_REGION, else IC_REGION, else the config file, and validates it', () => {
    expect(resolveEnv({ IC_REGION: 'eu-de' }).config.region).toBe('eu-de');
    expect(resolveEnv({ IC_REGION: 'eu-de', IBMCLOUD_REGION: 'us-east' }).sources.region).toBe('env IBMCLOUD_REGION');
    expect(resolveEnv({}, { 'lockstep.config.yaml': 'region: jp-tok\n' }).config.region).toBe('jp-tok');
    expect(fail(() => resolveEnv({ IBMCLOUD_REGION: 'Dallas' })).message).toMatch(
      /invalid region from env IBMCLOUD_REGION: "Dallas" is not a region/,
    );
  });

  it("defaults a region's Key Protect endpoint to its public endpoint when only the instance is set", () => {
    const r = resolveEnv({ LOCKSTEP_KP_INSTANCES: `eu-de=${G1}` });
    expect(r.config.keyProtect['eu-de']).toEqual({ url: 'https://eu-de.kms.cloud.ibm.com', instanceId: G1 });
    expect(r.sources['keyProtect.eu-de.url']).toBe('default (Key Protect public endpoint)');
  });
});
