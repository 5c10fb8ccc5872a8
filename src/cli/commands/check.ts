import { randomBytes, randomUUID } from 'node:crypto';
import type { KeyRef } from '../../app/index.js';
import type { EscrowKeyRef, Group, Member } from '../../core/index.js';
import { asGroupId, isAppError } from '../../core/index.js';
import type { KeyProtectClient } from '../../keyprotect/index.js';
import { memberStateProblem } from '../../rotation/index.js';
import type { CliContext } from '../context.js';
import { ExitCode } from '../exitCodes.js';
import { renderTable } from '../output.js';
import { createRuntime } from '../runtime.js';
import { groupIdArg } from './read.js';

/**
 * `lockstep check [group]`: probes every member and every escrow key with the least-privileged Key Protect calls
 * lockstep makes, and says per key what is missing (ibm-cloud-docs/key-protect `concepts/manage-access.md`):
 *
 * | probe | call | role |
 * |---|---|---|
 * | `read` | GET /keys/{id}/metadata | Reader |
 * | `versions` | GET /keys/{id}/versions | Reader |
 * | `importToken` | POST + GET /import_token (members only; under the instance's import-token lease) | Writer |
 * | `wrapUnwrap` | wrap then unwrap a random 32-byte value | Reader |
 *
 * Rotating a member also needs Writer, which the import-token probe shows (the same role); rotate itself is never
 * sent. Exit 3 when anything is missing.
 */

type ProbeName = 'read' | 'versions' | 'importToken' | 'wrapUnwrap';
type ProbeResult =
  | { ok: true }
  | { ok: false; code: string; message: string; missingRole?: string }
  | { skipped: string };

export interface KeyCheck {
  group: string;
  role: 'primary' | 'duplicate' | 'escrow';
  region: string;
  instanceId: string;
  keyId: string;
  keyRingId?: string;
  probes: Partial<Record<ProbeName, ProbeResult>>;
  /** What to fix, one line each (missing roles, key state). */
  missing: string[];
}

export interface CheckReport {
  identity?: { iamId: string; name?: string };
  ok: boolean;
  keys: KeyCheck[];
}

const ROLE_OF: Record<ProbeName, string> = {
  read: 'Reader',
  versions: 'Reader',
  importToken: 'Writer',
  wrapUnwrap: 'Reader',
};
const TOKEN_LEASE_TTL_MS = 60_000;

export async function check(ctx: CliContext, groupId: string | undefined): Promise<number> {
  const id = groupId === undefined ? undefined : groupIdArg(groupId);
  const rt = await createRuntime(ctx);
  const kp = rt.kp;
  const groups: Group[] = [];
  if (id) groups.push((await rt.stores.groups.get(asGroupId(id))).value);
  else {
    let cursor: string | undefined;
    do {
      const page = await rt.stores.groups.list({ limit: 200, ...(cursor ? { cursor } : {}) });
      groups.push(...page.items);
      cursor = page.next;
    } while (cursor);
  }
  ctx.out.progress(`probing ${groups.length} group(s) with the least-privileged calls lockstep makes…`);
  const identity = await kp.identity();
  const holder = `check-${randomUUID()}`;
  const tokenProbed = new Map<string, Promise<ProbeResult>>();
  const keys: KeyCheck[] = [];
  const escrows = new Map<string, { group: string; ref: EscrowKeyRef }>();
  for (const g of groups) {
    for (const m of g.members) keys.push(await checkMember(g.id, m));
    if (!escrows.has(g.escrow.crn)) escrows.set(g.escrow.crn, { group: g.id, ref: g.escrow });
  }
  const configured = rt.config.escrow;
  if (configured && !escrows.has(configured.crn)) escrows.set(configured.crn, { group: '(config)', ref: configured });
  for (const { group, ref } of escrows.values()) keys.push(await checkEscrow(group, ref));
  const report: CheckReport = {
    ...(identity ? { identity } : {}),
    ok: keys.every((k) => k.missing.length === 0),
    keys,
  };

  ctx.out.result(report, () => human(ctx, report));
  return report.ok ? ExitCode.OK : ExitCode.VERIFY_FAILED;

  async function checkMember(group: string, m: Member): Promise<KeyCheck> {
    const ref: KeyRef = {
      region: m.region,
      instanceId: m.instanceId,
      keyId: m.keyId,
      ...(m.keyRingId ? { keyRingId: m.keyRingId } : {}),
    };
    const c = base(group, m.role, ref);
    await readAndVersions(c, ref);
    // One import-token probe per instance and ring: it replaces the instance's token, so it runs under the same
    // lease a rotation holds; a held lease means a rotation is importing right now (skipped, not missing).
    const tokenKey = `${m.region}/${m.instanceId}/${m.keyRingId ?? ''}`;
    let token = tokenProbed.get(tokenKey);
    if (!token) {
      token = probeToken(kp, m, holder);
      tokenProbed.set(tokenKey, token);
    }
    c.probes.importToken = await token;
    c.probes.wrapUnwrap = await probe(() => wrapUnwrap(kp, ref));
    return finish(c);
  }

  async function checkEscrow(group: string, e: EscrowKeyRef): Promise<KeyCheck> {
    const ref: KeyRef = { region: e.region, instanceId: e.instanceId, keyId: e.keyId };
    const c = base(group, 'escrow', ref);
    await readAndVersions(c, ref);
    c.probes.wrapUnwrap = await probe(() => wrapUnwrap(kp, ref));
    return finish(c);
  }

  async function readAndVersions(c: KeyCheck, ref: KeyRef): Promise<void> {
    c.probes.read = await probe(async () => {
      const info = await kp.getKey(ref);
      const problem = memberStateProblem(info.state, info.deleted);
      if (problem) c.missing.push(`key ${problem}`);
      if (info.keyRingId && c.keyRingId && info.keyRingId !== c.keyRingId) {
        c.missing.push(`key is in key ring ${info.keyRingId}, lockstep expects ${c.keyRingId}`);
      }
    });
    c.probes.versions = await probe(() => kp.listVersions(ref));
  }

  async function probeToken(client: KeyProtectClient, m: Member, who: string): Promise<ProbeResult> {
    const name = `token:${m.region}:${m.instanceId}`;
    const lease = await rt.stores.leases.acquire(name, who, TOKEN_LEASE_TTL_MS, Date.now());
    if (!lease) return { skipped: 'a rotation holds this instance import token right now; run check again later' };
    try {
      return await probe(() =>
        client.probeImportToken(m.region, m.instanceId, m.keyRingId ? { keyRingId: m.keyRingId } : {}),
      );
    } finally {
      await rt.stores.leases.release(lease).catch(() => undefined);
    }
  }
}

