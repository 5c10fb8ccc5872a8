/**
 * The runner: executes the decider's commands through the Key Protect and store ports and persists the run (with
 * its `_rev`) after every outcome, before the next command. Any worker can pick up any unfinished run: the group
 * lease `group:<id>` gives one worker the run, the run document's revision fences a stale one, and every member
 * step re-reads the member's versions before it sends `rotate`, so nothing is rotated twice.
 *
 * ```
 *  worker A ── acquire group:<id> ── decide ─ execute ─ save(rev) ─ decide ─ execute ─ save(rev) ─ … ─ release
 *  worker B ── acquire group:<id> → held → returns "lease held" (the tick tries again later)
 *  worker A crashes after save(rev n) → lease expires → worker B resumes from rev n
 * ```
 */
import {
  AppError,
  type AtEvidence,
  type CanaryEvidence,
  type EscrowKeyRef,
  fingerprintOf,
  type Group,
  hasCode,
  isAppError,
  type KeyCrn,
  type KeyId,
  type KeyMaterial,
  type KeyVersionId,
  type LineageRecord,
  type Logger,
} from '../core/index.js';
import { buildLineageRecord, signCheckpoint } from '../lineage/index.js';
import {
  applyOutcome,
  CATCH_UP_REASON,
  type Command,
  catchUpReason,
  decide,
  duplicatesOf,
  type MemberCall,
  MemberProgress,
  type MemberReading,
  type Outcome,
  primaryOf,
  type RotationRun,
  type RunError,
  RunKind,
  type RunMember,
  Step,
} from '../rotation/index.js';
import { type CanaryParty, type CanaryResult, crossCanary, probeEvidence, runCanary, wrapCanary } from './canary.js';
import { generateAndEscrowKeeping, openEscrowedMaterial, withEscrowedMaterial } from './escrow.js';
import {
  disposeSeed,
  instanceKeyOf,
  type PassSeed,
  type PreparedToken,
  prefetchImportTokens,
  releasePreparedTokens,
  tokenLeaseName,
} from './importTokens.js';
import { bounded } from './limit.js';
import type {
  CallOptions,
  KeyInfo,
  KeyProtectPort,
  KeyRef,
  Lease,
  Notifier,
  PreparedImportToken,
  Stores,
  Versioned,
} from './ports.js';
import {
  escrowKeyOf,
  escrowOf,
  membersOf,
  onlyEvidenceAdded,
  refOf,
  runsOf,
  toRunError,
  withCalls,
  withEvidenceOf,
} from './runDocument.js';
import type { AdvanceResult, RotationConfig, RotationServiceDeps } from './service.js';

/** Everything the runner needs (built once by the service). */
export interface RunnerContext {
  kp: KeyProtectPort;
  stores: Stores;
  clock: RotationServiceDeps['clock'];
  random: RotationServiceDeps['random'];
  logger: Logger;
  notifier?: Notifier;
  config: RotationConfig;
  afterPersist?: RotationServiceDeps['afterPersist'];
  /** Computes a group's next due time after a completed generation (scheduling module). */
  nextDueAtMs: (group: Group, completedAtMs: number) => number | undefined;
  /** Waits (the import-token lease queue); injected like the clock, so no use case sleeps on a real timer. */
  sleep: (ms: number) => Promise<void>;
}

/** Thrown inside a worker whose run was taken over (or that "crashed" in a test): stop touching anything. */
class Stopped extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

const isAmbiguous = (err: unknown): boolean =>
  isAppError(err) &&
  (err.details.ambiguous === true || (err.code === 'UPSTREAM_UNAVAILABLE' && err.details.ambiguous !== false));

/**
 * The plan step's reading of one member: state, newest version, version count, last rotation (key and versions in
 * parallel: one round trip). A deleted or missing key reads as deleted.
 */
export async function readMemberState(
  kp: KeyProtectPort,
  ref: KeyRef,
  slot: string,
  opts?: CallOptions,
): Promise<MemberReading> {
  try {
    const [key, versions] = await Promise.all([kp.getKey(ref, opts), kp.listVersions(ref, opts)]);
    return {
      slot,
      state: key.state,
      deleted: key.deleted,
      currentVersionId: (versions[0]?.id ?? key.currentVersionId) as KeyVersionId,
      versionCount: versions.length,
      ...(key.lastRotateAtMs !== undefined ? { lastRotateAtMs: key.lastRotateAtMs } : {}),
    };
  } catch (err) {
    if (hasCode(err, 'KEY_NOT_FOUND', 'KEY_DELETED')) {
      return { slot, state: 5, deleted: true, currentVersionId: '' as KeyVersionId, versionCount: 0 };
    }
    throw err;
  }
}

/** Upper bound of commands one worker executes in one pass (a healthy run needs about 10 + members). */
const MAX_COMMANDS_PER_PASS = 500;

/** The group lease is renewed before a command once less than this share of its time to live is left. */
const RENEW_WHEN_LEFT = 0.75;

/**
 * One worker's pass over one run: under the group lease, decide → execute → persist until the run finishes, has to
 * wait (1 h rule, backoff, blocked member) or the caller's deadline comes.
 */
export async function advance(
  ctx: RunnerContext,
  runId: RotationRun['id'],
  opts: { deadlineAtMs: number; holder: string },
  seed?: PassSeed,
): Promise<AdvanceResult> {
  try {
    return await pass(ctx, runId, opts, seed);
  } finally {
    await disposeSeed(ctx.stores, seed); // what no worker took (a pass that never started): a worker empties it
  }
}

async function pass(
  ctx: RunnerContext,
  runId: RotationRun['id'],
  opts: { deadlineAtMs: number; holder: string },
  seed: PassSeed | undefined,
): Promise<AdvanceResult> {
  const runs = runsOf(ctx.stores);
  const first = seed?.run?.value.id === runId ? seed.run : await runs.get(runId);
  const groupId = first.value.groupId;
  const log = ctx.logger.child({ runId, groupId, holder: opts.holder });
  const result = (
    run: RotationRun,
    reason?: string,
    nextAttemptAtMs?: number,
    stopped?: AdvanceResult['stopped'],
  ): AdvanceResult => ({
    runId,
    status: run.status,
    step: run.step,
    ...(reason ? { reason } : {}),
    ...(nextAttemptAtMs !== undefined ? { nextAttemptAtMs } : {}),
    ...(stopped ? { stopped } : {}),
  });
  const pre = decide(first.value, ctx.clock.nowMs());
  if (pre.kind === 'finished') return result(first.value, first.value.statusReason);

  let lease: Lease | undefined = await ctx.stores.leases.acquire(
    `group:${groupId}`,
    opts.holder,
    ctx.config.groupLeaseTtlMs,
    ctx.clock.nowMs(),
  );
  if (!lease) {
    log.info('group lease held by another worker; leaving the run to it');
    return result(first.value, 'another worker holds the group lease', undefined, 'lease-held');
  }
  const state = { stopped: undefined as string | undefined, crashed: false };
  let cur: Versioned<RotationRun> = await runs.get(runId); // re-read under the lease
  const worker = new Worker(
    ctx,
    log,
    state,
    () => cur,
    (v) => {
      cur = v;
    },
  );
  if (seed) worker.adopt(seed);
  try {
    // A pass that keeps executing without finishing or waiting is a bug: stop rather than spin (the tick retries).
    for (let commands = 0; commands < MAX_COMMANDS_PER_PASS; commands++) {
      const nowMs = ctx.clock.nowMs();
      const d = decide(cur.value, nowMs);
      if (d.kind === 'finished') return result(cur.value, cur.value.statusReason);
      if (d.kind === 'wait') {
        if (cur.value.nextAttemptAtMs !== d.untilMs) {
          await worker.persistRaw({ ...cur.value, nextAttemptAtMs: d.untilMs, updatedAtMs: nowMs });
        }
        log.info('run waits', { step: cur.value.step, untilMs: d.untilMs, reason: d.reason });
        return result(cur.value, d.reason, d.untilMs);
      }
      if (nowMs >= opts.deadlineAtMs) {
        return result(cur.value, 'caller deadline reached; the next tick resumes', undefined, 'caller-deadline');
      }
      // Renewed once a quarter of its time to live has passed: every command starts with at least three quarters
      // of the lease left (a renewal per command would put a store round trip before every Key Protect call). A
      // stale worker is still fenced by the run document's revision at its next save.
      if (lease.expiresAtMs - nowMs < ctx.config.groupLeaseTtlMs * RENEW_WHEN_LEFT) {
        lease = await ctx.stores.leases.renew(lease, ctx.config.groupLeaseTtlMs, nowMs);
      }
      await worker.execute(d.command);
      if (state.stopped) return result(cur.value, state.stopped, undefined, 'taken-over');
    }
    log.error('run made no progress within one pass; stopping', { step: cur.value.step });
    return result(cur.value, `no progress after ${MAX_COMMANDS_PER_PASS} commands`);
  } catch (err) {
    if (err instanceof Stopped) return result(cur.value, err.why, undefined, 'taken-over');
    if (hasCode(err, 'LEASE_LOST')) {
      log.warn('group lease lost; stopping', { step: cur.value.step });
      return result(cur.value, 'group lease lost to another worker', undefined, 'lease-lost');
    }
    state.crashed = state.crashed || !isAppError(err);
    throw err;
  } finally {
    state.stopped ??= 'finished';
    await worker.close(state.crashed);
    if (lease && !state.crashed) await ctx.stores.leases.release(lease).catch(() => undefined);
  }
}

