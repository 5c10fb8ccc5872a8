/**
 * The Cloud Logs alert + Event Notifications relay stand-in, over HTTP: what a destination receives (payload shape,
 * one example per window, truncation as documented, resolved), and Event Notifications' delivery policy (3 retries,
 * 1–10 s exponential, Retry-After, per-request timeout, then dropped), custom and sensitive headers. Sources: README.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cutString,
  EN_RETRY_POLICY,
  type EnRelay,
  LIMITS,
  logExampleOf,
  memberActionsAlert,
  retryDelayMs,
  startEnRelay,
} from '../../../src/local/en-relay/index.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: Record<string, unknown> & { data: Record<string, unknown> };
}

/** A destination that answers with `answer(n)` for its n-th request (0-based) and records every request. */
async function destination(
  answer: (n: number) => { status: number; headers?: Record<string, string>; hang?: boolean },
) {
  const received: Received[] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const a = answer(n++);
      received.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      if (a.hang) return; // never answers: the sender's timeout decides
      res.writeHead(a.status, a.headers ?? {});
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

const cadf = (i: number, pad = 0) => ({
  id: `ev-${i}`,
  action: 'kms.secrets.rotate',
  eventTime: '2026-11-01T09:00:00.00+0000',
  target: {
    id: 'crn:v1:bluemix:public:kms:us-south:a/acc:11111111-1111-4111-8111-111111111111:key:22222222-2222-4222-8222-222222222222',
  },
  padding: 'x'.repeat(pad),
});

async function relayTo(
  url: string,
  o: { windowMs?: number; timeoutMs?: number; slept?: number[] } = {},
): Promise<EnRelay> {
  const relay = await startEnRelay({
    accountId: 'acc',
    region: 'us-south',
    alert: memberActionsAlert(['kms.secrets.rotate', 'kms.secrets.delete'], o.windowMs ?? 60_000),
    destination: { url, headers: { 'x-custom': 'c1' }, sensitiveHeaders: { 'x-lockstep-token': 'sEcReT-token' } },
    ...(o.timeoutMs ? { retry: { timeoutMs: o.timeoutMs } } : {}),
    sleep: async (ms) => {
      o.slept?.push(ms);
    },
  });
  open.push(relay);
  return relay;
}

describe('Cloud Logs alert payload', () => {
  it('cuts strings and the log example exactly as documented', () => {
    expect(cutString('a'.repeat(100), 100)).toBe('a'.repeat(100));
    expect(cutString('a'.repeat(101), 100)).toBe(`${'a'.repeat(97)}...`);
    const small = cadf(1);
    expect(logExampleOf(small)).toEqual({ log_example: small });
    const big = cadf(2, 2_000);
    const cut = logExampleOf(big);
    expect(cut.log_example_truncated).toBe(true);
    expect(typeof cut.log_example).toBe('string');
    expect((cut.log_example as string).length).toBe(LIMITS.logExample);
    expect(cut.log_example as string).toBe(`${JSON.stringify(big).slice(0, 997)}...`);
  });

  it('sends one notification per window with one (the latest) example, then resolved after a quiet window', async () => {
    const dest = await destination(() => ({ status: 200 }));
    open.push(dest);
    const relay = await relayTo(dest.url, { windowMs: 150 });
    const ingest = (events: unknown) =>
      fetch(relay.ingestUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(events),
      });
    expect((await ingest([cadf(1), { action: 'kms.secrets.wrap' }, cadf(2)])).status).toBe(202);
    expect((await ingest(cadf(3, 2_000))).status).toBe(202);
    await new Promise((r) => setTimeout(r, 400)); // the window closes, then a quiet window resolves
    await relay.flush();
    const [first, second] = dest.received;
    expect(dest.received).toHaveLength(2);
    expect(first!.body).toMatchObject({
      specversion: '1.0',
      type: 'com.ibm.cloud.logs.StandardMoreThanAlertEvent:AlertTriggered',
      source: expect.stringMatching(/^crn:v1:bluemix:public:logs:us-south:a\/acc:/),
      data: { status: 'triggered', log_example_truncated: true },
    });
    expect(first!.body.ibmensourceid).toBe(first!.body.source);
    expect(String(first!.body.id)).toMatch(/^[0-9a-f-]{36}_[0-9a-f-]{36}$/);
    expect(first!.body.data.log_example as string).toMatch(/"id":"ev-3".*\.\.\.$/);
    const def = first!.body.data.alert_definition as { query_statement: string };
    expect(def.query_statement.length).toBeLessThanOrEqual(100);
    expect(def.query_statement).toMatch(/^action:\("kms\.secrets\.rotate" OR "kms\.secrets\.delete"\)$/);
    expect(second!.body).toMatchObject({ data: { status: 'resolved' } });
    expect(second!.body.type).toMatch(/:AlertResolved$/);
    expect(relay.stats()).toMatchObject({ ingested: 4, matched: 3, triggered: 1, resolved: 1, delivered: 2 });
  });

  it('sends custom and sensitive headers on every attempt, and hides sensitive values when described', async () => {
    const dest = await destination((n) => ({ status: n === 0 ? 500 : 204 }));
    open.push(dest);
    const relay = await relayTo(dest.url);
    relay.ingest([cadf(1)]);
    await relay.flush();
    expect(dest.received).toHaveLength(2);
    for (const r of dest.received) {
      expect(r.headers['x-custom']).toBe('c1');
      expect(r.headers['x-lockstep-token']).toBe('sEcReT-token');
    }
    expect(relay.describeDestination()).toEqual({
      url: dest.url,
      headers: { 'x-custom': 'c1', 'x-lockstep-token': '********' },
    });
  });
});

