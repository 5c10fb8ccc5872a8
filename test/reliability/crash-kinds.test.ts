/**
 * Crash matrix of the other run kinds (issue 14): create, adopt, add-region and catch-up advance through the same
 * decider and runner as a rotation, so a worker that dies after any persisted step of them is resumed by another
 * one to the same end state. For each kind a first pass counts the persisted steps of a real run (so the matrix
 * follows the runner if it persists more or fewer steps); then, for every k, a fresh case is killed right after
 * persist #k and another worker resumes it once the leases expired (emulator clock). Over HTTP: real Key Protect
 * client → emulator, real store adapter → embedded store.
 *
 * Two ways to die:
 * - SIGKILL: a worker in a real child process (the crash matrix's esbuild-bundled worker, _lib/crashWorker.ts)
 *   starts the run itself (create, adopt) or advances the claimed one (add-region, catch-up) over the waits of the
 *   1 h rule, hangs right after persist #k (alive: a timer keeps it so) and is killed with SIGKILL;
 * - the in-process test hook: `afterPersist` throws, the worker stops touching anything, its leases stay.
 * At `bounded` (`npm test`) every k is killed once: two kill points per kind by SIGKILL (rotating daily over the
 * persists; `LOCKSTEP_CRASH_ROTATION` reproduces a day), the others by the hook. At `full`/`soak` every k is
 * killed both ways.
 * The SIGKILL worker is also killed right after Key Protect answered its j-th write (a key created, a version
 * rotated in), before it persisted the answer — the window in which a resumed worker must find what the dead one
 * made instead of making it again (kills after a persist never reach it: the resumed run knows every answer the dead
 * worker persisted). The first pass counts the writes too; one such point per kind at `bounded`, every one at
 * `full`. A resume that does not look for the key the dead worker made (create's find-by-alias skipped) fails here:
 * the second key creation is rejected (alias taken) and the run stays degraded.
 *
 * Invariants counted after every resume: the run completed; exactly one key made per new member (the emulator's
 * Activity Tracker `kms.secrets.create` events, by key name) and one Key Protect version per generation; a clean
 * full verification (every member at its recorded version, every generation's canary unwraps at every member);
 * for SIGKILL also: the worker hung at persist #k, was alive until SIGKILL, and printed no material it made.
 * (The SIGKILL matrix of rotations is crash-matrix.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyProtectPort } from '../../src/app/ports.js';
import type { AdoptGroupInput, CreateGroupInput, RotationService } from '../../src/app/service.js';
import { type GroupId, type InstanceId, KeyMaterial, type RegionId } from '../../src/core/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { phase } from '../support/childProcess.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../support/localStack.js';
import { leakedSecrets, SimulatedCrash } from '../support/rotationHarness.js';
import { bundledLauncher, type CrashLauncher, type CrashWorker, spawnCrashWorker } from './_lib/crashProcess.js';
import { recordScenario, reliabilityLevel } from './_lib/report.js';

const HOUR = 3_600_000;
/** Longer than the group and import-token lease TTLs (120 s): the dead worker's leases have expired. */
const LEASE_EXPIRY_MS = 150_000;
const level = reliabilityLevel();
const op = { kind: 'operator' as const, by: 'crash-kinds' };
/** Rotation of the bounded SIGKILL subset: the UTC day, or `LOCKSTEP_CRASH_ROTATION`. */
const ROTATION = Number(process.env.LOCKSTEP_CRASH_ROTATION ?? Math.floor(Date.now() / 86_400_000));

let s: LocalStack;
let launcher: CrashLauncher;
let spare: CrashWorker | undefined;
beforeAll(async () => {
  [s, launcher] = await Promise.all([startLocalStack({ instancesPerRegion: 2 }), bundledLauncher()]);
  spare = spawnCrashWorker(launcher, s, s.config);
}, 120_000);
afterAll(async () => {
  await spare?.kill();
  launcher?.dispose();
  await s?.close();
});

/** A started worker (the spare, started while the previous case ran) and a new spare for the next one. */
function takeWorker(): CrashWorker {
  const w = spare ?? spawnCrashWorker(launcher, s, s.config);
  spare = spawnCrashWorker(launcher, s, s.config);
  return w;
}

