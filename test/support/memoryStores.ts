/**
 * In-memory fakes of the store ports (unit tests only; integration tests use the Cloudant adapter against the
 * embedded server). Same contract: revisions on every write, STORE_CONFLICT on a stale revision, re-entrant
 * fenced leases, lineage append only at head+1. Every stored document is deep-copied through JSON, like a real store.
 */
import type {
  Lease,
  LeaseRepository,
  LineageRepository,
  Page,
  RunRecordBase,
  RunRepository,
  Stores,
  Versioned,
} from '../../src/app/ports.js';
import { UNFINISHED_RUN_STATUSES } from '../../src/app/ports.js';
import {
  AppError,
  type Checkpoint,
  type EvidenceCheckpoint,
  type EvidenceRecord,
  type Group,
  type GroupId,
  type LineageRecord,
  type RunId,
} from '../../src/core/index.js';

const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const conflict = (what: string, currentRev?: string) =>
  new AppError('STORE_CONFLICT', `${what} changed`, { details: currentRev ? { currentRev } : {} });

class RevMap<T> {
  readonly docs = new Map<string, { value: T; rev: number }>();
  get(id: string): Versioned<T> | undefined {
    const d = this.docs.get(id);
    return d ? { value: copy(d.value), rev: String(d.rev) } : undefined;
  }
  put(id: string, value: T, rev?: string): Versioned<T> {
    const cur = this.docs.get(id);
    if (rev === undefined ? cur !== undefined : cur === undefined || String(cur.rev) !== rev) {
      throw conflict(id, cur ? String(cur.rev) : undefined);
    }
    const next = (cur?.rev ?? 0) + 1;
    this.docs.set(id, { value: copy(value), rev: next });
    return { value: copy(value), rev: String(next) };
  }
  values(): T[] {
    return [...this.docs.values()].map((d) => copy(d.value));
  }
}

export interface MemoryStores extends Stores {
  /** Every JSON document currently stored (for secret scans). */
  dump(): string;
}

