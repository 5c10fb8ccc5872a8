import { AsyncLocalStorage } from 'node:async_hooks';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import type {
  CallOptions,
  CreateImportedKeyInput,
  KeyInfo,
  KeyProtectPort,
  KeyRef,
  KeyVersionInfo,
  PreparedImportToken,
  UnwrapResult,
  WrapResult,
} from '../app/index.js';
import type { Clock, InstanceId, KeyMaterial, Logger, Random, RegionId } from '../core/index.js';
import { AppError, asInstanceId, asKeyId, isAppError, Sensitive, silentLogger } from '../core/index.js';
import { guardAuthenticator, type KeyProtectAuthenticator } from './auth.js';
import {
  type CallContext,
  describeSdkError,
  diagnoseUnauthorized,
  IDEMPOTENT_OPERATIONS,
  KpOperation,
  toKeyProtectError,
  withCallContext,
} from './errors.js';
import { parseKeyInfo, parseUnwrap, parseVersionsPage, parseWrap } from './responses.js';
import { type RetryPolicy, resolveRetryPolicy, runWithRetry, type Sleep, timerSleep } from './retry.js';
import { type SecureImportWireFields, sealForImport, toWireFields } from './secure-import/index.js';
import { aadField, checkRef, configError, keyDescription, positiveInt } from './validation.js';

