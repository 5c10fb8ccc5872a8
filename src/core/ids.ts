import { AppError } from './errors.js';

declare const brand: unique symbol;
/** A string that the compiler keeps apart from other strings of another brand. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type GroupId = Brand<string, 'GroupId'>;
export type RunId = Brand<string, 'RunId'>;
export type RegionId = Brand<string, 'RegionId'>;
export type InstanceId = Brand<string, 'InstanceId'>;
export type KeyId = Brand<string, 'KeyId'>;
export type KeyVersionId = Brand<string, 'KeyVersionId'>;
export type KeyCrn = Brand<string, 'KeyCrn'>;
export type EventId = Brand<string, 'EventId'>;

const GROUP_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const REGION_ID = /^[a-z]{2}-[a-z]{2,6}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RUN_ID = /^run-[a-z0-9-]{8,80}$/;
const CRN = /^crn:v1:[a-z-]+:[a-z-]+:kms:([a-z]{2}-[a-z]{2,6}):a\/([0-9a-zA-Z]+):([0-9a-f-]{36}):key:([0-9a-f-]{36})$/i;

/**
 * The id rules as JSON Schema / OpenAPI `pattern` strings (ECMA-262 syntax, case-sensitive, so the case-insensitive
 * UUID and CRN rules list both cases), for the API schemas in `src/api/shapes.ts`: one rule, two uses.
 */
export const ID_PATTERNS = {
  groupId: GROUP_ID.source,
  regionId: REGION_ID.source,
  uuid: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  runId: RUN_ID.source,
  crn: '^crn:v1:[a-zA-Z-]+:[a-zA-Z-]+:kms:[a-z]{2}-[a-z]{2,6}:a/[0-9a-zA-Z]+:[0-9a-fA-F-]{36}:key:[0-9a-fA-F-]{36}$',
} as const;

function check<T extends string>(kind: string, value: unknown, re: RegExp, hint: string): T {
  if (typeof value !== 'string' || !re.test(value)) {
    throw new AppError('VALIDATION_FAILED', `Invalid ${kind}: ${hint}`, {
      details: { field: kind, received: typeof value === 'string' ? value.slice(0, 80) : typeof value },
    });
  }
  return value as T;
}

/** Validates a group id: 1–63 lower-case letters, digits and inner hyphens. @throws {AppError} VALIDATION_FAILED */
export const asGroupId = (v: unknown): GroupId =>
  check('groupId', v, GROUP_ID, 'use 1-63 lower-case letters, digits or hyphens, starting and ending alphanumeric');
/** Validates a region id such as `us-south`. @throws {AppError} VALIDATION_FAILED */
export const asRegionId = (v: unknown): RegionId => check('region', v, REGION_ID, 'expected a region like us-south');
/** Validates a Key Protect instance GUID. @throws {AppError} VALIDATION_FAILED */
export const asInstanceId = (v: unknown): InstanceId => check('instanceId', v, UUID, 'expected a GUID');
/** Validates a Key Protect key id (UUID). @throws {AppError} VALIDATION_FAILED */
export const asKeyId = (v: unknown): KeyId => check('keyId', v, UUID, 'expected a UUID');
/** Validates a Key Protect key version id (UUID). @throws {AppError} VALIDATION_FAILED */
export const asKeyVersionId = (v: unknown): KeyVersionId => check('keyVersionId', v, UUID, 'expected a UUID');
/** Validates a run id (`run-…`). @throws {AppError} VALIDATION_FAILED */
export const asRunId = (v: unknown): RunId => check('runId', v, RUN_ID, 'expected run-<id>');
/** Validates an Activity Tracker event id. @throws {AppError} VALIDATION_FAILED */
export const asEventId = (v: unknown): EventId =>
  check('eventId', v, /^[A-Za-z0-9._:-]{1,200}$/, 'expected 1-200 characters of [A-Za-z0-9._:-]');

/** The parts of a Key Protect key CRN. */
export interface KeyCrnParts {
  region: RegionId;
  accountId: string;
  instanceId: InstanceId;
  keyId: KeyId;
}

/** Parses `crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>:key:<key>`. @throws {AppError} VALIDATION_FAILED */
export function parseKeyCrn(v: unknown): KeyCrnParts & { crn: KeyCrn } {
  const crn = check<KeyCrn>(
    'crn',
    v,
    CRN,
    'expected crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>:key:<key>',
  );
  const m = CRN.exec(crn)!;
  return {
    crn,
    region: m[1] as RegionId,
    accountId: m[2] as string,
    instanceId: (m[3] as string).toLowerCase() as InstanceId,
    keyId: (m[4] as string).toLowerCase() as KeyId,
  };
}

/** Builds a Key Protect key CRN. */
export function formatKeyCrn(p: KeyCrnParts, env: { cname?: string; ctype?: string } = {}): KeyCrn {
  return `crn:v1:${env.cname ?? 'bluemix'}:${env.ctype ?? 'public'}:kms:${p.region}:a/${p.accountId}:${p.instanceId}:key:${p.keyId}` as KeyCrn;
}
