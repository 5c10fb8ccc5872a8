/**
 * Reads every document of every database of a CouchDB-compatible server over its HTTP API: live documents, design
 * documents, deleted documents and every earlier revision the server still holds (CouchDB keeps old revision bodies
 * until compaction — a secret written once and overwritten would still be on disk).
 */
import { createHash } from 'node:crypto';

export interface StoredRevision {
  db: string;
  id: string;
  rev: string;
  /** The revision body as the server returns it (JSON text). */
  text: string;
}

/** The embedded store's URL and the `Authorization` value it requires (an `EmbeddedCouch` is one). */
export interface Couch {
  url: string;
  authorization: string;
}

async function getJson<T>(couch: Couch, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${couch.url}${path}`, {
    headers: { accept: 'application/json', authorization: couch.authorization },
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Every database name (system databases `_…` excluded). */
export async function databases(couch: Couch): Promise<string[]> {
  const { body } = await getJson<string[]>(couch, '/_all_dbs');
  return body.filter((d) => !d.startsWith('_'));
}

/** Live documents of every database (incl. design documents), as `db/id` → JSON text. For "no state change" checks. */
export async function liveDocuments(couch: Couch): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const db of await databases(couch)) {
    const { body } = await getJson<{ rows: { id: string; doc: unknown }[] }>(
      couch,
      `/${encodeURIComponent(db)}/_all_docs?include_docs=true`,
    );
    for (const row of body.rows) out.set(`${db}/${row.id}`, JSON.stringify(row.doc));
  }
  return out;
}

/** A digest of every live document (order-independent): equal digests mean no document changed. */
export async function storeDigest(couch: Couch): Promise<string> {
  const docs = await liveDocuments(couch);
  const h = createHash('sha256');
  for (const k of [...docs.keys()].sort()) h.update(k).update('\0').update(docs.get(k)!).update('\0');
  return h.digest('hex');
}

/** Every revision body the server holds, of every document ever written (deleted ones included). */
export async function allRevisions(couch: Couch): Promise<StoredRevision[]> {
  const out: StoredRevision[] = [];
  for (const db of await databases(couch)) {
    const base = `/${encodeURIComponent(db)}`;
    const { body: changes } = await getJson<{ results: { id: string; changes: { rev: string }[] }[] }>(
      couch,
      `${base}/_changes?style=all_docs`,
    );
    for (const change of changes.results) {
      const docUrl = `${base}/${encodeURIComponent(change.id)}`;
      const revs = new Set<string>();
      for (const { rev } of change.changes) {
        const { status, body } = await getJson<{ _revisions?: { start: number; ids: string[] } }>(
          couch,
          `${docUrl}?rev=${encodeURIComponent(rev)}&revs=true`,
        );
        if (status !== 200 || !body._revisions) {
          revs.add(rev);
          continue;
        }
        const { start, ids } = body._revisions;
        for (const [i, id] of ids.entries()) revs.add(`${start - i}-${id}`);
      }
      for (const rev of revs) {
        const res = await fetch(`${couch.url}${docUrl}?rev=${encodeURIComponent(rev)}`, {
          headers: { accept: 'application/json', authorization: couch.authorization },
        });
        const text = await res.text();
        if (res.status === 200) out.push({ db, id: change.id, rev, text });
      }
    }
  }
  return out;
}
