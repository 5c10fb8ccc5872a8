/**
 * `events` (HTTP): a Cloud Logs alert relayed by Event Notifications (the path IBM delivers: one log example, maybe
 * truncated), or full Activity Tracker events (raw CADF or a batch). Authenticated (HMAC signature, static token
 * header or IAM bearer token). Every delivery is a wake-up: the groups it names or covers are verified against Key
 * Protect; the request is persisted first and answered within seconds (Event Notifications waits 10 s), whatever
 * is left is done by the next scheduler tick.
 */
import { handleDelivery, parseActivityPayload } from '../src/app/events.js';
import type { Authenticator, CeParams, CeResult } from '../src/codeengine/index.js';
import {
  createCeMain,
  EnvReader,
  hmacAuthenticator,
  iamBearerAuthenticator,
  perContainer,
  readEventsAuthConfig,
  readOwnIamIds,
  staticTokenAuthenticator,
} from '../src/codeengine/index.js';
import { jsonResponse } from '../src/core/index.js';
import { buildCore, clock, functionBasics } from './shared.js';

const FN = 'events';

const deps = perContainer(() =>
  buildCore(FN, process.env, (r) => ({ auth: readEventsAuthConfig(r), ownIamIds: readOwnIamIds(r) })),
);

// Authenticators are built from the environment at load time so a request is refused before any adapter exists.
function authenticators(): Authenticator[] {
  const r = new EnvReader(process.env);
  const cfg = readEventsAuthConfig(r);
  const iamUrl = (r.optional('IAM_URL') ?? r.optional('LOCKSTEP_IAM_URL') ?? 'https://iam.cloud.ibm.com').replace(
    /\/$/,
    '',
  );
  const out: Authenticator[] = [];
  if (cfg.hmacSecrets.length)
    out.push(hmacAuthenticator({ secrets: cfg.hmacSecrets, windowSeconds: cfg.windowSeconds }));
  if (cfg.tokens.length) out.push(staticTokenAuthenticator({ tokens: cfg.tokens }));
  if (cfg.iamIds.length)
    out.push(
      iamBearerAuthenticator({
        jwksUrl: `${iamUrl}/identity/keys`,
        issuer: `${iamUrl}/identity`,
        allowedIamIds: cfg.iamIds,
      }),
    );
  return out;
}

export const main: (params: CeParams) => Promise<CeResult> = createCeMain({
  ...functionBasics(FN),
  auth: { authenticators: authenticators() },
  rules: { methods: ['POST'], requireJson: true, maxBodyBytes: 1024 * 1024 },
  handler: async (event, context) => {
    const payload = parseActivityPayload(JSON.parse(event.request.body!.toString('utf8')));
    const d = await deps();
    const summary = await handleDelivery(
      {
        service: d.service,
        stores: d.stores,
        clock,
        logger: context.logger,
        ownIamIds: d.extra.ownIamIds,
        // Well within Event Notifications' 10 s timeout and the invocation's own limit.
        inlineBudgetMs: Math.max(0, Math.min(4_000, context.deadlineAtMs - clock.nowMs() - 2_000)),
      },
      payload,
    );
    // 503: an event could not be handled (the sender retries); 202: verification continues in the next tick.
    const status = summary.failed > 0 ? 503 : summary.verification.queued.length > 0 ? 202 : 200;
    return jsonResponse(status, summary);
  },
});
