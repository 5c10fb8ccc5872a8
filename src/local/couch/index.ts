/**
 * The embedded CouchDB-compatible server: express-pouchdb in its minimal mode plus the `_find` routes, PouchDB 9,
 * in memory or (with `dataDir`) on LevelDB, behind a small shim that fills the gaps the Cloudant SDK and lockstep
 * rely on. Every difference from Cloudant is listed in `src/store/README.md`.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import expressPouchDB from 'express-pouchdb';
import { BasicAuthenticator } from 'ibm-cloud-sdk-core';
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
  /**
   * The server admin every request must authenticate as (no "admin party"); default: user `lockstep` with a random
   * password, readable from {@link EmbeddedCouch.credentials}.
   */
  credentials?: CouchCredentials;
}

export interface CouchCredentials {
  username: string;
  password: string;
}

/** How to reach an embedded server (this process's, or one in a child process). */
export interface CouchAccess {
  /** Base URL, e.g. `http://127.0.0.1:5984`; pass it as the Cloudant service URL. */
  url: string;
  /** The admin credentials the server requires (basic auth, or a `POST /_session` cookie). */
  credentials: CouchCredentials;
  /** `Basic …` header value for raw HTTP clients. */
  authorization: string;
  /** `createCloudantStores({ ...couch.storeOptions })`: the URL and a basic authenticator. */
  storeOptions: { url: string; authenticator: BasicAuthenticator };
}

/** The access record of a server at `url` that requires `credentials`. */
export function couchAccess(url: string, credentials: CouchCredentials): CouchAccess {
  return {
    url,
    credentials,
    authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`,
    storeOptions: { url, authenticator: new BasicAuthenticator(credentials) },
  };
}

/** Fresh admin credentials: user `lockstep`, a random password. */
export function randomCouchCredentials(): CouchCredentials {
  return { username: 'lockstep', password: randomBytes(24).toString('base64url') };
}

export interface EmbeddedCouch extends CouchAccess {
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

/** How long a `_session` cookie lasts (CouchDB's default `chttpd_auth/timeout`: 600 s). */
const SESSION_TIMEOUT_SECONDS = 600;

/**
 * No admin party: every request authenticates as the server admin with basic auth or the `AuthSession` cookie of
 * `POST /_session` (CouchDB's `require_valid_user`; docs.couchdb.org api/server/authn). Anything else gets 401
 * `{"error":"unauthorized","reason":"Authentication required."}`; wrong credentials get `Name or password is
 * incorrect.` Only `/_session` answers without credentials.
 */
function requireCredentials(creds: CouchCredentials): express.Router {
  const secret = randomBytes(32);
  const same = (a: string, b: string) => {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  const matches = (name: unknown, password: unknown) =>
    typeof name === 'string' &&
    typeof password === 'string' &&
    same(name, creds.username) &&
    same(password, creds.password);
  const cookieMac = (name: string, expiresSec: number) =>
    createHmac('sha256', secret).update(`${name}:${expiresSec}`).digest('base64url');
  const issueCookie = (res: Response) => {
    const expiresSec = Math.floor(Date.now() / 1000) + SESSION_TIMEOUT_SECONDS;
    const value = Buffer.from(`${creds.username}:${expiresSec}:${cookieMac(creds.username, expiresSec)}`).toString(
      'base64url',
    );
    res.append('Set-Cookie', `AuthSession=${value}; Version=1; Path=/; HttpOnly; Max-Age=${SESSION_TIMEOUT_SECONDS}`);
  };
  const fromCookie = (header: string | undefined): boolean => {
    const m = /(?:^|;\s*)AuthSession=([A-Za-z0-9_-]+)/.exec(header ?? '');
    if (!m?.[1]) return false;
    const [name, exp, mac] = Buffer.from(m[1], 'base64url').toString('utf8').split(':');
    const expiresSec = Number(exp);
    if (!name || !mac || !Number.isSafeInteger(expiresSec) || expiresSec <= Date.now() / 1000) return false;
    return same(name, creds.username) && same(mac, cookieMac(name, expiresSec));
  };
  /** `undefined`: no basic header; true/false: it matches or not. */
  const fromBasic = (header: string | undefined): boolean | undefined => {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
    if (!m?.[1]) return header === undefined ? undefined : false;
    const text = Buffer.from(m[1], 'base64').toString('utf8');
    const i = text.indexOf(':');
    return i > 0 && matches(text.slice(0, i), text.slice(i + 1));
  };
  const unauthorized = (res: Response, reason: string) => {
    res.status(401).set('WWW-Authenticate', 'Basic realm="server"').json({ error: 'unauthorized', reason });
  };
  const userCtx = { name: creds.username, roles: ['_admin'] };
  const router = express.Router();
  router.post('/_session', express.urlencoded({ extended: false }), express.json(), (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (!matches(b.name ?? b.username, b.password)) return unauthorized(res, 'Name or password is incorrect.');
    issueCookie(res);
    res.json({ ok: true, ...userCtx });
  });
  router.get('/_session', (req, res) => {
    const basic = fromBasic(req.headers.authorization);
    if (basic === false) return unauthorized(res, 'Name or password is incorrect.');
    const ok = basic === true || fromCookie(req.headers.cookie);
    res.json({
      ok: true,
      userCtx: ok ? userCtx : { name: null, roles: [] },
      info: { authenticated: ok ? 'default' : undefined },
    });
  });
  router.delete('/_session', (_req, res) => {
    res.append('Set-Cookie', 'AuthSession=; Version=1; Path=/; HttpOnly; Max-Age=0');
    res.json({ ok: true });
  });
  router.use((req, res, next) => {
    const basic = fromBasic(req.headers.authorization);
    if (basic === true || (basic === undefined && fromCookie(req.headers.cookie))) return next();
    unauthorized(res, basic === false ? 'Name or password is incorrect.' : 'Authentication required.');
  });
  return router;
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
 * const stores = await createCloudantStores({ ...couch.storeOptions });
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

  const credentials = opts.credentials ?? randomCouchCredentials();
  if (!credentials.username || credentials.username.includes(':') || credentials.password.length < 12) {
    throw new Error('embedded store credentials: a username without ":" and a password of at least 12 characters');
  }
  const app = express();
  app.disable('x-powered-by');
  app.use(requireCredentials(credentials));
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
  return { ...couchAccess(`http://${urlHost}:${port}`, credentials), storage, close };
}
