/**
 * An in-memory fake of the KeyProtectPort for unit tests of the runner (the integration tests use the real client
 * over HTTP against the emulator). It keeps Key Protect's documented semantics that the saga depends on: versions
 * newest first, one rotation per key per interval, imported keys need material, wrap/unwrap across keys work only
 * when both hold the material, unwrap reports the version holding it. Faults are injected per call.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomUUID } from 'node:crypto';
import type {
  CallOptions,
  CreateImportedKeyInput,
  KeyInfo,
  KeyProtectPort,
  KeyRef,
  KeyVersionInfo,
  RotateOptions,
  UnwrapResult,
  WrapResult,
} from '../../src/app/ports.js';
import {
  AppError,
  type Clock,
  formatKeyCrn,
  type InstanceId,
  type KeyId,
  type KeyMaterial,
  type KeyVersionId,
  type RegionId,
} from '../../src/core/index.js';

interface FakeVersion {
  id: KeyVersionId;
  createdAtMs: number;
  material: Buffer;
}

interface FakeKey {
  id: KeyId;
  region: RegionId;
  instanceId: InstanceId;
  name: string;
  aliases: string[];
  imported: boolean;
  state: 1 | 2 | 3 | 5;
  versions: FakeVersion[]; // newest first
  creationAtMs: number;
  lastRotateAtMs?: number;
}

export type FakeOp =
  | 'getKey'
  | 'listVersions'
  | 'createImportedKey'
  | 'createGeneratedRootKey'
  | 'rotate'
  | 'wrap'
  | 'unwrap';

/**
 * A fault decision for one call: `before` fails without applying; `after` applies, then fails (an ambiguous
 * failure, like a timeout after the server committed).
 */
export interface FakeFault {
  when: 'before' | 'after';
  error: AppError;
}

export type FaultHook = (
  op: FakeOp,
  ref: { region: string; instanceId: string; keyId?: string },
) => FakeFault | undefined;

export const ACCOUNT = 'fakeaccount0001';

const handleOf = (material: Buffer) =>
  createHmac('sha256', material).update('fake-kp-handle').digest('base64url').slice(0, 22);

export function kpError(
  code: AppError['code'],
  opts: { ambiguous?: boolean; retryAfterMs?: number; retryable?: boolean } = {},
) {
  const details: Record<string, string | number | boolean | null> = { correlationId: randomUUID() };
  if (opts.ambiguous !== undefined) details.ambiguous = opts.ambiguous;
  if (opts.retryAfterMs !== undefined) details.retryAfterMs = opts.retryAfterMs;
  return new AppError(code, `fake Key Protect: ${code}`, {
    retryable: opts.retryable ?? ['UPSTREAM_UNAVAILABLE', 'UPSTREAM_RATE_LIMITED'].includes(code),
    details,
  });
}

export class FakeKeyProtect implements KeyProtectPort {
  readonly keys = new Map<string, FakeKey>();
  readonly calls: Array<{ op: FakeOp; keyId?: string; instanceId: string }> = [];
  fault: FaultHook = () => undefined;
  rotationMinIntervalMs = 3_600_000;

  constructor(private readonly clock: Clock) {}

  private key(ref: KeyRef): FakeKey {
    const k =
      this.keys.get(ref.keyId) ??
      [...this.keys.values()].find((x) => x.instanceId === ref.instanceId && x.aliases.includes(ref.keyId));
    if (!k || k.instanceId !== ref.instanceId) throw kpError('KEY_NOT_FOUND');
    return k;
  }

  private async guard<T>(
    op: FakeOp,
    ref: { region: string; instanceId: string; keyId?: string },
    apply: () => T,
  ): Promise<T> {
    this.calls.push({ op, instanceId: ref.instanceId, ...(ref.keyId ? { keyId: ref.keyId } : {}) });
    await Promise.resolve();
    const f = this.fault(op, ref);
    if (f?.when === 'before') throw f.error;
    const out = apply();
    if (f?.when === 'after') throw f.error;
    return out;
  }

