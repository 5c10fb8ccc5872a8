/**
 * A local stand-in of the path IBM delivers Activity Tracker events on: Activity Tracker Event Routing → Cloud Logs
 * → a Cloud Logs alert → Event Notifications → a Code Engine destination. A real HTTP server: the Key Protect
 * emulator posts its CADF events to `/ingest` (the Cloud Logs ingestion); an alert definition matches them per
 * evaluation window and sends **one** notification per triggered window with **one** log example, cut exactly as
 * Cloud Logs documents; a quiet window after a triggered one sends `resolved`; Event Notifications delivers with its
 * documented retry policy and drops the notification after the last failure. Every rule and its source: README.md.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, silentLogger } from '../../core/index.js';

/** Cloud Logs alert payload size limits (`alerts/event-payload.md`, "Data Size"). */
export const LIMITS = { logExample: 1_000, name: 100, description: 100, queryStatement: 100 } as const;

/** Event Notifications' retry policy for destinations (`en-destination.md`, "Retry policy for destinations"). */
export interface RetryPolicy {
  /** Retries after the first attempt (3). */
  retries: number;
  /** Exponential delay between attempts, from 1 s up to 10 s. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Per request (10 s). */
  timeoutMs: number;
}

export const EN_RETRY_POLICY: RetryPolicy = { retries: 3, minDelayMs: 1_000, maxDelayMs: 10_000, timeoutMs: 10_000 };

/** A "more than 0 matching logs in the window" alert on Activity Tracker actions. */
export interface AlertDefinition {
  id: string;
  name: string;
  description?: string;
  /** The Lucene query as written in Cloud Logs (shown, cut to 100); matching uses `actions`. */
  queryStatement: string;
  actions: readonly string[];
  /** Evaluation window (`condition_timeframe`). */
  windowMs: number;
  severity?: 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';
}

/** An Event Notifications destination: a URL with custom and sensitive headers (hidden after creation). */
export interface Destination {
  url: string;
  headers?: Record<string, string>;
  sensitiveHeaders?: Record<string, string>;
}

/** What a test or a benchmark can observe. */
export interface RelayStats {
  ingested: number;
  matched: number;
  notifications: number;
  triggered: number;
  resolved: number;
  /** Attempts that reached the destination and got a 2xx. */
  delivered: number;
  /** Attempts that failed (status, timeout, network) and were retried. */
  retried: number;
  /** Notifications lost after the last retry. */
  dropped: number;
  /** Every delay slept between attempts, in order. */
  delaysMs: number[];
}

export interface EnRelayOptions {
  accountId: string;
  /** Region of the Cloud Logs instance (its CRN). */
  region: string;
  instanceId?: string;
  alert: AlertDefinition;
  destination?: Destination;
  retry?: Partial<RetryPolicy>;
  /** Injected for tests: waits between attempts and the clock for timestamps. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  port?: number;
  host?: string;
  logger?: Logger;
}

export interface EnRelay {
  url: string;
  /** Where Activity Tracker events go (the Key Protect emulator's webhook). */
  ingestUrl: string;
  stats(): RelayStats;
  /** The latest notifications built (up to 50), as sent: what the destination receives. */
  sent(): unknown[];
  /** The destination as Event Notifications shows it: sensitive header values hidden. */
  describeDestination(): { url: string; headers: Record<string, string> } | undefined;
  setDestination(d: Destination | undefined): void;
  /** Ingests CADF events in process (same as POST /ingest). */
  ingest(events: unknown[]): void;
  /** Closes the open window now (evaluates it) and waits for every delivery in flight. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A string over `max` characters is cut and "..." appended, the whole staying within `max` (the stricter reading). */
export function cutString(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}

/**
 * The log example as Cloud Logs sends it: the log itself when its JSON fits in 1,000 characters, otherwise a
 * string holding the first part of the log followed by "..." (and `log_example_truncated: true`).
 */
export function logExampleOf(log: unknown): { log_example: unknown; log_example_truncated?: true } {
  const text = JSON.stringify(log);
  if (text.length <= LIMITS.logExample) return { log_example: log };
  return { log_example: cutString(text, LIMITS.logExample), log_example_truncated: true };
}

/** Delay before retry `n` (0-based): 1, 2, 4 … s capped at 10 s, or the destination's `Retry-After` (seconds). */
export function retryDelayMs(n: number, policy: RetryPolicy, retryAfter?: string | null): number {
  const seconds = retryAfter ? Number(retryAfter) : Number.NaN;
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(policy.maxDelayMs, Math.round(seconds * 1000));
  return Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** n);
}

