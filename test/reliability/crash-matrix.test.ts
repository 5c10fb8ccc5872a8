/**
 * Crash matrix (issue 8): for each persisted step of a rotation run, a worker in a real child process is SIGKILLed
 * right after persist #k, and a different worker (a fresh rotation service in this process) resumes the run once
 * the dead worker's leases have expired (emulator clock). Repeated for groups of 1, 2 and 4 duplicates.
 *
 * After every resume the invariants are counted (never thrown at the first one):
 * - the run completed, with the fingerprint and escrow ciphertext it had before the kill;
 * - exactly one new Key Protect version per member per generation (listVersions), and the lineage maps each
 *   generation to the right version of each member;
 * - identical material at every member: for every generation so far, a DEK wrapped at each member (when that
 *   generation was current) unwraps at every other member to the same DEK, reporting that member's version of the
 *   generation;
 * - escrow intact: every run's escrow ciphertext unwraps (escrow key, AAD) to material whose fingerprint is the
 *   run's and the lineage record's;
 * - lineage chain valid (`verifyChain`: no break, every generation present, signed checkpoint at the head), group
 *   document at the generation and healthy;
 * - no key material in the killed worker's stdout/stderr: the worker reports every random byte string it made on a
 *   side channel (fd 3), and the run's material is recovered through escrow.
 * At the end of each group: the service's own live `verify` of every generation, and no material of any worker in
 * this process's log lines or in any store document.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyRef } from '../../src/app/index.js';
import { fingerprintOf, type Group, KeyMaterial, type LineageRecord } from '../../src/core/index.js';
import { checkpointKeyring, verifyChain } from '../../src/lineage/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../support/localStack.js';
import { checkpointKeyPem, leakedSecrets } from '../support/rotationHarness.js';
import {
  bundledLauncher,
  type CrashLauncher,
  type CrashWorker,
  spawnCrashWorker,
  tsxLauncher,
} from './_lib/crashProcess.js';
import { median, recordScenario, reliabilityLevel, scale } from './_lib/report.js';

const HOUR = 3_600_000;
/** Longer than the group and import-token lease TTLs (120 s): the dead worker's leases have expired. */
const LEASE_EXPIRY_MS = 150_000;
const level = reliabilityLevel();
const ROUNDS = scale({ bounded: 1, full: 1, soak: 3 });
const op = { kind: 'operator' as const, by: 'crash-matrix' };
const signing = checkpointKeyPem();
const config = { checkpointSigning: { privateKey: signing.privateKey } };
const keyring = checkpointKeyring([signing.publicKey]);

/**
 * What persist #k of a run saved, from the run before and after it: a duplicate `staged`, the primary `promoted`,
 * the material `escrowed`, or the end of a step (`planned`, `verified`, `proved`, `recorded`, `released`). The
 * matrix is built from a first pass that classifies every persist of a real run, so it follows the runner if it
 * persists more or fewer steps.
 */
function persistKind(prev: RotationRun, next: RotationRun): string {
  const staged = (r: RotationRun, role: string) =>
    r.members.filter((m) => m.role === role && m.progress === 'staged').length;
  if (staged(next, 'duplicate') > staged(prev, 'duplicate')) return 'staged';
  if (staged(next, 'primary') > staged(prev, 'primary')) return 'promoted';
  if (!prev.fingerprint && next.fingerprint) return 'escrowed';
  const ended: Record<string, string> = {
    plan: 'planned',
    verify: 'verified',
    prove: 'proved',
    record: 'recorded',
    release: 'released',
  };
  return ended[prev.step] ?? `${prev.step}->${next.step}`;
}

/**
 * Rotation of the bounded subset: the UTC day, or `LOCKSTEP_CRASH_ROTATION` to reproduce a given day's subset.
 * Every failure message names its kill point.
 */
const ROTATION = Number(process.env.LOCKSTEP_CRASH_ROTATION ?? Math.floor(Date.now() / 86_400_000));

