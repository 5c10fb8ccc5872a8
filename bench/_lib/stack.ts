/**
 * The local stack for benchmarks: local IAM + multi-region Key Protect emulator + the embedded CouchDB-compatible
 * store, with the real adapters (Key Protect client over the IBM SDK, Cloudant stores over the Cloudant SDK) wired
 * as the functions wire them. The service clock is the emulator clock, so advancing it moves the 1 h rule and the
 * lease expiries together.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createRotationService,
  cryptoRandom,
  type KeyProtectPort,
  type RotationConfig,
  type RotationService,
  type Stores,
} from '../../src/app/index.js';
import type { Clock, Group, InstanceId, RegionId } from '../../src/core/index.js';
import { KeyMaterial, silentLogger } from '../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient, type RetryPolicy } from '../../src/keyprotect/index.js';
import { type CouchAccess, type EmbeddedCouch, startEmbeddedCouch } from '../../src/local/couch/index.js';
import { type EmulatorStack, type FaultSpec, startEmulatorStack } from '../../src/local/kp-emulator/index.js';
import { type CloudantStores, createCloudantStores } from '../../src/store/index.js';
import type { EmulatorChildInfo } from './emulatorChild.js';

/**
 * The emulator as a bench drives it, in either process mode: faults and the clock (async: in child mode they are
 * admin API calls), region URLs and instances.
 */
export interface BenchEmulator {
  mode: 'in-process' | 'child';
  regions: Record<string, { url: string; instances: readonly string[] }>;
  setFaults(target: { region: string; instanceId?: string }, faults: FaultSpec): Promise<void>;
  clearFaults(): Promise<void>;
  /** Moves the emulator clock and the service clock (its mirror) together. */
  advanceClock(ms: number): Promise<void>;
  /** Process id of the emulator (this process in-process). */
  pid: number;
}

/** A stack whose emulator runs in a child process (`emulatorProcess: 'child'`): no in-process `emu`. */
export interface ChildBenchStack extends Omit<BenchStack, 'emu'> {}

export interface BenchStack {
  emu: EmulatorStack;
  control: BenchEmulator;
  couch?: EmbeddedCouch;
  couchUrl: string;
  /** The store's URL and the credentials it requires. */
  couchAccess: CouchAccess;
  stores: CloudantStores;
  kp: KeyProtectPort;
  /** A second client that imports plain payloads (seeding only). */
  setupKp: KeyProtectPort;
  clock: Clock & { advance(ms: number): void };
  regions: string[];
  /** `host:port` of every Key Protect region server (to count requests). */
  kpOrigins: Set<string>;
  instance(region: string, i?: number): InstanceId;
  service(
    opts?: { kp?: KeyProtectPort; stores?: Stores; config?: Partial<RotationConfig> } & Record<string, unknown>,
  ): RotationService;
  close(): Promise<void>;
}

export interface BenchStackOptions {
  regions?: string[];
  instancesPerRegion?: number;
  couch?: CouchAccess;
  retry?: Partial<RetryPolicy>;
  /**
   * `in-process` (default): the emulator shares this event loop. `child`: it runs in its own process
   * (_lib/emulatorChild.ts), so its server work does not queue behind the code under test; faults and the clock go
   * through its admin API.
   */
  emulatorProcess?: 'in-process' | 'child';
}

