/**
 * DR drill records and their signed checkpoints. They live in the `checkpoints` database (audit evidence), under id
 * prefixes of their own, so no new database is needed and generation checkpoints' id ranges never see them:
 * `drill:<groupId>:<seq>` and `drillcp:<groupId>:<seq>:<signedAtMs>`. Create-only.
 */
import type { DrillRepository, Page } from '../app/ports.js';
import type { DrillCheckpoint, DrillRecord, GroupId } from '../core/index.js';
import { AppError, asGroupId } from '../core/index.js';
import type { Collection } from './collection.js';
import { checkInt, checkLimit, checkString, encode, padGeneration } from './documents.js';
import { isStoreConflict } from './errors.js';

const drillDocId = (groupId: GroupId, seq: number) => `drill:${groupId}:${padGeneration(seq)}`;
const checkpointDocId = (c: DrillCheckpoint) =>
  `drillcp:${c.groupId}:${padGeneration(c.seq)}:${String(c.signedAtMs).padStart(15, '0')}`;
const PAGE = 500;

export class CloudantDrillRepository implements DrillRepository {
  constructor(
    private readonly col: Collection,
    private readonly groupExists: (id: GroupId) => Promise<boolean>,
  ) {}

  async append(record: DrillRecord): Promise<void> {
    checkInt('seq', record.seq, 1);
    checkString('hash', record.hash, 64, 64);
    const doc = encode('drill', drillDocId(asGroupId(record.groupId), record.seq), record, {
      groupId: record.groupId,
      seq: record.seq,
    });
    if (!(await this.groupExists(record.groupId))) {
      throw new AppError('GROUP_NOT_FOUND', `No group ${record.groupId}`, { details: { groupId: record.groupId } });
    }
    await this.col.create(doc);
  }

  async head(groupId: GroupId): Promise<DrillRecord | undefined> {
    const p = `drill:${asGroupId(groupId)}:`;
    const [doc] = await this.col.range<DrillRecord>({ startKey: `${p}\ufff0`, endKey: p, limit: 1, descending: true });
    return doc?.data;
  }

  async list(groupId: GroupId, opts: { limit: number; cursor?: string }): Promise<Page<DrillRecord>> {
    return listNewestFirst<DrillRecord>(this.col, `drill:${asGroupId(groupId)}:`, opts);
  }

  async chain(groupId: GroupId): Promise<DrillRecord[]> {
    return allWithPrefix<DrillRecord>(this.col, `drill:${asGroupId(groupId)}:`);
  }

  async putCheckpoint(cp: DrillCheckpoint): Promise<void> {
    checkInt('seq', cp.seq, 1);
    await createOnce(this.col, encode('drill-checkpoint', checkpointDocId(cp), cp, { groupId: cp.groupId }));
  }

  async checkpoints(groupId: GroupId): Promise<DrillCheckpoint[]> {
    return allWithPrefix<DrillCheckpoint>(this.col, `drillcp:${asGroupId(groupId)}:`);
  }
}

/** Creates `doc`; when it exists with the same data already, does nothing (a retried write). */
export async function createOnce(col: Collection, doc: ReturnType<typeof encode>): Promise<void> {
  try {
    await col.create(doc);
  } catch (err) {
    if (isStoreConflict(err)) {
      const cur = await col.read<unknown>(doc._id);
      if (cur && JSON.stringify(cur.data) === JSON.stringify(doc.data)) return;
    }
    throw err;
  }
}

/** Every document whose id starts with `prefix`, in id order (read in pages). */
export async function allWithPrefix<T>(col: Collection, prefix: string): Promise<T[]> {
  const out: T[] = [];
  let start = prefix;
  for (;;) {
    const docs = await col.range<T>({ startKey: start, endKey: `${prefix}\ufff0`, limit: PAGE + 1 });
    out.push(...docs.slice(0, PAGE).map((d) => d.data));
    const extra = docs[PAGE];
    if (!extra) return out;
    start = extra._id;
  }
}

/** A page of a seq chain stored under `prefix<seq>`, newest first; the cursor is the seq to continue from. */
export async function listNewestFirst<T extends { seq: number }>(
  col: Collection,
  prefix: string,
  opts: { limit: number; cursor?: string },
): Promise<Page<T>> {
  const limit = checkLimit(opts.limit, 200);
  let start = `${prefix}\ufff0`;
  if (opts.cursor !== undefined) {
    if (!/^\d{1,10}$/.test(opts.cursor)) {
      throw new AppError('INVALID_CURSOR', 'The cursor is not one this API issued', { details: { field: 'cursor' } });
    }
    start = `${prefix}${padGeneration(Number(opts.cursor))}`;
  }
  const docs = await col.range<T>({ startKey: start, endKey: prefix, limit: limit + 1, descending: true });
  const items = docs.slice(0, limit).map((d) => d.data);
  const extra = docs[limit];
  return { items, ...(extra ? { next: String(extra.data.seq) } : {}) };
}
