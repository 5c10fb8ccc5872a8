/**
 * A whole fake world for unit tests of the rotation service: fake Key Protect, in-memory stores, test clock,
 * recording randomness, captured logs and notifications, and a group created through the service.
 */
import { createRotationService } from '../../src/app/rotationService.js';
import type { RotationConfig, RotationService } from '../../src/app/service.js';
import type { Group, InstanceId, RegionId } from '../../src/core/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { FakeKeyProtect } from './fakeKeyProtect.js';
import { createMemoryStores, type MemoryStores } from './memoryStores.js';
import {
  type CapturedLogger,
  capturingLogger,
  type RecordingRandom,
  recordingRandom,
  type TestClock,
  testClock,
} from './rotationHarness.js';

export const REGIONS = ['us-south', 'us-east', 'eu-de', 'eu-gb', 'jp-tok'] as const;

export function instanceOf(i: number): InstanceId {
  return `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}` as InstanceId;
}

export interface FakeWorld {
  clock: TestClock;
  kp: FakeKeyProtect;
  stores: MemoryStores;
  random: RecordingRandom;
  log: CapturedLogger;
  notes: Array<{ type: string; subject: string; data: Record<string, unknown> }>;
  service: RotationService;
  /** A service sharing everything but with a crash hook. */
  serviceWith(hook: (run: RotationRun, step: string) => void | Promise<void>): RotationService;
  config: Partial<RotationConfig>;
}

export function fakeWorld(config: Partial<RotationConfig> = {}): FakeWorld {
  const clock = testClock();
  const kp = new FakeKeyProtect(clock);
  const stores = createMemoryStores();
  const random = recordingRandom();
  const log = capturingLogger();
  const notes: FakeWorld['notes'] = [];
  const cfg: Partial<RotationConfig> = { retryBaseMs: 60_000, retryMaxMs: 600_000, ...config };
  const make = (hook?: (run: RotationRun, step: string) => void | Promise<void>) =>
    createRotationService({
      kp,
      stores,
      clock,
      random,
      logger: log.logger,
      notifier: {
        async publish(e) {
          notes.push(e);
        },
      },
      config: cfg,
      ...(hook ? { afterPersist: hook } : {}),
    });
  return { clock, kp, stores, random, log, notes, service: make(), serviceWith: make, config: cfg };
}

/** Creates a group of one primary and `duplicates` duplicates through the service. */
export async function createFakeGroup(w: FakeWorld, id: string, duplicates: number): Promise<Group> {
  const { group } = await w.service.createGroup({
    id,
    name: `group ${id}`,
    schedule: { intervalMs: 30 * 24 * 3_600_000 },
    primary: { region: REGIONS[0] as RegionId, instanceId: instanceOf(0) },
    duplicates: Array.from({ length: duplicates }, (_, i) => ({
      region: REGIONS[(i + 1) % REGIONS.length] as RegionId,
      instanceId: instanceOf(i + 1),
    })),
    trigger: { kind: 'operator', by: 'test' },
  });
  return group;
}
