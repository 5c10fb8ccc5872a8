/**
 * The version history API (the `api` function): `/v1/*` routes for auditors and operators, `/openapi.json` and the
 * timeline page under `/ui`, over the transport-neutral `HttpRequest`/`HttpResponse`.
 */
export { type ApiAuthConfig, ApiRole, type Permission, type Principal } from './auth.js';
export { type ApiDeps, type ApiHandler, createApi, MAX_BODY_BYTES } from './createApi.js';
export {
  CSV_COLUMN_DOCS,
  CSV_COLUMNS,
  drillsFromJsonl,
  EXPORT_FORMATS,
  type ExportFormat,
  evidenceFromJsonl,
  parseCsv,
  recordsFromCsv,
  recordsFromJsonl,
} from './export.js';
export { type ErrorBody, httpStatusByCode, toErrorResponse } from './httpStatus.js';
export { buildOpenApiDocument } from './openapi.js';
export { FULL_CHECK_EVERY_MS, HOW_TO_VERIFY, PAGE_RECORDS, PROOF_LIST_LIMIT, type ProofDocument } from './proof.js';
export { type HttpServerHandle, type ServeHttpOptions, serveHttp } from './serveHttp.js';
export { SESSION_COOKIE } from './uiRoutes.js';
