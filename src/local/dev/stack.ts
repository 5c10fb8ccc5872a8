import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { MEMBER_ACTIONS } from '../../app/events.js';
import type { AdoptGroupInput, KeyProtectPort, RotationService } from '../../app/index.js';
import { createRotationService, cryptoRandom, systemClock } from '../../app/index.js';
import { cronSubscriptionData } from '../../codeengine/index.js';
import type { InstanceId, Logger, RegionId } from '../../core/index.js';
import { asGroupId, hasCode, isAppError, KeyMaterial, parseKeyCrn, Sensitive, silentLogger } from '../../core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../keyprotect/index.js';
import { checkpointKeyPairFromSeed } from '../../lineage/index.js';
import { nextDueAtMs } from '../../scheduling/index.js';
import type { CloudantStores } from '../../store/index.js';
import { createCloudantStores } from '../../store/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../couch/index.js';
import { type EnRelay, memberActionsAlert, startEnRelay } from '../en-relay/index.js';
import { type FunctionRunner, startFunctionRunner } from '../function-runner/index.js';
import { type EmulatorStack, startEmulatorStack } from '../kp-emulator/index.js';
import { loadFunctionMains } from './functions.js';
import { type RunView, watchRuns } from './progress.js';
import { loadOrCreateState, saveState } from './state.js';

/** The regions of the local stack. */
export const DEV_REGIONS = ['us-south', 'us-east', 'eu-de'] as const;
export const DEMO_GROUP_ID = 'demo';
/** The demo group's DR drill interval in the local stack. */
export const DEMO_DRILL_EVERY_MS = 5 * 60_000;

export interface DevStackOptions {
  /** Store, emulator snapshot and dev state live here; reused on the next start unless `fresh`. */
  dataDir: string;
  fresh: boolean;
  /** Where `dev.json` is written. */
  devFile: string;
  /** First port of a fixed range for IAM, the regions, the emulator admin and the store; 0 = random free ports. */
  portBase: number;
  /** Key Protect's one-rotation-per-hour rule, shortened for the demo (emulator rule and service config). */
  rotationMinIntervalMs: number;
  /** Create the demo group (primary us-south, duplicates us-east and eu-de). */
  demo: boolean;
  /** Rotation interval of the demo group. */
  demoEveryMs: number;
  /** DR drill interval of the demo group (default {@link DEMO_DRILL_EVERY_MS}). */
  demoDrillEveryMs?: number;
  /** Cron ticker period (the runner pings the rotate function). */
  tickMs: number;
  /**
   * How the demo group is seeded: `create` (the service creates the keys, generation 1 escrowed) or `adopt` (the dev
   * stack imports one material into three new keys and the service adopts them, verified by canary).
   */
  demoSeed?: 'create' | 'adopt';
  /** Log level of the functions' JSON logs on stderr (default error). */
  functionLogLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** How long start-up waits for the demo group before going on without it (default 45 s). */
  demoTimeoutMs?: number;
  /**
   * How the emulator's Activity Tracker events reach the events function: `alert` (default) through the Cloud Logs
   * alert + Event Notifications relay, as IBM delivers them; `direct` posts the full CADF events.
   */
  eventsRoute?: 'alert' | 'direct';
  /** The relay's alert evaluation window (default 5 s; real Cloud Logs windows are whole minutes). */
  alertWindowMs?: number;
  /** Progress lines (each rotation step as it happens, stack events). */
  print: (line: string) => void;
  logger?: Logger;
}

/** What `.lockstep/dev.json` holds (design.md "Surfaces"; extra fields only beside the fixed ones). */
export interface DevJson {
  iam: { url: string; apiKeys: { operator: string; auditor: string } };
  keyProtect: Record<string, { url: string; instanceId: string }>;
  cloudant: { url: string; username: string; password: string };
  api: { url: string };
  events: { url: string; tokenHeader: string; token: string; relayUrl?: string };
  groups: string[];
  ui: { url: string };
  escrow?: { crn: string };
  rotationMinIntervalMs: number;
  accountId: string;
  kpAdminUrl: string;
  functions: Record<string, string>;
  dataDir: string;
  pid: number;
  startedAt: string;
}