/**
 * Kill points (persist numbers, 1-based) of one round for a group of `d` duplicates, given the kind of each persist
 * of its runs. Every persist at `full`/`soak`, and for 2 duplicates at every level. At `bounded`, 1 and 4
 * duplicates take two kinds each — four different kinds together (offsets 0, h and q, q+h of the m kinds) —
 * rotating daily over all kinds (and over the staged duplicates), so that a few days of `npm test` cover every
 * step for every size.
 */
function killPoints(d: number, kinds: readonly string[]): number[] {
  const all = kinds.map((_, i) => i + 1);
  if (level !== 'bounded' || d === 2) return all;
  const distinct = [...new Set(kinds)];
  const m = distinct.length;
  const h = Math.floor(m / 2);
  const q = Math.max(1, Math.floor(h / 2));
  const offsets = d === 1 ? [0, h] : [q, q + h];
  return offsets
    .map((o) => {
      const kind = distinct[(ROTATION + o) % m];
      const at = all.filter((k) => kinds[k - 1] === kind);
      return at[ROTATION % at.length]!;
    })
    .sort((x, y) => x - y);
}

class Tally {
  checks = 0;
  violations = 0;
  examples: string[] = [];
  check(ok: boolean, what: () => string): boolean {
    this.checks += 1;
    if (!ok) {
      this.violations += 1;
      if (this.examples.length < 12) this.examples.push(what());
    }
    return ok;
  }
}

interface Probe {
  generation: number;
  slot: number;
  ciphertext: string;
  dek: Buffer;
  aad: string[];
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));
const refOf = (m: Group['members'][number]): KeyRef => ({ region: m.region, instanceId: m.instanceId, keyId: m.keyId });

let s: LocalStack;
let launcher: CrashLauncher;
let spare: CrashWorker | undefined;
const readyMs: number[] = [];
/** Start (spawn → READY) of one worker alone, esbuild bundle vs tsx, measured back to back at full/soak. */
let startAlone: { bundle: number; tsx: number } | undefined;

/** A started worker (the spare started during the previous case) and a new spare for the next one. */
function takeWorker(): CrashWorker {
  const w = spare ?? spawnCrashWorker(launcher, s, config);
  spare = spawnCrashWorker(launcher, s, config);
  void w.ready.then((ms) => readyMs.push(ms)).catch(() => undefined);
  return w;
}

beforeAll(async () => {
  [s, launcher] = await Promise.all([
    startLocalStack({ regions: ['us-south', 'us-east', 'eu-de'], instancesPerRegion: 2, config }),
    bundledLauncher(),
  ]);
  if (level !== 'bounded') {
    // For the report: how long one worker takes to start, bundled vs through tsx (compiled at start).
    const start = async (l: CrashLauncher) => {
      const w = spawnCrashWorker(l, s, config);
      const ms = await w.ready;
      await w.kill();
      return ms;
    };
    startAlone = { bundle: await start(launcher), tsx: await start(tsxLauncher()) };
  }
  spare = spawnCrashWorker(launcher, s, config);
}, 180_000);

afterAll(async () => {
  await spare?.kill();
  launcher?.dispose();
  await s?.close();
});

/** Escrowed material of a run, unwrapped here (escrow key + AAD), independently of the product's helper. */
async function escrowedMaterial(run: RotationRun): Promise<Buffer> {
  if (!run.escrow || !run.escrowKey) throw new Error(`run ${run.id} has no escrow`);
  const k = run.escrowKey;
  const out = await s.kp.unwrap(
    { region: k.region, instanceId: k.instanceId, keyId: k.keyId },
    run.escrow.ciphertext,
    run.escrow.aad,
  );
  return out.plaintext;
}

function fingerprintOfBytes(b: Buffer): string {
  const m = KeyMaterial.fromBytes(b);
  try {
    return fingerprintOf(m);
  } finally {
    m.zero();
  }
}

