import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import type { GroupId, InstanceId, KeyCrn, KeyCrnParts, RegionId } from '../core/index.js';
import {
  asGroupId,
  asInstanceId,
  asRegionId,
  ibmKeyProtectUrl,
  isAppError,
  parseKeyCrn,
  Sensitive,
} from '../core/index.js';
import { parseDuration } from './duration.js';
import { usageError } from './exitCodes.js';
import { formatPath, parseLocatedYaml } from './yamlDoc.js';

/** Default file names, relative to the working directory. */
export const DEFAULT_CONFIG_FILE = 'lockstep.config.yaml';
export const DEFAULT_DEV_FILE = '.lockstep/dev.json';

/** Global flags that feed configuration (the highest-precedence layer). */
export interface ConfigFlags {
  config?: string;
  devFile?: string;
  apiUrl?: string;
  iamUrl?: string;
  apiKey?: string;
  /** Which API key of `.lockstep/dev.json` to use (default operator). */
  role?: string;
  cloudantUrl?: string;
  /** `region=url`, repeatable. */
  kpEndpoint?: string[];
  /** `region=instance-guid`, repeatable. */
  kpInstance?: string[];
  escrowKey?: string;
}

/** One Key Protect region as the CLI reaches it. */
export interface KeyProtectRegion {
  url: string;
  instanceId: InstanceId;
}

/** Configuration after precedence and validation. Secrets are `Sensitive` so they never print. */
export interface CliConfig {
  iam: { url?: string; apiKey?: Sensitive<string> };
  api: { url?: string };
  cloudant: { url?: string; apiKey?: Sensitive<string>; username?: string; password?: Sensitive<string> };
  keyProtect: Record<string, KeyProtectRegion>;
  escrow?: KeyCrnParts & { crn: KeyCrn };
  /** Minimum time between two rotations of one key (Key Protect: 1 h; shortened by the local dev stack). */
  rotationMinIntervalMs?: number;
  /** Groups seeded by `lockstep dev` (from dev.json). */
  devGroups: GroupId[];
  /** Default region (IBMCLOUD_REGION / IC_REGION, as IBM Cloud tools read it): the primary of `group create`. */
  region?: RegionId;
}

export interface ResolvedConfig {
  config: CliConfig;
  /** Where each value came from, by dotted key: `flag --api-url`, `env LOCKSTEP_API_URL`, `lockstep.config.yaml (api.url)`. */
  sources: Record<string, string>;
  files: { config?: string; dev?: string };
}

export interface ResolveConfigInput {
  flags: ConfigFlags;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** File reader (tests inject one); returns undefined when the file does not exist. */
  readFile?: (path: string) => string | undefined;
}

type Layer = Map<string, { value: unknown; source: string }>;

const KEY_ORDER = [
  'iam.url',
  'iam.apiKey',
  'api.url',
  'cloudant.url',
  'cloudant.apiKey',
  'cloudant.username',
  'cloudant.password',
  'escrow.crn',
  'rotationMinIntervalMs',
  'region',
] as const;

