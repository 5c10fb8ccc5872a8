import { randomUUID } from 'node:crypto';
import type { RunRecordBase, Stores } from '../../../../src/app/index.js';
import {
  AppError,
  type Checkpoint,
  formatKeyCrn,
  type Group,
  type GroupId,
  type InstanceId,
  type KeyId,
  type KeyVersionId,
  type LineageRecord,
  type RegionId,
  type RunId,
} from '../../../../src/core/index.js';
import { buildLineageRecord, checkpointKeyPairFromSeed, signCheckpoint } from '../../../../src/lineage/index.js';

/** In-memory fakes of the store ports (unit tests only; integration tests use the Cloudant adapter). */
export function createFakeStores(): Stores & {
  data: {
    groups: Map<string, Group>;
    lineage: LineageRecord[];
    checkpoints: Checkpoint[];
    runs: Map<string, RunRecordBase>;
  };
} {
  const groups = new Map<string, Group>();
  const lineage: LineageRecord[] = [];
  const checkpoints: Checkpoint[] = [];
  const runs = new Map<string, RunRecordBase>();
  const notUsed = () => {
    throw new Error('not used by the API');
  };
  const byGroup = (g: string) => lineage.filter((r) => r.groupId === g).sort((a, b) => a.generation - b.generation);
  return {
    data: { groups, lineage, checkpoints, runs },
    groups: {
      create: notUsed,
      update: notUsed,
      mutate: notUsed,
      findDue: notUsed,
      findVerifyDue: notUsed,
      async get(id) {
        const g = groups.get(id);
        if (!g) throw new AppError('GROUP_NOT_FOUND', `no group ${id}`);
        return { value: g, rev: '1' };
      },
      async find(id) {
        const g = groups.get(id);
        return g ? { value: g, rev: '1' } : undefined;
      },
      async list(opts = {}) {
        const sorted = [...groups.values()].sort((a, b) => a.id.localeCompare(b.id));
        const start = opts.cursor ? sorted.findIndex((g) => g.id > (opts.cursor as string)) : 0;
        const items = start < 0 ? [] : sorted.slice(start, start + (opts.limit ?? 50));
        const last = items.at(-1);
        const more = last !== undefined && sorted.indexOf(last) < sorted.length - 1;
        return { items, ...(more ? { next: last.id } : {}) };
      },
    },
    runs: {
      create: notUsed,
      save: notUsed,
      listUnfinished: notUsed,
      async listByGroup(groupId, limit) {
        return [...runs.values()]
          .filter((r) => r.groupId === groupId)
          .sort((a, b) => b.createdAtMs - a.createdAtMs)
          .slice(0, limit);
      },
      async get(id) {
        const r = runs.get(id);
        if (!r) throw new AppError('RUN_NOT_FOUND', `no run ${id}`);
        return { value: r, rev: '1' };
      },
    },
    leases: { acquire: notUsed, renew: notUsed, release: notUsed, assertHeld: notUsed },
    events: { markProcessed: notUsed },
    lineage: {
      async append(r) {
        lineage.push(r);
      },
      async head(g) {
        return byGroup(g).at(-1);
      },
      async get(g, n) {
        const r = byGroup(g).find((x) => x.generation === n);
        if (!r) throw new AppError('GENERATION_NOT_FOUND', `no generation ${n} of ${g}`);
        return r;
      },
      async list(g, opts) {
        if (opts.cursor !== undefined && !/^\d+$/.test(opts.cursor)) {
          throw new AppError('INVALID_CURSOR', 'bad store cursor');
        }
        const before = opts.cursor === undefined ? Number.POSITIVE_INFINITY : Number(opts.cursor);
        const all = byGroup(g)
          .reverse()
          .filter((r) => r.generation < before)
          .filter((r) => opts.sinceMs === undefined || r.finishedAtMs >= opts.sinceMs)
          .filter((r) => opts.untilMs === undefined || r.finishedAtMs <= opts.untilMs);
        const items = all.slice(0, opts.limit);
        return { items, ...(all.length > opts.limit ? { next: String(items.at(-1)?.generation) } : {}) };
      },
      async findByKeyVersion(v) {
        return lineage.find((r) => r.members.some((m) => m.keyVersionId === v));
      },
      async *exportAll(g, after) {
        const all = [...lineage]
          .filter((r) => g === undefined || r.groupId === g)
          .filter(
            (r) =>
              !after || r.groupId > after.groupId || (r.groupId === after.groupId && r.generation > after.generation),
          )
          .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : a.generation - b.generation));
        yield* all;
      },
      async chain(g) {
        return byGroup(g);
      },
    },
    checkpoints: {
      async put(c) {
        checkpoints.push(c);
      },
      async latest(g) {
        return checkpoints.filter((c) => c.groupId === g).sort((a, b) => b.generation - a.generation)[0];
      },
      async list(g) {
        return checkpoints.filter((c) => c.groupId === g);
      },
    },
  };
}

