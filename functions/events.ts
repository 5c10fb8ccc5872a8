/**
 * `events` (HTTP): Activity Tracker events (raw CADF, a batch, or an Event Notifications CloudEvent carrying Cloud
 * Logs alert data). Authenticated (HMAC signature, static token header or IAM bearer token), deduplicated by event
 * id, answered within seconds.
 */
import { handleActivityEvents, parseActivityPayload } from '../src/app/events.js';
import type { Authenticator, CeParams, CeResult } from '../src/codeengine/index.js';
import {
  createCeMain,
  EnvReader,
  hmacAuthenticator,
  iamBearerAuthenticator,
  perContainer,
  readEventsAuthConfig,
  staticTokenAuthenticator,
} from '../src/codeengine/index.js';
import { jsonResponse } from '../src/core/index.js';
import { buildCore, clock, functionBasics } from './shared.js';

const FN = 'events';

const deps = perContainer(() => buildCore(FN, process.env, (r) => readEventsAuthConfig(r)));

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
    const { source, events } = parseActivityPayload(JSON.parse(event.request.body!.toString('utf8')));
    const d = await deps();
    const summary = await handleActivityEvents(
      { service: d.service, stores: d.stores, clock, logger: context.logger, ownIamIds: d.config.ownIamIds },
      events,
      { source },
    );
    return jsonResponse(summary.failed > 0 ? 503 : 200, summary);
  },
});
