/**
 * Late Activity Tracker evidence records (`src/lineage/evidence.ts`). They live in the `checkpoints` database (audit
 * evidence, like the DR drill records), under an id prefix of their own, so no new database is needed and the
 * generation checkpoints' id ranges never see them: `evidence:<groupId>:<seq>`, and the signed heads under
 * `evidencecp:<groupId>:<seq>:<signedAtMs>`. Create-only: a second record with
 * the same `seq` is a `STORE_CONFLICT` (the caller re-reads the head and chains after it).
 */
import type { EvidenceRepository, Page } from '../app/ports.js';
import type { EvidenceCheckpoint, EvidenceRecord, GroupId } from '../core/index.js';
import { AppError, asGroupId } from '../core/index.js';
import type { Collection } from './collection.js';
import { checkInt, checkString, encode, padGeneration } from './documents.js';
import { allWithPrefix, createOnce, listNewestFirst } from './drills.js';

const evidenceDocId = (groupId: GroupId, seq: number) => `evidence:${groupId}:${padGeneration(seq)}`;
const checkpointDocId = (c: EvidenceCheckpoint) =>
  `evidencecp:${c.groupId}:${padGeneration(c.seq)}:${String(c.signedAtMs).padStart(15, '0')}`;

export class CloudantEvidenceRepository implements EvidenceRepository {
  constructor(
    private readonly col: Collection,
    private readonly groupExists: (id: GroupId) => Promise<boolean>,
  ) {}

  async append(record: EvidenceRecord): Promise<void> {
    checkInt('seq', record.seq, 1);
    checkString('hash', record.hash, 64, 64);
    const doc = encode('evidence', evidenceDocId(asGroupId(record.groupId), record.seq), record, {
      groupId: record.groupId,
    });
    if (!(await this.groupExists(record.groupId))) {
      throw new AppError('GROUP_NOT_FOUND', `No group ${record.groupId}`, { details: { groupId: record.groupId } });
    }
    await this.col.create(doc);
  }

  async head(groupId: GroupId): Promise<EvidenceRecord | undefined> {
    const p = `evidence:${asGroupId(groupId)}:`;
    const [doc] = await this.col.range<EvidenceRecord>({
      startKey: `${p}\ufff0`,
      endKey: p,
      limit: 1,
      descending: true,
    });
    return doc?.data;
  }

  async list(groupId: GroupId, opts: { limit: number; cursor?: string }): Promise<Page<EvidenceRecord>> {
    return listNewestFirst<EvidenceRecord>(this.col, `evidence:${asGroupId(groupId)}:`, opts);
  }

  async chain(groupId: GroupId): Promise<EvidenceRecord[]> {
    return allWithPrefix<EvidenceRecord>(this.col, `evidence:${asGroupId(groupId)}:`);
  }

  async putCheckpoint(cp: EvidenceCheckpoint): Promise<void> {
    checkInt('seq', cp.seq, 1);
    await createOnce(this.col, encode('evidence-checkpoint', checkpointDocId(cp), cp, { groupId: cp.groupId }));
  }

  async checkpoints(groupId: GroupId): Promise<EvidenceCheckpoint[]> {
    return allWithPrefix<EvidenceCheckpoint>(this.col, `evidencecp:${asGroupId(groupId)}:`);
  }
}
