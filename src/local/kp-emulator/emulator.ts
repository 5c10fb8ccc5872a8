/**
 * The multi-region Key Protect emulator: one HTTP server per region (`/api/v2/...`), one admin server
 * (`/__emulator/...`), a shared engine, fault injection, a controllable clock and Activity Tracker sinks.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../../core/index.js';
import { silentLogger } from '../../core/index.js';
import { createIamTokenVerifier, type IamTokenVerifier } from '../iam/index.js';
import { type AccessGrant, allows, checkGrants } from './access.js';
import { errorBody, KpError, unauthorized } from './errors.js';
import { buildEvent, WebhookSink } from './events.js';
import { fixedRsaKeyPool, type ImportTokenKeyPair, type RsaKeyPool, sharedRsaKeyPool } from './keyPool.js';
import { type Caller, type EventInfo, type InstanceState, KpEngine, newInstance } from './service.js';
import { cloneInstance, loadSnapshot, saveSnapshot } from './snapshot.js';
import { type CadfEvent, DEFAULT_RULES, type EmulatorRegion, type EmulatorRules, type FaultSpec } from './types.js';

export interface KeyProtectEmulator {
  /** Per region: its service URL and instance GUIDs. */
  regions: Record<string, EmulatorRegion>;
  /** Base URL of the admin server (routes under `/__emulator/`). */
  adminUrl: string;
  accountId: string;
  /**
   * Adds an instance to `region` (a random GUID unless given) and returns its id. `allowedNetwork: 'private-only'`
   * provisions a private instance (provision.md `-p '{"allowed_network": "private-only"}'`).
   */
  createInstance(region: string, instanceId?: string, opts?: { allowedNetwork?: AllowedNetwork }): string;
  /** The emulator clock (wall clock + offset). */
  nowMs(): number;
  /** Moves the emulator clock forward (1 h rule, token expiry, 30 s / 4 h / 30 d rules). */
  advanceClock(ms: number): void;
  /** Activity Tracker events so far, oldest first. */
  events(filter?: { action?: string; targetCrn?: string; correlationId?: string }): CadfEvent[];
  /** Waits until every webhook delivery in flight has finished (delivered or given up). */
  flushEvents(): Promise<void>;
  /** Replaces the webhook sink (undefined removes it). */
  setEventWebhook(url: string | undefined, headers?: Record<string, string>): void;
  /** Injects faults for a whole region or one instance; replaces earlier faults of that target. */
  setFaults(target: { region: string; instanceId?: string }, faults: FaultSpec): void;
  clearFaults(): void;
  setRules(rules: Partial<EmulatorRules>): void;
  rules(): EmulatorRules;
  /** CRN of a key (or of the instance when `keyId` is omitted). */
  crnOf(region: string, instanceId: string, keyId?: string): string;
  /** Empties every instance (keys, tokens, policies), events, faults; rules and clock back to their start values. */
  reset(): void;
  /** Writes the snapshot now (no-op without `snapshotFile`). */
  saveSnapshot(): Promise<void>;
  /**
   * IAM service access (access.ts): `undefined` is the open mode (every identity of the account acts as the account
   * owner); a list of grants models least privilege, and a caller without the needed role gets 401.
   */
  setAccess(grants: AccessGrant[] | undefined): void;
  access(): AccessGrant[] | undefined;
  /** A restore point of one instance: its keys (with versions and material), aliases, rings and policies. */
  createRestorePoint(region: string, instanceId: string): string;
  /** Puts that instance back to the restore point (a recovery that lost later writes). Import tokens are dropped. */
  restoreRestorePoint(snapshotId: string): void;
  /**
   * Emits `kms.secrets.expire` for every key past its `expirationDate` that has not had one (key-states.md: the key
   * is deactivated within an hour after expiry). Runs from API calls (at most every 250 ms), on `advanceClock` and
   * every second.
   */
  expireDueKeys(): number;
  close(): Promise<void>;
}