export function startBenchStack(opts: BenchStackOptions & { emulatorProcess: 'child' }): Promise<ChildBenchStack>;
export function startBenchStack(opts?: BenchStackOptions & { emulatorProcess?: 'in-process' }): Promise<BenchStack>;
export async function startBenchStack(opts: BenchStackOptions = {}): Promise<BenchStack | ChildBenchStack> {
  const regions = opts.regions ?? ['us-south', 'us-east', 'eu-de'];
  const instancesPerRegion = opts.instancesPerRegion ?? 1;
  let emu: EmulatorStack | undefined;
  let control: BenchEmulator;
  let iamUrl: string;
  let apiKeys: { lockstep: string; operator: string };
  let closeEmulator: () => Promise<void>;
  /** The service clock: the emulator clock is the wall clock + an offset, mirrored here exactly. */
  let offsetMs = 0;
  if (opts.emulatorProcess === 'child') {
    const child = await startEmulatorChild(regions, instancesPerRegion);
    iamUrl = child.info.iamUrl;
    apiKeys = child.info.apiKeys;
    closeEmulator = child.close;
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${child.info.adminUrl}${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!res.ok) throw new Error(`emulator admin ${method} ${path}: ${res.status} ${await res.text()}`);
    };
    control = {
      mode: 'child',
      regions: child.info.regions,
      pid: child.info.pid,
      setFaults: (target, faults) => admin('POST', '/__emulator/faults', { ...target, faults }),
      clearFaults: () => admin('DELETE', '/__emulator/faults'),
      async advanceClock(ms) {
        offsetMs += ms;
        await admin('POST', '/__emulator/clock/advance', { ms });
      },
    };
  } else {
    const e = await startEmulatorStack({ regions, instancesPerRegion, tokenKeyPoolSize: 4, prewarmTokenKeys: true });
    emu = e;
    iamUrl = e.iam.url;
    apiKeys = { lockstep: e.iam.apiKeyFor('lockstep'), operator: e.iam.apiKeyFor('operator') };
    closeEmulator = () => e.close();
    control = {
      mode: 'in-process',
      regions: e.kp.regions,
      pid: process.pid,
      setFaults: async (target, faults) => e.kp.setFaults(target, faults),
      clearFaults: async () => e.kp.clearFaults(),
      async advanceClock(ms) {
        e.kp.advanceClock(ms);
      },
    };
  }
  try {
    return await finishBenchStack(opts, regions, emu, control, iamUrl, apiKeys, closeEmulator, () => offsetMs);
  } catch (err) {
    await closeEmulator();
    throw err;
  }
}

async function finishBenchStack(
  opts: BenchStackOptions,
  regions: string[],
  emu: EmulatorStack | undefined,
  control: BenchEmulator,
  iamUrl: string,
  apiKeys: { lockstep: string; operator: string },
  closeEmulator: () => Promise<void>,
  offsetMs: () => number,
): Promise<BenchStack | ChildBenchStack> {
  const couch = opts.couch ? undefined : await startEmbeddedCouch();
  const access = opts.couch ?? (couch as CouchAccess);
  const couchUrl = access.url;
  const stores = await createCloudantStores({
    ...access.storeOptions,
    dbPrefix: `b${randomBytes(3).toString('hex')}-`,
    timeoutMs: 60_000,
  });
  await stores.ensureSetup();
  const clock = emu
    ? { nowMs: () => emu.kp.nowMs(), advance: (ms: number) => emu.kp.advanceClock(ms) }
    : {
        nowMs: () => Date.now() + offsetMs(),
        advance: () => {
          throw new Error('bench stack: the emulator runs in a child process; use `await control.advanceClock(ms)`');
        },
      };
  const kp = createKeyProtectClient({
    endpoints: Object.fromEntries(regions.map((r) => [r, control.regions[r]!.url])),
    authenticator: authenticatorFromConfig({ kind: 'iam', apiKey: apiKeys.lockstep, iamUrl }),
    random: cryptoRandom,
    clock,
    ...(opts.retry ? { retry: opts.retry } : {}),
  });
  const setupKp = createKeyProtectClient({
    endpoints: Object.fromEntries(regions.map((r) => [r, control.regions[r]!.url])),
    authenticator: authenticatorFromConfig({ kind: 'iam', apiKey: apiKeys.operator, iamUrl }),
    random: cryptoRandom,
    clock,
    useImportToken: false,
  });
  const kpOrigins = new Set(regions.map((r) => new URL(control.regions[r]!.url).host));
  return {
    ...(emu ? { emu } : {}),
    control,
    ...(couch ? { couch } : {}),
    couchUrl,
    couchAccess: access,
    stores,
    kp,
    setupKp,
    clock,
    regions,
    kpOrigins,
    instance: (region: string, i = 0) => control.regions[region]!.instances[i] as InstanceId,
    service: (o: { kp?: KeyProtectPort; stores?: Stores; config?: Partial<RotationConfig> } = {}) =>
      createRotationService({
        kp: o.kp ?? kp,
        stores: o.stores ?? stores,
        clock,
        random: cryptoRandom,
        logger: silentLogger,
        ...(o as Record<string, unknown>),
        config: { ...(o.config ?? {}) },
      } as Parameters<typeof createRotationService>[0]),
    async close() {
      await closeEmulator();
      await couch?.close();
    },
  };
}

