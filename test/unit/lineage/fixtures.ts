import { createHash } from 'node:crypto';
import type { GroupId, KeyCrn, LineageRecord, RunId } from '../../../src/core/index.js';
import { buildLineageRecord, checkpointKeyPairFromSeed, type LineageRecordInput } from '../../../src/lineage/index.js';

export const GROUP = 'payments' as GroupId;
export const T0 = Date.UTC(2026, 0, 1, 2, 0, 0);
export const HOUR = 3_600_000;

const uuid = (n: number, salt: string): string => {
  const h = createHash('sha256').update(`${salt}:${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

const REGIONS = ['us-south', 'us-east', 'eu-de'] as const;
const INSTANCES = REGIONS.map((r) => uuid(0, `instance-${r}`));
const KEYS = REGIONS.map((r) => uuid(0, `key-${r}`));
export const CRNS = REGIONS.map(
  (r, i) => `crn:v1:bluemix:public:kms:${r}:a/acct123:${INSTANCES[i]}:key:${KEYS[i]}` as KeyCrn,
);

/** A canary plaintext for generation `g` (tests only). */
export const canaryPlaintext = (g: number): Buffer => createHash('sha256').update(`canary-${g}`).digest();

/** A valid record input for `generation` of `groupId`. */
export function recordInput(generation: number, groupId: GroupId = GROUP): LineageRecordInput {
  const startedAtMs = T0 + (generation - 1) * 24 * HOUR;
  return {
    groupId,
    generation,
    fingerprint: `fp1:${createHash('sha256').update(`m${generation}`).digest('hex').slice(0, 32)}`,
    trigger: { kind: 'schedule', by: `tick-${generation}` },
    runId: `run-${uuid(generation, 'run')}` as RunId,
    startedAtMs,
    finishedAtMs: startedAtMs + 90_000,
    members: REGIONS.map((region, i) => ({
      role: i === 0 ? 'primary' : 'duplicate',
      region: region as never,
      instanceId: INSTANCES[i] as never,
      keyId: KEYS[i] as never,
      crn: CRNS[i] as KeyCrn,
      keyVersionId: uuid(generation, `version-${region}`) as never,
      rotatedAtMs: startedAtMs + (i === 0 ? 80_000 : 30_000),
      evidence: [
        {
          eventId: `evt-${generation}-${i}`,
          action: 'kms.secrets.rotate',
          eventTimeMs: startedAtMs + 31_000,
          initiator: 'iam-ServiceId-lockstep',
          outcome: 'success',
        },
      ],
    })),
    verification: [
      {
        wrappedAt: CRNS[0] as KeyCrn,
        unwrappedAt: [CRNS[1] as KeyCrn, CRNS[2] as KeyCrn],
        ciphertext: `ct-${generation}-primary`,
        plaintextSha256: createHash('sha256').update(canaryPlaintext(generation)).digest('hex'),
        aad: [groupId, String(generation)],
        reportedVersions: {},
        ok: true,
        atMs: startedAtMs + 85_000,
      },
    ],
    status: 'complete',
  };
}

/** A valid chain of generations `from..to`. */
export function buildChain(from: number, to: number, groupId: GroupId = GROUP): LineageRecord[] {
  const out: LineageRecord[] = [];
  for (let g = from; g <= to; g++) out.push(buildLineageRecord(recordInput(g, groupId), out.at(-1)));
  return out;
}

/** Deterministic checkpoint key pairs (seeded, no key generation cost). */
export const signerA = checkpointKeyPairFromSeed(Buffer.alloc(32, 0xa1));
export const signerB = checkpointKeyPairFromSeed(Buffer.alloc(32, 0xb2));
