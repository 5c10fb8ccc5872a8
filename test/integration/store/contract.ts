/**
 * The store contract: what every implementation of the store ports in src/app/ports.ts must do. Run against the
 * embedded server (contract.embedded.test.ts) and against any CouchDB/Cloudant given by CLOUDANT_URL
 * (contract.cloudant.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lease, Page } from '../../../src/app/ports.js';
import type { EvidenceRecord, GroupId, KeyVersionId, LineageRecord, RunId } from '../../../src/core/index.js';
import { AppError, hasCode, KeyMaterial } from '../../../src/core/index.js';
import { buildEvidenceRecord, checkpointKeyPairFromSeed, signEvidenceCheckpoint } from '../../../src/lineage/index.js';
import type { CloudantStores, CloudantStoresOptions } from '../../../src/store/index.js';
import { createCloudantStores, isStoreConflict } from '../../../src/store/index.js';
import {
  makeChain,
  makeCheckpoint,
  makeGroup,
  makeRecord,
  makeRun,
  type TestRun,
  testPrefix,
  uuid,
  versionOf,
} from './fixtures.js';

export type Target = Omit<CloudantStoresOptions, 'dbPrefix'>;

async function expectCode(p: Promise<unknown>, code: string): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  return err as AppError;
}

/** Total documents in every lockstep database (design documents included). */
async function docCounts(s: CloudantStores): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [kind, db] of Object.entries(s.databases)) {
    out[kind] = (await s.client.getDatabaseInformation({ db })).result.docCount;
  }
  return out;
}

