import { OPERATIONS, type OperationSpec, type ResponseSpec } from './operations.js';
import { SCHEMAS } from './shapes.js';

/**
 * The OpenAPI 3.1 document served at `/openapi.json`, assembled from the one definition of each shape
 * (`shapes.ts`) and operation (`operations.ts`) that the router also validates input with. The test suite validates
 * every response it receives against this document and lints it with IBM's OpenAPI ruleset (`.spectral.yaml`).
 */

const SECURITY: Record<OperationSpec['security'], unknown[]> = {
  bearer: [{ iamBearer: [] }],
  none: [],
  page: [{ uiSession: [] }],
  'page-optional': [{ uiSession: [] }, {}],
};

const TAGS = [
  { name: 'Groups', description: 'Groups of Key Protect root keys kept in lockstep' },
  { name: 'Lineage', description: 'The hash-chained version history and its proofs' },
  { name: 'Operations', description: 'Operator actions and the runs they start' },
  { name: 'DR', description: 'What the failover client reads, and the DR drills with their chained records' },
  { name: 'Page', description: 'The server-rendered timeline page' },
  { name: 'Meta', description: 'This document' },
];

function response(r: ResponseSpec): Record<string, unknown> {
  return {
    description: r.description,
    ...(r.headers ? { headers: r.headers } : {}),
    ...(r.content
      ? {
          content: Object.fromEntries(
            Object.entries(r.content).map(([type, schema], i) => [
              type,
              { schema, ...(r.example !== undefined && i === 0 ? { example: r.example } : {}) },
            ]),
          ),
        }
      : {}),
  };
}

/** One operation object of `paths`. */
export function operationObject(op: OperationSpec): Record<string, unknown> {
  return {
    operationId: op.operationId,
    summary: op.summary,
    description: op.description,
    tags: [...op.tags],
    security: SECURITY[op.security],
    ...(op.parameters.length ? { parameters: op.parameters.map((p) => ({ ...p })) } : {}),
    ...(op.requestBody
      ? {
          requestBody: {
            description: op.requestBody.description,
            required: op.requestBody.required,
            content: { [op.requestBody.mediaType]: { schema: op.requestBody.schema } },
          },
        }
      : {}),
    responses: Object.fromEntries(Object.entries(op.responses).map(([status, r]) => [status, response(r)])),
  };
}

/**
 * Builds the document; `serverUrl` goes into `servers` (defaults to the relative root). The result is a copy: editing
 * it never touches the schemas the router validates with.
 */
export function buildOpenApiDocument(serverUrl = '/'): Record<string, unknown> {
  return structuredClone(assemble(serverUrl));
}

function assemble(serverUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of Object.values(OPERATIONS) as OperationSpec[]) {
    paths[op.path] = { ...paths[op.path], [op.method.toLowerCase()]: operationObject(op) };
  }
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
        'Paging (IBM API handbook token pagination): `limit` (1–200) and `cursor`; a page carries `limit`, `first.href` and,',
        'unless it is the last, `next: {href, cursor}`. A cursor is opaque and bound to its query.',
      ].join('\n'),
    },
    servers: [{ url: serverUrl }],
    tags: TAGS,
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
          description:
            'Set by POST /ui/login: a sealed, short-lived session (AES-256-GCM, at most 30 min), never the IAM token; HttpOnly, SameSite=Strict, Secure unless served from a loopback http URL, path /ui',
        },
      },
      schemas: SCHEMAS,
    },
    paths,
  };
}