  info(k: FakeKey): KeyInfo {
    const v = k.versions[0]!;
    return {
      id: k.id,
      crn: formatKeyCrn({ region: k.region, accountId: ACCOUNT, instanceId: k.instanceId, keyId: k.id }),
      name: k.name,
      state: k.state,
      imported: k.imported,
      extractable: false,
      deleted: k.state === 5,
      currentVersionId: v.id,
      currentVersionCreatedAtMs: v.createdAtMs,
      ...(k.lastRotateAtMs !== undefined ? { lastRotateAtMs: k.lastRotateAtMs } : {}),
      creationAtMs: k.creationAtMs,
      aliases: [...k.aliases],
    };
  }

  /** Test helper: creates a key directly (no fault injection). */
  seedKey(input: {
    region: string;
    instanceId: string;
    material: Buffer;
    imported?: boolean;
    aliases?: string[];
  }): KeyInfo {
    const now = this.clock.nowMs();
    const k: FakeKey = {
      id: randomUUID() as KeyId,
      region: input.region as RegionId,
      instanceId: input.instanceId as InstanceId,
      name: 'seeded',
      aliases: input.aliases ?? [],
      imported: input.imported ?? true,
      state: 1,
      versions: [{ id: randomUUID() as KeyVersionId, createdAtMs: now, material: Buffer.from(input.material) }],
      creationAtMs: now,
    };
    this.keys.set(k.id, k);
    return this.info(k);
  }

  /** Test helper: an out-of-band rotation with foreign material. */
  foreignRotate(keyId: string): void {
    const k = this.keys.get(keyId)!;
    const now = this.clock.nowMs();
    k.versions.unshift({ id: randomUUID() as KeyVersionId, createdAtMs: now, material: randomBytes(32) });
    k.lastRotateAtMs = now;
  }

  /** Test helper: the material fingerprints (handles) of a key's versions, newest first. */
  handles(keyId: string): string[] {
    return this.keys.get(keyId)!.versions.map((v) => handleOf(v.material));
  }

  allMaterialsHex(): string[] {
    return [...this.keys.values()].flatMap((k) => k.versions.map((v) => v.material.toString('hex')));
  }

  async getKey(ref: KeyRef, _opts?: CallOptions): Promise<KeyInfo> {
    return this.guard('getKey', ref, () => this.info(this.key(ref)));
  }

  async findKeyByAlias(at: { region: string; instanceId: string }, alias: string): Promise<KeyInfo | undefined> {
    const k = [...this.keys.values()].find(
      (x) => x.region === at.region && x.instanceId === at.instanceId && x.aliases.includes(alias) && x.state !== 5,
    );
    return k ? this.info(k) : undefined;
  }

  async listVersions(ref: KeyRef, _opts?: CallOptions): Promise<KeyVersionInfo[]> {
    return this.guard('listVersions', ref, () =>
      this.key(ref).versions.map((v) => ({ id: v.id, createdAtMs: v.createdAtMs })),
    );
  }

  async createImportedKey(input: CreateImportedKeyInput, _opts?: CallOptions): Promise<KeyInfo> {
    const bytes = input.material.use((b) => Buffer.from(b));
    return this.guard('createImportedKey', input, () => {
      for (const a of input.aliases ?? []) {
        if ([...this.keys.values()].some((k) => k.instanceId === input.instanceId && k.aliases.includes(a))) {
          throw kpError('UPSTREAM_REJECTED');
        }
      }
      const now = this.clock.nowMs();
      const k: FakeKey = {
        id: randomUUID() as KeyId,
        region: input.region,
        instanceId: input.instanceId,
        name: input.name,
        aliases: input.aliases ?? [],
        imported: true,
        state: 1,
        versions: [{ id: randomUUID() as KeyVersionId, createdAtMs: now, material: bytes }],
        creationAtMs: now,
      };
      this.keys.set(k.id, k);
      return this.info(k);
    });
  }