/** Keys made with this name (successful `kms.secrets.create` events). */
const created = (name: string) =>
  s.stack.kp.events({ action: 'kms.secrets.create' }).filter((e) => e.outcome === 'success' && e.target.name === name)
    .length;

async function admin(path: string, body?: unknown): Promise<Response> {
  return fetch(`${s.stack.kp.adminUrl}${path}`, { method: 'POST', ...(body ? { body: JSON.stringify(body) } : {}) });
}

/**
 * How a case's run starts: create and adopt are started by the use case in the worker that may die; add-region and
 * catch-up are claimed by an operator call (`claim`, returns the run id) and advanced by that worker.
 */
type Start =
  | { op: 'create'; input: CreateGroupInput }
  | { op: 'adopt'; input: AdoptGroupInput }
  | { op: 'claim'; claim(svc: RotationService): Promise<string> };

interface Case {
  groupId: string;
  start: Start;
  /** Invariants after the resumed run completed (each failed one is a violation). */
  check(run: RotationRun): Promise<string[]>;
}

/** The run of `kind` of a case's group (the use cases name it; the test does not assume how). */
async function runOf(groupId: string, kind: string): Promise<string | undefined> {
  return (await s.stores.runs.listByGroup(groupId as GroupId, 100)).find((r) => r.kind === kind)?.id;
}

/** Starts a case in this process with `svc` (which may throw SimulatedCrash); the run id when the start names it. */
async function startHere(c: Case, svc: RotationService): Promise<string | undefined> {
  const crashed = (err: unknown) => {
    if (!(err instanceof SimulatedCrash)) throw err;
  };
  if (c.start.op === 'create') await svc.createGroup(c.start.input).catch(crashed);
  else if (c.start.op === 'adopt') await svc.adoptGroup(c.start.input).catch(crashed);
  else return c.start.claim(svc);
  return undefined;
}

const south = 'us-south' as RegionId;
const east = 'us-east' as RegionId;
const de = 'eu-de' as RegionId;

/** One case of each kind, with a unique group id. */
const kinds: Record<string, (id: string) => Promise<Case>> = {
  async create(id) {
    return {
      groupId: id,
      start: {
        op: 'create',
        input: {
          id,
          name: id,
          schedule: {},
          primary: { region: south, instanceId: s.instance('us-south') },
          duplicates: [{ region: east, instanceId: s.instance('us-east') }],
          trigger: op,
        },
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
      groupId: id,
      start: {
        op: 'adopt',
        input: { id, name: id, schedule: {}, primaryCrn: keys[0]!.crn, duplicateCrns: [keys[1]!.crn], trigger: op },
      },
      async check() {
        const out: string[] = [];
        const chain = await s.stores.lineage.chain(id as GroupId);
        if (chain.length !== 1) out.push(`${chain.length} lineage records after adoption`);
        for (const [i, region] of [south, east].entries()) {
          const versions = await s.kp.listVersions({ region, instanceId: s.instance(region), keyId: keys[i]!.id });
          if (versions.length !== 1) out.push(`adopted key in ${region} has ${versions.length} versions, expected 1`);
        }
        return out;
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
      groupId: id,
      start: { op: 'claim', claim: async (svc2) => (await svc2.addRegion(group.id, { ...at, trigger: op })).runId },
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
      groupId: id,
      start: {
        op: 'claim',
        async claim(svc2) {
          const v = await svc2.verify(group.id, { trigger: 'operator:crash-kinds', probes: false });
          if (!v.catchUpRunId) throw new Error(`no catch-up planned: ${v.problems.join('; ')}`);
          return v.catchUpRunId;
        },
      },
      async check() {
        const versions = await s.kp.listVersions(dup);
        return versions.length === 3 ? [] : [`the caught-up member has ${versions.length} versions, expected 3`];
      },
    };
  },
};

interface Tally {
  checks: number;
  violations: string[];
}

/** After a kill and the lease expiry: another worker (this process) resumes; the invariants are counted. */
async function resumeAndCheck(
  c: Case,
  runId: string,
  label: string,
  t: Tally,
  resumer: RotationService = s.service(),
): Promise<void> {
  const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));
  s.clock.advance(LEASE_EXPIRY_MS);
  t.checks += 1;
  let run: RotationRun;
  try {
    run = await driveRun(s, resumer, runId, 60);
  } catch (e) {
    t.violations.push(`${label}: resume threw ${msg(e)}`);
    return;
  }
  if (run.status !== 'completed') {
    t.violations.push(`${label}: run ${run.status} — ${run.statusReason}`);
    return; // the later checks would only repeat this one
  }
  t.checks += 1;
  for (const v of await c.check(run)) t.violations.push(`${label}: ${v}`);
  t.checks += 1;
  try {
    const verified = await s.service().verify(run.groupId, { trigger: 'operator:crash-kinds', probes: true });
    if (!verified.ok) t.violations.push(`${label}: verify: ${verified.problems.join('; ')}`);
  } catch (e) {
    t.violations.push(`${label}: verify threw ${msg(e)}`);
  }
}

