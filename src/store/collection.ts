/**
 * One Cloudant database seen through the SDK: typed reads, create-only and revision-checked writes, Mango finds and
 * `_all_docs` ranges. Every SDK failure becomes an AppError here; nothing above this file sees an SDK error.
 */
import type { CloudantV1 } from '@ibm-cloud/cloudant';
import type { Versioned } from '../app/ports.js';
import type { Logger } from '../core/index.js';
import type { Envelope } from './documents.js';
import { StoreConflictError, statusOf, toStoreError } from './errors.js';

export interface MangoQuery {
  selector: Record<string, unknown>;
  sort?: Record<string, 'asc' | 'desc'>[];
  limit: number;
  fields?: string[];
  /** [ddoc, index name]: always named, so Cloudant and the embedded server pick the same index. */
  useIndex: [string, string];
}

export class Collection {
  constructor(
    readonly client: CloudantV1,
    readonly db: string,
    readonly logger: Logger,
  ) {}

  /** The document, or undefined if it does not exist (or was deleted). */
  async read<T>(id: string): Promise<Envelope<T> | undefined> {
    try {
      const res = await this.client.getDocument({ db: this.db, docId: id });
      return res.result as unknown as Envelope<T>;
    } catch (err) {
      if (statusOf(err) === 404 && !isMissingDatabase(err)) return undefined;
      throw toStoreError(err, `read ${id} from ${this.db}`);
    }
  }

  /**
   * The winning revision plus the ids of conflicting revisions. A single CouchDB node answers a stale `_rev` with 409;
   * a Cloudant cluster may instead accept two such writes on different nodes and keep the loser as a conflict.
   */
  async readWithConflicts<T>(id: string): Promise<{ doc: Envelope<T>; conflicts: string[] } | undefined> {
    try {
      const res = await this.client.getDocument({ db: this.db, docId: id, conflicts: true });
      const doc = res.result as unknown as Envelope<T> & { _conflicts?: string[] };
      const { _conflicts, ...rest } = doc;
      return { doc: rest as Envelope<T>, conflicts: _conflicts ?? [] };
    } catch (err) {
      if (statusOf(err) === 404 && !isMissingDatabase(err)) return undefined;
      throw toStoreError(err, `read ${id} from ${this.db}`);
    }
  }

  /**
   * Several documents by id in one request (`_all_docs` with `keys`), each with its conflicting revisions (see
   * readWithConflicts); `undefined` for an id that does not exist (or was deleted). Same order as `ids`.
   */
  async readMany<T>(ids: string[]): Promise<Array<{ doc: Envelope<T>; conflicts: string[] } | undefined>> {
    if (ids.length === 0) return [];
    try {
      const res = await this.client.postAllDocs({ db: this.db, keys: ids, includeDocs: true, conflicts: true });
      const byId = new Map<string, { doc: Envelope<T>; conflicts: string[] }>();
      for (const row of res.result.rows) {
        if (!row.doc || !row.id || (row.value as { deleted?: boolean } | undefined)?.deleted) continue;
        const { _conflicts, ...rest } = row.doc as unknown as Envelope<T> & { _conflicts?: string[] };
        byId.set(row.id, { doc: rest as Envelope<T>, conflicts: _conflicts ?? [] });
      }
      return ids.map((id) => byId.get(id));
    } catch (err) {
      throw toStoreError(err, `read ${ids.length} documents from ${this.db}`);
    }
  }

  /**
   * Creates or replaces several documents in one request (`_bulk_docs`, each at its own `_rev`); per document, in
   * order, its new revision or `conflict` (a stale revision, or an id that exists for a create). Nothing is retried.
   */
  async writeMany<T>(docs: Envelope<T>[]): Promise<Array<{ rev: string } | { error: string }>> {
    if (docs.length === 0) return [];
    try {
      const res = await this.client.postBulkDocs({ db: this.db, bulkDocs: { docs: docs as never[] } });
      this.logger.debug('store bulk write', { db: this.db, docs: docs.length });
      return res.result.map((r) => (r.ok && r.rev ? { rev: r.rev } : { error: r.error ?? 'unknown' }));
    } catch (err) {
      throw toStoreError(err, `write ${docs.length} documents to ${this.db}`);
    }
  }

  /** Removes losing revisions (see readWithConflicts). Best effort: another reader may remove them first. */
  async dropRevisions(id: string, revs: string[]): Promise<void> {
    await Promise.allSettled(revs.map((rev) => this.client.deleteDocument({ db: this.db, docId: id, rev })));
  }

  async exists(id: string): Promise<boolean> {
    try {
      const res = await this.client.postAllDocs({ db: this.db, key: id, limit: 1 });
      return res.result.rows.some((r) => r.id === id && !r.error && !r.value?.deleted);
    } catch (err) {
      throw toStoreError(err, `check ${id} in ${this.db}`);
    }
  }

  /**
   * Creates `doc` (no `_rev`). A 409 whose current document carries our `writeId` was our own earlier attempt (a
   * retried request) and counts as success.
   * @throws {StoreConflictError} when the id exists (with the current document)
   */
  async create<T>(doc: Envelope<T>): Promise<string> {
    return this.write(doc, 'create');
  }

