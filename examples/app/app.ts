/**
 * A small application that uses a lockstep group's keys through the failover client: it keeps wrapping new DEKs
 * and unwrapping recent ones, and reports which region answered. Take the primary region down (see README.md) and
 * it keeps going on the duplicates.
 *
 * Run against `npm start`: npx tsx examples/app/app.ts [groupId]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import { GroupKeyring, isKeyringError } from 'lockstep/client';

export interface AppOptions {
  apiUrl: string;
  iamUrl: string;
  /** An API key with the auditor role (reads the endpoints) and Key Protect access (wrap/unwrap). */
  apiKey: string;
  groupId: string;
  /** Stop after this long (default: until the signal aborts). */
  durationMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface AppStats {
  wraps: number;
  unwraps: number;
  failures: number;
  /** Answers per region, e.g. `{ 'us-south': 120, 'us-east': 37 }`. */
  byRegion: Record<string, number>;
  /** Failure messages (first 10). */
  errors: string[];
}

/** Wraps and unwraps until `durationMs` passes or `signal` aborts; returns what happened. */
export async function runApp(opts: AppOptions): Promise<AppStats> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const authenticator = new IamAuthenticator({ apikey: opts.apiKey, url: opts.iamUrl });
  const ring = await GroupKeyring.fromApi({
    apiUrl: opts.apiUrl,
    groupId: opts.groupId,
    authenticator,
    refreshIntervalMs: 30_000,
    hedgeDelayMs: 150,
    attemptTimeoutMs: 1_000,
    // With the primary down, new DEKs are wrapped at a duplicate (same material). Off by default in the client: a
    // rotation staged on the duplicates but not yet promoted would make such DEKs unwrappable only there until the
    // primary is promoted. This application prefers availability.
    wrapFailover: true,
    onEvent: (e) => {
      if (e.type === 'breaker') log(`breaker ${e.member.region}: ${e.from} → ${e.to}`);
      if (e.type === 'refresh' && !e.ok) log(`endpoints not refreshed (keeping the last known ones): ${e.error}`);
    },
  });
  const stats: AppStats = { wraps: 0, unwraps: 0, failures: 0, byRegion: {}, errors: [] };
  const recent: { ciphertext: string; dek: string }[] = [];
  const until = opts.durationMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.durationMs;
  const count = (region: string) => {
    stats.byRegion[region] = (stats.byRegion[region] ?? 0) + 1;
  };
  const fail = (what: string, err: unknown) => {
    stats.failures += 1;
    const msg = `${what}: ${isKeyringError(err) ? `${err.code} ${err.message}` : String(err)}`;
    if (stats.errors.length < 10) stats.errors.push(msg);
    log(`✗ ${msg}`);
  };
  let last = Date.now();
  try {
    while (Date.now() < until && !opts.signal?.aborted) {
      try {
        const w = await ring.wrap(undefined, { aad: ['example-app'] });
        stats.wraps += 1;
        count(w.member.region);
        recent.push({ ciphertext: w.ciphertext, dek: w.plaintext.toString('base64') });
        w.plaintext.fill(0);
        if (recent.length > 50) recent.shift();
      } catch (err) {
        fail('wrap', err);
      }
      const pick = recent[Math.floor(Math.random() * recent.length)];
      if (pick) {
        try {
          const u = await ring.unwrap(pick.ciphertext, { aad: ['example-app'] });
          if (u.plaintext.toString('base64') !== pick.dek) throw new Error('unwrapped a different DEK');
          u.plaintext.fill(0);
          stats.unwraps += 1;
          count(u.member.region);
        } catch (err) {
          fail('unwrap', err);
        }
      }
      if (Date.now() - last >= 2_000) {
        last = Date.now();
        const regions = Object.entries(stats.byRegion)
          .map(([r, n]) => `${r} ${n}`)
          .join(', ');
        log(`wraps ${stats.wraps} · unwraps ${stats.unwraps} · failures ${stats.failures} · answered by ${regions}`);
      }
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
    }
  } finally {
    ring.close();
  }
  return stats;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dev = JSON.parse(readFileSync('.lockstep/dev.json', 'utf8')) as {
    iam: { url: string; apiKeys: { auditor: string } };
    api: { url: string };
  };
  const controller = new AbortController();
  process.on('SIGINT', () => controller.abort());
  const stats = await runApp({
    apiUrl: dev.api.url,
    iamUrl: dev.iam.url,
    apiKey: dev.iam.apiKeys.auditor,
    groupId: process.argv[2] ?? 'demo',
    signal: controller.signal,
  });
  console.log(JSON.stringify(stats));
}
