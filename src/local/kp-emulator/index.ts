/**
 * Multi-region Key Protect emulator (see README.md next to this file) and the IAM + emulator stack.
 */
import type { Logger } from '../../core/index.js';
import { type LocalIam, type StartLocalIamOptions, startLocalIam } from '../iam/index.js';
import { type KeyProtectEmulator, type StartKeyProtectEmulatorOptions, startKeyProtectEmulator } from './emulator.js';

export type { AccessGrant, KpRole } from './access.js';
export { KP_ROLES, ROLE_BY_ACTION } from './access.js';
export type { AllowedNetwork, KeyProtectEmulator, StartKeyProtectEmulatorOptions } from './emulator.js';
export { startKeyProtectEmulator } from './emulator.js';
export type { ImportTokenKeyPair, RsaKeyPool } from './keyPool.js';
export { exportKeyPairs, fixedRsaKeyPool, generateKeyPairs, importKeyPairs, sharedRsaKeyPool } from './keyPool.js';
export type { CadfEvent, EmulatorRegion, EmulatorRules, FaultSpec } from './types.js';
export { DEFAULT_RULES } from './types.js';

export interface EmulatorStack {
  iam: LocalIam;
  kp: KeyProtectEmulator;
  close(): Promise<void>;
}

export interface StartEmulatorStackOptions extends Omit<StartKeyProtectEmulatorOptions, 'iam' | 'accountId'> {
  /** Options of the local IAM (its account id is the emulator's). */
  iamOptions?: StartLocalIamOptions;
  accountId?: string;
  logger?: Logger;
}

/**
 * Starts the local IAM and an emulator that trusts it (same account id). Used by `lockstep emulator`, the dev
 * stack and tests.
 * @example
 * const { iam, kp, close } = await startEmulatorStack({ regions: ['us-south', 'us-east'] });
 */
export async function startEmulatorStack(opts: StartEmulatorStackOptions): Promise<EmulatorStack> {
  const iam = await startLocalIam({
    ...(opts.iamOptions ?? {}),
    ...(opts.accountId ? { accountId: opts.accountId } : {}),
    ...(opts.logger && !opts.iamOptions?.logger ? { logger: opts.logger } : {}),
  });
  try {
    const { iamOptions: _ignored, ...rest } = opts;
    const kp = await startKeyProtectEmulator({
      ...rest,
      accountId: iam.accountId,
      iam: { jwksUrl: iam.jwksUrl, issuer: iam.issuer },
    });
    return {
      iam,
      kp,
      async close() {
        await kp.close();
        await iam.close();
      },
    };
  } catch (err) {
    await iam.close();
    throw err;
  }
}
