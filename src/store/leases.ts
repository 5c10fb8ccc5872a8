import type { Lease, LeaseRepository } from '../app/ports.js';
import { AppError } from '../core/index.js';
import type { Collection } from './collection.js';
import { checkInt, checkString, type Envelope, encode } from './documents.js';
import { isStoreConflict } from './errors.js';

/** Lease names: `group:<id>`, `token:<region>:<instanceId>`, … */
const LEASE_NAME = /^[a-z][a-z0-9]*:[A-Za-z0-9:._-]{1,190}$/;
/** A lease may be taken for at most a day. */
const MAX_TTL_MS = 86_400_000;
/** Renew and release re-read after a conflict at most this many times. */
const ATTEMPTS = 8;

interface LeaseData {
  name: string;
  /** Empty when released. */
  holder: string;
  fence: number;
  expiresAtMs: number;
  acquiredAtMs: number;
}

export const leaseDocId = (name: string): string => `lease:${name}`;

function checkName(name: string): string {
  if (typeof name !== 'string' || !LEASE_NAME.test(name)) {
    throw new AppError('VALIDATION_FAILED', 'Invalid lease name: expected <kind>:<id>, e.g. group:payments', {
      details: { field: 'name', received: String(name).slice(0, 80) },
    });
  }
  return name;
}

const checkTtl = (ttlMs: number) => {
  checkInt('ttlMs', ttlMs, 1);
  if (ttlMs > MAX_TTL_MS) throw new AppError('VALIDATION_FAILED', `ttlMs must be at most ${MAX_TTL_MS}`);
};

const toLease = (doc: Envelope<LeaseData>): Lease => ({
  name: doc.data.name,
  holder: doc.data.holder,
  fence: doc.data.fence,
  expiresAtMs: doc.data.expiresAtMs,
  rev: doc._rev as string,
});

const lost = (lease: Lease, why: string) =>
  new AppError('LEASE_LOST', `Lease ${lease.name} is no longer held by ${lease.holder}: ${why}`, {
    details: { lease: lease.name, fence: lease.fence },
  });

/**
 * The document that takes lease `name` for `holder` over `cur` (its current document, if any): a new lease, one
 * taken over after release or expiry (next fence), or the holder's own extended (same fence); `undefined` while
 * someone else holds it.
 */
function taking(
  cur: Envelope<LeaseData> | undefined,
  id: string,
  name: string,
  holder: string,
  ttlMs: number,
  nowMs: number,
): Envelope<LeaseData> | undefined {
  if (!cur) return encode('lease', id, { name, holder, fence: 1, expiresAtMs: nowMs + ttlMs, acquiredAtMs: nowMs });
  if (cur.data.holder === '' || cur.data.expiresAtMs <= nowMs) {
    const data = { name, holder, fence: cur.data.fence + 1, expiresAtMs: nowMs + ttlMs, acquiredAtMs: nowMs };
    return encode('lease', id, data, {}, cur._rev);
  }
  // Re-entrant: the same holder extends its own lease and keeps its fence.
  if (cur.data.holder === holder) return encode('lease', id, { ...cur.data, expiresAtMs: nowMs + ttlMs }, {}, cur._rev);
  return undefined;
}

/**
 * Leases as Cloudant documents `lease:<name>`. Mutual exclusion comes from `_rev`: of two writers that read the same
 * revision, exactly one write succeeds. The document is never deleted (release only clears the holder), so `fence`
 * keeps growing across holders and a stale holder's fence never matches again.
 *
 *   A: read(rev 3, expired) ── put(rev 3 → 4, fence 8) ✓            A holds fence 8
 *   B: read(rev 3, expired) ──────── put(rev 3) ✗ 409 → undefined   B does not
 */
export class CloudantLeaseRepository implements LeaseRepository {
  constructor(private readonly col: Collection) {}

  async acquire(name: string, holder: string, ttlMs: number, nowMs: number): Promise<Lease | undefined> {
    checkName(name);
    checkString('holder', holder, 200);
    checkTtl(ttlMs);
    checkInt('nowMs', nowMs);
    const id = leaseDocId(name);
    const next = taking(await this.col.read<LeaseData>(id), id, name, holder, ttlMs, nowMs);
    if (!next) return undefined;
    try {
      await (next._rev === undefined ? this.col.create(next) : this.col.replace(next));
    } catch (err) {
      if (isStoreConflict(err)) return undefined; // someone else got there first
      throw err;
    }
    return this.confirm(id, next.writeId);
  }

