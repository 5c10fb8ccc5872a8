import { CSV_COLUMN_DOCS, CSV_COLUMNS } from './export.js';
import type { Schema } from './schema.js';
import { groupId, id, int, MAX_GENERATION, oneOfValues, ref, runId, text, uuid } from './shapes.js';

/**
 * Every operation of the API, once: the router takes method, path, parameters and request body from here and
 * validates input against them; `openapi.ts` turns the same objects into `paths`. See README.md "How to add a route".
 */

/** A path or query parameter. Query and path values arrive as strings and are read as `schema.type`. */
export interface ParamSpec {
  name: string;
  in: 'path' | 'query';
  required?: boolean;
  description: string;
  schema: Schema;
}

export interface ResponseSpec {
  description: string;
  /** Media type → schema. */
  content?: Record<string, Schema>;
  headers?: Record<string, { description: string; schema: Schema }>;
  example?: unknown;
}

export interface OperationSpec {
  operationId: string;
  method: 'GET' | 'POST';
  /** Path template: `/v1/groups/{groupId}`. */
  path: string;
  summary: string;
  description: string;
  tags: readonly string[];
  /** bearer: IAM access token; none: public; page: the page session cookie (optional: the login form otherwise). */
  security: 'bearer' | 'none' | 'page' | 'page-optional';
  parameters: readonly ParamSpec[];
  requestBody?: { description: string; required: boolean; mediaType: string; schema: Schema };
  responses: Record<string, ResponseSpec>;
}

const MAX_PAGE = 200;
const json = (description: string, schema: Schema, extra: Omit<ResponseSpec, 'description' | 'content'> = {}) => ({
  description,
  content: { 'application/json': schema },
  ...extra,
});
const error = (description: string): ResponseSpec => json(description, ref('Error'));
const html = (description: string): ResponseSpec => ({
  description,
  content: { 'text/html': text('HTML page', 5_000_000) },
});
/** An error from a page route: an HTML page, or the router's JSON error when the request never reached the page. */
const pageError = (description: string): ResponseSpec => ({
  description,
  content: { 'text/html': text('HTML error page', 5_000_000), 'application/json': ref('Error') },
});

const stringHeader = (description: string, maxLength = 2000) => ({
  description,
  schema: text(description, maxLength, 1),
});

const routerErrors = {
  '400': error('Unknown query parameter, or a malformed or over-long path (VALIDATION_FAILED)'),
  default: error('Any other error, with a code from the error table'),
};
const bearerErrors = {
  '400': error('Invalid parameter (VALIDATION_FAILED) or cursor (INVALID_CURSOR)'),
  '401': json('No bearer token, or one that is not a valid IAM access token (UNAUTHENTICATED)', ref('Error'), {
    headers: { 'WWW-Authenticate': stringHeader('Bearer realm="lockstep"[, error="invalid_token", ...]') },
  }),
  '403': error('The identity has no lockstep role, or not the one this route needs (FORBIDDEN)'),
  '503': error('IAM or the store is unavailable; retry later (STORE_UNAVAILABLE, UPSTREAM_UNAVAILABLE)'),
  default: error('Any other error, with a code from the error table'),
};
const groupNotFound = { '404': error('Unknown group (GROUP_NOT_FOUND)') };

