/**
 * Local IAM: a real HTTP server that stands in for `iam.cloud.ibm.com`.
 *
 * - `POST /identity/token` (form body) with `grant_type=urn:ibm:params:oauth:grant-type:apikey` + `apikey`, or
 *   `grant_type=urn:ibm:params:oauth:grant-type:cr-token` + `cr_token` + `profile_name`/`profile_id` (Code Engine
 *   trusted profile), answers `{access_token, refresh_token, token_type, expires_in, expiration}` like IAM; the access
 *   token is an RS256 JWT with IAM's claims, so ibm-cloud-sdk-core's `IamAuthenticator` / `ContainerAuthenticator`
 *   work unchanged when given `url: iam.url`.
 * - `GET /identity/keys` serves the JWKS (the token header carries its `kid`).
 * - Errors use IAM's body: `{errorCode, errorMessage, context}` (unknown API key → 400 `BXNIM0415E`).
 *
 * Token times (`iat`/`exp`) follow the injected `clock` (default: the wall clock), because the SDK's authenticator
 * schedules refreshes from the wall clock.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type CryptoKey,
  createRemoteJWKSet,
  exportJWK,
  generateKeyPair,
  type KeyObject as JoseKeyObject,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import type { Clock, Logger } from '../../core/index.js';
import { silentLogger } from '../../core/index.js';

/** One principal the local IAM knows. `profile` identities are trusted profiles (reached with a CR token). */
export interface IdentitySpec {
  name: string;
  apiKey: string;
  iamId: string;
  kind: 'user' | 'serviceid' | 'profile';
}

/** A private/public RS256 key pair for signing tokens (e.g. to keep tokens valid across restarts). */
export interface IamSigningKey {
  privateKey: CryptoKey | JoseKeyObject;
  publicKey: CryptoKey | JoseKeyObject;
  kid: string;
}

export interface LocalIam {
  /** Base URL (pass it as `url` to `IamAuthenticator`). */
  url: string;
  /** `iss` of every token: `<url>/identity`. */
  issuer: string;
  /** `<url>/identity/keys`. */
  jwksUrl: string;
  /** IAM account id (`account.bss`). */
  accountId: string;
  /** The compute-resource token accepted by the `cr-token` grant. */
  crToken: string;
  identities: IdentitySpec[];
  /** The API key of identity `name`. @throws {Error} when unknown */
  apiKeyFor(name: string): string;
  /** @internal A signed access token for identity `name`, for tests (negative `expiresInSeconds` gives an expired one). */
  issueToken(name: string, opts?: { expiresInSeconds?: number }): Promise<string>;
  close(): Promise<void>;
}

export interface StartLocalIamOptions {
  host?: string;
  port?: number;
  identities?: IdentitySpec[];
  /** Access token lifetime; default 3600 s (as IAM). */
  tokenTtlSeconds?: number;
  clock?: Clock;
  signingKey?: IamSigningKey;
  accountId?: string;
  /** Accepted `cr_token`; random by default. */
  crToken?: string;
  logger?: Logger;
}

const GRANT_APIKEY = 'urn:ibm:params:oauth:grant-type:apikey';
const GRANT_CR_TOKEN = 'urn:ibm:params:oauth:grant-type:cr-token';
const GRANT_REFRESH = 'refresh_token';

const randomApiKey = () => randomBytes(30).toString('base64url');
const randomHex = (n: number) => randomBytes(n).toString('hex');

/**
 * The default principals: `operator` (service id), `auditor` (user), `lockstep` (the orchestrator's service id),
 * `outsider` (valid, no lockstep role) and `lockstep-profile` (a trusted profile for the `cr-token` grant).
 * API keys are random per call.
 */
export function defaultIdentities(): IdentitySpec[] {
  return [
    { name: 'operator', apiKey: randomApiKey(), iamId: `iam-ServiceId-${randomUUID()}`, kind: 'serviceid' },
    { name: 'auditor', apiKey: randomApiKey(), iamId: `IBMid-${randomHex(5).toUpperCase()}`, kind: 'user' },
    { name: 'lockstep', apiKey: randomApiKey(), iamId: `iam-ServiceId-${randomUUID()}`, kind: 'serviceid' },
    { name: 'outsider', apiKey: randomApiKey(), iamId: `iam-ServiceId-${randomUUID()}`, kind: 'serviceid' },
    { name: 'lockstep-profile', apiKey: randomApiKey(), iamId: `iam-Profile-${randomUUID()}`, kind: 'profile' },
  ];
}

const wallClock: Clock = { nowMs: () => Date.now() };