  /**
   * `acquire` for several leases in three requests whatever their number (read all, write all, read all back), with
   * the same rules per lease: one contender wins each, and a lease is reported only when its own revision won.
   */
  async acquireMany(names: string[], holder: string, ttlMs: number, nowMs: number): Promise<Array<Lease | undefined>> {
    for (const n of names) checkName(n);
    checkString('holder', holder, 200);
    checkTtl(ttlMs);
    checkInt('nowMs', nowMs);
    if (new Set(names).size !== names.length) {
      throw new AppError('VALIDATION_FAILED', 'acquireMany needs distinct lease names', {
        details: { field: 'names' },
      });
    }
    const ids = names.map(leaseDocId);
    const current = await this.col.readMany<LeaseData>(ids);
    const wanted = names.map((name, i) => taking(current[i]?.doc, ids[i]!, name, holder, ttlMs, nowMs));
    const toWrite = wanted.flatMap((d) => (d ? [d] : []));
    const written = await this.col.writeMany(toWrite);
    const accepted = new Set(toWrite.flatMap((d, i) => ('rev' in written[i]! ? [d._id] : [])));
    const check = ids.filter((id) => accepted.has(id));
    const readBack = await this.col.readMany<LeaseData>(check);
    const byId = new Map(check.map((id, i) => [id, readBack[i]]));
    return Promise.all(
      wanted.map((d) => (d && accepted.has(d._id) ? this.won(d._id, d.writeId, byId.get(d._id)) : undefined)),
    );
  }

  /**
   * Reads the lease back. On one CouchDB node (and the embedded server) the write above already decided; on a
   * Cloudant cluster two contenders can both be accepted on different nodes, and the cluster then picks one winning
   * revision deterministically. Only the writer whose revision wins holds the lease; losing revisions are removed.
   */
  private async confirm(id: string, writeId: string): Promise<Lease | undefined> {
    return this.won(id, writeId, await this.col.readWithConflicts<LeaseData>(id));
  }

  /** The lease when `writeId`'s revision is the one read back (its losing siblings removed), else `undefined`. */
  private async won(
    id: string,
    writeId: string,
    read: { doc: Envelope<LeaseData>; conflicts: string[] } | undefined,
  ): Promise<Lease | undefined> {
    if (!read || read.doc.writeId !== writeId) return undefined;
    if (read.conflicts.length) await this.col.dropRevisions(id, read.conflicts);
    return toLease(read.doc);
  }

  async renew(lease: Lease, ttlMs: number, nowMs: number): Promise<Lease> {
    checkTtl(ttlMs);
    checkInt('nowMs', nowMs);
    const id = leaseDocId(checkName(lease.name));
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const cur = await this.col.read<LeaseData>(id);
      if (!cur) throw lost(lease, 'it does not exist');
      if (cur.data.holder !== lease.holder || cur.data.fence !== lease.fence) {
        throw lost(lease, cur.data.holder === '' ? 'it was released' : 'another holder took it after it expired');
      }
      // Still our fence, so nobody held it in between, even if it had expired: extending is safe.
      const next = encode('lease', id, { ...cur.data, expiresAtMs: nowMs + ttlMs }, {}, cur._rev);
      try {
        return toLease({ ...next, _rev: await this.col.replace(next) });
      } catch (err) {
        if (!isStoreConflict(err)) throw err;
      }
    }
    throw new AppError('STORE_CONFLICT', `Lease ${lease.name} keeps changing; could not renew`, { retryable: true });
  }

  async release(lease: Lease): Promise<void> {
    const id = leaseDocId(checkName(lease.name));
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const cur = await this.col.read<LeaseData>(id);
      if (!cur || cur.data.holder !== lease.holder || cur.data.fence !== lease.fence) return;
      const next = encode('lease', id, { ...cur.data, holder: '', expiresAtMs: 0 }, {}, cur._rev);
      try {
        await this.col.replace(next);
        return;
      } catch (err) {
        if (!isStoreConflict(err)) throw err;
      }
    }
  }

  async assertHeld(lease: Lease, nowMs: number): Promise<void> {
    checkInt('nowMs', nowMs);
    const cur = await this.col.read<LeaseData>(leaseDocId(checkName(lease.name)));
    if (!cur) throw lost(lease, 'it does not exist');
    if (cur.data.holder !== lease.holder || cur.data.fence !== lease.fence) {
      throw lost(lease, cur.data.holder === '' ? 'it was released' : `fence is now ${cur.data.fence}`);
    }
    if (cur.data.expiresAtMs <= nowMs) throw lost(lease, 'it expired');
  }
}
