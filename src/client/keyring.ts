/**
 * `GroupKeyring`: wrap at the primary, unwrap at whichever member of a lockstep group answers first, with
 * per-call deadlines, optional hedging and a circuit breaker per member.
 */
import { CircuitBreaker } from './breaker.js';
import { fetchEndpoints } from './descriptor.js';
import { KeyringError, type KeyringErrorCode } from './errors.js';
import { AttemptError, FAILOVER_KINDS, refOf, Transport } from './transport.js';
import type {
  AttemptFailure,
  CallOptions,
  FailureKind,
  FromApiOptions,
  GroupKeyringOptions,
  KeyringEvent,
  MemberEndpoint,
  MemberMetrics,
  MemberRef,
  UnwrapResult,
  WrapResult,
} from './types.js';

const DEFAULTS = {
  deadlineMs: 10_000,
  attemptTimeoutMs: 3_000,
  breakerThreshold: 3,
  breakerCooldownMs: 5_000,
  refreshIntervalMs: 5 * 60_000,
};

interface Slot {
  member: MemberEndpoint;
  breaker: CircuitBreaker;
  metrics: MemberMetrics;
}

type Op = 'wrap' | 'unwrap';

const slotKey = (m: MemberEndpoint) => `${m.url}|${m.instanceId}|${m.keyId}`;

/**
 * A keyring over the members of one lockstep group (a primary and its duplicates holding identical material).
 *
 * - `wrap` goes to the primary (or `preferred`); it fails over only with `wrapFailover: true`.
 * - `unwrap` asks the primary first, then each duplicate, on connection errors, timeouts, 5xx, 429 and member-state
 *   answers (404/409/410). Answers that mean the ciphertext or the caller is wrong (400, 422, 401, 403) end the call
 *   with that error: another member would say the same.
 * - Members whose breaker is open are asked last; a half-open member gets one probe call.
 *
 * @example
 * const ring = await GroupKeyring.fromApi({ apiUrl, groupId: 'payments', authenticator });
 * const { ciphertext, plaintext } = await ring.wrap();
 * const { plaintext: again, member } = await ring.unwrap(ciphertext);
 */
