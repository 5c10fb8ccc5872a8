/**
 * The emulator's engine: every instance's state and every Key Protect rule, transport-neutral. The HTTP layer
 * (`server.ts`) authenticates, injects faults and emits events; this file decides what each call does.
 * Section numbers (§) refer to reference/key-protect-api.md.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from '../../core/index.js';
import { decodeBase64, handleOf, oaepDecrypt, openNonce, parseWdek, sameBytes, unwrapDek, wrapDek } from './crypto.js';
import { KpError, unauthorized } from './errors.js';
import type { ImportTokenKeyPair, RsaKeyPool } from './keyPool.js';
import { type ListableKey, queryKeys, type SearchQuery } from './listQuery.js';
import type { EmulatorRules } from './types.js';

// ───────────────────────────── state ─────────────────────────────

export interface KeyVersion {
  id: string;
  createdMs: number;
  material: Buffer;
  handle: string;
}

export interface KeyRecord {
  id: string;
  name: string;
  description?: string;
  aliases: string[];
  tags: string[];
  state: 1 | 2 | 3 | 5;
  extractable: boolean;
  imported: boolean;
  keyRingId: string;
  createdMs: number;
  createdBy: string;
  lastUpdateMs: number;
  lastRotateMs?: number;
  /** Last enable/disable/delete/restore, for the 30 s rules. */
  lastStateActionMs?: number;
  expirationMs?: number;
  /** `kms.secrets.expire` was emitted for the current expiration date. */
  expiredEventEmitted?: boolean;
  /** Oldest first. */
  versions: KeyVersion[];
  deletedMs?: number;
  deletedBy?: string;
  stateBeforeDelete?: 1 | 2 | 3;
  rotation?: {
    enabled: boolean;
    intervalMonth?: number;
    createdMs: number;
    createdBy: string;
    updatedMs: number;
    updatedBy: string;
  };
  dualAuth?: {
    enabled: boolean;
    setForDeletion: boolean;
    setBy?: string;
    authExpirationMs?: number;
    createdMs: number;
    createdBy: string;
  };
}

export interface ImportToken {
  seq: number;
  createdMs: number;
  expiresMs: number;
  maxRetrievals: number;
  remaining: number;
  nonce: Buffer;
  pair: ImportTokenKeyPair;
}

export interface InstancePolicy {
  type: string;
  enabled: boolean;
  attributes?: Record<string, unknown>;
  createdMs: number;
  createdBy: string;
  updatedMs: number;
  updatedBy: string;
}

export interface InstanceState {
  id: string;
  region: string;
  keys: Map<string, KeyRecord>;
  purged: Set<string>;
  aliases: Map<string, string>;
  rings: Map<string, { createdMs: number; createdBy: string }>;
  token?: ImportToken;
  /** Recently overwritten tokens, to answer INCORRECT_NONCE_ERR for a stale token (§8.1). */
  oldTokens: ImportToken[];
  tokenSeq: number;
  policies: Map<string, InstancePolicy>;
}

export function newInstance(region: string, id: string, nowMs: number): InstanceState {
  return {
    id,
    region,
    keys: new Map(),
    purged: new Set(),
    aliases: new Map(),
    rings: new Map([['default', { createdMs: nowMs, createdBy: 'system' }]]),
    oldTokens: [],
    tokenSeq: 0,
    policies: new Map(),
  };
}

// ───────────────────────────── calls ─────────────────────────────

export interface Caller {
  iamId: string;
  name: string;
}

export interface KpCall {
  method: string;
  /** Path below `/api/v2`, starting with `/`. */
  path: string;
  query: URLSearchParams;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: Buffer | undefined;
  caller: Caller;
  instance: InstanceState;
  /**
   * IAM check of the caller for `action` in key ring `ring` (undefined: not addressed to one ring); false → 401.
   * Absent: every caller may do everything.
   */
  authorize?: (action: string, ring: string | undefined) => boolean;
}

/** What happened, for the HTTP reply and the Activity Tracker event. */
export interface KpOutcome {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Event details the handler fills in as it learns them. */
export interface EventInfo {
  action: string;
  /** Key id when the call addressed a key. */
  keyId?: string;
  keyName?: string;
  alias?: string;
  requestData: Record<string, unknown>;
  responseData: Record<string, unknown>;
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const THIRTY_S_MS = 30_000;
const RESERVED_ALIASES = new Set(
  'allowed_ip key keys metadata policy policies registration registrations ring rings rotate wrap unwrap rewrap version versions'.split(
    ' ',
  ),
);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ALIAS_RE = /^[A-Za-z0-9_-]{2,90}$/;
const RING_RE = /^[A-Za-z0-9-]{2,100}$/;
const KEY_COLLECTION = 'application/vnd.ibm.kms.key+json';
const POLICY_COLLECTION = 'application/vnd.ibm.kms.policy+json';

/** RFC 3339 at second precision, as Key Protect shows dates. */
export const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const envelope = (collectionType: string, resources: unknown[], extra: Record<string, unknown> = {}) => ({
  metadata: { collectionType, collectionTotal: resources.length, ...extra },
  resources,
});

/** Deep copy with lower-cased object keys: Key Protect matches JSON keys case-insensitively (§1.3). */
function lowerKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(lowerKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).map(([k, x]) => [k.toLowerCase(), lowerKeys(x)]),
    );
  }
  return v;
}

type Json = Record<string, unknown>;

/** decodeURIComponent that never throws (a malformed escape is kept as it is and then matches nothing). */
function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function parseBody(body: Buffer | undefined, required: boolean): Json | undefined {
  if (!body || body.length === 0 || body.toString('utf8').trim() === '') {
    if (required)
      throw new KpError(400, 'NO_BODY_ERR', 'Body of the request is missing', { what: 'Request body is missing' });
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new KpError(400, 'BAD_BODY_ERR', `Invalid body data was passed: ${(err as Error).message}`, {
      what: 'Request body is invalid',
    });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new KpError(400, 'BAD_BODY_ERR', 'Invalid body data was passed: expected a JSON object', {
      what: 'Request body is invalid',
    });
  }
  return lowerKeys(parsed) as Json;
}

function rejectUnknown(obj: Json, allowed: readonly string[]) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new KpError(400, 'BAD_BODY_ERR', `Invalid body data was passed: json: unknown field "${k}"`, {
        what: 'Request body is invalid',
      });
    }
  }
}

/** Reads an enveloped request body (§1.5): checks collectionTotal and returns the resources. */
function readEnvelope(body: Json, maxResources: number): Json[] {
  rejectUnknown(body, ['metadata', 'resources']);
  const resources = body.resources;
  if (!Array.isArray(resources) || resources.some((r) => !r || typeof r !== 'object' || Array.isArray(r))) {
    throw new KpError(400, 'BAD_BODY_ERR', 'Invalid body data was passed: resources must be an array of objects', {
      what: 'Request body is invalid',
    });
  }
  const meta = body.metadata as Json | undefined;
  if (
    meta &&
    typeof meta === 'object' &&
    meta.collectiontotal !== undefined &&
    meta.collectiontotal !== resources.length
  ) {
    throw new KpError(
      400,
      'COLLECTION_TOTAL_MISMATCH_ERR',
      'The value specified in the metadata collectionTotal field and the resources array length do not match',
      { what: 'Request body is invalid', target: { type: 'field', name: 'collectionTotal' } },
    );
  }
  if (resources.length === 0 || resources.length > maxResources) {
    throw new KpError(
      400,
      'NUM_COLLECTION_RESOURCE_ERR',
      `The collection must contain between 1 and ${maxResources} resources`,
      {
        what: 'Request body is invalid',
      },
    );
  }
  return resources as Json[];
}

function invalidField(name: string, message: string, status = 400): KpError {
  return new KpError(status, 'INVALID_FIELD_ERR', message, {
    target: { type: 'field', name },
    what: 'Request body is invalid',
  });
}

function invalidQuery(name: string, message: string): KpError {
  return new KpError(400, 'INVALID_QUERY_PARAM_ERR', message, { target: { type: 'query_param', name } });
}

function intParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw invalidQuery(name, `The query_param '${name}' must be: an integer between ${min} and ${max}`);
  }
  return n;
}

function boolParam(q: URLSearchParams, name: string): boolean | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw invalidQuery(name, `The query_param '${name}' must be: true or false`);
}

// ───────────────────────────── engine ─────────────────────────────

export interface EngineDeps {
  accountId: string;
  nowMs: () => number;
  rules: () => EmulatorRules;
  pool: RsaKeyPool;
  logger: Logger;
}