/** Parameters shared by several operations. */
export const P = {
  groupId: { name: 'groupId', in: 'path', required: true, description: 'The group id', schema: groupId() },
  n: {
    name: 'n',
    in: 'path',
    required: true,
    description: 'The generation number',
    schema: int('Generation', 1, MAX_GENERATION),
  },
  keyVersionId: {
    name: 'keyVersionId',
    in: 'path',
    required: true,
    description: 'A Key Protect key version id of any member',
    schema: uuid('Key version id'),
  },
  runId: { name: 'runId', in: 'path', required: true, description: 'The run id', schema: runId() },
  limit: {
    name: 'limit',
    in: 'query',
    description: 'Page size',
    schema: { ...int('Page size', 1, MAX_PAGE), default: 50 },
  },
  cursor: {
    name: 'cursor',
    in: 'query',
    description: 'Opaque cursor from the previous page’s `next`; only valid with the same query',
    schema: id('Cursor', '^[A-Za-z0-9_.-]+$', 1024),
  },
  since: {
    name: 'since',
    in: 'query',
    description: 'Only generations finished at or after this time (RFC 3339 date-time, or ms since the epoch)',
    schema: id('RFC 3339 date-time (2026-01-31T00:00:00Z) or epoch milliseconds', '^[0-9][0-9TZtz:.+-]*$', 40),
  },
  until: {
    name: 'until',
    in: 'query',
    description: 'Only generations finished at or before this time (RFC 3339 date-time, or ms since the epoch)',
    schema: id('RFC 3339 date-time (2026-01-31T00:00:00Z) or epoch milliseconds', '^[0-9][0-9TZtz:.+-]*$', 40),
  },
  format: {
    name: 'format',
    in: 'query',
    required: true,
    description: 'jsonl (one canonical record per line) or csv',
    schema: oneOfValues('Export format', ['jsonl', 'csv']),
  },
  exportGroupId: { name: 'groupId', in: 'query', description: 'Only this group', schema: groupId() },
  exportLimit: {
    name: 'limit',
    in: 'query',
    description: 'Records per response',
    schema: { ...int('Records per response', 1, 10_000), default: 5_000 },
  },
} as const satisfies Record<string, ParamSpec>;

const exportResponseContent = {
  'application/x-ndjson': text('One canonical lineage record (JSON) per line', 5_000_000),
  'text/csv': text('RFC 4180 CSV, CRLF line ends', 5_000_000),
};

const EXAMPLE_MEMBER = {
  role: 'primary',
  region: 'us-south',
  instanceId: '11111111-2222-3333-4444-555555555555',
  keyId: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  crn: 'crn:v1:bluemix:public:kms:us-south:a/0123456789abcdef:11111111-2222-3333-4444-555555555555:key:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
};

const EXAMPLE_GROUP = {
  id: 'payments',
  name: 'Payments root key',
  status: 'healthy',
  currentGeneration: 3,
  createdAtMs: 1767225600000,
  schedule: { intervalMs: 2592000000 },
  members: [EXAMPLE_MEMBER],
  escrowKey: {
    region: 'us-south',
    instanceId: '11111111-2222-3333-4444-555555555555',
    keyId: 'ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee',
    crn: 'crn:v1:bluemix:public:kms:us-south:a/0123456789abcdef:11111111-2222-3333-4444-555555555555:key:ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee',
  },
};

const EXAMPLE_VERSION_ID = '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9';
const EXAMPLE_LINEAGE_MEMBER = {
  ...EXAMPLE_MEMBER,
  keyVersionId: EXAMPLE_VERSION_ID,
  rotatedAtMs: 1767225650000,
  evidence: [],
};
const EXAMPLE_RECORD = {
  groupId: 'payments',
  generation: 3,
  fingerprint: 'fp1:3f1c0a9b8e7d6c5b4a39281706f5e4d3',
  trigger: { kind: 'schedule', by: 'cron:7b0e4c52-1a2b-4c3d-9e8f-0a1b2c3d4e5f' },
  runId: 'run-payments-3-a8k2m1',
  startedAtMs: 1767225600000,
  finishedAtMs: 1767225660000,
  members: [EXAMPLE_LINEAGE_MEMBER],
  verification: [],
  status: 'complete',
  prevHash: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  hash: '60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752',
};

/** The `/v1` API, the document itself and the timeline page. */
/** `GET /v1/groups/{groupId}/drills|evidence`: a group's seq-chain records, newest first, with its latest checkpoint. */
function chainListOp(o: {
  operationId: string;
  segment: 'drills' | 'evidence';
  summary: string;
  description: string;
  tag: string;
  page: string;
  collection: string;
}): OperationSpec {
  return {
    operationId: o.operationId,
    method: 'GET',
    path: `/v1/groups/{groupId}/${o.segment}`,
    summary: o.summary,
    description: o.description,
    tags: [o.tag],
    security: 'bearer',
    parameters: [P.groupId, P.limit, P.cursor],
    responses: {
      '200': json(o.page, ref(o.collection), {
        example: {
          items: [],
          limit: 50,
          first: { href: `/v1/groups/payments/${o.segment}?limit=50` },
          checkpoint: null,
        },
      }),
      ...groupNotFound,
      ...bearerErrors,
    },
  };
}

