/**
 * Shared fixtures for rotation tests: a controllable clock, a recording Random (so tests can scan logs and documents
 * for every secret byte string the service generated), a capturing logger, and a scan helper.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createJsonLogger } from '../../src/app/system.js';
import type { Clock, Logger, Random } from '../../src/core/index.js';

export interface TestClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export function testClock(startMs = Date.UTC(2026, 10, 1, 8, 0, 0)): TestClock {
  let t = startMs;
  return {
    nowMs: () => t,
    advance(ms) {
      t += ms;
    },
    set(ms) {
      t = ms;
    },
  };
}

export interface RecordingRandom extends Random {
  /** Copies of every byte string handed out of length ≥ 16 (materials, canary DEKs). */
  readonly secrets: Buffer[];
}

export function recordingRandom(): RecordingRandom {
  const secrets: Buffer[] = [];
  return {
    secrets,
    bytes(n) {
      const b = randomBytes(n);
      if (n >= 16) secrets.push(Buffer.from(b));
      return b;
    },
    uuid: () => randomUUID(),
  };
}

export interface CapturedLogger {
  logger: Logger;
  lines: string[];
}

export function capturingLogger(level: 'debug' | 'info' = 'debug'): CapturedLogger {
  const lines: string[] = [];
  return { lines, logger: createJsonLogger({ level, write: (l) => lines.push(l) }) };
}

/** Every encoding of a secret a leak could take: hex (both cases), base64, base64url. */
export function encodingsOf(secret: Buffer): string[] {
  return [
    secret.toString('hex'),
    secret.toString('hex').toUpperCase(),
    secret.toString('base64'),
    secret.toString('base64url'),
  ];
}

/** The secrets (by index) whose encodings occur in `text`. */
export function leakedSecrets(text: string, secrets: Buffer[]): number[] {
  return secrets.flatMap((s, i) => (encodingsOf(s).some((e) => text.includes(e)) ? [i] : []));
}

/** An Ed25519 checkpoint signing key (PKCS#8 PEM). */
export function checkpointKeyPem(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** Thrown by a crash hook. */
export class SimulatedCrash extends Error {
  constructor(readonly at: string) {
    super(`simulated crash after ${at}`);
    this.name = 'SimulatedCrash';
  }
}