/** One route: method, path pattern, action name (§7.1), handler. */
interface Route {
  method: string;
  re: RegExp;
  action: string | ((c: KpCall) => string);
  run: (c: KpCall, m: RegExpExecArray, ev: EventInfo) => KpOutcome | Promise<KpOutcome>;
}

export class KpEngine {
  readonly #d: EngineDeps;
  readonly #routes: Route[];

  constructor(deps: EngineDeps) {
    this.#d = deps;
    const r = (method: string, re: RegExp, action: Route['action'], run: Route['run']): Route => ({
      method,
      re,
      action,
      run,
    });
    this.#routes = [
      r('HEAD', /^\/keys$/, 'kms.secrets.head', (c) => this.#headKeys(c)),
      r('GET', /^\/keys$/, 'kms.secrets.list', (c) => this.#listKeys(c)),
      r('POST', /^\/keys$/, 'kms.secrets.create', (c, _m, ev) => this.#createKey(c, ev, false)),
      r('POST', /^\/keys_with_policy_overrides$/, 'kms.secrets-with-policy-overrides.create', (c, _m, ev) =>
        this.#createKey(c, ev, true),
      ),
      r('GET', /^\/keys\/registrations$/, 'kms.registrations.list', () => this.#emptyRegistrations()),
      r('GET', /^\/keys\/([^/]+)$/, 'kms.secrets.read', (c, m, ev) => this.#getKey(c, m[1]!, ev, true)),
      r('GET', /^\/keys\/([^/]+)\/metadata$/, 'kms.secrets-metadata.read', (c, m, ev) =>
        this.#getKey(c, m[1]!, ev, false),
      ),
      r('PATCH', /^\/keys\/([^/]+)$/, 'kms.secrets.patch', (c, m, ev) => this.#patchKey(c, m[1]!, ev)),
      r('DELETE', /^\/keys\/([^/]+)$/, 'kms.secrets.delete', (c, m, ev) => this.#deleteKey(c, m[1]!, ev)),
      r('DELETE', /^\/keys\/([^/]+)\/purge$/, 'kms.secrets.purge', (c, m, ev) => this.#purgeKey(c, m[1]!, ev)),
      r('POST', /^\/keys\/([^/]+)\/restore$/, 'kms.secrets.restore', (c, m, ev) => this.#restoreKey(c, m[1]!, ev)),
      r('GET', /^\/keys\/([^/]+)\/versions$/, 'kms.secrets-key-versions.list', (c, m, ev) =>
        this.#versions(c, m[1]!, ev),
      ),
      r('GET', /^\/keys\/([^/]+)\/registrations$/, 'kms.registrations.list', () => this.#emptyRegistrations()),
      r(
        'POST',
        /^\/keys\/([^/]+)\/actions\/(wrap|unwrap|rewrap|rotate|disable|enable|setKeyForDeletion|unsetKeyForDeletion|sync|restore)$/,
        (c) => `kms.secrets.${(/\/actions\/([A-Za-z]+)$/.exec(c.path)?.[1] ?? 'default').toLowerCase()}`,
        (c, m, ev) => this.#action(c, m[1]!, m[2]!, ev),
      ),
      // Deprecated generic form: POST /keys/{id}?action=<name> (§1.4)
      r(
        'POST',
        /^\/keys\/([^/]+)$/,
        (c) => `kms.secrets.${(c.query.get('action') ?? 'default').toLowerCase()}`,
        (c, m, ev) => {
          const action = c.query.get('action');
          if (!action) throw invalidQuery('action', "The query_param 'action' must be: provided");
          if (action === 'restore') return this.#restoreKey(c, m[1]!, ev);
          return this.#action(c, m[1]!, action, ev);
        },
      ),
      r('POST', /^\/keys\/([^/]+)\/aliases\/([^/]+)$/, 'kms.secrets-alias.create', (c, m, ev) =>
        this.#createAlias(c, m[1]!, safeDecode(m[2]!), ev),
      ),
      r('DELETE', /^\/keys\/([^/]+)\/aliases\/([^/]+)$/, 'kms.secrets-alias.delete', (c, m, ev) =>
        this.#deleteAlias(c, m[1]!, safeDecode(m[2]!), ev),
      ),
      r('PUT', /^\/keys\/([^/]+)\/policies$/, 'kms.policies.write', (c, m, ev) => this.#putKeyPolicy(c, m[1]!, ev)),
      r('GET', /^\/keys\/([^/]+)\/policies$/, 'kms.policies.read', (c, m, ev) => this.#getKeyPolicy(c, m[1]!, ev)),
      r('POST', /^\/import_token$/, 'kms.import-token.create', (c, _m, ev) => this.#postToken(c, ev)),
      r('GET', /^\/import_token$/, 'kms.import-token.read', (c, _m, ev) => this.#getToken(c, ev)),
      r('PUT', /^\/instance\/policies$/, 'kms.instance-policies.write', (c) => this.#putInstancePolicy(c)),
      r('GET', /^\/instance\/policies$/, 'kms.instance-policies.read', (c) => this.#getInstancePolicy(c)),
      r('GET', /^\/instance\/allowed_ip_port$/, 'kms.instance-policies.read', () => ({
        status: 200,
        body: envelope('application/vnd.ibm.kms.allowed_ip_metadata+json', [{ private_endpoint_port: 8888 }]),
      })),
      r('GET', /^\/key_rings$/, 'kms.key-rings.list', (c) => this.#listRings(c)),
      r('POST', /^\/key_rings\/([^/]+)$/, 'kms.key-rings.create', (c, m) => this.#createRing(c, safeDecode(m[1]!))),
      r('DELETE', /^\/key_rings\/([^/]+)$/, 'kms.key-rings.delete', (c, m) => this.#deleteRing(c, safeDecode(m[1]!))),
    ];
  }

  /** The action name a request maps to (for events), without running it. */
  actionOf(method: string, path: string, query: URLSearchParams): string {
    for (const route of this.#routes) {
      if (route.method === method && route.re.test(path)) {
        return typeof route.action === 'string' ? route.action : route.action({ method, path, query } as KpCall);
      }
    }
    return 'kms.secrets.default';
  }

  /** Runs one call. Throws `KpError` for Key Protect errors. */
  async handle(c: KpCall, ev: EventInfo): Promise<KpOutcome> {
    for (const route of this.#routes) {
      if (route.method !== c.method) continue;
      const m = route.re.exec(c.path);
      if (!m) continue;
      ev.action = typeof route.action === 'string' ? route.action : route.action(c);
      this.#authorize(c, ev);
      return route.run(c, m, ev);
    }
    const pathKnown = this.#routes.some((route) => route.re.test(c.path));
    if (pathKnown) {
      throw new KpError(405, 'METHOD_NOT_ALLOWED_ERR', `Method ${c.method} is not allowed on ${c.path}`, {
        what: 'Request is invalid',
      });
    }
    throw new KpError(404, 'NOT_FOUND_ERR', `No route for ${c.method} /api/v2${c.path}`, {
      what: 'Request is invalid',
    });
  }

  // ─────────── access (access.ts) ───────────

  /**
   * IAM service access, before the call does anything: the key ring a call is judged in is the addressed key's
   * ring (Key Protect looks the key up when `X-Kms-Key-Ring` is absent — key-rings.md, SDK `xKmsKeyRing` docs), the
   * header's ring for creates, import tokens and lists, `default` for a create without the header. A key that does
   * not exist is judged at instance level, so a ring-scoped identity learns nothing about other rings. A header
   * naming another ring than the key's is refused with 404 `KEY_NOT_FOUND_ERR` (sources silent: the stricter
   * reading — the key is not in the ring the caller named).
   * @throws {KpError} 401 without reasons (at-events.md: 401 for unauthorized and forbidden alike), 404
   */
  #authorize(c: KpCall, ev: EventInfo): void {
    const action = ev.action;
    const header = c.headers['x-kms-key-ring'] || undefined;
    const keyPath = /^\/keys\/([^/]+)(\/|$)/.exec(c.path);
    let ring: string | undefined = header;
    let key: KeyRecord | undefined;
    if (keyPath && keyPath[1] !== 'registrations') {
      const id = safeDecode(keyPath[1]!);
      key = c.instance.keys.get(id.toLowerCase()) ?? c.instance.keys.get(c.instance.aliases.get(id) ?? '');
      if (key) {
        ring = header ?? key.keyRingId;
        // the refusal is audited against the key, as any other failed call on it
        ev.keyId = key.id;
        ev.keyName = key.name;
      }
    } else if (/^\/(keys|keys_with_policy_overrides|import_token)$/.test(c.path) && c.method === 'POST') {
      ring = header ?? 'default';
    } else if (c.path === '/import_token') {
      ring = header ?? 'default';
    }
    if (c.authorize && !c.authorize(action, ring)) throw unauthorized();
    if (key && header && key.keyRingId !== header) {
      throw new KpError(404, 'KEY_NOT_FOUND_ERR', `Key does not exist in key ring '${header}'`, {
        what: 'Key could not be found',
      });
    }
  }

  // ─────────── helpers ───────────

  get #now() {
    return this.#d.nowMs();
  }

  crnOf(inst: InstanceState, keyId?: string): string {
    const base = `crn:v1:bluemix:public:kms:${inst.region}:a/${this.#d.accountId}:${inst.id}`;
    return keyId ? `${base}:key:${keyId}` : `${base}::`;
  }

  /** The state a key is in now: deleted keys are 5, expired keys 3 (§2.1). */
  stateOf(k: KeyRecord): 1 | 2 | 3 | 5 {
    if (k.state === 5) return 5;
    if (k.expirationMs !== undefined && this.#now >= k.expirationMs) return 3;
    return k.state;
  }

  #findKey(c: KpCall, idOrAlias: string, ev?: EventInfo): KeyRecord {
    const id = safeDecode(idOrAlias);
    const inst = c.instance;
    const key = inst.keys.get(id.toLowerCase()) ?? inst.keys.get(inst.aliases.get(id) ?? '');
    if (!key) {
      throw new KpError(404, 'KEY_NOT_FOUND_ERR', 'Key does not exist', { what: 'Key could not be found' });
    }
    if (ev) {
      ev.keyId = key.id;
      ev.keyName = key.name;
      if (key.id !== id.toLowerCase()) ev.alias = id;
    }
    return key;
  }

  #latest(k: KeyRecord): KeyVersion {
    return k.versions[k.versions.length - 1]!;
  }

  keyJson(inst: InstanceState, k: KeyRecord, opts: { withPayload?: boolean } = {}): Json {
    const now = this.#now;
    const state = this.stateOf(k);
    const latest = this.#latest(k);
    const bits = k.extractable ? 256 : latest.material.length * 8;
    const out: Json = {
      type: KEY_COLLECTION,
      id: k.id,
      name: k.name,
      aliases: [...k.aliases],
      ...(k.description !== undefined ? { description: k.description } : {}),
      ...(k.tags.length ? { tags: [...k.tags] } : {}),
      state,
      ...(k.expirationMs !== undefined ? { expirationDate: rfc3339(k.expirationMs) } : {}),
      extractable: k.extractable,
      crn: this.crnOf(inst, k.id),
      imported: k.imported,
      keyRingID: k.keyRingId,
      creationDate: rfc3339(k.createdMs),
      createdBy: k.createdBy,
      algorithmType: 'AES',
      algorithmMetadata: { bitLength: String(bits), mode: 'Deprecated' },
      algorithmBitSize: bits,
      algorithmMode: 'Deprecated',
      lastUpdateDate: rfc3339(k.lastUpdateMs),
      ...(k.lastRotateMs !== undefined ? { lastRotateDate: rfc3339(k.lastRotateMs) } : {}),
      keyVersion: { id: latest.id, creationDate: rfc3339(latest.createdMs) },
      dualAuthDelete: k.dualAuth?.enabled
        ? {
            enabled: true,
            keySetForDeletion: k.dualAuth.setForDeletion && (k.dualAuth.authExpirationMs ?? 0) > now,
            ...(k.dualAuth.setForDeletion && k.dualAuth.authExpirationMs
              ? { authExpiration: rfc3339(k.dualAuth.authExpirationMs) }
              : {}),
          }
        : { enabled: false },
      ...(k.rotation ? { rotation: { enabled: k.rotation.enabled, interval_month: k.rotation.intervalMonth } } : {}),
      deleted: state === 5,
    };
    if (state === 5 && k.deletedMs !== undefined) {
      const restoreUntil = k.deletedMs + 30 * DAY_MS;
      Object.assign(out, {
        deletionDate: rfc3339(k.deletedMs),
        deletedBy: k.deletedBy,
        restoreExpirationDate: rfc3339(restoreUntil),
        restoreAllowed: now < restoreUntil && !(k.expirationMs !== undefined && now >= k.expirationMs),
        purgeAllowed: now >= k.deletedMs + 4 * HOUR_MS,
        purgeAllowedFrom: rfc3339(k.deletedMs + 4 * HOUR_MS),
        purgeScheduledOn: rfc3339(k.deletedMs + 90 * DAY_MS),
      });
    }
    if (opts.withPayload && k.extractable && state !== 5) out.payload = latest.material.toString('base64');
    return out;
  }

  #policy(inst: InstanceState, type: string): InstancePolicy | undefined {
    return inst.policies.get(type);
  }

  #importAccess(inst: InstanceState): Record<string, unknown> {
    const p = this.#policy(inst, 'keyCreateImportAccess');
    const defaults = {
      create_root_key: true,
      create_standard_key: true,
      import_root_key: true,
      import_standard_key: true,
      enforce_token: false,
    };
    if (!p?.enabled) return defaults;
    return { ...defaults, ...(p.attributes ?? {}) };
  }

  /**
   * Resolves key material from `payload` (+ `encryptednonce`/`iv`/`encryptionalgorithm` for a secure import,
   * §3.2). `root` selects the size rule. Throws the documented errors in the documented order.
   */
  #material(c: KpCall, f: Json, root: boolean): { material: Buffer; secure: boolean } {
    const hasNonce = f.encryptednonce !== undefined && f.encryptednonce !== '';
    const hasIv = f.iv !== undefined && f.iv !== '';
    const enforceToken = this.#importAccess(c.instance).enforce_token === true;
    if (hasNonce || hasIv) {
      if (!root) throw invalidField('encryptedNonce', 'Standard keys cannot be imported with an import token');
      if (!hasNonce || !hasIv) {
        throw invalidField(
          hasNonce ? 'iv' : 'encryptedNonce',
          'encryptedNonce and iv must both be provided for a secure import',
        );
      }
      const alg = f.encryptionalgorithm ?? 'RSAES_OAEP_SHA_256';
      if (alg !== 'RSAES_OAEP_SHA_256') {
        throw invalidField(
          'encryptionAlgorithm',
          alg === 'RSAES_OAEP_SHA_1'
            ? 'RSAES_OAEP_SHA_1 is only supported by Hyper Protect Crypto Services'
            : "The field 'encryptionAlgorithm' must be: RSAES_OAEP_SHA_256",
        );
      }
      const token = c.instance.token;
      if (!token) {
        throw new KpError(
          404,
          'IMPORT_TOKEN_NOT_FOUND_ERR',
          'No import token exists for this instance: create one first',
          {
            what: 'Import token could not be found',
          },
        );
      }
      const sealed = decodeBase64(f.payload);
      const encNonce = decodeBase64(f.encryptednonce);
      const iv = decodeBase64(f.iv);
      if (!sealed || sealed.length === 0) throw invalidField('payload', "The field 'payload' must be: base64 encoded");
      if (!encNonce) throw invalidField('encryptedNonce', "The field 'encryptedNonce' must be: base64 encoded");
      if (!iv) throw invalidField('iv', "The field 'iv' must be: base64 encoded");
      let material = oaepDecrypt(token.pair.privateKey, sealed);
      let usedToken = token;
      if (!material) {
        // A payload sealed for an overwritten token: the nonce it carries is stale (§8.1).
        for (const old of c.instance.oldTokens) {
          material = oaepDecrypt(old.pair.privateKey, sealed);
          if (material) {
            usedToken = old;
            break;
          }
        }
        if (!material) {
          throw invalidField('payload', 'The payload could not be decrypted with the import token public key');
        }
      }
      if (![16, 24, 32].includes(material.length)) {
        throw invalidField('payload', 'The key material must be 128, 192 or 256 bits');
      }
      const nonce = openNonce(material, iv, encNonce);
      if (!nonce) {
        throw new KpError(
          400,
          'INCORRECT_NONCE_IV_ERR',
          'The encrypted nonce could not be decrypted with the key material and IV provided',
          { what: 'Secure import failed', target: { type: 'field', name: 'encryptedNonce' } },
        );
      }
      if (usedToken !== token || !sameBytes(nonce, token.nonce)) {
        throw new KpError(
          400,
          'INCORRECT_NONCE_ERR',
          'The nonce does not match the nonce of the current import token',
          {
            what: 'Secure import failed',
            target: { type: 'field', name: 'encryptedNonce' },
          },
        );
      }
      if (this.#now >= token.expiresMs) {
        throw new KpError(409, 'IMPORT_TOKEN_EXPIRED_ERR', 'The import token has expired: create a new import token', {
          what: 'Secure import failed',
        });
      }
      return { material, secure: true };
    }
    if (enforceToken && root) {
      throw new KpError(
        409,
        'KEY_CREATE_IMPORT_ACCESS_ERR',
        'The instance policy keyCreateImportAccess requires an import token (enforce_token) for imported keys',
        { what: 'Action could not be performed on key' },
      );
    }
    const material = decodeBase64(f.payload);
    if (!material || material.length === 0)
      throw invalidField('payload', "The field 'payload' must be: base64 encoded key material");
    if (root && ![16, 24, 32].includes(material.length)) {
      throw invalidField('payload', 'The key material must be 128, 192 or 256 bits (16, 24 or 32 bytes)');
    }
    if (!root && material.length > 7500)
      throw invalidField('payload', 'Standard key material must be at most 7,500 bytes');
    return { material, secure: false };
  }

  #newVersion(material: Buffer): KeyVersion {
    return { id: randomUUID(), createdMs: this.#now, material, handle: handleOf(material) };
  }

  #checkAlias(inst: InstanceState, alias: unknown, keyId?: string): string {
    if (typeof alias !== 'string' || !ALIAS_RE.test(alias) || UUID_RE.test(alias) || RESERVED_ALIASES.has(alias)) {
      throw new KpError(
        400,
        'INVALID_FIELD_ERR',
        "The alias must be 2-90 characters of A-Z, a-z, 0-9, '_' or '-', not a UUID and not a reserved word",
        { target: { type: 'field', name: 'aliases' }, what: 'Alias is invalid' },
      );
    }
    const owner = inst.aliases.get(alias);
    if (owner !== undefined && owner !== keyId) {
      throw new KpError(
        409,
        'KEY_ALIAS_NOT_UNIQUE_ERR',
        `The alias '${alias}' is already used by another key in this instance`,
        {
          what: 'Alias could not be created',
        },
      );
    }
    return alias;
  }

  // ─────────── keys ───────────

  #createKey(c: KpCall, ev: EventInfo, withPolicy: boolean): KpOutcome {
    const inst = c.instance;
    const body = parseBody(c.body, true)!;
    const [res] = readEnvelope(body, 1) as [Json];
    const allowed = [
      'type',
      'name',
      'aliases',
      'description',
      'tags',
      'expirationdate',
      'extractable',
      'payload',
      'encryptionalgorithm',
      'encryptednonce',
      'iv',
      ...(withPolicy ? ['rotation', 'dualauthdelete'] : []),
    ];
    rejectUnknown(res, allowed);
    if (typeof res.name !== 'string' || res.name.trim().length === 0 || res.name.length > 90) {
      throw invalidField('name', "The field 'name' must be: a string of 1 to 90 characters");
    }
    if (res.extractable !== undefined && typeof res.extractable !== 'boolean') {
      throw invalidField('extractable', "The field 'extractable' must be: a boolean");
    }
    const extractable = res.extractable === true;
    const root = !extractable;
    if (res.description !== undefined && (typeof res.description !== 'string' || res.description.length > 240)) {
      throw invalidField('description', "The field 'description' must be: at most 240 characters");
    }
    const tags = res.tags ?? [];
    if (
      !Array.isArray(tags) ||
      tags.length > 30 ||
      tags.some((t) => typeof t !== 'string' || t.length > 30 || /[<>,:&|]/.test(t))
    ) {
      throw invalidField('tags', "The field 'tags' must be: at most 30 tags of 0-30 characters without <>,:&|");
    }
    const aliasesIn = res.aliases ?? [];
    if (!Array.isArray(aliasesIn)) throw invalidField('aliases', "The field 'aliases' must be: an array of strings");
    if (aliasesIn.length > 5) {
      throw new KpError(400, 'KEY_ALIAS_QUOTA_ERR', 'A key can have at most 5 aliases', {
        what: 'Alias could not be created',
      });
    }
    const aliases = [...new Set(aliasesIn.map((a) => this.#checkAlias(inst, a)))];
    let expirationMs: number | undefined;
    if (res.expirationdate !== undefined) {
      expirationMs = typeof res.expirationdate === 'string' ? Date.parse(res.expirationdate) : Number.NaN;
      if (Number.isNaN(expirationMs) || expirationMs <= this.#now) {
        throw invalidField('expirationDate', "The field 'expirationDate' must be: an RFC 3339 date in the future");
      }
    }
    const ringId = c.headers['x-kms-key-ring'] || 'default';
    if (!inst.rings.has(ringId)) {
      throw new KpError(404, 'KEY_RING_NOT_FOUND_ERR', `Key ring '${ringId}' does not exist`, {
        what: 'Key ring could not be found',
      });
    }
    const access = this.#importAccess(inst);
    const imported = res.payload !== undefined && res.payload !== null && res.payload !== '';
    const accessAttr = `${imported ? 'import' : 'create'}_${root ? 'root' : 'standard'}_key`;
    if (access[accessAttr] === false) {
      throw new KpError(
        409,
        'KEY_CREATE_IMPORT_ACCESS_ERR',
        `The instance policy keyCreateImportAccess does not allow ${accessAttr.replace(/_/g, ' ')}`,
      );
    }
    let rotation: KeyRecord['rotation'];
    let dualAuthEnabled = this.#policy(inst, 'dualAuthDelete')?.enabled === true;
    const instRotation = this.#policy(inst, 'rotation');
    if (withPolicy && res.rotation !== undefined) {
      const rot = res.rotation as Json;
      if (!root) throw new KpError(400, 'KEY_ROOT_REQ_ERR', 'Rotation policy cannot be set on a standard key');
      if (imported)
        throw new KpError(400, 'FEATURE_RESTRICTED_ERR', 'Rotation policy cannot be set on an imported key');
      rotation = this.#rotationPolicy(rot, c.caller);
    } else if (root && !imported && instRotation?.enabled) {
      const im = Number(instRotation.attributes?.interval_month ?? 1);
      rotation = {
        enabled: true,
        intervalMonth: im,
        createdMs: this.#now,
        createdBy: c.caller.iamId,
        updatedMs: this.#now,
        updatedBy: c.caller.iamId,
      };
    }
    if (withPolicy && res.dualauthdelete !== undefined) {
      dualAuthEnabled = (res.dualauthdelete as Json).enabled === true;
    }
    let material: Buffer;
    if (imported) {
      material = this.#material(c, res, root).material;
    } else {
      if (res.encryptednonce !== undefined || res.iv !== undefined) {
        throw invalidField('payload', 'encryptedNonce and iv require a payload');
      }
      material = randomBytes(32);
    }
    const now = this.#now;
    const key: KeyRecord = {
      id: randomUUID(),
      name: res.name,
      ...(typeof res.description === 'string' ? { description: res.description } : {}),
      aliases,
      tags: tags as string[],
      state: 1,
      extractable,
      imported,
      keyRingId: ringId,
      createdMs: now,
      createdBy: c.caller.iamId,
      lastUpdateMs: now,
      ...(expirationMs !== undefined ? { expirationMs } : {}),
      versions: [this.#newVersion(material)],
      ...(rotation ? { rotation } : {}),
      ...(dualAuthEnabled
        ? { dualAuth: { enabled: true, setForDeletion: false, createdMs: now, createdBy: c.caller.iamId } }
        : {}),
    };
    inst.keys.set(key.id, key);
    for (const a of aliases) inst.aliases.set(a, key.id);
    ev.keyId = key.id;
    ev.keyName = key.name;
    ev.requestData.keyType = root ? 'root_key' : 'standard_key';
    ev.responseData = {
      ...ev.responseData,
      keyId: key.id,
      keyVersionId: key.versions[0]!.id,
      keyVersionCreationDate: rfc3339(now),
      keyState: 1,
      ...(expirationMs !== undefined ? { expirationDate: rfc3339(expirationMs) } : {}),
      keyRingId: ringId,
    };
    this.#d.logger.info('kp-emulator: key created', {
      region: inst.region,
      instanceId: inst.id,
      keyId: key.id,
      imported,
    });
    const minimal = /return=minimal/i.test(c.headers.prefer ?? '');
    return {
      status: 201,
      body: envelope(KEY_COLLECTION, [minimal ? { id: key.id } : this.keyJson(inst, key, { withPayload: false })]),
    };
  }

  #getKey(c: KpCall, id: string, ev: EventInfo, withPayload: boolean): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const j = this.keyJson(c.instance, k, { withPayload });
    const latest = this.#latest(k);
    ev.responseData = {
      ...ev.responseData,
      keyType: k.extractable ? 'standard_key' : 'root_key',
      keyState: this.stateOf(k),
      keyVersionId: latest.id,
      keyVersionCreationDate: rfc3339(latest.createdMs),
      ...(k.expirationMs !== undefined ? { expirationDate: rfc3339(k.expirationMs) } : {}),
      keyRingId: k.keyRingId,
    };
    return { status: 200, body: envelope(KEY_COLLECTION, [j]) };
  }

  #filteredKeys(c: KpCall): { keys: KeyRecord[]; search?: SearchQuery } {
    const ring = c.headers['x-kms-key-ring'];
    const byId = new Map<string, KeyRecord>();
    const listable: ListableKey[] = [];
    for (const k of c.instance.keys.values()) {
      if (ring && k.keyRingId !== ring) continue;
      byId.set(k.id, k);
      listable.push({
        id: k.id,
        name: k.name,
        aliases: k.aliases,
        state: this.stateOf(k),
        extractable: k.extractable,
        imported: k.imported,
        creationMs: k.createdMs,
        lastUpdateMs: k.lastUpdateMs,
        ...(k.lastRotateMs !== undefined ? { lastRotateMs: k.lastRotateMs } : {}),
        ...(k.deletedMs !== undefined ? { deletionMs: k.deletedMs } : {}),
        ...(k.expirationMs !== undefined ? { expirationMs: k.expirationMs } : {}),
      });
    }
    const r = queryKeys(listable, c.query);
    return { keys: r.keys.map((k) => byId.get(k.id)!), ...(r.search ? { search: r.search } : {}) };
  }

  #listKeys(c: KpCall): KpOutcome {
    const limit = intParam(c.query, 'limit', 200, 1, 5000);
    const offset = intParam(c.query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const { keys, search } = this.#filteredKeys(c);
    const page = keys.slice(offset, offset + limit).map((k) => this.keyJson(c.instance, k));
    return {
      status: 200,
      body: envelope(KEY_COLLECTION, page, search ? { searchQuery: search, incompleteSearch: false } : {}),
    };
  }

  #headKeys(c: KpCall): KpOutcome {
    return { status: 200, headers: { 'key-total': String(this.#filteredKeys(c).keys.length) } };
  }

  #patchKey(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const body = parseBody(c.body, true)!;
    rejectUnknown(body, ['keyringid']);
    const target = body.keyringid;
    if (typeof target !== 'string' || !c.instance.rings.has(target)) {
      throw new KpError(404, 'KEY_RING_NOT_FOUND_ERR', `Key ring '${String(target)}' does not exist`, {
        what: 'Key ring could not be found',
      });
    }
    ev.requestData.initialValue = { keyRingId: k.keyRingId };
    ev.requestData.newValue = { keyRingId: target };
    k.keyRingId = target;
    k.lastUpdateMs = this.#now;
    return { status: 200, body: envelope(KEY_COLLECTION, [this.keyJson(c.instance, k)]) };
  }

  #deleteKey(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    if (this.stateOf(k) === 5)
      throw new KpError(410, 'KEY_DELETED_ERR', 'The key has already been deleted', { what: 'Key has been deleted' });
    const now = this.#now;
    if (k.dualAuth?.enabled) {
      const authorised =
        k.dualAuth.setForDeletion && (k.dualAuth.authExpirationMs ?? 0) > now && k.dualAuth.setBy !== c.caller.iamId;
      if (!authorised) {
        throw new KpError(
          409,
          'AUTHORIZATIONS_NOT_MET',
          'The key requires dual authorization: a different user must first set it for deletion',
        );
      }
    }
    k.stateBeforeDelete = k.state === 5 ? 1 : k.state;
    k.state = 5;
    k.deletedMs = now;
    k.deletedBy = c.caller.iamId;
    k.lastUpdateMs = now;
    k.lastStateActionMs = now;
    ev.responseData.keyState = 5;
    this.#d.logger.info('kp-emulator: key deleted', {
      region: c.instance.region,
      instanceId: c.instance.id,
      keyId: k.id,
    });
    if (/return=representation/i.test(c.headers.prefer ?? '')) {
      return { status: 200, body: envelope(KEY_COLLECTION, [this.keyJson(c.instance, k)]) };
    }
    return { status: 204 };
  }

  #restoreKey(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const now = this.#now;
    if (this.stateOf(k) !== 5 || k.deletedMs === undefined) {
      throw new KpError(409, 'KEY_ACTION_INVALID_STATE_ERR', 'Only a deleted key (state 5) can be restored');
    }
    if (now - k.deletedMs < THIRTY_S_MS) {
      throw new KpError(409, 'REQ_TOO_EARLY_ERR', 'The key was deleted less than 30 seconds ago: retry later');
    }
    if (now - k.deletedMs > 30 * DAY_MS) {
      throw new KpError(
        400,
        'KEY_RESTORE_EXPIRED',
        'The key was deleted more than 30 days ago and can no longer be restored',
      );
    }
    if (k.expirationMs !== undefined && now >= k.expirationMs) {
      throw new KpError(400, 'KEY_EXPIRED_ERR', 'The key has expired and cannot be restored');
    }
    const body = parseBody(c.body, false);
    if (body) {
      // Legacy enveloped body with the material (§2.5): it must be the key's current material.
      const [res] = readEnvelope(body, 1) as [Json];
      rejectUnknown(res, ['type', 'payload', 'encryptednonce', 'iv', 'encryptionalgorithm']);
      if (res.payload !== undefined) {
        if (!k.imported)
          throw new KpError(400, 'KEY_IMPT_REQ_ERR', 'Only imported keys may be restored with key material');
        const { material } = this.#material(c, res, !k.extractable);
        if (!sameBytes(material, this.#latest(k).material)) {
          throw invalidField('payload', 'The key material does not match the material of the deleted key');
        }
      }
    }
    // Restore without material is allowed for every key since the release noted in §2.5 (enforce_token or not).
    k.state = k.stateBeforeDelete ?? 1;
    delete k.deletedMs;
    delete k.deletedBy;
    delete k.stateBeforeDelete;
    k.lastUpdateMs = now;
    k.lastStateActionMs = now;
    ev.responseData.keyVersionId = this.#latest(k).id;
    return { status: 201, body: envelope(KEY_COLLECTION, [this.keyJson(c.instance, k)]) };
  }

  #purgeKey(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const now = this.#now;
    if (this.stateOf(k) !== 5 || k.deletedMs === undefined) {
      throw new KpError(409, 'KEY_ACTION_INVALID_STATE_ERR', 'Only a deleted key (state 5) can be purged');
    }
    if (now - k.deletedMs < 4 * HOUR_MS) {
      throw new KpError(409, 'REQ_TOO_EARLY_ERR', 'Purge operation is allowed 4h0m0s after key is deleted');
    }
    const j = this.keyJson(c.instance, k);
    delete j.payload;
    c.instance.keys.delete(k.id);
    c.instance.purged.add(k.id);
    for (const a of k.aliases) c.instance.aliases.delete(a);
    for (const v of k.versions) v.material.fill(0);
    ev.responseData = {
      ...ev.responseData,
      deletionDate: rfc3339(k.deletedMs),
      purgeAllowedFrom: rfc3339(k.deletedMs + 4 * HOUR_MS),
      purgeEligibleOn: rfc3339(k.deletedMs + 90 * DAY_MS),
    };
    return { status: 200, body: envelope(KEY_COLLECTION, [j]) };
  }

  #versions(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const limit = intParam(c.query, 'limit', 200, 1, 5000);
    const offset = intParam(c.query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const totalCount = boolParam(c.query, 'totalCount') === true;
    const allKeyStates = boolParam(c.query, 'allKeyStates') === true;
    if (this.stateOf(k) !== 1 && !allKeyStates) {
      throw new KpError(
        409,
        'KEY_ACTION_INVALID_STATE_ERR',
        'Key versions of a key that is not active are listed only with allKeyStates=true',
      );
    }
    const newestFirst = [...k.versions].reverse();
    const page = newestFirst
      .slice(offset, offset + limit)
      .map((v) => ({ id: v.id, creationDate: rfc3339(v.createdMs) }));
    return {
      status: 200,
      body: envelope(
        'application/vnd.ibm.kms.key.version+json',
        page,
        totalCount ? { totalCount: newestFirst.length } : {},
      ),
    };
  }

  #emptyRegistrations(): KpOutcome {
    return { status: 200, body: envelope('application/vnd.ibm.kms.registration+json', []) };
  }

  // ─────────── actions ───────────

  #action(c: KpCall, id: string, action: string, ev: EventInfo): Promise<KpOutcome> | KpOutcome {
    switch (action) {
      case 'wrap':
        return this.#wrap(c, id, ev);
      case 'unwrap':
        return this.#unwrap(c, id, ev, false);
      case 'rewrap':
        return this.#unwrap(c, id, ev, true);
      case 'rotate':
        return this.#rotate(c, id, ev);
      case 'disable':
        return this.#disable(c, id, ev);
      case 'enable':
        return this.#enable(c, id, ev);
      case 'setKeyForDeletion':
        return this.#setForDeletion(c, id, ev, true);
      case 'unsetKeyForDeletion':
        return this.#setForDeletion(c, id, ev, false);
      case 'sync': {
        this.#findKey(c, id, ev);
        return { status: 204 };
      }
      case 'restore':
        return this.#restoreKey(c, id, ev);
      default:
        throw invalidQuery('action', `Unknown key action '${action}'`);
    }
  }

  /** Common state checks of wrap/unwrap/rewrap (§2.4, §5.1). */
  #cryptoKey(c: KpCall, id: string, ev: EventInfo, allowDeactivated: boolean): KeyRecord {
    const k = this.#findKey(c, id, ev);
    const state = this.stateOf(k);
    if (state === 5)
      throw new KpError(410, 'KEY_DELETED_ERR', 'The key has been deleted', { what: 'Key has been deleted' });
    if (k.extractable)
      throw new KpError(400, 'KEY_ROOT_REQ_ERR', 'This action requires a root key; the key is a standard key');
    if (state === 3 && !allowDeactivated) {
      throw new KpError(400, 'KEY_EXPIRED_ERR', 'The key has expired (state 3): it can no longer wrap');
    }
    if (state === 2) {
      throw new KpError(409, 'KEY_ACTION_INVALID_STATE_ERR', 'The key is suspended (state 2): enable it first');
    }
    return k;
  }

  #aad(body: Json | undefined): string[] | undefined {
    if (!body || body.aad === undefined || body.aad === null) return undefined;
    const aad = body.aad;
    if (!Array.isArray(aad) || aad.some((a) => typeof a !== 'string' || a.length > 255)) {
      throw invalidField('aad', "The field 'aad' must be: an array of strings of at most 255 characters");
    }
    return aad as string[];
  }

  #wrap(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#cryptoKey(c, id, ev, false);
    const body = parseBody(c.body, false);
    if (body) rejectUnknown(body, ['plaintext', 'aad']);
    const aad = this.#aad(body);
    let dek: Buffer;
    let generated = false;
    if (body?.plaintext === undefined || body.plaintext === null) {
      dek = randomBytes(32);
      generated = true;
    } else {
      const p = decodeBase64(body.plaintext);
      if (!p || p.length === 0 || p.length > 7500) {
        throw invalidField('plaintext', "The field 'plaintext' must be: base64 encoded data of 1 to 7,500 bytes");
      }
      dek = p;
    }
    const latest = this.#latest(k);
    const ciphertext = wrapDek(latest.material, dek, aad);
    ev.responseData = { ...ev.responseData, keyVersionId: latest.id, ...this.#expiryData(k) };
    return {
      status: 200,
      body: { ciphertext, keyVersion: { id: latest.id }, ...(generated ? { plaintext: dek.toString('base64') } : {}) },
    };
  }

  #expiryData(k: KeyRecord): Json {
    if (k.expirationMs === undefined) return {};
    return {
      expirationDate: rfc3339(k.expirationMs),
      daysToKeyExpire: Math.max(0, Math.floor((k.expirationMs - this.#now) / DAY_MS)),
    };
  }

  #unwrap(c: KpCall, id: string, ev: EventInfo, rewrap: boolean): KpOutcome {
    const k = this.#cryptoKey(c, id, ev, true);
    const body = parseBody(c.body, true)!;
    rejectUnknown(body, ['ciphertext', 'aad']);
    const aad = this.#aad(body);
    if (body.ciphertext === undefined || body.ciphertext === '') {
      throw invalidField('ciphertext', "The field 'ciphertext' must be: provided");
    }
    const raw = decodeBase64(body.ciphertext);
    if (!raw) throw invalidField('ciphertext', "The field 'ciphertext' must be: base64 encoded");
    const unprocessable = () =>
      new KpError(422, 'UNPROCESSABLE_CIPHERTEXT_ERR', 'The provided ciphertext is invalid or corrupted', {
        what: 'Unwrap could not be performed',
        target: { type: 'field', name: 'ciphertext' },
      });
    const w = parseWdek(body.ciphertext as string);
    if (!w) throw unprocessable();
    // The newest version holding the material named by the handle (equal material ⇒ equal handle, §5.4).
    let version: KeyVersion | undefined;
    let dek: Buffer | undefined;
    for (let i = k.versions.length - 1; i >= 0 && !dek; i--) {
      const v = k.versions[i]!;
      if (v.handle !== w.handle) continue;
      dek = unwrapDek(v.material, w, aad);
      if (dek) version = v;
    }
    if (!dek || !version) throw unprocessable();
    const latest = this.#latest(k);
    const out: Json = rewrap ? {} : { plaintext: dek.toString('base64') };
    out.keyVersion = { id: version.id };
    if (rewrap || version.id !== latest.id) {
      out.ciphertext = wrapDek(latest.material, dek, aad);
      out.rewrappedKeyVersion = { id: latest.id };
    }
    dek.fill(0);
    ev.responseData = {
      ...ev.responseData,
      keyVersionId: version.id,
      ...(out.rewrappedKeyVersion ? { rewrappedKeyVersionId: latest.id } : {}),
      ...this.#expiryData(k),
    };
    return { status: 200, body: out };
  }

  /** §4.5, in that order. */
  #rotate(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const rules = this.#d.rules();
    const state = this.stateOf(k);
    if (state === 5)
      throw new KpError(410, 'KEY_DELETED_ERR', 'The key has been deleted', { what: 'Key has been deleted' });
    if (k.extractable)
      throw new KpError(400, 'KEY_ROOT_REQ_ERR', 'Standard keys cannot be rotated: rotation requires a root key');
    if (state === 2) {
      throw new KpError(409, 'KEY_ACTION_INVALID_STATE_ERR', 'The key is suspended (state 2) and cannot be rotated');
    }
    if (state === 3 && !rules.rotateAllowedWhenDeactivated) {
      throw new KpError(
        400,
        'KEY_EXPIRED_ERR',
        'The key has expired (state 3) and cannot be rotated (rule rotateAllowedWhenDeactivated)',
      );
    }
    const body = parseBody(c.body, false) ?? {};
    rejectUnknown(body, [
      'payload',
      'encryptednonce',
      'iv',
      'encryptionalgorithm',
      'type',
      'name',
      'description',
      'extractable',
    ]);
    const hasPayload = body.payload !== undefined && body.payload !== null && body.payload !== '';
    if (k.imported && !hasPayload) {
      throw new KpError(
        400,
        'KEY_PAYLOAD_REQ_ERR',
        'The key was imported: a payload with new key material is required to rotate it',
        {
          target: { type: 'field', name: 'payload' },
        },
      );
    }
    if (!k.imported && hasPayload) {
      throw new KpError(
        400,
        'INVALID_QUERY_PARAM_ERR',
        "The query_param 'payload' must be: provided only if key is imported",
        {
          target: { type: 'query_param', name: 'payload' },
        },
      );
    }
    const material = k.imported ? this.#material(c, body, true).material : randomBytes(32);
    const now = this.#now;
    if (k.lastRotateMs !== undefined && now - k.lastRotateMs < rules.rotationMinIntervalMs) {
      throw new KpError(
        409,
        'KEY_ROTATION_NOT_PERMITTED',
        "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted",
        { target: { type: 'field', name: 'payload' } },
      );
    }
    const reused = k.versions.some((v) => sameBytes(v.material, material));
    if (reused) {
      this.#d.logger.warn('kp-emulator: rotate reuses the material of an existing version', {
        region: c.instance.region,
        instanceId: c.instance.id,
        keyId: k.id,
        rejected: rules.rejectMaterialReuse,
      });
      if (rules.rejectMaterialReuse) {
        throw invalidField(
          'payload',
          'The key material was already used by a version of this key (emulator rule rejectMaterialReuse)',
        );
      }
    }
    k.versions.push(this.#newVersion(material));
    k.lastRotateMs = now;
    k.lastUpdateMs = now;
    if (k.rotation) k.rotation.updatedMs = now;
    ev.responseData.keyRingId = k.keyRingId;
    this.#d.logger.info('kp-emulator: key rotated', {
      region: c.instance.region,
      instanceId: c.instance.id,
      keyId: k.id,
      versions: k.versions.length,
    });
    return { status: 204 };
  }