export interface DevStack {
  devJson: DevJson;
  /** True when the data directory of an earlier start was reused. */
  reused: boolean;
  /** True when the demo group was created by this start. */
  demoCreated: boolean;
  /** Stops everything (ticker, functions, store, emulator, IAM) and removes dev.json. Idempotent. */
  close(): Promise<void>;
}

const TOKEN_HEADER = 'x-lockstep-token';

/**
 * Starts the local stack: local IAM, the Key Protect emulator (us-south, us-east, eu-de), the embedded
 * CouchDB-compatible store, the `rotate`/`events`/`api` functions behind the local Code Engine function runner with
 * a cron ticker, and Activity Tracker events from the emulator to the events function; seeds an escrow key and the
 * demo group; writes dev.json. Everything listens on 127.0.0.1.
 */
export async function startDevStack(opts: DevStackOptions): Promise<DevStack> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  if (opts.fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const { state, reused } = loadOrCreateState(dataDir);
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    while (closers.length) {
      const c = closers.pop()!;
      try {
        await c();
      } catch (err) {
        logger.warn('dev.close_failed', { error: err });
      }
    }
  };
  try {
    const base = opts.portBase;
    const port = (n: number) => (base ? base + n : 0);

    // 1. IAM + Key Protect emulator (same identities, account and instances as last time; state from the snapshot)
    const emu: EmulatorStack = await startEmulatorStack({
      regions: [...DEV_REGIONS],
      accountId: state.accountId,
      iamOptions: { identities: state.identities, port: port(0) },
      instanceIds: Object.fromEntries(Object.entries(state.instanceIds).map(([r, id]) => [r, [id]])),
      instancesPerRegion: 1,
      rules: { rotationMinIntervalMs: opts.rotationMinIntervalMs },
      snapshotFile: join(dataDir, 'kp-emulator.snapshot'),
      snapshotKey: state.snapshotKey,
      prewarmTokenKeys: true,
      tokenKeyPoolSize: 2,
      ...(base ? { ports: Object.fromEntries(DEV_REGIONS.map((r, i) => [r, port(1 + i)])), adminPort: port(4) } : {}),
      logger,
    });
    closers.push(async () => {
      await emu.kp.saveSnapshot();
      await emu.close();
    });
    for (const r of DEV_REGIONS) state.instanceIds[r] = emu.kp.regions[r]!.instances[0]!;
    saveState(dataDir, state);
    opts.print(`✓ local IAM ${emu.iam.url} and Key Protect emulator (${DEV_REGIONS.join(', ')})`);

    // 2. the embedded store, on disk
    const couch: EmbeddedCouch = await startEmbeddedCouch({ dataDir: join(dataDir, 'couch'), port: port(5) });
    closers.push(() => couch.close());
    const stores: CloudantStores = await createCloudantStores({ ...couch.storeOptions, logger });
    await stores.ensureSetup();
    opts.print(`✓ store ${couch.url} (${reused ? 'reusing' : 'new'} data in ${dataDir})`);

    // 3. adapters and the rotation service, acting as lockstep's own service id
    const lockstepId = state.identities.find((i) => i.name === 'lockstep')!;
    const kp = createKeyProtectClient({
      endpoints: Object.fromEntries(DEV_REGIONS.map((r) => [r, emu.kp.regions[r]!.url])),
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: new Sensitive(lockstepId.apiKey),
        iamUrl: emu.iam.url,
      }),
      random: cryptoRandom,
      clock: systemClock,
      logger,
    });
    const cp = checkpointKeyPairFromSeed(Buffer.from(state.checkpointSeed, 'hex'));
    const service = createRotationService({
      kp,
      stores,
      clock: systemClock,
      random: cryptoRandom,
      logger,
      config: {
        rotationMinIntervalMs: opts.rotationMinIntervalMs,
        retryBaseMs: 5_000,
        retryMaxMs: 60_000,
        checkpointSigning: {
          keyId: cp.keyId,
          privateKey: cp.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        },
      },
    });

    // 4. the functions behind the local Code Engine runner, with the cron ticker
    const idOf = (name: string) => state.identities.find((i) => i.name === name)!;
    // The cron subscription's secret (LOCKSTEP_CRON_SECRETS), fresh at every start: only the runner's pings carry it.
    const cronSecret = randomBytes(24).toString('base64url');
    const mains = await loadFunctionMains({
      iamUrl: emu.iam.url,
      cloudantUrl: couch.url,
      cloudantCredentials: couch.credentials,
      kpEndpoints: Object.fromEntries(DEV_REGIONS.map((r) => [r, emu.kp.regions[r]!.url])),
      lockstepApiKey: lockstepId.apiKey,
      lockstepIamId: lockstepId.iamId,
      roles: { [idOf('operator').iamId]: 'operator', [idOf('auditor').iamId]: 'auditor' },
      checkpoint: {
        keyId: cp.keyId,
        privateKeyPem: cp.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        publicKeyPem: cp.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      },
      eventsToken: state.eventsToken,
      cronSecret,
      rotationMinIntervalMs: opts.rotationMinIntervalMs,
      maxExecutionSeconds: 120,
      logLevel: opts.functionLogLevel ?? 'error',
      uiApiKeyLogin: true,
    });
    const tickSeconds = Math.max(1, Math.round(opts.tickMs / 1000));
    const runner: FunctionRunner = await startFunctionRunner({
      functions: [
        {
          name: 'rotate',
          main: mains.rotate,
          schedules: [
            {
              cron: tickSeconds < 60 ? `*/${tickSeconds} * * * * *` : `*/${Math.round(tickSeconds / 60)} * * * *`,
              data: cronSubscriptionData(cronSecret, { source: 'cron' }),
            },
          ],
        },
        { name: 'events', main: mains.events },
        { name: 'api', main: mains.api },
      ],
      logger,
    });
    closers.push(() => runner.close());
    const relay = await startEventsRoute(opts, runner.url('events'), state, logger);
    closers.push(async () => {
      emu.kp.setEventWebhook(undefined);
      await relay?.close();
    });
    emu.kp.setEventWebhook(
      relay?.ingestUrl ?? runner.url('events'),
      relay ? {} : { [TOKEN_HEADER]: state.eventsToken },
    );
    opts.print(`✓ functions rotate, events, api on the local Code Engine runner; cron ping every ${tickSeconds}s`);

    // 5. escrow key and demo group
    let demoCreated = false;
    if (!state.escrowCrn) {
      const key = await kp.createGeneratedRootKey({
        region: 'us-south' as never,
        instanceId: state.instanceIds['us-south'] as never,
        name: 'lockstep-escrow',
        description: 'lockstep escrow key (local stack); only lockstep may use it',
      });
      state.escrowCrn = key.crn;
      saveState(dataDir, state);
      opts.print(`✓ escrow key ${key.id} in us-south`);
    }
    if (opts.demo && !(await stores.groups.find(asGroupId(DEMO_GROUP_ID)))) {
      const escrow = parseKeyCrn(state.escrowCrn);
      opts.print(`… creating demo group: one fresh material into us-south (primary), us-east and eu-de`);
      const placements = {
        primary: { region: 'us-south' as RegionId, instanceId: state.instanceIds['us-south'] as InstanceId },
        duplicates: (['us-east', 'eu-de'] as const).map((r) => ({
          region: r as RegionId,
          instanceId: state.instanceIds[r] as InstanceId,
        })),
      };
      const common = {
        id: DEMO_GROUP_ID,
        name: 'Demo group',
        description: 'Seeded by lockstep dev: primary us-south, duplicates us-east and eu-de',
        schedule: { intervalMs: opts.demoEveryMs },
        escrow: { region: escrow.region, instanceId: escrow.instanceId, keyId: escrow.keyId, crn: escrow.crn },
        trigger: { kind: 'operator' as const, by: 'lockstep dev' },
      };
      const creating =
        (opts.demoSeed ?? 'create') === 'create'
          ? service.createGroup({ ...common, ...placements })
          : adoptFreshKeys(kp, service, common, placements);
      const report = (err: unknown) => {
        // a run that could not finish now (an emulator fault, the 1 h rule) continues on the next cron tick
        if (hasCode(err, 'GROUP_EXISTS')) opts.print('✓ demo group already exists');
        else if (isAppError(err)) opts.print(`! demo group not created yet: ${err.message}`);
        else logger.error('dev.demo_failed', { error: err });
      };
      // the stack is ready within a minute even if creation is slow: it then finishes in the background
      const outcome = await Promise.race([
        creating.then(
          (r) => ({ done: true as const, lineage: r.lineage }),
          (err: unknown) => ({ done: false as const, err }),
        ),
        new Promise<{ done: false; err?: undefined }>((r) =>
          setTimeout(() => r({ done: false }), opts.demoTimeoutMs ?? 45_000).unref(),
        ),
      ]);
      if (outcome.done) {
        demoCreated = true;
        opts.print(
          `✓ demo group created: generation ${outcome.lineage.generation}, fingerprint ${outcome.lineage.fingerprint}`,
        );
      } else if (outcome.err !== undefined) report(outcome.err);
      else {
        opts.print('… demo group is still being created; it continues in the background');
        creating.then((r) => opts.print(`✓ demo group created: generation ${r.lineage.generation}`), report);
      }
    }
    const groups: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await stores.groups.list({ limit: 100, ...(cursor ? { cursor } : {}) });
      groups.push(...page.items.map((g) => g.id));
      cursor = page.next;
    } while (cursor);
    state.groups = groups;
    saveState(dataDir, state);
    // DR drills: on for the demo group locally (off by default elsewhere): the cron tick runs them
    if (groups.includes(DEMO_GROUP_ID)) {
      await stores.groups.mutate(asGroupId(DEMO_GROUP_ID), (g) =>
        g.drillSchedule ? g : { ...g, drillSchedule: { intervalMs: opts.demoDrillEveryMs ?? DEMO_DRILL_EVERY_MS } },
      );
    }
    // the scheduler only looks at groups with a next due time; set it where creation left it unset
    for (const id of groups) {
      await stores.groups.mutate(asGroupId(id), (g) => {
        if (g.nextDueAtMs !== undefined || g.currentGeneration === 0) return g;
        const due = nextDueAtMs(g.schedule, {
          createdAtMs: g.createdAtMs,
          ...(g.lastRotatedAtMs ? { lastRotatedAtMs: g.lastRotatedAtMs } : {}),
          nowMs: Date.now(),
        });
        return due === undefined ? g : { ...g, nextDueAtMs: due };
      });
    }
    if (!demoCreated && reused) {
      for (const id of groups) {
        const g = (await stores.groups.find(asGroupId(id)))?.value;
        if (g) opts.print(`✓ group ${g.id}: ${g.status}, generation ${g.currentGeneration} (kept from the last start)`);
      }
    }

    // 6. progress: every run of every group, as it happens
    const stopWatch = watchRuns({
      listRuns: async () => {
        const all: RunView[] = [];
        for (const g of (await stores.groups.list({ limit: 100 })).items) {
          all.push(...((await stores.runs.listByGroup(g.id, 3)) as unknown as RunView[]));
        }
        return all;
      },
      print: opts.print,
      onError: (err) => logger.warn('dev.watch_failed', { error: err }),
    });
    closers.push(stopWatch);
    closers.push(watchDrills(stores, opts.print, (err) => logger.warn('dev.watch_failed', { error: err })));

    // 7. dev.json
    const devJson: DevJson = {
      iam: { url: emu.iam.url, apiKeys: { operator: idOf('operator').apiKey, auditor: idOf('auditor').apiKey } },
      keyProtect: Object.fromEntries(
        DEV_REGIONS.map((r) => [r, { url: emu.kp.regions[r]!.url, instanceId: state.instanceIds[r]! }]),
      ),
      cloudant: { url: couch.url, ...couch.credentials },
      api: { url: runner.url('api') },
      events: {
        url: runner.url('events'),
        tokenHeader: TOKEN_HEADER,
        token: state.eventsToken,
        ...(relay ? { relayUrl: relay.url } : {}),
      },
      groups,
      ui: { url: `${runner.url('api')}/ui` },
      escrow: { crn: state.escrowCrn },
      rotationMinIntervalMs: opts.rotationMinIntervalMs,
      accountId: state.accountId,
      kpAdminUrl: emu.kp.adminUrl,
      functions: { ...runner.urls },
      dataDir,
      pid: process.pid,
      startedAt: new Date().toISOString(),
    };
    const devFile = resolve(opts.devFile);
    mkdirSync(dirname(devFile), { recursive: true });
    writeFileSync(devFile, `${JSON.stringify(devJson, null, 2)}\n`, { mode: 0o600 });
    closers.push(async () => rmSync(devFile, { force: true }));

    let closed: Promise<void> | undefined;
    return {
      devJson,
      reused,
      demoCreated,
      close: () => {
        closed ??= close();
        return closed;
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Imports one fresh material into a new key per placement (duplicates first), then lets the service adopt them. */
async function adoptFreshKeys(
  kp: KeyProtectPort,
  service: RotationService,
  common: Omit<AdoptGroupInput, 'primaryCrn' | 'duplicateCrns'>,
  placements: {
    primary: { region: RegionId; instanceId: InstanceId };
    duplicates: { region: RegionId; instanceId: InstanceId }[];
  },
) {
  const bytes = cryptoRandom.bytes(32);
  const material = KeyMaterial.fromBytes(bytes);
  bytes.fill(0);
  try {
    const crns: string[] = [];
    for (const p of [...placements.duplicates, placements.primary]) {
      const key = await kp.createImportedKey({
        ...p,
        name: `lockstep-${common.id}-${p === placements.primary ? 'primary' : 'duplicate'}-${p.region}`,
        description: `lockstep group ${common.id}`,
        material,
      });
      crns.push(key.crn);
    }
    const primaryCrn = crns.pop()!;
    return await service.adoptGroup({ ...common, primaryCrn, duplicateCrns: crns });
  } finally {
    material.zero();
  }
}

/** The Cloud Logs alert + Event Notifications relay in front of the events function (none for the direct route). */
async function startEventsRoute(
  opts: DevStackOptions,
  eventsUrl: string,
  state: { accountId: string; eventsToken: string },
  logger: Logger,
): Promise<EnRelay | undefined> {
  if (opts.eventsRoute === 'direct') return undefined;
  const relay = await startEnRelay({
    accountId: state.accountId,
    region: 'us-south',
    alert: memberActionsAlert(MEMBER_ACTIONS, opts.alertWindowMs ?? 5_000),
    destination: { url: eventsUrl, sensitiveHeaders: { [TOKEN_HEADER]: state.eventsToken } },
    logger,
  });
  opts.print(`✓ Activity Tracker → Cloud Logs alert → Event Notifications relay ${relay.url}`);
  return relay;
}

/** Prints each new DR drill of every group as the tick records it (polls the drill chain heads). */
function watchDrills(stores: CloudantStores, print: (line: string) => void, onError: (err: unknown) => void) {
  const seen = new Map<string, number>();
  let first = true;
  const poll = async () => {
    for (const g of (await stores.groups.list({ limit: 100 })).items) {
      const head = await stores.drills.head(g.id);
      if (!head || (seen.get(g.id) ?? 0) >= head.seq) continue;
      seen.set(g.id, head.seq);
      if (first) continue;
      const took = head.switchover.switchoverMs === null ? 'n/a' : `${head.switchover.switchoverMs} ms`;
      print(
        `${g.id} drill ${head.seq}  ${head.result === 'passed' ? 'PASSED' : 'FAILED'}  generations ${head.generationsChecked.join(',') || '-'} unwrap at every member · switch-over ${took}` +
          (head.problems.length ? `\n            ${head.problems.slice(0, 3).join('\n            ')}` : ''),
      );
    }
    first = false;
  };
  const timer = setInterval(() => void poll().catch(onError), 3_000);
  timer.unref();
  void poll().catch(onError);
  return async () => clearInterval(timer);
}