  /**
   * Replaces `doc` at `doc._rev`.
   * @throws {StoreConflictError} when the revision is stale (`current` set) or the document is gone (`current` unset)
   */
  async replace<T>(doc: Envelope<T>): Promise<string> {
    return this.write(doc, 'update');
  }

  private async write<T>(doc: Envelope<T>, what: 'create' | 'update'): Promise<string> {
    try {
      const res = await this.client.putDocument({ db: this.db, docId: doc._id, document: doc as never });
      this.logger.debug('store write', { db: this.db, docId: doc._id, op: what });
      return res.result.rev as string;
    } catch (err) {
      if (statusOf(err) !== 409) throw toStoreError(err, `${what} ${doc._id} in ${this.db}`);
      const current = await this.read<T>(doc._id);
      if (current && current.writeId === doc.writeId) return current._rev as string;
      throw new StoreConflictError<Envelope<T>>(
        current
          ? `${doc._id} was changed by someone else (${what} conflict); re-read and apply the change again`
          : `${doc._id} does not exist`,
        {
          docId: doc._id,
          ...(current ? { current: { value: current, rev: current._rev as string } } : {}),
          cause: err,
        },
      );
    }
  }

  async find<T>(q: MangoQuery): Promise<Envelope<T>[]> {
    try {
      const res = await this.client.postFind({
        db: this.db,
        selector: q.selector,
        limit: q.limit,
        useIndex: q.useIndex,
        ...(q.sort ? { sort: q.sort } : {}),
        ...(q.fields ? { fields: q.fields } : {}),
      });
      return res.result.docs as unknown as Envelope<T>[];
    } catch (err) {
      throw toStoreError(err, `query ${this.db}`);
    }
  }

  async explain(q: MangoQuery): Promise<Record<string, unknown>> {
    try {
      const res = await this.client.postExplain({
        db: this.db,
        selector: q.selector,
        limit: q.limit,
        useIndex: q.useIndex,
        ...(q.sort ? { sort: q.sort } : {}),
      });
      return res.result as unknown as Record<string, unknown>;
    } catch (err) {
      throw toStoreError(err, `explain a query on ${this.db}`);
    }
  }

  /** `_all_docs` rows with documents between two ids (inclusive), in id order (raw collation). */
  async range<T>(opts: {
    startKey: string;
    endKey: string;
    limit: number;
    descending?: boolean;
  }): Promise<Envelope<T>[]> {
    try {
      const res = await this.client.postAllDocs({
        db: this.db,
        startKey: opts.startKey,
        endKey: opts.endKey,
        limit: opts.limit,
        descending: opts.descending ?? false,
        includeDocs: true,
      });
      return res.result.rows.flatMap((r) => (r.doc ? [r.doc as unknown as Envelope<T>] : []));
    } catch (err) {
      throw toStoreError(err, `list ${this.db}`);
    }
  }

  /** Rows of a view from `startKey` (inclusive) on, in key order, with their documents. */
  async viewRange<T>(
    ddoc: string,
    view: string,
    startKey: unknown[],
    limit: number,
  ): Promise<Array<{ key: unknown; doc: Envelope<T> }>> {
    try {
      const res = await this.client.postView({
        db: this.db,
        ddoc,
        view,
        startKey,
        limit,
        includeDocs: true,
        reduce: false,
      });
      return res.result.rows.flatMap((r) => (r.doc ? [{ key: r.key, doc: r.doc as unknown as Envelope<T> }] : []));
    } catch (err) {
      throw toStoreError(err, `query view ${ddoc}/${view} on ${this.db}`);
    }
  }

  /** Rows of a view between two keys (inclusive), keys and emitted values only (index-only: no document reads). */
  async viewValues<T>(
    ddoc: string,
    view: string,
    opts: { startKey: unknown[]; endKey: unknown[]; limit: number; descending: boolean },
  ): Promise<Array<{ key: unknown; value: T }>> {
    try {
      const res = await this.client.postView({
        db: this.db,
        ddoc,
        view,
        startKey: opts.startKey,
        endKey: opts.endKey,
        limit: opts.limit,
        descending: opts.descending,
        includeDocs: false,
        reduce: false,
      });
      return res.result.rows.map((r) => ({ key: r.key, value: r.value as T }));
    } catch (err) {
      throw toStoreError(err, `query view ${ddoc}/${view} on ${this.db}`);
    }
  }

  async view<T>(ddoc: string, view: string, key: string, limit: number): Promise<Envelope<T>[]> {
    try {
      const res = await this.client.postView({ db: this.db, ddoc, view, key, limit, includeDocs: true, reduce: false });
      return res.result.rows.flatMap((r) => (r.doc ? [r.doc as unknown as Envelope<T>] : []));
    } catch (err) {
      throw toStoreError(err, `query view ${ddoc}/${view} on ${this.db}`);
    }
  }
}

/** `{value, rev}` of an envelope. */
export const versioned = <T>(doc: Envelope<T>): Versioned<T> => ({ value: doc.data, rev: doc._rev as string });

function isMissingDatabase(err: unknown): boolean {
  const reason = (err as { result?: { reason?: unknown } } | null)?.result?.reason;
  return reason === 'no_db_file' || reason === 'Database does not exist.';
}

/** Waits a little, more each attempt, with jitter (so that contenders spread out). */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random());
  return new Promise((ok) => setTimeout(ok, ms));
}