/** Kill after persist #k by the in-process hook (the worker's `afterPersist` throws). */
async function hookKill(kind: string, c: Case, k: number, t: Tally): Promise<void> {
  const label = `${kind} hook-kill after persist #${k}`;
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
  const rid = (await startHere(c, doomed)) ?? (await runOf(c.groupId, kind));
  if (!rid) throw new Error(`${label}: no run`);
  // the doomed worker works (over the waits of the 1 h rule) until it dies
  for (let pass = 0; pass < 40 && crashedAt === undefined; pass++) {
    const r = await doomed
      .advanceRun(rid, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: `doomed-${pass}` })
      .catch((err: unknown) => (err instanceof SimulatedCrash ? undefined : Promise.reject(err)));
    if (!r || ['completed', 'failed', 'diverged'].includes(r.status)) break;
    s.clock.advance(Math.max(1_000, (r.nextAttemptAtMs ?? s.clock.nowMs() + 150_000) - s.clock.nowMs()));
  }
  t.checks += 1;
  if (crashedAt === undefined) t.violations.push(`${label}: the worker never reached persist #${k}`);
  await resumeAndCheck(c, rid, `${label} (${crashedAt})`, t);
}

/** The Key Protect writes (key creations, rotations) a worker's client performs: counted in the first pass. */
const WRITES = new Set(['createImportedKey', 'createGeneratedRootKey', 'rotateWithMaterial']);
function countingKp(kp: KeyProtectPort, onWrite: () => void): KeyProtectPort {
  return new Proxy(kp, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || !WRITES.has(prop) || typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        const out = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        onWrite();
        return out;
      };
    },
  });
}

/**
 * SIGKILL of a child worker that started (create, adopt) or advances the run: right after persist #k, or right after
 * Key Protect answered write #k, before the worker persisted it (`after: 'write'`).
 */
async function sigkill(
  kind: string,
  c: Case,
  after: 'persist' | 'write',
  k: number,
  t: Tally,
  resumer?: RotationService,
): Promise<number> {
  const label = `${kind} SIGKILL after ${after} #${k}`;
  const claimed = c.start.op === 'claim' ? await c.start.claim(s.service()) : undefined;
  const w = takeWorker();
  const t0 = performance.now();
  const end = await phase(
    'worker reaches the persist',
    90_000,
    w.run(
      {
        ...(after === 'persist' ? { hangAfter: k } : { hangAfter: 0, hangAfterWrite: k }),
        drive: true,
        ...(claimed ? { runId: claimed } : {}),
        ...(c.start.op === 'create' ? { create: c.start.input } : {}),
        ...(c.start.op === 'adopt' ? { adopt: c.start.input } : {}),
      },
      60_000,
    ),
  );
  const ms = performance.now() - t0;
  const signal = await phase('worker exits after SIGKILL', 10_000, w.kill());
  const at = end.kind === 'hanging' ? `${end.step}/${end.status}` : end.kind;
  t.checks += 3;
  if (end.kind !== 'hanging' || end.persists !== k) {
    t.violations.push(`${label}: the worker did not hang there (${JSON.stringify(end)})`);
  }
  // alive until the kill: a worker that had exited on its own reports no signal
  if (signal !== 'SIGKILL') t.violations.push(`${label}: the worker was not killed by SIGKILL (${signal})`);
  const leaks = leakedSecrets(w.stdout() + w.stderr(), w.secrets());
  if (leaks.length) t.violations.push(`${label}: ${leaks.length} secret(s) in the worker's output`);
  const rid = claimed ?? (await runOf(c.groupId, kind));
  if (!rid) throw new Error(`${label}: no run`);
  await resumeAndCheck(c, rid, `${label} (${at})`, t, resumer);
  return ms;
}

