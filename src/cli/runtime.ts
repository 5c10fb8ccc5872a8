import { BasicAuthenticator, IamAuthenticator } from 'ibm-cloud-sdk-core';
import type { RotationService } from '../app/index.js';
import { createRotationService, cryptoRandom, systemClock } from '../app/index.js';
import { silentLogger } from '../core/index.js';
import {
  authenticatorFromConfig,
  createKeyProtectClient,
  type KeyProtectClient,
  sdkHttpTracingProblem,
} from '../keyprotect/index.js';
import type { CloudantStores } from '../store/index.js';
import { createCloudantStores } from '../store/index.js';
import type { CliConfig } from './config.js';
import type { CliContext } from './context.js';
import { usageError } from './exitCodes.js';

/** Adapters built from configuration for the commands that act directly (group create/apply, plan, verify, region add). */
export interface Runtime {
  config: CliConfig;
  kp: KeyProtectClient;
  stores: CloudantStores;
  service: RotationService;
}

/**
 * Refuses to talk to Key Protect while the IBM SDK HTTP traces are on: they would print key material and nonces.
 * @throws {CliError} exit 2 saying which variable to unset
 */
export function refuseSdkHttpTracing(ctx: CliContext): void {
  const problem = sdkHttpTracingProblem(ctx.io.env);
  if (problem) throw usageError(problem, 'lockstep never talks to Key Protect with the SDK traces on');
}

/**
 * Builds the Key Protect client, the Cloudant stores and the rotation service from the resolved configuration.
 * @throws {CliError} exit 2 naming the missing setting
 */
export async function createRuntime(ctx: CliContext): Promise<Runtime> {
  refuseSdkHttpTracing(ctx);
  const { config } = ctx.config();
  if (!config.cloudant.url) {
    throw usageError(
      'no store configured (cloudant.url)',
      'start the local stack (`npm start`), or set --cloudant-url / CLOUDANT_URL / cloudant.url in lockstep.config.yaml',
    );
  }
  const regions = Object.keys(config.keyProtect);
  if (regions.length === 0) {
    throw usageError(
      'no Key Protect region configured',
      'start the local stack (`npm start`), or set LOCKSTEP_KP_ENDPOINTS and LOCKSTEP_KP_INSTANCES (or keyProtect in lockstep.config.yaml)',
    );
  }
  if (!config.iam.apiKey) {
    throw usageError(
      'no API key configured for Key Protect',
      'set LOCKSTEP_API_KEY (or --api-key), or run against `npm start`',
    );
  }
  const kp = createKeyProtectClient({
    endpoints: Object.fromEntries(regions.map((r) => [r, config.keyProtect[r]!.url])),
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: config.iam.apiKey,
      ...(config.iam.url ? { iamUrl: config.iam.url } : {}),
    }),
    random: cryptoRandom,
    clock: systemClock,
  });
  const stores = await createCloudantStores({
    url: config.cloudant.url,
    ...(config.cloudant.apiKey
      ? {
          authenticator: new IamAuthenticator({
            apikey: config.cloudant.apiKey.reveal(),
            ...(config.iam.url ? { url: config.iam.url } : {}),
          }),
        }
      : config.cloudant.username && config.cloudant.password
        ? {
            authenticator: new BasicAuthenticator({
              username: config.cloudant.username,
              password: config.cloudant.password.reveal(),
            }),
          }
        : {}),
  });
  const service = createRotationService({
    kp,
    stores,
    clock: systemClock,
    random: cryptoRandom,
    logger: silentLogger,
    config: config.rotationMinIntervalMs ? { rotationMinIntervalMs: config.rotationMinIntervalMs } : {},
  });
  return { config, kp, stores, service };
}
