import type { ExportPosition, LineageRepository, Page } from '../app/ports.js';
import type { GroupId, KeyVersionId, LineageRecord } from '../core/index.js';
import { AppError, asGroupId, asKeyVersionId, asRunId, LineageStatus } from '../core/index.js';
import type { Collection } from './collection.js';
import {
  checkInt,
  checkLimit,
  checkString,
  decodeCursor,
  type Envelope,
  encode,
  encodeCursor,
  padGeneration,
} from './documents.js';
import { isStoreConflict, StoreConflictError } from './errors.js';
import { DESIGN_DOCS, INDEXES, useIndex } from './setup.js';

/** Deterministic, create-only: a second append of a generation is a conflict, never an overwrite. */
export const lineageDocId = (groupId: GroupId, generation: number): string =>
  `lineage:${groupId}:${padGeneration(generation)}`;

/**
 * The document `append` writes for a record, for bulk import (e.g. the benchmark) with `postBulkDocs`. Validates like
 * `append` but checks neither the group nor the chain.
 * @internal
 */
export function toLineageDocument(record: LineageRecord): Envelope<LineageRecord> {
  validateLineageRecord(record);
  return encode('lineage', lineageDocId(record.groupId, record.generation), record, {
    groupId: record.groupId,
    generation: record.generation,
    finishedAtMs: record.finishedAtMs,
  });
}

/** Page size used when streaming (export, chain). */
const STREAM_PAGE = 200;
const MAX_GENERATION = 9_999_999_999;

export function validateLineageRecord(r: LineageRecord): LineageRecord {
  if (typeof r !== 'object' || r === null) throw new AppError('VALIDATION_FAILED', 'record must be an object');
  asGroupId(r.groupId);
  checkInt('generation', r.generation);
  if (r.generation > MAX_GENERATION) throw new AppError('VALIDATION_FAILED', 'generation is too large');
  asRunId(r.runId);
  checkString('fingerprint', r.fingerprint, 200);
  checkString('hash', r.hash, 200);
  checkString('prevHash', r.prevHash, 200, 0);
  checkInt('startedAtMs', r.startedAtMs);
  checkInt('finishedAtMs', r.finishedAtMs);
  if (!Object.values(LineageStatus).includes(r.status)) {
    throw new AppError('VALIDATION_FAILED', `status must be one of ${Object.values(LineageStatus).join(', ')}`);
  }
  if (!Array.isArray(r.members) || r.members.length === 0) {
    throw new AppError('VALIDATION_FAILED', 'a lineage record needs its members', { details: { field: 'members' } });
  }
  for (const m of r.members) asKeyVersionId(m.keyVersionId);
  if (!Array.isArray(r.verification)) throw new AppError('VALIDATION_FAILED', 'verification must be an array');
  return r;
}

interface ListCursor {
  g: string;
  n: number;
}
const isListCursor = (v: unknown): v is ListCursor =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as ListCursor).g === 'string' &&
  Number.isSafeInteger((v as ListCursor).n) &&
  (v as ListCursor).n >= 0;

/**
 * Lineage records in Cloudant, one document `lineage:<groupId>:<generation>` each. All queries go through the
 * `[groupId, generation]` Mango index with inclusive key ranges (`$gte`/`$lte`, never skip or bookmarks), so paging is
 * identical on Cloudant and the embedded server.
 */
export class CloudantLineageRepository implements LineageRepository {
  constructor(
    private readonly col: Collection,
    private readonly groupExists: (id: GroupId) => Promise<boolean>,
  ) {}