/** SIGKILL kill points among `n`: all at full/soak, `atBounded` at bounded (rotating daily). */
function sigkillPoints(n: number, atBounded: number): number[] {
  if (level !== 'bounded') return Array.from({ length: n }, (_, i) => i + 1);
  const offsets = Array.from({ length: Math.min(n, atBounded) }, (_, i) => Math.floor((i * n) / atBounded));
  return [...new Set(offsets.map((o) => 1 + ((ROTATION + o) % n)))].sort((a, b) => a - b);
}

describe(`crash matrix of create, adopt, add-region and catch-up (${level})`, () => {
  it.each(Object.keys(kinds))(
    '%s: a worker killed (SIGKILL or hook) after any persisted step is resumed to the same end state',
    async (kind) => {
      const started = Date.now();
      const make = kinds[kind]!;
      const t: Tally = { checks: 0, violations: [] };
      // First pass: how many persisted steps a run of this kind has.
      let persists = 0;
      let writes = 0;
      const first = await make(`ck-${kind}-count`);
      const counting = s.service({
        afterPersist: () => {
          persists += 1;
        },
        kp: countingKp(s.kp, () => {
          writes += 1;
        }),
      });
      const runId = (await startHere(first, counting)) ?? (await runOf(first.groupId, kind));
      const counted = await driveRun(s, counting, runId!, 60);
      expect(counted.status).toBe('completed');
      // an adopt run has the fewest: its proof, then the lineage record and the release (one save)
      expect(persists).toBeGreaterThanOrEqual(2);
      const bySignal = sigkillPoints(persists, 2);
      const byWrite = sigkillPoints(writes, 1);
      const childMs: number[] = [];
      let hooks = 0;
      for (const k of byWrite) childMs.push(await sigkill(kind, await make(`ck-${kind}-w${k}-kill`), 'write', k, t));
      for (let k = 1; k <= persists; k++) {
        if (bySignal.includes(k)) {
          childMs.push(await sigkill(kind, await make(`ck-${kind}-${k}-kill`), 'persist', k, t));
        }
        if (level !== 'bounded' || !bySignal.includes(k)) {
          await hookKill(kind, await make(`ck-${kind}-${k}`), k, t);
          hooks += 1;
        }
      }
      const result = recordScenario({
        scenario: `crash matrix: ${kind}`,
        area: 'crash',
        runs: childMs.length + hooks,
        violations: t.violations.length,
        notes:
          `${persists} persisted steps and ${writes} Key Protect writes per ${kind} run; SIGKILL of a child worker ` +
          `after persist #${bySignal.join(', #')}${byWrite.length ? ` and after write #${byWrite.join(', #')} (answered, not yet persisted)` : ''} ` +
          `(worker from command to hang: max ${Math.round(Math.max(0, ...childMs))} ms), test-hook kill after ` +
          `${hooks} persist(s); resumed by another worker after lease expiry; ${t.checks} invariant checks ` +
          `(completed, one key per new member by name from kms.secrets.create events, one KP version per generation, ` +
          `clean full verification; SIGKILL: hung at #k, alive until killed, no material in its output); ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s wall`,
        ...(t.violations.length ? { examples: t.violations.slice(0, 8) } : {}),
      });
      expect(result.violations, result.examples?.join('\n')).toBe(0);
    },
    level === 'bounded' ? 240_000 : 900_000,
  );
  it('negative control: a resume that does not look for the key the killed worker made is counted', async () => {
    // The resuming worker's Key Protect client never finds a key by alias: it makes the member's key again. Killed
    // right after Key Protect answered the duplicate's key creation (write #2: escrow key, duplicate, primary).
    const blind = new Proxy(s.kp, {
      get: (target, prop, receiver) =>
        prop === 'findKeyByAlias' ? async () => undefined : Reflect.get(target, prop, receiver),
    });
    const t: Tally = { checks: 0, violations: [] };
    await sigkill('create', await kinds.create!('ck-control'), 'write', 2, t, s.service({ kp: blind }));
    expect(t.violations.join('\n')).toMatch(/SIGKILL after write #2 .*(KEY_ALIAS_NOT_UNIQUE|keys named)/);
  }, 60_000);
});
