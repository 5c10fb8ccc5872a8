import type { GroupRepository, Page, Versioned } from '../app/ports.js';
import type { Group, GroupId } from '../core/index.js';
import {
  AppError,
  asGroupId,
  asInstanceId,
  asKeyId,
  asRegionId,
  GroupStatus,
  MemberRole,
  parseKeyCrn,
} from '../core/index.js';
import { backoff, type Collection, versioned } from './collection.js';
import { checkInt, checkLimit, checkString, decodeCursor, type Envelope, encode, encodeCursor } from './documents.js';
import { isStoreConflict, StoreConflictError } from './errors.js';
import { INDEXES, useIndex } from './setup.js';

export const groupDocId = (id: GroupId): string => `group:${id}`;

/** How often `mutate` re-reads and re-applies after a conflict before giving up. */
const MUTATE_ATTEMPTS = 12;

/** Validates a group before it is written. @throws {AppError} VALIDATION_FAILED */
export function validateGroup(g: Group): Group {
  if (typeof g !== 'object' || g === null) throw new AppError('VALIDATION_FAILED', 'group must be an object');
  asGroupId(g.id);
  checkString('name', g.name, 200);
  if (!Array.isArray(g.members) || g.members.length < 1 || g.members.length > 50) {
    throw new AppError('VALIDATION_FAILED', 'members must list 1-50 keys', { details: { field: 'members' } });
  }
  for (const m of [...g.members, g.escrow]) {
    if (typeof m !== 'object' || m === null)
      throw new AppError('VALIDATION_FAILED', 'members and escrow must be objects');
    asRegionId(m.region);
    asInstanceId(m.instanceId);
    asKeyId(m.keyId);
    parseKeyCrn(m.crn);
  }
  for (const m of g.members) {
    if (!Object.values(MemberRole).includes(m.role)) {
      throw new AppError('VALIDATION_FAILED', 'member role must be primary or duplicate', {
        details: { field: 'role' },
      });
    }
  }
  if (!Object.values(GroupStatus).includes(g.status)) {
    throw new AppError('VALIDATION_FAILED', `status must be one of ${Object.values(GroupStatus).join(', ')}`, {
      details: { field: 'status' },
    });
  }
  checkInt('currentGeneration', g.currentGeneration);
  checkInt('createdAtMs', g.createdAtMs);
  checkInt('updatedAtMs', g.updatedAtMs);
  if (g.nextDueAtMs !== undefined) checkInt('nextDueAtMs', g.nextDueAtMs);
  if (g.verifyDueAtMs !== undefined) checkInt('verifyDueAtMs', g.verifyDueAtMs);
  if (g.escrowedFromGeneration !== undefined) checkInt('escrowedFromGeneration', g.escrowedFromGeneration);
  if (typeof g.schedule !== 'object' || g.schedule === null) {
    throw new AppError('VALIDATION_FAILED', 'schedule must be an object', { details: { field: 'schedule' } });
  }
  return g;
}

const toDoc = (g: Group, rev?: string): Envelope<Group> =>
  encode(
    'group',
    groupDocId(g.id),
    validateGroup(g),
    { nextDueAtMs: g.nextDueAtMs, verifyDueAtMs: g.verifyDueAtMs },
    rev,
  );

const notFound = (id: string) =>
  new AppError('GROUP_NOT_FOUND', `No group ${id}; create it first`, { details: { groupId: id } });

const isCursor = (v: unknown): v is { k: string } =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { k?: unknown }).k === 'string' &&
  (v as { k: string }).k.startsWith('group:');

/** Groups in Cloudant: one document `group:<id>` each. */
export class CloudantGroupRepository implements GroupRepository {
  constructor(private readonly col: Collection) {}

  async create(group: Group): Promise<Versioned<Group>> {
    const doc = toDoc(group);
    try {
      const rev = await this.col.create(doc);
      return { value: doc.data, rev };
    } catch (err) {
      if (isStoreConflict(err)) {
        throw new AppError('GROUP_EXISTS', `Group ${group.id} already exists`, { details: { groupId: group.id } });
      }
      throw err;
    }
  }

  async get(id: GroupId): Promise<Versioned<Group>> {
    const found = await this.find(id);
    if (!found) throw notFound(id);
    return found;
  }

  async find(id: GroupId): Promise<Versioned<Group> | undefined> {
    const doc = await this.col.read<Group>(groupDocId(asGroupId(id)));
    return doc ? versioned(doc) : undefined;
  }

  async update(group: Group, rev: string): Promise<Versioned<Group>> {
    checkString('rev', rev, 200);
    const doc = toDoc(group, rev);
    try {
      const newRev = await this.col.replace(doc);
      return { value: doc.data, rev: newRev };
    } catch (err) {
      if (isStoreConflict<Envelope<Group>>(err)) {
        if (!err.current) throw notFound(group.id);
        throw new StoreConflictError<Group>(`Group ${group.id} was changed since revision ${rev}; re-read and retry`, {
          docId: doc._id,
          current: versioned(err.current.value),
        });
      }
      throw err;
    }
  }

  async mutate(id: GroupId, mutate: (g: Group) => Group): Promise<Versioned<Group>> {
    let cur = await this.get(id);
    for (let attempt = 0; ; attempt++) {
      const next = mutate(structuredClone(cur.value));
      if (next.id !== id) throw new AppError('VALIDATION_FAILED', 'mutate must not change the group id');
      try {
        return await this.update(next, cur.rev);
      } catch (err) {
        if (!isStoreConflict<Group>(err) || !err.current || attempt + 1 >= MUTATE_ATTEMPTS) throw err;
        cur = err.current;
        await backoff(attempt);
      }
    }
  }

  async list(opts: { limit?: number; cursor?: string } = {}): Promise<Page<Group>> {
    const limit = checkLimit(opts.limit ?? 100);
    const start = opts.cursor === undefined ? 'group:' : decodeCursor(opts.cursor, isCursor).k;
    // One row more than asked: its id is where the next page starts (inclusive), so no row is skipped or repeated
    // even if documents are added or removed between pages.
    const docs = await this.col.range<Group>({ startKey: start, endKey: 'group:\ufff0', limit: limit + 1 });
    const items = docs.slice(0, limit).map((d) => d.data);
    const extra = docs[limit];
    return extra ? { items, next: encodeCursor({ k: extra._id }) } : { items };
  }

  async findDue(nowMs: number, limit: number): Promise<Group[]> {
    checkInt('nowMs', nowMs);
    checkLimit(limit);
    const docs = await this.col.find<Group>({
      // The lower bound matters: PouchDB's Mango treats a missing field as null (≤ any number); CouchDB skips it.
      selector: { nextDueAtMs: { $gte: 0, $lte: nowMs } },
      sort: [{ nextDueAtMs: 'asc' }],
      limit,
      useIndex: useIndex(INDEXES.groupsByNextDue),
    });
    return docs.map((d) => d.data);
  }

  async findVerifyDue(nowMs: number, limit: number): Promise<Group[]> {
    checkInt('nowMs', nowMs);
    checkLimit(limit);
    const docs = await this.col.find<Group>({
      selector: { verifyDueAtMs: { $gte: 0, $lte: nowMs } },
      sort: [{ verifyDueAtMs: 'asc' }],
      limit,
      useIndex: useIndex(INDEXES.groupsByVerifyDue),
    });
    return docs.map((d) => d.data);
  }
}
