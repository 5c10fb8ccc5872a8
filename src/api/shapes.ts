import { ERROR_CODES, GroupStatus, ID_PATTERNS, LineageStatus, MemberRole } from '../core/index.js';
import { ChainBreakKind, CheckpointStatus } from '../lineage/index.js';
import type { Schema } from './schema.js';

/**
 * Every named request and response shape of the API, once (JSON Schema 2020-12 / OpenAPI 3.1). The OpenAPI document
 * (`components.schemas`) and the router's input validation both read these objects. To add a field: add it here, with
 * a description and bounds (`npm test` runs IBM's OpenAPI ruleset over the document and validates every response the
 * suites receive against it).
 */

/** `{$ref}` to a component schema. */
export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });

/** Printable text: no control characters but tab, line feed and carriage return. */
export const PRINTABLE = '^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$';
/** Largest epoch-millisecond time a JavaScript Date holds. */
const MAX_TIME_MS = 8_640_000_000_000_000;
const MAX_INT32 = 2_147_483_647;

export const text = (description: string, maxLength = 1000, minLength = 0): Schema => ({
  type: 'string',
  description,
  minLength,
  maxLength,
  pattern: PRINTABLE,
});
export const id = (description: string, pattern: string, maxLength: number, minLength = 1): Schema => ({
  type: 'string',
  description,
  minLength,
  maxLength,
  pattern,
});
export const oneOfValues = (description: string, values: readonly string[]): Schema => ({
  type: 'string',
  description,
  enum: [...values],
});
/** Epoch milliseconds. */
export const ms = (description: string): Schema => ({
  type: 'integer',
  format: 'int64',
  minimum: 0,
  maximum: MAX_TIME_MS,
  description,
});
export const int = (description: string, minimum = 0, maximum = MAX_INT32): Schema => ({
  type: 'integer',
  format: maximum > MAX_INT32 ? 'int64' : 'int32',
  minimum,
  maximum,
  description,
});
export const bool = (description: string): Schema => ({ type: 'boolean', description });
export const list = (description: string, items: Schema, maxItems = 1000): Schema => ({
  type: 'array',
  description,
  minItems: 0,
  maxItems,
  items,
});
/** A closed object: unknown fields are refused on input and documented as absent on output. */
export const obj = (description: string, properties: Record<string, Schema>, required: string[] = []): Schema => ({
  type: 'object',
  description,
  ...(required.length ? { required } : {}),
  additionalProperties: false,
  properties,
});

/**
 * A page of a collection, as IBM's API handbook describes token pagination: the items, the `limit` used, a link to
 * the first page and, unless this is the last page, a link to the next one with its cursor.
 */
export const page = (description: string, itemsDescription: string, item: string): Schema =>
  obj(
    description,
    {
      items: list(itemsDescription, ref(item), 200),
      limit: int('The page size used', 1, 200),
      first: ref('PageLink'),
      next: ref('NextPageLink'),
    },
    ['items', 'limit', 'first'],
  );

export const groupId = (description = 'Group id: 1-63 lower-case letters, digits or inner hyphens') =>
  id(description, ID_PATTERNS.groupId, 63);
export const uuid = (description: string) => id(description, ID_PATTERNS.uuid, 36, 36);
export const crn = (description: string) => id(description, ID_PATTERNS.crn, 300);
export const region = (description = 'IBM Cloud region, e.g. us-south') => id(description, ID_PATTERNS.regionId, 9, 5);
export const runId = (description = 'Run id') => id(description, ID_PATTERNS.runId, 84, 12);
const sha256Hex = (description: string) => id(description, '^[0-9a-f]{64}$', 64, 64);
/** Largest generation the API accepts: nine digits (one rotation an hour for 100,000 years). */
export const MAX_GENERATION = 999_999_999;
const generation = (description = 'Generation number (1 = the first material)') => int(description, 1, MAX_GENERATION);
const role = oneOfValues(
  'The member’s role: the primary wraps; duplicates are the DR copies',
  Object.values(MemberRole),
);
const ed25519 = oneOfValues('Signature algorithm', ['Ed25519']);

/**
 * The schemas of a chain of its own per group (`seq` 1, 2, …) with signed heads: DR drills and late evidence.
 * `X` names them (`XCheckpoint`, `XChainBreak`, `XCheckpointCheck`, `XChainReport`, `XCollection`).
 */
