/**
 * OpenAPI schemas and paths of the DR routes (`/v1/groups/{groupId}/endpoints`, `/v1/groups/{groupId}/drills`),
 * kept in one block that `openapi.ts` spreads into its document.
 */
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const err = (description: string) => ({ description, content: { 'application/json': { schema: ref('Error') } } });
const ms = (description: string) => ({ type: 'integer', minimum: 0, description });
const hex64 = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const nullable = (schema: object) => ({ oneOf: [{ type: 'null' }, schema] });
const groupId = {
  name: 'groupId',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$' },
};
const errors = {
  '400': err('Invalid parameter (VALIDATION_FAILED) or cursor (INVALID_CURSOR)'),
  '401': err('No or an invalid bearer token (UNAUTHENTICATED)'),
  '403': err('The identity has no lockstep role, or not the one this route needs (FORBIDDEN)'),
  '404': err('Unknown group (GROUP_NOT_FOUND)'),
  '503': err('The store or Key Protect is unavailable; retry later'),
  default: err('Any other error, with a code from the error table'),
};
const health = ['ok', 'unreachable', 'failed'];

export const drSchemas = {
  GroupEndpoints: {
    type: 'object',
    description: 'What a failover client (`lockstep/client`) needs to reach every member of a group',
    required: ['groupId', 'status', 'currentGeneration', 'generatedAtMs', 'refreshAfterSeconds', 'members'],
    additionalProperties: false,
    properties: {
      groupId: { type: 'string' },
      status: { type: 'string' },
      currentGeneration: { type: 'integer', minimum: 0 },
      generatedAtMs: ms('When this descriptor was produced'),
      refreshAfterSeconds: { type: 'integer', minimum: 1, description: 'Re-read the descriptor this often' },
      members: {
        type: 'array',
        items: {
          type: 'object',
          required: ['role', 'region', 'instanceId', 'keyId', 'crn', 'keyRingId', 'endpoints', 'health'],
          additionalProperties: false,
          properties: {
            role: { type: 'string', enum: ['primary', 'duplicate'] },
            region: { type: 'string' },
            instanceId: { type: 'string' },
            keyId: { type: 'string' },
            crn: { type: 'string' },
            keyRingId: { type: ['string', 'null'], description: 'Key ring (X-Kms-Key-Ring), null for default' },
            endpoints: {
              type: 'object',
              required: ['public', 'private'],
              additionalProperties: false,
              properties: {
                public: { type: 'string' },
                private: { type: ['string', 'null'], description: 'private.<region>.kms.cloud.ibm.com, or null' },
              },
            },
            health: {
              type: 'object',
              required: ['status', 'source'],
              additionalProperties: false,
              properties: {
                status: { type: 'string', enum: [...health, 'unknown'] },
                source: { type: 'string', enum: ['drill', 'none'] },
                checkedAtMs: ms('When the latest drill checked the member'),
                drillSeq: { type: 'integer', minimum: 1 },
              },
            },
          },
        },
      },
    },
  },
  DrillMember: {
    type: 'object',
    required: ['role', 'region', 'instanceId', 'keyId', 'crn', 'endpoints', 'health', 'canaries', 'switchover'],
    additionalProperties: false,
    properties: {
      role: { type: 'string', enum: ['primary', 'duplicate'] },
      region: { type: 'string' },
      instanceId: { type: 'string' },
      keyId: { type: 'string' },
      crn: { type: 'string' },
      endpoints: {
        type: 'object',
        required: ['public', 'private'],
        additionalProperties: false,
        properties: { public: { type: 'string' }, private: { type: ['string', 'null'] } },
      },
      health: { type: 'string', enum: health },
      keyState: { type: 'string' },
      currentVersionId: { type: 'string' },
      lastRotateAtMs: ms('Last rotation (or creation) of the key'),
      earliestRotationAtMs: ms('When the 1-rotation-per-hour rule lets the key rotate again'),
      canaries: {
        type: 'array',
        items: {
          type: 'object',
          required: ['generation', 'ok'],
          additionalProperties: false,
          properties: {
            generation: { type: 'integer', minimum: 1 },
            ok: { type: 'boolean' },
            keyVersionId: { type: 'string' },
            error: { type: 'string' },
          },
        },
      },
      switchover: nullable({
        type: 'object',
        required: ['ok'],
        additionalProperties: false,
        properties: {
          ok: { type: 'boolean' },
          latencyMs: { type: 'integer', minimum: 0 },
          keyVersionId: { type: 'string' },
          error: { type: 'string' },
        },
      }),
    },
  },
  DrillRecord: {
    type: 'object',
    description:
      'One DR drill: chained per group (prevHash/hash as generation records, seq 1, 2, …) and anchored to the generation chain head it ran against',
    required: [
      'kind',
      'groupId',
      'seq',
      'drillId',
      'trigger',
      'startedAtMs',
      'finishedAtMs',
      'lineageHead',
      'generationsChecked',
      'switchover',
      'members',
      'result',
      'problems',
      'prevHash',
      'hash',
    ],
    additionalProperties: false,
    properties: {
      kind: { const: 'drill' },
      groupId: { type: 'string' },
      seq: { type: 'integer', minimum: 1 },
      drillId: { type: 'string' },
      trigger: ref('Trigger'),
      startedAtMs: ms('Start'),
      finishedAtMs: ms('End'),
      lineageHead: nullable({
        type: 'object',
        required: ['generation', 'hash'],
        additionalProperties: false,
        properties: { generation: { type: 'integer', minimum: 1 }, hash: hex64 },
      }),
      generationsChecked: { type: 'array', items: { type: 'integer', minimum: 1 } },
      switchover: {
        type: 'object',
        required: ['wrappedAt', 'keyVersionId', 'ciphertext', 'plaintextSha256', 'aad', 'switchoverMs', 'answeredBy'],
        additionalProperties: false,
        properties: {
          wrappedAt: { type: ['string', 'null'] },
          keyVersionId: { type: ['string', 'null'] },
          ciphertext: { type: ['string', 'null'] },
          plaintextSha256: nullable(hex64),
          aad: { type: 'array', items: { type: 'string' } },
          switchoverMs: { type: ['integer', 'null'], minimum: 0 },
          answeredBy: { type: ['string', 'null'] },
        },
      },
      members: { type: 'array', items: ref('DrillMember') },
      result: { type: 'string', enum: ['passed', 'failed'] },
      problems: { type: 'array', items: { type: 'string' } },
      prevHash: hex64,
      hash: hex64,
    },
  },
  DrillCheckpoint: {
    type: 'object',
    required: ['chain', 'groupId', 'seq', 'headHash', 'signedAtMs', 'keyId', 'algorithm', 'signature'],
    additionalProperties: false,
    properties: {
      chain: { const: 'drills' },
      groupId: { type: 'string' },
      seq: { type: 'integer', minimum: 1 },
      headHash: hex64,
      signedAtMs: ms('Signing time'),
      keyId: { type: 'string' },
      algorithm: { const: 'Ed25519' },
      signature: { type: 'string', description: 'base64 Ed25519 over the canonical JSON of the other fields' },
    },
  },
  DrillSummary: {
    type: 'object',
    required: ['seq', 'drillId', 'atMs', 'result', 'problems', 'hash', 'members'],
    additionalProperties: false,
    properties: {
      seq: { type: 'integer', minimum: 1 },
      drillId: { type: 'string' },
      atMs: ms('When the drill finished'),
      result: { type: 'string', enum: ['passed', 'failed'] },
      problems: { type: 'array', items: { type: 'string' } },
      hash: hex64,
      members: {
        type: 'array',
        items: {
          type: 'object',
          required: ['crn', 'health'],
          additionalProperties: false,
          properties: { crn: { type: 'string' }, health: { type: 'string', enum: health } },
        },
      },
    },
  },
  DrillChainReport: {
    type: 'object',
    required: ['ok', 'length', 'breaks', 'checkpoints', 'unsigned'],
    additionalProperties: false,
    properties: {
      ok: { type: 'boolean' },
      length: { type: 'integer', minimum: 0 },
      headSeq: { type: 'integer' },
      headHash: { type: 'string' },
      breaks: {
        type: 'array',
        items: {
          type: 'object',
          required: ['seq', 'kind', 'message'],
          additionalProperties: false,
          properties: { seq: { type: 'integer' }, kind: { type: 'string' }, message: { type: 'string' } },
        },
      },
      checkpoints: {
        type: 'array',
        items: {
          type: 'object',
          required: ['seq', 'keyId', 'signedAtMs', 'status', 'message'],
          additionalProperties: false,
          properties: {
            seq: { type: 'integer' },
            keyId: { type: 'string' },
            signedAtMs: { type: 'integer' },
            status: { type: 'string' },
            message: { type: 'string' },
          },
        },
      },
      signedThroughSeq: { type: 'integer' },
      unsigned: { type: 'integer', minimum: 0 },
    },
  },
  DrillPage: {
    type: 'object',
    required: ['items', 'checkpoint'],
    additionalProperties: false,
    properties: {
      items: { type: 'array', items: ref('DrillRecord') },
      checkpoint: nullable(ref('DrillCheckpoint')),
      next: { type: 'string' },
    },
  },
} as const;