export class GroupKeyring {
  readonly #transport: Transport;
  readonly #opts: Required<
    Pick<GroupKeyringOptions, 'deadlineMs' | 'attemptTimeoutMs' | 'breakerThreshold' | 'breakerCooldownMs'>
  > &
    GroupKeyringOptions;
  readonly #now: () => number;
  #slots: Slot[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: GroupKeyringOptions) {
    if (!opts || typeof opts !== 'object') throw invalid('options are required');
    const auth = opts.authenticator;
    if (!auth || typeof auth.authenticate !== 'function') {
      throw invalid('authenticator must be an ibm-cloud-sdk-core authenticator (e.g. IamAuthenticator)');
    }
    for (const f of [
      'deadlineMs',
      'attemptTimeoutMs',
      'breakerThreshold',
      'breakerCooldownMs',
      'hedgeDelayMs',
    ] as const) {
      const v = opts[f];
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw invalid(`${f} must be a number >= 0`);
    }
    this.#opts = { ...DEFAULTS, ...opts };
    this.#now = opts.nowMs ?? Date.now;
    this.#transport = new Transport(auth);
    this.setMembers(opts.members);
  }

  /**
   * Builds a keyring from lockstep's `GET /v1/groups/{id}/endpoints` (auditor role) and re-reads it every
   * `refreshIntervalMs`. When the API cannot be read the keyring keeps the last known members (or
   * `fallbackMembers` at start).
   * @throws {KeyringError} DESCRIPTOR_UNAVAILABLE when the API cannot be read at start and no fallback is given
   */
  static async fromApi(opts: FromApiOptions): Promise<GroupKeyring> {
    const read = () =>
      fetchEndpoints({
        apiUrl: opts.apiUrl,
        groupId: opts.groupId,
        authenticator: opts.apiAuthenticator ?? opts.authenticator,
        endpointType: opts.endpointType ?? 'public',
        timeoutMs: opts.apiTimeoutMs ?? 5_000,
        ...(opts.trustUrl ? { trustUrl: opts.trustUrl } : {}),
      });
    let members: MemberEndpoint[];
    try {
      members = await read();
      emit(opts.onEvent, { type: 'refresh', ok: true, members: members.length });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      emit(opts.onEvent, { type: 'refresh', ok: false, members: 0, error: message });
      if (!opts.fallbackMembers?.length) {
        throw new KeyringError(
          'DESCRIPTOR_UNAVAILABLE',
          `Cannot read the endpoints of ${opts.groupId}: ${message}`,
          [],
          {
            cause: err,
          },
        );
      }
      members = opts.fallbackMembers;
    }
    const ring = new GroupKeyring({ ...opts, members });
    const every = opts.refreshIntervalMs ?? DEFAULTS.refreshIntervalMs;
    if (every > 0) {
      ring.#timer = setInterval(() => {
        void ring.#refresh(read);
      }, every);
      ring.#timer.unref?.();
    }
    ring.refresh = () => ring.#refresh(read);
    return ring;
  }

  /** Re-reads the descriptor now (keyrings from `fromApi`); resolves false when the API could not be read. */
  refresh: () => Promise<boolean> = async () => false;

  async #refresh(read: () => Promise<MemberEndpoint[]>): Promise<boolean> {
    try {
      const members = await read();
      this.setMembers(members);
      emit(this.#opts.onEvent, { type: 'refresh', ok: true, members: members.length });
      return true;
    } catch (err) {
      // The last known descriptor stays: the API being down must not take the application down.
      emit(this.#opts.onEvent, {
        type: 'refresh',
        ok: false,
        members: this.#slots.length,
        error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
  }

  /** Replaces the member list; breakers and counters of members that stay are kept. */
  setMembers(members: MemberEndpoint[]): void {
    const checked = validateMembers(members);
    const old = new Map(this.#slots.map((s) => [slotKey(s.member), s]));
    this.#slots = checked.map((member) => {
      const kept = old.get(slotKey(member));
      if (kept) return { ...kept, member };
      const ref = refOf(member);
      const metrics: MemberMetrics = { member: ref, breaker: 'closed', requests: 0, successes: 0, failures: {} };
      const breaker = new CircuitBreaker(
        this.#opts.breakerThreshold,
        this.#opts.breakerCooldownMs,
        this.#now,
        (from, to) => {
          metrics.breaker = to;
          emit(this.#opts.onEvent, { type: 'breaker', member: ref, from, to });
        },
      );
      return { member, breaker, metrics };
    });
  }

  /** The members in use, primary first. */
  members(): MemberEndpoint[] {
    return this.#slots.map((s) => ({ ...s.member }));
  }

  /** Counters and breaker state per member (a snapshot). */
  metrics(): MemberMetrics[] {
    return this.#slots.map((s) => ({
      ...s.metrics,
      member: { ...s.metrics.member },
      breaker: s.breaker.state,
      failures: { ...s.metrics.failures },
    }));
  }

  /** Stops the periodic refresh. */
  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Wraps `plaintext` (1–7,500 bytes) at the primary, or lets Key Protect generate a 32-byte DEK when it is omitted.
   * @throws {KeyringError} UNAVAILABLE, REJECTED, DENIED, DEADLINE_EXCEEDED, ABORTED, INVALID_ARGUMENT
   */
  async wrap(plaintext?: Buffer | Uint8Array, opts: CallOptions = {}): Promise<WrapResult> {
    if (
      plaintext !== undefined &&
      (!(plaintext instanceof Uint8Array) || plaintext.length < 1 || plaintext.length > 7_500)
    ) {
      throw invalid('plaintext must be 1-7500 bytes (or omitted to let Key Protect generate a DEK)');
    }
    checkAad(opts.aad);
    const bytes =
      plaintext === undefined ? undefined : Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.length);
    const preferred = this.#opts.preferred;
    const eligible = this.#eligible(opts);
    const first = eligible.find((s) => (preferred ? preferred(refOf(s.member)) : s.member.role === 'primary'));
    if (!first) throw invalid(preferred ? 'no member matches `preferred`' : 'the keyring has no primary member');
    // With wrapFailover a preferred member whose breaker is open is asked last, like in unwrap.
    const order = this.#opts.wrapFailover
      ? [first, ...eligible.filter((s) => s !== first)].sort(
          (a, b) => Number(!a.breaker.canTry()) - Number(!b.breaker.canTry()),
        )
      : [first];
    const { value, slot } = await this.#race('wrap', order, opts, (m, signal) =>
      this.#transport.wrap(m, bytes, opts.aad, signal),
    );
    const dek = bytes ?? (value.plaintext === undefined ? undefined : Buffer.from(value.plaintext, 'base64'));
    if (!dek) throw new KeyringError('UNAVAILABLE', 'Key Protect generated a DEK but returned no plaintext');
    return {
      ciphertext: value.ciphertext,
      plaintext: dek,
      member: refOf(slot.member),
      keyVersionId: value.keyVersionId,
    };
  }

  /**
   * Unwraps at the primary, failing over to the duplicates while they are unavailable.
   * @throws {KeyringError} REJECTED (bad ciphertext or AAD), DENIED, UNAVAILABLE (no member could answer),
   *   DEADLINE_EXCEEDED, ABORTED, INVALID_ARGUMENT
   */
  async unwrap(ciphertext: string, opts: CallOptions = {}): Promise<UnwrapResult> {
    if (typeof ciphertext !== 'string' || ciphertext.length === 0 || ciphertext.length > 100_000) {
      throw invalid('ciphertext must be the non-empty string wrap returned');
    }
    checkAad(opts.aad);
    const order = this.#eligible(opts);
    if (order.length === 0) throw invalid('no member left to ask (check `exclude`)');
    const { value, slot, attempts } = await this.#race('unwrap', order, opts, (m, signal) =>
      this.#transport.unwrap(m, ciphertext, opts.aad, signal),
    );
    const out: UnwrapResult = {
      plaintext: Buffer.from(value.plaintext, 'base64'),
      member: refOf(slot.member),
      keyVersionId: value.keyVersionId,
      attempts,
    };
    if (value.rewrappedCiphertext && value.rewrappedKeyVersionId) {
      out.rewrapped = { ciphertext: value.rewrappedCiphertext, keyVersionId: value.rewrappedKeyVersionId };
    }
    return out;
  }

  /** Members in asking order: primary first, then duplicates; open breakers last. */
  #eligible(opts: CallOptions): Slot[] {
    const slots = this.#slots.filter((s) => !opts.exclude?.(refOf(s.member)));
    const ranked = [
      ...slots.filter((s) => s.member.role === 'primary'),
      ...slots.filter((s) => s.member.role !== 'primary'),
    ];
    return [...ranked.filter((s) => s.breaker.canTry()), ...ranked.filter((s) => !s.breaker.canTry())];
  }

  /**
   * Asks `order[0]`, then the next member on each failover answer (or after `hedgeDelayMs` without an answer);
   * the first success wins and every other attempt is aborted.
   */
  #race<T>(
    op: Op,
    order: Slot[],
    opts: CallOptions,
    call: (m: MemberEndpoint, signal: AbortSignal) => Promise<T>,
  ): Promise<{ value: T; slot: Slot; attempts: number }> {
    const deadlineMs = opts.deadlineMs ?? this.#opts.deadlineMs;
    const hedge = this.#opts.hedgeDelayMs;
    const onEvent = this.#opts.onEvent;
    const overall = new AbortController();
    const failures: AttemptFailure[] = [];
    return new Promise((resolve, reject) => {
      let next = 0;
      let inflight = 0;
      let done = false;
      let hedgeTimer: ReturnType<typeof setTimeout> | undefined;
      let last: Slot | undefined;
      const running = new Map<Slot, number>();
      const finish = (settle: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(hedgeTimer);
        clearTimeout(deadlineTimer);
        opts.signal?.removeEventListener('abort', onAbort);
        overall.abort();
        settle();
      };
      const deadlineTimer = setTimeout(
        () =>
          finish(() =>
            reject(new KeyringError('DEADLINE_EXCEEDED', `No member answered ${op} within ${deadlineMs} ms`, failures)),
          ),
        deadlineMs,
      );
      const onAbort = () => finish(() => reject(new KeyringError('ABORTED', `${op} aborted by the caller`, failures)));
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });

      const launch = (reason?: FailureKind | 'hedge'): boolean => {
        const slot = order[next];
        if (!slot || done) return false;
        next += 1;
        inflight += 1;
        if (last && reason)
          emit(onEvent, { type: 'failover', op, from: refOf(last.member), to: refOf(slot.member), reason });
        last = slot;
        const started = this.#now();
        emit(onEvent, { type: 'attempt', op, member: refOf(slot.member), hedged: reason === 'hedge' });
        running.set(slot, this.#now());
        this.#attempt(slot, overall.signal, call).then((outcome) => {
          inflight -= 1;
          running.delete(slot);
          const latencyMs = this.#now() - started;
          if (done) return;
          if ('value' in outcome) {
            slot.metrics.lastLatencyMs = latencyMs;
            emit(onEvent, { type: 'success', op, member: refOf(slot.member), latencyMs, attempts: next });
            // Members outrun after the hedge delay are as slow as unavailable for this call: a strike against
            // their breaker, so a hanging primary stops costing every call the hedge delay.
            for (const [other, startedMs] of running) {
              if (other !== slot && hedge !== undefined && this.#now() - startedMs >= hedge) {
                other.breaker.failure();
                other.metrics.failures.timeout = (other.metrics.failures.timeout ?? 0) + 1;
              }
            }
            finish(() => resolve({ value: outcome.value, slot, attempts: next }));
            return;
          }
          const f = outcome.failure;
          failures.push(f);
          emit(onEvent, { type: 'failure', op, failure: f, latencyMs });
          if (!FAILOVER_KINDS.has(f.kind)) {
            finish(() => reject(definitive(op, f, failures)));
          } else if (!launch(f.kind) && inflight === 0) {
            finish(() => reject(unavailable(op, failures)));
          }
        });
        if (hedge !== undefined) {
          clearTimeout(hedgeTimer);
          hedgeTimer = setTimeout(() => launch('hedge'), hedge);
        }
        return true;
      };
      launch();
    });
  }

  async #attempt<T>(
    slot: Slot,
    overall: AbortSignal,
    call: (m: MemberEndpoint, signal: AbortSignal) => Promise<T>,
  ): Promise<{ value: T } | { failure: AttemptFailure }> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.#opts.attemptTimeoutMs);
    slot.breaker.take();
    slot.metrics.requests += 1;
    try {
      const value = await call(slot.member, AbortSignal.any([overall, timeout.signal]));
      slot.breaker.success();
      slot.metrics.successes += 1;
      return { value };
    } catch (err) {
      if (overall.aborted) {
        // The call ended (another member won — judged in #race —, the deadline, the caller): frees a probe slot.
        slot.breaker.release();
        return { failure: { member: refOf(slot.member), kind: 'timeout', message: 'abandoned' } };
      }
      const failure: AttemptFailure =
        err instanceof AttemptError
          ? err.failure
          : {
              member: refOf(slot.member),
              kind: 'malformed',
              message: err instanceof Error ? err.message : String(err),
            };
      if (FAILOVER_KINDS.has(failure.kind)) slot.breaker.failure();
      else slot.breaker.release();
      slot.metrics.failures[failure.kind] = (slot.metrics.failures[failure.kind] ?? 0) + 1;
      return { failure };
    } finally {
      clearTimeout(timer);
    }
  }
}