function seqChainSchemas<X extends 'Drill' | 'Evidence'>(
  X: X,
  chain: 'drills' | 'evidence',
  what: { one: string; many: string; never: string },
) {
  return {
    [`${X}Checkpoint`]: obj(
      `A signed head of the ${what.one} chain`,
      {
        chain: oneOfValues(`Always ${chain} (never ${what.never})`, [chain]),
        groupId: groupId(),
        seq: int(`Sequence number of the ${what.one} record signed`, 1),
        headHash: sha256Hex(`Hash of that ${what.one} record`),
        signedAtMs: ms('Signing time'),
        keyId: id('Key id', '^[0-9a-f]{16}$', 16, 16),
        algorithm: oneOfValues('Signature algorithm', ['Ed25519']),
        signature: id('base64 Ed25519 over the canonical JSON of the other fields', '^[A-Za-z0-9+/=]+$', 200),
      },
      ['chain', 'groupId', 'seq', 'headHash', 'signedAtMs', 'keyId', 'algorithm', 'signature'],
    ),
    [`${X}ChainBreak`]: obj(
      `A break in the ${what.one} chain`,
      { seq: int('Sequence number'), kind: text('What is wrong', 40, 1), message: text('Explanation', 2000) },
      ['seq', 'kind', 'message'],
    ),
    [`${X}CheckpointCheck`]: obj(
      `A stored ${what.one} checkpoint and its check`,
      {
        seq: int('Signed sequence number'),
        keyId: text('Key id', 64),
        signedAtMs: ms('Signing time'),
        status: text('valid, bad-signature, unknown-key, …', 40, 1),
        message: text('Explanation', 2000),
      },
      ['seq', 'keyId', 'signedAtMs', 'status', 'message'],
    ),
    [`${X}ChainReport`]: obj(
      `Result of the ${what.one} chain check`,
      {
        ok: bool(`No breaks and every ${what.one} checkpoint valid`),
        length: int(`${what.one} records`),
        headSeq: int(`Newest ${what.one} record`),
        headHash: text(`Hash of the newest ${what.one} record`, 64),
        breaks: list('Every break', ref(`${X}ChainBreak`), 10_000),
        checkpoints: list(`Every ${what.one} checkpoint and its check`, ref(`${X}CheckpointCheck`), 100_000),
        signedThroughSeq: int(`Highest ${what.one} record covered by a valid checkpoint`),
        unsigned: int(`${what.many} after the last valid checkpoint`),
      },
      ['ok', 'length', 'breaks', 'checkpoints', 'unsigned'],
    ),
    [`${X}Collection`]: obj(
      `A page of ${what.one} records, newest first, with the latest signed ${what.one} checkpoint`,
      {
        items: list(`The ${what.many} of this page`, ref(`${X}Record`), 200),
        limit: int('The page size used', 1, 200),
        first: ref('PageLink'),
        next: ref('NextPageLink'),
        checkpoint: {
          description: `Latest signed ${what.one} checkpoint (null if none)`,
          oneOf: [{ type: ['null'] }, ref(`${X}Checkpoint`)],
        },
      },
      ['items', 'limit', 'first', 'checkpoint'],
    ),
  } as Record<`${X}${'Checkpoint' | 'ChainBreak' | 'CheckpointCheck' | 'ChainReport' | 'Collection'}`, Schema>;
}