/** Environment variables the CLI reads (documented in docs/cli.md). */
export const ENV_VARS = {
  LOCKSTEP_CONFIG: 'config file path',
  LOCKSTEP_DEV_FILE: 'dev.json path',
  LOCKSTEP_API_URL: 'api.url',
  LOCKSTEP_IAM_URL: 'iam.url',
  LOCKSTEP_API_KEY: 'iam.apiKey',
  IBMCLOUD_API_KEY: 'iam.apiKey when LOCKSTEP_API_KEY is not set; `@file` reads the key from a file (as ibmcloud does)',
  IC_API_KEY: "iam.apiKey when neither of the above is set (the IBM Cloud Terraform provider's name)",
  IBMCLOUD_REGION: 'region: the default region (primary of `group create`)',
  IC_REGION: 'region when IBMCLOUD_REGION is not set',
  LOCKSTEP_CLOUDANT_URL: 'cloudant.url (CLOUDANT_URL is the fallback)',
  CLOUDANT_URL: 'cloudant.url',
  CLOUDANT_APIKEY: 'cloudant.apiKey',
  CLOUDANT_USERNAME: 'cloudant.username (basic auth: a CouchDB, or the local stack store)',
  CLOUDANT_PASSWORD: 'cloudant.password',
  LOCKSTEP_KP_ENDPOINTS: 'keyProtect.<region>.url as region=url,region=url or {"region":"url"}',
  LOCKSTEP_KP_INSTANCES: 'keyProtect.<region>.instanceId as region=guid,region=guid or {"region":"guid"}',
  LOCKSTEP_ESCROW_KEY: 'escrow.crn',
  LOCKSTEP_ROTATION_MIN_INTERVAL: 'rotationMinIntervalMs (e.g. 1h)',
  NO_COLOR: 'any value: no ANSI colours',
  IBMCLOUD_COLOR: 'false: no ANSI colours (as ibmcloud reads it)',
} as const;

/** Key Protect's public endpoint of a region (used when only the instance of a region is configured). */

/** Where each setting can come from, highest precedence first (rendered by `lockstep --help` and docs/cli.md). */
export const SETTING_SOURCES: ReadonlyArray<{
  setting: string;
  flag?: string;
  env: string[];
  file?: string;
  dev?: string;
  otherwise?: string;
}> = [
  { setting: 'api.url', flag: '--api-url', env: ['LOCKSTEP_API_URL'], file: 'api.url', dev: 'api.url' },
  { setting: 'iam.url', flag: '--iam-url', env: ['LOCKSTEP_IAM_URL'], file: 'iam.url', dev: 'iam.url' },
  {
    setting: 'iam.apiKey',
    flag: '--api-key',
    env: ['LOCKSTEP_API_KEY', 'IBMCLOUD_API_KEY (or @file)', 'IC_API_KEY'],
    file: 'iam.apiKey',
    dev: 'iam.apiKeys.<--role>',
  },
  {
    setting: 'cloudant.url',
    flag: '--cloudant-url',
    env: ['LOCKSTEP_CLOUDANT_URL', 'CLOUDANT_URL'],
    file: 'cloudant.url',
    dev: 'cloudant.url',
  },
  { setting: 'cloudant.apiKey', env: ['CLOUDANT_APIKEY'], file: 'cloudant.apiKey' },
  {
    setting: 'cloudant.username',
    env: ['CLOUDANT_USERNAME'],
    file: 'cloudant.username',
    dev: 'cloudant.username',
  },
  {
    setting: 'cloudant.password',
    env: ['CLOUDANT_PASSWORD'],
    file: 'cloudant.password',
    dev: 'cloudant.password',
  },
  {
    setting: 'keyProtect.<region>.url',
    flag: '--kp-endpoint',
    env: ['LOCKSTEP_KP_ENDPOINTS'],
    file: 'keyProtect.<region>.url',
    dev: 'keyProtect',
    otherwise: 'https://<region>.kms.cloud.ibm.com when the instance is set',
  },
  {
    setting: 'keyProtect.<region>.instanceId',
    flag: '--kp-instance',
    env: ['LOCKSTEP_KP_INSTANCES'],
    file: 'keyProtect.<region>.instanceId',
    dev: 'keyProtect',
  },
  { setting: 'escrow.crn', flag: '--escrow-key', env: ['LOCKSTEP_ESCROW_KEY'], file: 'escrow.crn', dev: 'escrow.crn' },
  { setting: 'region', env: ['IBMCLOUD_REGION', 'IC_REGION'], file: 'region' },
  {
    setting: 'rotationMinInterval',
    env: ['LOCKSTEP_ROTATION_MIN_INTERVAL'],
    file: 'rotationMinInterval',
    dev: 'rotationMinIntervalMs',
    otherwise: '1h (Key Protect)',
  },
];

