/**
 * A worker in a child process for the crash matrices (test/reliability/crash-matrix.test.ts: rotations;
 * crash-kinds.test.ts: create, adopt, add-region, catch-up). Unlike
 * test/support/rotationChild.ts it hangs after the k-th persisted step (whatever step that is), and it starts
 * before it is given work, so that the test can spawn the next worker while the current one runs:
 *
 * 1. connects to the running emulator + store (URLs from the environment), prints `READY`;
 * 2. reads one JSON line on stdin: a {@link CrashWorkerCommand} — a run to advance, or a group to create or adopt
 *    (the use case claims and starts the run in this worker);
 * 3. takes the emulator clock, advances the run with its own service (real randomness) — with `drive`, over the
 *    waits of the 1 h rule too, moving the emulator clock through its admin API — and right after persist #k
 *    (counted over the whole command) prints `HANGING <k> <step> <status>` and makes no further progress until it
 *    is killed (SIGKILL). If the run stops before persist #k it prints `FINISHED <persists> <status> <step>` and
 *    exits.
 *
 * Every random byte string of ≥ 16 bytes it generates (the material, canary DEKs) is written as hex to file
 * descriptor 3 when the parent opened one — a test-only side channel, so that the parent can search the worker's
 * stdout/stderr for them. Logs (JSON lines, debug level) go to stderr.
 *
 * Env: LOCKSTEP_KP_ENDPOINTS (JSON region→url), LOCKSTEP_IAM_URL, LOCKSTEP_API_KEY, LOCKSTEP_ADMIN_URL,
 * LOCKSTEP_COUCH_URL, LOCKSTEP_DB_PREFIX, LOCKSTEP_ROTATION_CONFIG (JSON, optional: Partial<RotationConfig>).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { fstatSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  type AdoptGroupInput,
  type CreateGroupInput,
  createJsonLogger,
  createRotationService,
  type RotationConfig,
} from '../../../src/app/index.js';
import { asGroupId, asInstanceId, asKeyId, asRegionId, type Random } from '../../../src/core/index.js';
import { emulatorClock, kpClientFromEnv, storesFromEnv } from '../../support/childProcess.js';

export interface CrashWorkerCommand {
  /** The run to advance (already claimed); optional when `create` / `adopt` starts it. */
  runId?: string;
  /** Hang right after this persisted step (1-based count of `afterPersist` calls over the whole command). */
  hangAfter: number;
  /** Create this group (the create run is claimed and advanced by this worker). */
  create?: CreateGroupInput;
  /** Adopt these keys (the adopt run is claimed and advanced by this worker). */
  adopt?: AdoptGroupInput;
  /**
   * Hang instead right after Key Protect answered this write (1-based count of key creations and rotations), before
   * the worker persisted what it got: the window in which a resumed worker must find what the dead one made.
   */
  hangAfterWrite?: number;
  /** Keep advancing over waits (moving the emulator clock) until the run ends; otherwise one `advanceRun`. */
  drive?: boolean;
}

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};