  #disable(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const state = this.stateOf(k);
    if (state === 5)
      throw new KpError(410, 'KEY_DELETED_ERR', 'The key has been deleted', { what: 'Key has been deleted' });
    if (state !== 1)
      throw new KpError(409, 'KEY_ACTION_INVALID_STATE_ERR', `Only an active key can be disabled (state ${state})`);
    k.state = 2;
    k.lastStateActionMs = this.#now;
    k.lastUpdateMs = this.#now;
    return { status: 204 };
  }

  #enable(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const state = this.stateOf(k);
    if (state === 5)
      throw new KpError(410, 'KEY_DELETED_ERR', 'The key has been deleted', { what: 'Key has been deleted' });
    if (state !== 2)
      throw new KpError(409, 'KEY_ACTION_INVALID_STATE_ERR', `Only a suspended key can be enabled (state ${state})`);
    if (k.lastStateActionMs !== undefined && this.#now - k.lastStateActionMs < THIRTY_S_MS) {
      throw new KpError(409, 'REQ_TOO_EARLY_ERR', 'The key was disabled less than 30 seconds ago: retry later');
    }
    k.state = 1;
    k.lastStateActionMs = this.#now;
    k.lastUpdateMs = this.#now;
    return { status: 204 };
  }

  #setForDeletion(c: KpCall, id: string, ev: EventInfo, set: boolean): KpOutcome {
    const k = this.#findKey(c, id, ev);
    if (this.stateOf(k) === 5)
      throw new KpError(410, 'KEY_DELETED_ERR', 'The key has been deleted', { what: 'Key has been deleted' });
    if (!k.dualAuth?.enabled)
      throw new KpError(409, 'NOT_DUAL_AUTH_ERR', 'The key does not have a dual authorization policy');
    const before = {
      authID: k.dualAuth.setBy ?? '',
      authExpiration: k.dualAuth.authExpirationMs ? rfc3339(k.dualAuth.authExpirationMs) : '',
    };
    if (set) {
      k.dualAuth.setForDeletion = true;
      k.dualAuth.setBy = c.caller.iamId;
      k.dualAuth.authExpirationMs = this.#now + 7 * DAY_MS;
    } else {
      k.dualAuth.setForDeletion = false;
      delete k.dualAuth.setBy;
      delete k.dualAuth.authExpirationMs;
    }
    ev.responseData.initialValue = before;
    ev.responseData.newValue = {
      authID: k.dualAuth.setBy ?? '',
      authExpiration: k.dualAuth.authExpirationMs ? rfc3339(k.dualAuth.authExpirationMs) : '',
    };
    return { status: 204 };
  }

  // ─────────── aliases ───────────

  #createAlias(c: KpCall, id: string, alias: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    this.#checkAlias(c.instance, alias, k.id);
    if (!k.aliases.includes(alias)) {
      if (k.aliases.length >= 5) {
        throw new KpError(400, 'KEY_ALIAS_QUOTA_ERR', 'A key can have at most 5 aliases', {
          what: 'Alias could not be created',
        });
      }
      k.aliases.push(alias);
      c.instance.aliases.set(alias, k.id);
      k.lastUpdateMs = this.#now;
    }
    return {
      status: this.#d.rules().aliasCreateStatus,
      body: envelope('application/vnd.ibm.kms.alias+json', [
        { keyId: k.id, alias, creationDate: rfc3339(this.#now), createdBy: c.caller.iamId },
      ]),
    };
  }

  #deleteAlias(c: KpCall, id: string, alias: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    if (!k.aliases.includes(alias)) {
      throw new KpError(404, 'NOT_FOUND_ERR', `The key has no alias '${alias}'`, { what: 'Alias could not be found' });
    }
    k.aliases = k.aliases.filter((a) => a !== alias);
    c.instance.aliases.delete(alias);
    k.lastUpdateMs = this.#now;
    return { status: 204 };
  }

  // ─────────── key policies ───────────

  #rotationPolicy(rot: Json, caller: Caller): NonNullable<KeyRecord['rotation']> {
    const enabled = rot.enabled === undefined ? true : rot.enabled === true;
    const im = rot.interval_month;
    if (im !== undefined && (!Number.isInteger(im) || (im as number) < 1 || (im as number) > 12)) {
      throw invalidField('interval_month', "The field 'interval_month' must be: an integer between 1 and 12");
    }
    if (enabled && im === undefined)
      throw invalidField('interval_month', "The field 'interval_month' must be: provided");
    const now = this.#now;
    return {
      enabled,
      ...(im !== undefined ? { intervalMonth: im as number } : {}),
      createdMs: now,
      createdBy: caller.iamId,
      updatedMs: now,
      updatedBy: caller.iamId,
    };
  }

  #keyPolicies(c: KpCall, k: KeyRecord, which: string | null): Json[] {
    const out: Json[] = [];
    const crn = this.crnOf(c.instance, k.id);
    if ((!which || which === 'rotation') && k.rotation) {
      out.push({
        id: randomUUID(),
        crn,
        type: POLICY_COLLECTION,
        rotation: {
          enabled: k.rotation.enabled,
          ...(k.rotation.intervalMonth ? { interval_month: k.rotation.intervalMonth } : {}),
        },
        creationDate: rfc3339(k.rotation.createdMs),
        createdBy: k.rotation.createdBy,
        lastUpdateDate: rfc3339(k.rotation.updatedMs),
        updatedBy: k.rotation.updatedBy,
      });
    }
    if ((!which || which === 'dualAuthDelete') && k.dualAuth) {
      out.push({
        id: randomUUID(),
        crn,
        type: POLICY_COLLECTION,
        dualAuthDelete: { enabled: k.dualAuth.enabled },
        creationDate: rfc3339(k.dualAuth.createdMs),
        createdBy: k.dualAuth.createdBy,
        lastUpdateDate: rfc3339(k.dualAuth.createdMs),
        updatedBy: k.dualAuth.createdBy,
      });
    }
    return out;
  }

  #putKeyPolicy(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    const which = c.query.get('policy');
    if (which !== null && which !== 'rotation' && which !== 'dualAuthDelete') {
      throw invalidQuery('policy', "The query_param 'policy' must be: rotation or dualAuthDelete");
    }
    const resources = readEnvelope(parseBody(c.body, true)!, which ? 1 : 2);
    for (const res of resources) {
      rejectUnknown(res, ['type', 'rotation', 'dualauthdelete']);
      if (res.rotation !== undefined) {
        if (k.extractable)
          throw new KpError(400, 'KEY_ROOT_REQ_ERR', 'Rotation policy cannot be set on a standard key');
        if (k.imported)
          throw new KpError(400, 'FEATURE_RESTRICTED_ERR', 'Rotation policy cannot be set on an imported key');
        k.rotation = this.#rotationPolicy(res.rotation as Json, c.caller);
      }
      if (res.dualauthdelete !== undefined) {
        const enabled = (res.dualauthdelete as Json).enabled === true;
        if (!enabled && k.dualAuth?.enabled) {
          throw invalidField(
            'dualAuthDelete',
            'A dual authorization policy cannot be disabled once it is set on a key',
          );
        }
        if (enabled && !k.dualAuth) {
          k.dualAuth = { enabled: true, setForDeletion: false, createdMs: this.#now, createdBy: c.caller.iamId };
        }
      }
    }
    k.lastUpdateMs = this.#now;
    return { status: 200, body: envelope(POLICY_COLLECTION, this.#keyPolicies(c, k, which)) };
  }

  #getKeyPolicy(c: KpCall, id: string, ev: EventInfo): KpOutcome {
    const k = this.#findKey(c, id, ev);
    return { status: 200, body: envelope(POLICY_COLLECTION, this.#keyPolicies(c, k, c.query.get('policy'))) };
  }

  // ─────────── instance policies ───────────

  #putInstancePolicy(c: KpCall): KpOutcome {
    const which = c.query.get('policy');
    const known = ['dualAuthDelete', 'allowedNetwork', 'allowedIP', 'keyCreateImportAccess', 'metrics', 'rotation'];
    if (which !== null && !known.includes(which)) {
      throw invalidQuery('policy', `The query_param 'policy' must be one of: ${known.join(', ')}`);
    }
    const body = parseBody(c.body, true)!;
    const resources = readEnvelope(body, which ? 1 : known.length);
    const now = this.#now;
    const staged: InstancePolicy[] = [];
    for (const res of resources) {
      rejectUnknown(res, ['policy_type', 'policy_data']);
      const type =
        typeof res.policy_type === 'string'
          ? known.find((k) => k.toLowerCase() === (res.policy_type as string).toLowerCase())
          : undefined;
      if (!type || (which && type !== which)) {
        throw invalidField('policy_type', `The field 'policy_type' must be: ${which ?? known.join(', ')}`);
      }
      const data = (res.policy_data ?? {}) as Json;
      if (typeof data.enabled !== 'boolean') throw invalidField('enabled', "The field 'enabled' must be: a boolean");
      const attributes = data.attributes as Json | undefined;
      if (type === 'rotation') {
        if (data.enabled && !attributes)
          throw invalidField('attributes', 'attributes are required when the policy is enabled');
        if (!data.enabled && attributes)
          throw invalidField('attributes', 'attributes are not allowed when the policy is disabled');
        const im = attributes?.interval_month;
        if (attributes && (!Number.isInteger(im) || (im as number) < 1 || (im as number) > 12)) {
          throw invalidField('interval_month', "The field 'interval_month' must be: an integer between 1 and 12");
        }
      }
      if (type === 'keyCreateImportAccess' && attributes) {
        const allowedAttrs = [
          'create_root_key',
          'create_standard_key',
          'import_root_key',
          'import_standard_key',
          'enforce_token',
        ];
        for (const [name, v] of Object.entries(attributes)) {
          if (!allowedAttrs.includes(name) || typeof v !== 'boolean') {
            throw invalidField(
              name,
              `The attribute '${name}' must be one of ${allowedAttrs.join(', ')} with a boolean value`,
            );
          }
        }
      }
      if (type === 'allowedNetwork') {
        // key-protect-cli-commands.md / provision.md: attributes.allowed_network public-and-private | private-only
        const net = attributes?.allowed_network;
        if (data.enabled && net !== 'public-and-private' && net !== 'private-only') {
          throw invalidField(
            'allowed_network',
            "The field 'allowed_network' must be: public-and-private or private-only",
          );
        }
      }
      const prev = c.instance.policies.get(type);
      staged.push({
        type,
        enabled: data.enabled,
        ...(attributes ? { attributes } : {}),
        createdMs: prev?.createdMs ?? now,
        createdBy: prev?.createdBy ?? c.caller.iamId,
        updatedMs: now,
        updatedBy: c.caller.iamId,
      });
    }
    for (const p of staged) c.instance.policies.set(p.type, p);
    return { status: 204 };
  }

  #getInstancePolicy(c: KpCall): KpOutcome {
    const which = c.query.get('policy');
    const out: Json[] = [];
    for (const p of c.instance.policies.values()) {
      if (which && p.type !== which) continue;
      out.push({
        creationDate: rfc3339(p.createdMs),
        createdBy: p.createdBy,
        updatedBy: p.updatedBy,
        lastUpdated: rfc3339(p.updatedMs),
        policy_type: p.type,
        policy_data: { enabled: p.enabled, ...(p.attributes ? { attributes: { ...p.attributes } } : {}) },
      });
    }
    return { status: 200, body: envelope(POLICY_COLLECTION, out) };
  }

  // ─────────── import tokens (§3) ───────────

  async #postToken(c: KpCall, ev: EventInfo): Promise<KpOutcome> {
    const body = parseBody(c.body, false) ?? {};
    rejectUnknown(body, ['expiration', 'maxallowedretrievals']);
    const expiration = body.expiration ?? 600;
    if (!Number.isInteger(expiration) || (expiration as number) < 300 || (expiration as number) > 86400) {
      throw invalidField(
        'expiration',
        "The field 'expiration' must be: an integer number of seconds between 300 and 86400",
      );
    }
    const maxRetrievals = body.maxallowedretrievals ?? 1;
    if (!Number.isInteger(maxRetrievals) || (maxRetrievals as number) < 1 || (maxRetrievals as number) > 500) {
      throw invalidField(
        'maxAllowedRetrievals',
        "The field 'maxAllowedRetrievals' must be: an integer between 1 and 500",
      );
    }
    const inst = c.instance;
    const seq = ++inst.tokenSeq;
    const pair = await this.#d.pool.take();
    const now = this.#now;
    const token: ImportToken = {
      seq,
      createdMs: now,
      expiresMs: now + (expiration as number) * 1000,
      maxRetrievals: maxRetrievals as number,
      remaining: maxRetrievals as number,
      nonce: randomBytes(12),
      pair,
    };
    // Last writer (by arrival) wins, even if an earlier request waited longer for its key pair.
    if (!inst.token || inst.token.seq < seq) {
      if (inst.token) inst.oldTokens = [inst.token, ...inst.oldTokens].slice(0, 8);
      inst.token = token;
    } else {
      inst.oldTokens = [token, ...inst.oldTokens].slice(0, 8);
    }
    const out = this.#tokenJson(token);
    ev.responseData = {
      ...ev.responseData,
      expirationDate: out.expirationDate,
      maxAllowedRetrievals: token.maxRetrievals,
    };
    return { status: this.#d.rules().importTokenCreateStatus, body: out };
  }

  #tokenJson(t: ImportToken): Json {
    return {
      creationDate: rfc3339(t.createdMs),
      expirationDate: rfc3339(t.expiresMs),
      maxAllowedRetrievals: t.maxRetrievals,
      remainingRetrievals: t.remaining,
    };
  }

  #getToken(c: KpCall, ev: EventInfo): KpOutcome {
    const t = c.instance.token;
    if (!t) {
      throw new KpError(
        404,
        'IMPORT_TOKEN_NOT_FOUND_ERR',
        'No import token exists for this instance: create one first',
        {
          what: 'Import token could not be found',
        },
      );
    }
    if (this.#now >= t.expiresMs) {
      throw new KpError(409, 'IMPORT_TOKEN_EXPIRED_ERR', 'The import token has expired: create a new import token', {
        what: 'Import token could not be retrieved',
      });
    }
    if (t.remaining <= 0) {
      if (this.#d.rules().exhaustedTokenGetStatus === 404) {
        throw new KpError(
          404,
          'IMPORT_TOKEN_NOT_FOUND_ERR',
          'The import token has no retrievals left: create a new import token',
          {
            what: 'Import token could not be found',
          },
        );
      }
      throw new KpError(
        409,
        'IMPORT_TOKEN_EXPIRED_ERR',
        'The import token has no retrievals left: create a new import token',
        {
          what: 'Import token could not be retrieved',
        },
      );
    }
    t.remaining--;
    const out = this.#tokenJson(t);
    ev.responseData = {
      ...ev.responseData,
      expirationDate: out.expirationDate,
      maxAllowedRetrievals: t.maxRetrievals,
      remainingRetrievals: t.remaining,
    };
    return {
      status: 200,
      body: {
        ...out,
        payload: Buffer.from(t.pair.publicKeyPem, 'utf8').toString('base64'),
        nonce: t.nonce.toString('base64'),
      },
    };
  }

  // ─────────── key rings ───────────

  #listRings(c: KpCall): KpOutcome {
    const limit = intParam(c.query, 'limit', 100, 1, 5000);
    const offset = intParam(c.query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const totalCount = boolParam(c.query, 'totalCount') === true;
    const all = [...c.instance.rings.entries()].map(([id, r]) => ({
      id,
      creationDate: rfc3339(r.createdMs),
      createdBy: r.createdBy,
    }));
    return {
      status: 200,
      body: envelope(
        'application/vnd.ibm.kms.key_ring+json',
        all.slice(offset, offset + limit),
        totalCount ? { totalCount: all.length } : {},
      ),
    };
  }

  #createRing(c: KpCall, id: string): KpOutcome {
    if (!RING_RE.test(id)) {
      throw new KpError(400, 'INVALID_PATH_PARAM_ERR', 'A key ring id must be 2-100 characters of A-Z, a-z, 0-9 or -', {
        target: { type: 'field', name: 'key_ring_id' },
      });
    }
    if (c.instance.rings.has(id)) throw new KpError(409, 'KEY_RING_CONFLICT_ERR', `Key ring '${id}' already exists`);
    if (c.instance.rings.size >= 50)
      throw new KpError(400, 'KEY_RING_QUOTA_ERR', 'An instance can have at most 50 key rings');
    c.instance.rings.set(id, { createdMs: this.#now, createdBy: c.caller.iamId });
    return { status: 201 };
  }

  #deleteRing(c: KpCall, id: string): KpOutcome {
    if (!c.instance.rings.has(id)) throw new KpError(404, 'KEY_RING_NOT_FOUND_ERR', `Key ring '${id}' does not exist`);
    if (id === 'default') throw new KpError(400, 'KEY_RING_DEFAULT_ERR', 'The default key ring cannot be deleted');
    const keys = [...c.instance.keys.values()].filter((k) => k.keyRingId === id);
    const force = boolParam(c.query, 'force') === true;
    if (keys.length > 0 && (!force || keys.some((k) => this.stateOf(k) !== 5))) {
      throw new KpError(
        409,
        'KEY_RING_KEYS_NOT_DELETED',
        'The key ring still holds keys: delete them first (force=true moves deleted keys)',
      );
    }
    for (const k of keys) k.keyRingId = 'default';
    c.instance.rings.delete(id);
    return { status: 204 };
  }
}
