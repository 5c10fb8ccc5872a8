/**
 * A rotation worker in a child process (for SIGKILL crash tests). Connects to an already running emulator + store
 * (URLs from the environment), advances one run, and when the run has been persisted at step `LOCKSTEP_HANG_AT_STEP`
 * (after `LOCKSTEP_HANG_AFTER` persists at least) prints `HANGING <step>` and stops making progress (alive, on an
 * interval timer) until killed. The test bundles it with esbuild (test/integration/rotation/crash.test.ts).
 *
 * Env: LOCKSTEP_KP_ENDPOINTS (JSON region→url), LOCKSTEP_IAM_URL, LOCKSTEP_API_KEY, LOCKSTEP_ADMIN_URL,
 * LOCKSTEP_COUCH_URL, LOCKSTEP_DB_PREFIX, LOCKSTEP_RUN_ID, LOCKSTEP_HANG_AT_STEP, LOCKSTEP_HANG_AFTER.
 */
import { createRotationService } from '../../src/app/rotationService.js';
import { createJsonLogger, cryptoRandom } from '../../src/app/system.js';
import { emulatorClock, kpClientFromEnv, requiredEnv, storesFromEnv } from './childProcess.js';

const env = requiredEnv;

async function main(): Promise<void> {
  const clock = emulatorClock();
  await clock.sync();
  const logger = createJsonLogger({ level: 'info', write: (l) => process.stderr.write(`${l}\n`) });
  const kp = kpClientFromEnv({ random: cryptoRandom, clock, timeoutMs: 60_000 });
  const stores = await storesFromEnv();
  const hangAt = env('LOCKSTEP_HANG_AT_STEP');
  const hangAfter = Number(process.env.LOCKSTEP_HANG_AFTER ?? '1');
  let persists = 0;
  const service = createRotationService({
    kp,
    stores,
    clock,
    random: cryptoRandom,
    logger,
    afterPersist: async (run) => {
      persists += 1;
      if (run.step === hangAt && persists >= hangAfter) {
        process.stdout.write(`HANGING ${run.step}\n`);
        // Hang until SIGKILL. A pending promise alone does not keep Node alive (the child could exit 0 on its own
        // before the parent kills it): an interval does.
        setInterval(() => undefined, 60_000);
        await new Promise(() => undefined);
      }
    },
  });
  await service.advanceRun(env('LOCKSTEP_RUN_ID'), {
    deadlineAtMs: clock.nowMs() + 600_000,
    holder: `child-${process.pid}`,
  });
  process.stdout.write('FINISHED\n');
}

main().catch((err: unknown) => {
  process.stdout.write(`FAILED ${err instanceof Error ? err.message : 'unknown'}\n`);
  process.exit(1);
});