/** The `--help` text of {@link SETTING_SOURCES}: one line per setting, its sources in precedence order. */
export function settingSourcesHelp(indent = '  '): string {
  const width = Math.max(...SETTING_SOURCES.map((s) => s.setting.length));
  return SETTING_SOURCES.map((s) => {
    const from = [
      ...(s.flag ? [`flag ${s.flag}`] : []),
      ...(s.env.length ? [`env ${s.env.join(' > ')}`] : []),
      ...(s.file ? [`config file ${s.file}`] : []),
      ...(s.dev ? [`dev.json ${s.dev}`] : []),
      ...(s.otherwise ? [`else ${s.otherwise}`] : []),
    ];
    // wrap at ~110 columns, continuation lines aligned under the first source
    const lines: string[] = [];
    for (const part of from) {
      const last = lines.length - 1;
      if (last >= 0 && (lines[last] as string).length + part.length + 3 <= 110 - width) lines[last] += ` > ${part}`;
      else lines.push(last >= 0 ? `> ${part}` : part);
    }
    const pad = `${indent}${' '.repeat(width)}  `;
    return lines.map((l, i) => (i === 0 ? `${indent}${s.setting.padEnd(width)}  ${l}` : `${pad}${l}`)).join('\n');
  }).join('\n');
}

const defaultRead = (p: string): string | undefined => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

/**
 * Resolves configuration with the documented precedence: flags > environment > config file (`--config`,
 * `LOCKSTEP_CONFIG` or `./lockstep.config.yaml`) > `.lockstep/dev.json`. Every value is validated; an error names the
 * source of the bad value.
 * @throws {CliError} exit code 2 on a bad value, an unreadable file or an unknown config-file key
 */
export function resolveConfig(input: ResolveConfigInput): ResolvedConfig {
  const { flags, env, cwd } = input;
  const show = (p: string) => (isAbsolute(p) ? relative(cwd, p) || p : p);
  const readFile = input.readFile ?? defaultRead;
  // a path that exists but cannot be read (a directory, no permission) is a usage error like a missing file
  const read = (p: string): string | undefined => {
    try {
      return readFile(p);
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      throw usageError(
        `cannot read ${show(p)}${typeof code === 'string' ? ` (${code})` : ''}`,
        'point --config / --dev-file (or LOCKSTEP_CONFIG / LOCKSTEP_DEV_FILE) at a readable file',
      );
    }
  };

  // config file: an explicit path must exist; the default one is optional
  const explicitConfig = flags.config ?? env.LOCKSTEP_CONFIG;
  const configPath = resolve(cwd, explicitConfig ?? DEFAULT_CONFIG_FILE);
  const configText = read(configPath);
  if (explicitConfig !== undefined && configText === undefined) {
    throw usageError(
      `config file not found: ${explicitConfig} (from ${flags.config !== undefined ? 'flag --config' : 'env LOCKSTEP_CONFIG'})`,
      `create it (see examples/lockstep.config.yaml) or drop the option`,
    );
  }
  const explicitDev = flags.devFile ?? env.LOCKSTEP_DEV_FILE;
  const devPath = resolve(cwd, explicitDev ?? DEFAULT_DEV_FILE);
  const devText = read(devPath);

  const layers: Layer[] = [
    devText === undefined ? new Map() : devLayer(devText, show(devPath), flags.role),
    configText === undefined ? new Map() : fileLayer(configText, show(configPath)),
    envLayer(env, (p) => read(resolve(cwd, p))),
    flagLayer(flags),
  ];
  const merged: Layer = new Map();
  for (const layer of layers) for (const [k, v] of layer) merged.set(k, v);
  // a region whose instance is known but not its endpoint: Key Protect's public endpoint of that region
  for (const k of [...merged.keys()]) {
    const m = /^keyProtect\.(.+)\.instanceId$/.exec(k);
    if (m && !merged.has(`keyProtect.${m[1]}.url`) && /^[a-z]{2}-[a-z]{2,6}$/.test(m[1] as string)) {
      merged.set(`keyProtect.${m[1]}.url`, {
        value: ibmKeyProtectUrl(m[1] as string),
        source: 'default (Key Protect public endpoint)',
      });
    }
  }

  const sources: Record<string, string> = {};
  for (const [k, v] of merged) sources[k] = v.source;
  const config = validate(merged);
  return {
    config,
    sources,
    files: {
      config: configText === undefined ? undefined : configPath,
      dev: devText === undefined ? undefined : devPath,
    },
  };
}