const REGIONS = ['us-south', 'us-east', 'eu-de'] as RegionId[];
export const ACCOUNT = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

/** A group with one member per region (primary in us-south). */
export function makeGroup(id: string, opts: { name?: string; nowMs?: number; generation?: number } = {}): Group {
  const nowMs = opts.nowMs ?? Date.UTC(2026, 10, 1);
  const members = REGIONS.map((region, i) => {
    const instanceId = randomUUID() as InstanceId;
    const keyId = randomUUID() as KeyId;
    return {
      role: i === 0 ? ('primary' as const) : ('duplicate' as const),
      region,
      instanceId,
      keyId,
      crn: formatKeyCrn({ region, accountId: ACCOUNT, instanceId, keyId }),
    };
  });
  const escrowInstance = randomUUID() as InstanceId;
  const escrowKey = randomUUID() as KeyId;
  return {
    id: id as GroupId,
    name: opts.name ?? `Group ${id}`,
    members,
    escrow: {
      region: 'us-south' as RegionId,
      instanceId: escrowInstance,
      keyId: escrowKey,
      crn: formatKeyCrn({
        region: 'us-south' as RegionId,
        accountId: ACCOUNT,
        instanceId: escrowInstance,
        keyId: escrowKey,
      }),
    },
    schedule: { intervalMs: 30 * 24 * 3600_000, enabled: true },
    status: 'healthy',
    currentGeneration: opts.generation ?? 0,
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
  };
}

/** A chain of `count` real lineage records (built with src/lineage) for `group`, one day apart. */
export function makeChain(
  group: Group,
  count: number,
  opts: { startMs?: number; statuses?: LineageRecord['status'][]; reason?: string } = {},
): LineageRecord[] {
  const out: LineageRecord[] = [];
  const start = opts.startMs ?? Date.UTC(2026, 10, 1, 2);
  for (let g = 1; g <= count; g++) {
    const t = start + (g - 1) * 24 * 3600_000;
    const members = group.members.map((m, i) => ({
      ...m,
      keyVersionId: randomUUID() as KeyVersionId,
      rotatedAtMs: t + 1000 * (m.role === 'primary' ? 10 : i),
      evidence: [
        {
          eventId: `at-${group.id}-${g}-${i}`,
          action: 'kms.secrets.rotate',
          eventTimeMs: t + 2000 + i,
          initiator: 'iam-ServiceId-lockstep',
          correlationId: `corr-${g}`,
          outcome: 'success',
        },
      ],
    }));
    const primary = members[0]!;
    const record = buildLineageRecord(
      {
        groupId: group.id,
        generation: g,
        fingerprint: `fp1:${g.toString(16).padStart(32, '0')}`,
        trigger:
          g === 1
            ? { kind: 'operator', by: 'iam-ServiceId-op', reason: opts.reason ?? 'create, "quoted", with comma' }
            : { kind: 'schedule', by: `tick-${g}` },
        runId: `run-${group.id}-${g}-0000000` as RunId,
        startedAtMs: t,
        finishedAtMs: t + 60_000,
        members,
        verification: [
          {
            wrappedAt: primary.crn,
            unwrappedAt: members.slice(1).map((m) => m.crn),
            ciphertext: Buffer.from(`canary-${g}`).toString('base64'),
            plaintextSha256: 'ab'.repeat(32),
            aad: [group.id, String(g)],
            reportedVersions: Object.fromEntries(members.map((m) => [m.crn, m.keyVersionId])),
            ok: true,
            atMs: t + 50_000,
          },
        ],
        status: opts.statuses?.[g - 1] ?? 'complete',
        ...(g === 2 ? { notes: ['line one, "line two"', '<script>alert(1)</script>'] } : {}),
      },
      out.at(-1),
    );
    out.push(record);
  }
  return out;
}

/** A fixed checkpoint key pair (from a seed) for tests. */
export function testCheckpointKeys(seedByte = 7) {
  const pair = checkpointKeyPairFromSeed(Buffer.alloc(32, seedByte));
  const pem = String(pair.publicKey.export({ format: 'pem', type: 'spki' }));
  return {
    pair,
    pem,
    sign: (record: LineageRecord, signedAtMs: number) =>
      signCheckpoint(
        { groupId: record.groupId, generation: record.generation, headHash: record.hash, signedAtMs },
        { privateKey: pair.privateKey },
      ),
  };
}