export const SCHEMAS = {
  Error: obj(
    'Every error response: `{error: {...}}` with the code from the error table',
    { error: ref('ErrorDetail') },
    ['error'],
  ),
  ErrorDetail: obj(
    'What went wrong',
    {
      code: oneOfValues('Stable error code (src/core/errors.ts); the HTTP status follows from it', ERROR_CODES),
      message: text('What went wrong and what to fix (generic for 5xx)', 2000, 1),
      details: {
        type: 'object',
        description: 'Allowlisted context, e.g. the offending `field`, an `allow`ed method list, a `runId`',
        additionalProperties: { description: 'A context value (string, number or boolean)' },
      },
      requestId: text('The request id, also in the `X-Request-Id` header; quote it when reporting a 5xx', 200, 1),
    },
    ['code', 'message'],
  ),
  Member: obj(
    'One Key Protect root key of a group',
    {
      role,
      region: region(),
      instanceId: uuid('Key Protect instance GUID'),
      keyId: uuid('Key Protect key id'),
      crn: crn('The key’s CRN (how Activity Tracker names it)'),
    },
    ['role', 'region', 'instanceId', 'keyId', 'crn'],
  ),
  EscrowKey: obj(
    'The root key lockstep wraps each material under (a reference; never the ciphertexts)',
    {
      region: region(),
      instanceId: uuid('Key Protect instance GUID'),
      keyId: uuid('Key Protect key id'),
      crn: crn('The escrow key’s CRN'),
    },
    ['region', 'instanceId', 'keyId', 'crn'],
  ),
  Window: obj(
    'Daily window (in the schedule’s time zone) in which scheduled rotations may start',
    {
      start: id('Start, HH:MM', '^([01][0-9]|2[0-3]):[0-5][0-9]$', 5, 5),
      end: id('End, HH:MM', '^([01][0-9]|2[0-3]):[0-5][0-9]$', 5, 5),
    },
    ['start', 'end'],
  ),
  Schedule: obj('When a group is due: exactly one of `cron` and `intervalMs`', {
    cron: text('Five- or six-field cron expression, evaluated in `timeZone`', 200, 1),
    intervalMs: int('Fixed interval since the last completed rotation (ms)', 1, MAX_TIME_MS),
    timeZone: id('IANA time zone for `cron` and `window` (default UTC)', '^[A-Za-z0-9_+/-]+$', 64),
    window: ref('Window'),
    maxAgeMs: int('Rotate regardless of cron and window once the generation is older than this (ms)', 1, MAX_TIME_MS),
    enabled: bool('False pauses scheduled rotations (operators can still rotate)'),
  }),
  Group: obj(
    'A group: one primary and N duplicate root keys that hold identical material',
    {
      id: groupId(),
      name: text('Display name', 200, 1),
      description: text('Free-text description', 2000),
      status: oneOfValues('Health of the group', Object.values(GroupStatus)),
      statusReason: text('Why the group is not healthy', 2000),
      currentGeneration: int('Latest generation every member holds (0 before creation completes)'),
      lastRotatedAtMs: ms('When the current generation was completed'),
      nextDueAtMs: ms('Next time the scheduler looks at the group'),
      activeRunId: runId('Run currently working on the group'),
      createdAtMs: ms('Creation time'),
      updatedAtMs: ms('Last change'),
      schedule: ref('Schedule'),
      members: list('The primary first, then the duplicates', ref('Member'), 20),
      escrowKey: ref('EscrowKey'),
      lastVerification: ref('Verification'),
      drillSchedule: ref('DrillSchedule'),
      lastDrill: ref('DrillSummary'),
      verificationRequestedAtMs: ms('A verification was asked for (events wake-up) and the next tick does it'),
      escrowedFromGeneration: int(
        'First escrowed generation (absent: 1); an adopted group gets escrow with its first lockstep rotation',
      ),
    },
    ['id', 'name', 'status', 'currentGeneration', 'members', 'schedule', 'escrowKey', 'createdAtMs'],
  ),
  Verification: obj(
    "The latest verification against Key Protect: each member's current version compared with the lineage, and its state",
    {
      atMs: ms('When the verification read Key Protect'),
      trigger: text('What asked for it (operator, tick, event:<id>, alert:<id>)', 200, 1),
      result: oneOfValues('ok: in lockstep; problems: drift or a member not usable; incomplete: a read failed', [
        'ok',
        'problems',
        'incomplete',
      ]),
      problems: list('What the verification found, one line each', text('One problem', 2000), 200),
    },
    ['atMs', 'trigger', 'result', 'problems'],
  ),
  PageLink: obj(
    'A link to a page of the collection',
    { href: id('URL path and query of the page', '^/[!-~]*$', 3000) },
    ['href'],
  ),
  NextPageLink: obj(
    'The next page: its link and the cursor to pass as `cursor`',
    {
      href: id('URL path and query of the next page', '^/[!-~]*$', 3000),
      cursor: id('Opaque cursor of the next page (pass it as `cursor`)', '^[A-Za-z0-9_.-]+$', 1024),
    },
    ['href', 'cursor'],
  ),
  GroupCollection: page('A page of groups, in id order', 'The groups of this page', 'Group'),
  Trigger: obj(
    'What started the generation',
    {
      kind: oneOfValues('Trigger kind', ['schedule', 'event', 'operator']),
      by: text('Who or what: an IAM id, a cron tick id or an event id', 500, 1),
      reason: text('The operator’s reason', 500),
    },
    ['kind', 'by'],
  ),
  AtEvidence: obj(
    'An Activity Tracker event about the member’s rotation',
    {
      eventId: text('Event id', 200, 1),
      action: text('Activity Tracker action, e.g. kms.secrets.rotate', 200, 1),
      eventTimeMs: ms('Event time'),
      initiator: text('Initiator the event names (a claim of the event)', 500),
      correlationId: text('Correlation id the event carries', 200),
      outcome: text('Outcome, e.g. success', 100),
    },
    ['eventId', 'action', 'eventTimeMs', 'initiator', 'outcome'],
  ),
  LineageMember: obj(
    'One member’s part of a generation',
    {
      role,
      region: region(),
      instanceId: uuid('Key Protect instance GUID'),
      keyId: uuid('Key Protect key id'),
      crn: crn('The key’s CRN'),
      keyVersionId: uuid('The member’s Key Protect key version that holds this generation'),
      rotatedAtMs: ms('When the member got this version'),
      evidence: list('Activity Tracker evidence of the rotation', ref('AtEvidence'), 50),
    },
    ['role', 'region', 'instanceId', 'keyId', 'crn', 'keyVersionId', 'rotatedAtMs', 'evidence'],
  ),
  CanaryEvidence: obj(
    'A canary: a random DEK wrapped at one member and unwrapped at others (the DEK itself is never kept)',
    {
      wrappedAt: crn('CRN of the member that wrapped the canary DEK'),
      unwrappedAt: list('CRNs of the members that unwrapped it', crn('Member CRN'), 20),
      ciphertext: id('Canary ciphertext (only unwraps with the material)', '^[A-Za-z0-9+/=_-]*$', 20_000),
      plaintextSha256: sha256Hex('SHA-256 (hex) of the canary plaintext'),
      aad: list('Additional authenticated data of the wrap', text('AAD value', 1000), 20),
      reportedVersions: {
        type: 'object',
        description: 'Key version each unwrapping member reported, by CRN',
        additionalProperties: uuid('Key version id'),
      },
      ok: bool('Every unwrap returned the canary'),
      atMs: ms('When the canary ran'),
    },
    ['wrappedAt', 'unwrappedAt', 'ciphertext', 'plaintextSha256', 'aad', 'reportedVersions', 'ok', 'atMs'],
  ),
  LineageRecord: obj(
    'The audit record of one generation. `hash` is SHA-256 over the canonical JSON of the record without `hash`; ' +
      '`prevHash` is the previous record’s hash (the chain). Never contains escrow ciphertexts.',
    {
      groupId: groupId(),
      generation: generation(),
      fingerprint: id(
        'Public fingerprint of the material, e.g. fp1:<32 hex> (never the material)',
        '^[A-Za-z0-9+/=_:-]+$',
        128,
      ),
      trigger: ref('Trigger'),
      runId: runId('The run that made this generation'),
      startedAtMs: ms('Run start'),
      finishedAtMs: ms('When the generation was recorded'),
      members: list('Every member’s version of this generation', ref('LineageMember'), 20),
      verification: list('Canaries that proved the members hold the same material', ref('CanaryEvidence'), 100),
      status: oneOfValues('Status of the generation', Object.values(LineageStatus)),
      notes: list('Free-text notes, e.g. a foreign version found on one member', text('Note', 2000), 100),
      prevHash: sha256Hex('Hash of the previous record (64 zeros for the first)'),
      hash: sha256Hex('SHA-256 (hex) of the canonical JSON of the record without `hash`'),
    },
    [
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
  ),
  LineageRecordCollection: page(
    'A page of lineage records, newest first',
    'The records of this page, newest first',
    'LineageRecord',
  ),
  VersionLookup: obj(
    'Which group, generation and member a Key Protect key version belongs to',
    {
      keyVersionId: uuid('The key version asked for'),
      groupId: groupId(),
      generation: generation(),
      member: ref('LineageMember'),
      record: ref('LineageRecord'),
    },
    ['keyVersionId', 'groupId', 'generation', 'member', 'record'],
  ),
  Checkpoint: obj(
    'A signed statement of a chain head: Ed25519 over the canonical JSON of the fields but `signature`',
    {
      groupId: groupId(),
      generation: generation('Generation of the chain head it signs'),
      headHash: sha256Hex('Hash of that record'),
      signedAtMs: ms('Signing time'),
      keyId: id('Signing key id (first 16 hex digits of SHA-256 over its SPKI DER)', '^[0-9a-f]{16}$', 16, 16),
      algorithm: ed25519,
      signature: id('base64 Ed25519 signature', '^[A-Za-z0-9+/=]+$', 200),
    },
    ['groupId', 'generation', 'headHash', 'signedAtMs', 'keyId', 'algorithm', 'signature'],
  ),
  ChainBreak: obj(
    'Where the chain is broken',
    {
      generation: int('Generation at which the break was found'),
      kind: oneOfValues('Kind of break', Object.values(ChainBreakKind)),
      message: text('Where the chain is broken and what to look at', 2000, 1),
    },
    ['generation', 'kind', 'message'],
  ),
  CheckpointCheck: obj(
    'The check of one stored checkpoint',
    {
      generation: int('Generation the checkpoint signs'),
      keyId: text('Signing key id', 100),
      signedAtMs: ms('Signing time'),
      status: oneOfValues('Result of the check', Object.values(CheckpointStatus)),
      message: text('What the result means', 2000),
    },
    ['generation', 'keyId', 'signedAtMs', 'status', 'message'],
  ),
  ChainReport: obj(
    'Result of the chain check over the stored chain and every stored checkpoint',
    {
      ok: bool('No breaks and every checkpoint valid'),
      groupId: groupId(),
      length: int('Records in the chain'),
      firstGeneration: int('First generation in the chain'),
      headGeneration: int('Newest generation in the chain'),
      headHash: text('Hash of the newest record', 64),
      breaks: list('Every break found', ref('ChainBreak'), 10_000),
      checkpoints: list('Every stored checkpoint and its check', ref('CheckpointCheck'), 100_000),
      firstBreak: ref('ChainBreak'),
      signedThroughGeneration: int('Highest generation covered by a valid checkpoint'),
      drills: ref('DrillChainReport'),
      evidence: ref('EvidenceChainReport'),
    },
    ['ok', 'length', 'breaks', 'checkpoints'],
  ),
  ChainHead: obj('The newest record of a chain', { generation: generation(), hash: sha256Hex('Its hash') }, [
    'generation',
    'hash',
  ]),
  PublicKey: obj(
    'A checkpoint public key',
    {
      keyId: id('Key id (first 16 hex digits of SHA-256 over the SPKI DER)', '^[0-9a-f]{16}$', 16, 16),
      algorithm: ed25519,
      pem: id('SPKI PEM', '^-----BEGIN PUBLIC KEY-----[\\s\\S]*-----END PUBLIC KEY-----\\s*$', 1000),
    },
    ['keyId', 'algorithm', 'pem'],
  ),
  Proof: obj(
    'Chain check, latest signed checkpoint and the public keys to verify it offline',
    {
      groupId: groupId(),
      checkedAtMs: ms('When the server ran the check'),
      records: int('Records in the chain'),
      head: {
        description: 'The newest record (null for an empty chain)',
        oneOf: [{ type: ['null'] }, ref('ChainHead')],
      },
      chain: ref('ChainReport'),
      checkpoint: {
        description: 'Latest signed checkpoint (null if none)',
        oneOf: [{ type: ['null'] }, ref('Checkpoint')],
      },
      publicKeys: list('The trusted checkpoint keys', ref('PublicKey'), 50),
      howToVerify: list('The steps to re-verify independently of lockstep', text('A step', 2000), 20),
      verification: ref('ProofVerification'),
      drillCheckpoint: {
        description: 'Latest signed head of the DR drill chain (null if none)',
        oneOf: [{ type: ['null'] }, ref('DrillCheckpoint')],
      },
      evidenceCheckpoint: {
        description: 'Latest signed head of the late evidence chain (null if none)',
        oneOf: [{ type: ['null'] }, ref('EvidenceCheckpoint')],
      },
    },
    ['groupId', 'checkedAtMs', 'records', 'head', 'chain', 'checkpoint', 'publicKeys', 'howToVerify', 'verification'],
  ),
  ProofVerification: obj(
    'How the server checked: `full` (every record and checkpoint) or `incremental` (what was appended since its last ' +
      'check, the newest records re-hashed; a full check at least every 10 minutes and whenever anything is broken). ' +
      '`chain` lists at most `listedAtMost` breaks and checkpoint checks; `breaks` and `checkpoints` are the complete counts.',
    {
      mode: oneOfValues('full or incremental', ['full', 'incremental']),
      lastFullCheckAtMs: ms('When the chain was last checked from its first record'),
      breaks: int('Breaks found (complete count)'),
      checkpoints: int('Checkpoints checked (complete count)'),
      listedAtMost: int('Most breaks and checkpoint checks listed in `chain`', 1),
    },
    ['mode', 'lastFullCheckAtMs', 'breaks', 'checkpoints', 'listedAtMost'],
  ),
  RotationRequest: obj('Optional body of a rotation request', {
    reason: {
      ...text('Recorded in the run and the lineage trigger: printable, not starting with = + - @', 500),
      pattern: '^(?![=+@-])[^\\u0000-\\u001f\\u007f]*$',
    },
    force: bool('Rotate even if not due (the 1 h rule still applies)'),
  }),
  RunLinks: obj('Where to follow the run', { run: id('Path of the run', '^/[!-~]*$', 2100) }, ['run']),
  RotationAccepted: obj(
    'The rotation was accepted; the rotate function advances it',
    {
      runId: runId(),
      groupId: groupId(),
      status: oneOfValues('Always accepted', ['accepted']),
      links: ref('RunLinks'),
    },
    ['runId', 'groupId', 'status', 'links'],
  ),
  Run: {
    type: 'object',
    description:
      'A run (the persisted saga) without its escrow ciphertext. Operators read every saga field; the fields below ' +
      'are the stable ones.',
    required: ['id', 'groupId', 'generation', 'kind', 'status', 'createdAtMs', 'updatedAtMs'],
    not: { type: 'object', description: 'A run never carries its escrow', required: ['escrow'] },
    properties: {
      id: runId(),
      groupId: groupId(),
      generation: int('Generation the run makes'),
      kind: text('What the run does (create, rotation, adopt, add-region, ...)', 40, 1),
      status: oneOfValues('Run status', [
        'pending',
        'running',
        'degraded',
        'completed',
        'failed',
        'diverged',
        'stopped',
      ]),
      step: text('Current saga step', 40),
      createdAtMs: ms('Created'),
      updatedAtMs: ms('Last saved'),
      nextAttemptAtMs: ms('Not before'),
      stop: ref('RunStop'),
    },
  },
  RunActionRequest: obj('Optional body of a run action (retry, stop)', {
    reason: {
      ...text('Recorded with the run: printable, not starting with = + - @', 500),
      pattern: '^(?![=+@-])[^\\u0000-\\u001f\\u007f]*$',
    },
  }),
  RunStopStaged: obj(
    'A duplicate that already holds the run material as its current version',
    {
      slot: text('The member slot in the run', 300, 1),
      region: text('Region', 64, 1),
      crn: text('Key CRN', 300),
      versionId: text('Key Protect version holding the run material', 100),
    },
    ['slot', 'region'],
  ),
  RunStopNotStaged: obj(
    'A member that does not hold the run material',
    {
      slot: text('The member slot in the run', 300, 1),
      role: oneOfValues('Member role', Object.values(MemberRole)),
      region: text('Region', 64, 1),
      unconfirmed: bool('An attempt failed without a clear answer: the member may hold it'),
    },
    ['slot', 'role', 'region'],
  ),
  RunStop: obj(
    'What an operator stop left behind',
    {
      atMs: ms('When'),
      by: text('`operator:<iam id>`', 300, 1),
      reason: text('The operator’s reason', 500),
      step: text('Step the run was at', 40, 1),
      staged: list('Duplicates that already hold the run material', ref('RunStopStaged'), 50),
      notStaged: list('Members that do not', ref('RunStopNotStaged'), 50),
      escrowKept: bool('The escrowed material stays with the run, so a retry rolls forward'),
      fingerprint: text('Fingerprint of the run material', 200),
      summary: text('One sentence for operators', 2000, 1),
    },
    ['atMs', 'by', 'step', 'staged', 'notStaged', 'escrowKept', 'summary'],
  ),
  RunActionResult: obj(
    'What a run action did',
    {
      runId: runId(),
      groupId: groupId(),
      action: oneOfValues('What was done', ['retried', 'stopped']),
      status: text('Run status after the action', 40, 1),
      step: text('Run step after the action', 40, 1),
      groupStatus: oneOfValues('Group status after the action', Object.values(GroupStatus)),
      stop: ref('RunStop'),
      links: ref('RunLinks'),
    },
    ['runId', 'groupId', 'action', 'status', 'step', 'groupStatus', 'links'],
  ),
  RunActionForm: {
    type: 'object',
    description: 'The page’s run action form',
    additionalProperties: false,
    properties: {
      reason: text('Why', 500),
      confirm: oneOfValues('Stop only: the confirmation box', ['yes']),
    },
  },
  LoginForm: {
    type: 'object',
    description: 'The page’s login form: a pasted IAM access token, or an API key (local stack)',
    additionalProperties: false,
    properties: {
      token: id('IAM access token (JWT)', '^[A-Za-z0-9._-]*$', 8192, 0),
      apikey: id('IAM API key', '^[A-Za-z0-9_-]*$', 200, 0),
    },
  },
  // ── DR: the failover client's descriptor and the drill records (docs/dr.md) ──
  MemberEndpoints: obj(
    "A member's Key Protect URLs",
    {
      public: id('Public endpoint', '^https?://[!-~]+$', 300),
      private: {
        description: 'Private endpoint (private.<region>.kms.cloud.ibm.com), null when not derivable',
        oneOf: [{ type: ['null'] }, id('Private endpoint', '^https?://[!-~]+$', 300)],
      },
    },
    ['public', 'private'],
  ),
  EndpointHealth: obj(
    'Health of a member as the latest DR drill found it',
    {
      status: oneOfValues('ok, unreachable, failed, or unknown (no drill yet)', [
        'ok',
        'unreachable',
        'failed',
        'unknown',
      ]),
      source: oneOfValues('Where the health comes from', ['drill', 'none']),
      checkedAtMs: ms('When the latest drill checked the member'),
      drillSeq: int('Sequence number of that drill', 1),
    },
    ['status', 'source'],
  ),
  EndpointMember: obj(
    'One member as a failover client reaches it',
    {
      role,
      region: region(),
      instanceId: uuid('Key Protect instance'),
      keyId: uuid('Key id'),
      crn: crn('Key CRN'),
      keyRingId: {
        description: 'Key ring (X-Kms-Key-Ring), null for default',
        oneOf: [{ type: ['null'] }, id('Key ring id', '^[A-Za-z0-9-]+$', 100)],
      },
      endpoints: ref('MemberEndpoints'),
      health: ref('EndpointHealth'),
    },
    ['role', 'region', 'instanceId', 'keyId', 'crn', 'keyRingId', 'endpoints', 'health'],
  ),
  GroupEndpoints: obj(
    'What a failover client (`lockstep/client`) needs to reach every member of a group',
    {
      groupId: groupId(),
      status: oneOfValues('Health of the group', Object.values(GroupStatus)),
      currentGeneration: int('Latest generation every member holds'),
      generatedAtMs: ms('When this descriptor was produced'),
      refreshAfterSeconds: int('Re-read the descriptor this often (seconds)', 1, 86_400),
      members: list('The primary first, then the duplicates', ref('EndpointMember'), 20),
    },
    ['groupId', 'status', 'currentGeneration', 'generatedAtMs', 'refreshAfterSeconds', 'members'],
  ),
  DrillCanary: obj(
    'A stored canary of one generation, unwrapped at the member',
    {
      generation: generation(),
      ok: bool('It unwrapped to the recorded plaintext hash'),
      keyVersionId: text('Key version that answered', 100),
      error: text('Why not', 2000),
    },
    ['generation', 'ok'],
  ),
  DrillMemberSwitchover: obj(
    'The fresh DEK wrapped at the primary, unwrapped at this member alone',
    {
      ok: bool('It unwrapped'),
      latencyMs: int('How long the unwrap took (ms)'),
      keyVersionId: text('Key version that answered', 100),
      error: text('Why not', 2000),
    },
    ['ok'],
  ),
  DrillMember: obj(
    'One member in a drill',
    {
      role,
      region: region(),
      instanceId: uuid('Key Protect instance'),
      keyId: uuid('Key id'),
      crn: crn('Key CRN'),
      endpoints: ref('MemberEndpoints'),
      health: oneOfValues('What the drill found', ['ok', 'unreachable', 'failed']),
      keyState: text('Key Protect key state', 40),
      currentVersionId: text('Current key version', 100),
      lastRotateAtMs: ms('Last rotation (or creation) of the key'),
      earliestRotationAtMs: ms('When the 1-rotation-per-hour rule lets the key rotate again'),
      canaries: list('Stored canaries of the retained generations', ref('DrillCanary'), 1000),
      switchover: {
        description: 'The switch-over probe at this member (null for the primary)',
        oneOf: [{ type: ['null'] }, ref('DrillMemberSwitchover')],
      },
    },
    ['role', 'region', 'instanceId', 'keyId', 'crn', 'endpoints', 'health', 'canaries', 'switchover'],
  ),
  DrillSwitchover: obj(
    'A fresh DEK wrapped at the primary and unwrapped through the failover client with the primary treated as down',
    {
      wrappedAt: { description: 'Member slot that wrapped', oneOf: [{ type: ['null'] }, text('Slot', 300)] },
      keyVersionId: { description: 'Key version that wrapped', oneOf: [{ type: ['null'] }, text('Version', 100)] },
      ciphertext: {
        description: 'The wrapped DEK (evidence; the DEK itself is never stored)',
        oneOf: [{ type: ['null'] }, text('Ciphertext', 20_000)],
      },
      plaintextSha256: { description: 'SHA-256 of the DEK', oneOf: [{ type: ['null'] }, sha256Hex('Hash')] },
      aad: list('Additional authenticated data', text('One AAD value', 300), 20),
      switchoverMs: {
        description: 'How long the failover client took to answer from a duplicate (ms)',
        oneOf: [{ type: ['null'] }, int('ms')],
      },
      answeredBy: { description: 'Member that answered', oneOf: [{ type: ['null'] }, text('Slot or CRN', 300)] },
    },
    ['wrappedAt', 'keyVersionId', 'ciphertext', 'plaintextSha256', 'aad', 'switchoverMs', 'answeredBy'],
  ),
  DrillRecord: obj(
    'One DR drill: chained per group (prevHash/hash as generation records, seq 1, 2, …) and anchored to the generation chain head it ran against',
    {
      kind: oneOfValues('Always drill', ['drill']),
      groupId: groupId(),
      seq: int('Sequence number in the drill chain', 1),
      drillId: text('Drill id', 200, 1),
      trigger: ref('Trigger'),
      startedAtMs: ms('Start'),
      finishedAtMs: ms('End'),
      lineageHead: {
        description: 'The generation chain head the drill ran against (null for an empty chain)',
        oneOf: [{ type: ['null'] }, ref('ChainHead')],
      },
      generationsChecked: list('Generations whose canaries were unwrapped', generation(), 1000),
      switchover: ref('DrillSwitchover'),
      members: list('Every member', ref('DrillMember'), 20),
      result: oneOfValues('The verdict', ['passed', 'failed']),
      problems: list('What failed, one line each', text('A problem', 2000), 200),
      prevHash: sha256Hex('Hash of the previous drill record (64 zeros for the first)'),
      hash: sha256Hex('SHA-256 over the canonical JSON of the record'),
    },
    [
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
  ),
  DrillSummaryMember: obj(
    'A member as the latest drill found it',
    { crn: crn('Key CRN'), health: oneOfValues('What the drill found', ['ok', 'unreachable', 'failed']) },
    ['crn', 'health'],
  ),
  DrillSummary: obj(
    'The latest DR drill of a group',
    {
      seq: int('Sequence number', 1),
      drillId: text('Drill id', 200, 1),
      atMs: ms('When the drill finished'),
      result: oneOfValues('The verdict', ['passed', 'failed']),
      problems: list('What failed', text('A problem', 2000), 200),
      hash: sha256Hex('Hash of the drill record'),
      members: list('Every member', ref('DrillSummaryMember'), 20),
    },
    ['seq', 'drillId', 'atMs', 'result', 'problems', 'hash', 'members'],
  ),
  DrillSchedule: obj(
    'How often the rotate function drills the group',
    { intervalMs: int('Interval between drills (ms)', 60_000, MAX_TIME_MS) },
    ['intervalMs'],
  ),
  EvidenceRecord: obj(
    'Activity Tracker evidence that arrived after its generation record: chained per group (seq 1, 2, …, prevHash/hash as generation records) and naming that record by its hash',
    {
      kind: oneOfValues('Always evidence', ['evidence']),
      groupId: groupId(),
      seq: int('Sequence number in the evidence chain', 1),
      generation: generation('The generation the evidence belongs to'),
      generationHash: sha256Hex('Hash of that generation record'),
      runId: runId('The run that made the generation'),
      crn: crn('The member the event names'),
      evidence: ref('AtEvidence'),
      recordedAtMs: ms('When lockstep appended it'),
      prevHash: sha256Hex('Hash of the previous evidence record (64 zeros for the first)'),
      hash: sha256Hex('SHA-256 over the canonical JSON of the record'),
    },
    [
      'kind',
      'groupId',
      'seq',
      'generation',
      'generationHash',
      'runId',
      'crn',
      'evidence',
      'recordedAtMs',
      'prevHash',
      'hash',
    ],
  ),
  ...seqChainSchemas('Drill', 'drills', { one: 'drill', many: 'Drills', never: 'a generation checkpoint' }),
  ...seqChainSchemas('Evidence', 'evidence', {
    one: 'late evidence',
    many: 'Evidence records',
    never: 'a generation or drill checkpoint',
  }),
  DrillRequest: obj('Optional body of a drill request', {
    reason: {
      ...text('Recorded in the drill trigger: printable, not starting with = + - @', 500),
      pattern: '^(?![=+@-])[^\\u0000-\\u001f\\u007f]*$',
    },
  }),
  OpenApiDocument: {
    type: 'object',
    description: 'An OpenAPI 3.1 document',
    required: ['openapi', 'info', 'paths'],
    properties: {
      openapi: id('OpenAPI version', '^3\\.1\\.[0-9]+$', 10, 5),
      info: { type: 'object', description: 'Title, version and description' },
      paths: { type: 'object', description: 'The operations' },
      components: { type: 'object', description: 'Schemas and security schemes' },
    },
  },
} as const satisfies Record<string, Schema>;

export type SchemaName = keyof typeof SCHEMAS;

/** Resolves a `#/components/schemas/<name>` reference. */
export function resolveSchema(ref: string): Schema {
  const name = ref.replace(/^#\/components\/schemas\//, '');
  const s = (SCHEMAS as Record<string, Schema>)[name];
  if (!s) throw new Error(`Unknown schema reference ${ref}`);
  return s;
}
