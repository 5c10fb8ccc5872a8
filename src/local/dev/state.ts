import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultIdentities, type IdentitySpec } from '../iam/index.js';

/**
 * What the dev stack keeps between starts (in `<dataDir>/dev-state.json`): the same IAM identities and API keys,
 * account, instance ids, snapshot passphrase, checkpoint seed and events token, so that a second start reuses the
 * emulator snapshot and the store. Local only: these are throwaway secrets of a local stack.
 */
export interface DevState {
  version: 1;
  accountId: string;
  identities: IdentitySpec[];
  instanceIds: Record<string, string>;
  snapshotKey: string;
  /** Hex seed of the Ed25519 checkpoint key. */
  checkpointSeed: string;
  eventsToken: string;
  escrowCrn?: string;
  groups: string[];
}

export const STATE_FILE = 'dev-state.json';

/** Loads the state of a data directory, or makes a new one (not yet written). */
export function loadOrCreateState(dataDir: string): { state: DevState; reused: boolean } {
  const file = join(dataDir, STATE_FILE);
  if (existsSync(file)) {
    const state = JSON.parse(readFileSync(file, 'utf8')) as DevState;
    if (state.version === 1 && Array.isArray(state.identities)) return { state, reused: true };
  }
  return {
    reused: false,
    state: {
      version: 1,
      accountId: randomBytes(16).toString('hex'),
      identities: defaultIdentities(),
      instanceIds: {},
      snapshotKey: randomBytes(24).toString('base64url'),
      checkpointSeed: randomBytes(32).toString('hex'),
      eventsToken: randomBytes(24).toString('base64url'),
      groups: [],
    },
  };
}

export function saveState(dataDir: string, state: DevState): void {
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}
