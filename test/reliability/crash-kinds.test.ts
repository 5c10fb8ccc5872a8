/**
 * Crash matrix of the other run kinds (issue 14): create, adopt, add-region and catch-up advance through the same
 * decider and runner as a rotation, so a worker that dies after any persisted step of them is resumed by another
 * one to the same end state. For each kind a first pass counts the persisted steps of a real run; then, for every
 * k, a fresh case is killed right after persist #k (the test hook throws: the worker stops touching anything, its
 * leases stay until they expire) and another worker resumes it once the leases expired (emulator clock). Over HTTP:
 * real Key Protect client → emulator, real store adapter → embedded store.
 * Invariants counted after every resume: the run completed; exactly one key made per new member (the emulator's
 * Activity Tracker `kms.secrets.create` events, by key name) and one Key Protect version per generation; a clean
 * full verification (every member at its recorded version, every generation's canary unwraps at every member).
 * (The SIGKILL child-process matrix of rotations is crash-matrix.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RotationService } from '../../src/app/service.js';
import { type InstanceId, KeyMaterial, type RegionId } from '../../src/core/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../support/localStack.js';
import { recordScenario, reliabilityLevel } from './_lib/report.js';

const HOUR = 3_600_000;
const LEASE_EXPIRY_MS = 150_000;
const op = { kind: 'operator' as const, by: 'crash-kinds' };

let s: LocalStack;
beforeAll(async () => {
  s = await startLocalStack({ instancesPerRegion: 2 });
});
afterAll(async () => {
  await s?.close();
});

class SimulatedCrash extends Error {}

/** Keys made with this name (successful `kms.secrets.create` events). */
const created = (name: string) =>
  s.stack.kp.events({ action: 'kms.secrets.create' }).filter((e) => e.outcome === 'success' && e.target.name === name)
    .length;

async function admin(path: string, body?: unknown): Promise<Response> {
  return fetch(`${s.stack.kp.adminUrl}${path}`, { method: 'POST', ...(body ? { body: JSON.stringify(body) } : {}) });
}

interface Case {
  /** Starts the run with `svc` (which may crash) and returns its id. */
  start(svc: RotationService): Promise<string>;
  /** Invariants after the resumed run completed (each failed one is a violation). */
  check(run: RotationRun): Promise<string[]>;
}

const south = 'us-south' as RegionId;
const east = 'us-east' as RegionId;
const de = 'eu-de' as RegionId;

/** One case of each kind, with a unique group id. */
const kinds: Record<string, (id: string) => Promise<Case>> = {
  async create(id) {
    const input = {
      id,
      name: id,
      schedule: {},
      primary: { region: south, instanceId: s.instance('us-south') },
      duplicates: [{ region: east, instanceId: s.instance('us-east') }],
      trigger: op,
    };
    return {
      async start(svc) {
        await svc.createGroup(input).catch((err: unknown) => {
          if (!(err instanceof SimulatedCrash)) throw err;
        });
        return `run-${id}-create`;
      },
      async check() {
        const out: string[] = [];
        for (const name of [`lockstep-${id}-primary-us-south`, `lockstep-${id}-duplicate-us-east`]) {
          if (created(name) !== 1) out.push(`${created(name)} keys named ${name}`);
        }
        return out;
      },
    };
  },
  async adopt(id) {
    const material = randomBytes(32);
    const keys = await Promise.all(
      [south, east].map((region) =>
        s.kp.createImportedKey({
          region,
          instanceId: s.instance(region),
          name: `${id}-${region}`,
          material: KeyMaterial.fromBytes(Buffer.from(material)),
        }),
      ),
    );
    material.fill(0);
    return {
      async start(svc) {
        await svc
          .adoptGroup({
            id,
            name: id,
            schedule: {},
            primaryCrn: keys[0]!.crn,
            duplicateCrns: [keys[1]!.crn],
            trigger: op,
          })
          .catch((err: unknown) => {
            if (!(err instanceof SimulatedCrash)) throw err;
          });
        return `run-${id}-adopt`;
      },
      async check() {
        const chain = await s.stores.lineage.chain(id as never);
        return chain.length === 1 ? [] : [`${chain.length} lineage records after adoption`];
      },
    };
  },
  async 'add-region'(id) {
    const group = await createStackGroup(s, id, 1);
    s.clock.advance(HOUR + 1_000);
    const svc = s.service();
    const { runId } = await svc.rotateNow(group.id, { trigger: op });
    await driveRun(s, svc, runId);
    const at = { region: de, instanceId: s.instance('eu-de', 1) as InstanceId };
    return {
      async start(svc2) {
        return (await svc2.addRegion(group.id, { ...at, trigger: op })).runId;
      },
      async check(run) {
        const out: string[] = [];
        if (created(`lockstep-${id}-duplicate-eu-de`) !== 1) out.push('the new region has not exactly one key');
        const versions = await s.kp.listVersions({ ...at, keyId: run.members[0]!.keyId! });
        if (versions.length !== 2) out.push(`the new key has ${versions.length} versions, expected 2`);
        return out;
      },
    };
  },
  async 'catch-up'(id) {
    const group = await createStackGroup(s, id, 1);
    const dup = group.members[1]!;
    const snap = (await (await admin('/__emulator/snapshots', dup)).json()) as { snapshotId: string };
    const svc = s.service();
    for (let i = 0; i < 2; i++) {
      s.clock.advance(HOUR + 1_000);
      const { runId } = await svc.rotateNow(group.id, { trigger: op });
      await driveRun(s, svc, runId);
    }
    await admin(`/__emulator/snapshots/${snap.snapshotId}/restore`);
    return {
      async start(svc2) {
        const v = await svc2.verify(group.id, { trigger: 'operator:crash-kinds', probes: false });
        if (!v.catchUpRunId) throw new Error(`no catch-up planned: ${v.problems.join('; ')}`);
        return v.catchUpRunId;
      },
      async check() {
        const versions = await s.kp.listVersions(dup);
        return versions.length === 3 ? [] : [`the caught-up member has ${versions.length} versions, expected 3`];
      },
    };
  },
};

