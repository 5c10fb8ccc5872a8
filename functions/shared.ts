/**
 * Wiring shared by the three composition roots: configuration from the environment, adapters (Cloudant stores,
 * Key Protect client, notifier) and the rotation service, built once per container and reused across invocations.
 */
import type { DrillService, Notifier, RotationService, Stores } from '../src/app/index.js';
import {
  createDrillService,
  createJsonLogger,
  createRotationService,
  cryptoRandom,
  systemClock,
} from '../src/app/index.js';
import { withRequestRateBudget } from '../src/app/tick.js';
import type { CommonConfig, Env } from '../src/codeengine/index.js';
import {
  createEventNotificationsNotifier,
  createWebhookNotifier,
  EnvReader,
  maxExecutionTimeMsFromEnv,
  readCommonConfig,
} from '../src/codeengine/index.js';
import type { Logger } from '../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient, createSwitchoverProbe } from '../src/keyprotect/index.js';
import { createCloudantStores, storeConfigFromEnv } from '../src/store/index.js';

export const clock = systemClock;
export const random = cryptoRandom;

export interface Core {
  config: CommonConfig;
  logger: Logger;
  stores: Stores;
  service: RotationService;
  /** DR drills (operator route, scheduled drills in the tick). */
  drills: DrillService;
}

/** Logger for a function, at the configured level (before config is read: info). */
export function functionLogger(fn: string, env: Env = process.env): Logger {
  const level = env.LOCKSTEP_LOG_LEVEL;
  return createJsonLogger({
    level: level === 'debug' || level === 'warn' || level === 'error' ? level : 'info',
    base: { function: fn },
  });
}

/** What every function's `createCeMain` takes alike: its name, time limit, clock, randomness and logger. */
export function functionBasics(fn: string, env: Env = process.env) {
  return {
    functionName: fn,
    maxExecutionTimeMs: maxExecutionTimeMsFromEnv(env),
    clock,
    random,
    logger: functionLogger(fn, env),
  };
}

/**
 * Reads the configuration (plus `extra` readers, so every missing variable is reported at once) and builds the
 * adapters. @throws {AppError} CONFIG_INVALID listing what is missing
 */
export async function buildCore<T>(fn: string, env: Env, extra: (r: EnvReader) => T): Promise<Core & { extra: T }> {
  const r = new EnvReader(env);
  const config = readCommonConfig(r);
  const more = extra(r);
  const kpPerSecond = r.int('LOCKSTEP_KP_REQUESTS_PER_SECOND', 10, 1, 1_000);
  let storeConfig: ReturnType<typeof storeConfigFromEnv> | undefined;
  try {
    storeConfig = storeConfigFromEnv(env);
  } catch (err) {
    r.problems.push(err instanceof Error ? err.message : String(err));
  }
  r.done(fn);
  const logger = functionLogger(fn, env);
  const { auth: _auth, ...storeOpts } = storeConfig!;
  const stores = await createCloudantStores({ ...storeOpts, logger });
  const authenticator = authenticatorFromConfig(
    config.auth.kind === 'iam'
      ? { kind: 'iam', apiKey: config.auth.apiKey, iamUrl: config.iamUrl }
      : { kind: 'container', profileName: config.auth.profileName, iamUrl: config.iamUrl },
  );
  // Per-instance request-rate budget: every Key Protect call waits for a token of its instance's bucket.
  const kp = withRequestRateBudget(
    createKeyProtectClient({ endpoints: config.kpEndpoints, authenticator, random, clock, logger }),
    { perSecond: kpPerSecond, clock },
  );
  let notifier: Notifier | undefined;
  if (config.notify?.kind === 'webhook') {
    notifier = createWebhookNotifier({
      url: config.notify.url,
      clock,
      random,
      ...(config.notify.signingSecret ? { signingSecret: config.notify.signingSecret } : {}),
    });
  } else if (config.notify?.kind === 'event-notifications') {
    notifier = createEventNotificationsNotifier({
      url: config.notify.url,
      sourceId: config.notify.sourceId ?? '',
      clock,
      random,
      authorization: async () => {
        const req: { headers: Record<string, string> } = { headers: {} };
        await authenticator.authenticate(req);
        return req.headers.Authorization ?? '';
      },
    });
  }
  // the 1 h rule and the checkpoint key, shared by rotations and drills
  const tuning = {
    ...(config.rotationMinIntervalMs ? { rotationMinIntervalMs: config.rotationMinIntervalMs } : {}),
    ...(config.verifyIntervalMs !== undefined ? { verifyIntervalMs: config.verifyIntervalMs } : {}),
    ...(config.checkpointSigning ? { checkpointSigning: config.checkpointSigning } : {}),
  };
  const service = createRotationService({
    kp,
    stores,
    clock,
    random,
    logger,
    ...(notifier ? { notifier } : {}),
    config: tuning,
    // the next due time: the service's default (scheduling module, a malformed schedule never fails a release)
  });
  const drills = createDrillService({
    kp,
    stores,
    switchover: createSwitchoverProbe({ endpoints: config.kpEndpoints, authenticator }),
    endpoints: config.kpEndpoints,
    clock,
    random,
    logger,
    ...(notifier ? { notifier } : {}),
    config: tuning,
  });
  return { config, logger, stores, service, drills, extra: more };
}