async function collectPages<T>(next: (cursor?: string) => Promise<Page<T>>): Promise<T[][]> {
  const pages: T[][] = [];
  let cursor: string | undefined;
  do {
    const p = await next(cursor);
    pages.push(p.items);
    cursor = p.next;
  } while (cursor);
  return pages;
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

export function describeStoreContract(label: string, target: () => Promise<Target>): void {
  describe(`store contract (${label})`, () => {
    let s: CloudantStores;
    let prefix: string;
    /** Another client of its own (separate CloudantV1) on the same databases. */
    const otherClient = async () => createCloudantStores({ ...(await target()), dbPrefix: prefix });

    beforeAll(async () => {
      prefix = testPrefix(label);
      s = await createCloudantStores({ ...(await target()), dbPrefix: prefix });
      await s.ensureSetup();
    });

    afterAll(async () => {
      if (!s) return;
      for (const db of Object.values(s.databases)) {
        await s.client.deleteDatabase({ db }).catch(() => undefined);
      }
    });

    describe('setup', () => {
      it('is idempotent and concurrent-safe', async () => {
        const other = await otherClient();
        await Promise.all([s.ensureSetup(), other.ensureSetup()]);
        const idx = await s.client.getIndexesInformation({ db: s.databases.lineage });
        expect(idx.result.indexes.map((i) => i.name)).toContain('by-group-generation');
      });

      it('serves the lineage history page from the [groupId, generation] index', async () => {
        const ex = await s.explainLineageList('any-group' as GroupId);
        const index = ex.index as { ddoc?: string; name?: string };
        expect(index.ddoc).toBe('_design/lockstep-lineage');
        expect(index.name).toBe('by-group-generation');
      });
    });

    describe('groups', () => {
      it('creates, reads and refuses a second create', async () => {
        const g = makeGroup('g-create');
        const created = await s.groups.create(g);
        expect(created.value).toEqual(g);
        expect(created.rev).toMatch(/^1-/);
        expect(await s.groups.get(g.id)).toEqual(created);
        expect(await s.groups.find('g-missing' as GroupId)).toBeUndefined();
        await expectCode(s.groups.get('g-missing' as GroupId), 'GROUP_NOT_FOUND');
        await expectCode(s.groups.create(g), 'GROUP_EXISTS');
      });

      it('turns a stale revision into STORE_CONFLICT carrying the current document', async () => {
        const g = makeGroup('g-stale');
        const v1 = await s.groups.create(g);
        const v2 = await s.groups.update({ ...g, name: 'second' }, v1.rev);
        const err = await expectCode(s.groups.update({ ...g, name: 'lost' }, v1.rev), 'STORE_CONFLICT');
        expect(isStoreConflict(err)).toBe(true);
        expect(err.details.currentRev).toBe(v2.rev);
        expect(isStoreConflict(err) && err.current).toEqual(v2);
        expect((await s.groups.get(g.id)).value.name).toBe('second');
        await expectCode(s.groups.update(makeGroup('g-nope'), v1.rev), 'GROUP_NOT_FOUND');
      });

      it('mutate loses no update under concurrent writers (separate clients)', async () => {
        const g = makeGroup('g-mutate');
        await s.groups.create(g);
        const clients = await Promise.all(Array.from({ length: 6 }, () => otherClient()));
        await Promise.all(
          clients.map((c, i) =>
            c.groups.mutate(g.id, (cur) => ({
              ...cur,
              currentGeneration: cur.currentGeneration + 1,
              description: `${cur.description ?? ''}[${i}]`,
            })),
          ),
        );
        const final = (await s.groups.get(g.id)).value;
        expect(final.currentGeneration).toBe(6);
        for (let i = 0; i < 6; i++) expect(final.description).toContain(`[${i}]`);
        await expectCode(
          s.groups.mutate('g-unknown' as GroupId, (x) => x),
          'GROUP_NOT_FOUND',
        );
      });

      it('lists by key range with a cursor and finds due groups by nextDueAtMs', async () => {
        const other = await createCloudantStores({ ...(await target()), dbPrefix: testPrefix(`${label}-l`) });
        await other.ensureSetup();
        try {
          const ids = ['a', 'a-b', 'a0', 'ab', 'b', 'c1', 'zz'];
          const due: Record<string, number | undefined> = { a: 300, 'a-b': 100, a0: undefined, ab: 200, b: 5000 };
          for (const id of ids) await other.groups.create(makeGroup(id, { nextDueAtMs: due[id] }));
          const pages = await collectPages((cursor) => other.groups.list({ limit: 3, ...(cursor ? { cursor } : {}) }));
          expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
          expect(pages.flat().map((g) => g.id)).toEqual([...ids].sort());
          await expectCode(other.groups.list({ cursor: 'garbage' }), 'INVALID_CURSOR');

          expect((await other.groups.findDue(250, 10)).map((g) => g.id)).toEqual(['a-b', 'ab']);
          expect((await other.groups.findDue(250, 1)).map((g) => g.id)).toEqual(['a-b']);
          await other.groups.mutate('a-b' as GroupId, (g) => ({ ...g, nextDueAtMs: 10_000 }));
          expect((await other.groups.findDue(400, 10)).map((g) => g.id)).toEqual(['ab', 'a']);
          // periodic verification has its own index: independent of nextDueAtMs
          await other.groups.mutate('b' as GroupId, (g) => ({ ...g, verifyDueAtMs: 150 }));
          await other.groups.mutate('a0' as GroupId, (g) => ({ ...g, verifyDueAtMs: 50 }));
          await other.groups.mutate('zz' as GroupId, (g) => ({ ...g, verifyDueAtMs: 900 }));
          expect((await other.groups.findVerifyDue(250, 10)).map((g) => g.id)).toEqual(['a0', 'b']);
          expect((await other.groups.findVerifyDue(250, 1)).map((g) => g.id)).toEqual(['a0']);
          expect((await other.groups.findDue(250, 10)).map((g) => g.id)).toEqual(['ab']);
        } finally {
          for (const db of Object.values(other.databases)) await other.client.deleteDatabase({ db }).catch(() => 0);
        }
      });
    });

    describe('runs', () => {
      beforeAll(async () => {
        await s.groups.create(makeGroup('r-group'));
        await s.groups.create(makeGroup('r-other'));
      });

      it('stores saga fields unchanged and checks revisions', async () => {
        const run = makeRun('r-group', { steps: [{ name: 'plan', atMs: 1 }] });
        const v1 = await s.runs.create(run);
        expect(v1.value).toEqual(run);
        const got = await s.runs.get(run.id);
        expect(got).toEqual(v1);
        const v2 = await s.runs.save({ ...run, status: 'degraded', updatedAtMs: run.updatedAtMs + 1 }, v1.rev);
        const err = await expectCode(s.runs.save({ ...run, status: 'failed' }, v1.rev), 'STORE_CONFLICT');
        expect(isStoreConflict<TestRun>(err) && err.current?.rev).toBe(v2.rev);
        expect(isStoreConflict<TestRun>(err) && err.current?.value.status).toBe('degraded');
        await expectCode(s.runs.create(run), 'STORE_CONFLICT');
        await expectCode(s.runs.get('run-doesnotexist' as RunId), 'RUN_NOT_FOUND');
        await expectCode(s.runs.save(makeRun('r-group'), v1.rev), 'RUN_NOT_FOUND');
      });

      it('concurrent updates of one run never lose a step', async () => {
        const run = makeRun('r-group');
        await s.runs.create(run);
        const workers = await Promise.all(Array.from({ length: 8 }, () => otherClient()));
        // Each worker appends its own step with a read-modify-write loop; a conflict hands back the current run.
        await Promise.all(
          workers.map(async (w, i) => {
            let cur = await w.runs.get(run.id);
            for (;;) {
              const next = { ...cur.value, steps: [...(cur.value as TestRun).steps, { name: `step-${i}`, atMs: i }] };
              try {
                await w.runs.save(next, cur.rev);
                return;
              } catch (err) {
                if (!isStoreConflict<TestRun>(err) || !err.current) throw err;
                cur = err.current;
              }
            }
          }),
        );
        const final = (await s.runs.get(run.id)).value as TestRun;
        expect(final.steps.map((x) => x.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `step-${i}`).sort());
      });

      it('lists unfinished runs that are due, oldest first, and a group’s runs newest first', async () => {
        const other = await createCloudantStores({ ...(await target()), dbPrefix: testPrefix(`${label}-r`) });
        await other.ensureSetup();
        try {
          await other.groups.create(makeGroup('r-group'));
          await other.groups.create(makeGroup('r-other'));
          const mk = (createdAtMs: number, status: TestRun['status'], extra: Partial<TestRun> = {}) =>
            makeRun('r-group', { createdAtMs, status, ...extra });
          const runs = [
            mk(50, 'running'),
            mk(10, 'pending'),
            mk(30, 'degraded', { nextAttemptAtMs: 5_000 }),
            mk(20, 'completed'),
            mk(40, 'failed'),
            mk(60, 'degraded', { nextAttemptAtMs: 900 }),
            makeRun('r-other', { createdAtMs: 70, status: 'running' }),
          ];
          for (const r of runs) await other.runs.create(r);
          const due = await other.runs.listUnfinished(1_000, 10);
          expect(due.map((r) => r.createdAtMs)).toEqual([10, 50, 60, 70]);
          expect((await other.runs.listUnfinished(10_000, 2)).map((r) => r.createdAtMs)).toEqual([10, 30]);
          // Finishing a run takes it out of the unfinished index.
          const r10 = await other.runs.get(runs[1]!.id);
          await other.runs.save({ ...r10.value, status: 'completed' }, r10.rev);
          expect((await other.runs.listUnfinished(1_000, 10)).map((r) => r.createdAtMs)).toEqual([50, 60, 70]);
          const byGroup = await other.runs.listByGroup('r-group' as GroupId, 3);
          expect(byGroup.map((r) => r.createdAtMs)).toEqual([60, 50, 40]);
        } finally {
          for (const db of Object.values(other.databases)) await other.client.deleteDatabase({ db }).catch(() => 0);
        }
      });
    });

    describe('leases', () => {
      const T0 = 1_800_000_000_000;

      it('acquire, exclude, expire, fence, renew, release', async () => {
        const a = await s.leases.acquire('group:lease-basic', 'worker-a', 1_000, T0);
        expect(a).toMatchObject({ name: 'group:lease-basic', holder: 'worker-a', fence: 1, expiresAtMs: T0 + 1_000 });
        expect(await s.leases.acquire('group:lease-basic', 'worker-b', 1_000, T0 + 500)).toBeUndefined();
        await s.leases.assertHeld(a!, T0 + 999);
        const renewed = await s.leases.renew(a!, 1_000, T0 + 900);
        expect(renewed.fence).toBe(1);
        expect(renewed.expiresAtMs).toBe(T0 + 1_900);
        await expectCode(s.leases.assertHeld(renewed, T0 + 1_900), 'LEASE_LOST');

        // After expiry another holder takes over with a higher fence; the stale holder is fenced out.
        const b = await s.leases.acquire('group:lease-basic', 'worker-b', 1_000, T0 + 2_000);
        expect(b?.fence).toBe(2);
        await expectCode(s.leases.assertHeld(renewed, T0 + 2_001), 'LEASE_LOST');
        await expectCode(s.leases.renew(renewed, 1_000, T0 + 2_001), 'LEASE_LOST');
        await s.leases.release(renewed); // stale release: no-op
        await s.leases.assertHeld(b!, T0 + 2_002);

        await s.leases.release(b!);
        await expectCode(s.leases.assertHeld(b!, T0 + 2_003), 'LEASE_LOST');
        const c = await s.leases.acquire('group:lease-basic', 'worker-c', 1_000, T0 + 2_004);
        expect(c?.fence).toBe(3);
      });

      it('a crashed holder’s token lease is taken over after expiry', async () => {
        const name = `token:us-south:${uuid(5)}`;
        const crashed = await s.leases.acquire(name, 'crashed-worker', 30_000, T0);
        expect(crashed).toBeDefined();
        // The holder never renews or releases.
        expect(await s.leases.acquire(name, 'rescuer', 30_000, T0 + 29_999)).toBeUndefined();
        const rescuer = await s.leases.acquire(name, 'rescuer', 30_000, T0 + 30_000);
        expect(rescuer).toMatchObject({ holder: 'rescuer', fence: 2 });
        await expectCode(s.leases.assertHeld(crashed!, T0 + 30_001), 'LEASE_LOST');
      });

      it.each(['acquire', 'acquireMany'] as const)(
        'after a cluster accepted two writes (a conflicted lease), only the winning revision holds it (%s)',
        async (how) => {
          // A Cloudant cluster can accept two writes of the same revision on different nodes and keep both as a
          // conflict. Reproduce that state with a replicator-style write (new_edits: false), then contend.
          const name = `group:lease-cluster-${how}`;
          const first = await s.leases.acquire(name, 'node-a-writer', 60_000, T0);
          expect(first?.fence).toBe(1);
          const db = s.databases.leases;
          const cur = (await s.client.getDocument({ db, docId: `lease:${name}` })).result as Record<string, unknown>;
          const sibling = {
            ...cur,
            _rev: `1-${'f'.repeat(32)}`,
            writeId: 'written-on-another-node',
            data: { name, holder: 'node-b-writer', fence: 1, expiresAtMs: T0 + 10, acquiredAtMs: T0 },
          };
          await s.client.postBulkDocs({ db, bulkDocs: { docs: [sibling as never], newEdits: false } });
          const conflicted = await s.client.getDocument({ db, docId: `lease:${name}`, conflicts: true });
          expect(conflicted.result._conflicts).toHaveLength(1);

          // The cluster's winner is node-b's revision (expired at T0+10): a third worker takes over from it, and the
          // losing branch (node-a's lease) is removed, so node-a is fenced out.
          const c =
            how === 'acquire'
              ? await s.leases.acquire(name, 'worker-c', 60_000, T0 + 20)
              : (await s.leases.acquireMany!([name], 'worker-c', 60_000, T0 + 20))[0];
          expect(c).toMatchObject({ holder: 'worker-c', fence: 2 });
          const after = await s.client.getDocument({ db, docId: `lease:${name}`, conflicts: true });
          expect(after.result._conflicts ?? []).toEqual([]);
          await expectCode(s.leases.assertHeld(first!, T0 + 30), 'LEASE_LOST');
          await s.leases.assertHeld(c!, T0 + 30);
        },
      );

      it('many concurrent contenders (separate clients, real HTTP): at most one holder at any moment', async () => {
        const contenders = await Promise.all(Array.from({ length: 10 }, () => otherClient()));
        const name = 'group:lease-race';
        let inside = 0;
        let maxInside = 0;
        const fences: number[] = [];
        let wins = 0;
        await Promise.all(
          contenders.map(async (c, i) => {
            for (let round = 0; round < 5; round++) {
              const lease: Lease | undefined = await c.leases.acquire(name, `contender-${i}`, 30_000, Date.now());
              if (!lease) {
                await sleep(2 + Math.random() * 10);
                continue;
              }
              inside++;
              maxInside = Math.max(maxInside, inside);
              wins++;
              fences.push(lease.fence);
              await c.leases.assertHeld(lease, Date.now());
              await sleep(3);
              inside--;
              await c.leases.release(lease);
            }
          }),
        );
        expect(maxInside).toBe(1);
        expect(wins).toBeGreaterThan(1);
        // Every new holder got the next fence: unique and strictly increasing in the order they won.
        expect(fences).toEqual([...fences].sort((x, y) => x - y));
        expect(new Set(fences).size).toBe(fences.length);
      });

      it('acquireMany: the rules of acquire per lease (new, free, expired, own, held), in order', async () => {
        const names = [
          'token:r1:many-new',
          'token:r1:many-free',
          'token:r1:many-expired',
          'token:r1:many-own',
          'token:r1:many-held',
        ];
        const free = await s.leases.acquire(names[1]!, 'other', 1_000, T0);
        await s.leases.release(free!);
        await s.leases.acquire(names[2]!, 'other', 1_000, T0);
        const own = await s.leases.acquire(names[3]!, 'worker-m', 60_000, T0);
        await s.leases.acquire(names[4]!, 'other', 60_000, T0);

        const got = await s.leases.acquireMany!(names, 'worker-m', 30_000, T0 + 2_000);

        expect(got.map((l) => l?.holder)).toEqual(['worker-m', 'worker-m', 'worker-m', 'worker-m', undefined]);
        expect(got.map((l) => l?.fence)).toEqual([1, 2, 2, own!.fence, undefined]);
        for (const l of got) if (l) await s.leases.assertHeld(l, T0 + 31_999);
        expect(got[3]?.expiresAtMs).toBe(T0 + 32_000); // its own lease: extended, same fence
        expect(await s.leases.acquire(names[0]!, 'other', 1_000, T0 + 3_000)).toBeUndefined();
        for (const l of got) if (l) await s.leases.release(l);
        expect(await s.leases.acquire(names[0]!, 'other', 1_000, T0 + 3_000)).toMatchObject({ holder: 'other' });
        await expectCode(s.leases.acquireMany!(['token:r1:x', 'token:r1:x'], 'w', 1_000, T0), 'VALIDATION_FAILED');
        await expectCode(s.leases.acquireMany!(['bad name'], 'w', 1_000, T0), 'VALIDATION_FAILED');
        expect(await s.leases.acquireMany!([], 'w', 1_000, T0)).toEqual([]);
      });

      it('acquireMany against single acquires (separate clients, real HTTP): never two holders of one lease', async () => {
        const clients = await Promise.all(Array.from({ length: 6 }, () => otherClient()));
        const names = Array.from({ length: 4 }, (_, i) => `token:r2:many-race-${i}`);
        const holders = new Map<string, number>();
        let overlap = 0;
        await Promise.all(
          clients.map(async (c, i) => {
            for (let round = 0; round < 4; round++) {
              const held = (
                i % 2 === 0
                  ? await c.leases.acquireMany!(names, `bulk-${i}`, 30_000, Date.now())
                  : await Promise.all(names.map((n) => c.leases.acquire(n, `single-${i}`, 30_000, Date.now())))
              ).filter((l): l is Lease => l !== undefined);
              for (const l of held) {
                holders.set(l.name, (holders.get(l.name) ?? 0) + 1);
                if (holders.get(l.name)! > 1) overlap++;
              }
              await sleep(3);
              for (const l of held) {
                holders.set(l.name, holders.get(l.name)! - 1);
                await c.leases.release(l);
              }
              await sleep(1 + Math.random() * 5);
            }
          }),
        );
        expect(overlap).toBe(0);
      });

      it('refuses malformed names and TTLs', async () => {
        await expectCode(s.leases.acquire('no spaces', 'w', 1_000, T0), 'VALIDATION_FAILED');
        await expectCode(s.leases.acquire('group:x', 'w', 0, T0), 'VALIDATION_FAILED');
        await expectCode(s.leases.acquire('group:x', '', 1_000, T0), 'VALIDATION_FAILED');
      });
    });

    describe('processed events', () => {
      it('deduplicates by event id, also under concurrency', async () => {
        expect(await s.events.markProcessed('evt-1', { source: 'at', receivedAtMs: 1 })).toBe(true);
        expect(await s.events.markProcessed('evt-1', { source: 'at', receivedAtMs: 2 })).toBe(false);
        const clients = await Promise.all(Array.from({ length: 6 }, () => otherClient()));
        const results = await Promise.all(
          clients.map((c) => c.events.markProcessed('evt-race', { source: 'at', receivedAtMs: 3 })),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        await expectCode(s.events.markProcessed('bad id', { source: 'at', receivedAtMs: 1 }), 'VALIDATION_FAILED');
      });
    });

    describe('lineage', () => {
      const chain = makeChain('lin-a', 23);
      beforeAll(async () => {
        for (const id of ['lin-a', 'lin-b', 'lin-a-b', 'lin-a0']) await s.groups.create(makeGroup(id));
        for (const r of chain) await s.lineage.append(r);
        for (const r of makeChain('lin-b', 3)) await s.lineage.append(r);
        for (const r of makeChain('lin-a-b', 2)) await s.lineage.append(r);
        for (const r of makeChain('lin-a0', 1)) await s.lineage.append(r);
      });

      it('reads head and single generations', async () => {
        expect(await s.lineage.head('lin-a' as GroupId)).toEqual(chain[22]);
        expect(await s.lineage.head('lin-none' as GroupId)).toBeUndefined();
        expect(await s.lineage.get('lin-a' as GroupId, 7)).toEqual(chain[6]);
        await expectCode(s.lineage.get('lin-a' as GroupId, 99), 'GENERATION_NOT_FOUND');
      });

      it('appends are create-only: a duplicate is a conflict carrying the stored record, never an overwrite', async () => {
        const dup = { ...chain[4]!, notes: ['tampered'] };
        const err = await expectCode(s.lineage.append(dup), 'STORE_CONFLICT');
        expect(isStoreConflict<LineageRecord>(err) && err.current?.value).toEqual(chain[4]);
        expect(await s.lineage.get('lin-a' as GroupId, 5)).toEqual(chain[4]);
      });

      it('refuses gaps and broken chains', async () => {
        const gap = makeRecord('lin-b', 5, 'x');
        await expectCode(s.lineage.append(gap), 'VALIDATION_FAILED');
        const broken = makeRecord('lin-b', 4, 'not-the-head-hash');
        await expectCode(s.lineage.append(broken), 'CHAIN_BROKEN');
        expect((await s.lineage.head('lin-b' as GroupId))?.generation).toBe(3);
      });

      it('two clients appending the same generation: exactly one wins', async () => {
        await s.groups.create(makeGroup('lin-race'));
        const [first] = makeChain('lin-race', 1);
        const clients = await Promise.all(Array.from({ length: 5 }, () => otherClient()));
        const results = await Promise.allSettled(clients.map((c) => c.lineage.append(first!)));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(hasCode(r.reason, 'STORE_CONFLICT')).toBe(true);
        }
      });

      it('lists newest first with key-range cursors, and filters by time', async () => {
        const pages = await collectPages((cursor) =>
          s.lineage.list('lin-a' as GroupId, { limit: 5, ...(cursor ? { cursor } : {}) }),
        );
        expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
        expect(pages.flat().map((r) => r.generation)).toEqual(Array.from({ length: 23 }, (_, i) => 23 - i));

        const exact = await s.lineage.list('lin-a' as GroupId, { limit: 23 });
        expect(exact.items).toHaveLength(23);
        expect(exact.next).toBeUndefined();

        // finishedAtMs = T + g*1000 + 500: generations 5..9
        const since = 1_700_000_000_000 + 5_000;
        const until = 1_700_000_000_000 + 9_600;
        const windowed = await collectPages((cursor) =>
          s.lineage.list('lin-a' as GroupId, {
            limit: 2,
            sinceMs: since,
            untilMs: until,
            ...(cursor ? { cursor } : {}),
          }),
        );
        expect(windowed.flat().map((r) => r.generation)).toEqual([9, 8, 7, 6, 5]);

        const firstPage = await s.lineage.list('lin-a' as GroupId, { limit: 5 });
        await expectCode(s.lineage.list('lin-b' as GroupId, { limit: 5, cursor: firstPage.next! }), 'INVALID_CURSOR');
        await expectCode(s.lineage.list('lin-a' as GroupId, { limit: 0 }), 'VALIDATION_FAILED');
      });

      it('finds the generation holding any member’s key version', async () => {
        for (const [gen, m] of [
          [1, 0],
          [12, 1],
          [23, 0],
        ] as const) {
          const r = await s.lineage.findByKeyVersion(versionOf('lin-a', gen, m));
          expect(r?.generation).toBe(gen);
          expect(r?.groupId).toBe('lin-a');
        }
        expect(await s.lineage.findByKeyVersion(versionOf('lin-b', 2, 1))).toMatchObject({ groupId: 'lin-b' });
        expect(await s.lineage.findByKeyVersion(uuid(123_456) as KeyVersionId)).toBeUndefined();
        await expectCode(s.lineage.findByKeyVersion('nope' as KeyVersionId), 'VALIDATION_FAILED');
      });

      it('exports in (groupId, generation) order and returns whole chains oldest first', async () => {
        const all: LineageRecord[] = [];
        for await (const r of s.lineage.exportAll()) all.push(r);
        const keys = all.filter((r) => r.groupId.startsWith('lin-')).map((r) => `${r.groupId}/${r.generation}`);
        const expected = [...keys].sort((x, y) => {
          const [gx, nx] = x.split('/') as [string, string];
          const [gy, ny] = y.split('/') as [string, string];
          return gx === gy ? Number(nx) - Number(ny) : gx < gy ? -1 : 1;
        });
        expect(keys).toEqual(expected);
        expect(new Set(all.map((r) => r.groupId))).toEqual(
          new Set(['lin-a', 'lin-a-b', 'lin-a0', 'lin-b', 'lin-race']),
        );
        expect(keys.filter((k) => k.startsWith('lin-a/'))).toHaveLength(23);

        const one: LineageRecord[] = [];
        for await (const r of s.lineage.exportAll('lin-a-b' as GroupId)) one.push(r);
        expect(one.map((r) => r.generation)).toEqual([1, 2]);
        expect(await s.lineage.chain('lin-a' as GroupId)).toEqual(chain);
        expect(await s.lineage.chain('lin-a' as GroupId, 21)).toEqual(chain.filter((r) => r.generation >= 21));
      });

      it('resumes an export after any position: the rest of the order, across group boundaries', async () => {
        const all: LineageRecord[] = [];
        for await (const r of s.lineage.exportAll()) all.push(r);
        const key = (r: LineageRecord) => `${r.groupId}/${r.generation}`;
        for (const i of [0, 22, 23, 24, all.length - 2, all.length - 1]) {
          const at = all[i]!;
          const rest: string[] = [];
          for await (const r of s.lineage.exportAll(undefined, { groupId: at.groupId, generation: at.generation })) {
            rest.push(key(r));
          }
          expect(rest, `after ${key(at)}`).toEqual(all.slice(i + 1).map(key));
        }
        const tail: number[] = [];
        for await (const r of s.lineage.exportAll('lin-a' as GroupId, {
          groupId: 'lin-a' as GroupId,
          generation: 20,
        })) {
          tail.push(r.generation);
        }
        expect(tail).toEqual([21, 22, 23]);
      });
    });

    describe('checkpoints', () => {
      it('puts idempotently and reads latest and all in order', async () => {
        await s.groups.create(makeGroup('ck-group'));
        expect(await s.checkpoints.latest('ck-group' as GroupId)).toBeUndefined();
        const cps = [
          makeCheckpoint('ck-group', 1, 100),
          makeCheckpoint('ck-group', 2, 200),
          makeCheckpoint('ck-group', 2, 300),
        ];
        for (const c of [cps[1]!, cps[0]!, cps[2]!]) await s.checkpoints.put(c);
        await s.checkpoints.put(cps[0]!); // same again: fine
        await expectCode(s.checkpoints.put({ ...cps[0]!, signature: 'b3RoZXI=' }), 'STORE_CONFLICT');
        expect(await s.checkpoints.latest('ck-group' as GroupId)).toEqual(cps[2]);
        expect(await s.checkpoints.list('ck-group' as GroupId)).toEqual(cps);
        await s.groups.create(makeGroup('ck-group-2'));
        await s.checkpoints.put(makeCheckpoint('ck-group-2', 9, 1));
        expect(await s.checkpoints.list('ck-group' as GroupId)).toHaveLength(3);
        // from a position on: only what follows it (the proof's incremental check)
        expect(await s.checkpoints.list('ck-group' as GroupId, { generation: 2, signedAtMs: 200 })).toEqual([cps[2]]);
        expect(await s.checkpoints.list('ck-group' as GroupId, { generation: 1, signedAtMs: 100 })).toEqual(
          cps.slice(1),
        );
        expect(await s.checkpoints.list('ck-group' as GroupId, { generation: 2, signedAtMs: 300 })).toEqual([]);
      });
    });

    describe('late evidence chain', () => {
      it('appends create-only per seq, reads head and the chain in order, apart from checkpoints', async () => {
        await s.groups.create(makeGroup('ev-group'));
        const evidence = s.evidence!;
        expect(await evidence.head('ev-group' as GroupId)).toBeUndefined();
        const gen = makeRecord('ev-group', 1, '0'.repeat(64));
        const ev = (seq: number, prev?: EvidenceRecord) =>
          buildEvidenceRecord(
            {
              kind: 'evidence',
              groupId: 'ev-group' as GroupId,
              seq,
              generation: 1,
              generationHash: gen.hash,
              runId: 'run-ev' as RunId,
              crn: gen.members[0]!.crn,
              evidence: {
                eventId: `e${seq}`,
                action: 'kms.secrets.rotate',
                eventTimeMs: 1,
                initiator: 'x',
                outcome: 'success',
              },
              recordedAtMs: 5,
            },
            prev,
          );
        const first = ev(1);
        const second = ev(2, first);
        await evidence.append(first);
        await evidence.append(second);
        await expectCode(evidence.append({ ...ev(2, first), recordedAtMs: 6 }), 'STORE_CONFLICT');
        expect(await evidence.head('ev-group' as GroupId)).toEqual(second);
        expect(await evidence.chain('ev-group' as GroupId)).toEqual([first, second]);
        expect(await s.checkpoints.list('ev-group' as GroupId)).toEqual([]);
        await expectCode(evidence.append({ ...first, groupId: 'ev-none' as GroupId }), 'GROUP_NOT_FOUND');
        // signed heads: stored apart from the records and from generation checkpoints; the same one again is a no-op
        const signer = { privateKey: checkpointKeyPairFromSeed(Buffer.alloc(32, 9)).privateKey };
        const cp = (r: EvidenceRecord, at: number) =>
          signEvidenceCheckpoint({ groupId: r.groupId, seq: r.seq, headHash: r.hash, signedAtMs: at }, signer);
        await evidence.putCheckpoint(cp(second, 20));
        await evidence.putCheckpoint(cp(first, 10));
        await evidence.putCheckpoint(cp(second, 20));
        expect(await evidence.checkpoints('ev-group' as GroupId)).toEqual([cp(first, 10), cp(second, 20)]);
        expect(await evidence.chain('ev-group' as GroupId)).toEqual([first, second]);
        expect(await s.checkpoints.list('ev-group' as GroupId)).toEqual([]);
      });
    });

    describe('bad input: typed errors, nothing written', () => {
      it('malformed ids', async () => {
        const before = await docCounts(s);
        await expectCode(s.groups.create(makeGroup('Not_A_Group')), 'VALIDATION_FAILED');
        await expectCode(s.groups.get('../etc' as GroupId), 'VALIDATION_FAILED');
        await expectCode(s.runs.create(makeRun('r-group', { id: 'run-' as RunId })), 'VALIDATION_FAILED');
        await expectCode(s.runs.get('_design/x' as RunId), 'VALIDATION_FAILED');
        await expectCode(s.lineage.append(makeRecord('BAD GROUP', 1, '')), 'VALIDATION_FAILED');
        await expectCode(s.checkpoints.put(makeCheckpoint('ck-group', -1, 5)), 'VALIDATION_FAILED');
        await expectCode(s.events.markProcessed('', { source: 'at', receivedAtMs: 1 }), 'VALIDATION_FAILED');
        expect(await docCounts(s)).toEqual(before);
      });

      it('oversize documents', async () => {
        const before = await docCounts(s);
        const big = 'x'.repeat(1_100_000);
        await expectCode(s.groups.create(makeGroup('g-big', { description: big })), 'PAYLOAD_TOO_LARGE');
        await expectCode(
          s.runs.create({ ...makeRun('r-group'), blob: big } as TestRun & { blob: string }),
          'PAYLOAD_TOO_LARGE',
        );
        expect(await docCounts(s)).toEqual(before);
      });

      it('unknown group', async () => {
        const before = await docCounts(s);
        await expectCode(s.runs.create(makeRun('no-such-group')), 'GROUP_NOT_FOUND');
        await expectCode(s.lineage.append(makeRecord('no-such-group', 1, '')), 'GROUP_NOT_FOUND');
        await expectCode(s.checkpoints.put(makeCheckpoint('no-such-group', 1, 1)), 'GROUP_NOT_FOUND');
        await expectCode(
          s.groups.mutate('no-such-group' as GroupId, (g) => g),
          'GROUP_NOT_FOUND',
        );
        expect(await docCounts(s)).toEqual(before);
        // a create (or adopt) run comes before its group: it writes the group when its keys exist and are proved
        expect((await s.runs.create(makeRun('group-to-be', { kind: 'create' }))).rev).toBeTruthy();
        expect((await s.runs.create(makeRun('group-adopted', { kind: 'adopt' }))).rev).toBeTruthy();
      });

      it('key material or secret-looking fields are never stored', async () => {
        const before = await docCounts(s);
        const material = KeyMaterial.fromBytes(Buffer.alloc(32, 7));
        await expectCode(
          s.runs.create({ ...makeRun('r-group'), material } as TestRun & { material: KeyMaterial }),
          'VALIDATION_FAILED',
        );
        await expectCode(
          s.runs.create({ ...makeRun('r-group'), stage: { nonce: 'abc' } } as TestRun & { stage: object }),
          'VALIDATION_FAILED',
        );
        await expectCode(
          s.runs.create({ ...makeRun('r-group'), dek: Buffer.alloc(8) } as TestRun & { dek: Buffer }),
          'VALIDATION_FAILED',
        );
        expect(await docCounts(s)).toEqual(before);
      });
    });
  });
}
