import { ERROR_CODES } from '../core/index.js';
import { CSV_COLUMN_DOCS, CSV_COLUMNS } from './export.js';
import { drPaths, drSchemas } from './openapiDr.js';

/**
 * The OpenAPI 3.1 document served at `/openapi.json`. Hand-written; the test suite validates every response it
 * receives against the schemas here, so the document stays true.
 */
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: ref('Error') } },
});
const json = (description: string, schema: object, headers?: object) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/json': { schema } },
});

/**
 * An error from a page route: an HTML error page, or the router's own JSON error when the request never reached
 * the page (unknown query parameter, malformed or over-long path).
 */
const pageError = (description: string) => ({
  description,
  content: { 'text/html': { schema: { type: 'string' } }, 'application/json': { schema: ref('Error') } },
});
const routerErrors = {
  '400': errorResponse('Unknown query parameter, or a malformed or over-long path (VALIDATION_FAILED)'),
  default: errorResponse('Any other error, with a code from the error table'),
};

const commonErrors = {
  '400': errorResponse('Invalid parameter (VALIDATION_FAILED) or cursor (INVALID_CURSOR)'),
  '401': {
    ...errorResponse('No bearer token, or one that is not a valid IAM access token (UNAUTHENTICATED)'),
    headers: { 'WWW-Authenticate': { schema: { type: 'string' }, description: 'Bearer realm="lockstep"' } },
  },
  '403': errorResponse('The identity has no lockstep role, or not the one this route needs (FORBIDDEN)'),
  '503': errorResponse('IAM or the store is unavailable; retry later'),
  default: errorResponse('Any other error, with a code from the error table'),
};

const ms = (description: string) => ({ type: 'integer', minimum: 0, description });
const uuid = {
  type: 'string',
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
};
const sha256Hex = { type: 'string', pattern: '^[0-9a-f]{64}$' };

