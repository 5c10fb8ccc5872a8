// Minimal ambient declarations for the untyped CommonJS packages behind the embedded CouchDB-compatible server.
declare module 'express-pouchdb' {
  import type { Express } from 'express';

  const expressPouchDB: (pouchDB: unknown, opts?: Record<string, unknown>) => Express;
  export default expressPouchDB;
}
declare module 'pouchdb-core' {
  /** The static side of PouchDB as the embedded server uses it. */
  export interface PouchDBConstructor {
    plugin(plugin: unknown): PouchDBConstructor;
    defaults(opts: Record<string, unknown>): PouchDBConstructor;
    /** Replaced per server (see DatabaseRegistry). */
    allDbs?: unknown;
    /** express-pouchdb's cache of open databases. */
    __dbCacheMap?: { forEach(fn: (db: { close(): Promise<void>; destroy(): Promise<void> }) => void): void };
  }
  const PouchDB: PouchDBConstructor;
  export default PouchDB;
}
declare module 'pouchdb-adapter-memory' {
  const plugin: unknown;
  export default plugin;
}
declare module 'pouchdb-adapter-leveldb' {
  const plugin: unknown;
  export default plugin;
}
declare module 'pouchdb-mapreduce' {
  const plugin: unknown;
  export default plugin;
}
declare module 'pouchdb-find' {
  const plugin: unknown;
  export default plugin;
}
declare module 'pouchdb-abstract-mapreduce' {
  const createAbstractMapReduce: (
    localDocName: string,
    mapper: (mapFun: unknown, emit: (key: unknown, value: unknown) => void) => (doc: unknown) => unknown,
    reducer: (reduceFun: unknown) => (keys: unknown, values: unknown[], rereduce?: boolean) => unknown,
    ddocValidator: (ddoc: { _id: string; views?: Record<string, { map?: unknown }> }, viewName: string) => void,
  ) => {
    query(this: unknown, fun: unknown, opts: unknown, callback?: unknown): Promise<unknown>;
    viewCleanup(this: unknown, callback?: unknown): Promise<unknown>;
  };
  export default createAbstractMapReduce;
}