export interface StartKeyProtectEmulatorOptions {
  regions: string[];
  iam: { jwksUrl: string; issuer: string };
  /** Instances created per region at start (default 1). */
  instancesPerRegion?: number;
  /** Fixed instance ids per region (created in addition up to `instancesPerRegion`). */
  instanceIds?: Record<string, string[]>;
  host?: string;
  /** Ports per region (default 0 = random); `adminPort` for the admin server. */
  ports?: Record<string, number>;
  adminPort?: number;
  accountId?: string;
  rules?: Partial<EmulatorRules>;
  eventWebhookUrl?: string;
  eventWebhookHeaders?: Record<string, string>;
  /** JSON file the state survives restarts in (encrypted, see README). */
  snapshotFile?: string;
  /** Passphrase the snapshot is encrypted with (scrypt → AES-256-GCM). */
  snapshotKey?: string;
  /** Target size of the process-wide RSA-4096 pool (default 2; 0 = generate on demand only). */
  tokenKeyPoolSize?: number;
  /**
   * Test speed-up: let one RSA-4096 pair serve up to N import tokens of emulators that set this (default 1 = a
   * fresh pair per token). Nonces still differ per token, so overwritten-token checks keep working.
   */
  tokenKeyMaxUses?: number;
  /**
   * Use these RSA-4096 pairs (round-robin) for import tokens instead of generating: tests and benchmarks that run
   * many emulators. Overrides the pool options above.
   */
  tokenKeyPairs?: readonly ImportTokenKeyPair[];
  /** Start filling the pool at start instead of at the first import token. */
  prewarmTokenKeys?: boolean;
  /** Initial emulator time (default: the wall clock). */
  startTimeMs?: number;
  /** IAM service access grants (access.ts); default undefined = open mode. */
  access?: AccessGrant[];
  /** Fixed ports of the private endpoints per region (default 0 = random). */
  privatePorts?: Record<string, number>;
  logger?: Logger;
}

export type AllowedNetwork = 'public-and-private' | 'private-only';

/** Which endpoint of a region a call arrived on. */
type Network = 'public' | 'private';

interface Bucket {
  tokens: number;
  lastMs: number;
}

