/**
 * Function configuration from the environment Code Engine injects (literal env variables and secret references set
 * by the serverless plugin). Every problem is collected and reported at once as CONFIG_INVALID, naming each
 * variable to set or fix; secret values are never echoed.
 */

import { AppError, ibmKeyProtectUrl, Sensitive } from '../core/index.js';
import { sdkHttpTracingProblem } from '../keyprotect/tracing.js';
import type { SharedSecret } from './auth.js';

export type Env = Record<string, string | undefined>;

/** Public Key Protect endpoints by region (override with LOCKSTEP_KP_ENDPOINTS). */
export const KP_REGIONS = [
  'au-syd',
  'br-sao',
  'ca-tor',
  'eu-de',
  'eu-es',
  'eu-gb',
  'jp-osa',
  'jp-tok',
  'us-east',
  'us-south',
];

/** Collects problems, then throws them together. */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(readonly env: Env) {}

  optional(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  required(name: string, hint: string): string {
    const v = this.optional(name);
    if (v === undefined) this.problems.push(`${name} is not set (${hint})`);
    return v ?? '';
  }

  int(name: string, def: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}`);
      return def;
    }
    return n;
  }

  list(name: string): string[] {
    return (this.optional(name) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }

  /** `id:secret,id2:secret2` (or a bare secret, id `default`). */
  secrets(name: string): SharedSecret[] {
    return this.list(name).map((item, i) => {
      const at = item.indexOf(':');
      const id = at > 0 ? item.slice(0, at) : i === 0 ? 'default' : `secret-${i}`;
      const secret = at > 0 ? item.slice(at + 1) : item;
      if (secret.length < 16) this.problems.push(`${name}: secret "${id}" must be at least 16 characters`);
      return { id, secret: new Sensitive(secret) };
    });
  }

  json<T>(name: string, check: (v: unknown) => v is T, hint: string): T | undefined {
    const raw = this.optional(name);
    if (raw === undefined) return undefined;
    try {
      const v: unknown = JSON.parse(raw);
      if (check(v)) return v;
    } catch {
      // reported below
    }
    this.problems.push(`${name} must be JSON: ${hint}`);
    return undefined;
  }

  /** @throws {AppError} CONFIG_INVALID listing every problem */
  done(fn: string): void {
    if (this.problems.length === 0) return;
    throw new AppError('CONFIG_INVALID', `${fn}: configuration is incomplete: ${this.problems.join('; ')}`, {
      details: { problems: [...this.problems] },
    });
  }
}

const isStringMap = (v: unknown): v is Record<string, string> =>
  !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

/** How the function authenticates to Key Protect (and Event Notifications). */
export type CloudAuth =
  | { kind: 'container'; profileName: string; iamUrl: string }
  | { kind: 'iam'; apiKey: Sensitive<string>; iamUrl: string };

/** Settings every function shares. */
export interface CommonConfig {
  iamUrl: string;
  auth: CloudAuth;
  kpEndpoints: Record<string, string>;
  notify?: {
    kind: 'webhook' | 'event-notifications';
    url: string;
    sourceId?: string;
    signingSecret?: Sensitive<string>;
  };
  ownIamIds: string[];
  rotationMinIntervalMs?: number;
  /** `LOCKSTEP_VERIFY_INTERVAL_MS`: periodic verification of every group (0 = off; default 6 h). */
  verifyIntervalMs?: number;
  checkpointSigning?: { privateKey: string; keyId?: string };
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/**
 * Reads the shared settings: `IAM_URL`, `LOCKSTEP_TRUSTED_PROFILE` or `LOCKSTEP_API_KEY`, `LOCKSTEP_KP_ENDPOINTS`
 * (+ `LOCKSTEP_KP_ENDPOINT_TYPE`, `LOCKSTEP_KP_ENDPOINT_TYPES`, `LOCKSTEP_KP_PRIVATE_ENDPOINTS`),
 * `LOCKSTEP_NOTIFY_URL` (+ `LOCKSTEP_NOTIFY_KIND`, `LOCKSTEP_EN_SOURCE_ID`, `LOCKSTEP_NOTIFY_SECRET`),
 * `LOCKSTEP_OWN_IAM_IDS`, `LOCKSTEP_ROTATION_MIN_INTERVAL_MS`, `LOCKSTEP_VERIFY_INTERVAL_MS`, `LOCKSTEP_CHECKPOINT_KEY` (+ `_ID`), `LOCKSTEP_LOG_LEVEL`.
 * The store reads its own `CLOUDANT_*` variables.
 */
export function readCommonConfig(r: EnvReader): CommonConfig {
  const iamUrl = r.optional('IAM_URL') ?? r.optional('LOCKSTEP_IAM_URL') ?? 'https://iam.cloud.ibm.com';
  const profile = r.optional('LOCKSTEP_TRUSTED_PROFILE');
  const apiKey = r.optional('LOCKSTEP_API_KEY');
  let auth: CloudAuth;
  if (apiKey) auth = { kind: 'iam', apiKey: new Sensitive(apiKey), iamUrl };
  else if (profile) auth = { kind: 'container', profileName: profile, iamUrl };
  else {
    r.problems.push(
      'LOCKSTEP_TRUSTED_PROFILE or LOCKSTEP_API_KEY is not set (how lockstep authenticates to Key Protect)',
    );
    auth = { kind: 'container', profileName: '', iamUrl };
  }
  const publicUrls = r.json('LOCKSTEP_KP_ENDPOINTS', isStringMap, '{"<region>": "<url>"}');
  // Private endpoints: LOCKSTEP_KP_ENDPOINT_TYPE (all regions) and/or LOCKSTEP_KP_ENDPOINT_TYPES (per region).
  const endpointType = r.optional('LOCKSTEP_KP_ENDPOINT_TYPE') ?? 'public';
  if (!isEndpointType(endpointType)) r.problems.push('LOCKSTEP_KP_ENDPOINT_TYPE must be public or private');
  const typeByRegion = r.json(
    'LOCKSTEP_KP_ENDPOINT_TYPES',
    (v): v is Record<string, 'public' | 'private'> => isStringMap(v) && Object.values(v).every(isEndpointType),
    '{"<region>": "public" | "private"}',
  );
  const privateUrls = r.json('LOCKSTEP_KP_PRIVATE_ENDPOINTS', isStringMap, '{"<region>": "<private url>"}');
  const kpEndpoints = selectKpEndpoints({
    regions: publicUrls ? Object.keys(publicUrls) : KP_REGIONS,
    ...(publicUrls ? { publicUrls } : {}),
    ...(privateUrls ? { privateUrls } : {}),
    type: isEndpointType(endpointType) ? endpointType : 'public',
    ...(typeByRegion ? { typeByRegion } : {}),
  });
  const notifyUrl = r.optional('LOCKSTEP_NOTIFY_URL');
  const notifyKind = r.optional('LOCKSTEP_NOTIFY_KIND') ?? 'webhook';
  if (notifyKind !== 'webhook' && notifyKind !== 'event-notifications') {
    r.problems.push('LOCKSTEP_NOTIFY_KIND must be webhook or event-notifications');
  }
  const sourceId = r.optional('LOCKSTEP_EN_SOURCE_ID');
  if (notifyUrl && notifyKind === 'event-notifications' && !sourceId) {
    r.problems.push('LOCKSTEP_EN_SOURCE_ID is not set (the Event Notifications API source id)');
  }
  const signing = r.optional('LOCKSTEP_NOTIFY_SECRET');
  const level = r.optional('LOCKSTEP_LOG_LEVEL') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level))
    r.problems.push('LOCKSTEP_LOG_LEVEL must be debug, info, warn or error');
  const tracing = sdkHttpTracingProblem(r.env);
  if (tracing) r.problems.push(tracing);
  const minInterval = r.optional('LOCKSTEP_ROTATION_MIN_INTERVAL_MS');
  const verifyInterval = r.optional('LOCKSTEP_VERIFY_INTERVAL_MS');
  const checkpointKey = r.optional('LOCKSTEP_CHECKPOINT_KEY');
  const checkpointKeyId = r.optional('LOCKSTEP_CHECKPOINT_KEY_ID');
  return {
    iamUrl,
    auth,
    kpEndpoints,
    ...(notifyUrl
      ? {
          notify: {
            kind: notifyKind as 'webhook' | 'event-notifications',
            url: notifyUrl,
            ...(sourceId ? { sourceId } : {}),
            ...(signing ? { signingSecret: new Sensitive(signing) } : {}),
          },
        }
      : {}),
    ownIamIds: r.list('LOCKSTEP_OWN_IAM_IDS'),
    ...(minInterval
      ? { rotationMinIntervalMs: r.int('LOCKSTEP_ROTATION_MIN_INTERVAL_MS', 3_600_000, 1_000, 86_400_000) }
      : {}),
    ...(verifyInterval !== undefined
      ? { verifyIntervalMs: r.int('LOCKSTEP_VERIFY_INTERVAL_MS', 21_600_000, 0, 30 * 86_400_000) }
      : {}),
    ...(checkpointKey
      ? {
          checkpointSigning: {
            privateKey: checkpointKey.replace(/\\n/g, '\n'),
            ...(checkpointKeyId ? { keyId: checkpointKeyId } : {}),
          },
        }
      : {}),
    logLevel: level as CommonConfig['logLevel'],
  };
}

/** How the events function authenticates its callers. */
export interface EventsAuthConfig {
  hmacSecrets: SharedSecret[];
  tokens: SharedSecret[];
  /** IAM ids allowed to call with a bearer token; empty disables bearer auth. */
  iamIds: string[];
  windowSeconds: number;
}

/**
 * `LOCKSTEP_EVENTS_HMAC_SECRETS`, `LOCKSTEP_EVENTS_TOKENS` (both `id:secret,…`), `LOCKSTEP_EVENTS_IAM_IDS`,
 * `LOCKSTEP_EVENTS_WINDOW_SECONDS`. At least one method must be configured.
 */
export function readEventsAuthConfig(r: EnvReader): EventsAuthConfig {
  const cfg = {
    hmacSecrets: r.secrets('LOCKSTEP_EVENTS_HMAC_SECRETS'),
    tokens: r.secrets('LOCKSTEP_EVENTS_TOKENS'),
    iamIds: r.list('LOCKSTEP_EVENTS_IAM_IDS'),
    windowSeconds: r.int('LOCKSTEP_EVENTS_WINDOW_SECONDS', 300, 30, 3600),
  };
  if (!cfg.hmacSecrets.length && !cfg.tokens.length && !cfg.iamIds.length) {
    r.problems.push(
      'no events authentication configured: set LOCKSTEP_EVENTS_HMAC_SECRETS, LOCKSTEP_EVENTS_TOKENS or LOCKSTEP_EVENTS_IAM_IDS',
    );
  }
  return cfg;
}

/**
 * `LOCKSTEP_CRON_SECRETS` (`id:secret,…`, each at least 16 characters): the secrets a cron subscription's data may
 * carry (`{"cronSecret": "<secret>"}`); several may be listed while one is rotated. Required by the `rotate` function:
 * without it every cron ping is refused.
 */
export function readCronSecrets(r: EnvReader): SharedSecret[] {
  const secrets = r.secrets('LOCKSTEP_CRON_SECRETS');
  if (secrets.length === 0) {
    r.problems.push(
      'LOCKSTEP_CRON_SECRETS is not set (id:secret,… — the secret the cron subscription sends in its data as cronSecret)',
    );
  }
  return secrets;
}

/**
 * `LOCKSTEP_OWN_IAM_IDS`: the IAM id(s) lockstep acts as in Key Protect. Required by the events function: an
 * Activity Tracker event is lockstep's own only when its initiator is one of these and it matches a call lockstep
 * persisted; an empty list would make every event foreign (and the evidence trail empty), so it is a config error.
 */
export function readOwnIamIds(r: EnvReader): string[] {
  const ids = r.list('LOCKSTEP_OWN_IAM_IDS');
  if (ids.length === 0) {
    r.problems.push(
      'LOCKSTEP_OWN_IAM_IDS is not set (the IAM id(s) lockstep acts as in Key Protect, e.g. iam-Profile-… of its trusted profile)',
    );
  }
  for (const id of ids) {
    if (!/^[A-Za-z0-9._:@/+=-]{1,128}$/.test(id)) {
      r.problems.push(`LOCKSTEP_OWN_IAM_IDS: "${id.slice(0, 40)}" is not an IAM id (1-128 of [A-Za-z0-9._:@/+=-])`);
    }
  }
  return ids;
}

/**
 * `LOCKSTEP_API_ROLES` (`<iam id>=operator|auditor,…`), `LOCKSTEP_CHECKPOINT_PUBLIC_KEYS` (JSON {keyId: PEM}),
 * `LOCKSTEP_PUBLIC_URL`, `LOCKSTEP_UI_SESSION_SECRET` (≥ 32 characters; the page's session key) and
 * `LOCKSTEP_DEV_UI_API_KEY_LOGIN` (`true` only in the local stack: the page's API-key login).
 */
export function readApiConfig(r: EnvReader): {
  roles: Record<string, 'operator' | 'auditor'>;
  checkpointPublicKeys: Record<string, string>;
  publicBaseUrl?: string;
  sessionSecret?: string;
  devUiApiKeyLogin: boolean;
} {
  const roles: Record<string, 'operator' | 'auditor'> = {};
  for (const item of r.list('LOCKSTEP_API_ROLES')) {
    const [id, role] = item.split('=').map((s) => s.trim());
    if (!id || (role !== 'operator' && role !== 'auditor')) {
      r.problems.push(`LOCKSTEP_API_ROLES: "${item.slice(0, 60)}" must be <iam id>=operator|auditor`);
      continue;
    }
    if (Object.hasOwn(roles, id)) {
      // a second entry would silently win: which role was meant is the administrator's call, not ours
      r.problems.push(`LOCKSTEP_API_ROLES: "${id.slice(0, 60)}" is listed more than once; give each identity one role`);
      continue;
    }
    roles[id] = role;
  }
  if (Object.keys(roles).length === 0 && !r.problems.some((p) => p.startsWith('LOCKSTEP_API_ROLES'))) {
    r.problems.push('LOCKSTEP_API_ROLES is not set (<iam id>=operator|auditor, comma-separated)');
  }
  const keys = r.json('LOCKSTEP_CHECKPOINT_PUBLIC_KEYS', isStringMap, '{"<key id>": "<Ed25519 public key PEM>"}') ?? {};
  const publicBaseUrl = r.optional('LOCKSTEP_PUBLIC_URL');
  const sessionSecret = r.optional('LOCKSTEP_UI_SESSION_SECRET');
  if (sessionSecret !== undefined && sessionSecret.length < 32) {
    r.problems.push('LOCKSTEP_UI_SESSION_SECRET must be at least 32 characters');
  }
  const devLogin = r.optional('LOCKSTEP_DEV_UI_API_KEY_LOGIN');
  if (devLogin !== undefined && devLogin !== 'true' && devLogin !== 'false') {
    r.problems.push('LOCKSTEP_DEV_UI_API_KEY_LOGIN must be true or false (true only in the local stack)');
  }
  return {
    roles,
    checkpointPublicKeys: keys,
    ...(publicBaseUrl ? { publicBaseUrl } : {}),
    ...(sessionSecret ? { sessionSecret } : {}),
    devUiApiKeyLogin: devLogin === 'true',
  };
}

/**
 * Public or private Key Protect endpoints per region. IBM Cloud serves every region on a public host
 * `<region>.kms.cloud.ibm.com` and a private one `private.<region>.kms.cloud.ibm.com` (ibm-cloud-docs/key-protect
 * `regions.md`, `private-network.md`); an instance whose `allowedNetwork` policy is `private-only` answers only the
 * private one (FAQs.md: 401 otherwise).
 */
export type KpEndpointType = 'public' | 'private';

export interface KpEndpointSettings {
  /** Regions to serve; default: the keys of `publicUrls`. */
  regions: readonly string[];
  /** Explicit public URLs per region (default `https://<region>.kms.cloud.ibm.com`). */
  publicUrls?: Readonly<Record<string, string>>;
  /** Explicit private URLs per region (default `https://private.<region>.kms.cloud.ibm.com`). */
  privateUrls?: Readonly<Record<string, string>>;
  /** The type for every region (default public). */
  type?: KpEndpointType;
  /** Per-region types that override `type`. */
  typeByRegion?: Readonly<Record<string, KpEndpointType>>;
}

/** The endpoint lockstep uses in each region: the private URL where the (per-region or global) type is private. */
export function selectKpEndpoints(s: KpEndpointSettings): Record<string, string> {
  const out: Record<string, string> = {};
  for (const region of s.regions) {
    const type = s.typeByRegion?.[region] ?? s.type ?? 'public';
    out[region] =
      type === 'private'
        ? (s.privateUrls?.[region] ?? ibmKeyProtectUrl(region, 'private'))
        : (s.publicUrls?.[region] ?? ibmKeyProtectUrl(region));
  }
  return out;
}

export const isEndpointType = (v: unknown): v is KpEndpointType => v === 'public' || v === 'private';
