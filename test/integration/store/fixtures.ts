import { createHash, randomUUID } from 'node:crypto';
import type { RunRecordBase } from '../../../src/app/ports.js';
import type {
  Checkpoint,
  Group,
  GroupId,
  InstanceId,
  KeyId,
  KeyVersionId,
  LineageRecord,
  Member,
  RegionId,
  RunId,
} from '../../../src/core/index.js';
import { formatKeyCrn } from '../../../src/core/index.js';

export const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

export function member(role: Member['role'], region: string, n: number): Member {
  const instanceId = uuid(10_000 + n) as InstanceId;
  const keyId = uuid(n) as KeyId;
  const r = region as RegionId;
  return {
    role,
    region: r,
    instanceId,
    keyId,
    crn: formatKeyCrn({ region: r, accountId: 'acct1', instanceId, keyId }),
  };
}

export function makeGroup(id: string, over: Partial<Group> = {}): Group {
  const escrow = member('primary', 'us-south', 999);
  return {
    id: id as GroupId,
    name: `Group ${id}`,
    members: [member('primary', 'us-south', 1), member('duplicate', 'us-east', 2), member('duplicate', 'eu-de', 3)],
    escrow: { region: escrow.region, instanceId: escrow.instanceId, keyId: escrow.keyId, crn: escrow.crn },
    schedule: { intervalMs: 86_400_000 },
    status: 'healthy',
    currentGeneration: 0,
    createdAtMs: 1_700_000_000_000,
    updatedAtMs: 1_700_000_000_000,
    ...over,
  };
}

/** A run as the saga might persist it: base fields plus nested saga state. */
export interface TestRun extends RunRecordBase {
  steps: { name: string; atMs: number }[];
  members: Record<string, { staged: boolean; versionId?: string }>;
  escrow: { keyCrn: string; ciphertext: string; aad: string[]; fingerprint: string };
}

export function makeRun(groupId: string, over: Partial<TestRun> = {}): TestRun {
  return {
    id: `run-${randomUUID()}` as RunId,
    groupId: groupId as GroupId,
    generation: 1,
    kind: 'rotation',
    status: 'running',
    createdAtMs: 1_700_000_000_000,
    updatedAtMs: 1_700_000_000_000,
    steps: [],
    members: { 'us-east': { staged: true, versionId: uuid(77) }, 'eu-de': { staged: false } },
    escrow: { keyCrn: 'crn:v1:x', ciphertext: 'ZXNjcm93ZWQ=', aad: ['g', '1'], fingerprint: 'fp1:abc' },
    ...over,
  };
}

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Key version id of member `m` of generation `gen` in `groupId` (unique across groups in a test). */
export const versionOf = (groupId: string, gen: number, m: number): KeyVersionId =>
  `${sha256(`${groupId}/${gen}/${m}`).slice(0, 8)}-0000-4000-8000-${(gen * 10 + m).toString(16).padStart(12, '0')}` as KeyVersionId;

export function makeRecord(groupId: string, generation: number, prevHash: string): LineageRecord {
  const members = [member('primary', 'us-south', 1), member('duplicate', 'us-east', 2)].map((m, i) => ({
    ...m,
    keyVersionId: versionOf(groupId, generation, i),
    rotatedAtMs: 1_700_000_000_000 + generation * 1000,
    evidence: [],
  }));
  const body = {
    groupId: groupId as GroupId,
    generation,
    fingerprint: `fp1:${sha256(`${groupId}${generation}`).slice(0, 32)}`,
    trigger: { kind: 'schedule' as const, by: 'tick' },
    runId: `run-${sha256(`${groupId}-${generation}`).slice(0, 12)}` as RunId,
    startedAtMs: 1_700_000_000_000 + generation * 1000,
    finishedAtMs: 1_700_000_000_000 + generation * 1000 + 500,
    members,
    verification: [],
    status: 'complete' as const,
    prevHash,
  };
  return { ...body, hash: sha256(JSON.stringify(body)) };
}

/** Generations 1..n of a chain. */
export function makeChain(groupId: string, n: number, from = 1, prev = ''): LineageRecord[] {
  const out: LineageRecord[] = [];
  let prevHash = prev;
  for (let g = from; g < from + n; g++) {
    const r = makeRecord(groupId, g, prevHash);
    out.push(r);
    prevHash = r.hash;
  }
  return out;
}

export function makeCheckpoint(groupId: string, generation: number, signedAtMs: number): Checkpoint {
  return {
    groupId: groupId as GroupId,
    generation,
    headHash: sha256(`${groupId}:${generation}`),
    signedAtMs,
    keyId: 'ckpt-key-1',
    algorithm: 'Ed25519',
    signature: Buffer.from(`sig-${generation}-${signedAtMs}`).toString('base64'),
  };
}

/** A fresh database prefix per suite, so suites never share data (also on a shared CouchDB). */
export const testPrefix = (label: string): string =>
  `lockstep-test-${label}-${randomUUID().slice(0, 8)}-`.toLowerCase();
