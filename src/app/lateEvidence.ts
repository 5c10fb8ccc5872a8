/**
 * Activity Tracker evidence that arrives after its generation's lineage record was written: it stays on the run
 * (never lost) and is appended to the group's evidence chain as a record of its own naming the generation and its
 * record's hash (never rewriting the record). Evidence that arrives before the record is written goes into it.
 */
import { type AtEvidence, type EvidenceRecord, hasCode, type KeyCrn, type LineageRecord } from '../core/index.js';
import { buildEvidenceRecord, signEvidenceCheckpoint } from '../lineage/index.js';
import type { RotationRun } from '../rotation/index.js';
import type { RunnerContext } from './runner.js';

/**
 * Appends `evidence` (of `crn` in `run`) to the evidence chain when the run's generation record exists without it.
 * With checkpoint signing configured, each appended head gets a signed evidence checkpoint (`chain: "evidence"`).
 * Idempotent per event id and member. Returns the record's `seq` when one was (or had been) appended.
 */
export async function recordLateEvidence(
  ctx: Pick<RunnerContext, 'stores' | 'clock' | 'logger' | 'config'>,
  run: RotationRun,
  crn: KeyCrn,
  evidence: AtEvidence,
): Promise<number | undefined> {
  const chain = ctx.stores.evidence;
  if (!chain) return undefined;
  const record: LineageRecord | undefined = await ctx.stores.lineage
    .get(run.groupId, run.generation)
    .catch((err: unknown) => (hasCode(err, 'GENERATION_NOT_FOUND') ? undefined : Promise.reject(err)));
  if (!record || record.runId !== run.id) return undefined; // not recorded yet (it goes into the record), or not ours
  if (record.members.find((m) => m.crn === crn)?.evidence.some((e) => e.eventId === evidence.eventId)) return undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const all = await chain.chain(run.groupId);
    const known = all.find((r) => r.crn === crn && r.evidence.eventId === evidence.eventId);
    if (known) {
      await ensureSigned(ctx, all[all.length - 1] as EvidenceRecord); // a retry after a failed signature
      return known.seq;
    }
    const head = all[all.length - 1];
    const next = buildEvidenceRecord(
      {
        kind: 'evidence',
        groupId: run.groupId,
        seq: (head?.seq ?? 0) + 1,
        generation: record.generation,
        generationHash: record.hash,
        runId: run.id,
        crn,
        evidence: { ...evidence },
        recordedAtMs: ctx.clock.nowMs(),
      },
      head,
    );
    try {
      await chain.append(next);
      await ensureSigned(ctx, next);
      ctx.logger.info('late evidence recorded', { groupId: run.groupId, generation: record.generation, seq: next.seq });
      return next.seq;
    } catch (err) {
      if (!hasCode(err, 'STORE_CONFLICT')) throw err; // another writer took that seq: chain after it
    }
  }
  return undefined;
}

/** Signs `head` of its evidence chain unless a checkpoint covers it already. */
async function ensureSigned(ctx: Pick<RunnerContext, 'stores' | 'clock' | 'config'>, head: EvidenceRecord) {
  const signing = ctx.config.checkpointSigning;
  const chain = ctx.stores.evidence;
  if (!signing || !chain) return;
  if ((await chain.checkpoints(head.groupId)).some((c) => c.seq >= head.seq)) return;
  await chain.putCheckpoint(
    signEvidenceCheckpoint(
      { groupId: head.groupId, seq: head.seq, headHash: head.hash, signedAtMs: ctx.clock.nowMs() },
      { privateKey: signing.privateKey, ...(signing.keyId ? { keyId: signing.keyId } : {}) },
    ),
  );
}