function put(layer: Layer, key: string, value: unknown, source: string): void {
  if (value !== undefined && value !== null && value !== '') layer.set(key, { value, source });
}

function pairs(text: string, source: string): Array<[string, string]> {
  // the functions' form (serverless.yml): a JSON object {"<region>": "<value>"}
  if (text.trim().startsWith('{')) {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw usageError(
        `bad value from ${source}: not valid JSON`,
        'use {"us-south":"..."} or us-south=...,us-east=...',
      );
    }
    if (!isRecord(obj) || Object.values(obj).some((v) => typeof v !== 'string')) {
      throw usageError(`bad value from ${source}: expected a JSON object of strings by region`);
    }
    return Object.entries(obj as Record<string, string>);
  }
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const i = item.indexOf('=');
      if (i <= 0) throw usageError(`bad value from ${source}: "${item}" is not region=value`, 'e.g. us-south=...');
      return [item.slice(0, i).trim(), item.slice(i + 1).trim()];
    });
}

function flagLayer(f: ConfigFlags): Layer {
  const l: Layer = new Map();
  put(l, 'iam.url', f.iamUrl, 'flag --iam-url');
  put(l, 'iam.apiKey', f.apiKey, 'flag --api-key');
  put(l, 'api.url', f.apiUrl, 'flag --api-url');
  put(l, 'cloudant.url', f.cloudantUrl, 'flag --cloudant-url');
  put(l, 'escrow.crn', f.escrowKey, 'flag --escrow-key');
  for (const item of f.kpEndpoint ?? []) {
    for (const [r, v] of pairs(item, 'flag --kp-endpoint')) put(l, `keyProtect.${r}.url`, v, 'flag --kp-endpoint');
  }
  for (const item of f.kpInstance ?? []) {
    for (const [r, v] of pairs(item, 'flag --kp-instance')) {
      put(l, `keyProtect.${r}.instanceId`, v, 'flag --kp-instance');
    }
  }
  return l;
}