function emit(hook: ((e: KeyringEvent) => void) | undefined, event: KeyringEvent): void {
  if (!hook) return;
  try {
    hook(event);
  } catch {
    // Telemetry must never change the outcome of a wrap or unwrap.
  }
}

function invalid(message: string): KeyringError {
  return new KeyringError('INVALID_ARGUMENT', message);
}

function checkAad(aad: unknown): void {
  if (aad === undefined) return;
  if (!Array.isArray(aad) || !aad.every((a) => typeof a === 'string' && a.length <= 255)) {
    throw invalid('aad must be an array of strings of at most 255 characters');
  }
}

const describe = (m: MemberRef) => `${m.role} ${m.region}`;

function definitive(op: Op, f: AttemptFailure, failures: AttemptFailure[]): KeyringError {
  const code: KeyringErrorCode = f.kind === 'denied' ? 'DENIED' : f.kind === 'malformed' ? 'UNAVAILABLE' : 'REJECTED';
  const what =
    f.kind === 'denied'
      ? 'the caller has no access to this key (check the IAM policy and key ring)'
      : f.kind === 'malformed'
        ? 'the answer could not be read'
        : 'the ciphertext, AAD or request is not accepted (no other member would accept it either)';
  return new KeyringError(code, `${op} refused by ${describe(f.member)}: ${f.message}; ${what}`, failures);
}

