/** Activity Tracker events (§7): CADF shape, severity rules, in-memory log and a retrying webhook sink. */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../core/index.js';
import type { CadfEvent } from './types.js';

const CRITICAL_ACTIONS = new Set(['kms.secrets.delete', 'kms.registrations.delete']);
const WARNING_ACTIONS = new Set([
  'kms.secrets.rotate',
  'kms.secrets.restore',
  'kms.secrets.enable',
  'kms.secrets.disable',
  'kms.secrets.setkeyfordeletion',
  'kms.secrets.unsetkeyfordeletion',
  'kms.policies.write',
  'kms.instance-policies.write',
]);
const CRITICAL_STATUS = new Set([401, 403, 503, 507]);
const WARNING_STATUS = new Set([400, 409, 424, 502, 504, 505]);

/** Severity by action, overridden by status (§7.2). */
export function severityOf(action: string, status: number): CadfEvent['severity'] {
  if (CRITICAL_STATUS.has(status)) return 'critical';
  if (WARNING_STATUS.has(status)) return 'warning';
  if (CRITICAL_ACTIONS.has(action)) return 'critical';
  if (WARNING_ACTIONS.has(action)) return 'warning';
  return 'normal';
}

/** `YYYY-MM-DDTHH:mm:ss.SS+0000` (§7.2). */
export function eventTime(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-08-12T10:00:00.123Z
  return `${iso.slice(0, 22)}+0000`;
}

const REASON_TYPES: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
};

export interface EventInput {
  nowMs: number;
  region: string;
  action: string;
  status: number;
  failureReason?: string;
  correlationId: string;
  initiator: { iamId: string; name: string; subType?: string; address: string; agent: string };
  targetCrn: string;
  targetName: string;
  alias?: string;
  logSourceCrn: string;
  requestData: Record<string, unknown>;
  responseData: Record<string, unknown>;
}

const SECRET_FIELDS = /^(payload|plaintext|ciphertext|nonce|encryptednonce|iv|material|token|authorization)$/i;

/** Drops any field that could carry material, nonces or tokens (defence in depth: handlers never put them there). */
function scrub(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !SECRET_FIELDS.test(k)));
}

export function buildEvent(e: EventInput): CadfEvent {
  const ok = e.status < 400;
  const verb = e.action.split('.').pop() ?? e.action;
  const typeURI =
    e.initiator.subType === 'User'
      ? 'service/security/account/user'
      : e.initiator.subType === 'Profile'
        ? 'service/security/account/profile'
        : 'service/security/account/serviceid';
  return {
    typeURI: 'http://schemas.dmtf.org/cloud/audit/1.0/event',
    id: randomUUID(),
    eventTime: eventTime(e.nowMs),
    action: e.action,
    outcome: ok ? 'success' : 'failure',
    message: `Key Protect: ${verb} ${e.targetName}${ok ? '' : ' -failure'}`,
    severity: severityOf(e.action, e.status),
    dataEvent: /\.(wrap|unwrap|rewrap|read|list|head)$/.test(e.action),
    correlationId: e.correlationId,
    initiator: {
      id: e.initiator.iamId,
      name: e.initiator.name,
      typeURI,
      authnId: e.initiator.iamId,
      authnName: e.initiator.name,
      credential: { type: e.initiator.subType === 'Profile' ? 'token' : 'apikey' },
      host: {
        address: e.initiator.address,
        addressType: e.initiator.address.includes(':') ? 'IPv6' : 'IPv4',
        agent: e.initiator.agent,
      },
    },
    target: {
      id: e.targetCrn,
      name: e.targetName,
      typeURI: 'kms/secrets',
      ...(e.alias ? { alias: e.alias } : {}),
    },
    observer: { name: 'ActivityTracker' },
    reason: {
      reasonCode: e.status,
      reasonType: REASON_TYPES[e.status] ?? String(e.status),
      ...(ok || !e.failureReason ? {} : { reasonForFailure: e.failureReason }),
    },
    requestData: scrub(e.requestData),
    responseData: scrub(e.responseData),
    logSourceCRN: e.logSourceCrn,
    saveServiceCopy: true,
    region: e.region,
  };
}

export interface WebhookSinkOptions {
  url: string;
  headers?: Record<string, string>;
  /** Attempts per event (default 5), backoff 100 ms doubling (wall clock). */
  maxAttempts?: number;
  logger: Logger;
}

/**
 * POSTs each event as JSON; retries with exponential backoff; never throws into the API path. `flush()` waits for
 * every delivery in flight (tests, close).
 */
export class WebhookSink {
  readonly #o: WebhookSinkOptions;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closed = false;
  delivered = 0;
  failed = 0;

  constructor(o: WebhookSinkOptions) {
    this.#o = o;
  }

  send(event: CadfEvent): void {
    if (this.#closed) return;
    const p = this.#deliver(event).finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  async #deliver(event: CadfEvent): Promise<void> {
    const attempts = this.#o.maxAttempts ?? 5;
    let delayMs = 100;
    for (let i = 1; i <= attempts; i++) {
      try {
        const res = await fetch(this.#o.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(this.#o.headers ?? {}) },
          body: JSON.stringify(event),
          signal: AbortSignal.any([AbortSignal.timeout(5000), this.#abort.signal]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 300) {
          this.delivered++;
          return;
        }
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          this.#o.logger.warn('kp-emulator: event webhook rejected an event', {
            status: res.status,
            action: event.action,
          });
          this.failed++;
          return;
        }
      } catch (err) {
        if (i === attempts)
          this.#o.logger.warn('kp-emulator: event webhook unreachable', { error: (err as Error).message });
      }
      if (this.#closed) break; // no retries once closed
      if (i < attempts) {
        await new Promise((r) => setTimeout(r, delayMs));
        delayMs *= 2;
      }
    }
    this.failed++;
  }

  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Stops retrying and aborts deliveries in flight. */
  close(): void {
    this.#closed = true;
    this.#abort.abort();
  }

  /** Waits up to `maxMs` for deliveries in flight, then closes. */
  async drainAndClose(maxMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
    this.close();
    await this.flush();
  }
}
