/**
 * `lockstep/client`: the failover client for applications that use a lockstep group's keys. Wraps at the primary
 * and unwraps at whichever member answers, so an outage of the primary's region does not stop the application.
 *
 * Runtime dependencies: `@ibm-cloud/ibm-key-protect` and `ibm-cloud-sdk-core` only (for the authenticator); nothing of
 * the orchestrator is loaded.
 *
 * @example
 * import { IamAuthenticator } from 'ibm-cloud-sdk-core';
 * import { GroupKeyring } from 'lockstep/client';
 * const ring = await GroupKeyring.fromApi({ apiUrl, groupId: 'payments', authenticator: new IamAuthenticator({ apikey }) });
 * const { ciphertext, plaintext } = await ring.wrap();
 * const { plaintext: dek, member, keyVersionId } = await ring.unwrap(ciphertext);
 * @module
 */
export { CircuitBreaker } from './breaker.js';
export { type EndpointMember, isKeyProtectUrl, memberEndpoint, parseEndpoints } from './descriptor.js';
export { isKeyringError, KeyringError, KeyringErrorCode } from './errors.js';
export { GroupKeyring } from './keyring.js';
export { classify, FAILOVER_KINDS } from './transport.js';
export type {
  AttemptFailure,
  BreakerState,
  CallOptions,
  FailureKind,
  FromApiOptions,
  GroupKeyringOptions,
  KeyringEvent,
  MemberEndpoint,
  MemberMetrics,
  MemberRef,
  MemberRole,
  SdkAuthenticator,
  UnwrapResult,
  WrapResult,
} from './types.js';