/**
 * Starts the local IAM on `host:port` (default 127.0.0.1, a random free port).
 * @example
 * const iam = await startLocalIam();
 * const auth = new IamAuthenticator({ apikey: iam.apiKeyFor('operator'), url: iam.url });
 */
export async function startLocalIam(opts: StartLocalIamOptions = {}): Promise<LocalIam> {
  const host = opts.host ?? '127.0.0.1';
  const clock = opts.clock ?? wallClock;
  const logger = opts.logger ?? silentLogger;
  const ttlSeconds = opts.tokenTtlSeconds ?? 3600;
  const identities = opts.identities ?? defaultIdentities();
  const accountId = opts.accountId ?? randomHex(16);
  const crToken = opts.crToken ?? randomBytes(24).toString('base64url');
  const signing: IamSigningKey = opts.signingKey ?? {
    ...(await generateKeyPair('RS256', { extractable: true })),
    kid: `local-${randomHex(6)}`,
  };
  const publicJwk: JWK = { ...(await exportJWK(signing.publicKey)), kid: signing.kid, alg: 'RS256', use: 'sig' };
  const refreshTokens = new Map<string, string>(); // refresh token -> identity name

  let url = '';
  let issuer = '';

  const byName = (name: string) => identities.find((i) => i.name === name);

  async function mint(
    identity: IdentitySpec,
    grantType: string,
    lifetimeSeconds = ttlSeconds,
  ): Promise<{ token: string; iat: number; exp: number }> {
    const iat = Math.floor(clock.nowMs() / 1000);
    const exp = iat + lifetimeSeconds;
    const id = identity.iamId;
    const sub =
      identity.kind === 'serviceid'
        ? id.replace(/^iam-/, '')
        : identity.kind === 'profile'
          ? id.replace(/^iam-/, '')
          : `${identity.name}@example.com`;
    const claims: JWTPayload & Record<string, unknown> = {
      iam_id: id,
      id,
      realmid: identity.kind === 'user' ? 'IBMid' : 'iam',
      jti: randomUUID(),
      identifier: identity.kind === 'user' ? identity.iamId.replace(/^IBMid-/, '') : sub,
      name: identity.name,
      sub,
      sub_type: identity.kind === 'user' ? 'User' : identity.kind === 'profile' ? 'Profile' : 'ServiceId',
      authn: { sub, iam_id: id, name: identity.name },
      account: { valid: true, bss: accountId, frozen: true },
      grant_type: grantType,
      scope: 'ibm openid',
      client_id: 'default',
      acr: 1,
      amr: identity.kind === 'profile' ? ['cr-token'] : ['pwd'],
    };
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: signing.kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(signing.privateKey);
    return { token, iat, exp };
  }

  function iamError(res: ServerResponse, status: number, errorCode: string, errorMessage: string, requestUrl: string) {
    const body = {
      errorCode,
      errorMessage,
      context: {
        requestId: randomUUID(),
        requestType: 'incoming.Identity_Token',
        userAgent: 'local-iam',
        url: requestUrl,
        instanceId: 'local-iam-0',
        threadId: '1',
        host: 'localhost',
        startTime: new Date(clock.nowMs()).toUTCString(),
        endTime: new Date(clock.nowMs()).toUTCString(),
        elapsedTime: '0',
        locale: 'en_US',
        clusterName: 'local',
      },
    };
    send(res, status, body);
  }

  async function handleToken(req: IncomingMessage, res: ServerResponse, raw: string) {
    const ct = String(req.headers['content-type'] ?? '');
    let form: Record<string, string>;
    if (ct.includes('json')) {
      try {
        form = Object.fromEntries(
          Object.entries(JSON.parse(raw) as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
        );
      } catch {
        return iamError(res, 400, 'BXNIM0109E', 'Property missing or empty.', url);
      }
    } else {
      form = Object.fromEntries(new URLSearchParams(raw));
    }
    const grant = form.grant_type;
    let identity: IdentitySpec | undefined;
    if (grant === GRANT_APIKEY) {
      if (!form.apikey) return iamError(res, 400, 'BXNIM0109E', "Property 'apikey' missing or empty.", url);
      identity = identities.find((i) => i.apiKey === form.apikey);
      if (!identity) {
        logger.info('iam: rejected unknown API key');
        return iamError(res, 400, 'BXNIM0415E', 'Provided API key could not be found.', url);
      }
    } else if (grant === GRANT_CR_TOKEN) {
      if (!form.cr_token || form.cr_token !== crToken) {
        return iamError(res, 400, 'BXNIM0438E', 'The compute resource token could not be validated.', url);
      }
      identity = identities.find(
        (i) =>
          i.kind === 'profile' &&
          ((form.profile_name !== undefined && i.name === form.profile_name) ||
            (form.profile_id !== undefined && i.iamId === form.profile_id) ||
            form.profile_crn?.endsWith(i.iamId)),
      );
      if (!identity) {
        return iamError(res, 400, 'BXNIM0447E', 'The trusted profile could not be found or is not linked.', url);
      }
    } else if (grant === GRANT_REFRESH) {
      const name = form.refresh_token ? refreshTokens.get(form.refresh_token) : undefined;
      identity = name ? byName(name) : undefined;
      if (!identity) return iamError(res, 400, 'BXNIM0407E', 'Provided refresh token is invalid.', url);
    } else {
      return iamError(res, 400, 'BXNIM0103E', `Unsupported grant type '${grant ?? ''}'.`, url);
    }
    const { token, exp } = await mint(identity, grant);
    const refresh = randomBytes(32).toString('base64url');
    refreshTokens.set(refresh, identity.name);
    logger.debug('iam: token issued', { identity: identity.name, grant });
    send(res, 200, {
      access_token: token,
      refresh_token: refresh,
      ims_user_id: 0,
      token_type: 'Bearer',
      expires_in: ttlSeconds,
      expiration: exp,
      scope: 'ibm openid',
    });
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'POST' && (path === '/identity/token' || path === '/oidc/token')) {
        handleToken(req, res, raw).catch((err: unknown) => {
          logger.error('iam: token request failed', { error: err });
          if (!res.headersSent) iamError(res, 500, 'BXNIM0500E', 'Internal error.', url);
        });
        return;
      }
      if (req.method === 'GET' && (path === '/identity/keys' || path === '/oidc/keys')) {
        return send(res, 200, { keys: [publicJwk] });
      }
      if (req.method === 'GET' && path === '/identity/.well-known/openid-configuration') {
        return send(res, 200, {
          issuer,
          token_endpoint: `${url}/identity/token`,
          jwks_uri: `${url}/identity/keys`,
          grant_types_supported: [GRANT_APIKEY, GRANT_CR_TOKEN, GRANT_REFRESH],
          id_token_signing_alg_values_supported: ['RS256'],
        });
      }
      send(res, 404, { errorCode: 'BXNIM0404E', errorMessage: `No route for ${req.method} ${path}` });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  url = `http://${host}:${port}`;
  issuer = `${url}/identity`;

  return {
    url,
    issuer,
    jwksUrl: `${url}/identity/keys`,
    accountId,
    crToken,
    identities,
    apiKeyFor(name) {
      const i = byName(name);
      if (!i) throw new Error(`local IAM: no identity named ${name}`);
      return i.apiKey;
    },
    async issueToken(name, o = {}) {
      const i = byName(name);
      if (!i) throw new Error(`local IAM: no identity named ${name}`);
      return (await mint(i, GRANT_APIKEY, o.expiresInSeconds ?? ttlSeconds)).token;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The claims lockstep and the emulator read from a verified IAM access token. */
export interface VerifiedIamToken {
  iamId: string;
  name: string;
  sub: string;
  accountId?: string;
  subType?: string;
  claims: JWTPayload & Record<string, unknown>;
}

export interface IamTokenVerifier {
  /** Verifies signature (JWKS, RS256 only), issuer and expiry. @throws {Error} when the token is not acceptable */
  verify(token: string): Promise<VerifiedIamToken>;
}

/**
 * A bearer-token verifier against an IAM JWKS URL (`createRemoteJWKSet`): RS256 only (so `alg: none` and HMAC
 * tokens fail), issuer must match, `exp` checked against `clock` (default the wall clock).
 */
export function createIamTokenVerifier(opts: { jwksUrl: string; issuer: string; clock?: Clock }): IamTokenVerifier {
  const jwks = createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: 1000, timeoutDuration: 5000 });
  const clock = opts.clock;
  return {
    async verify(token) {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: opts.issuer,
        algorithms: ['RS256'],
        requiredClaims: ['exp', 'iat'],
        ...(clock ? { currentDate: new Date(clock.nowMs()) } : {}),
      });
      const p = payload as JWTPayload & Record<string, unknown>;
      const iamId = typeof p.iam_id === 'string' ? p.iam_id : typeof p.sub === 'string' ? p.sub : '';
      if (!iamId) throw new Error('token has no iam_id');
      const account = p.account as { bss?: unknown } | undefined;
      return {
        iamId,
        name: typeof p.name === 'string' ? p.name : iamId,
        sub: typeof p.sub === 'string' ? p.sub : iamId,
        ...(typeof account?.bss === 'string' ? { accountId: account.bss } : {}),
        ...(typeof p.sub_type === 'string' ? { subType: p.sub_type } : {}),
        claims: p,
      };
    },
  };
}
