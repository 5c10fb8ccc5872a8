import type { RunRecordBase, RunRepository, Versioned } from '../app/ports.js';
import { RunStatus, UNFINISHED_RUN_STATUSES } from '../app/ports.js';
import type { GroupId, RunId } from '../core/index.js';
import { AppError, asGroupId, asRunId } from '../core/index.js';
import { type Collection, versioned } from './collection.js';
import { checkInt, checkLimit, checkString, type Envelope, encode } from './documents.js';
import { isStoreConflict, StoreConflictError } from './errors.js';
import { INDEXES, useIndex } from './setup.js';

export const runDocId = (id: RunId): string => `run:${id}`;

/** Validates the indexed fields of a run; the saga's own fields are stored as given. @throws {AppError} VALIDATION_FAILED */
export function validateRun<R extends RunRecordBase>(run: R): R {
  if (typeof run !== 'object' || run === null) throw new AppError('VALIDATION_FAILED', 'run must be an object');
  asRunId(run.id);
  asGroupId(run.groupId);
  checkInt('generation', run.generation);
  checkString('kind', run.kind, 64);
  if (!Object.values(RunStatus).includes(run.status)) {
    throw new AppError('VALIDATION_FAILED', `status must be one of ${Object.values(RunStatus).join(', ')}`, {
      details: { field: 'status' },
    });
  }
  checkInt('createdAtMs', run.createdAtMs);
  checkInt('updatedAtMs', run.updatedAtMs);
  if (run.nextAttemptAtMs !== undefined) checkInt('nextAttemptAtMs', run.nextAttemptAtMs);
  return run;
}

/**
 * Index fields: `unfinishedCreatedAtMs` exists only while the run is unfinished, so the "unfinished" index holds
 * only the few live runs however long the history grows; `attemptAtMs` is filtered on inside that index.
 */
function toDoc<R extends RunRecordBase>(run: R, rev?: string): Envelope<R> {
  validateRun(run);
  const unfinished = UNFINISHED_RUN_STATUSES.includes(run.status);
  return encode(
    'run',
    runDocId(run.id),
    run,
    {
      groupId: run.groupId,
      createdAtMs: run.createdAtMs,
      unfinishedCreatedAtMs: unfinished ? run.createdAtMs : undefined,
      attemptAtMs: unfinished ? (run.nextAttemptAtMs ?? 0) : undefined,
    },
    rev,
  );
}

/** Runs (persisted sagas) in Cloudant: one document `run:<id>` each, saga fields under `data`, returned unchanged. */
export class CloudantRunRepository<R extends RunRecordBase = RunRecordBase> implements RunRepository<R> {
  constructor(
    private readonly col: Collection,
    private readonly groupExists: (id: GroupId) => Promise<boolean>,
  ) {}

  async create(run: R): Promise<Versioned<R>> {
    const doc = toDoc(run);
    // A `create` (or `adopt`) run comes first: it names the keys it will make before any exists, and writes its group when they
    // do (so a crash never leaves keys nothing names). Every other run belongs to an existing group.
    if (run.kind !== 'create' && run.kind !== 'adopt' && !(await this.groupExists(run.groupId))) {
      throw new AppError('GROUP_NOT_FOUND', `No group ${run.groupId}; a run needs an existing group`, {
        details: { groupId: run.groupId },
      });
    }
    try {
      const rev = await this.col.create(doc);
      return { value: doc.data, rev };
    } catch (err) {
      if (isStoreConflict<Envelope<R>>(err)) {
        throw new StoreConflictError<R>(`Run ${run.id} already exists`, {
          docId: doc._id,
          ...(err.current ? { current: versioned(err.current.value) } : {}),
        });
      }
      throw err;
    }
  }

  async get(id: RunId): Promise<Versioned<R>> {
    const doc = await this.col.read<R>(runDocId(asRunId(id)));
    if (!doc) throw new AppError('RUN_NOT_FOUND', `No run ${id}`, { details: { runId: id } });
    return versioned(doc);
  }

  async save(run: R, rev: string): Promise<Versioned<R>> {
    checkString('rev', rev, 200);
    const doc = toDoc(run, rev);
    try {
      const newRev = await this.col.replace(doc);
      return { value: doc.data, rev: newRev };
    } catch (err) {
      if (isStoreConflict<Envelope<R>>(err)) {
        if (!err.current) throw new AppError('RUN_NOT_FOUND', `No run ${run.id}`, { details: { runId: run.id } });
        throw new StoreConflictError<R>(`Run ${run.id} was changed since revision ${rev}; re-read and re-apply`, {
          docId: doc._id,
          current: versioned(err.current.value),
        });
      }
      throw err;
    }
  }

  async listUnfinished(nowMs: number, limit: number): Promise<R[]> {
    checkInt('nowMs', nowMs);
    checkLimit(limit);
    const docs = await this.col.find<R>({
      selector: { unfinishedCreatedAtMs: { $gte: 0 }, attemptAtMs: { $lte: nowMs } },
      sort: [{ unfinishedCreatedAtMs: 'asc' }],
      limit,
      useIndex: useIndex(INDEXES.runsUnfinished),
    });
    return docs.map((d) => d.data);
  }

  async listByGroup(groupId: GroupId, limit: number): Promise<R[]> {
    asGroupId(groupId);
    checkLimit(limit);
    const docs = await this.col.find<R>({
      selector: { groupId, createdAtMs: { $gte: 0 } },
      sort: [{ groupId: 'desc' }, { createdAtMs: 'desc' }],
      limit,
      useIndex: useIndex(INDEXES.runsByGroup),
    });
    return docs.map((d) => d.data);
  }
}