describe(`crash matrix of create, adopt, add-region and catch-up (${reliabilityLevel()})`, () => {
  it.each(Object.keys(kinds))(
    '%s: a worker killed after any persisted step is resumed to the same end state',
    async (kind) => {
      const make = kinds[kind]!;
      let checks = 0;
      const violations: string[] = [];
      // First pass: how many persisted steps a run of this kind has.
      let persists = 0;
      const first = await make(`ck-${kind}-count`);
      const counting = s.service({
        afterPersist: () => {
          persists += 1;
        },
      });
      const runId = await first.start(counting);
      const counted = await driveRun(s, counting, runId, 60);
      expect(counted.status).toBe('completed');
      expect(persists).toBeGreaterThan(2);
      for (let k = 1; k <= persists; k++) {
        const label = `${kind} kill after persist #${k}`;
        const c = await make(`ck-${kind}-${k}`);
        let n = 0;
        let crashedAt: string | undefined;
        const doomed = s.service({
          afterPersist: (run) => {
            if (++n === k) {
              crashedAt = `${run.step}/${run.status}`;
              throw new SimulatedCrash(label);
            }
          },
        });
        const id = await c
          .start(doomed)
          .catch((err: unknown) => (err instanceof SimulatedCrash ? undefined : Promise.reject(err)));
        const rid =
          id ?? (await s.stores.runs.listByGroup(`ck-${kind}-${k}` as never, 10)).find((r) => r.kind === kind)?.id;
        if (!rid) throw new Error(`${label}: no run`);
        // the doomed worker works (over the waits of the 1 h rule) until it dies
        for (let pass = 0; pass < 40 && crashedAt === undefined; pass++) {
          const r = await doomed
            .advanceRun(rid, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: `doomed-${pass}` })
            .catch((err: unknown) => (err instanceof SimulatedCrash ? undefined : Promise.reject(err)));
          if (!r || ['completed', 'failed', 'diverged'].includes(r.status)) break;
          s.clock.advance(Math.max(1_000, (r.nextAttemptAtMs ?? s.clock.nowMs() + 150_000) - s.clock.nowMs()));
        }
        checks += 1;
        if (crashedAt === undefined) violations.push(`${label}: the worker never reached persist #${k}`);
        s.clock.advance(LEASE_EXPIRY_MS);
        const run = await driveRun(s, s.service(), rid, 60);
        checks += 1;
        if (run.status !== 'completed')
          violations.push(`${label} (${crashedAt}): run ${run.status} — ${run.statusReason}`);
        for (const v of await c.check(run)) violations.push(`${label} (${crashedAt}): ${v}`);
        checks += 1;
        const verified = await s.service().verify(run.groupId, { trigger: 'operator:crash-kinds', probes: true });
        checks += 1;
        if (!verified.ok) violations.push(`${label} (${crashedAt}): verify: ${verified.problems.join('; ')}`);
      }
      const result = recordScenario({
        scenario: `crash matrix: ${kind}`,
        area: 'crash',
        runs: checks,
        violations: violations.length,
        notes: `${persists} persisted steps per ${kind} run, a worker killed after each (test hook), resumed after lease expiry: completed, one key per new member, one version per generation, clean full verification`,
        examples: violations.slice(0, 8),
      });
      expect(result.violations, result.examples?.join('\n')).toBe(0);
    },
    240_000,
  );
});