function envLayer(
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string | undefined,
): Layer {
  const l: Layer = new Map();
  put(l, 'iam.url', env.LOCKSTEP_IAM_URL, 'env LOCKSTEP_IAM_URL');
  if (env.LOCKSTEP_API_KEY) put(l, 'iam.apiKey', env.LOCKSTEP_API_KEY, 'env LOCKSTEP_API_KEY');
  else if (env.IBMCLOUD_API_KEY?.startsWith('@')) {
    // ibmcloud's convention: IBMCLOUD_API_KEY=@file reads the key from that file
    const file = env.IBMCLOUD_API_KEY.slice(1);
    const text = file ? readFile(file) : undefined;
    if (text === undefined) {
      throw usageError(
        `env IBMCLOUD_API_KEY: API key file "${file}" not found`,
        'set IBMCLOUD_API_KEY=@<path to a file holding the key>, or the key itself',
      );
    }
    put(l, 'iam.apiKey', text.trim(), `env IBMCLOUD_API_KEY (file ${file})`);
  } else if (env.IBMCLOUD_API_KEY) put(l, 'iam.apiKey', env.IBMCLOUD_API_KEY, 'env IBMCLOUD_API_KEY');
  else put(l, 'iam.apiKey', env.IC_API_KEY, 'env IC_API_KEY');
  if (env.IBMCLOUD_REGION) put(l, 'region', env.IBMCLOUD_REGION, 'env IBMCLOUD_REGION');
  else put(l, 'region', env.IC_REGION, 'env IC_REGION');
  put(l, 'api.url', env.LOCKSTEP_API_URL, 'env LOCKSTEP_API_URL');
  if (env.LOCKSTEP_CLOUDANT_URL) put(l, 'cloudant.url', env.LOCKSTEP_CLOUDANT_URL, 'env LOCKSTEP_CLOUDANT_URL');
  else put(l, 'cloudant.url', env.CLOUDANT_URL, 'env CLOUDANT_URL');
  put(l, 'cloudant.apiKey', env.CLOUDANT_APIKEY, 'env CLOUDANT_APIKEY');
  put(l, 'cloudant.username', env.CLOUDANT_USERNAME, 'env CLOUDANT_USERNAME');
  put(l, 'cloudant.password', env.CLOUDANT_PASSWORD, 'env CLOUDANT_PASSWORD');
  put(l, 'escrow.crn', env.LOCKSTEP_ESCROW_KEY, 'env LOCKSTEP_ESCROW_KEY');
  put(l, 'rotationMinIntervalMs', env.LOCKSTEP_ROTATION_MIN_INTERVAL, 'env LOCKSTEP_ROTATION_MIN_INTERVAL');
  if (env.LOCKSTEP_KP_ENDPOINTS) {
    for (const [r, v] of pairs(env.LOCKSTEP_KP_ENDPOINTS, 'env LOCKSTEP_KP_ENDPOINTS')) {
      put(l, `keyProtect.${r}.url`, v, 'env LOCKSTEP_KP_ENDPOINTS');
    }
  }
  if (env.LOCKSTEP_KP_INSTANCES) {
    for (const [r, v] of pairs(env.LOCKSTEP_KP_INSTANCES, 'env LOCKSTEP_KP_INSTANCES')) {
      put(l, `keyProtect.${r}.instanceId`, v, 'env LOCKSTEP_KP_INSTANCES');
    }
  }
  return l;
}

const FILE_SHAPE: Record<string, readonly string[] | 'regions' | 'scalar'> = {
  iam: ['url', 'apiKey'],
  api: ['url'],
  cloudant: ['url', 'apiKey', 'username', 'password'],
  keyProtect: 'regions',
  escrow: ['crn'],
  rotationMinInterval: 'scalar',
  region: 'scalar',
};

/** Layer key of each scalar setting of the config file. */
const SCALAR_KEY: Record<string, string> = { rotationMinInterval: 'rotationMinIntervalMs', region: 'region' };

function fileLayer(text: string, file: string): Layer {
  const doc = parseLocatedYaml(text);
  if (doc.syntaxErrors.length) {
    throw usageError(`${file} is not valid YAML: ${doc.syntaxErrors[0]}`, 'fix the file or point --config elsewhere');
  }
  const at = (path: (string | number)[]) => {
    const p = doc.locate(path);
    return p ? `${file}:${p.line}:${p.col}` : file;
  };
  const l: Layer = new Map();
  const root = doc.value ?? {};
  if (!isRecord(root)) throw usageError(`${at([])}: expected a mapping of settings`);
  for (const [k, v] of Object.entries(root)) {
    // own keys only: `constructor`, `toString`… are unknown settings, not Object.prototype members
    const shape = Object.hasOwn(FILE_SHAPE, k) ? FILE_SHAPE[k] : undefined;
    if (!shape) {
      throw usageError(
        `${at([k])}: unknown setting "${k}"`,
        `allowed top-level settings: ${Object.keys(FILE_SHAPE).join(', ')}`,
      );
    }
    const src = (path: string) => `${file} (${path})`;
    if (shape === 'scalar') {
      put(l, SCALAR_KEY[k] as string, v, src(k));
      continue;
    }
    if (!isRecord(v)) throw usageError(`${at([k])}: "${k}" must be a mapping`);
    if (shape === 'regions') {
      for (const [region, rv] of Object.entries(v)) {
        if (!isRecord(rv))
          throw usageError(`${at([k, region])}: keyProtect.${region} must be a mapping {url, instanceId}`);
        for (const [f, fv] of Object.entries(rv)) {
          if (f !== 'url' && f !== 'instanceId') {
            throw usageError(
              `${at([k, region, f])}: unknown setting "${formatPath([k, region, f])}"`,
              'allowed: url, instanceId',
            );
          }
          put(l, `keyProtect.${region}.${f}`, fv, src(formatPath([k, region, f])));
        }
      }
      continue;
    }
    for (const [f, fv] of Object.entries(v)) {
      if (!shape.includes(f)) {
        throw usageError(`${at([k, f])}: unknown setting "${k}.${f}"`, `allowed under ${k}: ${shape.join(', ')}`);
      }
      put(l, `${k}.${f}`, fv, src(`${k}.${f}`));
    }
  }
  return l;
}