const MAX_EVENTS = 10_000;
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1_000_000) {
        reject(new KpError(413, 'BODY_TOO_LARGE_ERR', 'The request body is larger than 1 MB'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Responses held by a `roundTripMs` fault: the earliest `performance.now()` at which they may leave. */
const notBefore = new WeakMap<ServerResponse, number>();

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.destroyed) return;
  const wait = (notBefore.get(res) ?? 0) - performance.now();
  if (wait > 0) {
    // Re-checked on wake-up: a timer may fire a fraction of a millisecond early.
    setTimeout(() => sendJson(res, status, body, headers), Math.ceil(wait));
    return;
  }
  if (body === undefined || status === 204) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Starts the emulator: one server per region on `host` (default 127.0.0.1) and an admin server.
 * @example
 * const kp = await startKeyProtectEmulator({ regions: ['us-south', 'eu-de'], iam: { jwksUrl: iam.jwksUrl, issuer: iam.issuer } });
 * const sdk = new KeyProtectV2({ authenticator, serviceUrl: kp.regions['us-south'].url });
 */
export async function startKeyProtectEmulator(opts: StartKeyProtectEmulatorOptions): Promise<KeyProtectEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const logger = (opts.logger ?? silentLogger).child({ component: 'kp-emulator' });
  const accountId = opts.accountId ?? randomBytes(16).toString('hex');
  const initialRules: EmulatorRules = { ...DEFAULT_RULES, ...(opts.rules ?? {}) };
  let rules: EmulatorRules = { ...initialRules };
  const initialOffsetMs = opts.startTimeMs !== undefined ? opts.startTimeMs - Date.now() : 0;
  let offsetMs = initialOffsetMs;
  const nowMs = () => Date.now() + offsetMs;
  const pool = opts.tokenKeyPairs ? fixedRsaKeyPool(opts.tokenKeyPairs) : sharedRsaKeyPool();
  if (opts.prewarmTokenKeys) pool.prewarm(opts.tokenKeyPoolSize);
  let poolSizeApplied = opts.prewarmTokenKeys === true;
  const poolForEngine: RsaKeyPool = {
    take: () => {
      if (!poolSizeApplied) {
        poolSizeApplied = true;
        pool.prewarm(opts.tokenKeyPoolSize);
      }
      return pool.take(opts.tokenKeyMaxUses ?? 1);
    },
    prewarm: (n?: number) => pool.prewarm(n),
    get ready() {
      return pool.ready;
    },
    get generated() {
      return pool.generated;
    },
  };

  const engine = new KpEngine({ accountId, nowMs, rules: () => rules, pool: poolForEngine, logger });
  const verifier: IamTokenVerifier = createIamTokenVerifier({ jwksUrl: opts.iam.jwksUrl, issuer: opts.iam.issuer });

  const instances = new Map<string, Map<string, InstanceState>>(); // region -> id -> state
  for (const region of opts.regions) {
    if (!/^[a-z]{2}-[a-z]{2,6}$/.test(region)) throw new Error(`kp-emulator: invalid region name ${region}`);
    instances.set(region, new Map());
  }

  let events: CadfEvent[] = [];
  let webhook: WebhookSink | undefined = opts.eventWebhookUrl
    ? new WebhookSink({
        url: opts.eventWebhookUrl,
        ...(opts.eventWebhookHeaders ? { headers: opts.eventWebhookHeaders } : {}),
        logger,
      })
    : undefined;
  const faults = new Map<string, FaultSpec>();
  const buckets = new Map<string, Bucket>();
  const regionInfo: Record<string, EmulatorRegion> = {};
  /** Per region its public endpoint (key `region`) and its private one (key `region#private`). */
  const servers = new Map<string, { server: Server; port: number; refused: boolean; sockets: Set<Socket> }>();
  let grants: AccessGrant[] | undefined = opts.access ? checkGrants(opts.access) : undefined;
  const restorePoints = new Map<string, { region: string; instanceId: string; state: InstanceState }>();

  function createInstance(region: string, instanceId?: string, o: { allowedNetwork?: AllowedNetwork } = {}): string {
    const map = instances.get(region);
    if (!map) throw new Error(`kp-emulator: unknown region ${region}`);
    const id = (instanceId ?? randomUUID()).toLowerCase();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) {
      throw new Error(`kp-emulator: instance id must be a GUID, got ${instanceId}`);
    }
    for (const other of instances.values()) {
      if (other.has(id)) throw new Error(`kp-emulator: instance ${id} already exists`);
    }
    const inst = newInstance(region, id, nowMs());
    if (o.allowedNetwork) {
      if (o.allowedNetwork !== 'private-only' && o.allowedNetwork !== 'public-and-private') {
        throw new Error('kp-emulator: allowedNetwork must be private-only or public-and-private');
      }
      inst.policies.set('allowedNetwork', {
        type: 'allowedNetwork',
        enabled: true,
        attributes: { allowed_network: o.allowedNetwork },
        createdMs: nowMs(),
        createdBy: 'provisioning',
        updatedMs: nowMs(),
        updatedBy: 'provisioning',
      });
    }
    map.set(id, inst);
    regionInfo[region]?.instances.push(id);
    logger.info('kp-emulator: instance created', { region, instanceId: id });
    return id;
  }

  function crnOf(region: string, instanceId: string, keyId?: string): string {
    const base = `crn:v1:bluemix:public:kms:${region}:a/${accountId}:${instanceId}`;
    return keyId ? `${base}:key:${keyId}` : `${base}::`;
  }

  let lastSweepWallMs = 0;

  function privateOnly(inst: InstanceState): boolean {
    const p = inst.policies.get('allowedNetwork');
    return p?.enabled === true && p.attributes?.allowed_network === 'private-only';
  }

  /**
   * key-states.md: a key with an expiration date moves to Deactivated (3) within one hour after it, and Activity
   * Tracker records `kms.secrets.expire` (at-events.md). The emulator reports state 3 from the expiration date on
   * (the stricter end of "within one hour") and emits the event once per key at the next sweep.
   */
  function expireDueKeys(): number {
    const now = nowMs();
    let n = 0;
    for (const [region, map] of instances) {
      for (const inst of map.values()) {
        for (const k of inst.keys.values()) {
          if (k.expirationMs === undefined || k.expirationMs > now || k.expiredEventEmitted) continue;
          k.expiredEventEmitted = true;
          n++;
          if (k.state === 5) continue;
          emit(
            buildEvent({
              nowMs: now,
              region,
              action: 'kms.secrets.expire',
              status: 200,
              correlationId: randomUUID(),
              initiator: { iamId: 'IBM', name: 'Key Protect', subType: 'ServiceId', address: '', agent: 'kms' },
              targetCrn: crnOf(region, inst.id, k.id),
              targetName: k.name,
              logSourceCrn: crnOf(region, inst.id),
              requestData: { instanceID: inst.id, keyRingId: k.keyRingId },
              responseData: { keyState: 3, expirationDate: new Date(k.expirationMs).toISOString() },
            }),
          );
        }
      }
    }
    if (n > 0) scheduleSnapshot();
    return n;
  }

  function emit(e: CadfEvent) {
    events.push(e);
    if (events.length > MAX_EVENTS) events = events.slice(events.length - MAX_EVENTS);
    webhook?.send(e);
  }

  // ─────────── snapshot ───────────
  let snapshotTimer: NodeJS.Timeout | undefined;
  let snapshotWrite: Promise<void> = Promise.resolve();
  const doSnapshot = async () => {
    if (!opts.snapshotFile) return;
    const file = opts.snapshotFile;
    snapshotWrite = snapshotWrite
      .then(() => saveSnapshot(file, opts.snapshotKey, { accountId, offsetMs, instances }))
      .catch((err: unknown) => logger.error('kp-emulator: snapshot write failed', { error: (err as Error).message }));
    await snapshotWrite;
  };
  const scheduleSnapshot = () => {
    if (!opts.snapshotFile || snapshotTimer) return;
    snapshotTimer = setTimeout(() => {
      snapshotTimer = undefined;
      void doSnapshot();
    }, 200);
  };

  // ─────────── faults ───────────
  function _faultFor(region: string, instanceId: string | undefined): FaultSpec | undefined {
    const f = (instanceId ? faults.get(`${region}/${instanceId}`) : undefined) ?? faults.get(region);
    return f;
  }

  function consume(key: string, f: FaultSpec) {
    if (f.remaining === undefined) return;
    f.remaining--;
    if (f.remaining <= 0) {
      faults.delete(key);
      const [region] = key.split('/');
      if (!key.includes('/') && f.outage === 'refuse' && region) reopen(region);
    }
  }

  /** Applies faults; returns true when the request was answered (or dropped) by a fault. */
  async function applyFaults(
    region: string,
    instanceId: string | undefined,
    req: IncomingMessage,
    res: ServerResponse,
    arrivedMs: number,
  ): Promise<boolean> {
    const key = instanceId && faults.has(`${region}/${instanceId}`) ? `${region}/${instanceId}` : region;
    const f = faults.get(key);
    const bucketKey = instanceId ? `${region}/${instanceId}` : undefined;
    if (!f) return false;
    consume(key, f);
    if (f.outage === 'reset' || f.outage === 'refuse') {
      req.socket.destroy();
      return true;
    }
    if (f.outage === '503') {
      sendJson(
        res,
        503,
        errorBody(503, 'SERVICE_UNAVAILABLE_ERR', 'The service is unavailable (emulator outage)', {
          what: 'Service is unavailable',
        }),
      );
      return true;
    }
    if (f.roundTripMs || f.roundTripJitterMs) {
      notBefore.set(res, arrivedMs + (f.roundTripMs ?? 0) + Math.random() * (f.roundTripJitterMs ?? 0));
    }
    if (f.latencyMs || f.latencyJitterMs) {
      await sleep((f.latencyMs ?? 0) + Math.random() * (f.latencyJitterMs ?? 0));
    }
    const retryAfter = String(f.retryAfterSeconds ?? 1);
    const tooMany = (msg: string) =>
      sendJson(
        res,
        429,
        errorBody(429, 'TOO_MANY_REQUESTS_ERR', `${msg} (emulator-only reason code)`, { what: 'Too many requests' }),
        { 'retry-after': retryAfter },
      );
    if (f.rateLimit && bucketKey) {
      const rl = f.rateLimit;
      const now = Date.now();
      const b = buckets.get(bucketKey) ?? { tokens: rl.burst, lastMs: now };
      b.tokens = Math.min(rl.burst, b.tokens + ((now - b.lastMs) / 1000) * rl.requestsPerSecond);
      b.lastMs = now;
      buckets.set(bucketKey, b);
      if (b.tokens < 1) {
        const waitS = Math.max(1, Math.ceil((1 - b.tokens) / Math.max(rl.requestsPerSecond, 1e-9)));
        sendJson(
          res,
          429,
          errorBody(
            429,
            'TOO_MANY_REQUESTS_ERR',
            'The instance request rate limit was exceeded (emulator-only reason code)',
            {
              what: 'Too many requests',
            },
          ),
          { 'retry-after': String(Math.min(waitS, 3600)) },
        );
        return true;
      }
      b.tokens -= 1;
    }
    if (f.throttleRate && Math.random() < f.throttleRate) {
      tooMany('Too many requests were sent');
      return true;
    }
    if (f.errorRate && Math.random() < f.errorRate) {
      const status = f.errorStatus ?? 503;
      sendJson(
        res,
        status,
        errorBody(status, 'INTERNAL_SERVER_ERR', 'Injected server error (emulator fault)', { what: 'Internal error' }),
      );
      return true;
    }
    return false;
  }

  function makeRegionServer(region: string, sockets: Set<Socket>, network: Network): Server {
    const server = createServer((req, res) => {
      handleApi(region, network, req, res).catch((err: unknown) => {
        logger.error('kp-emulator: request failed', { error: (err as Error).message });
        if (!res.headersSent) sendJson(res, 500, errorBody(500, 'INTERNAL_SERVER_ERR', 'Internal error', {}));
      });
    });
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    return server;
  }

  /** Ends a `refuse` outage: a fresh server on the same port (binding to an IP literal is synchronous). */
  function reopen(region: string) {
    for (const network of ['public', 'private'] as const) {
      const s = servers.get(network === 'public' ? region : `${region}#private`);
      if (!s?.refused) continue;
      s.refused = false;
      s.server = makeRegionServer(region, s.sockets, network);
      s.server.on('error', (err) =>
        logger.error('kp-emulator: could not reopen region server', { region, error: err.message }),
      );
      s.server.listen(s.port, host);
    }
  }

  /** A region outage closes both of its endpoints. */
  function refuse(region: string) {
    for (const key of [region, `${region}#private`]) {
      const s = servers.get(key);
      if (!s || s.refused) continue;
      s.refused = true;
      s.server.close();
      s.server.closeAllConnections();
      for (const sock of s.sockets) sock.destroy();
    }
  }

  // ─────────── the API ───────────
  async function handleApi(region: string, network: Network, req: IncomingMessage, res: ServerResponse) {
    const arrivedMs = performance.now();
    const url = new URL(req.url ?? '/', 'http://x');
    const method = (req.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string') headers[k.toLowerCase()] = v;
      else if (Array.isArray(v)) headers[k.toLowerCase()] = v.join(',');
    }
    // The expiry sweep walks every key: at most every 250 ms from the request path (advanceClock runs it at once).
    if (Date.now() - lastSweepWallMs >= 250) {
      lastSweepWallMs = Date.now();
      expireDueKeys();
    }
    const correlationId = headers['correlation-id'] || randomUUID();
    const replyHeaders = { 'correlation-id': correlationId };
    const instanceHeader = headers['bluemix-instance']?.trim().toLowerCase();
    if (await applyFaults(region, instanceHeader, req, res, arrivedMs)) return;

    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof KpError) sendJson(res, err.status, err.toBody(), replyHeaders);
      return;
    }
    if (!url.pathname.startsWith('/api/v2/')) {
      sendJson(
        res,
        404,
        errorBody(404, 'NOT_FOUND_ERR', `No route for ${method} ${url.pathname}`, { what: 'Request is invalid' }),
        replyHeaders,
      );
      return;
    }
    const path = url.pathname.slice('/api/v2'.length).replace(/\/+$/, '') || '/';
    const action = engine.actionOf(method, path, url.searchParams);
    const inst = instanceHeader ? instances.get(region)?.get(instanceHeader) : undefined;
    const agent = headers['user-agent'] ?? '';
    // at-events.md: initiator.host.address is not shown for calls over the private network.
    const address = network === 'private' ? '' : (req.socket.remoteAddress ?? '127.0.0.1');
    const ev: EventInfo = {
      action,
      requestData: {
        requestURI: `${url.pathname}${url.search}`,
        instanceID: instanceHeader ?? '',
        ...(headers['x-kms-key-ring'] ? { keyRingId: headers['x-kms-key-ring'] } : {}),
      },
      responseData: {},
    };
    let caller: Caller | undefined;
    let subType: string | undefined;
    const finish = (status: number, outBody: unknown, extraHeaders: Record<string, string>, failure?: string) => {
      sendJson(res, status, method === 'HEAD' ? undefined : outBody, { ...replyHeaders, ...extraHeaders });
      if (!inst && status !== 401) return; // no instance, no audit trail to write to
      const targetCrn = inst ? crnOf(region, inst.id, ev.keyId) : crnOf(region, instanceHeader ?? '');
      emit(
        buildEvent({
          nowMs: nowMs(),
          region,
          action: ev.action,
          status,
          ...(failure ? { failureReason: failure } : {}),
          correlationId,
          initiator: {
            iamId: caller?.iamId ?? 'unknown',
            name: caller?.name ?? 'unknown',
            ...(subType ? { subType } : {}),
            address,
            agent,
          },
          targetCrn,
          targetName: ev.keyName ?? 'Key Protect',
          ...(ev.alias ? { alias: ev.alias } : {}),
          logSourceCrn: crnOf(region, inst?.id ?? instanceHeader ?? ''),
          requestData: ev.requestData,
          responseData: ev.responseData,
        }),
      );
    };

    const auth = headers.authorization ?? '';
    const m = /^bearer\s+(\S+)$/i.exec(auth);
    if (!m) {
      const e = unauthorized();
      finish(e.status, e.toBody(), {}, 'missing bearer token');
      return;
    }
    try {
      const v = await verifier.verify(m[1]!);
      caller = { iamId: v.iamId, name: v.name };
      subType = v.subType;
    } catch (err) {
      logger.info('kp-emulator: rejected bearer token', { reason: (err as Error).message, region });
      const e = unauthorized();
      finish(e.status, e.toBody(), {}, 'invalid bearer token');
      return;
    }
    if (!instanceHeader) {
      const e = new KpError(400, 'BAD_HEADER_ERR', "The header 'Bluemix-Instance' must be provided (instance GUID)", {
        target: { type: 'header', name: 'Bluemix-Instance' },
        what: 'Request is invalid',
      });
      finish(e.status, e.toBody(), {}, e.message);
      return;
    }
    if (!inst) {
      const e =
        rules.unknownInstanceStatus === 404
          ? new KpError(404, 'INSTANCE_NOT_FOUND_ERR', `No Key Protect instance ${instanceHeader} in ${region}`, {
              what: 'Instance could not be found',
            })
          : unauthorized();
      finish(e.status, e.toBody(), {}, 'unknown instance');
      return;
    }
    if (network === 'public' && privateOnly(inst)) {
      // FAQs.md: a private-only instance answers public-network calls 401; provision.md: "accepts API requests from
      // only private endpoints".
      const e = unauthorized();
      finish(e.status, e.toBody(), {}, 'the instance policy allowedNetwork is private-only: use the private endpoint');
      return;
    }
    const subjects = [caller.iamId, caller.name];
    const instanceId = inst.id;
    try {
      const out = await engine.handle(
        {
          method,
          path,
          query: url.searchParams,
          headers,
          body,
          caller,
          instance: inst,
          authorize: (act, ring) => allows(grants, subjects, instanceId, act, ring),
        },
        ev,
      );
      finish(out.status, out.body, out.headers ?? {});
      if (MUTATING.has(method) && out.status < 300) scheduleSnapshot();
    } catch (err) {
      if (err instanceof KpError) {
        finish(err.status, err.toBody(), err.headers, `${err.code}: ${err.message}`);
        return;
      }
      logger.error('kp-emulator: internal error', { error: (err as Error).message, action });
      finish(
        500,
        errorBody(500, 'INTERNAL_SERVER_ERR', 'Internal error in the emulator', { what: 'Internal error' }),
        {},
        'internal',
      );
    }
  }

  // ─────────── start region servers: a public and a private endpoint each ───────────
  for (const region of opts.regions) {
    const sockets = new Set<Socket>();
    const server = makeRegionServer(region, sockets, 'public');
    const port = await listen(server, host, opts.ports?.[region] ?? 0);
    servers.set(region, { server, port, refused: false, sockets });
    const privateSockets = new Set<Socket>();
    const privateServer = makeRegionServer(region, privateSockets, 'private');
    const privatePort = await listen(privateServer, host, opts.privatePorts?.[region] ?? 0);
    servers.set(`${region}#private`, {
      server: privateServer,
      port: privatePort,
      refused: false,
      sockets: privateSockets,
    });
    regionInfo[region] = {
      region,
      url: `http://${host}:${port}`,
      privateUrl: `http://${host}:${privatePort}`,
      instances: [],
    };
  }

  // ─────────── snapshot restore, initial instances ───────────
  let restored = false;
  if (opts.snapshotFile) {
    const snap = await loadSnapshot(opts.snapshotFile, opts.snapshotKey, logger);
    if (snap && snap.accountId === accountId) {
      offsetMs = snap.offsetMs;
      for (const [region, map] of snap.instances) {
        if (!instances.has(region)) continue;
        for (const [id, st] of map) {
          instances.get(region)!.set(id, st);
          regionInfo[region]!.instances.push(id);
        }
      }
      restored = true;
      logger.info('kp-emulator: state restored from snapshot', { file: opts.snapshotFile });
    } else if (snap) {
      logger.warn('kp-emulator: snapshot belongs to another account id; ignored', { file: opts.snapshotFile });
    }
  }
  for (const region of opts.regions) {
    for (const id of opts.instanceIds?.[region] ?? []) {
      if (!instances.get(region)!.has(id.toLowerCase())) createInstance(region, id);
    }
    const want = opts.instancesPerRegion ?? 1;
    while (instances.get(region)!.size < want) createInstance(region);
  }
  if (!restored) scheduleSnapshot();
  const startInstances = new Map([...instances.entries()].map(([r, m]) => [r, [...m.keys()]]));

  // ─────────── admin server ───────────
  const emulator: KeyProtectEmulator = {
    regions: regionInfo,
    adminUrl: '',
    accountId,
    createInstance(region, instanceId, o) {
      const id = createInstance(region, instanceId, o);
      scheduleSnapshot();
      return id;
    },
    nowMs,
    advanceClock(ms) {
      if (!Number.isFinite(ms) || ms < 0)
        throw new Error('kp-emulator: advanceClock needs a non-negative number of ms');
      offsetMs += ms;
      expireDueKeys();
      scheduleSnapshot();
    },
    events(filter = {}) {
      return events
        .filter((e) => !filter.action || e.action === filter.action)
        .filter((e) => !filter.targetCrn || e.target.id === filter.targetCrn)
        .filter((e) => !filter.correlationId || e.correlationId === filter.correlationId)
        .map((e) => structuredClone(e));
    },
    async flushEvents() {
      await webhook?.flush();
    },
    setEventWebhook(url, headers) {
      void webhook?.drainAndClose(2000);
      webhook = url ? new WebhookSink({ url, ...(headers ? { headers } : {}), logger }) : undefined;
    },
    setFaults(target, f) {
      if (!instances.has(target.region)) throw new Error(`kp-emulator: unknown region ${target.region}`);
      const key = target.instanceId ? `${target.region}/${target.instanceId.toLowerCase()}` : target.region;
      faults.set(key, { ...f });
      buckets.delete(key);
      if (!target.instanceId && f.outage === 'refuse') refuse(target.region);
      else if (!target.instanceId) reopen(target.region);
    },
    clearFaults() {
      faults.clear();
      buckets.clear();
      for (const region of servers.keys()) reopen(region);
    },
    setRules(r) {
      rules = { ...rules, ...r };
    },
    rules: () => ({ ...rules }),
    crnOf,
    reset() {
      for (const [region, map] of instances) {
        map.clear();
        regionInfo[region]!.instances.length = 0;
        for (const id of startInstances.get(region) ?? []) createInstance(region, id);
      }
      events = [];
      restorePoints.clear();
      grants = opts.access ? checkGrants(opts.access) : undefined;
      emulator.clearFaults();
      rules = { ...initialRules };
      offsetMs = initialOffsetMs;
      scheduleSnapshot();
    },
    saveSnapshot: doSnapshot,
    setAccess(g) {
      grants = g === undefined ? undefined : checkGrants(g);
    },
    access: () => (grants ? grants.map((g) => ({ ...g, roles: [...g.roles] })) : undefined),
    createRestorePoint(region, instanceId) {
      const inst = instances.get(region)?.get(instanceId.toLowerCase());
      if (!inst) throw new Error(`kp-emulator: no instance ${instanceId} in region ${region}`);
      const id = randomUUID();
      restorePoints.set(id, { region, instanceId: inst.id, state: cloneInstance(inst) });
      logger.info('kp-emulator: restore point created', { region, instanceId: inst.id, snapshotId: id });
      return id;
    },
    restoreRestorePoint(snapshotId) {
      const point = restorePoints.get(snapshotId);
      if (!point) throw new Error(`kp-emulator: no restore point ${snapshotId}`);
      const map = instances.get(point.region);
      if (!map?.has(point.instanceId)) throw new Error(`kp-emulator: instance ${point.instanceId} no longer exists`);
      // A copy, so the same point can be restored again; import tokens do not survive a recovery.
      map.set(point.instanceId, cloneInstance(point.state));
      logger.info('kp-emulator: instance restored', { region: point.region, instanceId: point.instanceId, snapshotId });
      scheduleSnapshot();
    },
    expireDueKeys,
    async close() {
      clearInterval(expirySweep);
      if (snapshotTimer) {
        clearTimeout(snapshotTimer);
        snapshotTimer = undefined;
        await doSnapshot();
      }
      await snapshotWrite;
      await webhook?.drainAndClose(2000);
      const closing = [...servers.values()].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.refused) return resolve();
            s.server.close(() => resolve());
            s.server.closeAllConnections();
          }),
      );
      closing.push(
        new Promise<void>((resolve) => {
          admin.close(() => resolve());
          admin.closeAllConnections();
        }),
      );
      await Promise.all(closing);
    },
  };

  const admin = createServer((req, res) => {
    handleAdmin(emulator, req, res, { servers: regionInfo }).catch((err: unknown) => {
      sendJson(res, 400, { error: (err as Error).message });
    });
  });
  const adminPort = await listen(admin, host, opts.adminPort ?? 0);
  const expirySweep = setInterval(expireDueKeys, 1000);
  expirySweep.unref();
  emulator.adminUrl = `http://${host}:${adminPort}`;
  logger.info('kp-emulator: started', {
    regions: Object.fromEntries(Object.entries(regionInfo).map(([r, i]) => [r, i.url])),
    adminUrl: emulator.adminUrl,
  });
  return emulator;
}

