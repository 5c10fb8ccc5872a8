/**
 * The Cloudant adapter: every store port of `src/app/ports.ts` over the real `@ibm-cloud/cloudant` SDK. Works the same
 * against IBM Cloudant, CouchDB 3 and the embedded server of `src/local/couch` (differences: README.md here).
 */
import { CloudantV1 } from '@ibm-cloud/cloudant';
import type { Authenticator } from 'ibm-cloud-sdk-core';
import { NoAuthAuthenticator } from 'ibm-cloud-sdk-core';
import type { RunRecordBase, Stores } from '../app/ports.js';
import type { GroupId, Logger } from '../core/index.js';
import { silentLogger } from '../core/index.js';
import { CloudantCheckpointRepository } from './checkpoints.js';
import { Collection } from './collection.js';
import { parseStoreUrl } from './config.js';
import { CloudantDrillRepository } from './drills.js';
import { CloudantProcessedEventRepository } from './events.js';
import { CloudantEvidenceRepository } from './evidence.js';
import { CloudantGroupRepository, groupDocId } from './groups.js';
import { CloudantLeaseRepository } from './leases.js';
import { CloudantLineageRepository } from './lineage.js';
import { CloudantRunRepository } from './runs.js';
import { type DatabaseNames, databaseNames, ensureSetup, type Kind } from './setup.js';

export type { StoreConfig } from './config.js';
export { storeConfigFromEnv } from './config.js';
export { MAX_DOCUMENT_BYTES } from './documents.js';
export { isStoreConflict, StoreConflictError } from './errors.js';
export { lineageDocId, toLineageDocument } from './lineage.js';
export { DESIGN_DOCS, INDEXES, KINDS } from './setup.js';

/** Default per-request timeout: a store call never hangs a function until its deadline. */
export const DEFAULT_STORE_TIMEOUT_MS = 10_000;

export interface CloudantStoresOptions {
  /** Cloudant / CouchDB base URL (the embedded server's URL locally). */
  url: string;
  /** IAM, trusted profile or basic; default none (embedded server). */
  authenticator?: Authenticator;
  /** Database name prefix; default `lockstep-`. Databases are `<prefix>groups`, `<prefix>runs`, … */
  dbPrefix?: string;
  logger?: Logger;
  /** Per-request timeout; default {@link DEFAULT_STORE_TIMEOUT_MS}. */
  timeoutMs?: number;
}

export interface CloudantStores<R extends RunRecordBase = RunRecordBase> extends Stores {
  groups: CloudantGroupRepository;
  /** Typed with the saga's run record `R` (stored and returned unchanged). */
  runs: CloudantRunRepository<R>;
  leases: CloudantLeaseRepository;
  events: CloudantProcessedEventRepository;
  lineage: CloudantLineageRepository;
  checkpoints: CloudantCheckpointRepository;
  drills: CloudantDrillRepository;
  /** Creates missing databases, Mango indexes and design documents; idempotent. Call once at start. */
  ensureSetup(): Promise<void>;
  /** The SDK client (for health checks and the benchmark). */
  client: CloudantV1;
  /** Database name of each kind. */
  databases: DatabaseNames;
  /** The Mango `_explain` of the query behind `lineage.list` (which index serves it). @internal */
  explainLineageList(groupId: GroupId): Promise<Record<string, unknown>>;
}

/** A cookie jar for the Cloudant SDK that keeps no cookies (the SDK's request interceptor calls these two). */
const NO_COOKIES = {
  getCookieString: async (): Promise<string> => '',
  setCookie: async (): Promise<void> => undefined,
};

/**
 * Builds every store port over one CloudantV1 client with a finite timeout and SDK retries for 429/5xx (writes stay
 * correct under retries: each carries a write id, see documents.ts). Does not touch the network until first use.
 * @throws {AppError} CONFIG_INVALID for a bad URL or prefix
 * @example
 * const stores = await createCloudantStores({ ...storeConfigFromEnv(process.env), logger });
 * await stores.ensureSetup();
 */
export async function createCloudantStores<R extends RunRecordBase = RunRecordBase>(
  opts: CloudantStoresOptions,
): Promise<CloudantStores<R>> {
  const url = parseStoreUrl(opts.url).toString().replace(/\/$/, '');
  const logger = (opts.logger ?? silentLogger).child({ component: 'store' });
  const databases = databaseNames(opts.dbPrefix);
  const authenticator = opts.authenticator ?? new NoAuthAuthenticator();
  const client = new CloudantV1({
    authenticator,
    serviceUrl: url,
    timeout: opts.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS,
    // Only CouchDB session authentication needs cookies; with IAM or none, a jar that keeps nothing spares every
    // request (and the functions' cold start) the SDK's default tough-cookie jar and its public-suffix table.
    ...(authenticator.authenticationType() === 'COUCHDB_SESSION' ? {} : { jar: NO_COOKIES }),
  } as ConstructorParameters<typeof CloudantV1>[0]);
  client.enableRetries({ maxRetries: 2, maxRetryInterval: 2 });
  const col = (k: Kind) => new Collection(client, databases[k], logger);
  const groupsCol = col('groups');
  const groupExists = (id: GroupId) => groupsCol.exists(groupDocId(id));
  const lineage = new CloudantLineageRepository(col('lineage'), groupExists);
  const checkpointsCol = col('checkpoints');
  return {
    groups: new CloudantGroupRepository(groupsCol),
    runs: new CloudantRunRepository<R>(col('runs'), groupExists),
    leases: new CloudantLeaseRepository(col('leases')),
    events: new CloudantProcessedEventRepository(col('events')),
    lineage,
    checkpoints: new CloudantCheckpointRepository(checkpointsCol, groupExists),
    drills: new CloudantDrillRepository(checkpointsCol, groupExists),
    evidence: new CloudantEvidenceRepository(checkpointsCol, groupExists),
    ensureSetup: () => ensureSetup(client, databases, logger),
    client,
    databases,
    explainLineageList: (groupId) => lineage.explainList(groupId),
  };
}

export {
  CloudantCheckpointRepository,
  CloudantDrillRepository,
  CloudantGroupRepository,
  CloudantLeaseRepository,
  CloudantLineageRepository,
  CloudantProcessedEventRepository,
  CloudantRunRepository,
};
