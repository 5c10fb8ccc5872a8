/**
 * The store contract with credentials, as against a real Cloudant: the embedded server behind a small gate that, like
 * Cloudant and CouchDB, answers 401 to any request without valid credentials — an IAM bearer token from the local IAM
 * (what `CLOUDANT_APIKEY` makes the SDK send) or HTTP basic auth (`CLOUDANT_USERNAME`/`CLOUDANT_PASSWORD`, a plain
 * CouchDB). The configuration goes through `storeConfigFromEnv`, the same path as `contract.cloudant.test.ts` and the
 * functions; only the URL and the credentials differ from a real instance.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../../src/local/couch/index.js';
import { createIamTokenVerifier, type LocalIam, startLocalIam } from '../../../src/local/iam/index.js';
import { createCloudantStores, storeConfigFromEnv } from '../../../src/store/index.js';
import { describeStoreContract } from './contract.js';
import { testPrefix } from './fixtures.js';

const BASIC_USER = 'lockstep-contract';
const BASIC_PASSWORD = 'correct horse battery staple';

let couch: EmbeddedCouch;
let iam: LocalIam;
let gate: Server;
let gateUrl: string;
const seen = { forwarded: 0, refused: 0, bearer: 0, basic: 0 };

beforeAll(async () => {
  couch = await startEmbeddedCouch();
  iam = await startLocalIam();
  const verifier = createIamTokenVerifier({ jwksUrl: iam.jwksUrl, issuer: iam.issuer });
  const upstream = new URL(couch.url);
  const basic = `Basic ${Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64')}`;
  gate = createServer(async (req, res) => {
    const auth = req.headers.authorization ?? '';
    let ok = false;
    if (auth.startsWith('Bearer ')) {
      ok = await verifier.verify(auth.slice(7)).then(
        () => true,
        () => false,
      );
      if (ok) seen.bearer++;
    } else if (auth === basic) {
      ok = true;
      seen.basic++;
    }
    if (!ok) {
      seen.refused++;
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'unauthorized', reason: 'Name or password is incorrect.' }));
      return;
    }
    seen.forwarded++;
    // The gate answers for the caller's credentials; the embedded server behind it requires its own.
    const { authorization: _dropped, host: _host, ...rest } = req.headers;
    const headers = { ...rest, authorization: couch.authorization };
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((ok) => gate.listen(0, '127.0.0.1', ok));
  gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((ok) => gate?.close(() => ok()));
  await iam?.close();
  await couch?.close();
});

// The whole contract with an IAM API key, as lockstep talks to IBM Cloudant.
describeStoreContract('iam-apikey', async () => {
  const cfg = storeConfigFromEnv({
    CLOUDANT_URL: gateUrl,
    CLOUDANT_APIKEY: iam.apiKeyFor('lockstep'),
    IAM_URL: iam.url,
  });
  expect(cfg.auth).toBe('iam-apikey');
  return { url: cfg.url, authenticator: cfg.authenticator, timeoutMs: 10_000 };
});

describe('store credentials against the gate', () => {
  const stores = async (env: Record<string, string>) => {
    const cfg = storeConfigFromEnv({ CLOUDANT_URL: gateUrl, ...env });
    return createCloudantStores({ ...cfg, dbPrefix: testPrefix('cred'), timeoutMs: 10_000 });
  };

  it('sent a verified IAM token with every request of the contract above', () => {
    expect(seen.bearer).toBeGreaterThan(50);
    expect(seen.forwarded).toBe(seen.bearer + seen.basic);
  });

  it('works with basic auth (a plain CouchDB) and cleans up', async () => {
    const s = await stores({ CLOUDANT_USERNAME: BASIC_USER, CLOUDANT_PASSWORD: BASIC_PASSWORD });
    const before = seen.basic;
    await s.ensureSetup();
    expect(await s.groups.find('nothing-here' as never)).toBeUndefined();
    expect(seen.basic).toBeGreaterThan(before);
    for (const db of Object.values(s.databases)) await s.client.deleteDatabase({ db });
  });

  it.each([
    ['a wrong password', () => ({ CLOUDANT_USERNAME: BASIC_USER, CLOUDANT_PASSWORD: 'wrong' }), /Cloudant refused/],
    ['an API key IAM does not know', () => ({ CLOUDANT_APIKEY: 'not-a-key', IAM_URL: iam.url }), /BXNIM0415E/],
  ])('turns %s into CONFIG_INVALID and writes nothing', async (_case, env, message) => {
    const forwarded = seen.forwarded;
    const s = await stores(env());
    await expect(s.ensureSetup()).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(message),
    });
    expect(seen.forwarded).toBe(forwarded);
  });
});