/**
 * Admin routes (never under `/api/v2`, on their own server):
 * GET /__emulator/state · POST /__emulator/clock/advance {ms} · GET /__emulator/clock ·
 * POST /__emulator/faults {region, instanceId?, faults} · DELETE /__emulator/faults ·
 * GET|PUT /__emulator/rules · POST /__emulator/reset · POST /__emulator/instances {region, instanceId?} ·
 * GET /__emulator/events?action=&targetCrn=&correlationId= · GET|PUT /__emulator/access {grants} ·
 * POST /__emulator/snapshots {region, instanceId} → {snapshotId} · POST /__emulator/snapshots/{id}/restore → 204 ·
 * POST /__emulator/expire
 */
async function handleAdmin(
  kp: KeyProtectEmulator,
  req: IncomingMessage,
  res: ServerResponse,
  _ctx: { servers: Record<string, EmulatorRegion> },
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const method = req.method ?? 'GET';
  const raw = (await readBody(req)).toString('utf8');
  const body = (raw.trim() ? JSON.parse(raw) : {}) as Record<string, unknown>;
  const p = url.pathname.replace(/\/+$/, '');
  if (method === 'GET' && p === '/__emulator/state') {
    return sendJson(res, 200, { accountId: kp.accountId, nowMs: kp.nowMs(), regions: kp.regions, rules: kp.rules() });
  }
  if (method === 'GET' && p === '/__emulator/clock')
    return sendJson(res, 200, { nowMs: kp.nowMs(), now: new Date(kp.nowMs()).toISOString() });
  if (method === 'POST' && p === '/__emulator/clock/advance') {
    kp.advanceClock(Number(body.ms));
    return sendJson(res, 200, { nowMs: kp.nowMs(), now: new Date(kp.nowMs()).toISOString() });
  }
  if (method === 'POST' && p === '/__emulator/faults') {
    const problem = faultSpecProblem(body.faults);
    if (problem) return sendJson(res, 400, { error: `faults: ${problem}` });
    kp.setFaults(
      { region: String(body.region), ...(typeof body.instanceId === 'string' ? { instanceId: body.instanceId } : {}) },
      (body.faults ?? {}) as FaultSpec,
    );
    return sendJson(res, 204, undefined);
  }
  if (method === 'DELETE' && p === '/__emulator/faults') {
    kp.clearFaults();
    return sendJson(res, 204, undefined);
  }
  if (method === 'GET' && p === '/__emulator/rules') return sendJson(res, 200, kp.rules());
  if (method === 'PUT' && p === '/__emulator/rules') {
    kp.setRules(body as Partial<EmulatorRules>);
    return sendJson(res, 200, kp.rules());
  }
  if (method === 'POST' && p === '/__emulator/reset') {
    kp.reset();
    return sendJson(res, 204, undefined);
  }
  if (method === 'POST' && p === '/__emulator/instances') {
    const id = kp.createInstance(
      String(body.region),
      typeof body.instanceId === 'string' ? body.instanceId : undefined,
      typeof body.allowedNetwork === 'string' ? { allowedNetwork: body.allowedNetwork as AllowedNetwork } : {},
    );
    const r = kp.regions[String(body.region)];
    return sendJson(res, 201, { region: body.region, instanceId: id, url: r?.url, privateUrl: r?.privateUrl });
  }
  if (method === 'GET' && p === '/__emulator/access') return sendJson(res, 200, { grants: kp.access() ?? null });
  if (method === 'PUT' && p === '/__emulator/access') {
    kp.setAccess(body.grants === null || body.grants === undefined ? undefined : (body.grants as AccessGrant[]));
    return sendJson(res, 200, { grants: kp.access() ?? null });
  }
  if (method === 'POST' && p === '/__emulator/snapshots') {
    if (typeof body.region !== 'string' || typeof body.instanceId !== 'string') {
      return sendJson(res, 400, { error: 'region and instanceId are required' });
    }
    return sendJson(res, 201, { snapshotId: kp.createRestorePoint(body.region, body.instanceId) });
  }
  const restore = /^\/__emulator\/snapshots\/([^/]+)\/restore$/.exec(p);
  if (method === 'POST' && restore) {
    try {
      kp.restoreRestorePoint(decodeURIComponent(restore[1]!));
    } catch (err) {
      return sendJson(res, 404, { error: (err as Error).message });
    }
    return sendJson(res, 204, undefined);
  }
  if (method === 'POST' && p === '/__emulator/expire') return sendJson(res, 200, { expired: kp.expireDueKeys() });
  if (method === 'GET' && p === '/__emulator/events') {
    const q = url.searchParams;
    return sendJson(res, 200, {
      events: kp.events({
        ...(q.get('action') ? { action: q.get('action')! } : {}),
        ...(q.get('targetCrn') ? { targetCrn: q.get('targetCrn')! } : {}),
        ...(q.get('correlationId') ? { correlationId: q.get('correlationId')! } : {}),
      }),
    });
  }
  sendJson(res, 404, { error: `no admin route ${method} ${p}` });
}

const FAULT_NUMBERS = [
  'latencyMs',
  'latencyJitterMs',
  'roundTripMs',
  'roundTripJitterMs',
  'errorRate',
  'throttleRate',
  'retryAfterSeconds',
  'remaining',
] as const;

/** What is wrong with a fault spec sent to the admin API, or undefined when it can be applied. */
function faultSpecProblem(f: unknown): string | undefined {
  if (f === undefined) return undefined;
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return 'must be an object';
  const spec = f as Record<string, unknown>;
  for (const name of FAULT_NUMBERS) {
    const v = spec[name];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
      return `${name} must be a number ≥ 0`;
    }
  }
  for (const name of ['errorRate', 'throttleRate'] as const) {
    if (typeof spec[name] === 'number' && (spec[name] as number) > 1) return `${name} must be a probability in [0, 1]`;
  }
  return undefined;
}
