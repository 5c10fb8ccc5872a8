/** `lockstep emulator`: starts IAM + the Key Protect emulator, reports endpoints and keys, stops on Ctrl-C. */
import { connect } from 'node:net';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/cli.js';

const portOpen = (url: string) =>
  new Promise<boolean>((done) => {
    const u = new URL(url);
    const s = connect(Number(u.port), u.hostname);
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });

describe('lockstep emulator', () => {
  it('prints endpoints and API keys as JSON, serves the IBM SDK, and frees its ports on interrupt', async () => {
    // Arrange
    let out = '';
    let stop!: (s: string) => void;
    const interrupted = new Promise<string>((r) => {
      stop = r;
    });
    let ready!: () => void;
    const printed = new Promise<void>((r) => {
      ready = r;
    });
    const exit = runCli(['--json', 'emulator', '--regions', 'us-south,eu-de'], {
      stdout: (s) => {
        out += s;
        ready();
      },
      stderr: () => {},
      env: {},
      cwd: process.cwd(),
      isTty: false,
      interrupted,
    });
    // Act
    await printed;
    const doc = JSON.parse(out) as {
      iam: { url: string };
      keyProtect: Record<string, { url: string; instanceIds: string[] }>;
      apiKeys: Record<string, string>;
    };
    const region = doc.keyProtect['us-south']!;
    const sdk = new KeyProtectV2({
      authenticator: new IamAuthenticator({ apikey: doc.apiKeys.operator!, url: doc.iam.url }),
      serviceUrl: region.url,
    });
    const keys = await sdk.getKeys({ bluemixInstance: region.instanceIds[0]! });
    stop('SIGINT');
    // Assert
    expect(Object.keys(doc.keyProtect)).toEqual(['us-south', 'eu-de']);
    expect(Object.keys(doc.apiKeys)).toEqual(expect.arrayContaining(['operator', 'auditor', 'lockstep']));
    expect(keys.status).toBe(200);
    expect(await exit).toBe(0);
    for (const u of [doc.iam.url, region.url, doc.keyProtect['eu-de']!.url]) expect(await portOpen(u)).toBe(false);
  });

  it('rejects a bad region list with exit 2', async () => {
    let err = '';
    const code = await runCli(['emulator', '--regions', 'us-south,Mars'], {
      stdout: () => {},
      stderr: (s) => {
        err += s;
      },
      env: {},
      cwd: process.cwd(),
      isTty: false,
      interrupted: new Promise(() => {}),
    });
    expect(code).toBe(2);
    expect(err).toMatch(/flag --regions: "Mars" is not a region/);
  });
});