function base(group: string, role: KeyCheck['role'], ref: KeyRef): KeyCheck {
  return {
    group,
    role,
    region: ref.region,
    instanceId: ref.instanceId,
    keyId: ref.keyId,
    ...(ref.keyRingId ? { keyRingId: ref.keyRingId } : {}),
    probes: {},
    missing: [],
  };
}

async function probe(fn: () => Promise<unknown>): Promise<ProbeResult> {
  try {
    await fn();
    return { ok: true };
  } catch (err) {
    if (!isAppError(err)) return { ok: false, code: 'INTERNAL', message: 'unexpected error (see the log)' };
    const missingRole = typeof err.details.requiredRole === 'string' ? err.details.requiredRole : undefined;
    return { ok: false, code: err.code, message: err.message, ...(missingRole ? { missingRole } : {}) };
  }
}

async function wrapUnwrap(kp: KeyProtectClient, ref: KeyRef): Promise<void> {
  const value = randomBytes(32);
  const aad = ['lockstep-check/v1'];
  try {
    const w = await kp.wrap(ref, value, aad);
    const u = await kp.unwrap(ref, w.ciphertext, aad);
    const same = u.plaintext.equals(value);
    u.plaintext.fill(0);
    if (!same) throw new Error('unwrap returned another value');
  } finally {
    value.fill(0);
  }
}

function finish(c: KeyCheck): KeyCheck {
  for (const [name, r] of Object.entries(c.probes) as [ProbeName, ProbeResult][]) {
    if ('skipped' in r || r.ok) continue;
    c.missing.push(
      r.missingRole
        ? `${ROLE_OF[name]} role for ${name} (Key Protect answered 401: no role on instance ${c.instanceId}${c.keyRingId ? ` / key ring ${c.keyRingId}` : ''}, or a private-only instance reached over its public endpoint)`
        : `${name}: ${r.code}: ${r.message}`,
    );
  }
  return c;
}

function human(ctx: CliContext, r: CheckReport): string {
  const mark = (p: ProbeResult | undefined) =>
    p === undefined
      ? '-'
      : 'skipped' in p
        ? ctx.out.yellow('skipped')
        : p.ok
          ? ctx.out.green('ok')
          : ctx.out.red('MISSING');
  const who = r.identity ? `${r.identity.iamId}${r.identity.name ? ` (${r.identity.name})` : ''}` : 'unknown';
  const lines = [
    `identity: ${who}`,
    '',
    renderTable(r.keys, [
      { header: 'GROUP', value: (k) => k.group },
      { header: 'ROLE', value: (k) => k.role },
      { header: 'REGION', value: (k) => k.region },
      { header: 'RING', value: (k) => k.keyRingId ?? '-' },
      { header: 'READ', value: (k) => mark(k.probes.read) },
      { header: 'VERSIONS', value: (k) => mark(k.probes.versions) },
      { header: 'IMPORT TOKEN', value: (k) => mark(k.probes.importToken) },
      { header: 'WRAP/UNWRAP', value: (k) => mark(k.probes.wrapUnwrap) },
    ]),
  ];
  for (const k of r.keys) {
    for (const m of k.missing) lines.push(`${ctx.out.red('✗')} ${k.group} ${k.role} ${k.region} ${k.keyId}: ${m}`);
  }
  lines.push(
    '',
    r.ok
      ? ctx.out.green('every key grants what lockstep needs')
      : 'lockstep needs Writer on each member (rotate, import tokens) and Reader on the escrow key (wrap/unwrap)',
  );
  return lines.join('\n');
}
