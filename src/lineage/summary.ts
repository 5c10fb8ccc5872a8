import type { LineageMember, LineageRecord, LineageStatus, Trigger } from '../core/index.js';

/**
 * Which Key Protect key version holds this generation at each member, by member CRN. Version ids are local to each
 * instance, so this map is how an auditor goes from "generation n" to the versions Key Protect shows.
 */
export function memberVersionMap(record: LineageRecord): Record<string, string> {
  const map: Record<string, string> = {};
  for (const m of record.members) map[m.crn] = m.keyVersionId;
  return map;
}

/** The member of `record` whose Key Protect version is `keyVersionId`, if any (for `GET /v1/versions/{id}`). */
export function findMemberByKeyVersion(record: LineageRecord, keyVersionId: string): LineageMember | undefined {
  return record.members.find((m) => m.keyVersionId === keyVersionId);
}

/** A compact view of one generation for timelines, lists and CLI output. Contains no hashes' inputs beyond the record. */
export interface GenerationSummary {
  groupId: string;
  generation: number;
  fingerprint: string;
  status: LineageStatus;
  trigger: Trigger;
  startedAtMs: number;
  finishedAtMs: number;
  durationMs: number;
  primary?: { crn: string; region: string; keyVersionId: string };
  /** Regions of all members, primary first, then in record order. */
  regions: string[];
  memberCount: number;
  canaries: { total: number; ok: number };
  /** Activity Tracker events attached across all members. */
  evidenceCount: number;
  hash: string;
}

/** Summarizes a generation for the timeline and status views. */
export function summarizeGeneration(record: LineageRecord): GenerationSummary {
  const primary = record.members.find((m) => m.role === 'primary');
  const ordered = primary ? [primary, ...record.members.filter((m) => m !== primary)] : record.members;
  const summary: GenerationSummary = {
    groupId: record.groupId,
    generation: record.generation,
    fingerprint: record.fingerprint,
    status: record.status,
    trigger: record.trigger,
    startedAtMs: record.startedAtMs,
    finishedAtMs: record.finishedAtMs,
    durationMs: record.finishedAtMs - record.startedAtMs,
    regions: ordered.map((m) => m.region),
    memberCount: record.members.length,
    canaries: { total: record.verification.length, ok: record.verification.filter((c) => c.ok).length },
    evidenceCount: record.members.reduce((n, m) => n + m.evidence.length, 0),
    hash: record.hash,
  };
  if (primary) summary.primary = { crn: primary.crn, region: primary.region, keyVersionId: primary.keyVersionId };
  return summary;
}
