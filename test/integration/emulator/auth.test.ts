/**
 * The local IAM with ibm-cloud-sdk-core's authenticators, and the emulator's bearer-token and instance checks:
 * expired and forged tokens (other key, tampered, alg none) get 401 without reasons.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { BearerTokenAuthenticator, ContainerAuthenticator, IamAuthenticator } from 'ibm-cloud-sdk-core';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalIam, startLocalIam } from '../../../src/local/iam/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { expectKpError, kpError, raw, sdkFor } from './helpers.js';

let stack: EmulatorStack;
let otherIam: LocalIam;
let url: string;
let inst: string;

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: ['us-south', 'us-east'] });
  otherIam = await startLocalIam();
  url = stack.kp.regions['us-south']!.url;
  inst = stack.kp.regions['us-south']!.instances[0]!;
});
afterAll(async () => {
  await stack?.close();
  await otherIam?.close();
});

const withBearer = (token: string) =>
  new KeyProtectV2({ authenticator: new BearerTokenAuthenticator({ bearerToken: token }), serviceUrl: url });

async function expect401(p: Promise<unknown>) {
  const e = await kpError(p);
  expect(e.status).toBe(401);
  expect(e.body.metadata.collectionType).toBe('application/vnd.ibm.kms.error+json');
  expect(e.body.resources[0]?.errorMsg).toMatch(/^Unauthorized/);
  expect(e.body.resources[0]).not.toHaveProperty('reasons');
}

describe('local IAM', () => {
  it('IamAuthenticator gets an RS256 JWT with IAM claims whose kid is in the JWKS', async () => {
    // Arrange
    const auth = new IamAuthenticator({ apikey: stack.iam.apiKeyFor('operator'), url: stack.iam.url });
    const request: { headers: Record<string, string> } = { headers: {} };
    // Act
    await auth.authenticate(request);
    // Assert
    const token = request.headers.Authorization!.replace(/^Bearer /, '');
    const claims = decodeJwt(token);
    const operator = stack.iam.identities.find((i) => i.name === 'operator')!;
    expect(claims).toMatchObject({
      iam_id: operator.iamId,
      id: operator.iamId,
      name: 'operator',
      iss: stack.iam.issuer,
      account: { bss: stack.iam.accountId },
      grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
      client_id: 'default',
    });
    expect(claims.exp! - claims.iat!).toBe(3600);
    const jwks = (await (await fetch(stack.iam.jwksUrl)).json()) as { keys: Array<{ kid: string; alg: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(token).kid);
    expect(decodeProtectedHeader(token).alg).toBe('RS256');
  });

  it('answers IAM errors: unknown API key → 400 BXNIM0415E, wrong grant type → 400', async () => {
    const post = (form: Record<string, string>) =>
      fetch(`${stack.iam.url}/identity/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
    const bad = await post({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: 'nope' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      errorCode: 'BXNIM0415E',
      errorMessage: expect.any(String),
      context: expect.any(Object),
    });
    const grant = await post({ grant_type: 'password', apikey: stack.iam.apiKeyFor('operator') });
    expect(grant.status).toBe(400);
    // the SDK surfaces the IAM failure
    const sdk = new KeyProtectV2({
      authenticator: new IamAuthenticator({ apikey: 'wrong', url: stack.iam.url }),
      serviceUrl: url,
    });
    await expect(sdk.getKeys({ bluemixInstance: inst })).rejects.toMatchObject({ status: 400 });
  });

  it('ContainerAuthenticator (Code Engine trusted profile, cr-token grant) works end to end', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cr-token-'));
    try {
      const file = join(dir, 'token');
      await writeFile(file, stack.iam.crToken);
      const sdk = new KeyProtectV2({
        authenticator: new ContainerAuthenticator({
          crTokenFilename: file,
          iamProfileName: 'lockstep-profile',
          url: stack.iam.url,
        }),
        serviceUrl: url,
      });
      const r = await sdk.getKeys({ bluemixInstance: inst });
      expect(r.status).toBe(200);
      const wrong = new ContainerAuthenticator({
        crTokenFilename: file,
        iamProfileName: 'operator',
        url: stack.iam.url,
      });
      await expect(wrong.authenticate({ headers: {} })).rejects.toBeTruthy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('emulator authentication', () => {
  it('accepts a valid token', async () => {
    expect((await withBearer(await stack.iam.issueToken('auditor')).getKeys({ bluemixInstance: inst })).status).toBe(
      200,
    );
  });

  it('rejects an expired token with 401', async () => {
    await expect401(
      withBearer(await stack.iam.issueToken('operator', { expiresInSeconds: -60 })).getKeys({ bluemixInstance: inst }),
    );
  });

  it('rejects a token signed by another key with 401', async () => {
    await expect401(withBearer(await otherIam.issueToken('operator')).getKeys({ bluemixInstance: inst }));
  });

  it('rejects a tampered token with 401', async () => {
    const [h, p, s] = (await stack.iam.issueToken('outsider')).split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, name: 'operator' })).toString('base64url');
    await expect401(withBearer(`${h}.${forged}.${s}`).getKeys({ bluemixInstance: inst }));
  });

  it('rejects alg none with 401', async () => {
    const p = (await stack.iam.issueToken('operator')).split('.')[1]!;
    const h = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    await expect401(withBearer(`${h}.${p}.`).getKeys({ bluemixInstance: inst }));
  });

  it('rejects a missing token with 401', async () => {
    const r = await raw(url, '/keys', { instance: inst });
    expect(r.status).toBe(401);
  });
});

describe('Bluemix-Instance', () => {
  it('missing → 400 BAD_HEADER_ERR', async () => {
    const r = await raw(url, '/keys', { token: await stack.iam.issueToken('operator') });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toContain('BAD_HEADER_ERR');
  });

  it('an instance of another region → 401 (default rule unknownInstanceStatus)', async () => {
    const sdk = sdkFor(stack.iam, url);
    const eastInstance = stack.kp.regions['us-east']!.instances[0]!;
    await expect401(sdk.getKeys({ bluemixInstance: eastInstance }));
    stack.kp.setRules({ unknownInstanceStatus: 404 });
    try {
      await expectKpError(sdk.getKeys({ bluemixInstance: eastInstance }), 404, 'INSTANCE_NOT_FOUND_ERR');
    } finally {
      stack.kp.setRules({ unknownInstanceStatus: 401 });
    }
  });

  it('createInstance adds a usable instance to a region', async () => {
    const id = stack.kp.createInstance('us-east');
    expect(stack.kp.regions['us-east']!.instances).toContain(id);
    const sdk = sdkFor(stack.iam, stack.kp.regions['us-east']!.url);
    expect((await sdk.getKeys({ bluemixInstance: id })).status).toBe(200);
  });
});
