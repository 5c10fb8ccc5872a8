/**
 * Lockstep's schema, declared in code and applied idempotently by `ensureSetup()` ("migrations"): one database per
 * kind of document, the Mango indexes every query names, and the one design document (a view) Mango cannot express.
 */
import type { CloudantV1 } from '@ibm-cloud/cloudant';
import type { Logger } from '../core/index.js';
import { AppError } from '../core/index.js';
import { statusOf, toStoreError } from './errors.js';

export const KINDS = ['groups', 'runs', 'leases', 'events', 'lineage', 'checkpoints'] as const;
export type Kind = (typeof KINDS)[number];

/** Database names: `<prefix><kind>`. */
export type DatabaseNames = Record<Kind, string>;

const DB_PREFIX = /^[a-z][a-z0-9_$()+/-]{0,200}$/;

export function databaseNames(prefix = 'lockstep-'): DatabaseNames {
  if (!DB_PREFIX.test(prefix)) {
    throw new AppError('CONFIG_INVALID', 'dbPrefix must start with a-z and use only a-z 0-9 _ $ ( ) + / -', {
      details: { field: 'dbPrefix' },
    });
  }
  return Object.fromEntries(KINDS.map((k) => [k, `${prefix}${k}`])) as DatabaseNames;
}

export interface MangoIndex {
  kind: Kind;
  ddoc: string;
  name: string;
  fields: string[];
}

/** Every Mango index a query uses; queries name them (`use_index`). */
export const INDEXES = {
  groupsByNextDue: { kind: 'groups', ddoc: 'lockstep-groups', name: 'by-next-due', fields: ['nextDueAtMs'] },
  groupsByVerifyDue: {
    kind: 'groups',
    ddoc: 'lockstep-groups',
    name: 'by-verify-due',
    fields: ['verifyDueAtMs'],
  },
  runsUnfinished: {
    kind: 'runs',
    ddoc: 'lockstep-runs',
    name: 'unfinished-by-created',
    fields: ['unfinishedCreatedAtMs'],
  },
  runsByGroup: { kind: 'runs', ddoc: 'lockstep-runs', name: 'by-group-created', fields: ['groupId', 'createdAtMs'] },
  lineageByGroup: {
    kind: 'lineage',
    ddoc: 'lockstep-lineage',
    name: 'by-group-generation',
    fields: ['groupId', 'generation'],
  },
} as const satisfies Record<string, MangoIndex>;

export const useIndex = (i: MangoIndex): [string, string] => [i.ddoc, i.name];

export interface DesignDoc {
  kind: Kind;
  ddoc: string;
  views: Record<string, { map: string }>;
}

/**
 * Mango cannot index into arrays (members[].keyVersionId), so this one lookup is a map view. The source is plain
 * ES5, as CouchDB/Cloudant's JavaScript engine expects.
 */
export const DESIGN_DOCS = {
  lineageViews: {
    kind: 'lineage',
    ddoc: 'lockstep-lineage-views',
    views: {
      'by-key-version': {
        map: 'function (doc) { if (doc.kind === "lineage" && doc.data && doc.data.members) { for (var i = 0; i < doc.data.members.length; i++) { if (doc.data.members[i].keyVersionId) emit(doc.data.members[i].keyVersionId, doc.data.generation); } } }',
      },
    },
  },
  /**
   * History pages (`lineage.list`), the chain and the export as index-only reads: the view row carries the record, so
   * a page of 50 is one B-tree range read (descending from [groupId, upTo]) with no document fetch per row, and the
   * export one key-range walk across every group (a Mango range on groupId alone could not push `limit` down). Costs
   * a second copy of each record in the view index. Its own design document, so its build holds up nothing else.
   */
  lineagePage: {
    kind: 'lineage',
    ddoc: 'lockstep-lineage-page',
    views: {
      'by-group-generation': {
        map: 'function (doc) { if (doc.kind === "lineage" && doc.data) emit([doc.data.groupId, doc.data.generation], doc.data); }',
      },
    },
  },
} as const satisfies Record<string, DesignDoc>;

/** Creates missing databases, indexes and design documents; safe to run any number of times, concurrently. */
export async function ensureSetup(client: CloudantV1, dbs: DatabaseNames, logger: Logger): Promise<void> {
  for (const kind of KINDS) {
    try {
      await client.putDatabase({ db: dbs[kind] });
      logger.info('store database created', { db: dbs[kind] });
    } catch (err) {
      // 412: it exists already.
      if (statusOf(err) !== 412) throw toStoreError(err, `create database ${dbs[kind]}`);
    }
  }
  for (const idx of Object.values(INDEXES) as MangoIndex[]) {
    try {
      const res = await client.postIndex({
        db: dbs[idx.kind],
        ddoc: idx.ddoc,
        name: idx.name,
        type: 'json',
        index: { fields: idx.fields as never },
      });
      if (res.result.result === 'created') logger.info('store index created', { db: dbs[idx.kind], index: idx.name });
    } catch (err) {
      throw toStoreError(err, `create index ${idx.name} on ${dbs[idx.kind]}`);
    }
  }
  for (const dd of Object.values(DESIGN_DOCS) as DesignDoc[]) {
    await ensureDesignDoc(client, dbs[dd.kind], dd, logger);
  }
}

async function ensureDesignDoc(client: CloudantV1, db: string, dd: DesignDoc, logger: Logger): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    let rev: string | undefined;
    try {
      const cur = await client.getDesignDocument({ db, ddoc: dd.ddoc });
      if (JSON.stringify(cur.result.views ?? {}) === JSON.stringify(dd.views)) return;
      rev = cur.result._rev;
    } catch (err) {
      if (statusOf(err) !== 404) throw toStoreError(err, `read design document ${dd.ddoc}`);
    }
    try {
      await client.putDesignDocument({
        db,
        ddoc: dd.ddoc,
        designDocument: { ...(rev ? { _rev: rev } : {}), language: 'javascript', views: dd.views },
      });
      logger.info('store design document written', { db, ddoc: dd.ddoc });
      return;
    } catch (err) {
      // A concurrent setup wrote it first: read again and compare.
      if (statusOf(err) !== 409) throw toStoreError(err, `write design document ${dd.ddoc}`);
    }
  }
  throw new AppError('STORE_CONFLICT', `Could not write design document ${dd.ddoc}: it keeps changing`, {
    retryable: true,
  });
}
