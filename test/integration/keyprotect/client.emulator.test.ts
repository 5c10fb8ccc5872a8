/**
 * The Key Protect client over real HTTP against the emulator and the local IAM (IamAuthenticator), through a
 * recording proxy: secure import, rotation, versions, wrap/unwrap, errors, authenticators, log hygiene.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { KeyInfo, KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import { cryptoRandom, systemClock } from '../../../src/app/index.js';
import { AppError, type KeyId, type RegionId } from '../../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../../src/keyprotect/index.js';
import { type ClientStack, newMaterial, startClientStack } from './support.js';

const SOUTH = 'us-south' as RegionId;
const EAST = 'us-east' as RegionId;

describe('Key Protect client ⇄ emulator', () => {
  let cs: ClientStack;
  let stack: ClientStack['stack'];
  let proxies: ClientStack['proxies'];
  let kp: KeyProtectPort;
  let log: ClientStack['log'];
  const secrets: string[] = [];
  let crDir: string;
  const instance = (region: RegionId) => cs.instance(region);
  const refOf = (region: RegionId, key: KeyInfo): KeyRef => cs.refOf(region, key);

  beforeAll(async () => {
    cs = await startClientStack([SOUTH, EAST]);
    ({ stack, proxies, kp, log } = cs);
    crDir = mkdtempSync(join(tmpdir(), 'lockstep-cr-'));
  });

  afterAll(async () => {
    await cs?.close();
    if (crDir) rmSync(crDir, { recursive: true, force: true });
  });

  it('fetches the import token before awaiting the caller: proceed=false or failed material sends no rotate', async () => {
    // Prepare
    const key = await kp.createImportedKey({
      region: SOUTH,
      instanceId: instance(SOUTH),
      name: 'overlap-crk',
      material: newMaterial(secrets).material,
    });
    const ref = refOf(SOUTH, key);
    const proxy = proxies[SOUTH]!;
    const tokenGets = () => proxy.count('GET', /\/import_token$/);
    const rotates = () => proxy.count('POST', new RegExp(`/keys/${key.id}/actions/rotate`));
    const [gets0, rotates0] = [tokenGets(), rotates()];
    let release!: (go: boolean) => void;
    const proceed = new Promise<boolean>((r) => {
      release = r;
    });

    // Act: the token round trips go out while `proceed` is still pending; then the caller says no
    const pending = kp.rotateWithMaterial(ref, newMaterial(secrets).material, { proceed });
    await vi.waitFor(() => expect(tokenGets()).toBe(gets0 + 1));
    release(false);

    // Assess
    expect(await pending).toBe(false);
    expect(rotates()).toBe(rotates0);
    expect(await kp.listVersions(ref)).toHaveLength(1);

    // Act + assess: material that never arrives (a failed escrow unwrap) fails the call without a rotate
    const failed = Promise.reject(new AppError('MATERIAL_MISMATCH', 'test: escrow does not match'));
    await expect(kp.rotateWithMaterial(ref, failed)).rejects.toMatchObject({ code: 'MATERIAL_MISMATCH' });
    expect(rotates()).toBe(rotates0);
    expect(await kp.listVersions(ref)).toHaveLength(1);
  });

  it('creates an imported key through secure import, rotates it with material, and reads it back', async () => {
    // Prepare
    const gen0 = newMaterial(secrets);
    const gen1 = newMaterial(secrets);
    const proxy = proxies[SOUTH]!;
    const before = proxy.exchanges.length;

    // Act: create through secure import
    const key = await kp.createImportedKey({
      region: SOUTH,
      instanceId: instance(SOUTH),
      name: 'orders-crk',
      description: 'lockstep integration test',
      aliases: ['orders-crk'],
      material: gen0.material,
    });

    // Assess: the wire carried a sealed import, never the plain material
    const created = proxy.exchanges.slice(before);
    expect(created.map((e) => `${e.method} ${e.path.split('?')[0]}`)).toEqual([
      'POST /api/v2/import_token',
      'GET /api/v2/import_token',
      'POST /api/v2/keys',
    ]);
    const createBody = JSON.parse(created[2]!.requestBody) as { resources: Record<string, unknown>[] };
    expect(createBody.resources[0]).toMatchObject({
      name: 'orders-crk',
      extractable: false,
      encryptionAlgorithm: 'RSAES_OAEP_SHA_256',
    });
    expect(Buffer.from(String(createBody.resources[0]!.payload), 'base64')).toHaveLength(512);
    expect(Buffer.from(String(createBody.resources[0]!.iv), 'base64')).toHaveLength(12);
    expect(Buffer.from(String(createBody.resources[0]!.encryptedNonce), 'base64')).toHaveLength(28);
    expect(created[2]!.requestBody).not.toContain(gen0.raw.toString('base64'));
    expect(key).toMatchObject({
      imported: true,
      extractable: false,
      deleted: false,
      state: 1,
      aliases: ['orders-crk'],
    });
    expect(key.lastRotateAtMs).toBeUndefined();
    expect(key.crn).toBe(stack.kp.crnOf(SOUTH, instance(SOUTH), key.id));

    const ref = refOf(SOUTH, key);
    const v0 = await kp.listVersions(ref);
    expect(v0.map((v) => v.id)).toEqual([key.currentVersionId]);

    const dek = randomBytes(32);
    const wrapped0 = await kp.wrap(ref, dek, ['tenant-1']);
    expect(wrapped0.keyVersionId).toBe(key.currentVersionId);

    // Act: rotate with new material (secure import again), with our correlation id
    await kp.rotateWithMaterial(ref, gen1.material, { correlationId: 'it-rotate-1' });

    // Assess
    const v1 = await kp.listVersions(ref);
    expect(v1).toHaveLength(2);
    expect(v1[1]!.id).toBe(key.currentVersionId);
    expect(v1[0]!.createdAtMs).toBeGreaterThanOrEqual(v1[1]!.createdAtMs);
    const after = await kp.getKey(ref);
    expect(after.currentVersionId).toBe(v1[0]!.id);
    expect(after.lastRotateAtMs).toBeDefined();
    const rotateEvents = stack.kp.events({ action: 'kms.secrets.rotate', correlationId: 'it-rotate-1' });
    expect(rotateEvents).toHaveLength(1);
    expect(rotateEvents[0]!.outcome).toBe('success');

    // an old ciphertext still unwraps, reports its version and comes back rewrapped under the new one
    const unwrapped = await kp.unwrap(ref, wrapped0.ciphertext, ['tenant-1']);
    expect(unwrapped.plaintext.equals(dek)).toBe(true);
    expect(unwrapped.keyVersionId).toBe(key.currentVersionId);
    expect(unwrapped.rewrappedKeyVersionId).toBe(after.currentVersionId);
    expect(unwrapped.rewrappedCiphertext).toBeDefined();
    const wrapped1 = await kp.wrap(ref, dek, ['tenant-1']);
    expect(wrapped1.keyVersionId).toBe(after.currentVersionId);

    // a wrong AAD does not unwrap
    await expect(kp.unwrap(ref, wrapped1.ciphertext, ['tenant-2'])).rejects.toMatchObject({
      code: 'MATERIAL_MISMATCH',
      details: { kpCode: 'UNPROCESSABLE_CIPHERTEXT_ERR', status: 422, region: SOUTH, operation: 'unwrap' },
    });
  });

  it('creates a generated root key (escrow) that wraps and unwraps', async () => {
    const key = await kp.createGeneratedRootKey({ region: EAST, instanceId: instance(EAST), name: 'lockstep-escrow' });
    expect(key).toMatchObject({ imported: false, extractable: false, state: 1 });
    const ref = refOf(EAST, key);
    const secret = randomBytes(32);
    const wrapped = await kp.wrap(ref, secret, ['group:g1', 'generation:1']);
    const back = await kp.unwrap(ref, wrapped.ciphertext, ['group:g1', 'generation:1']);
    expect(back.plaintext.equals(secret)).toBe(true);
  });

  it('accepts an import sealed by openssl pkeyutl (independent RSA-OAEP) that interoperates with ours', async () => {
    // Prepare: an import token read straight through the IBM SDK, as any other client would
    const sdk = new KeyProtectV2({
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: stack.iam.apiKeyFor('lockstep'),
        iamUrl: stack.iam.url,
      }),
      serviceUrl: stack.kp.regions[EAST]!.url,
    });
    const gen0 = newMaterial(secrets);
    await sdk.postImportToken({ bluemixInstance: instance(EAST), expiration: 600 });
    const token = (await sdk.getImportToken({ bluemixInstance: instance(EAST) })).result as {
      payload: string;
      nonce: string;
    };
    secrets.push(token.nonce);
    const pubPath = join(crDir, 'token.pem');
    writeFileSync(pubPath, Buffer.from(token.payload, 'base64'));
    // Act: seal the material with openssl, the nonce with a node one-off, create through the SDK
    const payload = execFileSync(
      '/usr/bin/openssl',
      [
        'pkeyutl',
        '-encrypt',
        '-pubin',
        '-inkey',
        pubPath,
        '-pkeyopt',
        'rsa_padding_mode:oaep',
        '-pkeyopt',
        'rsa_oaep_md:sha256',
        '-pkeyopt',
        'rsa_mgf1_md:sha256',
      ],
      { input: gen0.raw },
    );
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', gen0.raw, iv);
    const encryptedNonce = Buffer.concat([
      cipher.update(Buffer.from(token.nonce, 'base64')),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    const created = await sdk.createKey({
      bluemixInstance: instance(EAST),
      body: Buffer.from(
        JSON.stringify({
          metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
          resources: [
            {
              type: 'application/vnd.ibm.kms.key+json',
              name: 'sealed-by-openssl',
              extractable: false,
              payload: payload.toString('base64'),
              encryptedNonce: encryptedNonce.toString('base64'),
              iv: iv.toString('base64'),
              encryptionAlgorithm: 'RSAES_OAEP_SHA_256',
            },
          ],
        }),
      ),
    });
    // Assess: the emulator accepted it, and our own sealed import of the same material is interchangeable with it
    const opensslKey = (created.result as { resources: { id: KeyId }[] }).resources[0]!.id;
    const ours = await kp.createImportedKey({
      region: SOUTH,
      instanceId: instance(SOUTH),
      name: 'sealed-by-us',
      material: gen0.material,
    });
    const dek = randomBytes(32);
    const wrapped = await kp.wrap({ region: EAST, instanceId: instance(EAST), keyId: opensslKey }, dek, []);
    expect((await kp.unwrap(refOf(SOUTH, ours), wrapped.ciphertext, [])).plaintext.equals(dek)).toBe(true);
  });

  it("useImportToken 'auto' uses secure import when offered and falls back to a plain payload only without it", async () => {
    const proxy = proxies[SOUTH]!;
    const auto = cs.client({ useImportToken: 'auto' });
    const tokens = proxy.count('POST', /\/import_token$/);
    await auto.createImportedKey({
      region: SOUTH,
      instanceId: instance(SOUTH),
      name: 'auto-secure',
      material: newMaterial(secrets).material,
    });
    expect(proxy.count('POST', /\/import_token$/) - tokens).toBe(1);
    expect(proxy.exchanges.at(-1)!.requestBody).toContain('encryptedNonce');

    // an instance without import tokens (the emulator always has them: the proxy answers 404 as such an instance would)
    proxy.hooks.answer = ({ method, path }) =>
      method === 'POST' && path === '/api/v2/import_token' ? { status: 404, body: Buffer.from('{}') } : undefined;
    try {
      const plain = newMaterial(secrets);
      const key = await auto.createImportedKey({
        region: SOUTH,
        instanceId: instance(SOUTH),
        name: 'auto-plain',
        material: plain.material,
      });
      expect(key.imported).toBe(true);
      expect(proxy.exchanges.at(-1)!.requestBody).toContain(plain.raw.toString('base64'));
      expect(log.lines.some((l) => l.includes('"level":"warn"') && l.includes('import tokens not offered'))).toBe(true);
      // the default (true) never downgrades
      await expect(
        kp.createImportedKey({
          region: SOUTH,
          instanceId: instance(SOUTH),
          name: 'never-plain',
          material: newMaterial(secrets).material,
        }),
      ).rejects.toMatchObject({ code: 'UPSTREAM_REJECTED', details: { status: 404, operation: 'postImportToken' } });
    } finally {
      proxy.hooks = {};
    }
  });

  it('maps a missing key to KEY_NOT_FOUND and an unknown region to VALIDATION_FAILED', async () => {
    const ref = { region: SOUTH, instanceId: instance(SOUTH), keyId: '00000000-0000-4000-8000-000000000000' } as KeyRef;
    await expect(kp.getKey(ref, { correlationId: 'it-missing' })).rejects.toMatchObject({
      code: 'KEY_NOT_FOUND',
      details: {
        kpCode: 'KEY_NOT_FOUND_ERR',
        status: 404,
        correlationId: 'it-missing',
        region: SOUTH,
        operation: 'getKey',
      },
    });
    await expect(kp.getKey({ ...ref, region: 'eu-de' as RegionId })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
  });

  it('rejects bad credentials as UNAUTHENTICATED: a revoked bearer token at Key Protect, a wrong API key at IAM', async () => {
    const key = await kp.createGeneratedRootKey({ region: SOUTH, instanceId: instance(SOUTH), name: 'auth-probe' });
    const endpoints = { [SOUTH]: proxies[SOUTH]!.url };
    const bearer = createKeyProtectClient({
      endpoints,
      authenticator: authenticatorFromConfig({ kind: 'bearer', token: 'not-a-jwt' }),
      random: cryptoRandom,
      clock: systemClock,
    });
    await expect(bearer.getKey(refOf(SOUTH, key))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      details: { status: 401, region: SOUTH, operation: 'getKey' },
    });
    const wrongKey = createKeyProtectClient({
      endpoints,
      authenticator: authenticatorFromConfig({ kind: 'iam', apiKey: 'wrong-api-key', iamUrl: stack.iam.url }),
      random: cryptoRandom,
      clock: systemClock,
    });
    const before = proxies[SOUTH]!.count('GET', /\/api\/v2\/keys\//);
    await expect(wrongKey.getKey(refOf(SOUTH, key))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      details: { upstream: 'iam', region: SOUTH, operation: 'getKey' },
    });
    expect(proxies[SOUTH]!.count('GET', /\/api\/v2\/keys\//)).toBe(before); // never reached Key Protect
  });

  it('authenticates with a trusted profile through a compute-resource token (ContainerAuthenticator)', async () => {
    const tokenFile = join(crDir, 'cr-token');
    writeFileSync(tokenFile, stack.iam.crToken, { mode: 0o600 });
    const container = createKeyProtectClient({
      endpoints: { [SOUTH]: proxies[SOUTH]!.url },
      authenticator: authenticatorFromConfig({
        kind: 'container',
        profileName: 'lockstep-profile',
        iamUrl: stack.iam.url,
        crTokenFilename: tokenFile,
      }),
      random: cryptoRandom,
      clock: systemClock,
    });
    const key = await container.createGeneratedRootKey({
      region: SOUTH,
      instanceId: instance(SOUTH),
      name: 'via-profile',
    });
    expect((await container.getKey(refOf(SOUTH, key))).id).toBe(key.id);
  });

  it('logs one debug line per upstream call with the correlation id, and never material, nonces or tokens', () => {
    // Prepare: every secret that crossed the wire in this file
    const wireSecrets = new Set(secrets);
    for (const proxy of Object.values(proxies)) {
      for (const e of proxy.exchanges) {
        if (e.path.startsWith('/api/v2/import_token') && e.method === 'GET' && e.status === 200) {
          const token = JSON.parse(e.responseBody) as { payload: string; nonce: string };
          wireSecrets.add(token.nonce);
          wireSecrets.add(Buffer.from(token.nonce, 'base64').toString('hex'));
          wireSecrets.add(token.payload.slice(0, 120));
          wireSecrets.add(token.payload.slice(-120));
        }
        for (const field of ['payload', 'encryptedNonce', 'iv', 'plaintext'] as const) {
          const m = new RegExp(`"${field}":"([^"]{8,})"`).exec(e.requestBody);
          if (m) wireSecrets.add(m[1]!);
        }
      }
    }
    expect(wireSecrets.size).toBeGreaterThan(15);
    expect(log.lines.length).toBeGreaterThan(15);

    // Assess
    for (const line of log.lines) {
      for (const secret of wireSecrets) {
        expect(line.includes(secret), `log line leaks a secret: ${line.slice(0, 200)}`).toBe(false);
      }
      expect(line).not.toMatch(/BEGIN PUBLIC KEY|eyJ[A-Za-z0-9_-]{20,}/); // no PEM, no JWT
    }
    const calls = log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'kp call');
    const rotate = calls.filter((l) => l.correlationId === 'it-rotate-1');
    expect(rotate.map((l) => l.operation)).toEqual(['postImportToken', 'getImportToken', 'rotate']);
    expect(rotate.every((l) => l.level === 'debug' && l.region === SOUTH && typeof l.durationMs === 'number')).toBe(
      true,
    );
  });
});
