/**
 * The whole local stack for integration tests: local IAM + multi-region Key Protect emulator (real HTTP, driven by
 * the real Key Protect client over the IBM SDK), the embedded CouchDB-compatible server with the real Cloudant
 * store adapter, and rotation services wired over them. The service clock IS the emulator clock, so the 1 h rule
 * and lease expiry move together when a test calls `advance`.
 */
import { randomBytes } from 'node:crypto';
import type { KeyProtectPort, Notifier } from '../../src/app/ports.js';
import { createRotationService } from '../../src/app/rotationService.js';
import type { RotationConfig, RotationService } from '../../src/app/service.js';
import type { Clock, Group, InstanceId, Logger, RegionId } from '../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../src/keyprotect/index.js';
import { type CouchAccess, type EmbeddedCouch, startEmbeddedCouch } from '../../src/local/couch/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../src/local/kp-emulator/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { type CloudantStores, createCloudantStores } from '../../src/store/index.js';
import { type CapturedLogger, capturingLogger, type RecordingRandom, recordingRandom } from './rotationHarness.js';
import { testTokenKeyPairs } from './tokenKeys.js';

export interface StackClock extends Clock {
  advance(ms: number): void;
}

export interface LocalStack {
  stack: EmulatorStack;
  couch: EmbeddedCouch;
  stores: CloudantStores;
  kp: KeyProtectPort;
  clock: StackClock;
  random: RecordingRandom;
  log: CapturedLogger;
  notes: Array<{ type: string; subject: string; data: Record<string, unknown> }>;
  config: Partial<RotationConfig>;
  regions: string[];
  /** Instance GUID `i` of `region`. */
  instance(region: string, i?: number): InstanceId;
  /** A service over this stack (optionally with a crash hook, its own logger or a shorter deadline). */
  service(opts?: {
    afterPersist?: (run: RotationRun, step: string) => void | Promise<void>;
    logger?: Logger;
    config?: Partial<RotationConfig>;
    kp?: KeyProtectPort;
  }): RotationService;
  /** A Key Protect client over this stack with other endpoints (e.g. through a proxy) or a shorter timeout. */
  kpClient(opts?: { endpoints?: Record<string, string>; timeoutMs?: number }): KeyProtectPort;
  close(): Promise<void>;
}

export interface StartLocalStackOptions {
  regions?: string[];
  instancesPerRegion?: number;
  config?: Partial<RotationConfig>;
  /** Share a store across stacks (e.g. a child process): pass its access (URL + credentials) and prefix. */
  couch?: CouchAccess;
  dbPrefix?: string;
}

/** Starts IAM + emulator + embedded store and wires the real adapters. Close it in `afterAll`. */
export async function startLocalStack(opts: StartLocalStackOptions = {}): Promise<LocalStack> {
  const regions = opts.regions ?? ['us-south', 'us-east', 'eu-de'];
  const stack = await startEmulatorStack({
    regions,
    instancesPerRegion: opts.instancesPerRegion ?? 2,
    // RSA-4096 pairs made once per test run (each token still has its own nonce, so stale-token checks are
    // unchanged): generating a pair costs 2–13 s of CPU here, and a rotation of three members needs three tokens.
    tokenKeyPairs: testTokenKeyPairs(),
  });
  const couch = opts.couch ? undefined : await startEmbeddedCouch();
  const stores = await createCloudantStores({
    ...(opts.couch ?? (couch as EmbeddedCouch)).storeOptions,
    dbPrefix: opts.dbPrefix ?? `t${randomBytes(4).toString('hex')}-`,
  });
  await stores.ensureSetup();
  const clock: StackClock = { nowMs: () => stack.kp.nowMs(), advance: (ms) => stack.kp.advanceClock(ms) };
  const random = recordingRandom();
  const log = capturingLogger();
  const kpClient = (o: { endpoints?: Record<string, string>; timeoutMs?: number } = {}) =>
    createKeyProtectClient({
      endpoints: o.endpoints ?? Object.fromEntries(regions.map((r) => [r, stack.kp.regions[r]!.url])),
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: stack.iam.apiKeyFor('lockstep'),
        iamUrl: stack.iam.url,
      }),
      random,
      clock,
      logger: log.logger.child({ component: 'kp' }),
      retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 200 },
      timeoutMs: o.timeoutMs ?? 60_000,
    });
  const kp = kpClient();
  const notes: LocalStack['notes'] = [];
  const notifier: Notifier = {
    async publish(e) {
      notes.push(e);
    },
  };
  const config: Partial<RotationConfig> = { retryBaseMs: 60_000, retryMaxMs: 600_000, ...opts.config };
  return {
    stack,
    couch: couch as EmbeddedCouch,
    stores,
    kp,
    kpClient,
    clock,
    random,
    log,
    notes,
    config,
    regions,
    instance: (region, i = 0) => stack.kp.regions[region]!.instances[i] as InstanceId,
    service: (o = {}) =>
      createRotationService({
        kp: o.kp ?? kp,
        stores,
        clock,
        random,
        logger: o.logger ?? log.logger,
        notifier,
        config: { ...config, ...o.config },
        ...(o.afterPersist ? { afterPersist: o.afterPersist } : {}),
      }),
    async close() {
      await stack.close();
      await couch?.close();
    },
  };
}

/** Creates a group: primary in the first region, duplicates round-robin over the others (instance by index). */
export async function createStackGroup(s: LocalStack, id: string, duplicates: number): Promise<Group> {
  const others = s.regions.slice(1);
  const { group } = await s.service().createGroup({
    id,
    name: `group ${id}`,
    schedule: { intervalMs: 90 * 24 * 3_600_000 },
    primary: { region: s.regions[0] as RegionId, instanceId: s.instance(s.regions[0]!) },
    duplicates: Array.from({ length: duplicates }, (_, i) => {
      const region = others[i % others.length]!;
      return { region: region as RegionId, instanceId: s.instance(region, Math.floor(i / others.length)) };
    }),
    trigger: { kind: 'operator', by: 'integration-test' },
  });
  return group;
}

const HOUR = 3_600_000;

/** Advances a run to its end over real HTTP, moving the emulator clock over waits. */
export async function driveRun(
  s: LocalStack,
  service: RotationService,
  runId: string,
  maxPasses = 40,
): Promise<RotationRun> {
  for (let i = 0; i < maxPasses; i++) {
    const res = await service.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: `driver-${i}` });
    if (['completed', 'failed', 'diverged'].includes(res.status)) break;
    const next = res.nextAttemptAtMs ?? s.clock.nowMs() + 150_000;
    s.clock.advance(Math.max(1_000, next - s.clock.nowMs()));
  }
  return service.getRun(runId);
}
