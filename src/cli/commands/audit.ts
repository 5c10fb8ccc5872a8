import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { drillsFromJsonl, evidenceFromJsonl, recordsFromJsonl } from '../../api/index.js';
import type { Checkpoint, DrillCheckpoint, EvidenceCheckpoint } from '../../core/index.js';
import {
  type ChainReport,
  checkpointKeyId,
  checkpointKeyring,
  type SeqChainReport,
  verifyChain,
} from '../../lineage/index.js';
import type { CliContext } from '../context.js';
import { ExitCode, usageError } from '../exitCodes.js';
import { formatTime, short } from '../format.js';
import { renderTable } from '../output.js';
import { type ApiGroup, groupIdArg, readAll } from './read.js';

interface ProofDoc {
  groupId: string;
  records: number;
  head: { generation: number; hash: string } | null;
  chain: ChainReport;
  checkpoint: Checkpoint | null;
  /** The latest signed head of the late evidence chain (absent when the server keeps none). */
  evidenceCheckpoint?: EvidenceCheckpoint | null;
  publicKeys: { keyId: string; pem: string }[];
}

interface GroupAudit {
  groupId: string;
  ok: boolean;
  records: number;
  headGeneration?: number;
  headHash?: string;
  checkpoint?: { generation: number; keyId: string; signedAtMs: number; status: string };
  /** The server's own verdict, for comparison (the CLI does not rely on it). */
  serverOk: boolean;
  keySource: 'pinned' | 'published by the API';
  breaks: { generation: number; kind: string; message: string }[];
  /** DR drill records verified (their own chain; breaks are listed with kind `drill-*`, numbered by drill). */
  drills: number;
  /** Late evidence records verified (their own chain; breaks are listed with kind `evidence-*`, numbered by seq). */
  evidence: number;
}

/** A seq chain's breaks and failed checkpoints as audit breaks (`drill-*`, `evidence-*`, numbered by seq). */
function seqChainBreaks(prefix: 'drill' | 'evidence', report: SeqChainReport | undefined, unsigned: boolean) {
  if (!report) return [];
  return [
    ...report.breaks.map((b) => ({ generation: b.seq, kind: `${prefix}-${b.kind}`, message: b.message })),
    ...report.checkpoints
      .filter((c) => c.status !== 'valid')
      .map((c) => ({ generation: c.seq, kind: `${prefix}-checkpoint-${c.status}`, message: c.message })),
    ...(unsigned
      ? [
          {
            generation: report.headSeq ?? 0,
            kind: `${prefix}-no-checkpoint`,
            message: `no signed checkpoint covers the ${prefix === 'drill' ? 'drill' : 'late evidence'} chain`,
          },
        ]
      : []),
  ];
}

/**
 * `lockstep audit verify [group]`: downloads every lineage record (`/v1/export?format=jsonl`) and the latest signed
 * checkpoint (`/v1/groups/{id}/proof`), then recomputes the hash chain and checks the signature locally with
 * `verifyChain` — the server's verdict is shown but not trusted. Exit 3 when any chain or checkpoint is broken.
 */
