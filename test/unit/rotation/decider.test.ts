import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GroupId, InstanceId, KeyCrn, KeyId, KeyVersionId, RegionId, RunId } from '../../../src/core/index.js';
import {
  applyOutcome,
  backoffMs,
  type DeciderConfig,
  decide,
  newRun,
  type Outcome,
  type RotationRun,
  RunKind,
  reopenRun,
  Step,
} from '../../../src/rotation/index.js';

const cfg: DeciderConfig = { rotationMinIntervalMs: 3_600_000, retryBaseMs: 1_000, retryMaxMs: 60_000 };
const T0 = 1_800_000_000_000;
const v = (s: string) => s as KeyVersionId;

function member(role: 'primary' | 'duplicate', i: number) {
  return {
    role,
    region: (['us-south', 'us-east', 'eu-de', 'eu-gb', 'jp-tok'][i] ?? 'us-south') as RegionId,
    instanceId: `inst-${i}` as InstanceId,
    keyId: `key-${i}` as KeyId,
    crn: `crn-${i}` as KeyCrn,
  };
}

function run(dups = 2, kind: RunKind = RunKind.ROTATION): RotationRun {
  return newRun({
    id: 'run-test-g2-aaaa' as RunId,
    groupId: 'g' as GroupId,
    generation: 2,
    kind,
    trigger: { kind: 'operator', by: 't' },
    members: [member('primary', 0), ...Array.from({ length: dups }, (_, i) => member('duplicate', i + 1))],
    escrowKey: {
      region: 'us-south' as RegionId,
      instanceId: 'e' as InstanceId,
      keyId: 'ek' as KeyId,
      crn: 'ecrn' as KeyCrn,
    },
    nowMs: T0,
    deadlineAtMs: T0 + 3_600_000,
  });
}

const readings = (r: RotationRun, over: Partial<{ state: number; lastRotateAtMs: number }> = {}): Outcome => ({
  type: 'MembersRead',
  readings: r.members.map((m, i) => ({
    slot: m.slot,
    state: over.state ?? 1,
    deleted: false,
    currentVersionId: v(`v0-${i}`),
    versionCount: 1,
    ...(over.lastRotateAtMs !== undefined ? { lastRotateAtMs: over.lastRotateAtMs } : {}),
  })),
});

const escrowed: Outcome = {
  type: 'MaterialEscrowed',
  fingerprint: 'fp1:abc',
  escrow: { keyCrn: 'ecrn' as KeyCrn, ciphertext: 'c', aad: ['a'], fingerprint: 'fp1:abc' },
};

const staged = (slot: string, id: string): Outcome => ({
  type: 'MemberStaged',
  slot,
  versionId: v(id),
  rotatedAtMs: T0,
  via: 'rotate',
});

/** Drives a run to `step` along the happy path. */
function at(step: Step, dups = 2): RotationRun {
  let r = run(dups);
  const go = (o: Outcome) => {
    r = applyOutcome(r, o, T0, cfg);
  };
  if (step === Step.PLAN) return r;
  go(readings(r));
  if (step === Step.GENERATE) return r;
  go(escrowed);
  if (step === Step.STAGE) return r;
  for (const m of r.members.filter((x) => x.role === 'duplicate')) go(staged(m.slot, `v1-${m.slot}`));
  if (step === Step.VERIFY) return r;
  go({ type: 'CanaryPassed', evidence: [] });
  if (step === Step.PROMOTE) return r;
  go(staged(r.members[0]!.slot, 'v1-primary'));
  if (step === Step.PROVE) return r;
  go({ type: 'CanaryPassed', evidence: [] });
  if (step === Step.RECORD) return r;
  go({ type: 'LineageRecorded', hash: 'h' });
  if (step === Step.RELEASE) return r;
  go({ type: 'Released' });
  return r;
}