const bearer = [{ iamBearer: [] }];

export const drPaths = {
  '/v1/groups/{groupId}/endpoints': {
    get: {
      operationId: 'getGroupEndpoints',
      summary: 'Each member’s role, region, public and private Key Protect URL, instance, key, key ring and health',
      description:
        'Read by the failover client (`GroupKeyring.fromApi`). Health comes from the latest DR drill. Auditor role is enough.',
      security: bearer,
      parameters: [groupId],
      responses: {
        '200': { description: 'The descriptor', content: { 'application/json': { schema: ref('GroupEndpoints') } } },
        ...errors,
      },
    },
  },
  '/v1/groups/{groupId}/drills': {
    get: {
      operationId: 'listDrills',
      summary: 'DR drill records of a group, newest first, with the latest signed drill checkpoint',
      security: bearer,
      parameters: [
        groupId,
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
        { name: 'cursor', in: 'query', schema: { type: 'string', maxLength: 1024 } },
      ],
      responses: {
        '200': { description: 'A page of drills', content: { 'application/json': { schema: ref('DrillPage') } } },
        ...errors,
      },
    },
    post: {
      operationId: 'runDrill',
      summary: 'Run a DR drill now (operator); answers with the recorded drill',
      security: bearer,
      parameters: [groupId],
      requestBody: {
        required: false,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              additionalProperties: false,
              properties: { reason: { type: 'string', maxLength: 500 } },
            },
          },
        },
      },
      responses: {
        '201': {
          description: 'The drill record (result passed or failed)',
          content: { 'application/json': { schema: ref('DrillRecord') } },
        },
        '409': err('Another drill of the group is running (RUN_IN_PROGRESS)'),
        '413': err('Body larger than 16 KiB (PAYLOAD_TOO_LARGE)'),
        '415': err('Body is not JSON (UNSUPPORTED_MEDIA_TYPE)'),
        ...errors,
      },
    },
  },
} as const;