function devLayer(text: string, file: string, role: string | undefined): Layer {
  let dev: unknown;
  try {
    dev = JSON.parse(text);
  } catch (err) {
    throw usageError(
      `${file} is not valid JSON (${(err as Error).message})`,
      'it is written by `lockstep dev`; delete it and start the stack again',
    );
  }
  if (!isRecord(dev)) throw usageError(`${file}: expected a JSON object`);
  const l: Layer = new Map();
  const src = (path: string) => `${file} (${path})`;
  const get = (path: string[]): unknown =>
    path.reduce<unknown>((o, k) => (isRecord(o) ? o[k] : undefined), dev as unknown);
  const which = role ?? 'operator';
  if (which !== 'operator' && which !== 'auditor') {
    throw usageError(`flag --role: "${which}" is not a role`, 'use --role operator or --role auditor');
  }
  put(l, 'iam.url', get(['iam', 'url']), src('iam.url'));
  put(l, 'iam.apiKey', get(['iam', 'apiKeys', which]), src(`iam.apiKeys.${which}`));
  put(l, 'api.url', get(['api', 'url']), src('api.url'));
  put(l, 'cloudant.url', get(['cloudant', 'url']), src('cloudant.url'));
  put(l, 'cloudant.username', get(['cloudant', 'username']), src('cloudant.username'));
  put(l, 'cloudant.password', get(['cloudant', 'password']), src('cloudant.password'));
  put(l, 'escrow.crn', get(['escrow', 'crn']), src('escrow.crn'));
  put(l, 'rotationMinIntervalMs', get(['rotationMinIntervalMs']), src('rotationMinIntervalMs'));
  const kp = get(['keyProtect']);
  if (isRecord(kp)) {
    for (const [region, rv] of Object.entries(kp)) {
      if (!isRecord(rv)) continue;
      put(l, `keyProtect.${region}.url`, rv.url, src(`keyProtect.${region}.url`));
      put(l, `keyProtect.${region}.instanceId`, rv.instanceId, src(`keyProtect.${region}.instanceId`));
    }
  }
  const groups = get(['groups']);
  if (Array.isArray(groups)) put(l, 'devGroups', groups, src('groups'));
  return l;
}