  async createGeneratedRootKey(
    input: { region: RegionId; instanceId: InstanceId; name: string; aliases?: string[] },
    _opts?: CallOptions,
  ): Promise<KeyInfo> {
    return this.guard('createGeneratedRootKey', input, () => {
      const now = this.clock.nowMs();
      const k: FakeKey = {
        id: randomUUID() as KeyId,
        region: input.region,
        instanceId: input.instanceId,
        name: input.name,
        aliases: input.aliases ?? [],
        imported: false,
        state: 1,
        versions: [{ id: randomUUID() as KeyVersionId, createdAtMs: now, material: randomBytes(32) }],
        creationAtMs: now,
      };
      this.keys.set(k.id, k);
      return this.info(k);
    });
  }

  async rotateWithMaterial(
    ref: KeyRef,
    materialIn: KeyMaterial | Promise<KeyMaterial>,
    opts?: RotateOptions,
  ): Promise<boolean> {
    if (opts?.proceed && !(await opts.proceed.catch(() => false))) return false;
    const bytes = (await materialIn).use((b) => Buffer.from(b));
    await this.guard('rotate', ref, () => {
      const k = this.key(ref);
      if (k.state !== 1) throw kpError('MEMBER_NOT_ACTIVE');
      const now = this.clock.nowMs();
      if (k.lastRotateAtMs !== undefined && now - k.lastRotateAtMs < this.rotationMinIntervalMs) {
        throw kpError('ROTATION_TOO_SOON', { ambiguous: false });
      }
      k.versions.unshift({ id: randomUUID() as KeyVersionId, createdAtMs: now, material: bytes });
      k.lastRotateAtMs = now;
    });
    return true;
  }

  async wrap(ref: KeyRef, plaintext: Buffer, aad: string[], _opts?: CallOptions): Promise<WrapResult> {
    const pt = Buffer.from(plaintext);
    return this.guard('wrap', ref, () => {
      const k = this.key(ref);
      const v = k.versions[0]!;
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', keyFor(v.material), iv);
      c.setAAD(Buffer.from(JSON.stringify(aad)));
      const ct = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
      const ciphertext = Buffer.from(
        JSON.stringify({ ct: ct.toString('base64'), iv: iv.toString('base64'), handle: handleOf(v.material) }),
      ).toString('base64');
      return { ciphertext, keyVersionId: v.id };
    });
  }

  async unwrap(ref: KeyRef, ciphertext: string, aad: string[], _opts?: CallOptions): Promise<UnwrapResult> {
    return this.guard('unwrap', ref, () => {
      const k = this.key(ref);
      let parsed: { ct: string; iv: string; handle: string };
      try {
        parsed = JSON.parse(Buffer.from(ciphertext, 'base64').toString('utf8'));
      } catch {
        throw kpError('MATERIAL_MISMATCH');
      }
      const v = k.versions.find((x) => handleOf(x.material) === parsed.handle);
      if (!v) throw kpError('MATERIAL_MISMATCH');
      const buf = Buffer.from(parsed.ct, 'base64');
      try {
        const d = createDecipheriv('aes-256-gcm', keyFor(v.material), Buffer.from(parsed.iv, 'base64'));
        d.setAAD(Buffer.from(JSON.stringify(aad)));
        d.setAuthTag(buf.subarray(buf.length - 16));
        const plaintext = Buffer.concat([d.update(buf.subarray(0, buf.length - 16)), d.final()]);
        return { plaintext, keyVersionId: v.id };
      } catch {
        throw kpError('MATERIAL_MISMATCH');
      }
    });
  }
}

function keyFor(material: Buffer): Buffer {
  return material.length === 32 ? material : createHmac('sha256', material).update('fake').digest();
}
