/**
 * The embedded CouchDB-compatible server: express-pouchdb in its minimal mode plus the `_find` routes, PouchDB 9,
 * in memory or (with `dataDir`) on LevelDB, behind a small shim that fills the gaps the Cloudant SDK and lockstep
 * rely on. Every difference from Cloudant is listed in `src/store/README.md`.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import expressPouchDB from 'express-pouchdb';
import leveldb from 'pouchdb-adapter-leveldb';
import memory from 'pouchdb-adapter-memory';
import PouchDB, { type PouchDBConstructor } from 'pouchdb-core';
import find from 'pouchdb-find';
import { fastMapReduce } from './fastMapReduce.js';

/** Cloudant's limit on one document (1 MB). */
const MAX_DOCUMENT_BYTES = 1_048_576;
/** Cloudant's limit on one request body (10 MB). */
const MAX_REQUEST_BYTES = 10_485_760;
/** Cloudant's default `_find` page size. */
const DEFAULT_FIND_LIMIT = 25;

export interface EmbeddedCouchOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (a random free port). */
  port?: number;
  /** Keep the databases on disk (LevelDB) in this directory; default: in memory, gone on close. */
  dataDir?: string;
}

export interface EmbeddedCouch {
  /** Base URL, e.g. `http://127.0.0.1:5984`; pass it as the Cloudant service URL. */
  url: string;
  /** Where the data lives: `memory` or the absolute data directory. */
  storage: string;
  /** Stops listening, closes every database (in memory: drops them). Idempotent. */
  close(): Promise<void>;
}

// PouchDB plugins mutate the shared prototype; register them once per process.
let pluginsInstalled = false;
function installPlugins(): void {
  if (pluginsInstalled) return;
  PouchDB.plugin(memory).plugin(leveldb).plugin(fastMapReduce).plugin(find);
  pluginsInstalled = true;
}

const toBookmark = (skip: number): string => Buffer.from(JSON.stringify({ skip })).toString('base64url');
function fromBookmark(bookmark: string): number {
  const parsed: unknown = JSON.parse(Buffer.from(bookmark, 'base64url').toString('utf8'));
  const skip = (parsed as { skip?: unknown } | null)?.skip;
  if (typeof skip !== 'number' || !Number.isSafeInteger(skip) || skip < 0) throw new Error('bad bookmark');
  return skip;
}

/** Rewrites the JSON body express-pouchdb sends; other bodies pass through. */
function editJsonReply(res: Response, edit: (json: unknown) => unknown): void {
  const send = res.send.bind(res);
  res.send = ((body: unknown) => {
    let json: unknown;
    try {
      json = JSON.parse(Buffer.isBuffer(body) ? body.toString('utf8') : String(body));
    } catch {
      return send(body);
    }
    return send(Buffer.from(JSON.stringify(edit(json))));
  }) as Response['send'];
}

function tooLarge(res: Response, reason: string): void {
  res.status(413).json({ error: 'document_too_large', reason });
}

/**
 * Per-server database list. express-pouchdb's default (pouchdb-all-dbs) listens to PouchDB's process-global
 * `created` event, so two servers in one process would see each other's databases.
 */