describe('Event Notifications delivery', () => {
  it('retries 3 times with 1, 2, 4 s between attempts (any non-2xx), then drops', async () => {
    const dest = await destination((n) => ({ status: n % 2 ? 400 : 503 }));
    open.push(dest);
    const slept: number[] = [];
    const relay = await relayTo(dest.url, { slept });
    relay.ingest([cadf(1)]);
    await relay.flush();
    expect(dest.received).toHaveLength(1 + EN_RETRY_POLICY.retries);
    expect(slept).toEqual([1_000, 2_000, 4_000]);
    expect(relay.stats()).toMatchObject({ delivered: 0, retried: 3, dropped: 1 });
  });

  it('honours Retry-After (up to 10 s) and stops at the first 2xx', async () => {
    const dest = await destination((n) =>
      n < 2 ? { status: 429, headers: { 'retry-after': n === 0 ? '3' : '60' } } : { status: 202 },
    );
    open.push(dest);
    const slept: number[] = [];
    const relay = await relayTo(dest.url, { slept });
    relay.ingest([cadf(1)]);
    await relay.flush();
    expect(slept).toEqual([3_000, 10_000]);
    expect(relay.stats()).toMatchObject({ delivered: 1, dropped: 0 });
    expect(retryDelayMs(5, EN_RETRY_POLICY)).toBe(10_000);
  });

  it('gives each request its timeout: a destination that never answers is retried, then dropped', async () => {
    const dest = await destination(() => ({ status: 200, hang: true }));
    open.push(dest);
    const relay = await relayTo(dest.url, { timeoutMs: 100 });
    relay.ingest([cadf(1)]);
    await relay.flush();
    expect(dest.received).toHaveLength(4);
    expect(relay.stats()).toMatchObject({ delivered: 0, dropped: 1 });
  });

  it('refuses a body that is not JSON with 400', async () => {
    const dest = await destination(() => ({ status: 200 }));
    open.push(dest);
    const relay = await relayTo(dest.url);
    const r = await fetch(relay.ingestUrl, { method: 'POST', body: 'not json' });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toMatch(/Activity Tracker event/);
  });
});
