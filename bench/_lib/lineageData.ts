/**
 * Synthetic lineage history for the history benchmarks (same shape as bench/store-history.ts): one big group with
 * `big` generations, the rest in groups of `perGroup`; records hash-chained per group, documents exactly as the
 * store's `append` writes them, loaded through `_bulk_docs`; the embedded store runs in a child process.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Checkpoint, Group, GroupId, KeyVersionId, LineageRecord, RunId } from '../../src/core/index.js';
import { formatKeyCrn } from '../../src/core/index.js';
import { GENESIS_PREV_HASH, hashRecord } from '../../src/lineage/index.js';
import { type CouchAccess, couchAccess, randomCouchCredentials } from '../../src/local/couch/index.js';
import { checkpointDocId } from '../../src/store/checkpoints.js';
import { encode } from '../../src/store/documents.js';
import { type CloudantStores, toLineageDocument } from '../../src/store/index.js';
import { benchDir } from './common.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const uuidFrom = (s: string) => {
  const h = sha(s);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};
const T0 = 1_700_000_000_000;
const REGIONS = ['us-south', 'us-east', 'eu-de'] as const;

function membersOf(groupId: string) {
  return REGIONS.map((region, i) => {
    const instanceId = uuidFrom(`${groupId}/inst/${region}`);
    const keyId = uuidFrom(`${groupId}/key/${region}`);
    return {
      role: i === 0 ? ('primary' as const) : ('duplicate' as const),
      region: region as never,
      instanceId: instanceId as never,
      keyId: keyId as never,
      crn: formatKeyCrn({
        region: region as never,
        accountId: 'bench',
        instanceId: instanceId as never,
        keyId: keyId as never,
      }),
    };
  });
}

export function lineageRecord(groupId: string, generation: number, prevHash: string): LineageRecord {
  const members = membersOf(groupId).map((m, i) => ({
    ...m,
    keyVersionId: uuidFrom(`${groupId}/${generation}/${m.region}`) as KeyVersionId,
    rotatedAtMs: T0 + generation * 3_600_000 + i * 1000,
    evidence: [
      {
        eventId: `evt-${sha(`${groupId}${generation}${i}`).slice(0, 16)}`,
        action: 'kms.secrets.rotate',
        eventTimeMs: T0 + generation * 3_600_000 + i * 1000 + 200,
        initiator: 'iam-ServiceId-lockstep',
        outcome: 'success',
      },
    ],
  }));
  const body = {
    groupId: groupId as GroupId,
    generation,
    fingerprint: `fp1:${sha(`fp${groupId}${generation}`).slice(0, 32)}`,
    trigger: { kind: 'schedule' as const, by: 'cron' },
    runId: `run-${sha(`${groupId}-${generation}`).slice(0, 20)}` as RunId,
    startedAtMs: T0 + generation * 3_600_000,
    finishedAtMs: T0 + generation * 3_600_000 + 5_000,
    members,
    verification: [
      {
        wrappedAt: members[0]!.crn,
        unwrappedAt: [members[1]!.crn, members[2]!.crn],
        ciphertext: Buffer.from(sha(`ct${groupId}${generation}`)).toString('base64'),
        plaintextSha256: sha(`pt${groupId}${generation}`),
        aad: [groupId, String(generation)],
        reportedVersions: Object.fromEntries(members.map((m) => [m.crn, m.keyVersionId])),
        ok: true,
        atMs: T0 + generation * 3_600_000 + 4_000,
      },
    ],
    status: 'complete' as const,
    prevHash: prevHash || GENESIS_PREV_HASH,
  };
  // a valid chain (canonical hash, genesis link), so the proof benchmarks check an intact history
  return { ...body, hash: hashRecord(body) };
}

/** The group document of a synthetic group (the API checks that the group exists). */
export function groupDoc(groupId: string, generations: number): Group {
  const members = membersOf(groupId);
  const escrowKey = uuidFrom(`${groupId}/escrow`);
  return {
    id: groupId as GroupId,
    name: `bench ${groupId}`,
    members,
    escrow: {
      region: members[0]!.region,
      instanceId: members[0]!.instanceId,
      keyId: escrowKey as never,
      crn: formatKeyCrn({
        region: members[0]!.region,
        accountId: 'bench',
        instanceId: members[0]!.instanceId,
        keyId: escrowKey as never,
      }),
    },
    schedule: { intervalMs: 90 * 24 * 3_600_000 },
    status: 'healthy',
    currentGeneration: generations,
    lastRotatedAtMs: T0 + generations * 3_600_000 + 5_000,
    createdAtMs: T0,
    updatedAtMs: T0 + generations * 3_600_000 + 5_000,
  };
}

