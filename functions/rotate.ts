/**
 * `rotate` (cron): every ping runs one scheduler tick within the invocation's deadline. Pings are authenticated by
 * the secret their cron subscription carries in its data (`LOCKSTEP_CRON_SECRETS`); a ping without it gets 401 and
 * does nothing. Also callable over HTTP (POST, IAM bearer token of an allowed identity) to run a tick now.
 */
import { runTick } from '../src/app/tick.js';
import type { CeParams, CeResult } from '../src/codeengine/index.js';
import {
  createCeMain,
  EnvReader,
  iamBearerAuthenticator,
  perContainer,
  readCronSecrets,
} from '../src/codeengine/index.js';
import { jsonResponse } from '../src/core/index.js';
import { buildCore, clock, functionBasics, random } from './shared.js';

const FN = 'rotate';

/**
 * The `rotate` function over an environment. Nothing is read at import time: `main` builds it from `process.env` on
 * its first call (a composition root such as the dev stack may call this with its own environment instead).
 */
export function createRotateMain(processEnv: NodeJS.ProcessEnv): (params: CeParams) => Promise<CeResult> {
  const deps = perContainer(() =>
    buildCore(FN, processEnv, (r) => ({
      concurrency: r.int('LOCKSTEP_TICK_CONCURRENCY', 4, 1, 32),
      stopClaimingMarginMs: r.int('LOCKSTEP_TICK_MARGIN_MS', 20_000, 0, 110_000),
      requestBudgetPerInstance: r.int('LOCKSTEP_KP_BUDGET_PER_INSTANCE', 200, 1, 100_000),
      operatorIamIds: r.list('LOCKSTEP_TICK_IAM_IDS'),
      cronSecrets: readCronSecrets(r),
    })),
  );

  // Authentication is built from the environment at load time, so a request is refused before any adapter exists.
  const env = new EnvReader(processEnv);
  const iamUrl = (env.optional('IAM_URL') ?? env.optional('LOCKSTEP_IAM_URL') ?? 'https://iam.cloud.ibm.com').replace(
    /\/$/,
    '',
  );
  // Only the listed identities may trigger a tick over HTTP (an empty list must not mean "any IAM identity": the IAM
  // key set signs tokens of every IBM Cloud account); cron pings need a secret of LOCKSTEP_CRON_SECRETS in their data.
  const tickIamIds = env.list('LOCKSTEP_TICK_IAM_IDS');
  const cronSecrets = readCronSecrets(env);

  return createCeMain({
    ...functionBasics(FN),
    auth: {
      cronSecrets,
      authenticators: tickIamIds.length
        ? [
            iamBearerAuthenticator({
              jwksUrl: `${iamUrl}/identity/keys`,
              issuer: `${iamUrl}/identity`,
              allowedIamIds: tickIamIds,
            }),
          ]
        : [],
    },
    rules: { methods: ['POST'] },
    handler: async (event, context) => {
      const d = await deps();
      // Ids in the signed history are lockstep's own: a server-generated tick id for a ping (its Ce-Id is the
      // caller's choice), the verified IAM id for an HTTP call. The lease holder gets a nonce inside runTick.
      const tick = `${event.kind === 'cron' ? 'cron' : 'tick'}:${random.uuid()}`;
      const summary = await runTick(
        {
          service: d.service,
          stores: d.stores,
          drills: d.drills,
          clock,
          random,
          logger: context.logger,
          config: {
            concurrency: d.extra.concurrency,
            stopClaimingMarginMs: d.extra.stopClaimingMarginMs,
            requestBudgetPerInstance: d.extra.requestBudgetPerInstance,
          },
        },
        {
          deadlineAtMs: context.deadlineAtMs,
          holder: FN,
          triggerId: event.kind === 'cron' ? tick : (context.principal?.subject ?? tick),
        },
      );
      // A ping's answer is a status, never the summary (group and run ids, failures): runTick logged the summary.
      if (event.kind === 'cron') return jsonResponse(200, { ok: true, tick });
      return jsonResponse(200, { ...summary, tick });
    },
  });
}

let built: ((params: CeParams) => Promise<CeResult>) | undefined;
export const main: (params: CeParams) => Promise<CeResult> = (params) => {
  built ??= createRotateMain(process.env);
  return built(params);
};
