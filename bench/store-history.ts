/**
 * History query latency on the embedded CouchDB-compatible server, through the real Cloudant SDK and the store
 * adapter: N lineage records across many groups, one group with 10 000 generations.
 *
 *   npx tsx bench/store-history.ts [--records 100000] [--big 10000] [--storage memory|leveldb] [--samples 200]
 *
 * The server runs in a child process (src/local/couch/main.ts), so its peak RSS (VmHWM) is measured on its own.
 * Writes bench/results/store-history.md and prints it. Not part of `npm test`.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { GroupId, KeyVersionId } from '../src/core/index.js';
import { createCloudantStores, toLineageDocument } from '../src/store/index.js';
import { memoryOf } from './_lib/common.js';
import { lineageRecord, startCouchChild } from './_lib/lineageData.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '100000' },
    big: { type: 'string', default: '10000' },
    'per-group': { type: 'string', default: '100' },
    storage: { type: 'string', default: 'memory' },
    samples: { type: 'string', default: '200' },
    out: { type: 'string', default: join(here, 'results', 'store-history.md') },
  },
});
const RECORDS = Number(values.records);
const BIG = Math.min(Number(values.big), RECORDS);
const PER_GROUP = Number(values['per-group']);
const SAMPLES = Number(values.samples);
const STORAGE = values.storage === 'leveldb' ? 'leveldb' : 'memory';
const PAGE = 50;
const BATCH = 1_000;
const BIG_GROUP = 'bench-big' as GroupId;

const record = lineageRecord;

/** (groupId, generation) of every record: the big group, then groups of PER_GROUP. */
function* plan(): Generator<[string, number]> {
  for (let g = 1; g <= BIG; g++) yield [BIG_GROUP, g];
  let left = RECORDS - BIG;
  for (let i = 0; left > 0; i++) {
    const id = `bench-${String(i).padStart(5, '0')}`;
    for (let g = 1; g <= PER_GROUP && left > 0; g++, left--) yield [id, g];
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
}

async function main(): Promise<void> {
  const dataDir = STORAGE === 'leveldb' ? await mkdtemp(join(tmpdir(), 'lockstep-bench-')) : undefined;
  const couch = await startCouchChild(dataDir);
  const { child, stop } = couch;
  const rows: string[][] = [];
  const add = (what: string, value: string, note = '') => {
    rows.push([what, value, note]);
    console.error(`  ${what}: ${value} ${note}`);
  };
  try {
    const stores = await createCloudantStores({ ...couch.storeOptions, dbPrefix: 'bench-', timeoutMs: 600_000 });
    await stores.ensureSetup();
    const db = stores.databases.lineage;
    const client = stores.client;

    // Bulk load through _bulk_docs, documents exactly as `append` writes them.
    console.error(`loading ${RECORDS} records (${STORAGE})…`);
    const versions: KeyVersionId[] = [];
    const prev = new Map<string, string>();
    let batch: unknown[] = [];
    let peakDuringLoad = 0;
    const [, loadMs] = await time(async () => {
      for (const [g, n] of plan()) {
        const r = record(g, n, prev.get(g) ?? '');
        prev.set(g, r.hash);
        versions.push(r.members[(n % 3) as 0 | 1 | 2]!.keyVersionId);
        batch.push(toLineageDocument(r));
        if (batch.length === BATCH) {
          await client.postBulkDocs({ db, bulkDocs: { docs: batch as never } });
          batch = [];
          peakDuringLoad = Math.max(peakDuringLoad, (await memoryOf(child.pid!)).rssMb);
        }
      }
      if (batch.length) await client.postBulkDocs({ db, bulkDocs: { docs: batch as never } });
    });
    const count = (await client.getDatabaseInformation({ db })).result.docCount;
    add(
      'records loaded',
      `${count - 2}`,
      `${RECORDS - BIG} in ${Math.ceil((RECORDS - BIG) / PER_GROUP)} groups of ${PER_GROUP} + ${BIG} in one group; 2 design docs`,
    );
    add(
      'bulk load (_bulk_docs × 1000)',
      `${(loadMs / 1000).toFixed(1)} s`,
      `${Math.round((RECORDS / loadMs) * 1000)} records/s`,
    );

    // The first query after the load brings the Mango index (and then the view) up to date.
    const [, idxMs] = await time(() => stores.lineage.list(BIG_GROUP, { limit: PAGE }));
    add('first history page after load (Mango index catch-up)', `${(idxMs / 1000).toFixed(1)} s`);
    const [, viewMs] = await time(() => stores.lineage.findByKeyVersion(versions[0]!));
    add('first findByKeyVersion after load (view build)', `${(viewMs / 1000).toFixed(1)} s`);

    // Newest-first pages of the 10 000-generation group: page 1, then every page down to the oldest.
    const first: number[] = [];
    for (let i = 0; i < SAMPLES; i++)
      first.push((await time(() => stores.lineage.list(BIG_GROUP, { limit: PAGE })))[1]);
    add(
      `page 1 of ${BIG_GROUP} (${PAGE} newest), p50 / p95`,
      `${ms(pct(first, 50))} / ${ms(pct(first, 95))}`,
      `${SAMPLES} samples`,
    );

    const walk: number[] = [];
    const cursors: string[] = [];
    let cursor: string | undefined;
    let seen = 0;
    do {
      const [page, t] = await time(() =>
        stores.lineage.list(BIG_GROUP, { limit: PAGE, ...(cursor ? { cursor } : {}) }),
      );
      walk.push(t);
      seen += page.items.length;
      cursor = page.next;
      if (cursor) cursors.push(cursor);
    } while (cursor);
    add(
      `every page of ${BIG_GROUP}, newest to oldest, p50 / p95`,
      `${ms(pct(walk, 50))} / ${ms(pct(walk, 95))}`,
      `${walk.length} pages, ${seen} records, max ${ms(Math.max(...walk))}`,
    );
    for (const [label, c] of [
      ['middle', cursors[Math.floor(cursors.length / 2)]],
      ['last', cursors[cursors.length - 1]],
    ] as const) {
      if (!c) continue;
      const deep: number[] = [];
      for (let i = 0; i < SAMPLES; i++)
        deep.push((await time(() => stores.lineage.list(BIG_GROUP, { limit: PAGE, cursor: c })))[1]);
      add(
        `deep page (${label}) of ${BIG_GROUP}, p50 / p95`,
        `${ms(pct(deep, 50))} / ${ms(pct(deep, 95))}`,
        `${SAMPLES} samples`,
      );
    }
    const small: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const g = `bench-${String(i % 50).padStart(5, '0')}` as GroupId;
      small.push((await time(() => stores.lineage.list(g, { limit: PAGE })))[1]);
    }
    add(
      `page 1 of a ${PER_GROUP}-generation group, p50 / p95`,
      `${ms(pct(small, 50))} / ${ms(pct(small, 95))}`,
      `${SAMPLES} samples`,
    );

    const byVersion: number[] = [];
    let found = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const v = versions[Math.floor(Math.random() * versions.length)]!;
      const [r, t] = await time(() => stores.lineage.findByKeyVersion(v));
      if (r) found++;
      byVersion.push(t);
    }
    add(
      'findByKeyVersion (random member version), p50 / p95',
      `${ms(pct(byVersion, 50))} / ${ms(pct(byVersion, 95))}`,
      `${found}/${SAMPLES} found`,
    );

    const explain = await stores.explainLineageList(BIG_GROUP);
    const mem = await memoryOf(child.pid!);
    add(
      'server peak RSS (VmHWM)',
      `${Math.round(mem.peakMb)} MB`,
      `now ${Math.round(mem.rssMb)} MB; max sampled during load ${Math.round(peakDuringLoad)} MB`,
    );
    add(
      'bench client peak RSS',
      `${Math.round(process.resourceUsage().maxRSS / 1024)} MB`,
      'the SDK client process, separate from the server',
    );

    const md = [
      '# Store history benchmark',
      '',
      `\`npx tsx bench/store-history.ts --records ${RECORDS} --big ${BIG} --storage ${STORAGE}\` — ${new Date().toISOString()}, Node ${process.version}, ${STORAGE} storage.`,
      'Embedded CouchDB-compatible server (express-pouchdb minimal + _find, PouchDB 9) in a child process; queries through',
      '`@ibm-cloud/cloudant` and the store adapter (`lineage.list`, `lineage.findByKeyVersion`). Shared 2-core machine:',
      'other work ran at the same time, so treat the numbers as an upper bound.',
      '',
      '| measurement | value | note |',
      '|---|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      '## Explain of the history page query (`lineage.list`, newest first)',
      '',
      '```json',
      JSON.stringify(
        { index: explain.index, selector: explain.selector, range: explain.range, limit: explain.limit },
        null,
        2,
      ),
      '```',
      '',
    ].join('\n');
    await mkdir(dirname(values.out), { recursive: true });
    await writeFile(values.out, md);
    console.log(md);
  } finally {
    await stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
