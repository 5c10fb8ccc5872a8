/**
 * The deployed shape of lockstep on the local stand-ins, for the access and secrets scenarios: local IAM (started
 * with a signing key this file knows, so tests can mint tokens that carry a valid IAM signature but wrong claims),
 * the Key Protect emulator, the embedded store, and the three composition roots (`functions/rotate.ts`, `events.ts`,
 * `api.ts`) behind the local Code Engine function runner, configured through the environment exactly as Code Engine
 * would. A rotation service over the same stack (recording random, capturing logger, emulator clock) creates groups
 * and drives runs, like `test/support/localStack.ts` — which cannot take IAM options, hence this small variant.
 */
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from 'jose';
import { afterAll, beforeAll } from 'vitest';
import type { KeyProtectPort } from '../../../src/app/ports.js';
import { createRotationService } from '../../../src/app/rotationService.js';
import type { RotationConfig, RotationService } from '../../../src/app/service.js';
import { cronSubscriptionData } from '../../../src/codeengine/index.js';
import type { Group, InstanceId, Logger, RegionId } from '../../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../../src/keyprotect/index.js';
import { checkpointKeyPairFromSeed } from '../../../src/lineage/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../../src/local/couch/index.js';
import { functionEnv, loadFunctionMains } from '../../../src/local/dev/functions.js';
import { type FunctionRunner, startFunctionRunner } from '../../../src/local/function-runner/index.js';
import type { IamSigningKey } from '../../../src/local/iam/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { type CloudantStores, createCloudantStores } from '../../../src/store/index.js';
import {
  type CapturedLogger,
  capturingLogger,
  type RecordingRandom,
  recordingRandom,
} from '../../support/rotationHarness.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';

export const HOUR = 3_600_000;
/** Key Protect's one-rotation-per-hour rule, shortened on the emulator and in every service (as the dev stack does). */
export const MIN_ROTATION_INTERVAL_MS = 1_000;

export interface FunctionStack {
  emu: EmulatorStack;
  couch: EmbeddedCouch;
  stores: CloudantStores;
  kp: KeyProtectPort;
  clock: { nowMs(): number; advance(ms: number): void };
  random: RecordingRandom;
  log: CapturedLogger;
  /** JSON lines the functions wrote on stderr (captured, not printed). */
  functionLogs: string[];
  /** Every other line written on stderr meanwhile (printed and kept, so scans see them too). */
  otherStderr: string[];
  /** The IAM signing key (JWKS key `kid`): signs tokens with valid signatures and chosen claims. */
  signingKey: IamSigningKey;
  runner: FunctionRunner;
  /** Shared secrets of the `events` function. */
  eventsHmacSecret: string;
  eventsToken: string;
  /** The secret the runner's cron pings carry (`LOCKSTEP_CRON_SECRETS`). */
  cronSecret: string;
  /** Ed25519 checkpoint seed (a secret the scan looks for). */
  checkpointSeed: Buffer;
  checkpointPrivatePem: string;
  /** The environment the functions were given (values included: the scan looks for the secret ones). */
  env: Record<string, string>;
  regions: string[];
  instance(region: string, i?: number): InstanceId;
  iamId(name: string): string;
  service(opts?: {
    afterPersist?: (run: RotationRun, step: string) => void | Promise<void>;
    logger?: Logger;
    config?: Partial<RotationConfig>;
  }): RotationService;
  close(): Promise<void>;
}

export interface FunctionStackOptions {
  regions?: string[];
  /** Maps each emulator region URL to the URL lockstep uses (e.g. a recording proxy). */
  endpoint?: (region: string, url: string) => Promise<string>;
  /** Function log level (default debug: the most the functions ever write). */
  functionLogLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Extra environment for the functions (set before they load). */
  extraEnv?: (s: { iamId(name: string): string }) => Record<string, string>;
}