/** Every invariant of the group at `generation` (counted in `t`); returns the chain for later checks. */
async function checkGroup(
  group: Group,
  generation: number,
  probes: Probe[],
  t: Tally,
  label: string,
): Promise<LineageRecord[]> {
  const at = (what: string) => () => `${label}: ${what}`;
  // Lineage: chain intact, every generation, head signed.
  const chain = await s.stores.lineage.chain(group.id);
  const report = verifyChain(chain, await s.stores.checkpoints.list(group.id), keyring, { groupId: group.id });
  t.check(report.ok && report.breaks.length === 0, at(`chain not intact: ${report.firstBreak?.message ?? ''}`));
  t.check(
    chain.length === generation && report.headGeneration === generation,
    at(`chain has ${chain.length} records (head ${report.headGeneration}), expected ${generation}`),
  );
  t.check(report.signedThroughGeneration === generation, at(`signed through ${report.signedThroughGeneration}`));
  for (const r of chain) {
    const crns = r.members.map((m) => m.crn).sort();
    t.check(
      JSON.stringify(crns) === JSON.stringify(group.members.map((m) => m.crn).sort()),
      at(`generation ${r.generation} records other members`),
    );
  }
  const g = (await s.stores.groups.get(group.id)).value;
  t.check(
    g.currentGeneration === generation && g.status === 'healthy' && !g.activeRunId,
    at(`group at ${g.currentGeneration}/${g.status}/active ${g.activeRunId ?? '-'}`),
  );

  // Exactly one Key Protect version per member per generation, and lineage names it.
  await Promise.all(
    group.members.map(async (m) => {
      const versions = await s.kp.listVersions(refOf(m));
      if (!t.check(versions.length === generation, at(`${m.crn} has ${versions.length} versions`))) return;
      for (const r of chain) {
        const rec = r.members.find((x) => x.crn === m.crn);
        const expected = versions[versions.length - r.generation]?.id;
        t.check(rec?.keyVersionId === expected, at(`generation ${r.generation} of ${m.region}: lineage version`));
      }
    }),
  );

  // Escrow intact: every run's ciphertext unwraps to material with its fingerprint, the one the lineage records.
  const runs = (await s.stores.runs.listByGroup(group.id, 1_000)) as RotationRun[];
  for (const r of runs.filter((x) => x.status === 'completed')) {
    try {
      const fp = fingerprintOfBytes(await escrowedMaterial(r));
      t.check(
        fp === r.fingerprint && fp === chain[r.generation - 1]?.fingerprint,
        at(`escrow of generation ${r.generation} unwraps to another material`),
      );
    } catch (e) {
      t.check(false, at(`escrow of generation ${r.generation} does not unwrap: ${msg(e)}`));
    }
  }

  // Identical material: wrap at each member now (this generation), then every generation's DEKs at every other
  // member, reporting that member's version of the generation.
  const aad = ['lockstep-crash-matrix/v1', `group:${group.id}`, `generation:${generation}`];
  await Promise.all(
    group.members.map(async (m, slot) => {
      const dek = randomBytes(32);
      try {
        const w = await s.kp.wrap(refOf(m), dek, aad);
        const rec = chain[generation - 1]?.members.find((x) => x.crn === m.crn);
        t.check(w.keyVersionId === rec?.keyVersionId, at(`wrap at ${m.region} used ${w.keyVersionId}`));
        probes.push({ generation, slot, ciphertext: w.ciphertext, dek, aad });
      } catch (e) {
        t.check(false, at(`wrap at ${m.region} failed: ${msg(e)}`));
      }
    }),
  );
  const pairs = probes.flatMap((p) => group.members.flatMap((_, q) => (q === p.slot ? [] : [{ p, q }])));
  await pool(pairs, 6, async ({ p, q }) => {
    const m = group.members[q]!;
    const where = `generation ${p.generation} wrapped at ${group.members[p.slot]!.region}#${p.slot}, unwrapped at ${m.region}#${q}`;
    try {
      const u = await s.kp.unwrap(refOf(m), p.ciphertext, p.aad);
      const rec = chain[p.generation - 1]?.members.find((x) => x.crn === m.crn);
      t.check(u.plaintext.equals(p.dek), at(`${where}: other DEK`));
      t.check(u.keyVersionId === rec?.keyVersionId, at(`${where}: version ${u.keyVersionId}`));
    } catch (e) {
      t.check(false, at(`${where}: ${msg(e)}`));
    }
  });
  return chain;
}

