/**
 * Outgoing notifications as CloudEvents (structured JSON): to a webhook sink (optionally HMAC-signed like inbound
 * events) or to the IBM Cloud Event Notifications API (`POST …/instances/{id}/notifications`). A failed publish
 * throws; callers (the rotation service) log and carry on.
 */
import type { Notifier } from '../app/index.js';
import type { Clock, Random, Sensitive } from '../core/index.js';
import { AppError } from '../core/index.js';
import { signBody } from './auth.js';

/** CloudEvent `source` of everything lockstep publishes. */
export const LOCKSTEP_EVENT_SOURCE = '/lockstep';

const SEVERITY: Record<string, string> = {
  completed: 'LOW',
  healed: 'LOW',
  degraded: 'HIGH',
  diverged: 'HIGH',
  failed: 'HIGH',
};

function cloudEvent(e: { type: string; subject: string; data: Record<string, unknown> }, clock: Clock, random: Random) {
  return {
    specversion: '1.0',
    id: random.uuid(),
    source: LOCKSTEP_EVENT_SOURCE,
    type: e.type,
    subject: e.subject,
    time: new Date(clock.nowMs()).toISOString(),
    datacontenttype: 'application/json',
    data: e.data,
  };
}

async function post(url: string, body: string, headers: Record<string, string>, what: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(5_000),
    });
  } catch (err) {
    throw new AppError('UPSTREAM_UNAVAILABLE', `${what} unreachable`, { retryable: true, cause: err });
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status >= 300) {
    throw new AppError(
      res.status >= 500 || res.status === 429 ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_REJECTED',
      `${what} answered ${res.status}`,
      {
        retryable: res.status >= 500 || res.status === 429,
        details: { status: res.status },
      },
    );
  }
}

/** Publishes each notification as a CloudEvent to a webhook (the dev stack's sink locally). */
export function createWebhookNotifier(opts: {
  url: string;
  clock: Clock;
  random: Random;
  /** Signs the body (X-Lockstep-Timestamp / X-Lockstep-Signature) so the receiver can authenticate it. */
  signingSecret?: Sensitive<string>;
}): Notifier {
  return {
    async publish(e) {
      const body = JSON.stringify(cloudEvent(e, opts.clock, opts.random));
      const headers = opts.signingSecret
        ? signBody(opts.signingSecret.reveal(), body, Math.floor(opts.clock.nowMs() / 1000))
        : {};
      await post(opts.url, body, { 'ce-type': e.type, ...headers }, 'notification webhook');
    },
  };
}

/**
 * Publishes to IBM Cloud Event Notifications (an API source): `url` is
 * `https://<region>.event-notifications.cloud.ibm.com/event-notifications/v1/instances/<instance id>/notifications`.
 * `authorization` returns the `Authorization` header value (an IAM bearer token).
 */
export function createEventNotificationsNotifier(opts: {
  url: string;
  sourceId: string;
  authorization: () => Promise<string>;
  clock: Clock;
  random: Random;
}): Notifier {
  return {
    async publish(e) {
      const kind = e.type.split('.').pop() ?? e.type;
      const ce = cloudEvent(e, opts.clock, opts.random);
      const body = JSON.stringify({
        ...ce,
        source: opts.sourceId,
        ibmensourceid: opts.sourceId,
        ibmenseverity: SEVERITY[kind] ?? 'MEDIUM',
        ibmendefaultshort: `lockstep: ${e.subject} ${kind}`,
        ibmendefaultlong: `lockstep group ${e.subject}: ${kind}`,
      });
      await post(opts.url, body, { authorization: await opts.authorization() }, 'Event Notifications');
    },
  };
}