export async function auditVerify(
  ctx: CliContext,
  groupId: string | undefined,
  opts: { trustKey?: string[] } = {},
): Promise<number> {
  const pinned = (opts.trustKey ?? []).map((file) => {
    try {
      return readFileSync(resolve(ctx.io.cwd, file), 'utf8');
    } catch {
      throw usageError(`flag --trust-key: cannot read ${file}`, 'give the SPKI PEM file of the checkpoint public key');
    }
  });
  const ids = groupId ? [groupIdArg(groupId)] : (await readAll<ApiGroup>(ctx, '/v1/groups', 10_000)).map((g) => g.id);
  const results: GroupAudit[] = [];
  for (const id of ids) {
    ctx.out.progress(`verifying ${id}…`);
    const proof = await ctx.api().get<ProofDoc>(`/v1/groups/${id}/proof`);
    const exported = await ctx
      .api()
      .getText('/v1/export', { format: 'jsonl', groupId: id }, (n) =>
        ctx.out.progress(`verifying ${id}: ${n} records…`),
      );
    const records = recordsFromJsonl(exported);
    // DR drills: their own chain in the same export (lines with "kind": "drill"), signed by drill checkpoints
    const drills = drillsFromJsonl(exported);
    const drillCheckpoint = (
      await ctx.api().get<{ checkpoint: DrillCheckpoint | null }>(`/v1/groups/${id}/drills`, { limit: 1 })
    ).checkpoint;
    // late Activity Tracker evidence: its own chain in the same export ("kind": "evidence"), each record naming a
    // generation record by its hash, signed by evidence checkpoints (the latest comes with the proof)
    const evidence = evidenceFromJsonl(exported);
    const evidenceCheckpoint = proof.evidenceCheckpoint ?? null;
    let keyring: ReturnType<typeof checkpointKeyring>;
    try {
      keyring = checkpointKeyring(pinned.length ? pinned : proof.publicKeys.map((k) => k.pem));
    } catch {
      throw usageError('a checkpoint public key is not an Ed25519 SPKI PEM', 'check the files given with --trust-key');
    }
    const report = verifyChain(records, proof.checkpoint ? [proof.checkpoint] : [], keyring, {
      groupId: id,
      drills: { records: drills, checkpoints: drillCheckpoint ? [drillCheckpoint] : [] },
      evidence: { records: evidence, checkpoints: evidenceCheckpoint ? [evidenceCheckpoint] : [] },
    });
    // evidence checkpoints exist only where signing is configured: a missing one is a break only when the server
    // signs its other chains (a signed generation chain) but not this one
    const unsignedEvidence = evidence.length > 0 && !evidenceCheckpoint && proof.checkpoint !== null;
    const cp = report.checkpoints[0];
    // a chain that has records but no checkpoint cannot prove nothing was removed at its end
    const missingCheckpoint = records.length > 0 && !proof.checkpoint;
    results.push({
      groupId: id,
      ok: report.ok && !missingCheckpoint && !(drills.length > 0 && !drillCheckpoint) && !unsignedEvidence,
      drills: drills.length,
      evidence: evidence.length,
      records: report.length,
      ...(report.headGeneration !== undefined ? { headGeneration: report.headGeneration } : {}),
      ...(report.headHash ? { headHash: report.headHash } : {}),
      ...(cp
        ? { checkpoint: { generation: cp.generation, keyId: cp.keyId, signedAtMs: cp.signedAtMs, status: cp.status } }
        : {}),
      serverOk: proof.chain.ok,
      keySource: pinned.length ? 'pinned' : 'published by the API',
      breaks: [
        ...report.breaks,
        ...report.checkpoints
          .filter((c) => c.status !== 'valid')
          .map((c) => ({ generation: c.generation, kind: `checkpoint-${c.status}`, message: c.message })),
        ...seqChainBreaks('drill', report.drills, drills.length > 0 && !drillCheckpoint),
        ...seqChainBreaks('evidence', report.evidence, unsignedEvidence),
        ...(missingCheckpoint
          ? [
              {
                generation: report.headGeneration ?? 0,
                kind: 'no-checkpoint',
                message: 'no signed checkpoint covers this chain',
              },
            ]
          : []),
      ],
    });
  }
  const ok = results.every((r) => r.ok);
  ctx.out.result({ ok, groups: results }, () =>
    [
      results.length === 0
        ? 'No groups to verify.'
        : renderTable(results, [
            { header: 'GROUP', value: (r) => r.groupId },
            { header: 'RESULT', value: (r) => (r.ok ? ctx.out.green('intact') : ctx.out.red('BROKEN')) },
            { header: 'RECORDS', value: (r) => r.records, align: 'right' },
            { header: 'DRILLS', value: (r) => r.drills, align: 'right' },
            { header: 'EVIDENCE', value: (r) => r.evidence, align: 'right' },
            {
              header: 'HEAD',
              value: (r) => (r.headGeneration ? `gen ${r.headGeneration} ${short(r.headHash, 12)}` : '-'),
            },
            {
              header: 'CHECKPOINT',
              value: (r) =>
                r.checkpoint
                  ? `gen ${r.checkpoint.generation} ${r.checkpoint.status} (${formatTime(r.checkpoint.signedAtMs)})`
                  : '-',
            },
            { header: 'SERVER SAYS', value: (r) => (r.serverOk ? 'ok' : 'broken') },
          ]),
      ...results.flatMap((r) =>
        r.breaks.map((b) => `  ${ctx.out.red('✗')} ${r.groupId} gen ${b.generation} ${b.kind}: ${b.message}`),
      ),
      '',
      ctx.out.dim(
        `Chains recomputed locally from /v1/export; checkpoint keys ${pinned.length ? `pinned (${pinned.map((p) => checkpointKeyId(p)).join(', ')})` : 'as published by the API — pin them with --trust-key <pem>'}.`,
      ),
    ].join('\n'),
  );
  return ok ? ExitCode.OK : ExitCode.VERIFY_FAILED;
}
