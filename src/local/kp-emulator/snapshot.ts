/**
 * Optional persistence of the emulator state to one JSON file, so a dev stack survives a restart.
 *
 * The whole state (which holds key material) is encrypted: AES-256-GCM under a key derived with scrypt from the
 * `snapshotKey` option and a random salt stored in the file. Without `snapshotKey` a built-in development passphrase
 * is used — that only keeps material out of casual reads (the file is also written with mode 0600). Import tokens
 * are not persisted (their RSA keys are dropped; create a new token after a restart).
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../../core/index.js';
import type { InstanceState, KeyRecord } from './service.js';

const FORMAT = 'lockstep-kp-emulator-snapshot/v1';
const DEV_PASSPHRASE = 'lockstep-kp-emulator-dev-snapshot';

interface SnapshotState {
  accountId: string;
  offsetMs: number;
  instances: Map<string, Map<string, InstanceState>>;
}

function deriveKey(passphrase: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, 32, { N: 16384, r: 8, p: 1 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

function serialize(s: SnapshotState): unknown {
  const regions: Record<string, unknown[]> = {};
  for (const [region, map] of s.instances) {
    regions[region] = [...map.values()].map((inst) => ({
      id: inst.id,
      keys: [...inst.keys.values()].map((k) => ({
        ...k,
        versions: k.versions.map((v) => ({
          id: v.id,
          createdMs: v.createdMs,
          material: v.material.toString('base64'),
          handle: v.handle,
        })),
      })),
      purged: [...inst.purged],
      rings: [...inst.rings.entries()],
      policies: [...inst.policies.values()],
    }));
  }
  return { accountId: s.accountId, offsetMs: s.offsetMs, regions };
}

interface RawInstance {
  id: string;
  keys: Array<
    Omit<KeyRecord, 'versions'> & {
      versions: Array<{ id: string; createdMs: number; material: string; handle: string }>;
    }
  >;
  purged: string[];
  rings: Array<[string, { createdMs: number; createdBy: string }]>;
  policies: InstanceState['policies'] extends Map<string, infer P> ? P[] : never;
}

function deserialize(raw: {
  accountId: string;
  offsetMs: number;
  regions: Record<string, RawInstance[]>;
}): SnapshotState {
  const instances = new Map<string, Map<string, InstanceState>>();
  for (const [region, list] of Object.entries(raw.regions)) {
    const map = new Map<string, InstanceState>();
    for (const ri of list) {
      const keys = new Map<string, KeyRecord>();
      const aliases = new Map<string, string>();
      for (const k of ri.keys) {
        keys.set(k.id, {
          ...k,
          versions: k.versions.map((v) => ({ ...v, material: Buffer.from(v.material, 'base64') })),
        });
        for (const a of k.aliases) aliases.set(a, k.id);
      }
      map.set(ri.id, {
        id: ri.id,
        region,
        keys,
        purged: new Set(ri.purged),
        aliases,
        rings: new Map(ri.rings),
        oldTokens: [],
        tokenSeq: 0,
        policies: new Map(ri.policies.map((p) => [p.type, p])),
      });
    }
    instances.set(region, map);
  }
  return { accountId: raw.accountId, offsetMs: raw.offsetMs, instances };
}

/** Writes the encrypted snapshot atomically (temp file + rename), mode 0600. */
export async function saveSnapshot(file: string, passphrase: string | undefined, s: SnapshotState): Promise<void> {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = await deriveKey(passphrase ?? DEV_PASSPHRASE, salt);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([
    cipher.update(JSON.stringify(serialize(s)), 'utf8'),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  key.fill(0);
  const doc = {
    format: FORMAT,
    kdf: { alg: 'scrypt', N: 16384, r: 8, p: 1, salt: salt.toString('base64') },
    iv: iv.toString('base64'),
    data: data.toString('base64'),
  };
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(doc), { mode: 0o600 });
  await rename(tmp, file);
}

/** Reads a snapshot; undefined when the file is missing; unreadable or undecryptable files are ignored with a warning. */
export async function loadSnapshot(
  file: string,
  passphrase: string | undefined,
  logger: Logger,
): Promise<SnapshotState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const doc = JSON.parse(text) as { format: string; kdf: { salt: string }; iv: string; data: string };
    if (doc.format !== FORMAT) throw new Error(`unknown snapshot format ${doc.format}`);
    const key = await deriveKey(passphrase ?? DEV_PASSPHRASE, Buffer.from(doc.kdf.salt, 'base64'));
    const data = Buffer.from(doc.data, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(doc.iv, 'base64'));
    decipher.setAuthTag(data.subarray(data.length - 16));
    const plain = Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]);
    key.fill(0);
    return deserialize(JSON.parse(plain.toString('utf8')));
  } catch (err) {
    // Keep the unreadable file (wrong snapshotKey?) instead of overwriting it with a fresh state.
    await rename(file, `${file}.unreadable`).catch(() => undefined);
    logger.warn('kp-emulator: snapshot could not be read; moved aside, starting empty', {
      file,
      movedTo: `${file}.unreadable`,
      reason: (err as Error).message,
    });
    return undefined;
  }
}

/**
 * A deep copy of one instance's durable state (keys with their versions and material, purged ids, aliases, rings,
 * policies) for restore points. Import tokens are not copied: a recovered instance has none.
 */
export function cloneInstance(inst: InstanceState): InstanceState {
  const keys = new Map<string, KeyRecord>();
  for (const [id, k] of inst.keys) {
    keys.set(id, {
      ...structuredClone({ ...k, versions: [] }),
      versions: k.versions.map((v) => ({ ...v, material: Buffer.from(v.material) })),
    });
  }
  return {
    id: inst.id,
    region: inst.region,
    keys,
    purged: new Set(inst.purged),
    aliases: new Map(inst.aliases),
    rings: new Map([...inst.rings].map(([id, r]) => [id, { ...r }])),
    oldTokens: [],
    tokenSeq: inst.tokenSeq,
    policies: new Map([...inst.policies].map(([t, p]) => [t, structuredClone(p)])),
  };
}