const schemas = {
  Error: {
    type: 'object',
    required: ['error'],
    additionalProperties: false,
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        additionalProperties: false,
        properties: {
          code: { type: 'string', enum: [...ERROR_CODES] },
          message: { type: 'string', description: 'What went wrong and what to fix (generic for 5xx)' },
          details: { type: 'object', description: 'Allowlisted context, e.g. the offending field' },
          requestId: { type: 'string' },
        },
      },
    },
  },
  Member: {
    type: 'object',
    required: ['role', 'region', 'instanceId', 'keyId', 'crn'],
    additionalProperties: false,
    properties: {
      role: { type: 'string', enum: ['primary', 'duplicate'] },
      region: { type: 'string' },
      instanceId: uuid,
      keyId: uuid,
      crn: { type: 'string' },
    },
  },
  Schedule: {
    type: 'object',
    additionalProperties: false,
    properties: {
      cron: { type: 'string' },
      intervalMs: { type: 'integer', minimum: 1 },
      timeZone: { type: 'string' },
      window: {
        type: 'object',
        required: ['start', 'end'],
        additionalProperties: false,
        properties: { start: { type: 'string' }, end: { type: 'string' } },
      },
      maxAgeMs: { type: 'integer', minimum: 1 },
      enabled: { type: 'boolean' },
    },
  },
  Group: {
    type: 'object',
    required: ['id', 'name', 'status', 'currentGeneration', 'members', 'schedule', 'escrowKey', 'createdAtMs'],
    additionalProperties: false,
    properties: {
      id: { type: 'string' },
      name: { type: 'string' },
      description: { type: 'string' },
      status: { type: 'string', enum: ['healthy', 'rotating', 'degraded', 'diverged', 'failed', 'drill-failed'] },
      statusReason: { type: 'string' },
      drillSchedule: {
        type: 'object',
        required: ['intervalMs'],
        additionalProperties: false,
        properties: { intervalMs: { type: 'integer', minimum: 1 }, enabled: { type: 'boolean' } },
      },
      lastDrill: ref('DrillSummary'),
      currentGeneration: { type: 'integer', minimum: 0 },
      lastRotatedAtMs: ms('When the current generation was completed'),
      nextDueAtMs: ms('Next time the scheduler looks at the group'),
      activeRunId: { type: 'string' },
      createdAtMs: ms('Creation time'),
      updatedAtMs: ms('Last change'),
      schedule: ref('Schedule'),
      members: { type: 'array', items: ref('Member') },
      escrowKey: {
        type: 'object',
        description: 'The root key lockstep wraps each material under (a reference; never the ciphertexts)',
        required: ['region', 'instanceId', 'keyId', 'crn'],
        additionalProperties: false,
        properties: { region: { type: 'string' }, instanceId: uuid, keyId: uuid, crn: { type: 'string' } },
      },
    },
  },
  GroupPage: {
    type: 'object',
    required: ['items'],
    additionalProperties: false,
    properties: {
      items: { type: 'array', items: ref('Group') },
      next: { type: 'string', description: 'Cursor of the next page; absent on the last page' },
    },
  },
  Trigger: {
    type: 'object',
    required: ['kind', 'by'],
    additionalProperties: false,
    properties: {
      kind: { type: 'string', enum: ['schedule', 'event', 'operator'] },
      by: { type: 'string' },
      reason: { type: 'string' },
    },
  },
  AtEvidence: {
    type: 'object',
    required: ['eventId', 'action', 'eventTimeMs', 'initiator', 'outcome'],
    additionalProperties: false,
    properties: {
      eventId: { type: 'string' },
      action: { type: 'string' },
      eventTimeMs: ms('Event time'),
      initiator: { type: 'string' },
      correlationId: { type: 'string' },
      outcome: { type: 'string' },
    },
  },
  LineageMember: {
    type: 'object',
    required: ['role', 'region', 'instanceId', 'keyId', 'crn', 'keyVersionId', 'rotatedAtMs', 'evidence'],
    additionalProperties: false,
    properties: {
      role: { type: 'string', enum: ['primary', 'duplicate'] },
      region: { type: 'string' },
      instanceId: uuid,
      keyId: uuid,
      crn: { type: 'string' },
      keyVersionId: uuid,
      rotatedAtMs: ms('When the member got this version'),
      evidence: { type: 'array', items: ref('AtEvidence') },
    },
  },
  CanaryEvidence: {
    type: 'object',
    required: ['wrappedAt', 'unwrappedAt', 'ciphertext', 'plaintextSha256', 'aad', 'reportedVersions', 'ok', 'atMs'],
    additionalProperties: false,
    properties: {
      wrappedAt: { type: 'string', description: 'CRN of the member that wrapped the canary DEK' },
      unwrappedAt: { type: 'array', items: { type: 'string' } },
      ciphertext: { type: 'string', description: 'Canary ciphertext (only unwraps with the material)' },
      plaintextSha256: { type: 'string' },
      aad: { type: 'array', items: { type: 'string' } },
      reportedVersions: { type: 'object', additionalProperties: { type: 'string' } },
      ok: { type: 'boolean' },
      atMs: ms('When the canary ran'),
    },
  },
  LineageRecord: {
    type: 'object',
    description:
      'The audit record of one generation. `hash` is SHA-256 over the canonical JSON of the record without ' +
      '`hash`; `prevHash` is the previous record’s hash (the chain). Never contains escrow ciphertexts.',
    required: [
      'groupId',
      'generation',
      'fingerprint',
      'trigger',
      'runId',
      'startedAtMs',
      'finishedAtMs',
      'members',
      'verification',
      'status',
      'prevHash',
      'hash',
    ],
    additionalProperties: false,
    properties: {
      groupId: { type: 'string' },
      generation: { type: 'integer', minimum: 1 },
      fingerprint: { type: 'string' },
      trigger: ref('Trigger'),
      runId: { type: 'string' },
      startedAtMs: ms('Run start'),
      finishedAtMs: ms('When the generation was recorded'),
      members: { type: 'array', items: ref('LineageMember') },
      verification: { type: 'array', items: ref('CanaryEvidence') },
      status: { type: 'string', enum: ['complete', 'degraded', 'diverged', 'superseded'] },
      notes: { type: 'array', items: { type: 'string' } },
      prevHash: { type: 'string' },
      hash: sha256Hex,
    },
  },
  GenerationPage: {
    type: 'object',
    required: ['items'],
    additionalProperties: false,
    properties: {
      items: { type: 'array', items: ref('LineageRecord'), description: 'Newest first' },
      next: { type: 'string', description: 'Cursor of the next (older) page; absent on the last page' },
    },
  },
  VersionLookup: {
    type: 'object',
    required: ['keyVersionId', 'groupId', 'generation', 'member', 'record'],
    additionalProperties: false,
    properties: {
      keyVersionId: uuid,
      groupId: { type: 'string' },
      generation: { type: 'integer', minimum: 1 },
      member: ref('LineageMember'),
      record: ref('LineageRecord'),
    },
  },
  Checkpoint: {
    type: 'object',
    description: 'A signed statement of a chain head: Ed25519 over the canonical JSON of the fields but `signature`',
    required: ['groupId', 'generation', 'headHash', 'signedAtMs', 'keyId', 'algorithm', 'signature'],
    additionalProperties: false,
    properties: {
      groupId: { type: 'string' },
      generation: { type: 'integer', minimum: 1 },
      headHash: sha256Hex,
      signedAtMs: ms('Signing time'),
      keyId: { type: 'string' },
      algorithm: { const: 'Ed25519' },
      signature: { type: 'string', description: 'base64' },
    },
  },
  ChainBreak: {
    type: 'object',
    required: ['generation', 'kind', 'message'],
    additionalProperties: false,
    properties: {
      generation: { type: 'integer' },
      kind: {
        type: 'string',
        enum: ['hash-mismatch', 'prev-hash-mismatch', 'gap', 'out-of-order', 'duplicate', 'wrong-group'],
      },
      message: { type: 'string', description: 'Where the chain is broken and what to look at' },
    },
  },
  CheckpointCheck: {
    type: 'object',
    required: ['generation', 'keyId', 'signedAtMs', 'status', 'message'],
    additionalProperties: false,
    properties: {
      generation: { type: 'integer' },
      keyId: { type: 'string' },
      signedAtMs: ms('Signing time'),
      status: {
        type: 'string',
        enum: ['valid', 'bad-signature', 'unknown-key', 'head-mismatch', 'beyond-chain', 'wrong-group'],
      },
      message: { type: 'string' },
    },
  },
  ChainReport: {
    type: 'object',
    description: 'Result of the chain check over the stored chain and every stored checkpoint',
    required: ['ok', 'length', 'breaks', 'checkpoints'],
    additionalProperties: false,
    properties: {
      ok: { type: 'boolean', description: 'No breaks and every checkpoint valid' },
      groupId: { type: 'string' },
      length: { type: 'integer', minimum: 0 },
      firstGeneration: { type: 'integer' },
      headGeneration: { type: 'integer' },
      headHash: { type: 'string' },
      breaks: { type: 'array', items: ref('ChainBreak') },
      checkpoints: { type: 'array', items: ref('CheckpointCheck') },
      firstBreak: ref('ChainBreak'),
      signedThroughGeneration: { type: 'integer', description: 'Highest generation covered by a valid checkpoint' },
      drills: ref('DrillChainReport'),
    },
  },
  PublicKey: {
    type: 'object',
    required: ['keyId', 'algorithm', 'pem'],
    additionalProperties: false,
    properties: {
      keyId: { type: 'string' },
      algorithm: { const: 'Ed25519' },
      pem: { type: 'string', description: 'SPKI PEM' },
    },
  },
  Proof: {
    type: 'object',
    required: ['groupId', 'checkedAtMs', 'records', 'head', 'chain', 'checkpoint', 'publicKeys', 'howToVerify'],
    additionalProperties: false,
    properties: {
      groupId: { type: 'string' },
      checkedAtMs: ms('When the server ran the check'),
      records: { type: 'integer', minimum: 0, description: 'Records in the chain' },
      head: {
        description: 'The newest record (null for an empty chain)',
        oneOf: [
          { type: 'null' },
          {
            type: 'object',
            required: ['generation', 'hash'],
            additionalProperties: false,
            properties: { generation: { type: 'integer', minimum: 1 }, hash: sha256Hex },
          },
        ],
      },
      chain: ref('ChainReport'),
      checkpoint: { oneOf: [{ type: 'null' }, ref('Checkpoint')], description: 'Latest signed checkpoint' },
      drillCheckpoint: {
        oneOf: [{ type: 'null' }, ref('DrillCheckpoint')],
        description: 'Latest signed head of the DR drill chain',
      },
      publicKeys: { type: 'array', items: ref('PublicKey') },
      howToVerify: { type: 'array', items: { type: 'string' } },
    },
  },
  RotationRequest: {
    type: 'object',
    additionalProperties: false,
    properties: {
      reason: { type: 'string', maxLength: 500, description: 'Recorded in the run and the lineage trigger' },
      force: { type: 'boolean', description: 'Rotate even if not due (the 1 h rule still applies)' },
    },
  },
  RotationAccepted: {
    type: 'object',
    required: ['runId', 'groupId', 'status', 'links'],
    additionalProperties: false,
    properties: {
      runId: { type: 'string' },
      groupId: { type: 'string' },
      status: { const: 'accepted' },
      links: {
        type: 'object',
        required: ['run'],
        additionalProperties: false,
        properties: { run: { type: 'string' } },
      },
    },
  },
  Run: {
    type: 'object',
    description: 'A rotation run (the persisted saga) without its escrow ciphertext',
    required: ['id', 'groupId', 'generation', 'kind', 'status', 'createdAtMs', 'updatedAtMs'],
    not: { required: ['escrow'] },
    properties: {
      id: { type: 'string' },
      groupId: { type: 'string' },
      generation: { type: 'integer', minimum: 0 },
      kind: { type: 'string' },
      status: { type: 'string', enum: ['pending', 'running', 'degraded', 'completed', 'failed', 'diverged'] },
      step: { type: 'string' },
      createdAtMs: ms('Created'),
      updatedAtMs: ms('Last saved'),
      nextAttemptAtMs: ms('Not before'),
    },
  },
  ...drSchemas,
} as const;