function hasFd3(): boolean {
  try {
    fstatSync(3);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const side = hasFd3();
  const random: Random = {
    bytes(n) {
      const b = randomBytes(n);
      if (side && n >= 16) writeSync(3, `${b.toString('hex')}\n`);
      return b;
    },
    uuid: () => randomUUID(),
  };
  // The emulator clock is the service clock; its offset is taken when the work arrives (the parent may have
  // advanced it while this worker waited).
  const clock = emulatorClock();
  const logger = createJsonLogger({ level: 'debug', clock, write: (l) => process.stderr.write(`${l}\n`) });
  const kp = kpClientFromEnv({
    random,
    clock,
    logger: logger.child({ component: 'kp' }),
    retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 200 },
    timeoutMs: 60_000,
  });
  const stores = await storesFromEnv(logger);
  const config = JSON.parse(process.env.LOCKSTEP_ROTATION_CONFIG ?? '{}') as Partial<RotationConfig>;
  // Warm-up while no work is assigned (the parent starts workers ahead): the IAM token, the SDKs' request paths
  // and the store client. Both reads miss (404) and change nothing.
  const [region] = Object.keys(JSON.parse(env('LOCKSTEP_KP_ENDPOINTS')) as Record<string, string>);
  await Promise.allSettled([
    kp.listVersions({
      region: asRegionId(region),
      instanceId: asInstanceId(randomUUID()),
      keyId: asKeyId(randomUUID()),
    }),
    stores.groups.find(asGroupId('crash-worker-warm-up')),
  ]);
  process.stdout.write('READY\n');

  const lines = createInterface({ input: process.stdin });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    lines.once('close', () => reject(new Error('stdin closed before a command arrived')));
  });
  lines.close();
  const cmd = JSON.parse(first) as CrashWorkerCommand;
  await clock.sync(); // now: the parent may have advanced the emulator clock while this worker waited

  let persists = 0;
  let writes = 0;
  /** Until SIGKILL: a timer keeps the process alive (a bare pending promise would let it exit). */
  const hang = () => new Promise<never>(() => setInterval(() => undefined, 60_000));
  const watched = new Set(['createImportedKey', 'createGeneratedRootKey', 'rotateWithMaterial']);
  const kpWatched = new Proxy(kp, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || !watched.has(prop) || typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        const out = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        writes += 1;
        if (writes === cmd.hangAfterWrite) {
          process.stdout.write(`HANGING ${writes} ${prop} answered\n`);
          await hang();
        }
        return out;
      };
    },
  });
  const service = createRotationService({
    kp: kpWatched,
    stores,
    clock,
    random,
    logger,
    config,
    afterPersist: async (run) => {
      persists += 1;
      if (persists === cmd.hangAfter) {
        process.stdout.write(`HANGING ${persists} ${run.step} ${run.status}\n`);
        await hang();
      }
    },
  });
  let runId = cmd.runId;
  const start = cmd.create ?? cmd.adopt;
  if (start) {
    // The use case claims, persists the run and advances it; a run it leaves unfinished (it throws) is driven below.
    const done = await (cmd.create ? service.createGroup(cmd.create) : service.adoptGroup(cmd.adopt!)).then(
      () => true,
      () => false,
    );
    const kind = cmd.create ? 'create' : 'adopt';
    runId ??= (await stores.runs.listByGroup(asGroupId(start.id), 100)).find((r) => r.kind === kind)?.id;
    if (!runId) throw new Error(`no ${kind} run of ${start.id}`);
    if (done) {
      const run = await service.getRun(runId);
      process.stdout.write(`FINISHED ${persists} ${run.status} ${run.step}\n`);
      process.exit(0);
    }
  }
  if (!runId) throw new Error('no run to advance');
  const adminUrl = env('LOCKSTEP_ADMIN_URL');
  let out = await service.advanceRun(runId, {
    deadlineAtMs: clock.nowMs() + 3_600_000,
    holder: `crash-worker-${process.pid}`,
  });
  for (let pass = 1; cmd.drive && pass < 40 && !['completed', 'failed', 'diverged'].includes(out.status); pass++) {
    // As the tests' driveRun: move the (shared) emulator clock to the run's next attempt, then advance again.
    const waitMs = Math.max(1_000, (out.nextAttemptAtMs ?? clock.nowMs() + 150_000) - clock.nowMs());
    await fetch(`${adminUrl}/__emulator/clock/advance`, { method: 'POST', body: JSON.stringify({ ms: waitMs }) });
    await clock.sync();
    out = await service.advanceRun(runId, {
      deadlineAtMs: clock.nowMs() + 3_600_000,
      holder: `crash-worker-${process.pid}-${pass}`,
    });
  }
  process.stdout.write(`FINISHED ${persists} ${out.status} ${out.step}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stdout.write(`FAILED ${err instanceof Error ? err.message : 'unknown'}\n`);
  process.exit(1);
});
