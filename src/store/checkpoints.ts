import type { CheckpointRepository } from '../app/ports.js';
import type { Checkpoint, GroupId } from '../core/index.js';
import { AppError, asGroupId } from '../core/index.js';
import type { Collection } from './collection.js';
import { checkInt, checkString, encode, padGeneration } from './documents.js';
import { isStoreConflict } from './errors.js';

/** `checkpoint:<groupId>:<generation>:<signedAtMs>`: per group in (generation, signedAtMs) order by id alone. */
export const checkpointDocId = (c: Checkpoint): string =>
  `checkpoint:${c.groupId}:${padGeneration(c.generation)}:${String(c.signedAtMs).padStart(15, '0')}`;

const PAGE = 500;

function validateCheckpoint(c: Checkpoint): Checkpoint {
  if (typeof c !== 'object' || c === null) throw new AppError('VALIDATION_FAILED', 'checkpoint must be an object');
  asGroupId(c.groupId);
  checkInt('generation', c.generation);
  checkInt('signedAtMs', c.signedAtMs);
  checkString('headHash', c.headHash, 200);
  checkString('keyId', c.keyId, 200);
  checkString('signature', c.signature, 2000);
  if (c.algorithm !== 'Ed25519') throw new AppError('VALIDATION_FAILED', 'algorithm must be Ed25519');
  return c;
}

/** Signed checkpoints of chain heads; create-only, read back through `_all_docs` id ranges. */
export class CloudantCheckpointRepository implements CheckpointRepository {
  constructor(
    private readonly col: Collection,
    private readonly groupExists: (id: GroupId) => Promise<boolean>,
  ) {}

  async put(checkpoint: Checkpoint): Promise<void> {
    const doc = encode('checkpoint', checkpointDocId(validateCheckpoint(checkpoint)), checkpoint, {
      groupId: checkpoint.groupId,
    });
    if (!(await this.groupExists(checkpoint.groupId))) {
      throw new AppError('GROUP_NOT_FOUND', `No group ${checkpoint.groupId}`, {
        details: { groupId: checkpoint.groupId },
      });
    }
    try {
      await this.col.create(doc);
    } catch (err) {
      // The same checkpoint again is fine; a different one with the same id is not.
      if (isStoreConflict(err)) {
        const cur = await this.col.read<Checkpoint>(doc._id);
        if (cur && JSON.stringify(cur.data) === JSON.stringify(doc.data)) return;
      }
      throw err;
    }
  }

  async latest(groupId: GroupId): Promise<Checkpoint | undefined> {
    const p = `checkpoint:${asGroupId(groupId)}:`;
    const [doc] = await this.col.range<Checkpoint>({ startKey: `${p}\ufff0`, endKey: p, limit: 1, descending: true });
    return doc?.data;
  }

  async list(groupId: GroupId, after?: { generation: number; signedAtMs: number }): Promise<Checkpoint[]> {
    const p = `checkpoint:${asGroupId(groupId)}:`;
    const out: Checkpoint[] = [];
    // ids sort by (generation, signedAtMs): the key just after `after`'s id starts the range
    let start = after ? `${checkpointDocId({ groupId, ...after } as Checkpoint)}\u0000` : p;
    for (;;) {
      const docs = await this.col.range<Checkpoint>({ startKey: start, endKey: `${p}\ufff0`, limit: PAGE + 1 });
      out.push(...docs.slice(0, PAGE).map((d) => d.data));
      const extra = docs[PAGE];
      if (!extra) return out;
      start = extra._id;
    }
  }
}
