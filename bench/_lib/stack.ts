/**
 * The local stack for benchmarks: local IAM + multi-region Key Protect emulator + the embedded CouchDB-compatible
 * store, with the real adapters (Key Protect client over the IBM SDK, Cloudant stores over the Cloudant SDK) wired
 * as the functions wire them. The service clock is the emulator clock, so advancing it moves the 1 h rule and the
 * lease expiries together.
 */
import { randomBytes } from 'node:crypto';
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
import { type EmulatorStack, startEmulatorStack } from '../../src/local/kp-emulator/index.js';
import { type CloudantStores, createCloudantStores } from '../../src/store/index.js';

export interface BenchStack {
  emu: EmulatorStack;
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

export async function startBenchStack(
  opts: { regions?: string[]; instancesPerRegion?: number; couch?: CouchAccess; retry?: Partial<RetryPolicy> } = {},
): Promise<BenchStack> {
  const regions = opts.regions ?? ['us-south', 'us-east', 'eu-de'];
  const emu = await startEmulatorStack({
    regions,
    instancesPerRegion: opts.instancesPerRegion ?? 1,
    tokenKeyPoolSize: 4,
    prewarmTokenKeys: true,
  });
  const couch = opts.couch ? undefined : await startEmbeddedCouch();
  const access = opts.couch ?? (couch as CouchAccess);
  const couchUrl = access.url;
  const stores = await createCloudantStores({
    ...access.storeOptions,
    dbPrefix: `b${randomBytes(3).toString('hex')}-`,
    timeoutMs: 60_000,
  });
  await stores.ensureSetup();
  const clock = { nowMs: () => emu.kp.nowMs(), advance: (ms: number) => emu.kp.advanceClock(ms) };
  const kp = createKeyProtectClient({
    endpoints: Object.fromEntries(regions.map((r) => [r, emu.kp.regions[r]!.url])),
    authenticator: authenticatorFromConfig({ kind: 'iam', apiKey: emu.iam.apiKeyFor('lockstep'), iamUrl: emu.iam.url }),
    random: cryptoRandom,
    clock,
    ...(opts.retry ? { retry: opts.retry } : {}),
  });
  const setupKp = createKeyProtectClient({
    endpoints: Object.fromEntries(regions.map((r) => [r, emu.kp.regions[r]!.url])),
    authenticator: authenticatorFromConfig({ kind: 'iam', apiKey: emu.iam.apiKeyFor('operator'), iamUrl: emu.iam.url }),
    random: cryptoRandom,
    clock,
    useImportToken: false,
  });
  const kpOrigins = new Set(regions.map((r) => new URL(emu.kp.regions[r]!.url).host));
  return {
    emu,
    ...(couch ? { couch } : {}),
    couchUrl,
    couchAccess: access,
    stores,
    kp,
    setupKp,
    clock,
    regions,
    kpOrigins,
    instance: (region, i = 0) => emu.kp.regions[region]!.instances[i] as InstanceId,
    service: (o = {}) =>
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
      await emu.close();
      await couch?.close();
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
  s: BenchStack,
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