/**
 * Spawns _lib/emulatorChild.ts and reads its one JSON line. The child exits when its stdin closes: `close()` ends
 * it, and so does this process's death (the pipe closes with it), so no emulator outlives its bench.
 */
async function startEmulatorChild(
  regions: string[],
  instancesPerRegion: number,
): Promise<{ info: EmulatorChildInfo; close(): Promise<void> }> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'emulatorChild.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify({ regions, instancesPerRegion })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const info = await new Promise<EmulatorChildInfo>((ok, fail) => {
    let buf = '';
    const onData = (b: Buffer) => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      child.stdout.off('data', onData);
      try {
        ok(JSON.parse(buf.slice(0, nl)) as EmulatorChildInfo);
      } catch (err) {
        fail(err);
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => fail(new Error(`emulator child exited (${code}) before it was ready`)));
    child.once('error', fail);
  });
  child.stdout.resume();
  return {
    info,
    async close() {
      child.stdin.end();
      await exited;
    },
  };
}

/**
 * Seeds a group the fast way: its member keys are created with one fresh material by plain import (one request per
 * key, no import token: set-up is not what is measured), then `adoptGroup` proves them by canary and records
 * generation 1. Primary in region `primaryRegion` (default 0), duplicates round-robin over the other regions, on
 * instance `instanceOffset + ⌊i / (regions − 1)⌋`.
 */
export async function createBenchGroup(
  s: ChildBenchStack,
  id: string,
  duplicates: number,
  layout: {
    primaryRegion?: number;
    instanceOffset?: number;
    schedule?: Group['schedule'];
    service?: RotationService;
  } = {},
): Promise<Group> {
  const pr = layout.primaryRegion ?? 0;
  const off = layout.instanceOffset ?? 0;
  const primaryRegion = s.regions[pr]!;
  const others = s.regions.filter((_, i) => i !== pr);
  const placements = [
    { region: primaryRegion, instanceId: s.instance(primaryRegion, off) },
    ...Array.from({ length: duplicates }, (_, i) => {
      const region = others[i % others.length]!;
      return { region, instanceId: s.instance(region, off + Math.floor(i / others.length)) };
    }),
  ];
  const raw = cryptoRandom.bytes(32);
  const keys = await Promise.all(
    placements.map((p) => {
      const material = KeyMaterial.fromBytes(raw);
      return s.setupKp
        .createImportedKey({ region: p.region as RegionId, instanceId: p.instanceId, name: `bench-${id}`, material })
        .finally(() => material.zero());
    }),
  );
  raw.fill(0);
  const { group } = await (layout.service ?? s.service()).adoptGroup({
    id,
    name: `bench group ${id}`,
    schedule: layout.schedule ?? { intervalMs: 90 * 24 * 3_600_000 },
    primaryCrn: keys[0]!.crn,
    duplicateCrns: keys.slice(1).map((k) => k.crn),
    trigger: { kind: 'operator', by: 'bench' },
  });
  return group;
}