class DatabaseRegistry {
  readonly #names = new Set<string>();
  add(name: string): void {
    this.#names.add(name);
  }
  delete(name: string): void {
    this.#names.delete(name);
  }
  /** `PouchDB.allDbs` as express-pouchdb calls it: with a callback or as a promise. */
  allDbs = (cb?: (err: unknown, names?: string[]) => void): Promise<string[]> | undefined => {
    const names = [...this.#names].sort();
    if (cb) {
      queueMicrotask(() => cb(null, names));
      return undefined;
    }
    return Promise.resolve(names);
  };
}

/** Records creations and deletions done through the HTTP API in the registry, just before the reply goes out. */
function trackDatabases(registry: DatabaseRegistry): express.Router {
  const onReply = (res: Response, fn: () => void) => {
    const send = res.send.bind(res);
    res.send = ((body: unknown) => {
      if (res.statusCode >= 200 && res.statusCode < 300) fn();
      return send(body);
    }) as Response['send'];
  };
  return express
    .Router()
    .put('/:db', (req, res, next) => {
      onReply(res, () => registry.add(req.params.db));
      next();
    })
    .delete('/:db', (req, res, next) => {
      onReply(res, () => registry.delete(req.params.db));
      next();
    });
}

/** What Cloudant does and express-pouchdb does not (see src/store/README.md). */
function cloudantShim(): express.Router {
  const jsonBody = express.json({ limit: MAX_REQUEST_BYTES, strict: false });
  const router = express.Router();

  // Cloudant refuses documents over 1 MB and request bodies over 10 MB; PouchDB would take 4 GB. The SDK may send
  // chunked bodies, so the limits are enforced while parsing, not from Content-Length.
  const documentBody = express.json({ limit: MAX_DOCUMENT_BYTES, strict: false });
  router.put('/:db/:docid', documentBody);
  router.post('/:db', (req, res, next) => (req.params.db.startsWith('_') ? next() : documentBody(req, res, next)));
  router.post('/:db/_bulk_docs', jsonBody, (req, res, next) => {
    const docs = (req.body as { docs?: unknown } | undefined)?.docs;
    if (Array.isArray(docs) && docs.some((d) => Buffer.byteLength(JSON.stringify(d)) > MAX_DOCUMENT_BYTES)) {
      return tooLarge(res, 'A document in the batch exceeds the 1 MB limit');
    }
    next();
  });

  // `_find` bookmarks: PouchDB has none; here a bookmark is an encoded skip (opaque to clients, as on Cloudant).
  router.post('/:db/_find', jsonBody, (req, res, next) => {
    const { bookmark, ...query } = (req.body ?? {}) as Record<string, unknown>;
    let skip = typeof query.skip === 'number' ? query.skip : 0;
    if (typeof bookmark === 'string' && bookmark !== 'nil') {
      try {
        skip = fromBookmark(bookmark);
      } catch {
        res.status(400).json({ error: 'invalid_bookmark', reason: 'Invalid bookmark value' });
        return;
      }
    }
    req.body = { ...query, skip, limit: typeof query.limit === 'number' ? query.limit : DEFAULT_FIND_LIMIT };
    editJsonReply(res, (j) => {
      const docs = (j as { docs?: unknown[] } | null)?.docs;
      return Array.isArray(docs)
        ? { ...(j as object), bookmark: docs.length ? toBookmark(skip + docs.length) : 'nil' }
        : j;
    });
    next();
  });

  // Cloudant sends `ETag: "<rev>"` on document reads; express sends a body hash.
  router.get('/:db/:docid', (req, res, next) => {
    if (!req.params.db.startsWith('_') && !req.params.docid.startsWith('_')) {
      editJsonReply(res, (j) => {
        const rev = (j as { _rev?: unknown } | null)?._rev;
        if (typeof rev === 'string') res.set('ETag', `"${rev}"`);
        return j;
      });
    }
    next();
  });

  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const type = (err as { type?: unknown } | null)?.type;
    if (type === 'entity.too.large') return tooLarge(res, 'Document or request exceeds the size limit (1 MB / 10 MB)');
    if (type === 'entity.parse.failed') {
      res.status(400).json({ error: 'bad_request', reason: 'invalid UTF-8 JSON' });
      return;
    }
    next(err);
  });
  return router;
}

/**
 * Starts the embedded server on `host:port` (default 127.0.0.1, a random free port).
 * @example
 * const couch = await startEmbeddedCouch();
 * const stores = await createCloudantStores({ url: couch.url });
 * // …
 * await couch.close();
 */
export async function startEmbeddedCouch(opts: EmbeddedCouchOptions = {}): Promise<EmbeddedCouch> {
  installPlugins();
  const host = opts.host ?? '127.0.0.1';
  let storage = 'memory';
  let DB: PouchDBConstructor;
  const registry = new DatabaseRegistry();
  if (opts.dataDir !== undefined) {
    storage = resolve(opts.dataDir);
    await mkdir(storage, { recursive: true });
    // Each LevelDB database is a directory named after it; index databases carry `-mrview-` in their names.
    for (const entry of await readdir(storage, { withFileTypes: true })) {
      if (entry.isDirectory() && !entry.name.includes('-mrview-')) registry.add(entry.name);
    }
    DB = PouchDB.defaults({ adapter: 'leveldb', prefix: `${storage}/` });
  } else {
    // Memory stores are process-global by name; a unique prefix keeps two servers in one process apart.
    DB = PouchDB.defaults({ adapter: 'memory', prefix: `embedded-${randomUUID()}-` });
  }

  DB.allDbs = registry.allDbs;

  const app = express();
  app.disable('x-powered-by');
  app.use(trackDatabases(registry));
  app.use(cloudantShim());
  app.use(
    '/',
    expressPouchDB(DB, {
      // Never fullCouchDB: it installs a global XMLHttpRequest polyfill that breaks the Cloudant SDK in-process.
      mode: 'minimumForPouchDB',
      overrideMode: { include: ['routes/find'] },
    }),
  );

  const server = await new Promise<Server>((ok, fail) => {
    const s = app.listen(opts.port ?? 0, host, () => ok(s));
    s.once('error', fail);
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 200).unref();
      });
      const dbs: { close(): Promise<void>; destroy(): Promise<void> }[] = [];
      DB.__dbCacheMap?.forEach((db) => {
        dbs.push(db);
      });
      await Promise.allSettled(dbs.map((db) => (storage === 'memory' ? db.destroy() : db.close())));
    })();
    return closing;
  };
  return { url: `http://${urlHost}:${port}`, storage, close };
}
