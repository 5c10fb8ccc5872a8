/**
 * Test helpers for the emulator suites: the IBM SDK against the local stack, an independent secure-import sealer
 * (node:crypto RSA-OAEP-SHA256 + AES-GCM, written from §3.2 — not the product's module) and error assertions.
 */
import { constants, createCipheriv, publicEncrypt, randomBytes } from 'node:crypto';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import { expect } from 'vitest';
import type { LocalIam } from '../../../src/local/iam/index.js';

export type Sdk = InstanceType<typeof KeyProtectV2>;

/** The SDK for one region, authenticated through the local IAM with `identity`'s API key. */
export function sdkFor(iam: LocalIam, url: string, identity = 'operator'): Sdk {
  return new KeyProtectV2({
    authenticator: new IamAuthenticator({ apikey: iam.apiKeyFor(identity), url: iam.url }),
    serviceUrl: url,
  });
}

export const json = (o: unknown) => Buffer.from(JSON.stringify(o));
export const b64 = (b: Buffer) => b.toString('base64');

/** The create-key envelope. */
export function keyBody(resource: Record<string, unknown>) {
  return json({
    metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
    resources: [{ type: 'application/vnd.ibm.kms.key+json', extractable: false, ...resource }],
  });
}

/** §3.2 client side: RSA-OAEP-SHA256(material) and AES-GCM(key = material, iv12)(nonce). */
export function seal(token: { payload: string; nonce: string }, material: Buffer, opts: { iv?: Buffer } = {}) {
  const pem = Buffer.from(token.payload, 'base64').toString('utf8');
  const sealed = publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, material);
  const iv = opts.iv ?? randomBytes(12);
  const alg = material.length === 16 ? 'aes-128-gcm' : material.length === 24 ? 'aes-192-gcm' : 'aes-256-gcm';
  const cipher = createCipheriv(alg, material, iv);
  const enc = Buffer.concat([cipher.update(Buffer.from(token.nonce, 'base64')), cipher.final(), cipher.getAuthTag()]);
  return {
    payload: b64(sealed),
    encryptedNonce: b64(enc),
    iv: b64(iv),
    encryptionAlgorithm: 'RSAES_OAEP_SHA_256',
  };
}

export interface KpErrorShape {
  status: number;
  code?: string;
  body: {
    metadata: { collectionType: string; collectionTotal: number };
    resources: Array<{
      errorMsg: string;
      reasons?: Array<{ code: string; message: string; status: number; moreInfo: string }>;
    }>;
  };
  headers: Record<string, string>;
}

/** Awaits a rejected SDK call and returns status, reason code and the parsed envelope. */
export async function kpError(p: Promise<unknown>): Promise<KpErrorShape> {
  try {
    await p;
  } catch (err) {
    const e = err as { status?: number; result?: unknown; body?: unknown; headers?: Record<string, string> };
    let body = (e.result ?? e.body) as unknown;
    if (body && typeof body === 'object' && Symbol.asyncIterator in body) {
      // Some SDK methods (restoreKey) ask for a stream response; the error body is then a stream too.
      const chunks: Buffer[] = [];
      for await (const c of body as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    } else if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        body = undefined; // no response (connection errors)
      }
    }
    const b = body as KpErrorShape['body'];
    return { status: e.status ?? 0, code: b?.resources?.[0]?.reasons?.[0]?.code, body: b, headers: e.headers ?? {} };
  }
  throw new Error('expected the call to fail');
}

/** Asserts a Key Protect error envelope with `status` and `code`. */
export async function expectKpError(p: Promise<unknown>, status: number, code: string): Promise<KpErrorShape> {
  const e = await kpError(p);
  expect({ status: e.status, code: e.code }).toEqual({ status, code });
  expect(e.body.metadata.collectionType).toBe('application/vnd.ibm.kms.error+json');
  expect(e.body.resources[0]?.errorMsg).toContain(code);
  expect(e.body.resources[0]?.reasons?.[0]?.status).toBe(status);
  return e;
}

/** A raw call (for what the 0.1.2 SDK cannot express: purge, allKeyStates, bad headers, no content type). */
export async function raw(
  url: string,
  path: string,
  init: { method?: string; token?: string; instance?: string; body?: string; headers?: Record<string, string> } = {},
) {
  const res = await fetch(`${url}/api/v2${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...(init.instance ? { 'bluemix-instance': init.instance } : {}),
      ...(init.headers ?? {}),
    },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
  };
}
