/**
 * One Key Protect wrap/unwrap call to one member through IBM's SDK, with an AbortSignal, and the classification of
 * its failure (which answers fail over and which do not).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import type { AttemptFailure, FailureKind, MemberEndpoint, MemberRef, SdkAuthenticator } from './types.js';

type Service = InstanceType<typeof KeyProtectV2>;

/** Answers that make the keyring ask the next member. */
export const FAILOVER_KINDS: ReadonlySet<FailureKind> = new Set([
  'connection',
  'timeout',
  'unavailable',
  'throttled',
  'member-state',
]);

/** Failure kinds that count against a member's availability (its circuit breaker). */
export const UNAVAILABILITY_KINDS: ReadonlySet<FailureKind> = new Set([
  'connection',
  'timeout',
  'unavailable',
  'throttled',
]);

export interface RawWrap {
  ciphertext: string;
  plaintext?: string;
  keyVersionId: string;
}

export interface RawUnwrap {
  plaintext: string;
  keyVersionId: string;
  rewrappedCiphertext?: string;
  rewrappedKeyVersionId?: string;
}

/** Thrown by {@link Transport} calls: a classified attempt failure. */
export class AttemptError extends Error {
  constructor(readonly failure: AttemptFailure) {
    super(failure.message);
    this.name = 'AttemptError';
  }
}

export const refOf = (m: MemberEndpoint): MemberRef => ({
  role: m.role,
  region: m.region,
  instanceId: m.instanceId,
  keyId: m.keyId,
});

/** SDK services per Key Protect URL, sharing one authenticator; every request carries the current attempt's signal. */
export class Transport {
  readonly #services = new Map<string, Service>();
  readonly #signal = new AsyncLocalStorage<AbortSignal>();

  constructor(private readonly authenticator: SdkAuthenticator) {}

  #service(url: string): Service {
    const base = url.replace(/\/+$/, '');
    let svc = this.#services.get(base);
    if (!svc) {
      svc = new KeyProtectV2({
        authenticator: this.authenticator as ConstructorParameters<typeof KeyProtectV2>[0]['authenticator'],
        serviceUrl: base,
      });
      svc.disableRetries();
      svc.getHttpClient().interceptors.request.use((config) => {
        const signal = this.#signal.getStore();
        if (signal) config.signal = signal;
        return config;
      });
      this.#services.set(base, svc);
    }
    return svc;
  }

  async wrap(m: MemberEndpoint, plaintext: Buffer | undefined, aad: string[] | undefined, signal: AbortSignal) {
    const body = Buffer.from(
      JSON.stringify({ ...(plaintext ? { plaintext: plaintext.toString('base64') } : {}), ...(aad ? { aad } : {}) }),
    );
    try {
      const res = await this.#call(m, signal, (svc) =>
        svc.wrapKey({
          id: m.keyId,
          bluemixInstance: m.instanceId,
          keyActionWrapBody: body,
          ...(m.keyRingId ? { xKmsKeyRing: m.keyRingId } : {}),
        }),
      );
      const r = res as { ciphertext?: unknown; plaintext?: unknown; keyVersion?: { id?: unknown } };
      if (typeof r?.ciphertext !== 'string' || typeof r.keyVersion?.id !== 'string') throw malformed(m, 'wrap');
      const out: RawWrap = { ciphertext: r.ciphertext, keyVersionId: r.keyVersion.id };
      if (typeof r.plaintext === 'string') out.plaintext = r.plaintext;
      return out;
    } finally {
      body.fill(0);
    }
  }

  async unwrap(m: MemberEndpoint, ciphertext: string, aad: string[] | undefined, signal: AbortSignal) {
    const body = Buffer.from(JSON.stringify({ ciphertext, ...(aad ? { aad } : {}) }));
    const res = await this.#call(m, signal, (svc) =>
      svc.unwrapKey({
        id: m.keyId,
        bluemixInstance: m.instanceId,
        keyActionUnwrapBody: body,
        ...(m.keyRingId ? { xKmsKeyRing: m.keyRingId } : {}),
      }),
    );
    const r = res as {
      plaintext?: unknown;
      keyVersion?: { id?: unknown };
      ciphertext?: unknown;
      rewrappedKeyVersion?: { id?: unknown };
    };
    if (typeof r?.plaintext !== 'string' || typeof r.keyVersion?.id !== 'string') throw malformed(m, 'unwrap');
    const out: RawUnwrap = { plaintext: r.plaintext, keyVersionId: r.keyVersion.id };
    if (typeof r.ciphertext === 'string' && typeof r.rewrappedKeyVersion?.id === 'string') {
      out.rewrappedCiphertext = r.ciphertext;
      out.rewrappedKeyVersionId = r.rewrappedKeyVersion.id;
    }
    return out;
  }

  async #call(
    m: MemberEndpoint,
    signal: AbortSignal,
    fn: (svc: Service) => Promise<{ result?: unknown }>,
  ): Promise<unknown> {
    const svc = this.#service(m.url);
    try {
      const res = await this.#signal.run(signal, () => fn(svc));
      return res.result;
    } catch (err) {
      throw new AttemptError(classify(refOf(m), err, signal));
    }
  }
}

function malformed(m: MemberEndpoint, op: string): AttemptError {
  return new AttemptError({
    member: refOf(m),
    kind: 'malformed',
    message: `Key Protect answered ${op} with a body the client cannot read`,
  });
}

/** Maps an SDK error to a failure kind. Only answers about the member (not the ciphertext or caller) fail over. */
export function classify(member: MemberRef, err: unknown, signal?: AbortSignal): AttemptFailure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    status?: unknown;
    statusText?: unknown;
    result?: unknown;
    message?: unknown;
  };
  if (signal?.aborted) return { member, kind: 'timeout', message: 'no answer in time (attempt aborted)' };
  if (typeof e.status === 'number' && e.status > 0) {
    const status = e.status;
    const reasonCode = reasonCodeOf(e.result);
    const kind: FailureKind =
      status === 429
        ? 'throttled'
        : status >= 500
          ? 'unavailable'
          : status === 401 || status === 403
            ? 'denied'
            : status === 404 || status === 409 || status === 410
              ? 'member-state'
              : 'rejected';
    return {
      member,
      kind,
      status,
      ...(reasonCode ? { reasonCode } : {}),
      message: `Key Protect answered ${status}${reasonCode ? ` ${reasonCode}` : ''}`,
    };
  }
  const code = typeof e.statusText === 'string' ? e.statusText : undefined;
  if (code === 'ETIMEDOUT' || code === 'ECONNABORTED') return { member, kind: 'timeout', message: code };
  return { member, kind: 'connection', message: code ?? (typeof e.message === 'string' ? e.message : 'network error') };
}

/** The first `reasons[].code` of a Key Protect error body (also used by the orchestrator's adapter). */
export function reasonCodeOf(result: unknown): string | undefined {
  const resources = (result as { resources?: unknown } | null | undefined)?.resources;
  const first = Array.isArray(resources) ? (resources[0] as { reasons?: unknown } | undefined) : undefined;
  const reasons = first?.reasons;
  const code = Array.isArray(reasons) ? (reasons[0] as { code?: unknown } | undefined)?.code : undefined;
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined;
}