const p = {
  groupId: {
    name: 'groupId',
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$' },
  },
  n: { name: 'n', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } },
  keyVersionId: { name: 'keyVersionId', in: 'path', required: true, schema: uuid },
  runId: { name: 'runId', in: 'path', required: true, schema: { type: 'string', pattern: '^run-[a-z0-9-]{8,80}$' } },
  limit: {
    name: 'limit',
    in: 'query',
    schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    description: 'Page size',
  },
  cursor: {
    name: 'cursor',
    in: 'query',
    schema: { type: 'string', maxLength: 1024 },
    description: 'Opaque cursor from the previous page’s `next`; only valid with the same query',
  },
  since: {
    name: 'since',
    in: 'query',
    schema: { type: 'string' },
    description: 'Only generations finished at or after this time (RFC 3339 date-time, or ms since the epoch)',
  },
  until: {
    name: 'until',
    in: 'query',
    schema: { type: 'string' },
    description: 'Only generations finished at or before this time (RFC 3339 date-time, or ms since the epoch)',
  },
};

const bearer = [{ iamBearer: [] }];
const text = (description: string, type: string) => ({
  description,
  content: { [type]: { schema: { type: 'string' } } },
});

/** Builds the document; `serverUrl` goes into `servers` (defaults to the relative root). */
export function buildOpenApiDocument(serverUrl = '/'): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'lockstep version history API',
      version: '1.0.0',
      description: [
        'Which generation of material protected a key at a given time, which Key Protect version of each member',
        'holds it, proof that every region held the same material, and proof that no record was removed or rewritten.',
        '',
        'Authentication: IAM access tokens (`Authorization: Bearer <token>`), verified against the IAM JWKS.',
        'Role `auditor` reads; role `operator` reads and acts (rotations, runs). 401 means no or a bad token;',
        '403 the wrong role. Errors have the shape `{error:{code,message,details?,requestId?}}`.',
        '',
        'Paging: `limit` (1–200) and the opaque `next` cursor; a cursor is bound to its query.',
      ].join('\n'),
    },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: {
        iamBearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'IBM Cloud IAM access token (RS256, verified against the IAM JWKS)',
        },
        uiSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'lockstep_session',
          description: 'Set by POST /ui/login (holds the IAM token; HttpOnly, SameSite=Strict, path /ui)',
        },
      },
      schemas,
    },
    paths: {
      ...drPaths,
      '/openapi.json': {
        get: {
          operationId: 'getOpenApi',
          summary: 'This document (no authentication)',
          security: [],
          responses: {
            '200': json('The OpenAPI 3.1 document', { type: 'object', required: ['openapi'] }),
            ...routerErrors,
          },
        },
      },
      '/v1/groups': {
        get: {
          operationId: 'listGroups',
          summary: 'List groups',
          security: bearer,
          parameters: [p.limit, p.cursor],
          responses: { '200': json('A page of groups', ref('GroupPage')), ...commonErrors },
        },
      },
      '/v1/groups/{groupId}': {
        get: {
          operationId: 'getGroup',
          summary: 'One group',
          security: bearer,
          parameters: [p.groupId],
          responses: {
            '200': json('The group', ref('Group')),
            '404': errorResponse('Unknown group (GROUP_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/v1/groups/{groupId}/generations': {
        get: {
          operationId: 'listGenerations',
          summary: 'Lineage records of a group, newest first',
          security: bearer,
          parameters: [p.groupId, p.limit, p.cursor, p.since, p.until],
          responses: {
            '200': json('A page of lineage records', ref('GenerationPage')),
            '404': errorResponse('Unknown group (GROUP_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/v1/groups/{groupId}/generations/{n}': {
        get: {
          operationId: 'getGeneration',
          summary: 'Lineage record of generation n',
          security: bearer,
          parameters: [p.groupId, p.n],
          responses: {
            '200': json('The lineage record', ref('LineageRecord')),
            '404': errorResponse('Unknown group or generation (GROUP_NOT_FOUND, GENERATION_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/v1/versions/{keyVersionId}': {
        get: {
          operationId: 'getVersion',
          summary: 'Which group, generation and member a Key Protect key version belongs to',
          security: bearer,
          parameters: [p.keyVersionId],
          responses: {
            '200': json('The version and its lineage record', ref('VersionLookup')),
            '404': errorResponse('No lineage record holds this version (VERSION_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/v1/groups/{groupId}/proof': {
        get: {
          operationId: 'getProof',
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
          security: bearer,
          parameters: [p.groupId],
          responses: {
            '200': json('The proof', ref('Proof')),
            '404': errorResponse('Unknown group (GROUP_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/v1/export': {
        get: {
          operationId: 'exportLineage',
          summary: 'Every lineage record (all groups or one), as JSON lines or CSV',
          description: [
            'Records in (groupId, generation) order. JSONL: one canonical record (as in `LineageRecord`) per line.',
            'At most `limit` records per response (a Code Engine function answers with one body): when more follow,',
            'the `Link` header (rel="next") and `X-Lockstep-Next-Cursor` give the next page; the CSV header row is',
            'only on the first page. Concatenating the pages gives the whole export.',
            'CSV (RFC 4180, CRLF, header row): one row per member per generation; columns:',
            ...CSV_COLUMNS.map((c) => `- \`${c}\`: ${CSV_COLUMN_DOCS[c]}`),
          ].join('\n'),
          security: bearer,
          parameters: [
            {
              name: 'format',
              in: 'query',
              required: true,
              schema: { type: 'string', enum: ['jsonl', 'csv'] },
            },
            { ...p.groupId, in: 'query', required: false, description: 'Only this group' },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 10_000, default: 5_000 },
              description: 'Records per response',
            },
            {
              ...p.cursor,
              description: 'From the previous response’s `X-Lockstep-Next-Cursor`; same format and group',
            },
          ],
          responses: {
            '200': {
              description: 'The export (attachment), one page',
              headers: {
                'Content-Disposition': { schema: { type: 'string' } },
                'X-Lockstep-Records': { schema: { type: 'integer' }, description: 'Records in this response' },
                'X-Lockstep-Next-Cursor': {
                  schema: { type: 'string' },
                  description: 'Present when more records follow: pass it as `cursor`',
                },
                Link: { schema: { type: 'string' }, description: 'rel="next": the URL of the next page' },
              },
              content: {
                'application/x-ndjson': { schema: { type: 'string' } },
                'text/csv': { schema: { type: 'string' } },
              },
            },
            '404': errorResponse('Unknown group (GROUP_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/v1/groups/{groupId}/rotations': {
        post: {
          operationId: 'rotateNow',
          summary: 'Start a rotation now (operator)',
          description:
            'Claims the group and persists a pending run; the rotate function advances it on its next tick. ' +
            'Poll `GET /v1/runs/{runId}`.',
          security: bearer,
          parameters: [p.groupId],
          requestBody: { required: false, content: { 'application/json': { schema: ref('RotationRequest') } } },
          responses: {
            '202': json('Accepted', ref('RotationAccepted'), {
              Location: { schema: { type: 'string' }, description: 'The run' },
            }),
            '404': errorResponse('Unknown group (GROUP_NOT_FOUND)'),
            '409': errorResponse(
              'A run is in progress, or the 1 h rule refuses it (RUN_IN_PROGRESS, ROTATION_TOO_SOON)',
            ),
            '413': errorResponse('Body larger than 16 KiB (PAYLOAD_TOO_LARGE)'),
            '415': errorResponse('Body is not JSON (UNSUPPORTED_MEDIA_TYPE)'),
            ...commonErrors,
          },
        },
      },
      '/v1/runs/{runId}': {
        get: {
          operationId: 'getRun',
          summary: 'A rotation run (operator)',
          security: bearer,
          parameters: [p.runId],
          responses: {
            '200': json('The run', ref('Run')),
            '404': errorResponse('Unknown run (RUN_NOT_FOUND)'),
            ...commonErrors,
          },
        },
      },
      '/ui': {
        get: {
          operationId: 'uiHome',
          summary: 'Timeline page: every group (login form without a session)',
          security: [{ uiSession: [] }, {}],
          responses: {
            '200': text('The page', 'text/html'),
            '400': pageError('Unknown query parameter or malformed path'),
            '401': text('Login form (no or an expired session)', 'text/html'),
            '403': text('The identity has no lockstep role', 'text/html'),
            default: pageError('Error page (code and message from the error table)'),
          },
        },
      },
      '/ui/groups/{groupId}': {
        get: {
          operationId: 'uiGroup',
          summary: 'Timeline page of one group',
          security: [{ uiSession: [] }, {}],
          parameters: [p.groupId],
          responses: {
            '200': text('The page', 'text/html'),
            '400': pageError('Invalid group id, unknown query parameter or malformed path'),
            '401': text('Login form', 'text/html'),
            '403': text('No lockstep role', 'text/html'),
            '404': text('Unknown group', 'text/html'),
            default: pageError('Error page (code and message from the error table)'),
          },
        },
      },
      '/ui/login': {
        post: {
          operationId: 'uiLogin',
          summary: 'Start a page session from an IAM access token (or an API key, when IAM is configured)',
          security: [],
          requestBody: {
            required: true,
            content: {
              'application/x-www-form-urlencoded': {
                schema: {
                  type: 'object',
                  properties: { token: { type: 'string' }, apikey: { type: 'string' } },
                },
              },
            },
          },
          responses: {
            '303': { description: 'Logged in; redirect to /ui (sets the session cookie)' },
            '400': pageError('Malformed form, unknown query parameter or malformed path'),
            '401': text('Login form with the reason', 'text/html'),
            '403': text('No lockstep role', 'text/html'),
            '413': text('Form too large', 'text/html'),
            '415': text('Not a form', 'text/html'),
            default: pageError('Error page, e.g. 503 when IAM cannot exchange the API key'),
          },
        },
      },
      '/ui/logout': {
        post: {
          operationId: 'uiLogout',
          summary: 'End the page session',
          security: [],
          responses: { '303': { description: 'Redirect to /ui (clears the cookie)' }, ...routerErrors },
        },
      },
      '/ui/export': {
        get: {
          operationId: 'uiExport',
          summary: 'Export download for the page (same as /v1/export, authenticated by the page session)',
          security: [{ uiSession: [] }],
          parameters: [
            { name: 'format', in: 'query', required: true, schema: { type: 'string', enum: ['jsonl', 'csv'] } },
            { ...p.groupId, in: 'query', required: false },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 10_000, default: 5_000 },
              description: 'Records per response (as /v1/export)',
            },
            { ...p.cursor, description: 'From the previous response’s `X-Lockstep-Next-Cursor`' },
          ],
          responses: {
            '200': {
              description: 'The export (attachment), one page; paging headers as /v1/export',
              content: {
                'application/x-ndjson': { schema: { type: 'string' } },
                'text/csv': { schema: { type: 'string' } },
              },
            },
            '400': pageError('Invalid format, group id, limit or cursor'),
            '401': pageError('Login form (no or an expired session)'),
            '403': pageError('No lockstep role'),
            '404': pageError('Unknown group'),
            default: pageError('Error page (code and message from the error table)'),
          },
        },
      },
    },
  };
}