/** Starts everything on 127.0.0.1 (random ports). Close it in `afterAll`. */
export async function startFunctionStack(opts: FunctionStackOptions = {}): Promise<FunctionStack> {
  const regions = opts.regions ?? ['us-south', 'us-east', 'eu-de'];
  const pair = await generateKeyPair('RS256', { extractable: true });
  const signingKey: IamSigningKey = { ...pair, kid: `local-${randomBytes(6).toString('hex')}` };
  const emu = await startEmulatorStack({
    regions,
    instancesPerRegion: 1,
    tokenKeyPairs: testTokenKeyPairs(),
    rules: { rotationMinIntervalMs: MIN_ROTATION_INTERVAL_MS },
    iamOptions: { signingKey },
  });
  const closers: Array<() => Promise<void>> = [() => emu.close()];
  const functionLogs: string[] = [];
  const otherStderr: string[] = [];
  const realWrite = process.stderr.write.bind(process.stderr);
  let envKeys: string[] = [];
  const close = async () => {
    while (closers.length) await closers.pop()!().catch(() => undefined);
    process.stderr.write = realWrite;
    for (const k of envKeys) delete process.env[k];
  };
  try {
    const couch = await startEmbeddedCouch();
    closers.push(() => couch.close());
    const stores = await createCloudantStores({ ...couch.storeOptions });
    await stores.ensureSetup();
    const endpoints: Record<string, string> = {};
    for (const r of regions) {
      const url = emu.kp.regions[r]!.url;
      endpoints[r] = opts.endpoint ? await opts.endpoint(r, url) : url;
    }
    const clock = { nowMs: () => emu.kp.nowMs(), advance: (ms: number) => emu.kp.advanceClock(ms) };
    const random = recordingRandom();
    const log = capturingLogger();
    const lockstep = emu.iam.identities.find((i) => i.name === 'lockstep')!;
    const kp = createKeyProtectClient({
      endpoints,
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: emu.iam.apiKeyFor('lockstep'),
        iamUrl: emu.iam.url,
      }),
      random,
      clock,
      logger: log.logger.child({ component: 'kp' }),
      retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 200 },
      timeoutMs: 30_000,
    });
    const iamId = (name: string) => {
      const i = emu.iam.identities.find((x) => x.name === name);
      if (!i) throw new Error(`no identity ${name}`);
      return i.iamId;
    };

    // The functions, configured as Code Engine would configure them.
    const checkpointSeed = randomBytes(32);
    const cp = checkpointKeyPairFromSeed(checkpointSeed);
    const checkpointPrivatePem = cp.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    // the workers sign checkpoints with the key the API publishes
    const config: Partial<RotationConfig> = {
      retryBaseMs: 60_000,
      retryMaxMs: 600_000,
      rotationMinIntervalMs: MIN_ROTATION_INTERVAL_MS,
      checkpointSigning: { keyId: cp.keyId, privateKey: checkpointPrivatePem },
    };
    const eventsHmacSecret = randomBytes(32).toString('base64url');
    const eventsToken = randomBytes(24).toString('base64url');
    const cronSecret = randomBytes(24).toString('base64url');
    const devConfig = {
      iamUrl: emu.iam.url,
      cloudantUrl: couch.url,
      cloudantCredentials: couch.credentials,
      kpEndpoints: endpoints,
      lockstepApiKey: lockstep.apiKey,
      lockstepIamId: lockstep.iamId,
      roles: { [iamId('operator')]: 'operator' as const, [iamId('auditor')]: 'auditor' as const },
      checkpoint: {
        keyId: cp.keyId,
        privateKeyPem: checkpointPrivatePem,
        publicKeyPem: cp.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      },
      eventsToken,
      cronSecret,
      rotationMinIntervalMs: MIN_ROTATION_INTERVAL_MS,
      maxExecutionSeconds: 120,
      logLevel: opts.functionLogLevel ?? 'debug',
    };
    const env: Record<string, string> = {
      ...functionEnv(devConfig),
      LOCKSTEP_EVENTS_HMAC_SECRETS: `at-sender:${eventsHmacSecret}`,
      LOCKSTEP_EVENTS_WINDOW_SECONDS: '300',
      ...(opts.extraEnv?.({ iamId }) ?? {}),
    };
    envKeys = Object.keys(env).filter((k) => process.env[k] === undefined);
    Object.assign(process.env, env);
    // Function logs go to stderr (their default sink, as in Code Engine): keep them for the scans, print the rest.
    let pending = '';
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const other: string[] = [];
      for (const l of lines) (l.startsWith('{') ? functionLogs : other).push(l);
      otherStderr.push(...other);
      if (other.length) return (realWrite as (c: string, ...r: unknown[]) => boolean)(`${other.join('\n')}\n`, ...rest);
      const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    }) as typeof process.stderr.write;
    const mains = await loadFunctionMains(devConfig);
    const runner = await startFunctionRunner({
      startCron: false,
      functions: [
        {
          name: 'rotate',
          main: mains.rotate,
          schedules: [{ cron: '*/5 * * * *', data: cronSubscriptionData(cronSecret, { source: 'cron' }) }],
        },
        { name: 'events', main: mains.events },
        { name: 'api', main: mains.api },
      ],
    });
    closers.push(() => runner.close());

    return {
      emu,
      couch,
      stores,
      kp,
      clock,
      random,
      log,
      functionLogs,
      otherStderr,
      signingKey,
      runner,
      eventsHmacSecret,
      eventsToken,
      cronSecret,
      checkpointSeed,
      checkpointPrivatePem,
      env,
      regions,
      instance: (region, i = 0) => emu.kp.regions[region]!.instances[i] as InstanceId,
      iamId,
      service: (o = {}) =>
        createRotationService({
          kp,
          stores,
          clock,
          random,
          logger: o.logger ?? log.logger,
          config: { ...config, ...o.config },
          ...(o.afterPersist ? { afterPersist: o.afterPersist } : {}),
        }),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Starts a stack before the file's tests and closes it after them; the returned function gives the running stack. */
export function functionStackPerFile(opts: FunctionStackOptions = {}): () => FunctionStack {
  let stack: FunctionStack | undefined;
  beforeAll(async () => {
    stack = await startFunctionStack(opts);
  }, 120_000);
  afterAll(async () => {
    await stack?.close();
  });
  return () => {
    if (!stack) throw new Error('the function stack is not started (use it inside a test)');
    return stack;
  };
}

/** Creates a group: primary in the first region, one duplicate in each other region. */
export async function createGroupOn(s: FunctionStack, id: string): Promise<Group> {
  const { group } = await s.service().createGroup({
    id,
    name: `group ${id}`,
    schedule: { intervalMs: 90 * 24 * HOUR },
    primary: { region: s.regions[0] as RegionId, instanceId: s.instance(s.regions[0]!) },
    duplicates: s.regions.slice(1).map((r) => ({ region: r as RegionId, instanceId: s.instance(r) })),
    trigger: { kind: 'operator', by: 'reliability-test' },
  });
  return group;
}

/** Advances a run to its end, moving the emulator clock over waits (as `driveRun` of localStack). */
export async function driveToEnd(s: FunctionStack, service: RotationService, runId: string): Promise<RotationRun> {
  for (let i = 0; i < 40; i++) {
    const res = await service.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: `driver-${i}` });
    if (['completed', 'failed', 'diverged'].includes(res.status)) break;
    const next = res.nextAttemptAtMs ?? s.clock.nowMs() + 150_000;
    s.clock.advance(Math.max(1_000, next - s.clock.nowMs()));
  }
  return service.getRun(runId);
}
