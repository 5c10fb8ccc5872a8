import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudantV1 } from '@ibm-cloud/cloudant';
import { type Authenticator, NoAuthAuthenticator } from 'ibm-cloud-sdk-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupId } from '../../../src/core/index.js';
import {
  type CouchAccess,
  couchAccess,
  type EmbeddedCouch,
  randomCouchCredentials,
  startEmbeddedCouch,
} from '../../../src/local/couch/index.js';
import { createCloudantStores } from '../../../src/store/index.js';
import { makeChain, makeGroup, makeRun } from './fixtures.js';

const makeRunFor = (groupId: string) => makeRun(groupId);

const sdk = (a: CouchAccess | { url: string; storeOptions: { authenticator: Authenticator } }) =>
  new CloudantV1({
    authenticator: a.storeOptions.authenticator,
    serviceUrl: a.url,
    timeout: 10_000,
  } as ConstructorParameters<typeof CloudantV1>[0]);

async function statusOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { status?: number }).status;
  }
}

describe('embedded CouchDB-compatible server', () => {
  let couch: EmbeddedCouch;
  let client: CloudantV1;

  beforeAll(async () => {
    couch = await startEmbeddedCouch();
    client = sdk(couch);
    await client.putDatabase({ db: 'shim' });
  });
  afterAll(async () => {
    await couch?.close();
  });

  it('listens on 127.0.0.1 with a random port, in minimal mode (no XMLHttpRequest polyfill)', async () => {
    expect(couch.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(couch.storage).toBe('memory');
    // The SDK's model drops unknown fields, so read the welcome document raw.
    const welcome = (await (
      await fetch(`${couch.url}/`, { headers: { authorization: couch.authorization } })
    ).json()) as Record<string, unknown>;
    expect(welcome['express-pouchdb-mode']).toBe('minimumForPouchDB');
    expect((globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest).toBeUndefined();
  });

  it('requires credentials: basic auth or a _session cookie, never admin party', async () => {
    const noAuth = { url: couch.url, storeOptions: { authenticator: new NoAuthAuthenticator() } };
    expect(await statusOf(sdk(noAuth).getAllDbs())).toBe(401);
    expect(await statusOf(sdk(noAuth).putDatabase({ db: 'sneaky' }))).toBe(401);
    const wrong = couchAccess(couch.url, { username: couch.credentials.username, password: 'not-the-password' });
    expect(await statusOf(sdk(wrong).getAllDbs())).toBe(401);
    expect((await client.getAllDbs()).result).not.toContain('sneaky');
    const raw = await fetch(`${couch.url}/shim/_all_docs`);
    expect(raw.status).toBe(401);
    expect(await raw.json()).toEqual({ error: 'unauthorized', reason: 'Authentication required.' });
    // cookie authentication (POST /_session), as CouchDB and Cloudant offer it
    const refused = await fetch(`${couch.url}/_session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: couch.credentials.username, password: 'nope' }),
    });
    expect(refused.status).toBe(401);
    const session = await fetch(`${couch.url}/_session`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: couch.credentials.username, password: couch.credentials.password }).toString(),
    });
    expect(session.status).toBe(200);
    const cookie = (session.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(cookie).toMatch(/^AuthSession=/);
    expect((await fetch(`${couch.url}/_all_dbs`, { headers: { cookie } })).status).toBe(200);
    const at = 'AuthSession='.length + 8;
    const forged = `${cookie.slice(0, at)}${cookie[at] === 'A' ? 'B' : 'A'}${cookie.slice(at + 1)}`;
    expect((await fetch(`${couch.url}/_all_dbs`, { headers: { cookie: forged } })).status).toBe(401);
  });

  it('answers document reads with ETag "<rev>" as Cloudant does', async () => {
    const put = await client.putDocument({ db: 'shim', docId: 'etag', document: { a: 1 } });
    const head = await client.headDocument({ db: 'shim', docId: 'etag' });
    expect(head.headers.etag).toBe(`"${put.result.rev}"`);
  });

  it('pages _find with opaque bookmarks and rejects a forged one', async () => {
    const docs = Array.from({ length: 60 }, (_, i) => ({ _id: `bm-${String(i).padStart(3, '0')}`, n: i }));
    await client.postBulkDocs({ db: 'shim', bulkDocs: { docs } });
    await client.postIndex({ db: 'shim', index: { fields: ['n'] as never }, name: 'by-n', type: 'json' });
    const seen = new Set<string>();
    let bookmark: string | undefined;
    let pages = 0;
    for (;;) {
      const res = await client.postFind({
        db: 'shim',
        selector: { n: { $gte: 0 } },
        limit: 25,
        ...(bookmark ? { bookmark } : {}),
      });
      for (const d of res.result.docs) seen.add(d._id as string);
      pages++;
      if (res.result.docs.length === 0) break;
      bookmark = res.result.bookmark;
    }
    expect(seen.size).toBe(60);
    expect(pages).toBe(4); // 25 + 25 + 10 + an empty page, as on Cloudant
    expect(await statusOf(client.postFind({ db: 'shim', selector: { n: 1 }, bookmark: 'not-ours' }))).toBe(400);
  });

  it('enforces Cloudant’s 1 MB document limit (single and bulk)', async () => {
    const big = { blob: 'x'.repeat(1_100_000) };
    expect(await statusOf(client.putDocument({ db: 'shim', docId: 'big', document: big }))).toBe(413);
    expect(await statusOf(client.postDocument({ db: 'shim', document: big }))).toBe(413);
    expect(await statusOf(client.postBulkDocs({ db: 'shim', bulkDocs: { docs: [{ _id: 'ok' }, big] } }))).toBe(413);
    expect(await statusOf(client.getDocument({ db: 'shim', docId: 'big' }))).toBe(404);
    expect(await statusOf(client.getDocument({ db: 'shim', docId: 'ok' }))).toBe(404);
  });

  it('serves map/reduce views (map compiled once per update, documents passed as copies)', async () => {
    await client.putDatabase({ db: 'views' });
    const docs = Array.from({ length: 1_000 }, (_, i) => ({ _id: `v-${i}`, tags: [`t${i}`, `u${i % 7}`] }));
    await client.postBulkDocs({ db: 'views', bulkDocs: { docs } });
    await client.putDesignDocument({
      db: 'views',
      ddoc: 'd',
      designDocument: {
        views: {
          tags: { map: 'function (doc) { for (var i = 0; i < doc.tags.length; i++) emit(doc.tags[i], 1); }' },
          count: { map: 'function (doc) { emit(doc.tags[1], 1); }', reduce: '_count' },
          total: { map: 'function (doc) { emit(null, 2); }', reduce: 'function (k, v) { return sum(v); }' },
        },
      },
    });
    const hit = await client.postView({ db: 'views', ddoc: 'd', view: 'tags', key: 't234', includeDocs: true });
    expect(hit.result.rows.map((r) => r.id)).toEqual(['v-234']);
    // A map function cannot change the stored document.
    expect(hit.result.rows[0]?.doc?.tags).toEqual(['t234', 'u3']);
    const counted = await client.postView({ db: 'views', ddoc: 'd', view: 'count', group: true, key: 'u0' });
    expect(counted.result.rows[0]?.value).toBe(143);
    const total = await client.postView({ db: 'views', ddoc: 'd', view: 'total' });
    expect(total.result.rows[0]?.value).toBe(2_000);
  });

  it('keeps two servers in one process apart', async () => {
    const other = await startEmbeddedCouch();
    try {
      const c2 = sdk(other);
      // the other server's own credentials: this one's are refused there
      expect(await statusOf(sdk({ ...couch, url: other.url }).getAllDbs())).toBe(401);
      expect(await statusOf(c2.getDatabaseInformation({ db: 'shim' }))).toBe(404);
      await c2.putDatabase({ db: 'shim' });
      expect(await statusOf(c2.getDocument({ db: 'shim', docId: 'etag' }))).toBe(404);
      expect((await c2.getAllDbs()).result).toEqual(['shim']);
    } finally {
      await other.close();
    }
    expect(await statusOf(client.getDocument({ db: 'shim', docId: 'etag' }))).toBe(200);
  });

  it('keeps history on disk with a data directory, across restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lockstep-couch-'));
    try {
      let disk = await startEmbeddedCouch({ dataDir: dir });
      expect(disk.storage).toBe(dir);
      let stores = await createCloudantStores({ ...disk.storeOptions, dbPrefix: 'persist-' });
      await stores.ensureSetup();
      await stores.groups.create(makeGroup('kept'));
      for (const r of makeChain('kept', 3)) await stores.lineage.append(r);
      await disk.close();
      await disk.close(); // idempotent

      disk = await startEmbeddedCouch({ dataDir: dir });
      stores = await createCloudantStores({ ...disk.storeOptions, dbPrefix: 'persist-' });
      await stores.ensureSetup(); // finds everything in place
      expect((await stores.groups.get('kept' as GroupId)).value.id).toBe('kept');
      expect((await stores.lineage.head('kept' as GroupId))?.generation).toBe(3);
      await disk.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('tells the caller to run ensureSetup when the databases do not exist', async () => {
    const stores = await createCloudantStores({ ...couch.storeOptions, dbPrefix: 'never-set-up-' });
    for (const call of [
      () => stores.groups.find('any' as GroupId),
      () => stores.runs.create(makeRunFor('any')),
      () => stores.lineage.list('any' as GroupId, { limit: 5 }),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect((err as Error).message).toContain('ensureSetup');
    }
  });

  it('maps an unreachable server to STORE_UNAVAILABLE (retryable)', async () => {
    const gone = await startEmbeddedCouch();
    const url = gone.url;
    await gone.close();
    const stores = await createCloudantStores({ url, timeoutMs: 2_000 });
    const err = await stores.groups.find('any' as GroupId).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
  });

  it('runs standalone and prints its URL', async () => {
    const credentials = randomCouchCredentials();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/local/couch/main.ts', '--port', '0'], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        LOCKSTEP_COUCH_USERNAME: credentials.username,
        LOCKSTEP_COUCH_PASSWORD: credentials.password,
      },
    });
    try {
      const url = await new Promise<string>((ok, fail) => {
        let out = '';
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /^(http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
          if (m) ok(m[1]!);
        });
        child.once('exit', (code) => fail(new Error(`exited with ${code}`)));
      });
      const info = await sdk(couchAccess(url, credentials)).getServerInformation();
      expect(info.status).toBe(200);
      expect((await fetch(`${url}/_all_dbs`)).status).toBe(401);
    } finally {
      const exited = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode).toBe(0);
  });
});