export function createMemoryStores(): MemoryStores {
  const groups = new RevMap<Group>();
  const runs = new RevMap<RunRecordBase>();
  const leases = new RevMap<Omit<Lease, 'rev'>>();
  const lineage = new RevMap<LineageRecord>();
  const checkpoints: Checkpoint[] = [];
  const evidence: EvidenceRecord[] = [];
  const evidenceCheckpoints: EvidenceCheckpoint[] = [];
  const events = new Set<string>();

  const runRepo: RunRepository = {
    async create(run) {
      if (run.kind !== 'create' && run.kind !== 'adopt' && !groups.get(run.groupId)) {
        throw new AppError('GROUP_NOT_FOUND', `No group ${run.groupId}`);
      }
      return runs.put(run.id, run);
    },
    async get(id: RunId) {
      const v = runs.get(id);
      if (!v) throw new AppError('RUN_NOT_FOUND', `Run ${id} not found`);
      return v;
    },
    async save(run, rev) {
      return runs.put(run.id, run, rev);
    },
    async listUnfinished(nowMs, limit) {
      return runs
        .values()
        .filter((r) => UNFINISHED_RUN_STATUSES.includes(r.status) && (r.nextAttemptAtMs ?? 0) <= nowMs)
        .sort((a, b) => a.createdAtMs - b.createdAtMs)
        .slice(0, limit);
    },
    async listByGroup(groupId, limit) {
      return runs
        .values()
        .filter((r) => r.groupId === groupId)
        .sort((a, b) => b.createdAtMs - a.createdAtMs || (b.id < a.id ? -1 : 1))
        .slice(0, limit);
    },
  };

  const leaseRepo: LeaseRepository = {
    async acquire(name, holder, ttlMs, nowMs) {
      const cur = leases.get(name);
      try {
        if (!cur) {
          const v = leases.put(name, { name, holder, fence: 1, expiresAtMs: nowMs + ttlMs });
          return { ...v.value, rev: v.rev };
        }
        if (cur.value.holder === '' || cur.value.expiresAtMs <= nowMs) {
          const v = leases.put(name, { name, holder, fence: cur.value.fence + 1, expiresAtMs: nowMs + ttlMs }, cur.rev);
          return { ...v.value, rev: v.rev };
        }
        if (cur.value.holder === holder) {
          const v = leases.put(name, { ...cur.value, expiresAtMs: nowMs + ttlMs }, cur.rev);
          return { ...v.value, rev: v.rev };
        }
        return undefined;
      } catch {
        return undefined;
      }
    },
    async renew(lease, ttlMs, nowMs) {
      const cur = leases.get(lease.name);
      if (!cur || cur.value.holder !== lease.holder || cur.value.fence !== lease.fence) {
        throw new AppError('LEASE_LOST', `Lease ${lease.name} lost`);
      }
      const v = leases.put(lease.name, { ...cur.value, expiresAtMs: nowMs + ttlMs }, cur.rev);
      return { ...v.value, rev: v.rev };
    },
    async release(lease) {
      const cur = leases.get(lease.name);
      if (!cur || cur.value.holder !== lease.holder || cur.value.fence !== lease.fence) return;
      leases.put(lease.name, { ...cur.value, holder: '', expiresAtMs: 0 }, cur.rev);
    },
    async assertHeld(lease, nowMs) {
      const cur = leases.get(lease.name);
      if (
        !cur ||
        cur.value.holder !== lease.holder ||
        cur.value.fence !== lease.fence ||
        cur.value.expiresAtMs <= nowMs
      ) {
        throw new AppError('LEASE_LOST', `Lease ${lease.name} lost`);
      }
    },
  };

  const chain = (groupId: GroupId) =>
    lineage
      .values()
      .filter((r) => r.groupId === groupId)
      .sort((a, b) => a.generation - b.generation);

  const lineageRepo: LineageRepository = {
    async append(record) {
      const head = chain(record.groupId).at(-1);
      if ((head?.generation ?? record.generation - 1) + 1 !== record.generation && head) {
        throw conflict(`lineage ${record.groupId}`);
      }
      lineage.put(`${record.groupId}:${record.generation}`, record);
    },
    async head(groupId) {
      return chain(groupId).at(-1);
    },
    async get(groupId, generation) {
      const v = lineage.get(`${groupId}:${generation}`);
      if (!v) throw new AppError('GENERATION_NOT_FOUND', `Generation ${generation} of ${groupId} not found`);
      return v.value;
    },
    async list(groupId, opts): Promise<Page<LineageRecord>> {
      return { items: chain(groupId).reverse().slice(0, opts.limit) };
    },
    async findByKeyVersion(keyVersionId) {
      return lineage.values().find((r) => r.members.some((m) => m.keyVersionId === keyVersionId));
    },
    async *exportAll(groupId, after) {
      const all = lineage
        .values()
        .filter((x) => !groupId || x.groupId === groupId)
        .filter(
          (x) =>
            !after || x.groupId > after.groupId || (x.groupId === after.groupId && x.generation > after.generation),
        )
        .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : a.generation - b.generation));
      for (const r of all) yield r;
    },
    async chain(groupId) {
      return chain(groupId);
    },
  };

  return {
    groups: {
      async create(group) {
        if (groups.get(group.id)) throw new AppError('GROUP_EXISTS', `Group ${group.id} exists`);
        return groups.put(group.id, group);
      },
      async get(id) {
        const v = groups.get(id);
        if (!v) throw new AppError('GROUP_NOT_FOUND', `Group ${id} not found`);
        return v;
      },
      async find(id) {
        return groups.get(id);
      },
      async update(group, rev) {
        return groups.put(group.id, group, rev);
      },
      async mutate(id, fn) {
        for (;;) {
          const cur = groups.get(id);
          if (!cur) throw new AppError('GROUP_NOT_FOUND', `Group ${id} not found`);
          try {
            return groups.put(id, fn(cur.value), cur.rev);
          } catch (err) {
            if (!(err instanceof AppError && err.code === 'STORE_CONFLICT')) throw err;
          }
        }
      },
      async list(opts) {
        return { items: groups.values().slice(0, opts?.limit ?? 100) };
      },
      async findDue(nowMs, limit) {
        return groups
          .values()
          .filter((g) => g.nextDueAtMs !== undefined && g.nextDueAtMs <= nowMs)
          .slice(0, limit);
      },
      async findVerifyDue(nowMs, limit) {
        return groups
          .values()
          .filter((g) => g.verifyDueAtMs !== undefined && g.verifyDueAtMs <= nowMs)
          .sort((a, b) => a.verifyDueAtMs! - b.verifyDueAtMs!)
          .slice(0, limit);
      },
    },
    runs: runRepo,
    leases: leaseRepo,
    events: {
      async markProcessed(eventId) {
        if (events.has(eventId)) return false;
        events.add(eventId);
        return true;
      },
    },
    lineage: lineageRepo,
    checkpoints: {
      async put(cp) {
        checkpoints.push(copy(cp));
      },
      async latest(groupId) {
        return checkpoints.filter((c) => c.groupId === groupId).sort((a, b) => b.generation - a.generation)[0];
      },
      async list(groupId) {
        return checkpoints.filter((c) => c.groupId === groupId);
      },
    },
    evidence: {
      async append(r) {
        if (!groups.get(r.groupId)) throw new AppError('GROUP_NOT_FOUND', `No group ${r.groupId}`);
        if (evidence.some((x) => x.groupId === r.groupId && x.seq === r.seq)) {
          throw new AppError('STORE_CONFLICT', `evidence ${r.seq} of ${r.groupId} exists`);
        }
        evidence.push(copy(r));
      },
      async head(groupId) {
        return evidence.filter((x) => x.groupId === groupId).sort((a, b) => b.seq - a.seq)[0];
      },
      async chain(groupId) {
        return evidence.filter((x) => x.groupId === groupId).sort((a, b) => a.seq - b.seq);
      },
      async list(groupId, opts) {
        const all = evidence.filter((x) => x.groupId === groupId).sort((a, b) => b.seq - a.seq);
        const from = opts.cursor === undefined ? 0 : all.findIndex((x) => x.seq <= Number(opts.cursor));
        const items = from < 0 ? [] : all.slice(from, from + opts.limit);
        const extra = from < 0 ? undefined : all[from + opts.limit];
        return { items, ...(extra ? { next: String(extra.seq) } : {}) };
      },
      async putCheckpoint(cp) {
        if (!evidenceCheckpoints.some((c) => JSON.stringify(c) === JSON.stringify(cp)))
          evidenceCheckpoints.push(copy(cp));
      },
      async checkpoints(groupId) {
        return evidenceCheckpoints
          .filter((c) => c.groupId === groupId)
          .sort((a, b) => a.seq - b.seq || a.signedAtMs - b.signedAtMs);
      },
    },
    dump() {
      return JSON.stringify({
        groups: groups.values(),
        runs: runs.values(),
        leases: leases.values(),
        lineage: lineage.values(),
        checkpoints,
        evidence,
      });
    },
  };
}