function unavailable(op: Op, failures: AttemptFailure[]): KeyringError {
  const list = failures.map((f) => `${describe(f.member)}: ${f.kind}${f.status ? ` ${f.status}` : ''}`).join('; ');
  return new KeyringError('UNAVAILABLE', `No member could ${op} (${list})`, failures);
}

const URL_RE = /^https?:\/\/[^\s/]+/;

function validateMembers(members: MemberEndpoint[]): MemberEndpoint[] {
  if (!Array.isArray(members) || members.length === 0) throw invalid('members must list at least one member');
  return members.map((m, i) => {
    const at = `members[${i}]`;
    if (typeof m !== 'object' || m === null) throw invalid(`${at} must be an object`);
    if (m.role !== 'primary' && m.role !== 'duplicate') throw invalid(`${at}.role must be primary or duplicate`);
    for (const f of ['region', 'instanceId', 'keyId'] as const) {
      if (typeof m[f] !== 'string' || m[f].length === 0) throw invalid(`${at}.${f} must be a non-empty string`);
    }
    if (typeof m.url !== 'string' || !URL_RE.test(m.url)) throw invalid(`${at}.url must be an absolute http(s) URL`);
    if (m.keyRingId !== undefined && (typeof m.keyRingId !== 'string' || m.keyRingId === '')) {
      throw invalid(`${at}.keyRingId must be a non-empty string when given`);
    }
    return {
      role: m.role,
      region: m.region,
      url: m.url,
      instanceId: m.instanceId,
      keyId: m.keyId,
      ...(m.keyRingId ? { keyRingId: m.keyRingId } : {}),
    };
  });
}