class Worker {
  constructor(
    private readonly ctx: RunnerContext,
    private readonly log: Logger,
    private readonly state: { stopped: string | undefined; crashed: boolean },
    private readonly get: () => Versioned<RotationRun>,
    private readonly set: (v: Versioned<RotationRun>) => void,
  ) {}

  private chain: Promise<unknown> = Promise.resolve();

  /**
   * Import tokens fetched ahead of their secure import, by instance (`region:instanceId`), each under that
   * instance's token lease (taken by the prefetch, released by the member that uses it or at the end of the pass).
   */
  private readonly prepared = new Map<string, Promise<PreparedToken | undefined>>();

  /** Members this step staged by its own rotate, not saved yet (group commit): references for `attribute`. */
  private readonly stepStaged = new Map<string, string>();

  private get run(): RotationRun {
    return this.get().value;
  }

  private alive(): void {
    if (this.state.stopped) throw new Stopped(this.state.stopped);
  }

  private member(slot: string): RunMember {
    const m = this.run.members.find((x) => x.slot === slot);
    if (!m) throw new Error(`no member ${slot}`);
    return m;
  }

  private now(): number {
    return this.ctx.clock.nowMs();
  }

  /** Saves a run as is (no decider involved); serialised with outcome persistence. */
  async persistRaw(next: RotationRun): Promise<void> {
    await this.serial(async () => {
      const saved = await this.save(next);
      this.set(saved);
    });
  }

  /** Applies an outcome and saves the run before anything else happens; serialised across parallel member tasks. */
  async persist(outcome: Outcome): Promise<RotationRun> {
    return this.persistAll([outcome]);
  }

  /**
   * Group commit: applies the outcomes of every member of a step, in order, and saves the run once (one store write
   * per step, not one per member).
   */
  async persistAll(outcomes: readonly Outcome[]): Promise<RotationRun> {
    return this.serial(async () => {
      this.alive();
      const before = this.run;
      let next = before;
      for (const o of outcomes) next = applyOutcome(next, o, this.now(), this.ctx.config);
      next = this.withNextCalls(next);
      const saved = await this.save(next);
      this.set(saved);
      if (before.step !== next.step || before.status !== next.status) {
        this.log.info('run transition', {
          from: before.step,
          to: next.step,
          status: next.status,
          attempt: next.attempt,
          ...(next.statusReason ? { reason: next.statusReason } : {}),
        });
        await this.onStatusChange(before, next);
      }
      try {
        await this.ctx.afterPersist?.(next, next.step);
      } catch (err) {
        // A test crash: this worker must not touch anything any more (its lease stays until it expires).
        this.state.stopped = 'crashed';
        this.state.crashed = true;
        throw err;
      }
      return next;
    });
  }

  /**
   * The correlation ids of the changing calls the run's next command will send (a stage or a promote), recorded with
   * the save that leads to it: that command then sends without a save of its own, and the ids are still persisted
   * before anything is sent. A worker that resumes the run finds them recorded and lists the versions first.
   */
  private withNextCalls(next: RotationRun): RotationRun {
    this.nextCalls = undefined;
    if (next.status !== 'running' || (next.kind !== RunKind.ROTATION && next.kind !== RunKind.CREATE)) return next;
    const d = decide(next, this.now());
    if (d.kind !== 'command') return next;
    const c = d.command;
    const slots = c.type === 'StageMembers' ? c.slots : c.type === 'PromotePrimary' ? [c.slot] : undefined;
    if (!slots) return next;
    const calls = this.newCalls(next, slots);
    this.nextCalls = { step: next.step, calls };
    return withCalls(next, calls);
  }

  /** Calls recorded by the last save for the command it led to (see withNextCalls). */
  private nextCalls: { step: Step; calls: ReadonlyMap<string, MemberCall> } | undefined;

  private newCalls(run: RotationRun, slots: readonly string[]): Map<string, MemberCall> {
    const action = run.kind === RunKind.CREATE ? 'kms.secrets.create' : 'kms.secrets.rotate';
    return new Map(
      slots.map((slot) => [slot, { action, correlationId: this.ctx.random.uuid(), atMs: this.now() } as MemberCall]),
    );
  }

  /** Appends a changing Key Protect call to a member (bounded list) and saves the run. */
  private async recordCall(slot: string, call: MemberCall): Promise<void> {
    await this.recordCalls(new Map([[slot, call]]));
  }

  /** Appends changing calls to several members in one save (before any of them is sent). */
  private async recordCalls(calls: ReadonlyMap<string, MemberCall>): Promise<void> {
    await this.serial(async () => {
      this.alive();
      this.set(await this.save({ ...withCalls(this.run, calls), updatedAtMs: this.now() }));
    });
  }