interface Window {
  count: number;
  latest: { log: unknown; atMs: number };
  timer: NodeJS.Timeout;
}

/** Starts the relay on 127.0.0.1. */
export async function startEnRelay(o: EnRelayOptions): Promise<EnRelay> {
  const log = o.logger ?? silentLogger;
  const policy: RetryPolicy = { ...EN_RETRY_POLICY, ...(o.retry ?? {}) };
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const instanceId = o.instanceId ?? randomUUID();
  const sourceCrn = `crn:v1:bluemix:public:logs:${o.region}:a/${o.accountId}:${instanceId}::`;
  const dashboard = `https://dashboard.${o.region}.logs.cloud.ibm.com/${instanceId}/#`;
  let destination = o.destination;
  const stats: RelayStats = {
    ingested: 0,
    matched: 0,
    notifications: 0,
    triggered: 0,
    resolved: 0,
    delivered: 0,
    retried: 0,
    dropped: 0,
    delaysMs: [],
  };
  const inFlight = new Set<Promise<void>>();
  const sent: unknown[] = [];
  let open: Window | undefined;
  let quiet: NodeJS.Timeout | undefined;
  let firing = false;
  let closed = false;

  const alertType = 'StandardMoreThanAlertEvent';
  const notification = (status: 'triggered' | 'resolved', example?: Window['latest']) => {
    const atMs = now();
    const time = new Date(atMs).toISOString().replace('Z', '000Z');
    const name = cutString(o.alert.name, LIMITS.name);
    const severity = o.alert.severity ?? 'WARNING';
    return {
      specversion: '1.0',
      id: `${randomUUID()}_${randomUUID()}`,
      source: sourceCrn,
      ibmensourceid: sourceCrn,
      type: `com.ibm.cloud.logs.${alertType}:${status === 'triggered' ? 'AlertTriggered' : 'AlertResolved'}`,
      time,
      datacontenttype: 'application/json',
      notification_id: randomUUID(),
      ibmendefaultshort: `${severity} - ${name}`,
      ibmendefaultlong: `${status === 'triggered' ? 'Triggered' : 'Resolved'}: ${time}`,
      ibmenseverity: severity === 'CRITICAL' || severity === 'ERROR' ? 'high' : 'info',
      data: {
        alert_definition: {
          alert_type: alertType,
          condition: {
            MoreThan: { condition_threshold: 0, condition_timeframe: Math.ceil(o.alert.windowMs / 60_000) },
          },
          description: cutString(o.alert.description ?? '', LIMITS.description),
          id: o.alert.id,
          meta_labels: {},
          name,
          query_statement: cutString(o.alert.queryStatement, LIMITS.queryStatement),
          severity,
        },
        latest_event_timestamp: example?.atMs ?? atMs,
        links: {
          edit_alert: `${dashboard}/alerts/${o.alert.id}`,
          view_alert: `${dashboard}/insights?id=${randomUUID()}`,
        },
        ...(example ? logExampleOf(example.log) : {}),
        meta_labels_truncated: false,
        status,
      },
    };
  };

  /** Event Notifications' delivery: 1 + 3 attempts, 10 s each, exponential delay or Retry-After, then dropped. */
  const deliver = async (body: unknown): Promise<void> => {
    const dest = destination;
    if (!dest) {
      stats.dropped++;
      return;
    }
    const text = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      let retryAfter: string | null = null;
      try {
        const res = await fetch(dest.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(dest.headers ?? {}), ...(dest.sensitiveHeaders ?? {}) },
          body: text,
          signal: AbortSignal.timeout(policy.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) {
          stats.delivered++;
          return;
        }
        retryAfter = res.headers.get('retry-after');
        log.debug('en-relay: destination answered', { status: res.status, attempt });
      } catch (err) {
        log.debug('en-relay: destination unreachable', { attempt, error: (err as Error).name });
      }
      if (attempt >= policy.retries || closed) {
        stats.dropped++;
        log.warn('en-relay: notification dropped after the last retry', { attempts: attempt + 1 });
        return;
      }
      const delay = retryDelayMs(attempt, policy, retryAfter);
      stats.retried++;
      stats.delaysMs.push(delay);
      await sleep(delay);
    }
  };

  const send = (status: 'triggered' | 'resolved', example?: Window['latest']) => {
    stats.notifications++;
    stats[status]++;
    const body = notification(status, example);
    sent.push(body);
    if (sent.length > 50) sent.shift();
    const p = deliver(body).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  const closeWindow = () => {
    const w = open;
    if (!w) return;
    open = undefined;
    clearTimeout(w.timer);
    if (w.count === 0) return;
    firing = true;
    send('triggered', w.latest);
    // A following window without a match resolves the alert.
    clearTimeout(quiet);
    quiet = setTimeout(() => {
      quiet = undefined;
      if (firing && !open && !closed) {
        firing = false;
        send('resolved');
      }
    }, o.alert.windowMs);
    quiet.unref();
  };

  const ingest = (events: unknown[]) => {
    for (const e of events) {
      stats.ingested++;
      const action = e && typeof e === 'object' ? (e as { action?: unknown }).action : undefined;
      if (typeof action !== 'string' || !o.alert.actions.includes(action)) continue;
      stats.matched++;
      if (!open) {
        clearTimeout(quiet);
        quiet = undefined;
        const timer = setTimeout(closeWindow, o.alert.windowMs);
        timer.unref();
        open = { count: 0, latest: { log: e, atMs: now() }, timer };
      }
      open.count++;
      open.latest = { log: e, atMs: now() };
    }
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'POST' && req.url === '/ingest') {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          ingest(Array.isArray(body) ? body : [body]);
          return reply(202, { accepted: true });
        } catch {
          return reply(400, { error: 'the body must be an Activity Tracker event (JSON) or an array of them' });
        }
      }
      if (req.method === 'GET' && req.url === '/__relay/stats') return reply(200, stats);
      if (req.method === 'POST' && req.url === '/__relay/flush') {
        void relay.flush().then(() => reply(200, stats));
        return;
      }
      reply(404, { error: 'not found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const relay: EnRelay = {
    url,
    ingestUrl: `${url}/ingest`,
    stats: () => ({ ...stats, delaysMs: [...stats.delaysMs] }),
    sent: () => structuredClone(sent),
    describeDestination: () =>
      destination && {
        url: destination.url,
        headers: {
          ...(destination.headers ?? {}),
          ...Object.fromEntries(Object.keys(destination.sensitiveHeaders ?? {}).map((k) => [k, '********'])),
        },
      },
    setDestination: (d) => {
      destination = d;
    },
    ingest,
    async flush() {
      closeWindow();
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    async close() {
      closed = true;
      if (open) clearTimeout(open.timer);
      clearTimeout(quiet);
      // Deliveries still waiting for a retry give up when they wake (closed): nothing waits up to 10 s here.
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return relay;
}

/** The alert lockstep's deployment guide sets up: every Key Protect action that changes a member. */
export function memberActionsAlert(actions: readonly string[], windowMs: number): AlertDefinition {
  return {
    id: 'lockstep-kms-member-actions',
    name: 'lockstep: Key Protect member actions',
    description: 'Wakes lockstep to verify its key groups',
    queryStatement: `action:(${actions.map((a) => `"${a}"`).join(' OR ')})`,
    actions,
    windowMs,
    severity: 'WARNING',
  };
}
