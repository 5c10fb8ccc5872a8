/** Public types of the Key Protect emulator. */

/**
 * Behaviour the public sources leave open ([U] in the reference). Tests of the product must not depend on them.
 * Defaults are in `DEFAULT_RULES`.
 */
export interface EmulatorRules {
  /** Minimum time between two rotations of one key (§4.2). Default 3 600 000 (1 h); the dev demo shortens it. */
  rotationMinIntervalMs: number;
  /** Reject a rotate/import whose material equals any existing version of this key (§4.2, [U]). Default false. */
  rejectMaterialReuse: boolean;
  /** Status of `GET /import_token` once retrievals are exhausted (§3.1, [U]): 409 IMPORT_TOKEN_EXPIRED_ERR or 404. Default 409. */
  exhaustedTokenGetStatus: 409 | 404;
  /** Rotate allowed on a Deactivated (3) key (§2.4 matrix vs error-messages §7, [U]). Default true (the matrix). */
  rotateAllowedWhenDeactivated: boolean;
  /** Status of a successful `POST /import_token` (§1.4, [U]). Default 200. */
  importTokenCreateStatus: 200 | 201;
  /** Status of a successful `POST /keys/{id}/aliases/{alias}` (§1.4, [U]). Default 201. */
  aliasCreateStatus: 200 | 201;
  /** Status for a `Bluemix-Instance` naming no instance of this region ([U]): 401 (no `reasons`) or 404. Default 401. */
  unknownInstanceStatus: 401 | 404;
}

export const DEFAULT_RULES: Readonly<EmulatorRules> = Object.freeze({
  rotationMinIntervalMs: 3_600_000,
  rejectMaterialReuse: false,
  exhaustedTokenGetStatus: 409,
  rotateAllowedWhenDeactivated: true,
  importTokenCreateStatus: 200,
  aliasCreateStatus: 201,
  unknownInstanceStatus: 401,
});

/**
 * Injected faults for a region (all its instances) or one instance. Probabilities are in [0, 1]; `1` makes a
 * fault deterministic. Evaluated in this order: outage, latency, rate limit, 429, 5xx.
 */
export interface FaultSpec {
  /** Added delay per request (ms), plus uniform jitter in [0, latencyJitterMs). */
  latencyMs?: number;
  latencyJitterMs?: number;
  /**
   * Round-trip latency (benchmark fidelity, not an IBM contract): the region handles the request at once, and its
   * response leaves no earlier than `roundTripMs` + U[0, `roundTripJitterMs`] after the request arrived. The
   * emulator's own work (and any `latencyMs`) counts inside that window, as a real service's does.
   */
  roundTripMs?: number;
  roundTripJitterMs?: number;
  /** Probability of answering 5xx (status `errorStatus`, default 503). */
  errorRate?: number;
  errorStatus?: 500 | 502 | 503 | 504;
  /** Probability of answering 429 with `Retry-After: retryAfterSeconds` (default 1). */
  throttleRate?: number;
  retryAfterSeconds?: number;
  /** Per-instance token bucket: `burst` requests, refilled at `requestsPerSecond` (wall clock) → 429 + Retry-After. */
  rateLimit?: { requestsPerSecond: number; burst: number };
  /**
   * Full outage. `refuse`: a region's listening socket is closed (ECONNREFUSED) until cleared — on an instance
   * target it behaves as `reset`; `reset`: every request's socket is destroyed (ECONNRESET / socket hang up);
   * `503`: an error-envelope 503 `SERVICE_UNAVAILABLE_ERR`.
   */
  outage?: 'refuse' | 'reset' | '503';
  /** Apply these faults only to the next N requests of the target, then drop them. */
  remaining?: number;
}

/** A CADF event as Activity Tracker shows it (§7.2). Never contains material, nonces or tokens. */
export interface CadfEvent {
  typeURI: string;
  id: string;
  eventTime: string;
  action: string;
  outcome: 'success' | 'failure';
  message: string;
  severity: 'normal' | 'warning' | 'critical';
  dataEvent: boolean;
  correlationId: string;
  initiator: {
    id: string;
    name: string;
    typeURI: string;
    authnId?: string;
    authnName?: string;
    credential: { type: string };
    host: { address: string; addressType: string; agent: string };
  };
  target: { id: string; name: string; typeURI: string; alias?: string; host?: { address: string } };
  observer: { name: 'ActivityTracker' };
  reason: { reasonCode: number; reasonType: string; reasonForFailure?: string };
  requestData: Record<string, unknown>;
  responseData: Record<string, unknown>;
  logSourceCRN: string;
  saveServiceCopy: boolean;
  /** Emulator-only: the region that emitted the event. */
  region: string;
}

export interface EmulatorRegion {
  region: string;
  /** Service URL for this region (pass as `serviceUrl` to the SDK): the public endpoint. */
  url: string;
  /**
   * The region's private endpoint (`private.<region>.kms.cloud.ibm.com` in IBM Cloud, regions.md): the only one an
   * instance with the `allowedNetwork` policy `private-only` answers.
   */
  privateUrl: string;
  /** Instance GUIDs in this region. */
  instances: string[];
}