function validate(m: Layer): CliConfig {
  const bad = (key: string, what: string, hint?: string): never => {
    const e = m.get(key)!;
    throw usageError(`invalid ${key} from ${e.source}: ${what}`, hint);
  };
  const str = (key: string): string | undefined => {
    const e = m.get(key);
    if (!e) return undefined;
    if (typeof e.value !== 'string') bad(key, `expected a string, got ${typeof e.value}`);
    return e.value as string;
  };
  const url = (key: string): string | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    let u: URL | undefined;
    try {
      u = new URL(v);
    } catch {
      bad(key, `"${v}" is not a URL`, 'use an absolute http(s) URL such as http://127.0.0.1:4601');
    }
    if (u!.protocol !== 'http:' && u!.protocol !== 'https:') bad(key, `"${v}" is not an http(s) URL`);
    return v.replace(/\/+$/, '');
  };
  const secret = (key: string): Sensitive<string> | undefined => {
    const v = str(key);
    return v === undefined ? undefined : new Sensitive(v);
  };

  const keyProtect: Record<string, KeyProtectRegion> = {};
  const regions = new Set<string>();
  for (const k of m.keys()) if (k.startsWith('keyProtect.')) regions.add(k.slice(11, k.lastIndexOf('.')));
  for (const region of [...regions].sort()) {
    const urlKey = `keyProtect.${region}.url`;
    const instKey = `keyProtect.${region}.instanceId`;
    const anyKey = m.has(urlKey) ? urlKey : instKey;
    try {
      asRegionId(region);
    } catch {
      bad(anyKey, `"${region}" is not a region`, 'regions look like us-south, us-east, eu-de');
    }
    const u = url(urlKey);
    const inst = str(instKey);
    if (u === undefined) bad(instKey, `region ${region} has an instanceId but no url`, `set keyProtect.${region}.url`);
    if (inst === undefined)
      bad(urlKey, `region ${region} has a url but no instanceId`, `set keyProtect.${region}.instanceId`);
    let instanceId: InstanceId;
    try {
      instanceId = asInstanceId(inst);
    } catch {
      bad(instKey, `"${inst}" is not an instance GUID`);
    }
    keyProtect[region] = { url: u!, instanceId: instanceId! };
  }

  let escrow: CliConfig['escrow'];
  const escrowCrn = str('escrow.crn');
  if (escrowCrn !== undefined) {
    try {
      escrow = parseKeyCrn(escrowCrn);
    } catch (err) {
      bad('escrow.crn', isAppError(err) ? err.message : 'not a key CRN');
    }
  }

  let rotationMinIntervalMs: number | undefined;
  if (m.has('rotationMinIntervalMs')) {
    rotationMinIntervalMs = parseDuration(m.get('rotationMinIntervalMs')!.value);
    if (rotationMinIntervalMs === undefined) bad('rotationMinIntervalMs', 'expected a duration such as 1h or 2m');
  }

  let devGroups: GroupId[] = [];
  if (m.has('devGroups')) {
    try {
      devGroups = (m.get('devGroups')!.value as unknown[]).map((g) => asGroupId(g));
    } catch (err) {
      bad('devGroups', isAppError(err) ? err.message : 'bad group id');
    }
  }

  let region: RegionId | undefined;
  const regionText = str('region');
  if (regionText !== undefined) {
    try {
      region = asRegionId(regionText);
    } catch {
      bad('region', `"${regionText}" is not a region`, 'regions look like us-south, us-east, eu-de');
    }
  }

  // touch every known key so that a wrong type anywhere is reported
  for (const k of KEY_ORDER) if (k !== 'rotationMinIntervalMs' && k !== 'escrow.crn') str(k);

  return {
    iam: { url: url('iam.url'), apiKey: secret('iam.apiKey') },
    api: { url: url('api.url') },
    cloudant: {
      url: url('cloudant.url'),
      apiKey: secret('cloudant.apiKey'),
      ...(str('cloudant.username') !== undefined ? { username: str('cloudant.username') } : {}),
      ...(m.has('cloudant.password') ? { password: secret('cloudant.password') } : {}),
    },
    keyProtect,
    escrow,
    rotationMinIntervalMs,
    devGroups,
    ...(region ? { region } : {}),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A region's config, or a usage error that says how to add it. */
export function requireRegion(config: CliConfig, region: string): KeyProtectRegion & { region: RegionId } {
  const r = config.keyProtect[region];
  if (!r) {
    const known = Object.keys(config.keyProtect);
    throw usageError(
      `no Key Protect endpoint configured for region ${region}`,
      known.length
        ? `configured regions: ${known.join(', ')}; add one with --kp-endpoint ${region}=<url> --kp-instance ${region}=<guid>`
        : 'start the local stack (`npm start`) or set LOCKSTEP_KP_ENDPOINTS / keyProtect in lockstep.config.yaml',
    );
  }
  return { ...r, region: region as RegionId };
}