export const groupName = (i: number) => `bench-${String(i).padStart(5, '0')}`;

/** Loads `records` records: `big` in `bigGroup`, the rest in groups of `perGroup`. Returns a sample of version ids. */
export async function loadLineage(
  stores: CloudantStores,
  opts: {
    records: number;
    big: number;
    perGroup: number;
    bigGroup: string;
    batch?: number;
    /** Signs a checkpoint for each generation of the big group (as the runner does after each record). */
    signBig?: (record: LineageRecord) => Checkpoint;
  },
): Promise<{ versions: KeyVersionId[]; groups: string[] }> {
  const db = stores.databases.lineage;
  const batchSize = opts.batch ?? 1_000;
  const versions: KeyVersionId[] = [];
  const groups: string[] = [opts.bigGroup];
  let batch: unknown[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await stores.client.postBulkDocs({ db, bulkDocs: { docs: batch as never } });
    batch = [];
  };
  const addRecord = async (g: string, n: number, prev: string) => {
    const r = lineageRecord(g, n, prev);
    if (n % 7 === 0) versions.push(r.members[n % 3]!.keyVersionId);
    batch.push(toLineageDocument(r));
    if (batch.length >= batchSize) await flush();
    return r;
  };
  const add = async (g: string, n: number, prev: string) => (await addRecord(g, n, prev)).hash;
  let cps: unknown[] = [];
  const flushCheckpoints = async () => {
    if (cps.length === 0) return;
    await stores.client.postBulkDocs({ db: stores.databases.checkpoints, bulkDocs: { docs: cps as never } });
    cps = [];
  };
  let prev = '';
  for (let n = 1; n <= opts.big; n++) {
    const r = await addRecord(opts.bigGroup, n, prev);
    prev = r.hash;
    if (opts.signBig) {
      const cp = opts.signBig(r);
      cps.push(encode('checkpoint', checkpointDocId(cp), cp, { groupId: cp.groupId }));
      if (cps.length >= batchSize) await flushCheckpoints();
    }
  }
  await flushCheckpoints();
  await stores.groups.create(groupDoc(opts.bigGroup, opts.big));
  let left = opts.records - opts.big;
  for (let i = 0; left > 0; i++) {
    const g = groupName(i);
    groups.push(g);
    let p = '';
    const count = Math.min(opts.perGroup, left);
    for (let n = 1; n <= count; n++) p = await add(g, n, p);
    left -= count;
    if (i < 20) await stores.groups.create(groupDoc(g, count));
  }
  await flush();
  return { versions, groups };
}

/**
 * Starts the embedded store in a child process (so its CPU and memory are its own) with fresh credentials; resolves
 * its URL and how to authenticate (`storeOptions`, `authorization`, and `env` for other children).
 */
export async function startCouchChild(
  dataDir?: string,
): Promise<CouchAccess & { child: ChildProcess; env: Record<string, string>; stop(): Promise<void> }> {
  const args = ['--import', 'tsx', join(benchDir, '..', 'src', 'local', 'couch', 'main.ts'), '--port', '0'];
  if (dataDir) args.push('--data-dir', dataDir);
  const credentials = randomCouchCredentials();
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      LOCKSTEP_COUCH_USERNAME: credentials.username,
      LOCKSTEP_COUCH_PASSWORD: credentials.password,
    },
  });
  const url = await new Promise<string>((ok, fail) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /^(http:\/\/\S+)$/m.exec(out);
      if (m) ok(m[1]!);
    });
    child.once('exit', (code) => fail(new Error(`embedded store exited with ${code}`)));
  });
  return {
    ...couchAccess(url, credentials),
    child,
    env: { CLOUDANT_USERNAME: credentials.username, CLOUDANT_PASSWORD: credentials.password },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
