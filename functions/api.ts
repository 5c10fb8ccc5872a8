/** `api` (HTTP): the audit and operator API (`/v1/*`, `/openapi.json`, `/ui`), IAM bearer tokens verified per route. */
import { createApi } from '../src/api/index.js';
import type { CeParams, CeResult } from '../src/codeengine/index.js';
import { createCeMain, perContainer, readApiConfig } from '../src/codeengine/index.js';
import { buildCore, clock, functionBasics } from './shared.js';

const FN = 'api';

const handler = perContainer(async () => {
  const d = await buildCore(FN, process.env, (r) => readApiConfig(r));
  const iamUrl = d.config.iamUrl.replace(/\/$/, '');
  return createApi({
    stores: d.stores,
    service: d.service,
    drills: d.drills,
    keyProtectEndpoints: d.config.kpEndpoints,
    auth: {
      jwksUrl: `${iamUrl}/identity/keys`,
      issuer: `${iamUrl}/identity`,
      roles: d.extra.roles,
      // the page's API-key login: local stack only (createApi refuses a non-loopback IAM)
      ...(d.extra.devUiApiKeyLogin ? { iamTokenUrl: `${iamUrl}/identity/token` } : {}),
    },
    ...(d.extra.sessionSecret ? { sessionSecret: d.extra.sessionSecret } : {}),
    checkpointPublicKeys: d.extra.checkpointPublicKeys,
    clock,
    logger: d.logger,
    ...(d.extra.publicBaseUrl ? { publicBaseUrl: d.extra.publicBaseUrl } : {}),
  });
});

export const main: (params: CeParams) => Promise<CeResult> = createCeMain({
  ...functionBasics(FN),
  handler: async (event) => (await handler())(event.request),
});