describe('decide', () => {
  it.each([
    { step: Step.PLAN, command: 'ReadMembers' },
    { step: Step.GENERATE, command: 'GenerateMaterial' },
    { step: Step.STAGE, command: 'StageMembers' },
    { step: Step.VERIFY, command: 'VerifyDuplicates' },
    { step: Step.PROMOTE, command: 'PromotePrimary' },
    { step: Step.PROVE, command: 'ProveGroup' },
    { step: Step.RECORD, command: 'RecordLineage' },
    { step: Step.RELEASE, command: 'Release' },
  ])('at $step commands $command', ({ step, command }) => {
    // Arrange
    const r = at(step);
    // Act
    const d = decide(r, T0);
    // Assert
    expect(r.step).toBe(step);
    expect(d.kind === 'command' && d.command.type).toBe(command);
  });

  it('is finished (completed) after release', () => {
    const r = at(Step.DONE);
    expect(r.status).toBe('completed');
    expect(decide(r, T0)).toEqual({ kind: 'finished', status: 'completed', reason: undefined });
  });

  it('stages only the duplicates, never the primary', () => {
    const d = decide(at(Step.STAGE, 3), T0);
    expect(d.kind === 'command' && d.command.type === 'StageMembers' && d.command.slots).toEqual([
      'duplicate:us-east:inst-1',
      'duplicate:eu-de:inst-2',
      'duplicate:eu-gb:inst-3',
    ]);
  });

  it('verifies by wrapping at the first duplicate and unwrapping at the others', () => {
    const d = decide(at(Step.VERIFY, 3), T0);
    expect(d).toMatchObject({
      kind: 'command',
      command: {
        type: 'VerifyDuplicates',
        wrapAt: 'duplicate:us-east:inst-1',
        unwrapAt: ['duplicate:eu-de:inst-2', 'duplicate:eu-gb:inst-3'],
      },
    });
  });

  it('skips verify for a group without duplicates', () => {
    const r = at(Step.VERIFY, 0);
    expect(decide(r, T0)).toMatchObject({ command: { type: 'PromotePrimary' } });
  });

  it('a plan read at claim time moves the run to generate but leaves it pending until a worker runs it', () => {
    const r0 = run();
    const claimed = applyOutcome(r0, { ...readings(r0), atClaim: true } as Outcome, T0, cfg);
    expect(claimed).toMatchObject({ step: Step.GENERATE, status: 'pending' });
    expect(claimed.members.map((m) => m.snapshotVersionId)).toEqual(r0.members.map((_, i) => `v0-${i}`));
    expect(decide(claimed, T0)).toMatchObject({ command: { type: 'GenerateMaterial' } });
    expect(applyOutcome(r0, readings(r0), T0, cfg).status).toBe('running');
  });

  it('plans around the one-rotation-per-hour rule', () => {
    const r0 = run();
    const r = applyOutcome(r0, readings(r0, { lastRotateAtMs: T0 - 600_000 }), T0, cfg);
    expect(r.step).toBe(Step.PLAN);
    expect(r.status).toBe('pending');
    expect(r.nextAttemptAtMs).toBe(T0 - 600_000 + 3_600_000);
    expect(decide(r, T0)).toMatchObject({ kind: 'wait', untilMs: T0 + 3_000_000 });
    expect(decide(r, T0 + 3_000_000)).toMatchObject({ command: { type: 'ReadMembers' } });
  });

  it('degrades when a member is not active, then gives up at the deadline with an explanation', () => {
    const r0 = run();
    const r = applyOutcome(r0, readings(r0, { state: 2 }), T0, cfg);
    expect(r.status).toBe('degraded');
    expect(r.statusReason).toContain('not active');
    const d = decide(r, T0 + 3_600_000);
    expect(d.kind === 'command' && d.command.type).toBe('GiveUp');
    const failed = applyOutcome(
      r,
      { type: 'GaveUp', reason: d.kind === 'command' && d.command.type === 'GiveUp' ? d.command.reason : '' },
      T0 + 3_600_000,
      cfg,
    );
    expect(failed.status).toBe('failed');
    expect(failed.statusReason).toMatch(/primary was NOT rotated.*resume/);
    expect(decide(failed, T0 + 3_600_000).kind).toBe('finished');
  });

  it('a blocked duplicate blocks promotion and the run waits for its backoff', () => {
    let r = at(Step.STAGE);
    const [d1, d2] = r.members.filter((m) => m.role === 'duplicate');
    r = applyOutcome(r, staged(d1!.slot, 'v1-a'), T0, cfg);
    r = applyOutcome(
      r,
      {
        type: 'StepFailed',
        step: Step.STAGE,
        slot: d2!.slot,
        error: { code: 'UPSTREAM_UNAVAILABLE', message: 'down', retryable: true, atMs: T0 },
      },
      T0,
      cfg,
    );
    expect(r.step).toBe(Step.STAGE);
    expect(r.status).toBe('degraded');
    expect(r.statusReason).toContain('primary will not be promoted');
    expect(decide(r, T0)).toMatchObject({ kind: 'wait', untilMs: T0 + 1_000 });
    expect(decide(r, T0 + 1_000)).toMatchObject({ command: { type: 'StageMembers', slots: [d2!.slot] } });
    r = applyOutcome(r, staged(d2!.slot, 'v1-b'), T0 + 1_000, cfg);
    expect(r.status).toBe('running');
    expect(r.step).toBe(Step.VERIFY);
  });

  it('uses Retry-After when it is longer than the backoff', () => {
    expect(backoffMs(1, cfg, 30_000)).toBe(30_000);
    expect(backoffMs(3, cfg)).toBe(4_000);
    expect(backoffMs(30, cfg)).toBe(60_000);
  });

  it('a rate-limited failure (429) backs off from its Retry-After, not from the generic base', () => {
    const slow = { ...cfg, retryBaseMs: 30_000 };
    expect(backoffMs(1, slow, 2_000, true)).toBe(2_000);
    expect(backoffMs(2, slow, 2_000, true)).toBe(4_000);
    expect(backoffMs(1, slow, undefined, true)).toBe(1_000);
    expect(backoffMs(1, slow, 2_000)).toBe(30_000);
    const r0 = run();
    const planned = applyOutcome(r0, readings(r0), T0, slow);
    const failed = applyOutcome(
      planned,
      {
        type: 'StepFailed',
        step: Step.GENERATE,
        error: {
          code: 'UPSTREAM_RATE_LIMITED',
          message: 'Too many requests',
          retryable: true,
          retryAfterMs: 1_000,
          atMs: T0,
        },
      },
      T0,
      slow,
    );
    expect(failed.nextAttemptAtMs).toBe(T0 + 1_000);
  });

  it('ROTATION_TOO_SOON on a member waits exactly until Key Protect allows it', () => {
    let r = at(Step.STAGE, 1);
    const d = r.members[1]!;
    r = applyOutcome(
      r,
      {
        type: 'StepFailed',
        step: Step.STAGE,
        slot: d.slot,
        error: { code: 'ROTATION_TOO_SOON', message: 'x', retryable: false, retryAfterMs: 1_234_000, atMs: T0 },
      },
      T0,
      cfg,
    );
    expect(r.members[1]!.notBeforeMs).toBe(T0 + 1_234_000);
  });

  it('a verify mismatch ends the run diverged with the primary untouched', () => {
    const r = applyOutcome(at(Step.VERIFY), { type: 'CanaryMismatch', evidence: [], detail: 'x' }, T0, cfg);
    expect(r.status).toBe('diverged');
    expect(r.statusReason).toContain('primary was NOT rotated');
    expect(decide(r, T0)).toMatchObject({ kind: 'finished', status: 'diverged' });
  });

  it('a prove mismatch still records the generation (as diverged) before stopping', () => {
    let r = applyOutcome(at(Step.PROVE), { type: 'CanaryMismatch', evidence: [], detail: 'x' }, T0, cfg);
    expect(r.status).toBe('diverged');
    expect(decide(r, T0)).toMatchObject({ command: { type: 'RecordLineage' } });
    r = applyOutcome(r, { type: 'LineageRecorded', hash: 'h' }, T0, cfg);
    r = applyOutcome(r, { type: 'Released' }, T0, cfg);
    expect(r.status).toBe('diverged');
    expect(decide(r, T0)).toMatchObject({ kind: 'finished', status: 'diverged' });
  });

  it('a foreign version becomes the member baseline and is noted', () => {
    const r = applyOutcome(
      at(Step.STAGE),
      { type: 'ForeignVersionFound', slot: 'duplicate:us-east:inst-1', versionId: v('foreign'), versionCount: 2 },
      T0,
      cfg,
    );
    expect(r.members[1]!.snapshotVersionId).toBe('foreign');
    expect(r.notes.join()).toContain('foreign version foreign');
  });

  it('a step failure backs off and degrades from the second attempt', () => {
    const err = { code: 'UPSTREAM_UNAVAILABLE' as const, message: 'x', retryable: true, atMs: T0 };
    let r = applyOutcome(at(Step.PROVE), { type: 'StepFailed', step: Step.PROVE, error: err }, T0, cfg);
    expect(r.status).toBe('running');
    expect(decide(r, T0)).toMatchObject({ kind: 'wait' });
    r = applyOutcome(r, { type: 'StepFailed', step: Step.PROVE, error: err }, T0 + 1_000, cfg);
    expect(r.status).toBe('degraded');
    // After promotion the deadline no longer ends the run: it keeps trying to finish.
    expect(decide(r, T0 + 10 * 3_600_000)).toMatchObject({ command: { type: 'ProveGroup' } });
  });

  it('reopenRun clears blocks and sets a new deadline', () => {
    let r = at(Step.STAGE, 1);
    r = applyOutcome(
      r,
      {
        type: 'StepFailed',
        step: Step.STAGE,
        slot: r.members[1]!.slot,
        error: { code: 'KEY_NOT_FOUND', message: 'x', retryable: false, atMs: T0 },
      },
      T0,
      cfg,
    );
    r = applyOutcome(r, { type: 'GaveUp', reason: 'late' }, T0, cfg);
    const o = reopenRun(r, T0 + 5, T0 + 99);
    expect(o.status).toBe('running');
    expect(o.members[1]!.progress).toBe('pending');
    expect(o.deadlineAtMs).toBe(T0 + 99);
    expect(decide(o, T0 + 6)).toMatchObject({ command: { type: 'StageMembers' } });
  });

  it('a create run starts at generate', () => {
    expect(run(1, RunKind.CREATE).step).toBe(Step.GENERATE);
  });

  it('does not modify its input', () => {
    const r = at(Step.STAGE);
    const before = JSON.stringify(r);
    applyOutcome(r, staged(r.members[1]!.slot, 'x'), T0, cfg);
    expect(JSON.stringify(r)).toBe(before);
  });
});