  async append(record: LineageRecord): Promise<void> {
    const doc = toLineageDocument(record);
    // Both reads at once: one store round trip before the write, not two.
    const [exists, head] = await Promise.all([this.groupExists(record.groupId), this.headDoc(record.groupId)]);
    if (!exists) {
      throw new AppError('GROUP_NOT_FOUND', `No group ${record.groupId}; lineage needs an existing group`, {
        details: { groupId: record.groupId },
      });
    }
    if (head && record.generation <= head.data.generation) {
      const existing = await this.col.read<LineageRecord>(doc._id);
      throw new StoreConflictError<LineageRecord>(
        `Generation ${record.generation} of ${record.groupId} is already recorded (head is ${head.data.generation})`,
        { docId: doc._id, ...(existing ? { current: { value: existing.data, rev: existing._rev as string } } : {}) },
      );
    }
    if (head && record.generation !== head.data.generation + 1) {
      throw new AppError(
        'VALIDATION_FAILED',
        `Generation ${record.generation} does not follow the head ${head.data.generation} of ${record.groupId}`,
        { details: { field: 'generation', expected: head.data.generation + 1 } },
      );
    }
    if (head && record.prevHash !== head.data.hash) {
      throw new AppError('CHAIN_BROKEN', `prevHash of generation ${record.generation} is not the hash of the head`, {
        details: { groupId: record.groupId, generation: record.generation },
      });
    }
    try {
      await this.col.create(doc);
    } catch (err) {
      if (isStoreConflict<Envelope<LineageRecord>>(err)) {
        throw new StoreConflictError<LineageRecord>(
          `Generation ${record.generation} of ${record.groupId} was recorded concurrently`,
          {
            docId: doc._id,
            ...(err.current ? { current: { value: err.current.value.data, rev: err.current.rev } } : {}),
          },
        );
      }
      throw err;
    }
  }

  async head(groupId: GroupId): Promise<LineageRecord | undefined> {
    return (await this.headDoc(asGroupId(groupId)))?.data;
  }

  /**
   * The newest record: the last document id of the group's prefix (generations are zero-padded, and a group id has no
   * colon), read from the primary index (no query index, no query planner).
   */
  private async headDoc(groupId: GroupId): Promise<Envelope<LineageRecord> | undefined> {
    const prefix = `lineage:${groupId}:`;
    const [doc] = await this.col.range<LineageRecord>({
      startKey: `${prefix}\ufff0`,
      endKey: prefix,
      limit: 1,
      descending: true,
    });
    return doc;
  }

  async get(groupId: GroupId, generation: number): Promise<LineageRecord> {
    asGroupId(groupId);
    checkInt('generation', generation);
    const doc = await this.col.read<LineageRecord>(lineageDocId(groupId, generation));
    if (!doc) {
      throw new AppError('GENERATION_NOT_FOUND', `Group ${groupId} has no generation ${generation}`, {
        details: { groupId, generation },
      });
    }
    return doc.data;
  }

  async list(
    groupId: GroupId,
    opts: { limit: number; cursor?: string; sinceMs?: number; untilMs?: number },
  ): Promise<Page<LineageRecord>> {
    asGroupId(groupId);
    const limit = checkLimit(opts.limit);
    const time: Record<string, number> = {};
    if (opts.sinceMs !== undefined) time.$gte = checkInt('sinceMs', opts.sinceMs);
    if (opts.untilMs !== undefined) time.$lte = checkInt('untilMs', opts.untilMs);
    let upTo = MAX_GENERATION;
    if (opts.cursor !== undefined) {
      const c = decodeCursor(opts.cursor, isListCursor);
      if (c.g !== groupId) {
        throw new AppError('INVALID_CURSOR', 'The cursor belongs to another group; start again without a cursor');
      }
      upTo = c.n;
    }
    if (!Object.keys(time).length) {
      // The plain page: an index-only range read of the page view, newest first, one row more than asked (its
      // generation starts the next page).
      const rows = await this.col.viewValues<LineageRecord>(DESIGN_DOCS.lineagePage.ddoc, 'by-group-generation', {
        startKey: [groupId, upTo],
        endKey: [groupId, 0],
        limit: limit + 1,
        descending: true,
      });
      const items = rows.slice(0, limit).map((r) => r.value);
      const extra = rows[limit];
      return extra ? { items, next: encodeCursor({ g: groupId, n: extra.value.generation }) } : { items };
    }
    // With a time filter: Mango over the [groupId, generation] index. One record more than asked, as above
    // (inclusive bounds only: PouchDB's Mango loses rows at exclusive bounds combined with a limit).
    const docs = await this.col.find<LineageRecord>({
      selector: {
        groupId,
        generation: { $lte: upTo },
        ...(Object.keys(time).length ? { finishedAtMs: time } : {}),
      },
      sort: [{ groupId: 'desc' }, { generation: 'desc' }],
      limit: limit + 1,
      useIndex: useIndex(INDEXES.lineageByGroup),
    });
    const items = docs.slice(0, limit).map((d) => d.data);
    const extra = docs[limit];
    return extra ? { items, next: encodeCursor({ g: groupId, n: extra.data.generation }) } : { items };
  }

