import type { ProcessedEventRepository } from '../app/ports.js';
import type { GroupId } from '../core/index.js';
import { asEventId, asGroupId } from '../core/index.js';
import type { Collection } from './collection.js';
import { checkInt, checkString, encode } from './documents.js';
import { isStoreConflict } from './errors.js';

/** Processed event ids as create-only documents `event:<eventId>`: the first writer wins, every later one is a duplicate. */
export class CloudantProcessedEventRepository implements ProcessedEventRepository {
  constructor(private readonly col: Collection) {}

  async markProcessed(
    eventId: string,
    info: { source: string; receivedAtMs: number; groupId?: GroupId },
  ): Promise<boolean> {
    asEventId(eventId);
    checkString('source', info.source, 200);
    checkInt('receivedAtMs', info.receivedAtMs);
    if (info.groupId !== undefined) asGroupId(info.groupId);
    const doc = encode(
      'event',
      `event:${eventId}`,
      {
        eventId,
        source: info.source,
        receivedAtMs: info.receivedAtMs,
        ...(info.groupId ? { groupId: info.groupId } : {}),
      },
      {},
    );
    try {
      await this.col.create(doc);
      return true;
    } catch (err) {
      if (isStoreConflict(err)) return false;
      throw err;
    }
  }
}
