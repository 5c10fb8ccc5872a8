/**
 * The Key Protect adapter: {@link createKeyProtectClient} implements `KeyProtectPort` (src/app/ports.ts) over the
 * IBM SDK; `secure-import/` holds the pure sealing crypto. No SDK type leaves this module except the opaque
 * {@link KeyProtectAuthenticator}.
 * @module
 */
export {
  authenticatorFromConfig,
  type KeyProtectAuthConfig,
  type KeyProtectAuthenticator,
  type SecretInput,
} from './auth.js';
export {
  createKeyProtectClient,
  type KeyProtectClient,
  type KeyProtectClientOptions,
  type KeyProtectIdentity,
} from './client.js';
export { KpOperation, toKeyProtectError, type UpstreamFailure } from './errors.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy, type Sleep } from './retry.js';
export {
  ENCRYPTION_ALGORITHM,
  type ImportTokenSecrets,
  type SealedImport,
  type SecureImportWireFields,
  sealForImport,
  toWireFields,
} from './secure-import/index.js';
export { createSwitchoverProbe, type SwitchoverProbeOptions } from './switchover.js';
export { sdkHttpTracingProblem } from './tracing.js';
