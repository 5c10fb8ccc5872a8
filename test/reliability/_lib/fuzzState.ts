/**
 * State snapshots for the bad-input fuzzing: every document (with its `_rev`) of every store database under a
 * prefix, read over the CouchDB HTTP API of the embedded store, and every file under a directory. A diff lists what
 * was added, removed or rewritten; callers pass what a case may legitimately add (e.g. processed-event records).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Database name → document id → the document as JSON (including `_rev`, so a rewrite shows). */
export type StoreSnapshot = Record<string, Record<string, string>>;

/** The embedded store's URL and the `Authorization` value it requires (an `EmbeddedCouch` is one). */
export interface Couch {
  url: string;
  authorization: string;
}

async function getJson(couch: Couch, path: string): Promise<unknown> {
  const res = await fetch(`${couch.url}${path}`, { headers: { authorization: couch.authorization } });
  if (!res.ok) throw new Error(`store snapshot: GET ${path} answered ${res.status}`);
  return res.json();
}

/** Reads every database whose name starts with `prefix`. */
export async function snapshotStore(couch: Couch, prefix: string): Promise<StoreSnapshot> {
  const dbs = ((await getJson(couch, `/_all_dbs`)) as string[]).filter((d) => d.startsWith(prefix));
  const out: StoreSnapshot = {};
  await Promise.all(
    dbs.map(async (db) => {
      const all = (await getJson(couch, `/${encodeURIComponent(db)}/_all_docs?include_docs=true`)) as {
        rows: Array<{ id: string; doc?: unknown }>;
      };
      const docs: Record<string, string> = {};
      for (const row of all.rows) docs[row.id] = JSON.stringify(row.doc ?? null);
      out[db] = docs;
    }),
  );
  return out;
}

/** A document a case added: its database, id and body. */
export interface AddedDoc {
  db: string;
  id: string;
  doc: Record<string, unknown>;
}

/**
 * Lists the differences between two snapshots. Added documents for which `allowAdded` returns true are not
 * differences (the caller checks them itself); everything else — a new, removed or rewritten document, a new or
 * dropped database — is.
 */
export function diffStore(
  before: StoreSnapshot,
  after: StoreSnapshot,
  allowAdded: (d: AddedDoc) => boolean = () => false,
): string[] {
  const out: string[] = [];
  for (const db of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = before[db];
    const a = after[db];
    if (!b || !a) {
      out.push(`database ${db} ${b ? 'removed' : 'created'}`);
      continue;
    }
    for (const id of Object.keys(b)) {
      if (!(id in a)) out.push(`${db}/${id} removed`);
      else if (a[id] !== b[id]) out.push(`${db}/${id} rewritten`);
    }
    for (const id of Object.keys(a)) {
      if (id in b) continue;
      const doc = JSON.parse(a[id] as string) as Record<string, unknown>;
      if (!allowAdded({ db, id, doc })) out.push(`${db}/${id} added`);
    }
  }
  return out;
}

/** Relative path → SHA-256 of the content ('dir' for directories). */
export type DirSnapshot = Map<string, string>;

/** Every file and directory under `root` (recursively). */
export function snapshotDir(root: string): DirSnapshot {
  const out: DirSnapshot = new Map();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = relative(root, p);
      if (statSync(p).isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else out.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

/** What changed between two directory snapshots. */
export function diffDir(before: DirSnapshot, after: DirSnapshot): string[] {
  const out: string[] = [];
  for (const [p, h] of before) {
    if (!after.has(p)) out.push(`${p} removed`);
    else if (after.get(p) !== h) out.push(`${p} rewritten`);
  }
  for (const p of after.keys()) if (!before.has(p)) out.push(`${p} written`);
  return out;
}

/** Every database's update sequence under `prefix`: a cheap fingerprint that changes with any write. */
export async function storeVersion(couch: Couch, prefix: string): Promise<string> {
  const dbs = ((await getJson(couch, `/_all_dbs`)) as string[]).filter((d) => d.startsWith(prefix)).sort();
  const infos = await Promise.all(
    dbs.map(async (db) => {
      const info = (await getJson(couch, `/${encodeURIComponent(db)}`)) as { update_seq?: unknown };
      return `${db}@${JSON.stringify(info.update_seq)}`;
    }),
  );
  return infos.join(',');
}

/**
 * Watches a store across cases: `changes()` compares the store with the last full snapshot, reading every document
 * again only when an update sequence moved (most bad-input cases write nothing, so most checks cost one request per
 * database). Nothing else may write to the prefix's databases meanwhile.
 */
export async function watchStore(couch: Couch, prefix: string) {
  let snapshot = await snapshotStore(couch, prefix);
  let version = await storeVersion(couch, prefix);
  return {
    /** Differences since the previous call (or the start); added documents `allowAdded` accepts are not differences. */
    async changes(allowAdded?: (d: AddedDoc) => boolean): Promise<string[]> {
      const now = await storeVersion(couch, prefix);
      if (now === version) return [];
      const after = await snapshotStore(couch, prefix);
      const diff = diffStore(snapshot, after, allowAdded);
      snapshot = after;
      version = await storeVersion(couch, prefix);
      return diff;
    },
  };
}