describe('ordering property (pure decider)', () => {
  const arbOutcomeKind = fc.constantFrom('ok', 'fail', 'tooSoon', 'mismatch', 'found');
  it('never commands PromotePrimary before every duplicate is staged and verified (rotate, heal, create)', () => {
    const arbKind = fc.constantFrom(RunKind.ROTATION, RunKind.CREATE, 'heal' as const);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 }),
        fc.array(arbOutcomeKind, { maxLength: 60 }),
        arbKind,
        (dups, script, k) => {
          let r = run(dups, k === 'heal' ? RunKind.ROTATION : k);
          if (k === 'heal') r.heals = true;
          let t = T0;
          let verified = false;
          for (const kind of script) {
            const d = decide(r, t);
            if (d.kind === 'finished') break;
            if (d.kind === 'wait') {
              t = d.untilMs;
              continue;
            }
            const c = d.command;
            if (c.type === 'PromotePrimary') {
              expect(verified || dups === 0).toBe(true);
              expect(r.members.filter((m) => m.role === 'duplicate').every((m) => m.progress === 'staged')).toBe(true);
            }
            const err = { code: 'UPSTREAM_UNAVAILABLE' as const, message: 'x', retryable: true, atMs: t };
            let o: Outcome;
            switch (c.type) {
              case 'ReadMembers':
                o =
                  kind === 'tooSoon'
                    ? readings(r, { lastRotateAtMs: t - 1 })
                    : kind === 'fail'
                      ? { type: 'StepFailed', step: r.step, error: err }
                      : readings(r);
                break;
              case 'GenerateMaterial':
                o = kind === 'fail' ? { type: 'StepFailed', step: r.step, error: err } : escrowed;
                break;
              case 'StageMembers':
              case 'PromotePrimary': {
                const slot = c.type === 'StageMembers' ? c.slots[0]! : c.slot;
                o =
                  kind === 'fail' || kind === 'tooSoon'
                    ? {
                        type: 'StepFailed',
                        step: r.step,
                        slot,
                        error: kind === 'tooSoon' ? { ...err, code: 'ROTATION_TOO_SOON', retryAfterMs: 5_000 } : err,
                      }
                    : {
                        type: 'MemberStaged',
                        slot,
                        versionId: v(`n-${slot}`),
                        rotatedAtMs: t,
                        via: kind === 'found' ? 'found' : 'rotate',
                      };
                break;
              }
              case 'VerifyDuplicates':
              case 'ProveGroup':
                o =
                  kind === 'mismatch'
                    ? { type: 'CanaryMismatch', evidence: [], detail: 'x' }
                    : kind === 'fail'
                      ? { type: 'StepFailed', step: r.step, error: err }
                      : { type: 'CanaryPassed', evidence: [] };
                if (c.type === 'VerifyDuplicates' && o.type === 'CanaryPassed') verified = true;
                break;
              case 'RecordLineage':
                o = { type: 'LineageRecorded', hash: 'h' };
                break;
              case 'Release':
                o = { type: 'Released' };
                break;
              case 'GiveUp':
                o = { type: 'GaveUp', reason: c.reason };
                break;
              default:
                throw new Error(`a rotation run was sent ${c.type}`);
            }
            if (k === RunKind.CREATE) expect(c.type).not.toBe('ReadMembers'); // nothing to read before the keys exist
            r = applyOutcome(r, o, t, cfg);
            // "Crash and resume": the persisted JSON is all the next worker has.
            r = JSON.parse(JSON.stringify(r)) as RotationRun;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('an adopt run proves, then records, then releases; a mismatch fails it without a record', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 }), fc.array(arbOutcomeKind, { maxLength: 40 }), (dups, script) => {
        const base = run(dups, RunKind.ADOPT);
        let r: RotationRun = {
          ...base,
          step: Step.PROVE,
          status: 'running',
          members: base.members.map((m) => ({ ...m, progress: 'staged', versionId: v(`v-${m.slot}`) })),
        };
        let t = T0;
        let proved = false;
        let recorded = false;
        for (const kind of script) {
          const d = decide(r, t);
          if (d.kind === 'finished') {
            if (d.status === 'completed') expect(recorded).toBe(true);
            if (r.status === 'failed' && !recorded) expect(r.lineageHash).toBeUndefined();
            break;
          }
          if (d.kind === 'wait') {
            t = d.untilMs;
            continue;
          }
          const c = d.command;
          expect(['ProveGroup', 'RecordLineage', 'Release', 'GiveUp']).toContain(c.type);
          if (c.type === 'RecordLineage') expect(proved).toBe(true);
          if (c.type === 'Release') expect(recorded).toBe(true);
          const err = { code: 'UPSTREAM_UNAVAILABLE' as const, message: 'x', retryable: true, atMs: t };
          let o: Outcome;
          if (kind === 'fail') o = { type: 'StepFailed', step: r.step, error: err };
          else if (c.type === 'ProveGroup')
            o =
              kind === 'mismatch'
                ? { type: 'CanaryMismatch', evidence: [], detail: 'x' }
                : { type: 'CanaryPassed', evidence: [] };
          else if (c.type === 'RecordLineage') o = { type: 'LineageRecorded', hash: 'h' };
          else if (c.type === 'GiveUp') o = { type: 'GaveUp', reason: c.reason };
          else o = { type: 'Released' };
          if (o.type === 'CanaryPassed') proved = true;
          if (o.type === 'LineageRecorded') recorded = true;
          r = JSON.parse(JSON.stringify(applyOutcome(r, o, t, cfg))) as RotationRun;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('replay property (catch-up, add-region)', () => {
  const arbStep = fc.constantFrom('ok', 'fail', 'tooSoon', 'found', 'mismatch', 'moved', 'deferred');
  function replayRun(kind: RunKind, from: number, target: number): RotationRun {
    const m = member('duplicate', 1);
    return newRun({
      id: 'run-test-replay' as RunId,
      groupId: 'g' as GroupId,
      generation: target,
      kind,
      trigger: { kind: 'schedule', by: 't' },
      members: [kind === RunKind.ADD_REGION ? { role: m.role, region: m.region, instanceId: m.instanceId } : m],
      escrowKey: {
        region: 'us-south' as RegionId,
        instanceId: 'e' as InstanceId,
        keyId: 'ek' as KeyId,
        crn: 'ecrn' as KeyCrn,
      },
      nowMs: T0,
      deadlineAtMs: T0 + 100 * 3_600_000,
      replayFrom: from,
    });
  }

  it('re-imports oldest first, each proved before the next, one per Key Protect hour; completes only with all', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(RunKind.CATCH_UP, RunKind.ADD_REGION),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(arbStep, { maxLength: 80 }),
        (kind, from0, extra, script) => {
          const from = kind === RunKind.ADD_REGION ? 1 : from0 + 1;
          let r = replayRun(kind, from, from + extra);
          let t = T0;
          let lastRotateAt: number | undefined;
          let lastGeneration = from - 1;
          let stagedGeneration: number | undefined;
          for (const step of script) {
            const d = decide(r, t);
            if (d.kind === 'finished') {
              if (d.status === 'completed') {
                for (let g = from; g <= r.generation; g++) expect(r.replay!.versions[String(g)]).toBeDefined();
              }
              break;
            }
            if (d.kind === 'wait') {
              expect(d.untilMs).toBeGreaterThan(t);
              t = d.untilMs;
              continue;
            }
            const c = d.command;
            expect(['ReadMembers', 'ReplayGeneration', 'ProveReplayed', 'Release', 'GiveUp']).toContain(c.type);
            const err = { code: 'UPSTREAM_UNAVAILABLE' as const, message: 'x', retryable: true, atMs: t };
            const slot = r.members[0]!.slot;
            let o: Outcome;
            switch (c.type) {
              case 'ReadMembers':
                expect(kind).toBe(RunKind.CATCH_UP); // a new region has no key to read
                o = step === 'fail' ? { type: 'StepFailed', step: r.step, error: err } : readings(r);
                break;
              case 'ReplayGeneration': {
                // oldest first, never ahead of the last proved generation, and never inside the member's hour
                expect(c.generation).toBe(lastGeneration + 1);
                const free = kind === RunKind.ADD_REGION && c.generation <= 2;
                if (lastRotateAt !== undefined && !free)
                  expect(t).toBeGreaterThanOrEqual(lastRotateAt + cfg.rotationMinIntervalMs);
                if (step === 'fail' || step === 'tooSoon') {
                  o = {
                    type: 'StepFailed',
                    step: r.step,
                    slot,
                    error: step === 'tooSoon' ? { ...err, code: 'ROTATION_TOO_SOON', retryAfterMs: 30_000 } : err,
                  };
                } else {
                  o = {
                    type: 'MemberStaged',
                    slot,
                    versionId: v(`g${c.generation}-${t}`),
                    rotatedAtMs: t,
                    via:
                      step === 'found'
                        ? 'found'
                        : kind === RunKind.ADD_REGION && c.generation === 1
                          ? 'create'
                          : 'rotate',
                    ...(kind === RunKind.ADD_REGION && c.generation === 1
                      ? { keyId: 'k-new' as KeyId, crn: 'crn-new' as KeyCrn }
                      : {}),
                  };
                  stagedGeneration = c.generation;
                  lastRotateAt = t;
                }
                break;
              }
              case 'ProveReplayed':
                expect(c.generation).toBe(stagedGeneration);
                if (step === 'mismatch') o = { type: 'CanaryMismatch', evidence: [], detail: 'x' };
                else if (step === 'fail') o = { type: 'StepFailed', step: r.step, error: err };
                else {
                  o = { type: 'CanaryPassed', evidence: [] };
                  lastGeneration = c.generation;
                }
                break;
              case 'Release':
                expect(lastGeneration).toBe(r.generation);
                if (kind === RunKind.ADD_REGION && step === 'moved') {
                  o = { type: 'TargetMoved', generation: r.generation + 1, deadlineAtMs: t + 10 * 3_600_000 };
                } else if (kind === RunKind.ADD_REGION && step === 'deferred') {
                  o = { type: 'Deferred', untilMs: t + 60_000, reason: 'rotation running' };
                } else o = { type: 'Released' };
                break;
              default:
                o = { type: 'GaveUp', reason: 'late' };
            }
            r = JSON.parse(JSON.stringify(applyOutcome(r, o, t, cfg))) as RotationRun;
            t += 1_000;
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