export interface KeyProtectClientOptions {
  /** One Key Protect API base URL per region, e.g. `{ 'us-south': 'https://us-south.kms.cloud.ibm.com' }`. */
  endpoints: Readonly<Record<string, string>>;
  /** From {@link authenticatorFromConfig}. Shared by every region. */
  authenticator: KeyProtectAuthenticator;
  /** IVs for secure import, correlation ids, retry jitter. */
  random: Random;
  clock: Clock;
  /** Receives one debug line per upstream call (never bodies). Default: silent. */
  logger?: Logger;
  /** Overrides of {@link DEFAULT_RETRY_POLICY}. */
  retry?: Partial<RetryPolicy>;
  /** Per-request timeout (socket inactivity), ms. Default 30 000. */
  timeoutMs?: number;
  /** Lifetime of the import tokens this client creates, 300–86 400 s. Default 600. */
  importTokenExpirationSeconds?: number;
  /**
   * `true` (default): create and rotate always go through secure import (import token + RSA-OAEP + AES-GCM nonce).
   * `'auto'`: secure import, falling back to a plain payload (TLS only) when the instance does not offer import
   * tokens at all (POST /import_token answers 404, 405 or 501 without an `IMPORT_TOKEN_*` reason code, as an
   * instance without the feature would); the fallback is logged at warn.
   * `false`: plain payload; the material travels base64-encoded inside TLS only.
   */
  useImportToken?: boolean | 'auto';
  /** Waits between retries. Default: a timer. Tests inject a recorder. */
  sleep?: Sleep;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_TOKEN_EXPIRATION_SECONDS = 600;
const VERSIONS_PAGE_SIZE = 200;
const MAX_VERSION_PAGES = 500;
const KEY_COLLECTION = 'application/vnd.ibm.kms.key+json';
const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const KEY_RING = /^[A-Za-z0-9-]{1,100}$/;

/** The identity behind the client's token, as IAM put it in the token (for diagnoses; never verified here). */
export interface KeyProtectIdentity {
  iamId: string;
  name?: string;
}

/**
 * The Key Protect client: the port plus what `lockstep check` needs — who the client is, and whether it may create
 * and read import tokens.
 */
export interface KeyProtectClient extends KeyProtectPort {
  /** The identity of the current IAM token (decoded, not verified); undefined when the token is not a JWT. */
  identity(): Promise<KeyProtectIdentity | undefined>;
  /**
   * Creates a short-lived import token (300 s, one retrieval) and reads it back: the Writer permission secure import
   * needs. The new token replaces the instance's current one, so **the caller holds the instance's import-token
   * lease**. `keyRingId`: the ring the token is for (`X-Kms-Key-Ring`).
   */
  probeImportToken(
    region: RegionId,
    instanceId: InstanceId,
    opts?: CallOptions & { keyRingId?: string },
  ): Promise<void>;
}

interface Scope {
  correlationId: string;
  signal?: AbortSignal;
  log: Logger;
}

type Service = InstanceType<typeof KeyProtectV2>;
interface KeyParams {
  id: string;
  bluemixInstance: string;
  correlationId: string;
  xKmsKeyRing?: string;
}
type Sent = Promise<{ result?: unknown; status?: number }>;

/**
 * The Key Protect adapter: implements {@link KeyProtectPort} over the IBM SDK (`@ibm-cloud/ibm-key-protect`), one
 * SDK service per region.
 *
 * - **Errors**: every failure is an `AppError`; see the table on {@link toKeyProtectError}.
 * - **Retries**: the SDK's own retries are off; idempotent calls follow {@link RetryPolicy}; create key and rotate
 *   are sent exactly once and an ambiguous failure carries `details.ambiguous: true`.
 * - **Secure import** (`createImportedKey`, `rotateWithMaterial`): POST /import_token → GET /import_token → seal →
 *   create/rotate. Key Protect keeps one import token per instance and the last one created wins, so **the caller
 *   must serialise these two methods per instance** (hold the instance's import-token lease for the whole call);
 *   otherwise a concurrent call overwrites the token and this one fails with `IMPORT_TOKEN_NONCE_MISMATCH`.
 * - **Correlation id**: `opts.correlationId` or a fresh UUID per logical call, sent as `Correlation-Id` on every
 *   upstream request of that call and logged (debug) with each of them.
 * - **Material** is read through `material.use(...)` while building a request body and never kept; the body buffer
 *   is zeroed once the request settles. The caller zeroes the material.
 *
 * @throws {AppError} CONFIG_INVALID for bad options
 * @example
 * const kp = createKeyProtectClient({
 *   endpoints: { 'us-south': 'https://us-south.kms.cloud.ibm.com' },
 *   authenticator: authenticatorFromConfig({ kind: 'container', profileName: 'lockstep' }),
 *   random: cryptoRandom, clock: systemClock, logger,
 * });
 * await kp.rotateWithMaterial(ref, material, { correlationId: runId });
 */
export function createKeyProtectClient(opts: KeyProtectClientOptions): KeyProtectClient {
  const policy = resolveRetryPolicy(opts.retry);
  const timeoutMs = positiveInt('timeoutMs', opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, 600_000);
  const tokenExpiration = positiveInt(
    'importTokenExpirationSeconds',
    opts.importTokenExpirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS,
    300,
    86_400,
  );
  const useImportToken = opts.useImportToken ?? true;
  if (useImportToken !== true && useImportToken !== false && useImportToken !== 'auto') {
    throw configError('useImportToken', 'useImportToken must be true, false or "auto"');
  }
  if (!opts.authenticator || typeof opts.authenticator.authenticate !== 'function') {
    throw configError('authenticator', 'authenticator is required (use authenticatorFromConfig)');
  }
  const { random, clock } = opts;
  const logger = (opts.logger ?? silentLogger).child({ component: 'keyprotect' });
  const sleep = opts.sleep ?? timerSleep;
  const authenticator = guardAuthenticator(opts.authenticator);
  const currentSignal = new AsyncLocalStorage<AbortSignal | undefined>();
  const services = buildServices(opts.endpoints, authenticator, timeoutMs, currentSignal);
  /** The key ring each key was last read in (`keyRingID`), sent as `X-Kms-Key-Ring` when the caller gives none. */
  const rings = new Map<string, string>();
  const ringKey = (region: string, instanceId: string, keyId: string) => `${region}/${instanceId}/${keyId}`;
  const ringOf = (ref: KeyRef): string | undefined =>
    checkRing(ref.keyRingId) ?? rings.get(ringKey(ref.region, ref.instanceId, ref.keyId));
  const remember = (region: string, instanceId: string, info: KeyInfo) => {
    if (info.keyRingId) rings.set(ringKey(region, instanceId, info.id), info.keyRingId);
  };
  const ringParam = (ring: string | undefined) => (ring ? { xKmsKeyRing: ring } : {});

  async function identity(): Promise<KeyProtectIdentity | undefined> {
    try {
      const req: { headers: Record<string, string> } = { headers: {} };
      await authenticator.authenticate(req);
      const token = /^bearer\s+(\S+)$/i.exec(req.headers.Authorization ?? '')?.[1];
      const payload = token?.split('.')[1];
      if (!payload) return undefined;
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
      const iamId =
        typeof claims.iam_id === 'string' ? claims.iam_id : typeof claims.sub === 'string' ? claims.sub : '';
      if (!/^[A-Za-z0-9@._:-]{1,128}$/.test(iamId)) return undefined;
      const name = typeof claims.name === 'string' && claims.name.length <= 128 ? claims.name : undefined;
      return { iamId, ...(name ? { name } : {}) };
    } catch {
      return undefined;
    }
  }

  function serviceFor(region: string): Service {
    const service = services.get(region);
    if (!service) {
      throw new AppError('VALIDATION_FAILED', `No Key Protect endpoint is configured for region ${region}`, {
        details: { field: 'region', region, configured: [...services.keys()] },
      });
    }
    return service;
  }

  function scope(callOpts: CallOptions | undefined, fields: Record<string, string>): Scope {
    const correlationId = callOpts?.correlationId ?? random.uuid();
    if (!CORRELATION_ID.test(correlationId)) {
      throw new AppError('VALIDATION_FAILED', 'correlationId must be 1-128 characters of [A-Za-z0-9._:-]', {
        details: { field: 'correlationId' },
      });
    }
    return {
      correlationId,
      ...(callOpts?.signal ? { signal: callOpts.signal } : {}),
      log: logger.child({ correlationId, ...fields }),
    };
  }

  /** One upstream call under the retry policy; every failure leaves as a mapped AppError. */
  async function send(
    sc: Scope,
    region: string,
    operation: KpOperation,
    fn: (svc: Service) => Sent,
    where: { instanceId?: string; keyRingId?: string | undefined } = {},
  ) {
    const service = serviceFor(region);
    const ctx: CallContext = {
      operation,
      region,
      correlationId: sc.correlationId,
      ...(where.instanceId ? { instanceId: where.instanceId } : {}),
      ...(where.keyRingId ? { keyRingId: where.keyRingId } : {}),
    };
    try {
      return await attemptAll(sc, service, ctx, fn);
    } catch (err) {
      if (isAppError(err) && err.code === 'UNAUTHENTICATED' && err.details.status === 401) {
        const who = await identity();
        throw diagnoseUnauthorized(err, who ? `${who.iamId}${who.name ? ` (${who.name})` : ''}` : undefined);
      }
      throw err;
    }
  }

  function attemptAll(sc: Scope, service: Service, ctx: CallContext, fn: (svc: Service) => Sent) {
    const { operation } = ctx;
    return runWithRetry({
      policy,
      idempotent: IDEMPOTENT_OPERATIONS.has(operation),
      random,
      sleep,
      ...(sc.signal ? { signal: sc.signal } : {}),
      attempt: async (attempt) => {
        if (sc.signal?.aborted) throw toKeyProtectError({ aborted: true, notSent: true }, ctx);
        const startedMs = clock.nowMs();
        try {
          const response = await currentSignal.run(sc.signal, () => fn(service));
          sc.log.debug('kp call', {
            operation,
            attempt,
            status: response.status ?? null,
            durationMs: clock.nowMs() - startedMs,
          });
          return response.result;
        } catch (err) {
          const mapped = isAppError(err)
            ? withCallContext(err, ctx)
            : toKeyProtectError(
                { ...describeSdkError(err, clock), ...(sc.signal?.aborted ? { aborted: true } : {}) },
                ctx,
                err,
              );
          sc.log.debug('kp call failed', {
            operation,
            attempt,
            status: mapped.details.status ?? null,
            kpCode: mapped.details.kpCode ?? null,
            code: mapped.code,
            durationMs: clock.nowMs() - startedMs,
          });
          throw mapped;
        }
      },
      onRetry: ({ attempt, delayMs, error }) =>
        sc.log.debug('kp call retry', { operation, attempt, delayMs, code: error.code }),
    });
  }

  /** One call addressed to a key: its id, instance, correlation id and key ring (`X-Kms-Key-Ring`, when known). */
  function sendForKey(sc: Scope, ref: KeyRef, operation: KpOperation, fn: (svc: Service, key: KeyParams) => Sent) {
    const ring = ringOf(ref);
    const key: KeyParams = {
      id: ref.keyId,
      bluemixInstance: ref.instanceId,
      correlationId: sc.correlationId,
      ...ringParam(ring),
    };
    return send(sc, ref.region, operation, (svc) => fn(svc, key), { instanceId: ref.instanceId, keyRingId: ring });
  }

  /** POST /import_token (Writer): replaces the instance's current token. */
  function postToken(
    sc: Scope,
    region: string,
    instanceId: InstanceId,
    ring: string | undefined,
    expiration: number,
    maxAllowedRetrievals: number,
  ) {
    return send(
      sc,
      region,
      KpOperation.POST_IMPORT_TOKEN,
      (svc) =>
        svc.postImportToken({
          bluemixInstance: instanceId,
          expiration,
          maxAllowedRetrievals,
          correlationId: sc.correlationId,
          ...ringParam(ring),
        }),
      { instanceId, keyRingId: ring },
    );
  }

  /** GET /import_token (Writer): the public key and nonce; uses one retrieval. */
  function getToken(sc: Scope, region: string, instanceId: InstanceId, ring: string | undefined) {
    return send(
      sc,
      region,
      KpOperation.GET_IMPORT_TOKEN,
      (svc) => svc.getImportToken({ bluemixInstance: instanceId, correlationId: sc.correlationId, ...ringParam(ring) }),
      { instanceId, keyRingId: ring },
    );
  }

  /** A fetched import token of one instance (public key and nonce), not yet used. */
  interface FetchedToken {
    readonly region: string;
    readonly instanceId: InstanceId;
    readonly payload: string;
    readonly nonce: Sensitive<string>;
  }
  const fetchedTokens = new WeakMap<PreparedImportToken, FetchedToken>();

  /**
   * POST then GET /import_token: the instance's new token, or `undefined` when the client sends plain payloads
   * (`useImportToken: false`, or `'auto'` and the instance offers no import tokens).
   */
  async function fetchToken(
    sc: Scope,
    region: string,
    instanceId: InstanceId,
    ring: string | undefined,
  ): Promise<FetchedToken | undefined> {
    if (useImportToken === false) return undefined;
    try {
      await postToken(sc, region, instanceId, ring, tokenExpiration, policy.maxAttempts);
    } catch (err) {
      if (useImportToken === 'auto' && tokenEndpointMissing(err)) {
        sc.log.warn('import tokens not offered by this instance; sending plain payload over TLS', { region });
        return undefined;
      }
      throw err;
    }
    const token = await getToken(sc, region, instanceId, ring);
    const { payload, nonce } = (token ?? {}) as { payload?: unknown; nonce?: unknown };
    if (typeof payload !== 'string' || typeof nonce !== 'string') {
      const ctx: CallContext = { operation: KpOperation.GET_IMPORT_TOKEN, region, correlationId: sc.correlationId };
      throw unusableToken(ctx, 'missing_fields');
    }
    return { region, instanceId, payload, nonce: new Sensitive(nonce) };
  }

  /**
   * The body fields that carry the material: sealed for an import token, or plain base64. The token is created and
   * fetched (or a prepared one taken) before `material` and `proceed` are awaited, so a caller can overlap them with
   * those round trips; `undefined` when `proceed` said no. A prepared token of another instance, or one whose
   * preparation failed, is not used: the token is fetched here instead.
   */
  async function materialFields(
    sc: Scope,
    region: string,
    instanceId: InstanceId,
    materialIn: KeyMaterial | Promise<KeyMaterial>,
    proceedIn: Promise<boolean> | undefined,
    ring: string | undefined,
    prepared?: Promise<PreparedImportToken | undefined>,
  ): Promise<SecureImportWireFields | { payload: string } | undefined> {
    const material = Promise.resolve(materialIn);
    const proceed = proceedIn ?? Promise.resolve(true);
    // Observed now, awaited later: a rejection that arrives while the token calls are in flight is not unhandled.
    material.catch(() => undefined);
    proceed.catch(() => undefined);
    const ready = async (): Promise<KeyMaterial | undefined> =>
      (await proceed.catch(() => false)) ? await material : undefined;
    const handle = prepared ? await prepared.catch(() => undefined) : undefined;
    const given = handle ? fetchedTokens.get(handle) : undefined;
    if (handle) fetchedTokens.delete(handle); // one use
    const usable = given && given.region === region && given.instanceId === instanceId ? given : undefined;
    const token = usable ?? (await fetchToken(sc, region, instanceId, ring));
    const m = await ready();
    if (!m) return undefined;
    if (!token) return plainFields(m);
    try {
      return toWireFields(
        sealForImport({ token: { payload: token.payload, nonce: token.nonce }, material: m, random }),
      );
    } catch (err) {
      if (isAppError(err) && err.code === 'VALIDATION_FAILED') {
        const ctx: CallContext = { operation: KpOperation.GET_IMPORT_TOKEN, region, correlationId: sc.correlationId };
        throw unusableToken(ctx, String(err.details.reason ?? 'invalid'), err);
      }
      throw err;
    }
  }

  async function getKey(ref: KeyRef, callOpts?: CallOptions): Promise<KeyInfo> {
    checkRef(ref);
    return readKeyMetadata(ref, callOpts);
  }

  /** Key Protect resolves `/keys/{id}/metadata` by id or by alias (the caller checked which). */
  async function readKeyMetadata(ref: KeyRef, callOpts?: CallOptions): Promise<KeyInfo> {
    const sc = scope(callOpts, { region: ref.region, instanceId: ref.instanceId, keyId: ref.keyId, call: 'getKey' });
    // Key metadata needs Reader; "retrieve a key" (GET /keys/{id}) needs ReaderPlus (manage-access.md). Only an
    // explicit ring is sent here, so a key that moved rings is found again (Key Protect looks the ring up).
    const ring = checkRing(ref.keyRingId);
    const result = await send(
      sc,
      ref.region,
      KpOperation.GET_KEY,
      (svc) =>
        svc.getKeyMetadata({
          id: ref.keyId,
          bluemixInstance: ref.instanceId,
          correlationId: sc.correlationId,
          ...ringParam(ring),
        }),
      { instanceId: ref.instanceId, keyRingId: ring },
    );
    const info = parseKeyInfo(result, {
      operation: KpOperation.GET_KEY,
      region: ref.region,
      correlationId: sc.correlationId,
    });
    remember(ref.region, ref.instanceId, info);
    return info;
  }

  async function createKey(
    sc: Scope,
    region: RegionId,
    instanceId: InstanceId,
    resource: Record<string, unknown>,
    ring: string | undefined,
  ): Promise<KeyInfo> {
    const body = Buffer.from(
      JSON.stringify({
        metadata: { collectionType: KEY_COLLECTION, collectionTotal: 1 },
        resources: [{ type: KEY_COLLECTION, extractable: false, ...resource }],
      }),
    );
    let result: unknown;
    try {
      result = await send(
        sc,
        region,
        KpOperation.CREATE_KEY,
        (svc) =>
          svc.createKey({
            bluemixInstance: instanceId,
            body,
            correlationId: sc.correlationId,
            prefer: 'return=representation',
            ...ringParam(ring),
          }),
        { instanceId, keyRingId: ring },
      );
    } finally {
      body.fill(0);
    }
    const ctx: CallContext = { operation: KpOperation.CREATE_KEY, region, correlationId: sc.correlationId };
    try {
      const info = parseKeyInfo(result, ctx);
      remember(region, instanceId, info);
      return info;
    } catch (err) {
      // created, but the representation is partial (e.g. return=minimal): read it back
      const id = (result as { resources?: { id?: unknown }[] } | undefined)?.resources?.[0]?.id;
      if (typeof id !== 'string') throw err;
      return getKey(
        { region, instanceId, keyId: asKeyId(id), ...(ring ? { keyRingId: ring } : {}) },
        { correlationId: sc.correlationId },
      );
    }
  }

  return {
    getKey,
    identity,

    async findKeyByAlias(at, alias, callOpts) {
      asInstanceId(at.instanceId);
      if (typeof alias !== 'string' || !/^[A-Za-z0-9_-]{2,90}$/.test(alias)) {
        throw new AppError('VALIDATION_FAILED', 'alias: 2-90 characters of [A-Za-z0-9_-]', {
          details: { field: 'alias' },
        });
      }
      try {
        return await readKeyMetadata(
          { region: at.region, instanceId: at.instanceId, keyId: alias as KeyRef['keyId'] },
          callOpts,
        );
      } catch (err) {
        if (isAppError(err) && err.code === 'KEY_NOT_FOUND') return undefined;
        throw err;
      }
    },

    async probeImportToken(region, instanceIdIn, callOpts) {
      const instanceId = asInstanceId(instanceIdIn);
      const ring = checkRing(callOpts?.keyRingId);
      const sc = scope(callOpts, { region, instanceId, call: 'probeImportToken' });
      await postToken(sc, region, instanceId, ring, 300, 1);
      await getToken(sc, region, instanceId, ring);
    },

    async listVersions(ref, callOpts) {
      checkRef(ref);
      const sc = scope(callOpts, {
        region: ref.region,
        instanceId: ref.instanceId,
        keyId: ref.keyId,
        call: 'listVersions',
      });
      const ctx: CallContext = {
        operation: KpOperation.LIST_VERSIONS,
        region: ref.region,
        correlationId: sc.correlationId,
      };
      const seen = new Map<string, KeyVersionInfo>();
      for (let page = 0; page < MAX_VERSION_PAGES; page++) {
        const result = await sendForKey(sc, ref, KpOperation.LIST_VERSIONS, (svc, key) =>
          svc.getKeyVersions({ ...key, limit: VERSIONS_PAGE_SIZE, offset: page * VERSIONS_PAGE_SIZE }),
        );
        const versions = parseVersionsPage(result, ctx);
        for (const v of versions) if (!seen.has(v.id)) seen.set(v.id, v);
        if (versions.length < VERSIONS_PAGE_SIZE) break;
      }
      // Key Protect lists newest first; sort anyway (stable) so a page boundary moving under us cannot reorder
      return [...seen.values()].sort((a, b) => b.createdAtMs - a.createdAtMs);
    },

    async createImportedKey(input: CreateImportedKeyInput, callOpts) {
      const instanceId = asInstanceId(input.instanceId);
      const descriptive = keyDescription(input);
      const sc = scope(callOpts, { region: input.region, instanceId, call: 'createImportedKey' });
      serviceFor(input.region);
      const ring = checkRing(input.keyRingId);
      const fields = await materialFields(sc, input.region, instanceId, input.material, undefined, ring);
      if (!fields) throw new Error('unreachable: createImportedKey has no proceed gate');
      return createKey(sc, input.region, instanceId, { ...descriptive, ...fields }, ring);
    },

    async createGeneratedRootKey(input, callOpts) {
      const instanceId = asInstanceId(input.instanceId);
      const descriptive = keyDescription(input);
      const sc = scope(callOpts, { region: input.region, instanceId, call: 'createGeneratedRootKey' });
      return createKey(sc, input.region, instanceId, descriptive, checkRing(input.keyRingId));
    },

    async rotateWithMaterial(ref, material, callOpts) {
      checkRef(ref);
      const sc = scope(callOpts, {
        region: ref.region,
        instanceId: ref.instanceId,
        keyId: ref.keyId,
        call: 'rotateWithMaterial',
      });
      serviceFor(ref.region);
      const ring = ringOf(ref);
      const fields = await materialFields(
        sc,
        ref.region,
        ref.instanceId,
        material,
        callOpts?.proceed,
        ring,
        callOpts?.token,
      );
      if (!fields) return false;
      const body = Buffer.from(JSON.stringify(fields));
      try {
        await sendForKey(sc, ref, KpOperation.ROTATE, (svc, key) =>
          svc.rotateKey({ ...key, keyActionRotateBody: body }),
        );
      } finally {
        body.fill(0);
      }
      return true;
    },

    async prepareImportToken(at, callOpts): Promise<PreparedImportToken | undefined> {
      const instanceId = asInstanceId(at.instanceId);
      const sc = scope(callOpts, { region: at.region, instanceId, call: 'prepareImportToken' });
      serviceFor(at.region);
      const token = await fetchToken(sc, at.region, instanceId, checkRing(at.keyRingId));
      if (!token) return undefined;
      const handle: PreparedImportToken = Object.freeze({ region: at.region, instanceId });
      fetchedTokens.set(handle, token);
      return handle;
    },

    async wrap(ref, plaintext, aad, callOpts): Promise<WrapResult> {
      checkRef(ref);
      if (!Buffer.isBuffer(plaintext) || plaintext.length === 0 || plaintext.length > 7_500) {
        throw new AppError('VALIDATION_FAILED', 'wrap plaintext must be 1-7500 bytes', {
          details: { field: 'plaintext' },
        });
      }
      const sc = scope(callOpts, { region: ref.region, instanceId: ref.instanceId, keyId: ref.keyId, call: 'wrap' });
      const body = Buffer.from(JSON.stringify({ plaintext: plaintext.toString('base64'), ...aadField(aad) }));
      try {
        const result = await sendForKey(sc, ref, KpOperation.WRAP, (svc, key) =>
          svc.wrapKey({ ...key, keyActionWrapBody: body }),
        );
        return parseWrap(result, { operation: KpOperation.WRAP, region: ref.region, correlationId: sc.correlationId });
      } finally {
        body.fill(0);
      }
    },

    async unwrap(ref, ciphertext, aad, callOpts): Promise<UnwrapResult> {
      checkRef(ref);
      if (typeof ciphertext !== 'string' || ciphertext.length === 0) {
        throw new AppError('VALIDATION_FAILED', 'unwrap ciphertext must be a non-empty base64 string', {
          details: { field: 'ciphertext' },
        });
      }
      const sc = scope(callOpts, { region: ref.region, instanceId: ref.instanceId, keyId: ref.keyId, call: 'unwrap' });
      const body = Buffer.from(JSON.stringify({ ciphertext, ...aadField(aad) }));
      const result = await sendForKey(sc, ref, KpOperation.UNWRAP, (svc, key) =>
        svc.unwrapKey({ ...key, keyActionUnwrapBody: body }),
      );
      return parseUnwrap(result, {
        operation: KpOperation.UNWRAP,
        region: ref.region,
        correlationId: sc.correlationId,
      });
    },
  };
}

function buildServices(
  endpoints: Readonly<Record<string, string>>,
  authenticator: KeyProtectAuthenticator,
  timeoutMs: number,
  currentSignal: AsyncLocalStorage<AbortSignal | undefined>,
): Map<string, Service> {
  if (typeof endpoints !== 'object' || endpoints === null || Object.keys(endpoints).length === 0) {
    throw configError('endpoints', 'endpoints must map at least one region to a Key Protect URL');
  }
  const services = new Map<string, Service>();
  for (const [region, url] of Object.entries(endpoints)) {
    if (!/^[a-z]{2}-[a-z]{2,6}$/.test(region)) {
      throw configError(`endpoints.${region}`, `endpoint region "${region}" is not a region id like us-south`);
    }
    if (typeof url !== 'string' || !/^https?:\/\/[^\s/]+/.test(url)) {
      throw configError(`endpoints.${region}`, `endpoint for ${region} must be an absolute http(s) URL`);
    }
    const service = new KeyProtectV2({ authenticator, serviceUrl: url.replace(/\/+$/, ''), timeout: timeoutMs });
    service.disableRetries();
    // The SDK has no per-call AbortSignal: attach the current call's signal to its axios requests.
    service.getHttpClient().interceptors.request.use((config) => {
      const signal = currentSignal.getStore();
      if (signal) config.signal = signal;
      // List versions of a suspended or deactivated key too (view-key-versions.md: without allKeyStates=true a
      // non-active key answers 409); SDK 0.1.2 has no parameter for it.
      if (config.method?.toLowerCase() === 'get' && /\/api\/v2\/keys\/[^/?]+\/versions$/.test(config.url ?? '')) {
        config.params = { ...(config.params ?? {}), allKeyStates: true };
      }
      return config;
    });
    services.set(region, service);
  }
  return services;
}

function plainFields(material: KeyMaterial): { payload: string } {
  return { payload: material.use((bytes) => bytes.toString('base64')) };
}

/** POST /import_token answered as if the route did not exist (404/405/501, no IMPORT_TOKEN_* reason). */
function tokenEndpointMissing(err: unknown): boolean {
  if (!isAppError(err) || String(err.details.kpCode ?? '').startsWith('IMPORT_TOKEN')) return false;
  return err.details.status === 404 || err.details.status === 405 || err.details.status === 501;
}

function unusableToken(ctx: CallContext, reason: string, cause?: unknown): AppError {
  return new AppError('UPSTREAM_REJECTED', `Key Protect returned an import token that cannot be used (${reason})`, {
    details: {
      kpCode: null,
      status: null,
      correlationId: ctx.correlationId,
      region: ctx.region,
      operation: ctx.operation,
      reason,
    },
    cause,
  });
}

/** A key ring id as Key Protect accepts it, or undefined. @throws {AppError} VALIDATION_FAILED for a malformed one */
function checkRing(ring: string | undefined): string | undefined {
  if (ring === undefined) return undefined;
  if (typeof ring !== 'string' || !KEY_RING.test(ring)) {
    throw new AppError('VALIDATION_FAILED', 'keyRingId must be 1-100 characters of [A-Za-z0-9-]', {
      details: { field: 'keyRingId' },
    });
  }
  return ring;
}