  /**
   * Stages members (duplicates at stage, the primary at promote): the random correlation id of every member's call
   * is persisted first, in one save; then one secure import at a time per instance (its import token is shared),
   * instances in parallel; then every member's outcome in one save (group commit). What finished is saved even when
   * another member's task failed the step.
   */
  private async stageMembers(slots: string[], log: Logger): Promise<void> {
    // This step's calls: recorded by the save that led here, or recorded now (before anything is sent).
    const ahead = this.nextCalls;
    this.nextCalls = undefined;
    const recorded =
      ahead?.step === this.run.step && ahead.calls.size === slots.length && slots.every((s) => ahead.calls.has(s))
        ? ahead.calls
        : undefined;
    const calls = recorded ?? this.newCalls(this.run, slots);
    // Members this run has never sent a changing call to (none recorded before this step's own).
    const firstSend = new Set(
      slots.filter(
        (slot) =>
          (this.member(slot).calls ?? []).filter((c) => c.correlationId !== calls.get(slot)?.correlationId).length ===
          0,
      ),
    );
    await this.withMaterial(async (material) => {
      if (!recorded) await this.recordCalls(calls);
      const outcomes: Outcome[] = [];
      try {
        await bounded(
          this.byInstance(slots),
          this.ctx.config.stageConcurrency,
          async (group) => {
            for (const slot of group) {
              const out = await this.stageOne(slot, material, log, calls.get(slot)!.correlationId, firstSend.has(slot));
              for (const o of out)
                if (o.type === 'MemberStaged' && o.via === 'rotate') this.stepStaged.set(slot, o.versionId);
              outcomes.push(...out);
            }
          },
          // a crash or an upstream error outranks another task's "stopped" that it caused
          (err) => err instanceof Stopped,
        );
      } finally {
        this.stepStaged.clear();
        if (outcomes.length > 0 && !this.state.stopped) await this.persistAll(outcomes);
      }
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /**
   * Saves with the revision this worker read. The events function may append Activity Tracker evidence to the same
   * document at any time; such a write is merged and the save retried. Any other concurrent change means another
   * worker owns the run now, and this one stops.
   */
  private async save(next: RotationRun): Promise<Versioned<RotationRun>> {
    const runs = runsOf(this.ctx.stores);
    let base = this.get();
    for (let attempt = 0; ; attempt++) {
      try {
        return await runs.save(next, base.rev);
      } catch (err) {
        if (!hasCode(err, 'STORE_CONFLICT')) throw err;
        const current = attempt < 5 ? await runs.get(next.id) : undefined;
        if (!current || !onlyEvidenceAdded(base.value, current.value)) {
          this.state.stopped = 'the run was changed by another worker; stopping';
          throw new Stopped(this.state.stopped);
        }
        next = withEvidenceOf(next, current.value);
        base = current;
        this.set(current);
      }
    }
  }

  async execute(c: Command): Promise<void> {
    const step = this.run.step;
    const log = this.log.child({ step, attempt: this.run.attempt, command: c.type });
    log.debug('executing');
    try {
      switch (c.type) {
        case 'ReadMembers': {
          const run = this.run;
          if (run.kind !== RunKind.ROTATION || run.escrow || !run.escrowKey) {
            await this.persist(await this.readMembers(c.slots));
            return;
          }
          // A rotation's plan reads, its escrow wrap and the duplicates' import tokens do not depend on each other
          // (neither token nor escrow carries material to a member): one round trip. The escrow is saved with the
          // reading (one save) only when the plan lets the run go on; otherwise the material is zeroed, unused.
          const escrowKey = run.escrowKey;
          this.prepareTokens(duplicatesOf(run).map((m) => m.slot));
          const escrowing = this.escrowNewMaterial(escrowKey);
          escrowing.catch(() => undefined);
          let read: Outcome;
          try {
            read = await this.readMembers(c.slots);
          } catch (err) {
            void escrowing.then(
              (e) => e.material.zero(),
              () => undefined,
            );
            throw err;
          }
          const escrowed = await escrowing.catch(() => undefined);
          const goesOn = applyOutcome(run, read, this.now(), this.ctx.config).step === Step.GENERATE;
          if (!escrowed || !goesOn) {
            escrowed?.material.zero();
            await this.persist(read);
            return;
          }
          try {
            await this.persistAll([
              read,
              { type: 'MaterialEscrowed', fingerprint: escrowed.record.fingerprint, escrow: escrowed.record },
            ]);
          } catch (err) {
            escrowed.material.zero();
            throw err;
          }
          this.keepMaterial(escrowed.material);
          return;
        }
        case 'GenerateMaterial': {
          const run = this.run;
          // The duplicates' import tokens are fetched while the material is escrowed and saved (no material yet).
          if (run.kind === RunKind.ROTATION) this.prepareTokens(duplicatesOf(run).map((m) => m.slot));
          const escrowKey = run.escrowKey ?? (await this.ensureEscrowKey());
          const { record: escrow, material } = await this.escrowNewMaterial(escrowKey);
          try {
            await this.persist({
              type: 'MaterialEscrowed',
              fingerprint: escrow.fingerprint,
              escrow,
              ...(run.escrowKey ? {} : { escrowKey }),
            });
          } catch (err) {
            material.zero();
            throw err;
          }
          // Escrow persisted: this pass's staging steps use the material as is (zeroed at the end of the pass);
          // another pass, or a resumed run, unwraps the escrow.
          this.keepMaterial(material);
          return;
        }
        case 'StageMembers':
          if (this.run.kind === RunKind.ROTATION) {
            this.prepareTokens(c.slots);
            // The primary's token is fetched while the duplicates are staged and verified: promote then needs only
            // the rotate (its instance's lease is held about as long as a secure import of its own would take).
            const busy = new Set(c.slots.map((x) => this.instanceKey(x)));
            const p = primaryOf(this.run);
            if (!busy.has(this.instanceKey(p.slot))) this.prepareTokens([p.slot]);
          }
          await this.stageMembers(c.slots, log);
          return;
        case 'PromotePrimary':
          await this.stageMembers([c.slot], log);
          return;
        case 'VerifyDuplicates': {
          const res = await this.canaryFrom(
            c.wrapAt,
            c.unwrapAt.map((s) => this.party(s)),
          );
          await this.persist(
            res.problems.length === 0
              ? { type: 'CanaryPassed', evidence: [res.evidence] }
              : { type: 'CanaryMismatch', evidence: [res.evidence], detail: res.problems.join('; ') },
          );
          return;
        }
        case 'ProveGroup':
          await this.prove(c.primary, c.duplicates);
          return;
        case 'RecordLineage':
          // A create run's group document comes into being here: every key exists and is proved, and the lineage
          // (which belongs to a group) is written next.
          if (this.run.kind === RunKind.CREATE || this.run.kind === RunKind.ADOPT) {
            await this.createGroupDocument(this.run, this.now());
          }
          await this.recordAndRelease();
          return;
        case 'ReplayGeneration':
          await this.replayGeneration(c.slot, c.generation, log);
          return;
        case 'ProveReplayed':
          await this.proveReplayed(c.slot, c.generation);
          return;
        case 'Release':
          if (this.run.kind === RunKind.ADD_REGION) {
            await this.join(); // persists Released, TargetMoved or Deferred itself
            return;
          }
          await this.release();
          await this.persist({ type: 'Released' });
          return;
        case 'GiveUp':
          await this.persist({ type: 'GaveUp', reason: c.reason });
          return;
      }
    } catch (err) {
      if (err instanceof Stopped || this.state.crashed) throw err;
      if (hasCode(err, 'LEASE_LOST')) throw err;
      const e = toRunError(err, this.now());
      log.warn('step failed', { code: e.code, retryable: e.retryable, correlationId: e.correlationId });
      if (!isAppError(err)) log.error('unexpected error', { error: err instanceof Error ? err.message : 'unknown' });
      await this.persist({ type: 'StepFailed', step, error: e });
    }
  }

  /** Fresh material for this run's generation, wrapped under the escrow key; the caller zeroes it. */
  private escrowNewMaterial(escrowKey: EscrowKeyRef) {
    const run = this.run;
    return generateAndEscrowKeeping(
      this.ctx.kp,
      this.ctx.random,
      escrowKey,
      run.groupId,
      run.generation,
      this.callOpts(),
    );
  }

  private callOpts() {
    return { correlationId: this.ctx.random.uuid() };
  }

  private canaryAad(): string[] {
    return ['lockstep-canary/v1', `group:${this.run.groupId}`, `generation:${this.run.generation}`];
  }

  /**
   * A canary from `slot` to `unwrapAt`: the member's read-back canary (wrapped right after this run's rotate) is
   * unwrapped at the others when it names the member's staged version and this generation's AAD; otherwise (a
   * version found on re-check, an older run document) a fresh DEK is wrapped first. With no target the read-back
   * alone is the evidence (one duplicate at verify: nothing to cross); a fresh canary then unwraps at its own member.
   */
  private canaryFrom(slot: string, unwrapAt: CanaryParty[]): Promise<CanaryResult> {
    const m = this.member(slot);
    const from = this.party(slot);
    const rb = m.readBack;
    const aad = this.canaryAad();
    const usable =
      rb !== undefined &&
      m.crn !== undefined &&
      m.versionId !== undefined &&
      rb.wrappedAt === m.crn &&
      rb.reportedVersions[m.crn] === m.versionId &&
      rb.aad.length === aad.length &&
      rb.aad.every((a, i) => a === aad[i]);
    if (usable) return crossCanary(this.ctx.kp, () => this.now(), rb, from, unwrapAt, this.callOpts());
    return runCanary(this.ctx.kp, this.ctx.random, () => this.now(), from, unwrapAt, aad, this.callOpts());
  }

  private party(slot: string): CanaryParty {
    const m = this.member(slot);
    return { ref: refOf(m), crn: m.crn as KeyCrn, ...(m.versionId ? { expectedVersionId: m.versionId } : {}) };
  }

  /**
   * Runs `fn` with the run's material while its escrow unwrap is still in flight (members overlap their import
   * token and re-check with it); zeroes it afterwards. An escrow that cannot be opened fails the step, not a member.
   */
  private async withMaterial(fn: (m: Promise<KeyMaterial>) => Promise<void>): Promise<void> {
    const run = this.run;
    if (!run.escrow) throw new Error('run has no escrowed material');
    const kept = this.kept;
    if (kept && !kept.isZeroed && fingerprintOf(kept) === run.escrow.fingerprint) {
      await fn(Promise.resolve(kept));
      return;
    }
    const opened = openEscrowedMaterial(this.ctx.kp, escrowKeyOf(run), run.escrow, this.callOpts());
    try {
      await fn(opened.material);
      await opened.material;
    } finally {
      opened.close();
    }
  }

  /** Slots grouped by Key Protect instance (region + instance id), in their original order. */
  private byInstance(slots: string[]): string[][] {
    const groups = new Map<string, string[]>();
    for (const slot of slots) {
      const m = this.member(slot);
      const k = instanceKeyOf(m);
      groups.set(k, [...(groups.get(k) ?? []), slot]);
    }
    return [...groups.values()];
  }

  private async readMembers(slots: string[]): Promise<Outcome> {
    const readings = await Promise.all(
      slots.map((slot) => readMemberState(this.ctx.kp, refOf(this.member(slot)), slot, this.callOpts())),
    );
    return { type: 'MembersRead', readings };
  }

  // ───────────── staging one member (duplicate, or the primary at promote) ─────────────

  /** One member's staging under its instance's import-token lease; returns its outcomes (saved by the caller). */
  private async stageOne(
    slot: string,
    material: Promise<KeyMaterial>,
    parent: Logger,
    correlationId: string,
    firstSend: boolean,
  ): Promise<Outcome[]> {
    this.alive();
    const m = this.member(slot);
    const log = parent.child({ crn: m.crn ?? slot, region: m.region, role: m.role });
    const leaseName = tokenLeaseName(m);
    const pre = await this.takePrepared(slot);
    const tokenLease = pre?.lease ?? (await this.acquireTokenLease(leaseName));
    if (!tokenLease) return [{ type: 'StepFailed', step: this.run.step, slot, error: this.leaseHeldError(m) }];
    // Released once, as soon as the member's secure import is over (the read-back needs no token), or at the end.
    let releasing: Promise<void> | undefined;
    const releaseToken = (): Promise<void> => {
      if (this.state.crashed) return Promise.resolve();
      releasing ??= this.ctx.stores.leases.release(tokenLease).catch(() => undefined);
      return releasing;
    };
    try {
      return this.run.kind === RunKind.CREATE
        ? await this.createOne(slot, material, log, correlationId)
        : await this.rotateOne(slot, material, log, correlationId, {
            ...(pre ? { token: pre.token } : {}),
            firstSend,
            tokenUsed: releaseToken,
          });
    } catch (err) {
      if (err instanceof Stopped || this.state.crashed) throw err;
      const escrowFailure = await material.then(
        () => undefined,
        (e: unknown) => e,
      );
      if (escrowFailure !== undefined) throw escrowFailure; // the step fails (see withMaterial), not this member
      const e = toRunError(err, this.now());
      log.warn('member step failed', { code: e.code, correlationId: e.correlationId });
      return [{ type: 'StepFailed', step: this.run.step, slot, error: e }];
    } finally {
      await releaseToken();
    }
  }

  private instanceKey(slot: string): string {
    return instanceKeyOf(this.member(slot));
  }

  /**
   * Starts fetching one import token per instance of `slots` (not already prepared), each under the instance's
   * token lease, taken once without waiting: an instance whose lease another run holds is simply not prefetched
   * (its member waits for the lease at its step, as without prefetching). Never awaited here; errors are kept.
   */
  private prepareTokens(slots: string[]): void {
    if (!this.ctx.kp.prepareImportToken || this.state.stopped) return;
    const refs = slots.filter((slot) => !this.prepared.has(this.instanceKey(slot))).map((s) => refOf(this.member(s)));
    for (const [key, entry] of prefetchImportTokens(this.ctx, refs, this.leaseHolder())) this.prepared.set(key, entry);
  }

  /** Takes what the claim prepared for this pass (its tokens and leases, the escrowed material): see PassSeed. */
  adopt(seed: PassSeed): void {
    for (const [key, entry] of seed.prepared) this.prepared.set(key, entry); // the pass has prepared nothing yet
    seed.prepared.clear();
    const run = this.run;
    if (seed.material && run.escrow && fingerprintOf(seed.material) === run.escrow.fingerprint) {
      this.keepMaterial(seed.material);
    } else seed.material?.zero();
    delete seed.material;
  }

  /**
   * The prepared token of `slot`'s instance (used once), when its lease was taken and is young enough (half its
   * time to live) to still be ours when the rotate is sent; otherwise its lease is released and `undefined`.
   */
  private async takePrepared(slot: string): Promise<PreparedToken | undefined> {
    const key = this.instanceKey(slot);
    const entry = this.prepared.get(key);
    if (!entry) return undefined;
    this.prepared.delete(key);
    const pre = await entry.catch(() => undefined);
    if (!pre) return undefined;
    if (this.now() - pre.atMs > this.ctx.config.tokenLeaseTtlMs / 2) {
      await this.ctx.stores.leases.release(pre.lease).catch(() => undefined);
      return undefined;
    }
    return pre;
  }

  /** The material this pass generated, once its escrow is persisted (zeroed by `close`). */
  private kept: KeyMaterial | undefined;

  private keepMaterial(m: KeyMaterial): void {
    this.kept?.zero();
    this.kept = m;
  }

  /** End of the pass: zeroes the kept material and frees the leases of unused prepared tokens. */
  async close(crashed: boolean): Promise<void> {
    this.kept?.zero();
    this.kept = undefined;
    if (!crashed) await this.releasePrepared();
  }

  /** Releases the leases of prepared tokens no member used (end of the pass: a wait, a failure, the run's end). */
  private async releasePrepared(): Promise<void> {
    await releasePreparedTokens(this.ctx.stores, this.prepared);
  }

  /** Serialises every secure import per instance (one import token per instance, last writer wins). */
  private async acquireTokenLease(name: string): Promise<Lease | undefined> {
    for (let i = 0; i < 20; i++) {
      this.alive();
      const l = await this.ctx.stores.leases.acquire(
        name,
        this.leaseHolder(),
        this.ctx.config.tokenLeaseTtlMs,
        this.now(),
      );
      if (l) return l;
      await this.ctx.sleep(50 + i * 25);
    }
    return undefined;
  }

  private leaseHolder(): string {
    return `${this.run.id}`;
  }

  /**
   * Re-check, then rotate: the member's versions are listed while the import token is fetched (and the escrow
   * unwrapped), and the rotate is sent only when the re-check allows it. A version newer than the snapshot is either
   * this run's material (done, never rotated twice) or foreign (noted; then rotated). After an ambiguous failure or a
   * 409 KEY_ROTATION_NOT_PERMITTED, list again: a new version means the rotate was applied.
   */
  private async rotateOne(
    slot: string,
    material: Promise<KeyMaterial>,
    log: Logger,
    correlationId: string,
    opts: {
      token?: Promise<PreparedImportToken | undefined>;
      firstSend?: boolean;
      /** Called when no more secure import will be sent for this member in this step (frees the token lease). */
      tokenUsed?: () => Promise<void>;
    } = {},
  ): Promise<Outcome[]> {
    const token = opts.token;
    const kp = this.ctx.kp;
    const m = this.member(slot);
    const ref = refOf(m);
    const out: Outcome[] = [];
    type Recheck = { done?: Outcome; foreign?: Outcome; baseline: string | undefined };
    const listAndAttribute = async (): Promise<Recheck> => {
      const versions = await kp.listVersions(ref, this.callOpts());
      const newest = versions[0];
      if (!newest || newest.id === m.snapshotVersionId) return { baseline: m.snapshotVersionId };
      const verdict = await this.attribute(m, newest.id);
      if (verdict !== 'foreign') {
        log.info('member already holds a new version; not rotating again', { versionId: newest.id, verdict });
        return {
          done: { type: 'MemberStaged', slot, versionId: newest.id, rotatedAtMs: newest.createdAtMs, via: 'found' },
          baseline: newest.id,
        };
      }
      log.warn('foreign version on member', { versionId: newest.id });
      return {
        foreign: { type: 'ForeignVersionFound', slot, versionId: newest.id, versionCount: versions.length },
        baseline: newest.id,
      };
    };
    // The first rotate this run sends to the member goes on the plan's snapshot: nothing of this run can be there
    // yet, and a foreign version in between is older than ours (the read-back names the newest). Any later send
    // (a retry, a resumed run: a call of this run is recorded) lists the versions first, and so does any error.
    const firstSend = opts.firstSend === true && m.snapshotVersionId !== undefined;
    let recheck: Promise<Recheck> = firstSend ? Promise.resolve({ baseline: m.snapshotVersionId }) : listAndAttribute();
    recheck.catch(() => undefined); // awaited below in every path
    this.alive();
    // The correlation id was persisted before the step sent anything (stageMembers): the events function matches
    // the Activity Tracker event's correlation id with it, so only a rotate lockstep made counts as its own.
    log.info('rotating member', { kpCorrelationId: correlationId });
    let rotateError: { err: unknown } | undefined;
    try {
      await kp.rotateWithMaterial(ref, material, {
        correlationId,
        ...(token ? { token } : {}),
        proceed: recheck.then(
          (r) => r.done === undefined && !this.state.stopped,
          () => false,
        ),
      });
    } catch (err) {
      rotateError = { err };
      if (firstSend) recheck = listAndAttribute(); // never decide on an error without listing the versions
    }
    const checked = await recheck;
    if (checked.done) return [checked.done];
    if (checked.foreign) out.push(checked.foreign);
    const baseline = checked.baseline;
    this.alive();
    let tokenRetried = false;
    while (rotateError) {
      const err = rotateError.err;
      rotateError = undefined;
      if (hasCode(err, 'IMPORT_TOKEN_NONCE_MISMATCH', 'IMPORT_TOKEN_EXPIRED') && !tokenRetried) {
        // The token was overwritten between our get and our rotate (someone outside lockstep's lease): the
        // rotate was rejected, so it is safe to run the whole secure-import sequence once more.
        tokenRetried = true;
        log.warn('import token overwritten; retrying the secure import once', { kpCorrelationId: correlationId });
        try {
          await kp.rotateWithMaterial(ref, material, { correlationId });
        } catch (again) {
          rotateError = { err: again };
        }
        continue;
      }
      if (isAmbiguous(err) || hasCode(err, 'ROTATION_TOO_SOON')) {
        const after = await kp.listVersions(ref, this.callOpts());
        if (after[0] && after[0].id !== baseline) {
          log.info('rotate was applied despite the error', { versionId: after[0].id, code: (err as AppError).code });
          out.push({
            type: 'MemberStaged',
            slot,
            versionId: after[0].id,
            rotatedAtMs: after[0].createdAtMs,
            via: 'found',
          });
          return out;
        }
      }
      if (hasCode(err, 'ROTATION_TOO_SOON')) {
        const key = await kp.getKey(ref, this.callOpts());
        const wait = Math.max(
          0,
          (key.lastRotateAtMs ?? this.now()) + this.ctx.config.rotationMinIntervalMs - this.now(),
        );
        out.push({
          type: 'StepFailed',
          step: this.run.step,
          slot,
          error: { ...toRunError(err, this.now()), retryAfterMs: wait },
        });
        return out;
      }
      throw err;
    }
    const rotatedAtMs = this.now();
    // The import token is spent: its instance's lease is freed while the read-back goes out (awaited by the caller).
    void opts.tokenUsed?.();
    // The read-back is a canary wrap: Key Protect wraps with the key's newest version and names it, so the same
    // round trip that reads the new version back leaves a canary for the verify and prove steps to unwrap elsewhere.
    const readBack = await wrapCanary(
      kp,
      this.ctx.random,
      () => this.now(),
      ref,
      m.crn as KeyCrn,
      this.canaryAad(),
      this.callOpts(),
    );
    const versionId = readBack.reportedVersions[m.crn as KeyCrn] as KeyVersionId | undefined;
    if (!versionId || versionId === baseline) {
      out.push({
        type: 'StepFailed',
        step: this.run.step,
        slot,
        error: {
          code: 'UPSTREAM_UNAVAILABLE',
          message: 'rotate succeeded but no new version is listed yet',
          retryable: true,
          atMs: this.now(),
        },
      });
      return out;
    }
    // The rotate's acknowledgement time (within one round trip of the version's creation date in Key Protect).
    out.push({ type: 'MemberStaged', slot, versionId, rotatedAtMs, via: 'rotate', readBack });
    return out;
  }

  /**
   * Does the member's new version hold this run's material? Proven by a canary when something to compare with
   * exists (this run's canary evidence, or another member staged by this run); otherwise attributed provisionally
   * and proven by the verify/prove canaries.
   */
  private async attribute(m: RunMember, _versionId: string): Promise<'ours' | 'foreign' | 'unproven'> {
    const run = this.run;
    const evidence = run.canaries.find((c) => c.ok);
    if (evidence) {
      const r = await probeEvidence(this.ctx.kp, refOf(m), evidence, this.callOpts());
      return r.holds ? 'ours' : 'foreign';
    }
    const saved = run.members.find(
      (x) => x.slot !== m.slot && x.progress === MemberProgress.STAGED && x.stagedVia !== 'found' && x.keyId,
    );
    const inStep = [...this.stepStaged].find(([slot]) => slot !== m.slot);
    const reference =
      saved ?? (inStep ? { ...this.member(inStep[0]), versionId: inStep[1] as KeyVersionId } : undefined);
    if (reference) {
      const res = await runCanary(
        this.ctx.kp,
        this.ctx.random,
        () => this.now(),
        { ref: refOf(reference), crn: reference.crn as KeyCrn, expectedVersionId: reference.versionId as string },
        [{ ref: refOf(m), crn: m.crn as KeyCrn }],
        this.canaryAad(),
        this.callOpts(),
      );
      return res.problems.length === 0 ? 'ours' : 'foreign';
    }
    return 'unproven';
  }

  // ───────────── create: keys made under the run's intent, found again by alias after a crash ─────────────

  /** A key this run may already have made: Key Protect resolves it by the alias the intent names. */
  private async findByAlias(at: { region: RunMember['region']; instanceId: RunMember['instanceId'] }, alias: string) {
    return this.ctx.kp.findKeyByAlias({ region: at.region, instanceId: at.instanceId }, alias, this.callOpts());
  }

  /** The create run's escrow key: found by its intent alias (a crashed worker made it), or made now. */
  private async ensureEscrowKey(): Promise<EscrowKeyRef> {
    const plan = this.run.createIntent?.escrow;
    if (!plan) throw new AppError('INTERNAL', `run ${this.run.id} has neither an escrow key nor a plan for one`);
    const key =
      (await this.findByAlias(plan, plan.alias)) ??
      (await this.ctx.kp.createGeneratedRootKey(
        {
          region: plan.region,
          instanceId: plan.instanceId,
          name: plan.name,
          description: plan.description,
          aliases: [plan.alias],
        },
        this.callOpts(),
      ));
    return { region: plan.region, instanceId: plan.instanceId, keyId: key.id, crn: key.crn };
  }

  /**
   * Creates a member's key with the run's material (secure import), named and aliased as the intent says. A key
   * with the intent's alias is this run's (a crashed worker made it): it is taken as found, never created twice; the
   * verify and prove canaries then prove it holds the material. The random correlation id is persisted first.
   */
  private async createOne(
    slot: string,
    material: Promise<KeyMaterial>,
    log: Logger,
    recordedCorrelationId?: string,
  ): Promise<Outcome[]> {
    const m = this.member(slot);
    const spec = this.run.createIntent?.keys[slot];
    if (!spec) throw new AppError('INTERNAL', `run ${this.run.id} has no key plan for ${slot}`);
    const staged = (k: KeyInfo, via: 'found' | 'create'): Outcome[] => [
      {
        type: 'MemberStaged',
        slot,
        versionId: k.currentVersionId,
        rotatedAtMs: k.creationAtMs,
        via,
        keyId: k.id,
        crn: k.crn,
        ...(k.keyRingId && k.keyRingId !== 'default' ? { keyRingId: k.keyRingId } : {}),
      },
    ];
    const existing = await this.findByAlias(m, spec.alias);
    if (existing) {
      log.info('member key already made by this run; adopting it', { keyId: existing.id });
      return staged(existing, 'found');
    }
    const correlationId = recordedCorrelationId ?? this.ctx.random.uuid();
    if (!recordedCorrelationId) {
      await this.recordCall(slot, { action: 'kms.secrets.create', correlationId, atMs: this.now() });
    }
    this.alive();
    try {
      const key = await this.ctx.kp.createImportedKey(
        {
          region: m.region,
          instanceId: m.instanceId,
          name: spec.name,
          description: spec.description,
          aliases: [spec.alias],
          material: await material,
          ...(m.keyRingId ? { keyRingId: m.keyRingId } : {}),
        },
        { correlationId },
      );
      return staged(key, 'create');
    } catch (err) {
      if (!isAmbiguous(err)) throw err;
      const found = await this.findByAlias(m, spec.alias);
      if (!found) throw err;
      return staged(found, 'found');
    }
  }

  // ───────────── catch-up: re-import one recorded generation, prove it ─────────────

  /**
   * Re-imports `generation` from escrow into the member under its instance's import-token lease. Re-checks first:
   * Key Protect's 1 h rule (`lastRotateAtMs`, read now), and a version newer than the member's baseline (a crashed
   * worker's re-import: proved by the generation's canary, then taken as found, never imported twice). The random
   * correlation id is persisted before the rotate is sent.
   */
  private async replayGeneration(slot: string, generation: number, log: Logger): Promise<void> {
    const kp = this.ctx.kp;
    const m = this.member(slot);
    const escrow = await escrowOf(this.ctx.stores, this.run.groupId, generation);
    if (!escrow) {
      throw new AppError('VALIDATION_FAILED', `generation ${generation} of ${this.run.groupId} is not escrowed`);
    }
    const tokenLease = await this.acquireTokenLease(tokenLeaseName(m));
    if (!tokenLease) {
      await this.persist({ type: 'StepFailed', step: this.run.step, slot, error: this.leaseHeldError(m) });
      return;
    }
    try {
      if (!m.keyId) {
        // An add-region run's generation 1: the new member's key, made from that generation's escrowed material.
        const made = await withEscrowedMaterial(kp, escrowKeyOf(this.run), escrow, (material) =>
          this.createOne(slot, Promise.resolve(material), log),
        );
        for (const o of made) await this.persist(o);
        return;
      }
      const ref = refOf(m);
      const baseline = m.snapshotVersionId;
      const [key, versions] = await Promise.all([
        kp.getKey(ref, this.callOpts()),
        kp.listVersions(ref, this.callOpts()),
      ]);
      const newest = versions[0];
      if (newest && newest.id !== baseline && (await this.holdsGeneration(m, generation, newest.id))) {
        log.info('member already holds the re-imported generation; not importing twice', { generation });
        await this.persist({
          type: 'MemberStaged',
          slot,
          versionId: newest.id,
          rotatedAtMs: newest.createdAtMs,
          via: 'found',
        });
        return;
      }
      const allowedAt = (key.lastRotateAtMs ?? 0) + this.ctx.config.rotationMinIntervalMs;
      if (key.lastRotateAtMs !== undefined && allowedAt > this.now()) {
        const error: RunError = {
          code: 'ROTATION_TOO_SOON',
          message: `Key Protect allows the next rotation of this key at ${new Date(allowedAt).toISOString()}`,
          retryable: true,
          retryAfterMs: allowedAt - this.now(),
          atMs: this.now(),
        };
        await this.persist({ type: 'StepFailed', step: this.run.step, slot, error });
        return;
      }
      const before = newest?.id;
      const correlationId = this.ctx.random.uuid();
      await this.recordCall(slot, { action: 'kms.secrets.rotate', correlationId, atMs: this.now() });
      log.info('re-importing generation', { generation, kpCorrelationId: correlationId });
      await withEscrowedMaterial(kp, escrowKeyOf(this.run), escrow, async (material) => {
        try {
          await kp.rotateWithMaterial(ref, material, { correlationId });
        } catch (err) {
          if (!isAmbiguous(err) && !hasCode(err, 'ROTATION_TOO_SOON')) throw err;
          const after = await kp.listVersions(ref, this.callOpts());
          if (!after[0] || after[0].id === before) throw err; // not applied
        }
      });
      const after = await kp.listVersions(ref, this.callOpts());
      const v = after[0];
      if (!v || v.id === before) {
        throw new AppError('UPSTREAM_UNAVAILABLE', 'rotate succeeded but no new version is listed yet', {
          retryable: true,
        });
      }
      await this.persist({ type: 'MemberStaged', slot, versionId: v.id, rotatedAtMs: v.createdAtMs, via: 'rotate' });
    } catch (err) {
      if (err instanceof Stopped || this.state.crashed) throw err;
      const e = toRunError(err, this.now());
      log.warn('re-import failed', { code: e.code, correlationId: e.correlationId });
      await this.persist({ type: 'StepFailed', step: this.run.step, slot, error: e });
    } finally {
      if (!this.state.crashed) await this.ctx.stores.leases.release(tokenLease).catch(() => undefined);
    }
  }

  /** Does the member hold `generation` (its lineage canary unwraps there) at `versionId`? */
  private async holdsGeneration(m: RunMember, generation: number, versionId: string): Promise<boolean> {
    const canary = (await this.ctx.stores.lineage.get(this.run.groupId, generation)).verification.find((c) => c.ok);
    if (!canary) return false;
    const r = await probeEvidence(this.ctx.kp, refOf(m), canary, this.callOpts());
    return r.holds && r.versionId === versionId;
  }

  /** Proves a re-imported generation: its lineage canary unwraps at the member, reporting the new version. */
  private async proveReplayed(slot: string, generation: number): Promise<void> {
    const m = this.member(slot);
    const record = await this.ctx.stores.lineage.get(this.run.groupId, generation);
    const canary = record.verification.find((c) => c.ok);
    if (!canary) {
      // Nothing recorded to compare with (an adopted generation): the re-import is taken on the escrow's fingerprint.
      await this.persist({ type: 'CanaryPassed', evidence: [] });
      return;
    }
    const r = await probeEvidence(this.ctx.kp, refOf(m), canary, this.callOpts());
    const ok = r.holds && r.versionId === m.versionId;
    const evidence: CanaryEvidence = {
      ...canary,
      unwrappedAt: [m.crn as KeyCrn],
      reportedVersions: r.versionId ? { [m.crn as string]: r.versionId } : {},
      ok,
      atMs: this.now(),
    };
    await this.persist(
      ok
        ? { type: 'CanaryPassed', evidence: [evidence] }
        : {
            type: 'CanaryMismatch',
            evidence: [evidence],
            detail: r.holds ? `reported version ${r.versionId}, expected ${m.versionId}` : 'does not hold the material',
          },
    );
  }

  /** A catch-up's release: the member holds every recorded generation again; the group is verified next. */
  private async releaseCatchUp(): Promise<void> {
    const run = this.run;
    const nowMs = this.now();
    const m = run.members[0]!;
    await this.ctx.stores.groups.mutate(run.groupId, (g) => {
      const out: Group = { ...g, updatedAtMs: nowMs, verifyDueAtMs: nowMs };
      if (g.activeRunId === run.id) delete out.activeRunId;
      if (g.statusReason?.startsWith(CATCH_UP_REASON) || g.statusReason?.startsWith('Verification')) {
        out.status = 'healthy';
        delete out.statusReason;
      }
      return out;
    });
    this.log.info('member caught up', { crn: m.crn, generation: run.generation });
    await this.notify('caught-up', run);
  }

  /**
   * An add-region run's release: the new duplicate holds every generation the group had when it planned. It joins
   * when it holds the group's current generation and no rotation holds the group; a group that rotated meanwhile
   * moves the target (replayed first); a running rotation defers the join.
   */
  private async join(): Promise<void> {
    const run = this.run;
    const nowMs = this.now();
    const { value: group } = await this.ctx.stores.groups.get(run.groupId);
    if (group.currentGeneration > run.generation) {
      const more = group.currentGeneration - run.generation;
      await this.persist({
        type: 'TargetMoved',
        generation: group.currentGeneration,
        deadlineAtMs: nowMs + this.ctx.config.runDeadlineMs + more * this.ctx.config.rotationMinIntervalMs,
      });
      return;
    }
    if (group.activeRunId) {
      await this.persist({
        type: 'Deferred',
        untilMs: nowMs + this.ctx.config.retryBaseMs,
        reason: `waiting for run ${group.activeRunId} to finish before joining the group`,
      });
      return;
    }
    const m = run.members[0]!;
    await this.ctx.stores.groups.mutate(group.id, (x): Group => {
      if (x.members.some((y) => y.instanceId === m.instanceId)) return x;
      return { ...x, members: [...x.members, ...membersOf(run)], updatedAtMs: nowMs };
    });
    this.log.info('new region joined the group', { region: m.region, generation: run.generation });
    if (this.ctx.notifier) {
      await this.ctx.notifier
        .publish({
          type: 'com.ibm.lockstep.region.added',
          subject: group.id,
          data: { groupId: group.id, runId: run.id, region: m.region, crn: m.crn ?? '', generation: run.generation },
        })
        .catch(() => undefined);
    }
    await this.persist({ type: 'Released' });
  }

  private leaseHeldError(m: RunMember): RunError {
    return {
      code: 'LEASE_HELD',
      message: `the import token of instance ${m.instanceId} (${m.region}) is in use by another worker`,
      retryable: true,
      // a busy token is held for a few round trips: look again soon (a dead holder's lease expires on its own)
      retryAfterMs: Math.min(5_000, Math.ceil(this.ctx.config.tokenLeaseTtlMs / 4)),
      atMs: this.now(),
    };
  }

  // ───────────── prove, record, release ─────────────

  private async prove(primarySlot: string, dupSlots: string[]): Promise<void> {
    const evidence: CanaryEvidence[] = [];
    const problems: string[] = [];
    const p = this.party(primarySlot);
    const dups = dupSlots.map((s) => this.party(s));
    // The lineage head is read meanwhile for the record step (the store refuses an append on a stale head).
    this.headAhead = this.ctx.stores.lineage.head(this.run.groupId);
    this.headAhead.catch(() => undefined);
    // The forward canary (primary → every duplicate) and each reverse one (duplicate → primary) are independent:
    // run them together; evidence keeps the order forward, then duplicates in slot order.
    const settled = await Promise.allSettled([
      this.canaryFrom(primarySlot, dups),
      ...dupSlots.map((d) => this.canaryFrom(d, [p])),
    ]);
    for (const r of settled) {
      if (r.status === 'rejected') throw r.reason;
      evidence.push(r.value.evidence);
      problems.push(...r.value.problems);
    }
    await this.persist(
      problems.length === 0
        ? { type: 'CanaryPassed', evidence }
        : { type: 'CanaryMismatch', evidence, detail: problems.join('; ') },
    );
  }

  /**
   * Records the lineage, and releases at once when the decider's next command is the release (one save for both): a
   * worker that resumes at `record` finds the lineage record its own and releases again (the group update is
   * idempotent), as one resuming at `release` would.
   */
  private async recordAndRelease(): Promise<void> {
    const recorded: Outcome = { type: 'LineageRecorded', hash: await this.recordLineage() };
    const after = applyOutcome(this.run, recorded, this.now(), this.ctx.config);
    const d = decide(after, this.now());
    if (d.kind !== 'command' || d.command.type !== 'Release') {
      await this.persist(recorded);
      return;
    }
    await this.release(after);
    await this.persistAll([recorded, { type: 'Released' }]);
  }

  /** The lineage head read during the prove step (used once by the record step). */
  private headAhead: Promise<LineageRecord | undefined> | undefined;

  private async recordLineage(): Promise<string> {
    const { lineage } = this.ctx.stores;
    const run = this.run;
    const ahead = this.headAhead;
    this.headAhead = undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const early = attempt === 0 ? await ahead?.catch(() => undefined) : undefined;
      const head = early ?? (await lineage.head(run.groupId));
      if (head && head.generation >= run.generation) {
        const existing = head.generation === run.generation ? head : await lineage.get(run.groupId, run.generation);
        if (existing.runId !== run.id) {
          throw new Error(`generation ${run.generation} of ${run.groupId} was recorded by run ${existing.runId}`);
        }
        await this.ensureCheckpoint(existing);
        return existing.hash;
      }
      const record = buildLineageRecord(
        {
          groupId: run.groupId,
          generation: run.generation,
          fingerprint: run.fingerprint ?? 'unknown',
          trigger: run.trigger,
          runId: run.id,
          startedAtMs: run.startedAtMs,
          finishedAtMs: Math.max(this.now(), run.startedAtMs),
          members: run.members.map((m) => ({
            role: m.role,
            region: m.region,
            instanceId: m.instanceId,
            keyId: m.keyId as KeyId,
            crn: m.crn as KeyCrn,
            keyVersionId: m.versionId as KeyVersionId,
            rotatedAtMs: m.rotatedAtMs ?? run.startedAtMs,
            evidence: m.evidence,
          })),
          verification: run.canaries,
          status: run.status === 'diverged' ? 'diverged' : 'complete',
          ...(run.notes.length > 0 ? { notes: run.notes } : {}),
        },
        head,
      );
      try {
        await lineage.append(record);
      } catch (err) {
        if (hasCode(err, 'STORE_CONFLICT')) continue; // someone appended: re-read the head
        if (early && hasCode(err, 'CHAIN_BROKEN', 'VALIDATION_FAILED')) continue; // the early head was stale
        throw err;
      }
      this.log.info('lineage recorded', { generation: record.generation, hash: record.hash });
      await this.ensureCheckpoint(record);
      return record.hash;
    }
    throw new Error('could not append the lineage record after 3 attempts');
  }

  private async ensureCheckpoint(record: LineageRecord): Promise<void> {
    const signing = this.ctx.config.checkpointSigning;
    if (!signing) return;
    const latest = await this.ctx.stores.checkpoints.latest(record.groupId);
    if (latest && latest.generation >= record.generation) return;
    const cp = signCheckpoint(
      { groupId: record.groupId, generation: record.generation, headHash: record.hash, signedAtMs: this.now() },
      { privateKey: signing.privateKey, ...(signing.keyId ? { keyId: signing.keyId } : {}) },
    );
    await this.ctx.stores.checkpoints.put(cp);
  }

  private async release(run: RotationRun = this.run): Promise<void> {
    if (run.kind === RunKind.CATCH_UP) return this.releaseCatchUp();
    const nowMs = this.now();
    const diverged = run.status === 'diverged';
    const isCreate = run.kind === RunKind.CREATE || run.kind === RunKind.ADOPT;
    // An adopted group's schedule counts from its members' last rotation; a created one's from now.
    const rotatedAtMs =
      run.kind === RunKind.ADOPT ? Math.max(...run.members.map((m) => m.rotatedAtMs ?? nowMs)) : nowMs;
    await this.ctx.stores.groups.mutate(run.groupId, (g) => {
      if (isCreate && g.currentGeneration >= run.generation) return g; // already released
      const next: Group = {
        ...g,
        // a create run is where the group's members come from
        ...(isCreate
          ? {
              members: membersOf(run),
            }
          : {}),
        status: diverged ? 'diverged' : 'healthy',
        currentGeneration: isCreate ? run.generation : Math.max(g.currentGeneration, run.generation),
        // adopted material was never seen: escrow starts with the first lockstep rotation
        ...(run.kind === RunKind.ADOPT ? { escrowedFromGeneration: run.generation + 1 } : {}),
        lastRotatedAtMs: rotatedAtMs,
        updatedAtMs: nowMs,
      };
      if (diverged && run.statusReason) next.statusReason = run.statusReason;
      else delete next.statusReason;
      if (g.activeRunId === run.id) delete next.activeRunId;
      if (this.ctx.config.verifyIntervalMs > 0) next.verifyDueAtMs = nowMs + this.ctx.config.verifyIntervalMs;
      const due = this.ctx.nextDueAtMs(next, rotatedAtMs);
      if (due !== undefined) next.nextDueAtMs = due;
      return next;
    });
    const healed = run.trigger.kind === 'event' || run.heals === true;
    await this.notify(diverged ? 'diverged' : 'completed', run);
    if (healed && !diverged) await this.notify('healed', run);
  }

  /**
   * A create run writes its group when every key exists and is proved (before that, nothing but the run names
   * them). An existing group document (written by an earlier version of the create use case) is left to the mutate.
   */
  private async createGroupDocument(run: RotationRun, nowMs: number): Promise<void> {
    if (await this.ctx.stores.groups.find(run.groupId)) return;
    const spec = run.groupSpec;
    if (!spec) throw new AppError('INTERNAL', `create run ${run.id} has no group spec`);
    try {
      await this.ctx.stores.groups.create({
        id: run.groupId,
        name: spec.name,
        ...(spec.description ? { description: spec.description } : {}),
        members: membersOf(run),
        escrow: run.escrowKey ?? (await this.ensureEscrowKey()),
        schedule: spec.schedule,
        status: 'rotating',
        currentGeneration: 0,
        activeRunId: run.id,
        createdAtMs: run.createdAtMs,
        updatedAtMs: nowMs,
      });
    } catch (err) {
      if (!hasCode(err, 'GROUP_EXISTS', 'STORE_CONFLICT')) throw err;
    }
  }

  private async onStatusChange(before: RotationRun, next: RotationRun): Promise<void> {
    if (next.kind === RunKind.CATCH_UP) return this.onCatchUpChange(before, next);
    if (next.kind !== RunKind.ROTATION && next.kind !== RunKind.CREATE) return;
    const terminalDiverged = next.status === 'diverged' && next.step !== Step.RECORD && next.step !== Step.RELEASE;
    if (next.status === before.status && !terminalDiverged) return;
    const nowMs = this.now();
    if (next.status === 'degraded' || next.status === 'failed' || terminalDiverged || next.status === 'running') {
      await this.ctx.stores.groups
        .mutate(next.groupId, (g) => {
          const status =
            next.status === 'running'
              ? 'rotating'
              : next.status === 'failed'
                ? 'failed'
                : next.status === 'degraded'
                  ? 'degraded'
                  : 'diverged';
          const out: Group = { ...g, status, updatedAtMs: nowMs };
          if (next.statusReason && status !== 'rotating') out.statusReason = next.statusReason;
          else delete out.statusReason;
          // A divergence before promotion ends the run: free the group for a healing rotation.
          if (terminalDiverged && g.activeRunId === next.id) delete out.activeRunId;
          return out;
        })
        .catch((err) =>
          this.log.warn('could not update group status', { code: isAppError(err) ? err.code : 'INTERNAL' }),
        );
    }
    if (next.status !== before.status && ['failed', 'degraded', 'diverged'].includes(next.status)) {
      await this.notify(next.status, next);
    }
  }

  /**
   * While a catch-up runs, the group says which generations its member cannot unwrap yet (degraded); a failure or a
   * canary that does not unwrap is notified like a rotation's.
   */
  private async onCatchUpChange(before: RotationRun, next: RotationRun): Promise<void> {
    if (next.step === Step.RELEASE || next.step === Step.DONE) return;
    const terminal = next.status === 'failed' || next.status === 'diverged';
    const reason = next.statusReason?.startsWith(CATCH_UP_REASON) ? next.statusReason : undefined;
    await this.ctx.stores.groups
      .mutate(next.groupId, (g) => {
        if (g.activeRunId !== next.id) return g;
        const out: Group = {
          ...g,
          status: next.status === 'diverged' ? 'diverged' : next.status === 'failed' ? 'failed' : 'degraded',
          statusReason: (reason ?? next.statusReason ?? catchUpReason(next)).slice(0, 1000),
          updatedAtMs: this.now(),
        };
        if (terminal && next.status === 'diverged') delete out.activeRunId;
        return out;
      })
      .catch((err) =>
        this.log.warn('could not update group status', { code: isAppError(err) ? err.code : 'INTERNAL' }),
      );
    if (next.status !== before.status && ['failed', 'degraded', 'diverged'].includes(next.status)) {
      await this.notify(`catch-up.${next.status}`, next);
    }
  }

  private async notify(kind: string, run: RotationRun): Promise<void> {
    if (!this.ctx.notifier) return;
    try {
      await this.ctx.notifier.publish({
        type: `com.ibm.lockstep.rotation.${kind}`,
        subject: run.groupId,
        data: {
          groupId: run.groupId,
          runId: run.id,
          generation: run.generation,
          status: run.status,
          step: run.step,
          ...(run.fingerprint ? { fingerprint: run.fingerprint } : {}),
          ...(run.statusReason ? { reason: run.statusReason } : {}),
        },
      });
    } catch (err) {
      this.log.warn('notification failed', { kind, code: isAppError(err) ? err.code : 'INTERNAL' });
    }
  }
}

export type { AtEvidence };