  /** The Mango `_explain` of the first page of `list` (for the benchmark and ops). */
  async explainList(groupId: GroupId): Promise<Record<string, unknown>> {
    return this.col.explain({
      selector: { groupId: asGroupId(groupId), generation: { $lte: MAX_GENERATION } },
      sort: [{ groupId: 'desc' }, { generation: 'desc' }],
      limit: 51,
      useIndex: useIndex(INDEXES.lineageByGroup),
    });
  }

  async findByKeyVersion(keyVersionId: KeyVersionId): Promise<LineageRecord | undefined> {
    asKeyVersionId(keyVersionId);
    const dd = DESIGN_DOCS.lineageViews;
    // Keys are stored as given; accept either case of the UUID.
    for (const key of new Set([keyVersionId, keyVersionId.toLowerCase()])) {
      const [doc] = await this.col.view<LineageRecord>(dd.ddoc, 'by-key-version', key, 1);
      if (doc) return doc.data;
    }
    return undefined;
  }

  /**
   * One key-range walk of the page view (`by-group-generation`, index-only) from the position after `after` (or the
   * group's start),
   * pages of STREAM_PAGE + 1 rows: the extra row's key starts the next page. Never `skip`.
   */
  async *exportAll(groupId?: GroupId, after?: ExportPosition): AsyncIterable<LineageRecord> {
    const only = groupId === undefined ? undefined : asGroupId(groupId);
    if (only && after && after.groupId !== only) return;
    // index-only: the page view's rows carry the records (the same [groupId, generation] order as the export view)
    const dd = DESIGN_DOCS.lineagePage;
    let start: unknown[] = after ? [after.groupId, after.generation + 1] : only ? [only, 0] : [''];
    const end: unknown[] = only ? [only, Number.MAX_SAFE_INTEGER] : [{}];
    for (;;) {
      const rows = await this.col.viewValues<LineageRecord>(dd.ddoc, 'by-group-generation', {
        startKey: start,
        endKey: end,
        limit: STREAM_PAGE + 1,
        descending: false,
      });
      for (const { value } of rows.slice(0, STREAM_PAGE)) {
        if (only && value.groupId !== only) return;
        yield value;
      }
      const extra = rows[STREAM_PAGE];
      if (!extra) return;
      start = extra.key as unknown[];
    }
  }

  /** One group's records in generation order from `fromGeneration`: index-only range reads of the page view. */
  private async *streamGroup(groupId: GroupId, fromGeneration = 0): AsyncIterable<LineageRecord> {
    let start: unknown[] = [groupId, fromGeneration];
    for (;;) {
      const rows = await this.col.viewValues<LineageRecord>(DESIGN_DOCS.lineagePage.ddoc, 'by-group-generation', {
        startKey: start,
        endKey: [groupId, Number.MAX_SAFE_INTEGER],
        limit: STREAM_PAGE + 1,
        descending: false,
      });
      for (const { value } of rows.slice(0, STREAM_PAGE)) yield value;
      const extra = rows[STREAM_PAGE];
      if (!extra) return;
      start = extra.key as unknown[];
    }
  }

  async chain(groupId: GroupId, fromGeneration = 0): Promise<LineageRecord[]> {
    const out: LineageRecord[] = [];
    for await (const r of this.streamGroup(asGroupId(groupId), checkInt('fromGeneration', fromGeneration))) out.push(r);
    return out;
  }
}
