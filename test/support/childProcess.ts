/**
 * What the worker child processes of the tests share (test/support/rotationChild.ts, the crash matrix's and the
 * concurrency scenario's workers): the environment that points a child at a running local stack, and the pieces a
 * child builds from it — a clock that follows the emulator's, the Key Protect client over IAM, the Cloudant stores.
 * Children are bundled with esbuild: this module imports nothing from vitest and only types from localStack.
 */
import { BasicAuthenticator } from 'ibm-cloud-sdk-core';
import type { Clock, Logger, Random } from '../../src/core/index.js';
import {
  authenticatorFromConfig,
  createKeyProtectClient,
  type KeyProtectClientOptions,
} from '../../src/keyprotect/index.js';
import { createCloudantStores } from '../../src/store/index.js';
import type { LocalStack } from './localStack.js';

/** The environment of a child that works on `s` (its emulator regions, IAM, admin API and store). */
export function childEnv(s: LocalStack): Record<string, string> {
  return {
    LOCKSTEP_KP_ENDPOINTS: JSON.stringify(Object.fromEntries(s.regions.map((r) => [r, s.stack.kp.regions[r]!.url]))),
    LOCKSTEP_IAM_URL: s.stack.iam.url,
    LOCKSTEP_API_KEY: s.stack.iam.apiKeyFor('lockstep'),
    LOCKSTEP_ADMIN_URL: s.stack.kp.adminUrl,
    LOCKSTEP_COUCH_URL: s.couch.url,
    LOCKSTEP_COUCH_USERNAME: s.couch.credentials.username,
    LOCKSTEP_COUCH_PASSWORD: s.couch.credentials.password,
    LOCKSTEP_DB_PREFIX: s.stores.databases.groups.replace(/groups$/, ''),
  };
}

/** A variable the parent must have set (see {@link childEnv}). */
export function requiredEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`missing ${name}`);
  return v;
}

/**
 * A clock that follows the emulator's (the service clock of the tests): the wall clock plus an offset that `sync()`
 * reads from the emulator's admin API (at the midpoint of the request). Call `sync()` before first use.
 */
export function emulatorClock(adminUrl = requiredEnv('LOCKSTEP_ADMIN_URL')): Clock & {
  sync(): Promise<void>;
  readonly syncs: number;
} {
  let offset = 0;
  let syncs = 0;
  return {
    nowMs: () => Date.now() + offset,
    get syncs() {
      return syncs;
    },
    async sync() {
      const t0 = Date.now();
      const res = await fetch(`${adminUrl}/__emulator/clock`);
      const { nowMs } = (await res.json()) as { nowMs: number };
      offset = nowMs - Math.round((t0 + Date.now()) / 2);
      syncs += 1;
    },
  };
}

/** The Key Protect client of a child: every emulated region, authenticated with lockstep's API key at the local IAM. */
export function kpClientFromEnv(
  opts: { clock: Clock; random: Random; logger?: Logger } & Pick<KeyProtectClientOptions, 'retry' | 'timeoutMs'>,
) {
  return createKeyProtectClient({
    endpoints: JSON.parse(requiredEnv('LOCKSTEP_KP_ENDPOINTS')) as Record<string, string>,
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: requiredEnv('LOCKSTEP_API_KEY'),
      iamUrl: requiredEnv('LOCKSTEP_IAM_URL'),
    }),
    ...opts,
  });
}

/** The stores of a child: the parent's store and database prefix. */
export function storesFromEnv(logger?: Logger) {
  return createCloudantStores({
    url: requiredEnv('LOCKSTEP_COUCH_URL'),
    authenticator: new BasicAuthenticator({
      username: requiredEnv('LOCKSTEP_COUCH_USERNAME'),
      password: requiredEnv('LOCKSTEP_COUCH_PASSWORD'),
    }),
    dbPrefix: requiredEnv('LOCKSTEP_DB_PREFIX'),
    ...(logger ? { logger } : {}),
  });
}

/** `p`, or a rejection naming the phase once `ms` passed: each phase of a child's life gets its own bound. */
export async function phase<T>(name: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`phase "${name}" took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
