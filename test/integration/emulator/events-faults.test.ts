/**
 * Activity Tracker events (CADF shape, initiator, correlation id, severity) delivered to a webhook sink with retries,
 * and fault injection observed through IBM's SDK (429 + Retry-After, 5xx, outages, latency, rate limit).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CadfEvent, type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { b64, expectKpError, json, keyBody, kpError, type Sdk, sdkFor } from './helpers.js';

let stack: EmulatorStack;
let sink: Server;
let sinkUrl: string;
const received: CadfEvent[] = [];
let sinkFailuresLeft = 2;
let sdk: Sdk;
let inst: string;
let url: string;

beforeAll(async () => {
  sink = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (sinkFailuresLeft > 0) {
        sinkFailuresLeft--;
        res.writeHead(503).end();
        return;
      }
      received.push(JSON.parse(Buffer.concat(chunks).toString()) as CadfEvent);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/events`;
  stack = await startEmulatorStack({ regions: ['eu-gb', 'ca-tor'], eventWebhookUrl: sinkUrl });
  url = stack.kp.regions['eu-gb']!.url;
  inst = stack.kp.regions['eu-gb']!.instances[0]!;
  sdk = sdkFor(stack.iam, url);
});
afterAll(async () => {
  await stack?.close();
  await new Promise<void>((r) => sink.close(() => r()));
});

describe('Activity Tracker events', () => {
  it('emits create/rotate/delete with initiator, correlation id, target CRN, outcome and severity; delivered to the webhook', async () => {
    // Arrange
    const material = randomBytes(32);
    const operator = stack.iam.identities.find((i) => i.name === 'operator')!;
    // Act
    const created = await sdk.createKey({
      bluemixInstance: inst,
      correlationId: 'corr-create',
      body: keyBody({ name: 'evt', payload: b64(material) }),
    });
    const id = (created.result as { resources: Array<{ id: string }> }).resources[0]!.id;
    const next = randomBytes(32);
    await sdk.rotateKey({
      bluemixInstance: inst,
      id,
      correlationId: 'corr-rotate',
      keyActionRotateBody: json({ payload: b64(next) }),
    });
    await expectKpError(
      sdk.rotateKey({
        bluemixInstance: inst,
        id,
        correlationId: 'corr-rotate-2',
        keyActionRotateBody: json({ payload: b64(randomBytes(32)) }),
      }),
      409,
      'KEY_ROTATION_NOT_PERMITTED',
    );
    await sdk.deleteKey({ bluemixInstance: inst, id, correlationId: 'corr-delete' });
    await stack.kp.flushEvents();
    // Assert
    const crn = stack.kp.crnOf('eu-gb', inst, id);
    const mine = stack.kp.events({ targetCrn: crn });
    expect(mine.map((e) => [e.action, e.correlationId, e.outcome, e.reason.reasonCode, e.severity])).toEqual([
      ['kms.secrets.create', 'corr-create', 'success', 201, 'normal'],
      ['kms.secrets.rotate', 'corr-rotate', 'success', 204, 'warning'],
      ['kms.secrets.rotate', 'corr-rotate-2', 'failure', 409, 'warning'],
      ['kms.secrets.delete', 'corr-delete', 'success', 204, 'critical'],
    ]);
    for (const e of mine) {
      expect(e.initiator).toMatchObject({
        id: operator.iamId,
        name: 'operator',
        typeURI: 'service/security/account/serviceid',
      });
      expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(e.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\+0000$/);
      expect(e.requestData).toMatchObject({ instanceID: inst, requestURI: expect.stringContaining('/api/v2/keys') });
      expect(e.observer.name).toBe('ActivityTracker');
      expect(e.target.typeURI).toBe('kms/secrets');
    }
    expect(mine[0]!.responseData).toMatchObject({ keyId: id, keyState: 1, keyVersionId: expect.any(String) });
    expect(mine[0]!.requestData.keyType).toBe('root_key');
    expect(mine[3]!.responseData.keyState).toBe(5);
    expect(mine[2]!.reason.reasonForFailure).toContain('KEY_ROTATION_NOT_PERMITTED');
    // never material
    const all = JSON.stringify(stack.kp.events());
    expect(all).not.toContain(b64(material));
    expect(all).not.toContain(b64(next));
    // webhook got them despite two 503s at the start (retries with backoff)
    const delivered = received.filter((e) => e.target.id === crn).map((e) => e.correlationId);
    expect(delivered).toEqual(expect.arrayContaining(['corr-create', 'corr-rotate', 'corr-rotate-2', 'corr-delete']));
    // and through the admin route
    const admin = (await (
      await fetch(
        `${stack.kp.adminUrl}/__emulator/events?action=kms.secrets.rotate&targetCrn=${encodeURIComponent(crn)}`,
      )
    ).json()) as {
      events: CadfEvent[];
    };
    expect(admin.events.map((e) => e.correlationId)).toEqual(['corr-rotate', 'corr-rotate-2']);
  });

  it('generates a correlation id when none is sent', async () => {
    await sdk.getKeys({ bluemixInstance: inst });
    const last = stack.kp.events({ action: 'kms.secrets.list' }).at(-1)!;
    expect(last.correlationId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a dead webhook never breaks the API', async () => {
    stack.kp.setEventWebhook('http://127.0.0.1:9/unreachable');
    try {
      expect((await sdk.getKeys({ bluemixInstance: inst })).status).toBe(200);
    } finally {
      stack.kp.setEventWebhook(sinkUrl);
    }
  });
});

describe('fault injection (observed through the SDK)', () => {
  const other = () => stack.kp.regions['ca-tor']!;
  const otherSdk = () => sdkFor(stack.iam, other().url);

  it('429 with Retry-After, TOO_MANY_REQUESTS_ERR, only on the targeted instance', async () => {
    stack.kp.setFaults({ region: 'eu-gb', instanceId: inst }, { throttleRate: 1, retryAfterSeconds: 7 });
    try {
      const e = await expectKpError(sdk.getKeys({ bluemixInstance: inst }), 429, 'TOO_MANY_REQUESTS_ERR');
      expect(e.headers['retry-after']).toBe('7');
      expect((await otherSdk().getKeys({ bluemixInstance: other().instances[0]! })).status).toBe(200);
    } finally {
      stack.kp.clearFaults();
    }
  });

  it('the SDK retry honours a one-off 429 (remaining: 1) and then succeeds', async () => {
    const retrying = new KeyProtectV2({
      authenticator: new IamAuthenticator({ apikey: stack.iam.apiKeyFor('operator'), url: stack.iam.url }),
      serviceUrl: url,
    });
    retrying.enableRetries({ maxRetries: 2 });
    stack.kp.setFaults({ region: 'eu-gb' }, { throttleRate: 1, retryAfterSeconds: 1, remaining: 1 });
    const r = await retrying.getKeys({ bluemixInstance: inst });
    expect(r.status).toBe(200);
    stack.kp.clearFaults();
  });

  it('5xx at the configured status', async () => {
    stack.kp.setFaults({ region: 'eu-gb' }, { errorRate: 1, errorStatus: 502 });
    try {
      expect((await kpError(sdk.getKeys({ bluemixInstance: inst }))).status).toBe(502);
    } finally {
      stack.kp.clearFaults();
    }
  });

  it('per-instance rate limit (token bucket) → 429 with Retry-After', async () => {
    stack.kp.setFaults({ region: 'eu-gb', instanceId: inst }, { rateLimit: { requestsPerSecond: 0.001, burst: 2 } });
    try {
      await sdk.getKeys({ bluemixInstance: inst });
      await sdk.getKeys({ bluemixInstance: inst });
      const e = await expectKpError(sdk.getKeys({ bluemixInstance: inst }), 429, 'TOO_MANY_REQUESTS_ERR');
      expect(Number(e.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      stack.kp.clearFaults();
    }
  });

  it('outages: 503, reset, refused; cleared faults restore service', async () => {
    stack.kp.setFaults({ region: 'eu-gb' }, { outage: '503' });
    await expectKpError(sdk.getKeys({ bluemixInstance: inst }), 503, 'SERVICE_UNAVAILABLE_ERR');
    stack.kp.setFaults({ region: 'eu-gb' }, { outage: 'reset' });
    const reset = await kpError(sdk.getKeys({ bluemixInstance: inst }));
    expect(reset.status).toBe(0); // no response at all
    stack.kp.setFaults({ region: 'eu-gb' }, { outage: 'refuse' });
    const refused = await fetch(`${url}/api/v2/keys`).then(
      () => 'answered',
      (err: { cause?: { code?: string } }) => err.cause?.code,
    );
    expect(refused).toBe('ECONNREFUSED');
    stack.kp.clearFaults();
    expect((await sdk.getKeys({ bluemixInstance: inst })).status).toBe(200);
  });

  it('latency: a client timeout shorter than the injected latency fails; without the fault it succeeds', async () => {
    const impatient = new KeyProtectV2({
      authenticator: new IamAuthenticator({ apikey: stack.iam.apiKeyFor('operator'), url: stack.iam.url }),
      serviceUrl: url,
      timeout: 250,
    } as never);
    await impatient.getKeys({ bluemixInstance: inst }); // warms the IAM token
    stack.kp.setFaults({ region: 'eu-gb', instanceId: inst }, { latencyMs: 3000, latencyJitterMs: 10 });
    try {
      const e = await kpError(impatient.getKeys({ bluemixInstance: inst }));
      expect(e.status).toBe(0);
    } finally {
      stack.kp.clearFaults();
    }
    expect((await impatient.getKeys({ bluemixInstance: inst })).status).toBe(200);
  });

  it('round-trip latency: the region handles the request at once; every response leaves no earlier than the window', async () => {
    // Arrange
    const windowMs = 600;
    await sdk.getKeys({ bluemixInstance: inst }); // warms the IAM token
    stack.kp.setFaults({ region: 'eu-gb', instanceId: inst }, { roundTripMs: windowMs });
    const answered: string[] = [];
    const timed = async (name: string, call: () => Promise<unknown>) => {
      const t0 = performance.now();
      await call();
      answered.push(name);
      return performance.now() - t0;
    };
    try {
      // Act: a create (handler work: validation, AES, an event) and, 150 ms later, a light list
      const heavy = timed('create', () =>
        sdk.createKey({
          bluemixInstance: inst,
          correlationId: 'rt-create',
          body: keyBody({ name: 'rt', payload: b64(randomBytes(32)) }),
        }),
      );
      let created: CadfEvent[] = [];
      while (created.length === 0) {
        await new Promise((r) => setTimeout(r, 5));
        created = stack.kp.events({ correlationId: 'rt-create' });
      }
      // Assert: the key exists (its event is written) while the response is still held
      expect(created[0]!.outcome).toBe('success');
      expect(answered).toEqual([]);
      await new Promise((r) => setTimeout(r, 150));
      const light = timed('list', () => sdk.getKeys({ bluemixInstance: inst }));
      const [heavyMs, lightMs] = await Promise.all([heavy, light]);
      expect(heavyMs).toBeGreaterThanOrEqual(windowMs);
      expect(lightMs).toBeGreaterThanOrEqual(windowMs);
      expect(answered).toEqual(['create', 'list']);
    } finally {
      stack.kp.clearFaults();
    }
  });

  it('admin route: round-trip faults are set over HTTP; a bad fault spec is refused with 400 and changes nothing', async () => {
    const admin = stack.kp.adminUrl;
    const post = (faults: unknown) =>
      fetch(`${admin}/__emulator/faults`, { method: 'POST', body: JSON.stringify({ region: 'eu-gb', faults }) });
    try {
      for (const bad of [{ roundTripMs: -1 }, { roundTripJitterMs: 'ten' }, { latencyMs: -5 }, { errorRate: 2 }, 7]) {
        const r = await post(bad);
        expect(r.status).toBe(400);
        expect(((await r.json()) as { error: string }).error).toMatch(/^faults: /);
      }
      expect((await sdk.getKeys({ bluemixInstance: inst })).status).toBe(200);
      expect((await post({ roundTripMs: 300, roundTripJitterMs: 20 })).status).toBe(204);
      const t0 = performance.now();
      await sdk.getKeys({ bluemixInstance: inst });
      expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
    } finally {
      stack.kp.clearFaults();
    }
  });

  it('admin routes set and clear faults over HTTP', async () => {
    const admin = stack.kp.adminUrl;
    const set = await fetch(`${admin}/__emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ region: 'eu-gb', faults: { errorRate: 1, errorStatus: 500 } }),
    });
    expect(set.status).toBe(204);
    expect((await kpError(sdk.getKeys({ bluemixInstance: inst }))).status).toBe(500);
    expect((await fetch(`${admin}/__emulator/faults`, { method: 'DELETE' })).status).toBe(204);
    expect((await sdk.getKeys({ bluemixInstance: inst })).status).toBe(200);
    const before = stack.kp.nowMs();
    const adv = (await (
      await fetch(`${admin}/__emulator/clock/advance`, { method: 'POST', body: JSON.stringify({ ms: 7_200_000 }) })
    ).json()) as {
      nowMs: number;
    };
    expect(adv.nowMs - before).toBeGreaterThanOrEqual(7_200_000);
  });
});
