/**
 * The retry policy over real HTTP, with faults injected by the emulator: idempotent calls are retried (Retry-After
 * honoured up to the cap), create and rotate are sent exactly once and an ambiguous failure says so.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo, KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import type { RegionId } from '../../../src/core/index.js';
import type { Sleep } from '../../../src/keyprotect/index.js';
import { type ClientStack, newMaterial, startClientStack, type TapProxy } from './support.js';

const SOUTH = 'us-south' as RegionId;
const ROTATE = /\/actions\/rotate$/;

describe('retry policy against injected faults', () => {
  let cs: ClientStack;
  let proxy: TapProxy;
  /** Plain-payload client: the tests here are about retries, not secure import (saves RSA-4096 token keys). */
  let kp: KeyProtectPort;
  const sleeps: number[] = [];
  /** Really waits (so Retry-After is honoured on the wire) and records how long. */
  const recordingSleep: Sleep = (ms, signal) => {
    sleeps.push(ms);
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  };
  const faults = (f: Parameters<ClientStack['stack']['kp']['setFaults']>[1]) =>
    cs.stack.kp.setFaults({ region: SOUTH, instanceId: cs.instance(SOUTH) }, f);
  const newKey = (name: string) =>
    kp.createImportedKey({ region: SOUTH, instanceId: cs.instance(SOUTH), name, material: newMaterial().material });

  beforeAll(async () => {
    cs = await startClientStack([SOUTH]);
    proxy = cs.proxies[SOUTH]!;
    kp = cs.client({ useImportToken: false, sleep: recordingSleep });
  });

  afterEach(() => {
    cs.stack.kp.clearFaults();
    proxy.hooks = {};
    sleeps.length = 0;
  });

  afterAll(async () => {
    await cs?.close();
  });

  describe('idempotent calls', () => {
    let key: KeyInfo;
    let ref: KeyRef;
    beforeAll(async () => {
      key = await newKey('retry-reads');
      ref = cs.refOf(SOUTH, key);
    });

    it('retries a GET answered 429 with Retry-After, waiting exactly what the server asked', async () => {
      faults({ throttleRate: 1, retryAfterSeconds: 1, remaining: 2 });
      const gets = proxy.count('GET', new RegExp(`/keys/${key.id}/metadata$`));
      expect((await kp.getKey(ref, { correlationId: 'it-429' })).id).toBe(key.id);
      expect(proxy.count('GET', new RegExp(`/keys/${key.id}/metadata$`)) - gets).toBe(3);
      expect(sleeps).toEqual([1000, 1000]);
      const retries = cs.log.lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'kp call retry' && l.correlationId === 'it-429');
      expect(retries.map((l) => [l.code, l.delayMs])).toEqual([
        ['UPSTREAM_RATE_LIMITED', 1000],
        ['UPSTREAM_RATE_LIMITED', 1000],
      ]);
    });

    it('retries listVersions after a 503 with jittered backoff', async () => {
      faults({ errorRate: 1, errorStatus: 503, remaining: 1 });
      expect(await kp.listVersions(ref)).toHaveLength(1);
      expect(sleeps).toHaveLength(1);
      expect(sleeps[0]).toBeGreaterThanOrEqual(100);
      expect(sleeps[0]).toBeLessThanOrEqual(200);
    });

    it('retries unwrap (a POST, but idempotent) after a connection reset', async () => {
      const dek = randomBytes(32);
      const { ciphertext } = await kp.wrap(ref, dek, []);
      faults({ outage: 'reset', remaining: 1 });
      expect((await kp.unwrap(ref, ciphertext, [])).plaintext.equals(dek)).toBe(true);
      expect(sleeps).toHaveLength(1);
    });

    it('gives up at once when Retry-After exceeds the cap, and reports how long the server asked for', async () => {
      faults({ throttleRate: 1, retryAfterSeconds: 30, remaining: 1 });
      const gets = proxy.count('GET', new RegExp(`/keys/${key.id}/metadata$`));
      await expect(kp.getKey(ref)).rejects.toMatchObject({
        code: 'UPSTREAM_RATE_LIMITED',
        retryable: true,
        details: { status: 429, retryAfterMs: 30_000, operation: 'getKey', region: SOUTH },
      });
      expect(proxy.count('GET', new RegExp(`/keys/${key.id}/metadata$`)) - gets).toBe(1);
      expect(sleeps).toEqual([]);
    });

    it('stops after maxAttempts (4) with UPSTREAM_UNAVAILABLE', async () => {
      faults({ errorRate: 1, errorStatus: 502 });
      const gets = proxy.count('GET', new RegExp(`/keys/${key.id}/metadata$`));
      await expect(kp.getKey(ref)).rejects.toMatchObject({
        code: 'UPSTREAM_UNAVAILABLE',
        retryable: true,
        details: { status: 502, kpCode: 'INTERNAL_SERVER_ERR' },
      });
      expect(proxy.count('GET', new RegExp(`/keys/${key.id}/metadata$`)) - gets).toBe(4);
      expect(sleeps).toHaveLength(3);
    });

    it('stops when the caller aborts: DEADLINE_EXCEEDED, no retry', async () => {
      faults({ latencyMs: 2_000 });
      await expect(kp.getKey(ref, { signal: AbortSignal.timeout(200) })).rejects.toMatchObject({
        code: 'DEADLINE_EXCEEDED',
      });
      expect(sleeps).toEqual([]);
    });
  });

  describe('create and rotate are never retried blindly', () => {
    it('rotate (secure import) hitting a 5xx is sent once and reported ambiguous; the import-token calls were fine', async () => {
      const key = await newKey('rotate-5xx');
      const ref = cs.refOf(SOUTH, key);
      const secure = cs.client({ sleep: recordingSleep }); // default: secure import
      proxy.hooks.onResponse = ({ method, path }, res) => {
        // the instance fails right after the token was read: the rotate gets the 503
        if (method === 'GET' && path === '/api/v2/import_token' && res.status === 200) {
          faults({ errorRate: 1, errorStatus: 503, remaining: 1 });
        }
        return undefined;
      };
      const rotates = proxy.count('POST', ROTATE);
      await expect(secure.rotateWithMaterial(ref, newMaterial().material)).rejects.toMatchObject({
        code: 'UPSTREAM_UNAVAILABLE',
        details: { status: 503, operation: 'rotate', ambiguous: true, region: SOUTH },
      });
      expect(proxy.count('POST', ROTATE) - rotates).toBe(1);
      expect(sleeps).toEqual([]);
      // the caller decides by reading versions: here the rotation did not happen
      expect(await kp.listVersions(ref)).toHaveLength(1);
    });

    it('rotate whose connection is reset is sent once and reported ambiguous', async () => {
      const key = await newKey('rotate-reset');
      faults({ outage: 'reset', remaining: 1 });
      const rotates = proxy.count('POST', ROTATE);
      await expect(kp.rotateWithMaterial(cs.refOf(SOUTH, key), newMaterial().material)).rejects.toMatchObject({
        code: 'UPSTREAM_UNAVAILABLE',
        details: { status: null, operation: 'rotate', ambiguous: true },
      });
      expect(proxy.count('POST', ROTATE) - rotates).toBe(1);
    });

    it('rotate that times out is ambiguous — and may well have been applied, which listVersions shows', async () => {
      const key = await newKey('rotate-timeout');
      const ref = cs.refOf(SOUTH, key);
      const impatient = cs.client({ useImportToken: false, timeoutMs: 300, sleep: recordingSleep });
      faults({ latencyMs: 1_000, remaining: 1 });
      await expect(impatient.rotateWithMaterial(ref, newMaterial().material)).rejects.toMatchObject({
        code: 'UPSTREAM_UNAVAILABLE',
        details: { status: null, networkCode: 'ECONNABORTED', operation: 'rotate', ambiguous: true },
      });
      expect(sleeps).toEqual([]);
      // the emulator finishes the delayed rotate after the client gave up
      let versions = await kp.listVersions(ref);
      for (let i = 0; i < 30 && versions.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 100));
        versions = await kp.listVersions(ref);
      }
      expect(versions).toHaveLength(2);
      // re-sending blindly now would be refused by the one-rotation-per-hour rule
      await expect(kp.rotateWithMaterial(ref, newMaterial().material)).rejects.toMatchObject({
        code: 'ROTATION_TOO_SOON',
      });
    });

    it('a second rotation within the hour is ROTATION_TOO_SOON, not retryable, not ambiguous', async () => {
      const key = await newKey('rotate-too-soon');
      const ref = cs.refOf(SOUTH, key);
      await kp.rotateWithMaterial(ref, newMaterial().material);
      const rotates = proxy.count('POST', ROTATE);
      await expect(
        kp.rotateWithMaterial(ref, newMaterial().material, { correlationId: 'it-too-soon' }),
      ).rejects.toMatchObject({
        code: 'ROTATION_TOO_SOON',
        retryable: false,
        details: {
          kpCode: 'KEY_ROTATION_NOT_PERMITTED',
          status: 409,
          correlationId: 'it-too-soon',
          operation: 'rotate',
          ambiguous: false,
        },
      });
      expect(proxy.count('POST', ROTATE) - rotates).toBe(1);
      expect(await kp.listVersions(ref)).toHaveLength(2);
    });

    it('create hitting a 5xx is sent once and reported ambiguous', async () => {
      faults({ errorRate: 1, errorStatus: 500, remaining: 1 });
      const creates = proxy.count('POST', /\/api\/v2\/keys$/);
      await expect(newKey('create-5xx')).rejects.toMatchObject({
        code: 'UPSTREAM_UNAVAILABLE',
        details: { status: 500, operation: 'createKey', ambiguous: true },
      });
      expect(proxy.count('POST', /\/api\/v2\/keys$/) - creates).toBe(1);
      expect(sleeps).toEqual([]);
    });
  });
});
