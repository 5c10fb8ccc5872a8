import type { Authenticator } from 'ibm-cloud-sdk-core';
import { BasicAuthenticator, ContainerAuthenticator, IamAuthenticator } from 'ibm-cloud-sdk-core';
import { AppError } from '../core/index.js';

export interface StoreConfig {
  url: string;
  authenticator: Authenticator;
  dbPrefix?: string;
  timeoutMs?: number;
  /** How the client authenticates, for logs: never the credential itself. */
  auth: 'iam-apikey' | 'trusted-profile' | 'basic';
}

/** Parses and checks a Cloudant URL. @throws {AppError} CONFIG_INVALID */
export function parseStoreUrl(raw: string | undefined): URL {
  if (!raw) {
    throw new AppError(
      'CONFIG_INVALID',
      'CLOUDANT_URL is not set: give the Cloudant instance URL (or the embedded server URL printed by `lockstep dev`)',
      { details: { field: 'CLOUDANT_URL' } },
    );
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new AppError('CONFIG_INVALID', 'CLOUDANT_URL is not a URL', { details: { field: 'CLOUDANT_URL' } });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new AppError('CONFIG_INVALID', 'CLOUDANT_URL must be http(s)', { details: { field: 'CLOUDANT_URL' } });
  }
  if (u.username || u.password) {
    throw new AppError(
      'CONFIG_INVALID',
      'CLOUDANT_URL must not contain credentials; use CLOUDANT_APIKEY, a trusted profile or CLOUDANT_USERNAME/CLOUDANT_PASSWORD',
      { details: { field: 'CLOUDANT_URL' } },
    );
  }
  return u;
}

/**
 * Store configuration from the environment:
 * - `CLOUDANT_URL` (required);
 * - `CLOUDANT_APIKEY` → IAM API key; or `CLOUDANT_TRUSTED_PROFILE` (profile id `Profile-…` or name) → Code Engine
 *   trusted profile (compute resource token); `IAM_URL` overrides the IAM endpoint for either;
 * - `CLOUDANT_USERNAME` + `CLOUDANT_PASSWORD` → basic auth (a plain CouchDB, or the embedded server, which requires
 *   credentials too: no store is used without them);
 * - optional `CLOUDANT_DB_PREFIX`, `CLOUDANT_TIMEOUT_MS`.
 * @throws {AppError} CONFIG_INVALID saying which variable to set
 */
export function storeConfigFromEnv(env: Record<string, string | undefined> = process.env): StoreConfig {
  const u = parseStoreUrl(env.CLOUDANT_URL);
  const url = u.toString().replace(/\/$/, '');
  const iamUrl = env.IAM_URL || undefined;
  const extra: Pick<StoreConfig, 'dbPrefix' | 'timeoutMs'> = {};
  if (env.CLOUDANT_DB_PREFIX) extra.dbPrefix = env.CLOUDANT_DB_PREFIX;
  if (env.CLOUDANT_TIMEOUT_MS) {
    const t = Number(env.CLOUDANT_TIMEOUT_MS);
    if (!Number.isInteger(t) || t < 100 || t > 300_000) {
      throw new AppError('CONFIG_INVALID', 'CLOUDANT_TIMEOUT_MS must be an integer from 100 to 300000', {
        details: { field: 'CLOUDANT_TIMEOUT_MS' },
      });
    }
    extra.timeoutMs = t;
  }
  if (env.CLOUDANT_APIKEY) {
    return {
      url,
      auth: 'iam-apikey',
      authenticator: new IamAuthenticator({ apikey: env.CLOUDANT_APIKEY, ...(iamUrl ? { url: iamUrl } : {}) }),
      ...extra,
    };
  }
  if (env.CLOUDANT_TRUSTED_PROFILE) {
    const p = env.CLOUDANT_TRUSTED_PROFILE;
    return {
      url,
      auth: 'trusted-profile',
      authenticator: new ContainerAuthenticator({
        ...(p.startsWith('Profile-') ? { iamProfileId: p } : { iamProfileName: p }),
        ...(iamUrl ? { url: iamUrl } : {}),
      }),
      ...extra,
    };
  }
  if (env.CLOUDANT_USERNAME && env.CLOUDANT_PASSWORD) {
    return {
      url,
      auth: 'basic',
      authenticator: new BasicAuthenticator({ username: env.CLOUDANT_USERNAME, password: env.CLOUDANT_PASSWORD }),
      ...extra,
    };
  }
  throw new AppError(
    'CONFIG_INVALID',
    'No Cloudant credentials: set CLOUDANT_APIKEY or CLOUDANT_TRUSTED_PROFILE (IAM), or CLOUDANT_USERNAME and CLOUDANT_PASSWORD (also for the embedded server of `lockstep dev`)',
    { details: { field: 'CLOUDANT_APIKEY' } },
  );
}
