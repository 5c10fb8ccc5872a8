/**
 * The three functions of `functions/*.ts` (the same composition roots Code Engine runs), configured through the
 * environment variables they read in Code Engine, for the local runner to serve.
 */
import type { CeParams, CeResult } from '../../codeengine/index.js';

/** What the functions need to reach the local stand-ins. */
export interface DevFunctionConfig {
  iamUrl: string;
  cloudantUrl: string;
  /** The embedded store's admin credentials (it requires them: no admin party). */
  cloudantCredentials: { username: string; password: string };
  kpEndpoints: Record<string, string>;
  /** API key of lockstep's own service id (Key Protect and the store act as it). */
  lockstepApiKey: string;
  lockstepIamId: string;
  roles: Record<string, 'operator' | 'auditor'>;
  checkpoint: { keyId: string; privateKeyPem: string; publicKeyPem: string };
  eventsToken: string;
  /** The secret the runner's cron pings carry in their data (`LOCKSTEP_CRON_SECRETS`). */
  cronSecret: string;
  rotationMinIntervalMs: number;
  maxExecutionSeconds: number;
  logLevel: string;
  /** The page's API-key login (the local stack's own IAM only; `lockstep dev` turns it on). */
  uiApiKeyLogin?: boolean;
}

export type CeMainFn = (params: CeParams) => Promise<CeResult>;

/** The environment the functions read (names as in serverless.yml and src/codeengine/env.ts). */
export function functionEnv(c: DevFunctionConfig): Record<string, string> {
  return {
    IAM_URL: c.iamUrl,
    LOCKSTEP_IAM_URL: c.iamUrl,
    CLOUDANT_URL: c.cloudantUrl,
    CLOUDANT_USERNAME: c.cloudantCredentials.username,
    CLOUDANT_PASSWORD: c.cloudantCredentials.password,
    LOCKSTEP_API_KEY: c.lockstepApiKey,
    LOCKSTEP_KP_ENDPOINTS: JSON.stringify(c.kpEndpoints),
    LOCKSTEP_OWN_IAM_IDS: c.lockstepIamId,
    LOCKSTEP_API_ROLES: Object.entries(c.roles)
      .map(([id, role]) => `${id}=${role}`)
      .join(','),
    LOCKSTEP_CHECKPOINT_KEY: c.checkpoint.privateKeyPem,
    LOCKSTEP_CHECKPOINT_KEY_ID: c.checkpoint.keyId,
    LOCKSTEP_CHECKPOINT_PUBLIC_KEYS: JSON.stringify({ [c.checkpoint.keyId]: c.checkpoint.publicKeyPem }),
    LOCKSTEP_EVENTS_TOKENS: `kp-emulator:${c.eventsToken}`,
    LOCKSTEP_CRON_SECRETS: `local-cron:${c.cronSecret}`,
    LOCKSTEP_ROTATION_MIN_INTERVAL_MS: String(c.rotationMinIntervalMs),
    LOCKSTEP_MAX_EXECUTION_SECONDS: String(c.maxExecutionSeconds),
    LOCKSTEP_LOG_LEVEL: c.logLevel,
    ...(c.uiApiKeyLogin ? { LOCKSTEP_DEV_UI_API_KEY_LOGIN: 'true' } : {}),
  };
}

/**
 * Sets the functions' environment in this process and loads `functions/rotate.ts`, `events.ts` and `api.ts` (they
 * read part of it at import time, so this must run before anything imports them).
 */
export async function loadFunctionMains(
  c: DevFunctionConfig,
): Promise<{ rotate: CeMainFn; events: CeMainFn; api: CeMainFn }> {
  Object.assign(process.env, functionEnv(c));
  const [rotate, events, api] = await Promise.all([
    import('../../../functions/rotate.js'),
    import('../../../functions/events.js'),
    import('../../../functions/api.js'),
  ]);
  return { rotate: rotate.main, events: events.main, api: api.main };
}