/** `POST /ui/runs/{runId}/retry|stop`: the page's run forms share everything but their words. */
function uiRunAction(action: 'retry' | 'stop', summary: string, posted: string): OperationSpec {
  return {
    operationId: action === 'retry' ? 'uiRetryRun' : 'uiStopRun',
    method: 'POST',
    path: `/ui/runs/{runId}/${action}`,
    summary,
    description: `Posted from the group page${posted} (Origin checked); redirects back to it.`,
    tags: ['Page'],
    security: 'page',
    parameters: [P.runId],
    requestBody: {
      description: 'The run action form',
      required: true,
      mediaType: 'application/x-www-form-urlencoded',
      schema: ref('RunActionForm'),
    },
    responses: {
      '303': {
        description: 'Done; redirect to the group page',
        headers: { Location: stringHeader('Where to go next', 2100) },
      },
      '401': pageError('Login form (no or an expired session)'),
      '403': pageError('Not an operator, or posted from another origin (or without an Origin header)'),
      '409': pageError('The run does not allow it (RUN_STATE_INVALID, RUN_IN_PROGRESS, LEASE_HELD)'),
      default: pageError('Error page (code and message from the error table)'),
    },
  };
}

export const OPERATIONS = {
  getOpenApi: {
    operationId: 'getOpenApi',
    method: 'GET',
    path: '/openapi.json',
    summary: 'This document (no authentication)',
    description: 'The OpenAPI 3.1 document of this API.',
    tags: ['Meta'],
    security: 'none',
    parameters: [],
    responses: {
      '200': json('The OpenAPI 3.1 document', ref('OpenApiDocument'), {
        example: { openapi: '3.1.0', info: { title: 'lockstep version history API' }, paths: {} },
      }),
      ...routerErrors,
    },
  },
  listGroups: {
    operationId: 'listGroups',
    method: 'GET',
    path: '/v1/groups',
    summary: 'List groups',
    description: 'Every group in id order, a page at a time.',
    tags: ['Groups'],
    security: 'bearer',
    parameters: [P.limit, P.cursor],
    responses: {
      '200': json('A page of groups', ref('GroupCollection'), {
        example: { items: [EXAMPLE_GROUP], limit: 50, first: { href: '/v1/groups?limit=50' } },
      }),
      ...bearerErrors,
    },
  },
  getGroup: {
    operationId: 'getGroup',
    method: 'GET',
    path: '/v1/groups/{groupId}',
    summary: 'One group',
    description: 'The group, its members, schedule and status.',
    tags: ['Groups'],
    security: 'bearer',
    parameters: [P.groupId],
    responses: {
      '200': json('The group', ref('Group'), { example: EXAMPLE_GROUP }),
      ...groupNotFound,
      ...bearerErrors,
    },
  },
  listGenerations: {
    operationId: 'listGenerations',
    method: 'GET',
    path: '/v1/groups/{groupId}/generations',
    summary: 'Lineage records of a group, newest first',
    description: 'The hash-chained lineage records, newest first, optionally within a time range.',
    tags: ['Lineage'],
    security: 'bearer',
    parameters: [P.groupId, P.limit, P.cursor, P.since, P.until],
    responses: {
      '200': json('A page of lineage records', ref('LineageRecordCollection'), {
        example: { items: [EXAMPLE_RECORD], limit: 1, first: { href: '/v1/groups/payments/generations?limit=1' } },
      }),
      ...groupNotFound,
      ...bearerErrors,
    },
  },
  getGeneration: {
    operationId: 'getGeneration',
    method: 'GET',
    path: '/v1/groups/{groupId}/generations/{n}',
    summary: 'Lineage record of generation n',
    description: 'The record exactly as chained.',
    tags: ['Lineage'],
    security: 'bearer',
    parameters: [P.groupId, P.n],
    responses: {
      '200': json('The lineage record', ref('LineageRecord'), { example: EXAMPLE_RECORD }),
      '404': error('Unknown group or generation (GROUP_NOT_FOUND, GENERATION_NOT_FOUND)'),
      ...bearerErrors,
    },
  },
  getVersion: {
    operationId: 'getVersion',
    method: 'GET',
    path: '/v1/versions/{keyVersionId}',
    summary: 'Which group, generation and member a Key Protect key version belongs to',
    description: 'Looks a key version of any member up in every group’s lineage.',
    tags: ['Lineage'],
    security: 'bearer',
    parameters: [P.keyVersionId],
    responses: {
      '200': json('The version and its lineage record', ref('VersionLookup'), {
        example: {
          keyVersionId: EXAMPLE_VERSION_ID,
          groupId: 'payments',
          generation: 3,
          member: EXAMPLE_LINEAGE_MEMBER,
          record: EXAMPLE_RECORD,
        },
      }),
      '404': error('No lineage record holds this version (VERSION_NOT_FOUND)'),
      ...bearerErrors,
    },
  },
  getProof: {
    operationId: 'getProof',
    method: 'GET',
    path: '/v1/groups/{groupId}/proof',
    summary: 'Chain check, latest signed checkpoint and the public keys to verify it offline',
    description: [
      'To re-verify independently of lockstep:',
      '1. Download the records: `GET /v1/export?format=jsonl&groupId=<id>` (oldest first).',
      '2. For each record, recompute `hash` = SHA-256 (hex) of the RFC 8785 canonical JSON of the record',
      '   without `hash` (keys sorted, no whitespace, UTF-8), and check `prevHash` equals the previous record’s',
      '   `hash` (the first record’s `prevHash` is the genesis value, 64 zeros; generations have no gaps).',
      '3. Verify `checkpoint.signature` (base64 Ed25519) over the canonical JSON of the checkpoint without',
      '   `signature`, with the public key in `publicKeys` whose `keyId` matches; pin that key out of band',
      '   (`keyId` = first 16 hex digits of SHA-256 over its SPKI DER).',
      '4. Check that `checkpoint.headHash` equals the `hash` of record `checkpoint.generation`: nothing up to',
      '   the checkpoint was removed or rewritten. Records after it must chain onto it.',
      'The same steps are listed in `howToVerify` of the response.',
    ].join('\n'),
    tags: ['Lineage'],
    security: 'bearer',
    parameters: [P.groupId],
    responses: {
      '200': json('The proof', ref('Proof'), {
        example: {
          groupId: 'payments',
          checkedAtMs: 1767312000000,
          records: 0,
          head: null,
          chain: { ok: true, length: 0, breaks: [], checkpoints: [] },
          checkpoint: null,
          publicKeys: [],
          howToVerify: ['Download the records: GET /v1/export?format=jsonl&groupId=payments'],
          verification: {
            mode: 'incremental',
            lastFullCheckAtMs: 1767312000000,
            breaks: 0,
            checkpoints: 3,
            listedAtMost: 20,
          },
        },
      }),
      ...groupNotFound,
      ...bearerErrors,
    },
  },
  exportLineage: {
    operationId: 'exportLineage',
    method: 'GET',
    path: '/v1/export',
    summary: 'Every lineage record (all groups or one), as JSON lines or CSV',
    description: [
      'Records in (groupId, generation) order. JSONL: one canonical record (as in `LineageRecord`) per line.',
      'At most `limit` records and about 1 MB per response (a Code Engine function answers with one body): when more follow,',
      'the `Link` header (rel="next") and `X-Lockstep-Next-Cursor` give the next page; the CSV header row is',
      'only on the first page. Concatenating the pages gives the whole export.',
      'CSV (RFC 4180, CRLF, header row): one row per member per generation; columns:',
      ...CSV_COLUMNS.map((c) => `- \`${c}\`: ${CSV_COLUMN_DOCS[c]}`),
    ].join('\n'),
    tags: ['Lineage'],
    security: 'bearer',
    parameters: [P.format, P.exportGroupId, P.exportLimit, P.cursor],
    responses: {
      '200': {
        description: 'The export (attachment), one page',
        headers: {
          'Content-Disposition': stringHeader('attachment; filename="..."', 300),
          'X-Lockstep-Records': { description: 'Records in this response', schema: int('Records', 0, 10_000) },
          'X-Lockstep-Next-Cursor': stringHeader('Present when more records follow: pass it as `cursor`', 1024),
          Link: stringHeader('rel="next": the URL of the next page', 3000),
        },
        content: exportResponseContent,
      },
      ...groupNotFound,
      ...bearerErrors,
    },
  },
  rotateNow: {
    operationId: 'rotateNow',
    method: 'POST',
    path: '/v1/groups/{groupId}/rotations',
    summary: 'Start a rotation now (operator)',
    description:
      'Claims the group and persists a pending run; the rotate function advances it on its next tick. ' +
      'Poll `GET /v1/runs/{runId}`.',
    tags: ['Operations'],
    security: 'bearer',
    parameters: [P.groupId],
    requestBody: {
      description: 'Why, and whether to rotate although not due (at most 16 KiB)',
      required: false,
      mediaType: 'application/json',
      schema: ref('RotationRequest'),
    },
    responses: {
      '202': json('Accepted', ref('RotationAccepted'), {
        headers: { Location: stringHeader('Path of the run', 2100) },
        example: {
          runId: 'run-payments-4-k3j9x2',
          groupId: 'payments',
          status: 'accepted',
          links: { run: '/v1/runs/run-payments-4-k3j9x2' },
        },
      }),
      ...groupNotFound,
      '409': error('A run is in progress, or the 1 h rule refuses it (RUN_IN_PROGRESS, ROTATION_TOO_SOON)'),
      '413': error('Body larger than 16 KiB (PAYLOAD_TOO_LARGE)'),
      '415': error('Body is not JSON (UNSUPPORTED_MEDIA_TYPE)'),
      ...bearerErrors,
    },
  },
  getRun: {
    operationId: 'getRun',
    method: 'GET',
    path: '/v1/runs/{runId}',
    summary: 'A rotation run (auditor)',
    description: 'The saga’s progress, without its escrow ciphertext (for every role).',
    tags: ['Operations'],
    security: 'bearer',
    parameters: [P.runId],
    responses: {
      '200': json('The run', ref('Run'), {
        example: {
          id: 'run-payments-4-k3j9x2',
          groupId: 'payments',
          generation: 4,
          kind: 'rotation',
          status: 'running',
          step: 'stage',
          createdAtMs: 1767312000000,
          updatedAtMs: 1767312004000,
        },
      }),
      '404': error('Unknown run (RUN_NOT_FOUND)'),
      ...bearerErrors,
    },
  },
  retryRun: {
    operationId: 'retryRun',
    method: 'POST',
    path: '/v1/runs/{runId}/retry',
    summary: 'Retry a run now (operator)',
    description:
      'Re-opens an unfinished, failed or stopped run: a fresh deadline, no backoff, blocked members pending again. ' +
      'The next tick advances it (the plan step re-reads every member, so the 1 h rule still holds). A stopped run ' +
      'rolls forward with its escrowed material while its generation is still the next one.',
    tags: ['Operations'],
    security: 'bearer',
    parameters: [P.runId],
    requestBody: {
      description: 'Why (at most 16 KiB)',
      required: false,
      mediaType: 'application/json',
      schema: ref('RunActionRequest'),
    },
    responses: {
      '202': json('Re-opened', ref('RunActionResult'), {
        headers: { Location: stringHeader('Path of the run', 2100) },
        example: {
          runId: 'run-payments-4-k3j9x2',
          groupId: 'payments',
          action: 'retried',
          status: 'pending',
          step: 'plan',
          groupStatus: 'rotating',
          links: { run: '/v1/runs/run-payments-4-k3j9x2' },
        },
      }),
      '404': error('Unknown run (RUN_NOT_FOUND)'),
      '409': error(
        'Completed, diverged or superseded (RUN_STATE_INVALID); another run holds the group (RUN_IN_PROGRESS); a worker is advancing it right now (LEASE_HELD)',
      ),
      '413': error('Body larger than 16 KiB (PAYLOAD_TOO_LARGE)'),
      '415': error('Body is not JSON (UNSUPPORTED_MEDIA_TYPE)'),
      ...bearerErrors,
    },
  },
  stopRun: {
    operationId: 'stopRun',
    method: 'POST',
    path: '/v1/runs/{runId}/stop',
    summary: 'Stop a rotation run safely, before its primary is promoted (operator)',
    description:
      'Ends the run with status `stopped` (never resumed by the tick) and records what it left: duplicates already ' +
      'staged keep the material (the group is degraded until a retry rolls forward or the next rotation supersedes ' +
      'it); the escrow stays with the run. Refused once the primary may hold the new material: then the run can ' +
      'only finish (retry it).',
    tags: ['Operations'],
    security: 'bearer',
    parameters: [P.runId],
    requestBody: {
      description: 'Why (at most 16 KiB)',
      required: false,
      mediaType: 'application/json',
      schema: ref('RunActionRequest'),
    },
    responses: {
      '200': json('Stopped', ref('RunActionResult'), {
        example: {
          runId: 'run-payments-4-k3j9x2',
          groupId: 'payments',
          action: 'stopped',
          status: 'stopped',
          step: 'stage',
          groupStatus: 'healthy',
          links: { run: '/v1/runs/run-payments-4-k3j9x2' },
        },
      }),
      '404': error('Unknown run (RUN_NOT_FOUND)'),
      '409': error(
        'Finished, not a rotation, or past promotion (RUN_STATE_INVALID); a worker is advancing it right now (LEASE_HELD)',
      ),
      '413': error('Body larger than 16 KiB (PAYLOAD_TOO_LARGE)'),
      '415': error('Body is not JSON (UNSUPPORTED_MEDIA_TYPE)'),
      ...bearerErrors,
    },
  },
  getGroupEndpoints: {
    operationId: 'getGroupEndpoints',
    method: 'GET',
    path: '/v1/groups/{groupId}/endpoints',
    summary: 'Members’ Key Protect URLs, key rings and health (for the failover client)',
    description:
      'Each member’s role, region, public and private Key Protect URL, instance, key, key ring and health, read by ' +
      '`GroupKeyring.fromApi` of `lockstep/client`. Health comes from the latest DR drill. Auditor role is enough.',
    tags: ['DR'],
    security: 'bearer',
    parameters: [P.groupId],
    responses: {
      '200': json('The descriptor', ref('GroupEndpoints'), {
        example: {
          groupId: 'payments',
          status: 'healthy',
          currentGeneration: 3,
          generatedAtMs: 1767312000000,
          refreshAfterSeconds: 300,
          members: [
            {
              role: 'primary',
              region: 'us-south',
              instanceId: '7c3a2b1e-0d4f-4a5b-9c8d-1e2f3a4b5c6d',
              keyId: '0f1e2d3c-4b5a-4968-8776-655443322110',
              crn: 'crn:v1:bluemix:public:kms:us-south:a/0123456789abcdef0123456789abcdef:7c3a2b1e-0d4f-4a5b-9c8d-1e2f3a4b5c6d:key:0f1e2d3c-4b5a-4968-8776-655443322110',
              keyRingId: null,
              endpoints: {
                public: 'https://us-south.kms.cloud.ibm.com',
                private: 'https://private.us-south.kms.cloud.ibm.com',
              },
              health: { status: 'ok', source: 'drill', checkedAtMs: 1767312000000, drillSeq: 4 },
            },
          ],
        },
      }),
      ...groupNotFound,
      ...bearerErrors,
    },
  },
  listDrills: chainListOp({
    operationId: 'listDrills',
    segment: 'drills',
    summary: 'DR drill records of a group, newest first',
    description: 'The chained drill records, newest first, with the latest signed drill checkpoint.',
    tag: 'DR',
    page: 'A page of drills',
    collection: 'DrillCollection',
  }),
  listEvidence: chainListOp({
    operationId: 'listEvidence',
    segment: 'evidence',
    summary: 'Late Activity Tracker evidence records of a group, newest first',
    description:
      'Activity Tracker evidence of lockstep’s own calls that arrived after its generation record was written: a chain of its own per group, each record naming that generation record by its hash, newest first, with the latest signed evidence checkpoint. The proof verifies the chain (`chain.evidence`); the JSONL export carries it as `"kind":"evidence"` lines.',
    tag: 'Lineage',
    page: 'A page of evidence records',
    collection: 'EvidenceCollection',
  }),
  runDrill: {
    operationId: 'runDrill',
    method: 'POST',
    path: '/v1/groups/{groupId}/drills',
    summary: 'Run a DR drill now (operator)',
    description:
      'Unwraps the stored canary of every retained generation at every member, wraps a fresh DEK at the primary and ' +
      'unwraps it at each duplicate with the primary treated as down; answers with the recorded (chained) drill.',
    tags: ['DR'],
    security: 'bearer',
    parameters: [P.groupId],
    requestBody: {
      description: 'Why (at most 16 KiB)',
      required: false,
      mediaType: 'application/json',
      schema: ref('DrillRequest'),
    },
    responses: {
      '201': json('The drill record (result passed or failed)', ref('DrillRecord'), {
        headers: { Location: stringHeader('Path of the group’s drills', 2100) },
      }),
      ...groupNotFound,
      '409': error('Another drill of the group is running (RUN_IN_PROGRESS)'),
      '413': error('Body larger than 16 KiB (PAYLOAD_TOO_LARGE)'),
      '415': error('Body is not JSON (UNSUPPORTED_MEDIA_TYPE)'),
      ...bearerErrors,
    },
  },
  uiHome: {
    operationId: 'uiHome',
    method: 'GET',
    path: '/ui',
    summary: 'Timeline page: every group (login form without a session)',
    description: 'Server-rendered HTML, no scripts.',
    tags: ['Page'],
    security: 'page-optional',
    parameters: [],
    responses: {
      '200': html('The page'),
      '400': pageError('Unknown query parameter or malformed path'),
      '401': pageError('Login form (no or an expired session)'),
      '403': pageError('The identity has no lockstep role'),
      default: pageError('Error page (code and message from the error table)'),
    },
  },
  uiGroup: {
    operationId: 'uiGroup',
    method: 'GET',
    path: '/ui/groups/{groupId}',
    summary: 'Timeline page of one group',
    description: 'Status, chain badge, checkpoint and one card per generation.',
    tags: ['Page'],
    security: 'page-optional',
    parameters: [P.groupId],
    responses: {
      '200': html('The page'),
      '400': pageError('Invalid group id, unknown query parameter or malformed path'),
      '401': pageError('Login form'),
      '403': pageError('No lockstep role'),
      '404': pageError('Unknown group'),
      default: pageError('Error page (code and message from the error table)'),
    },
  },
  uiLogin: {
    operationId: 'uiLogin',
    method: 'POST',
    path: '/ui/login',
    summary: 'Start a page session from an IAM access token (or an API key, local stack only)',
    description: 'Takes an IAM access token, or an API key when IAM is configured; sets the session cookie.',
    tags: ['Page'],
    security: 'none',
    parameters: [],
    requestBody: {
      description: 'The login form',
      required: true,
      mediaType: 'application/x-www-form-urlencoded',
      schema: ref('LoginForm'),
    },
    responses: {
      '303': {
        description: 'Logged in; redirect to /ui (sets the session cookie)',
        headers: { Location: stringHeader('Where to go next', 2100) },
      },
      '400': pageError('Malformed form, unknown query parameter or malformed path'),
      '401': pageError('Login form with the reason'),
      '403': pageError('No lockstep role'),
      '413': pageError('Form too large'),
      '415': pageError('Not a form'),
      default: pageError('Error page, e.g. 503 when IAM cannot exchange the API key'),
    },
  },
  uiLogout: {
    operationId: 'uiLogout',
    method: 'POST',
    path: '/ui/logout',
    summary: 'End the page session',
    description: 'Clears the session cookie.',
    tags: ['Page'],
    security: 'none',
    parameters: [],
    responses: {
      '303': {
        description: 'Redirect to /ui (clears the cookie)',
        headers: { Location: stringHeader('Where to go next', 2100) },
      },
      '403': pageError('Posted from another origin'),
      ...routerErrors,
    },
  },
  uiRetryRun: uiRunAction('retry', 'Page form: retry a run now (operator; as POST /v1/runs/{runId}/retry)', ''),
  uiStopRun: uiRunAction(
    'stop',
    'Page form: stop a run safely (operator; as POST /v1/runs/{runId}/stop)',
    ' with the confirmation box ticked',
  ),
  uiExport: {
    operationId: 'uiExport',
    method: 'GET',
    path: '/ui/export',
    summary: 'Export download for the page (as /v1/export, with the page session)',
    description: 'Same data and paging as `/v1/export`, authenticated by the page session.',
    tags: ['Page'],
    security: 'page',
    parameters: [P.format, { ...P.exportGroupId }, P.exportLimit, P.cursor],
    responses: {
      '200': {
        description: 'The export (attachment), one page; paging headers as /v1/export',
        content: exportResponseContent,
      },
      '400': pageError('Invalid format, group id, limit or cursor'),
      '401': pageError('Login form (no or an expired session)'),
      '403': pageError('No lockstep role'),
      '404': pageError('Unknown group'),
      default: pageError('Error page (code and message from the error table)'),
    },
  },
} as const satisfies Record<string, OperationSpec>;

export type OperationId = keyof typeof OPERATIONS;
