/** Snapshot across restarts (encrypted), reset, admin instance creation, Prefer on delete. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { b64, expectKpError, json, keyBody, sdkFor } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kp-emu-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ACCOUNT = 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5';

describe('snapshot', () => {
  it('restores keys, versions and the clock after a restart; the file holds no plain material', async () => {
    // Arrange
    const file = join(dir, 'state.json');
    const opts = { regions: ['us-south'], accountId: ACCOUNT, snapshotFile: file, snapshotKey: 'test-passphrase' };
    const material = randomBytes(32);
    let stack: EmulatorStack | undefined = await startEmulatorStack(opts);
    const inst = stack.kp.regions['us-south']!.instances[0]!;
    let sdk = sdkFor(stack.iam, stack.kp.regions['us-south']!.url);
    const created = await sdk.createKey({
      bluemixInstance: inst,
      body: keyBody({ name: 'persist', aliases: ['persist'], payload: b64(material) }),
    });
    const id = (created.result as { resources: Array<{ id: string }> }).resources[0]!.id;
    const wrapped = (
      await sdk.wrapKey({ bluemixInstance: inst, id, keyActionWrapBody: json({ plaintext: b64(Buffer.from('dek')) }) })
    ).result as {
      ciphertext: string;
    };
    stack.kp.advanceClock(5_000_000);
    const clockBefore = stack.kp.nowMs();
    await stack.close();
    stack = undefined;
    // Assert the file
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(b64(material));
    expect(text).not.toContain('persist');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // Act: restart
    const again = await startEmulatorStack(opts);
    try {
      expect(again.kp.regions['us-south']!.instances).toEqual([inst]);
      expect(again.kp.nowMs()).toBeGreaterThanOrEqual(clockBefore);
      sdk = sdkFor(again.iam, again.kp.regions['us-south']!.url);
      const meta = (await sdk.getKeyMetadata({ bluemixInstance: inst, id: 'persist' })).result as {
        resources: Array<{ id: string }>;
      };
      expect(meta.resources[0]!.id).toBe(id);
      const u = (
        await sdk.unwrapKey({
          bluemixInstance: inst,
          id,
          keyActionUnwrapBody: json({ ciphertext: wrapped.ciphertext }),
        })
      ).result as {
        plaintext: string;
      };
      expect(Buffer.from(u.plaintext, 'base64').toString()).toBe('dek');
    } finally {
      await again.close();
    }
    // a wrong passphrase starts empty
    const wrong = await startEmulatorStack({ ...opts, snapshotKey: 'other' });
    try {
      expect(wrong.kp.regions['us-south']!.instances).not.toContain(inst);
    } finally {
      await wrong.close();
    }
  });
});

describe('reset and admin', () => {
  it('reset empties instances, keeps start-up instance ids, drops later ones, clears events and rules', async () => {
    const stack = await startEmulatorStack({ regions: ['eu-de'], rules: { rotationMinIntervalMs: 1000 } });
    try {
      const inst = stack.kp.regions['eu-de']!.instances[0]!;
      const sdk = sdkFor(stack.iam, stack.kp.regions['eu-de']!.url);
      const created = await sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 'gone' }) });
      const id = (created.result as { resources: Array<{ id: string }> }).resources[0]!.id;
      const added = (await (
        await fetch(`${stack.kp.adminUrl}/__emulator/instances`, {
          method: 'POST',
          body: JSON.stringify({ region: 'eu-de' }),
        })
      ).json()) as { instanceId: string; url: string };
      expect(added.url).toBe(stack.kp.regions['eu-de']!.url);
      expect((await sdk.getKeys({ bluemixInstance: added.instanceId })).status).toBe(200);
      stack.kp.setRules({ rotationMinIntervalMs: 5 });
      stack.kp.advanceClock(10_000);
      // Act
      expect((await fetch(`${stack.kp.adminUrl}/__emulator/reset`, { method: 'POST' })).status).toBe(204);
      // Assert
      expect(stack.kp.regions['eu-de']!.instances).toEqual([inst]);
      await expectKpError(sdk.getKey({ bluemixInstance: inst, id }), 404, 'KEY_NOT_FOUND_ERR');
      expect(stack.kp.events({ action: 'kms.secrets.create' })).toEqual([]);
      expect(stack.kp.rules().rotationMinIntervalMs).toBe(1000);
      const state = (await (await fetch(`${stack.kp.adminUrl}/__emulator/state`)).json()) as { accountId: string };
      expect(state.accountId).toBe(stack.kp.accountId);
    } finally {
      await stack.close();
    }
  });

  it('DELETE with Prefer: return=representation answers 200 with the deleted key', async () => {
    const stack = await startEmulatorStack({ regions: ['eu-es'] });
    try {
      const inst = stack.kp.regions['eu-es']!.instances[0]!;
      const sdk = sdkFor(stack.iam, stack.kp.regions['eu-es']!.url);
      const created = await sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 'd' }) });
      const id = (created.result as { resources: Array<{ id: string }> }).resources[0]!.id;
      const r = await sdk.deleteKey({ bluemixInstance: inst, id, prefer: 'return=representation' });
      expect(r.status).toBe(200);
      expect((r.result as { resources: Array<{ state: number; deleted: boolean }> }).resources[0]).toMatchObject({
        state: 5,
        deleted: true,
      });
    } finally {
      await stack.close();
    }
  });
});