interface MatrixResult {
  kills: number;
  convergeMs: number[];
  /** Wall ms from handing the run to a (started) worker to its HANGING marker. */
  childMs: number[];
  /** Resumes in which a member's rotation was found (sent by the dead worker, not persisted by it). */
  foundInFlight: number;
  kinds: string[];
  stepsSeen: Set<string>;
}

async function crashMatrix(d: number, t: Tally): Promise<MatrixResult> {
  const group = await createStackGroup(s, `crash-d${d}`, d);
  let generation = 1;
  const probes: Probe[] = [];
  const materials: Buffer[] = [];
  const workerSecrets: Buffer[] = [];
  await checkGroup(group, generation, probes, t, `d=${d} created`);

  // First pass, in process: the kind of every persist of a run of this group.
  s.clock.advance(HOUR + 1_000);
  const first = await s.service().rotateNow(group.id, { trigger: op });
  generation += 1;
  const kinds: string[] = [];
  let prev = (await s.service().getRun(first.runId)) as RotationRun;
  await s
    .service({
      afterPersist: (run) => {
        kinds.push(persistKind(prev, run));
        prev = structuredClone(run);
      },
    })
    .advanceRun(first.runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: 'count-pass' });
  // Group commit: every duplicate's outcome of the stage step is one save, the primary's another.
  t.check(
    kinds.filter((k) => k === 'staged').length === 1 && kinds.filter((k) => k === 'promoted').length === 1,
    () => `d=${d}: the duplicates (together) and the primary should each be persisted once staged: ${kinds.join(', ')}`,
  );
  await checkGroup(group, generation, probes, t, `d=${d} first pass`);

  const result: MatrixResult = {
    kills: 0,
    convergeMs: [],
    childMs: [],
    foundInFlight: 0,
    kinds,
    stepsSeen: new Set(),
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of killPoints(d, kinds)) {
      const label = `d=${d} round ${round + 1} kill after persist #${k} (${kinds[k - 1]})`;
      s.clock.advance(HOUR + 1_000);
      const { runId } = await s.service().rotateNow(group.id, { trigger: op });
      generation += 1;
      const w = takeWorker();
      const tA = performance.now();
      const end = await w.run({ runId, hangAfter: k }, 120_000);
      result.childMs.push(performance.now() - tA);
      const before = (await s.service().getRun(runId)) as RotationRun;
      const signal = await w.kill();
      result.kills += 1;
      t.check(end.kind === 'hanging', () => `${label}: worker did not hang (${JSON.stringify(end)})`);
      t.check(signal === 'SIGKILL', () => `${label}: worker was not killed by SIGKILL (${signal})`);
      if (end.kind === 'hanging') result.stepsSeen.add(`#${k} ${kinds[k - 1]}`);
      // The dead worker's state is what resuming starts from; its leases expire.
      s.clock.advance(LEASE_EXPIRY_MS);
      const t0 = performance.now();
      let run: RotationRun | undefined;
      try {
        run = await driveRun(s, s.service(), runId);
      } catch (e) {
        t.check(false, () => `${label}: resume threw ${msg(e)}`);
      }
      const converge = performance.now() - t0;
      if (!t.check(run?.status === 'completed', () => `${label}: run ${run?.status}/${run?.step} after resume`)) {
        continue; // the group is stuck: the later checks would only repeat this one
      }
      result.convergeMs.push(converge);
      const foundNow = run!.members.filter((m) => m.stagedVia === 'found').length;
      if (foundNow > before.members.filter((m) => m.stagedVia === 'found').length) result.foundInFlight += 1;
      if (before.fingerprint) {
        t.check(run!.fingerprint === before.fingerprint, () => `${label}: fingerprint changed on resume`);
        t.check(
          run!.escrow?.ciphertext === before.escrow?.ciphertext,
          () => `${label}: escrow ciphertext changed on resume`,
        );
      }
      await checkGroup(group, generation, probes, t, label);
      // No material in what the killed worker printed (its own random byte strings, and the run's material).
      let material: Buffer | undefined;
      try {
        material = await escrowedMaterial(run!);
        materials.push(material);
      } catch {
        // counted by checkGroup
      }
      const secrets = w.secrets();
      workerSecrets.push(...secrets);
      if (material && before.fingerprint) {
        t.check(
          secrets.some((x) => x.equals(material!)),
          () => `${label}: the worker's side channel did not report the material it generated`,
        );
      }
      const leaks = leakedSecrets(w.stdout() + w.stderr(), [...secrets, ...(material ? [material] : [])]);
      t.check(leaks.length === 0, () => `${label}: ${leaks.length} secret(s) in the worker's output`);
    }
  }

  // End of the group: the product's own live probe of every generation, and no material in this process's logs or
  // in any store document.
  const v = await s.service().verify(group.id);
  t.check(
    v.ok && v.unchecked.length === 0,
    () => `d=${d}: verify not ok: ${JSON.stringify(v.probes.filter((p) => !p.ok))}`,
  );
  const docs: string[] = [];
  for (const db of Object.values(s.stores.databases)) {
    docs.push(JSON.stringify((await s.stores.client.postAllDocs({ db, includeDocs: true })).result));
  }
  const all = [...s.random.secrets, ...workerSecrets, ...materials];
  const leaks = leakedSecrets([...s.log.lines, ...docs].join('\n'), all);
  t.check(leaks.length === 0, () => `d=${d}: ${leaks.length} secret(s) in logs or store documents`);
  return result;
}

