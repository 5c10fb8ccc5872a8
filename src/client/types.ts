/**
 * Public types of the failover client (`lockstep/client`). Self-contained: nothing here imports the orchestrator.
 */

/** A member's role in its group. */
export type MemberRole = 'primary' | 'duplicate';

/** One Key Protect root key the keyring may use. */
export interface MemberEndpoint {
  role: MemberRole;
  region: string;
  /** Key Protect API base URL (public or private endpoint), e.g. `https://us-south.kms.cloud.ibm.com`. */
  url: string;
  /** Key Protect instance GUID (sent as `Bluemix-Instance`). */
  instanceId: string;
  keyId: string;
  /** Sent as `X-Kms-Key-Ring` when the caller's access is limited to a key ring. */
  keyRingId?: string;
}

/** Which member answered, as results and events report it. */
export interface MemberRef {
  role: MemberRole;
  region: string;
  instanceId: string;
  keyId: string;
}

export interface WrapResult {
  /** The wrapped DEK (WDEK) as Key Protect returned it. */
  ciphertext: string;
  /** The DEK: the caller's own, or the one Key Protect generated. The caller owns it and should zero it after use. */
  plaintext: Buffer;
  member: MemberRef;
  keyVersionId: string;
}

export interface UnwrapResult {
  plaintext: Buffer;
  member: MemberRef;
  /** The member's key version that holds the material the ciphertext was wrapped with. */
  keyVersionId: string;
  /** When the ciphertext was wrapped with an older version: the same DEK rewrapped under the member's latest version. */
  rewrapped?: { ciphertext: string; keyVersionId: string };
  /** How many members were asked (1 = the first one answered). */
  attempts: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Additional authenticated data, as given at wrap time. */
  aad?: string[];
  /** Overrides the keyring's deadline for this call (ms). */
  deadlineMs?: number;
  /** Aborts the call. */
  signal?: AbortSignal;
  /** Members not to ask in this call (e.g. a DR drill treating the primary as down). */
  exclude?: (member: MemberRef) => boolean;
}

/** Why one attempt failed: the first four make the keyring ask the next member. */
export type FailureKind =
  | 'connection' // refused, reset, DNS, TLS: the request may not have reached Key Protect
  | 'timeout' // no answer within attemptTimeoutMs
  | 'unavailable' // 5xx
  | 'throttled' // 429
  | 'member-state' // 404/409/410: this member's key cannot serve (deleted, suspended, missing)
  | 'rejected' // 400/422: the ciphertext, AAD or request is wrong — the same everywhere
  | 'denied' // 401/403: the caller has no access
  | 'malformed'; // a 2xx body the client cannot read

export interface AttemptFailure {
  member: MemberRef;
  kind: FailureKind;
  status?: number;
  /** Key Protect reason code, e.g. `UNPROCESSABLE_CIPHERTEXT_ERR`. */
  reasonCode?: string;
  message: string;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** Telemetry the keyring emits; the hook must not throw (errors are swallowed) and should be quick. */
export type KeyringEvent =
  | { type: 'attempt'; op: 'wrap' | 'unwrap'; member: MemberRef; hedged: boolean }
  | { type: 'success'; op: 'wrap' | 'unwrap'; member: MemberRef; latencyMs: number; attempts: number }
  | { type: 'failure'; op: 'wrap' | 'unwrap'; failure: AttemptFailure; latencyMs: number }
  | { type: 'failover'; op: 'wrap' | 'unwrap'; from: MemberRef; to: MemberRef; reason: FailureKind | 'hedge' }
  | { type: 'breaker'; member: MemberRef; from: BreakerState; to: BreakerState }
  | { type: 'refresh'; ok: boolean; members: number; error?: string };

/** Counters per member, for the application's metrics. */
export interface MemberMetrics {
  member: MemberRef;
  breaker: BreakerState;
  requests: number;
  successes: number;
  failures: Partial<Record<FailureKind, number>>;
  lastLatencyMs?: number;
}

/** An authenticator as `ibm-cloud-sdk-core` defines it (IamAuthenticator, ContainerAuthenticator, …). */
export interface SdkAuthenticator {
  authenticate(requestOptions: { headers?: Record<string, string> }): Promise<void>;
  authenticationType(): string;
}

/** Options of `new GroupKeyring(...)`. */
export interface GroupKeyringOptions {
  members: MemberEndpoint[];
  authenticator: SdkAuthenticator;
  /** Whole-call budget, every member included (default 10 000 ms). */
  deadlineMs?: number;
  /** One member's answer budget before the next is asked (default 3 000 ms). */
  attemptTimeoutMs?: number;
  /**
   * Hedging: ask the next member when the current one has not answered after this long, keeping the first answer
   * (default off). Costs a second Key Protect call on slow answers.
   */
  hedgeDelayMs?: number;
  /** Consecutive failures that open a member's breaker (default 3). */
  breakerThreshold?: number;
  /** How long an open breaker keeps a member out before one half-open probe (default 5 000 ms). */
  breakerCooldownMs?: number;
  /** Where `wrap` goes: the primary (default) or the first member matching this. */
  preferred?: (member: MemberRef) => boolean;
  /**
   * Let `wrap` fail over to a duplicate when the preferred member is unavailable (default false). Off by default:
   * during a rotation a duplicate may already hold the next generation while the primary does not yet, and wrapping
   * there would create data only the duplicates can unwrap until the primary is promoted.
   */
  wrapFailover?: boolean;
  /** Telemetry hook. */
  onEvent?: (event: KeyringEvent) => void;
  /** Injected clock (tests); default `Date.now`. */
  nowMs?: () => number;
}

/** Options of `GroupKeyring.fromApi(...)`. */
export interface FromApiOptions extends Omit<GroupKeyringOptions, 'members'> {
  /** lockstep API root, e.g. `https://lockstep-api.example.com`. */
  apiUrl: string;
  groupId: string;
  /** Authenticates the API call; default: `authenticator` (its IAM token needs the auditor role). */
  apiAuthenticator?: SdkAuthenticator;
  /** `public` (default) or `private` Key Protect endpoints. */
  endpointType?: 'public' | 'private';
  /** Re-read the endpoints this often (default 5 min; 0 = never). */
  refreshIntervalMs?: number;
  /** Timeout of one endpoints read (default 5 000 ms). */
  apiTimeoutMs?: number;
  /** A last known descriptor, used when the API cannot be read at start (e.g. from a file or an env var). */
  fallbackMembers?: MemberEndpoint[];
  /**
   * Which Key Protect URLs the API may name: the keyring sends its token and plaintext DEKs there. Default: IBM's
   * `https://[private.]<region>.kms.cloud.ibm.com` and loopback (`isKeyProtectUrl`).
   */
  trustUrl?: (url: string) => boolean;
}
