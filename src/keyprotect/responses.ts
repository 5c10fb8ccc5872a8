import type { KeyInfo, KeyStateCode, KeyVersionInfo, UnwrapResult, WrapResult } from '../app/index.js';
import type { KeyCrn, KeyId, KeyVersionId } from '../core/index.js';
import { AppError } from '../core/index.js';
import type { CallContext } from './errors.js';

/** Key Protect response bodies → domain types. A body of the wrong shape is `UPSTREAM_REJECTED` (reason malformed). */

const STATES = new Set([0, 1, 2, 3, 5]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Json = Record<string, unknown>;

export function parseKeyInfo(result: unknown, ctx: CallContext): KeyInfo {
  const key = firstResource(result, ctx);
  const version = obj(key.keyVersion, 'keyVersion', ctx);
  const state = key.state;
  if (typeof state !== 'number' || !STATES.has(state)) throw malformed(ctx, 'state');
  const info: KeyInfo = {
    id: uuid(key.id, 'id', ctx) as KeyId,
    crn: str(key.crn, 'crn', ctx) as KeyCrn,
    name: str(key.name, 'name', ctx),
    state: state as KeyStateCode,
    imported: key.imported === true,
    extractable: key.extractable === true,
    deleted: key.deleted === true,
    currentVersionId: uuid(version.id, 'keyVersion.id', ctx) as KeyVersionId,
    currentVersionCreatedAtMs: date(version.creationDate ?? key.creationDate, 'keyVersion.creationDate', ctx),
    creationAtMs: date(key.creationDate, 'creationDate', ctx),
    aliases: Array.isArray(key.aliases) ? key.aliases.filter((a): a is string => typeof a === 'string') : [],
  };
  if (key.lastRotateDate !== undefined && key.lastRotateDate !== null) {
    info.lastRotateAtMs = date(key.lastRotateDate, 'lastRotateDate', ctx);
  }
  if (typeof key.keyRingID === 'string' && /^[A-Za-z0-9-]{1,100}$/.test(key.keyRingID)) info.keyRingId = key.keyRingID;
  if (key.expirationDate !== undefined && key.expirationDate !== null) {
    info.expirationAtMs = date(key.expirationDate, 'expirationDate', ctx);
  }
  return info;
}

export function parseVersionsPage(result: unknown, ctx: CallContext): KeyVersionInfo[] {
  const resources = (result as Json | undefined)?.resources;
  if (resources === undefined) return [];
  if (!Array.isArray(resources)) throw malformed(ctx, 'resources');
  return resources.map((r: unknown) => {
    const v = obj(r, 'resources[]', ctx);
    return { id: uuid(v.id, 'id', ctx) as KeyVersionId, createdAtMs: date(v.creationDate, 'creationDate', ctx) };
  });
}

export function parseWrap(result: unknown, ctx: CallContext): WrapResult {
  const body = obj(result, 'body', ctx);
  return {
    ciphertext: str(body.ciphertext, 'ciphertext', ctx),
    keyVersionId: uuid(obj(body.keyVersion, 'keyVersion', ctx).id, 'keyVersion.id', ctx) as KeyVersionId,
  };
}

export function parseUnwrap(result: unknown, ctx: CallContext): UnwrapResult {
  const body = obj(result, 'body', ctx);
  const out: UnwrapResult = {
    plaintext: Buffer.from(str(body.plaintext, 'plaintext', ctx), 'base64'),
    keyVersionId: uuid(obj(body.keyVersion, 'keyVersion', ctx).id, 'keyVersion.id', ctx) as KeyVersionId,
  };
  if (typeof body.ciphertext === 'string' && body.ciphertext !== '') out.rewrappedCiphertext = body.ciphertext;
  const rewrapped = body.rewrappedKeyVersion as Json | undefined;
  if (rewrapped && typeof rewrapped === 'object' && rewrapped.id !== undefined) {
    out.rewrappedKeyVersionId = uuid(rewrapped.id, 'rewrappedKeyVersion.id', ctx) as KeyVersionId;
  }
  return out;
}

function firstResource(result: unknown, ctx: CallContext): Json {
  const resources = (result as Json | undefined)?.resources;
  if (!Array.isArray(resources) || resources.length === 0) throw malformed(ctx, 'resources');
  return obj(resources[0], 'resources[0]', ctx);
}

function obj(v: unknown, field: string, ctx: CallContext): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed(ctx, field);
  return v as Json;
}

function str(v: unknown, field: string, ctx: CallContext): string {
  if (typeof v !== 'string' || v === '') throw malformed(ctx, field);
  return v;
}

function uuid(v: unknown, field: string, ctx: CallContext): string {
  if (typeof v !== 'string' || !UUID.test(v)) throw malformed(ctx, field);
  return v.toLowerCase();
}

function date(v: unknown, field: string, ctx: CallContext): number {
  const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (Number.isNaN(ms)) throw malformed(ctx, field);
  return ms;
}

function malformed(ctx: CallContext, field: string): AppError {
  return new AppError('UPSTREAM_REJECTED', `Key Protect ${ctx.operation} returned an unexpected body (${field})`, {
    details: {
      kpCode: null,
      status: null,
      correlationId: ctx.correlationId,
      region: ctx.region,
      operation: ctx.operation,
      reason: 'malformed_response',
      field,
    },
  });
}