describe('crash matrix: SIGKILL after every persisted step, resumed by another worker', () => {
  it.each([1, 2, 4])(
    '%i duplicate(s): every kill point resumes to identical material, one version per generation, intact escrow and lineage',
    async (d) => {
      const t = new Tally();
      const started = Date.now();
      const r = await crashMatrix(d, t);
      const res = recordScenario({
        scenario: `crash matrix (${d} duplicate${d > 1 ? 's' : ''})`,
        area: 'crash',
        runs: r.kills,
        violations: t.violations,
        ...(r.convergeMs.length
          ? { convergeMs: { median: median(r.convergeMs), max: Math.max(...r.convergeMs) } }
          : {}),
        notes:
          `SIGKILL of a child worker after persist #k of ${r.kinds.length} per run (${r.kills} kills over ` +
          `${ROUNDS} round(s) at ${[...r.stepsSeen].join(', ')}); resumed by a fresh in-process service after lease ` +
          `expiry; ${t.checks} invariant checks (completed, fingerprint + escrow kept, 1 KP version/member/generation, ` +
          `cross-unwrap of every generation at every member pair, escrow unwraps to the fingerprint, verifyChain + ` +
          `signed head, no material in worker output, logs or documents); converge = wall ms from resume start to ` +
          `completed; worker from run handed over to hang: median ${Math.round(median(r.childMs))} ms; ` +
          `resumes that found a member rotated but not recorded by the dead worker: ${r.foundInFlight}; ` +
          `worker start (esbuild bundle, overlapping the previous case) median ${Math.round(median(readyMs))} ms` +
          `${startAlone ? ` (alone: bundle ${startAlone.bundle} ms vs tsx ${startAlone.tsx} ms)` : ''}; ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s wall`,
        ...(t.examples.length ? { examples: t.examples } : {}),
      });
      expect(res.violations, res.examples?.join('\n')).toBe(0);
    },
    scale({ bounded: 240_000, full: 600_000, soak: 1_800_000 }),
  );

  it('the invariant checks see a member rotated to other material (negative control)', async () => {
    const group = await createStackGroup(s, 'crash-control', 1);
    const dup = group.members.find((m) => m.role === 'duplicate')!;
    s.clock.advance(HOUR + 1_000);
    const foreign = KeyMaterial.fromBytes(randomBytes(32));
    try {
      await s.kp.rotateWithMaterial(refOf(dup), foreign);
    } finally {
      foreign.zero();
    }
    const t = new Tally();
    await checkGroup(group, 1, [], t, 'control');
    const seen = t.examples.join('\n');
    expect(seen).toContain('has 2 versions');
    expect(seen).toMatch(/wrap at .* used/);
    expect(seen).toMatch(/wrapped at .*unwrapped at/);
  });
});
