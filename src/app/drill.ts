/**
 * DR drills: prove from the duplicates' side that a switch-over would work now, and leave a signed record of it.
 *
 * A drill (1) unwraps the stored canary of every generation in the retention window at every member, (2) wraps a
 * fresh DEK at the primary and unwraps it through the failover client with the primary treated as down — once
 * letting the client choose (the switch-over time) and once per duplicate alone — and (3) reads each member's key
 * (state, current version, the 1-rotation-per-hour rule). The result is a drill record, chained per group and
 * anchored to the generation chain head, signed by a drill checkpoint. A failed drill marks the group
 * `drill-failed` and notifies. Nothing here changes a key.
 */
import { createHash } from 'node:crypto';
import {
  AppError,
  asGroupId,
  type CanaryEvidence,
  type Clock,
  type DrillMember,
  type DrillRecord,
  type DrillSummary,
  type Group,
  type GroupId,
  GroupStatus,
  hasCode,
  type KeyCrn,
  keyProtectEndpoints,
  type Logger,
  type Member,
  type Random,
  type Trigger,
} from '../core/index.js';
import { buildDrillRecord, signDrillCheckpoint } from '../lineage/index.js';
import { probeEvidence } from './canary.js';
import type { DrillRepository, KeyProtectPort, Notifier, Page, Stores } from './ports.js';

/** Unwrap through the failover client with `down` members treated as unavailable (adapter: src/keyprotect). */
export interface SwitchoverPort {
  unwrap(
    members: Member[],
    ciphertext: string,
    aad: string[],
    opts: { down: KeyCrn[] },
  ): Promise<{ plaintext: Buffer; crn: KeyCrn; keyVersionId: string; attempts: number }>;
}

export interface DrillConfig {
  /** Generations (newest first) whose stored canaries every member must unwrap. */
  retentionGenerations: number;
  /** Key Protect's one rotation per key per hour (reported per member). */
  rotationMinIntervalMs: number;
  /** Signs a drill checkpoint per drill. */
  checkpointSigning?: { privateKey: string; keyId?: string };
  /** TTL of the `drill:<groupId>` lease that serialises drills of a group. */
  leaseTtlMs: number;
  /** Groups a scheduler tick drills at most. */
  maxDueGroups: number;
}

export const DEFAULT_DRILL_CONFIG: DrillConfig = {
  retentionGenerations: 24,
  rotationMinIntervalMs: 3_600_000,
  leaseTtlMs: 120_000,
  maxDueGroups: 5,
};

export interface DrillDeps {
  kp: KeyProtectPort;
  stores: Stores;
  switchover: SwitchoverPort;
  /** Key Protect URL of each region (the endpoints reported per member). */
  endpoints: Readonly<Record<string, string>>;
  clock: Clock;
  random: Random;
  logger: Logger;
  notifier?: Notifier;
  config?: Partial<DrillConfig>;
}

export interface DrillService {
  /**
   * Runs one drill now and records it.
   * @throws {AppError} GROUP_NOT_FOUND, RUN_IN_PROGRESS (another drill of the group is running), CONFIG_INVALID
   */
  run(groupId: string, opts: { trigger: Trigger; holder?: string }): Promise<DrillRecord>;
  /** Drills of a group, newest first. */
  list(groupId: string, opts: { limit: number; cursor?: string }): Promise<Page<DrillRecord>>;
  /** Runs the drills whose schedule is due (scheduler tick), until `deadlineAtMs`. */
  runDue(opts: { deadlineAtMs: number; holder: string; triggerId?: string }): Promise<{ ran: number; failed: number }>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 300);
const KEY_STATES: Record<number, string> = {
  0: 'pre-activation',
  1: 'active',
  2: 'suspended',
  3: 'deactivated',
  5: 'destroyed',
};

/** Whether a group's drill schedule is due at `nowMs`. */
export function drillDue(group: Group, nowMs: number): boolean {
  const s = group.drillSchedule;
  if (!s || s.enabled === false || !(s.intervalMs > 0)) return false;
  return (group.lastDrill?.atMs ?? 0) + s.intervalMs <= nowMs;
}

/** @example const drills = createDrillService({ kp, stores, switchover, endpoints, clock, random, logger }); */
export function createDrillService(deps: DrillDeps): DrillService {
  const cfg: DrillConfig = { ...DEFAULT_DRILL_CONFIG, ...(deps.config ?? {}) };
  const repo = (): DrillRepository => {
    if (!deps.stores.drills) throw new AppError('CONFIG_INVALID', 'This store has no drill repository');
    return deps.stores.drills;
  };

  async function run(groupIdIn: string, opts: { trigger: Trigger; holder?: string }): Promise<DrillRecord> {
    const groupId = asGroupId(groupIdIn);
    const drills = repo();
    const group = (await deps.stores.groups.get(groupId)).value;
    const holder = opts.holder ?? `drill-${deps.random.uuid()}`;
    const lease = await deps.stores.leases.acquire(`drill:${groupId}`, holder, cfg.leaseTtlMs, deps.clock.nowMs());
    if (!lease) {
      throw new AppError('RUN_IN_PROGRESS', `A drill of ${groupId} is already running; try again in a minute`, {
        details: { groupId },
      });
    }
    try {
      const record = await drill(group, opts.trigger, drills);
      await after(group.id, record);
      return record;
    } finally {
      await deps.stores.leases.release(lease).catch(() => undefined);
    }
  }

  async function drill(group: Group, trigger: Trigger, drills: DrillRepository): Promise<DrillRecord> {
    const startedAtMs = deps.clock.nowMs();
    const drillId = `drill-${deps.random.uuid()}`;
    const log = deps.logger.child({ groupId: group.id, drillId });
    const [chain, prev] = await Promise.all([deps.stores.lineage.chain(group.id), drills.head(group.id)]);
    const window = chain.slice(-cfg.retentionGenerations);
    const canaries = window.flatMap((r) => {
      const ev = r.verification.find((c) => c.ok) ?? r.verification[0];
      return ev ? [{ generation: r.generation, ev }] : [];
    });
    const problems: string[] = [];
    for (const r of window) {
      if (!canaries.some((c) => c.generation === r.generation)) {
        problems.push(`generation ${r.generation} has no stored canary to check`);
      }
    }
    const members = await Promise.all(group.members.map((m) => checkMember(m, canaries)));
    const switchover = await switchOver(group, drillId, members);
    for (const m of members) {
      const who = `${m.role} ${m.region}`;
      if (m.health === 'unreachable') problems.push(`${who} is unreachable`);
      if (m.keyState && m.keyState !== 'active' && m.keyState !== 'deactivated') {
        problems.push(`${who} key is ${m.keyState}`);
      }
      for (const c of m.canaries) {
        if (!c.ok) problems.push(`${who} cannot unwrap generation ${c.generation}${c.error ? ` (${c.error})` : ''}`);
      }
      if (m.switchover && !m.switchover.ok) {
        problems.push(`${who} cannot take over: ${m.switchover.error ?? 'unwrapped a different DEK'}`);
      }
      if (m.health === 'ok' && (m.canaries.some((c) => !c.ok) || (m.switchover && !m.switchover.ok)))
        m.health = 'failed';
    }
    problems.push(...switchover.problems);
    const head = chain.at(-1);
    const record = buildDrillRecord(
      {
        kind: 'drill',
        groupId: group.id,
        seq: (prev?.seq ?? 0) + 1,
        drillId,
        trigger,
        startedAtMs,
        finishedAtMs: Math.max(startedAtMs, deps.clock.nowMs()),
        lineageHead: head ? { generation: head.generation, hash: head.hash } : null,
        generationsChecked: canaries.map((c) => c.generation),
        switchover: switchover.evidence,
        members,
        result: problems.length === 0 ? 'passed' : 'failed',
        problems,
      },
      prev,
    );
    await drills.append(record);
    if (cfg.checkpointSigning) {
      await drills.putCheckpoint(
        signDrillCheckpoint(
          { groupId: group.id, seq: record.seq, headHash: record.hash, signedAtMs: deps.clock.nowMs() },
          cfg.checkpointSigning,
        ),
      );
    }
    log.info('drill recorded', {
      seq: record.seq,
      result: record.result,
      problems: problems.length,
      switchoverMs: record.switchover.switchoverMs,
    });
    return record;
  }

  async function checkMember(m: Member, canaries: { generation: number; ev: CanaryEvidence }[]): Promise<DrillMember> {
    const ref = { region: m.region, instanceId: m.instanceId, keyId: m.keyId };
    const out: DrillMember = {
      role: m.role,
      region: m.region,
      instanceId: m.instanceId,
      keyId: m.keyId,
      crn: m.crn,
      endpoints: endpointsOf(m),
      health: 'ok',
      canaries: [],
      switchover: null,
    };
    try {
      const info = await deps.kp.getKey(ref);
      out.keyState = KEY_STATES[info.state] ?? String(info.state);
      out.currentVersionId = info.currentVersionId;
      const last = info.lastRotateAtMs ?? info.creationAtMs;
      out.lastRotateAtMs = last;
      out.earliestRotationAtMs = last + cfg.rotationMinIntervalMs;
    } catch (err) {
      out.health = 'unreachable';
      out.canaries = canaries.map((c) => ({ generation: c.generation, ok: false, error: message(err) }));
      return out;
    }
    out.canaries = await Promise.all(
      canaries.map(async ({ generation, ev }) => {
        try {
          const r = await probeEvidence(deps.kp, ref, ev);
          return {
            generation,
            ok: r.holds,
            ...(r.versionId ? { keyVersionId: r.versionId } : {}),
            ...(r.holds ? {} : { error: 'does not hold the material' }),
          };
        } catch (err) {
          return {
            generation,
            ok: false,
            error: hasCode(err, 'MATERIAL_MISMATCH') ? 'material mismatch' : message(err),
          };
        }
      }),
    );
    return out;
  }

  async function switchOver(group: Group, drillId: string, members: DrillMember[]) {
    const aad = ['lockstep-drill', group.id, drillId];
    const problems: string[] = [];
    const primary = group.members.find((m) => m.role === 'primary');
    const evidence: DrillRecord['switchover'] = {
      wrappedAt: null,
      keyVersionId: null,
      ciphertext: null,
      plaintextSha256: null,
      aad,
      switchoverMs: null,
      answeredBy: null,
    };
    if (!primary) return { evidence, problems: ['the group has no primary'] };
    const dek = deps.random.bytes(32);
    let ciphertext: string;
    try {
      evidence.plaintextSha256 = sha256(dek);
      const w = await deps.kp.wrap(
        { region: primary.region, instanceId: primary.instanceId, keyId: primary.keyId },
        dek,
        aad,
      );
      ciphertext = w.ciphertext;
      Object.assign(evidence, { wrappedAt: primary.crn, keyVersionId: w.keyVersionId, ciphertext });
    } catch (err) {
      evidence.plaintextSha256 = null;
      return { evidence, problems: [`the primary could not wrap a fresh DEK (${message(err)})`] };
    } finally {
      dek.fill(0);
    }
    const expected = evidence.plaintextSha256;
    const unwrapWith = async (down: KeyCrn[]) => {
      const t0 = deps.clock.nowMs();
      const r = await deps.switchover.unwrap(group.members, ciphertext, aad, { down });
      const same = sha256(r.plaintext) === expected;
      r.plaintext.fill(0);
      return { ...r, same, latencyMs: deps.clock.nowMs() - t0 };
    };
    // The application's view: primary down, the client picks the first duplicate that answers.
    try {
      const r = await unwrapWith([primary.crn]);
      if (r.same) {
        evidence.switchoverMs = r.latencyMs;
        evidence.answeredBy = r.crn;
      } else problems.push(`the failover client unwrapped a different DEK at ${r.crn}`);
    } catch (err) {
      problems.push(`with the primary down no duplicate could unwrap (${message(err)})`);
    }
    // Each duplicate alone: every one of them must be able to take over.
    await Promise.all(
      members
        .filter((m) => m.role !== 'primary')
        .map(async (m) => {
          try {
            const r = await unwrapWith(group.members.filter((x) => x.crn !== m.crn).map((x) => x.crn));
            m.switchover = {
              ok: r.same,
              latencyMs: r.latencyMs,
              keyVersionId: r.keyVersionId,
              ...(r.same ? {} : { error: 'unwrapped a different DEK' }),
            };
          } catch (err) {
            m.switchover = { ok: false, error: message(err) };
          }
        }),
    );
    return { evidence, problems };
  }

  function endpointsOf(m: Member) {
    const url = deps.endpoints[m.region];
    return url ? keyProtectEndpoints(url) : { public: '', private: null };
  }

  async function after(groupId: GroupId, record: DrillRecord): Promise<void> {
    const summary: DrillSummary = {
      seq: record.seq,
      drillId: record.drillId,
      atMs: record.finishedAtMs,
      result: record.result,
      problems: record.problems.slice(0, 5),
      hash: record.hash,
      members: record.members.map((m) => ({ crn: m.crn, health: m.health })),
    };
    const failed = record.result === 'failed';
    await deps.stores.groups.mutate(groupId, (g) => {
      const next: Group = { ...g, lastDrill: summary, updatedAtMs: Math.max(g.updatedAtMs, record.finishedAtMs) };
      if (failed && g.status === GroupStatus.HEALTHY) {
        next.status = GroupStatus.DRILL_FAILED;
        next.statusReason = `DR drill ${record.seq} failed: ${record.problems[0] ?? 'see the drill record'}`.slice(
          0,
          300,
        );
      } else if (!failed && g.status === GroupStatus.DRILL_FAILED) {
        next.status = GroupStatus.HEALTHY;
        delete next.statusReason;
      }
      return next;
    });
    if (failed) {
      await deps.notifier
        ?.publish({
          type: 'com.ibm.lockstep.drill.failed',
          subject: groupId,
          data: {
            groupId,
            seq: record.seq,
            drillId: record.drillId,
            problems: record.problems.slice(0, 10),
            hash: record.hash,
          },
        })
        .catch((err: unknown) => deps.logger.warn('drill notification failed', { groupId, error: message(err) }));
    }
  }

  return {
    run,
    async list(groupId, opts) {
      return repo().list(asGroupId(groupId), opts);
    },
    async runDue(opts) {
      let ran = 0;
      let failed = 0;
      if (!deps.stores.drills) return { ran, failed };
      const due: Group[] = [];
      let cursor: string | undefined;
      do {
        const page = await deps.stores.groups.list({ limit: 200, ...(cursor ? { cursor } : {}) });
        due.push(...page.items.filter((g) => !g.activeRunId && drillDue(g, deps.clock.nowMs())));
        cursor = page.next;
      } while (cursor && due.length < cfg.maxDueGroups);
      for (const g of due.slice(0, cfg.maxDueGroups)) {
        if (deps.clock.nowMs() >= opts.deadlineAtMs) break;
        try {
          const r = await run(g.id, {
            trigger: { kind: 'schedule', by: opts.triggerId ?? opts.holder, reason: 'drill schedule' },
            holder: opts.holder,
          });
          ran += 1;
          if (r.result === 'failed') failed += 1;
        } catch (err) {
          if (!hasCode(err, 'RUN_IN_PROGRESS')) {
            deps.logger.error('scheduled drill failed to run', { groupId: g.id, error: message(err) });
          }
        }
      }
      return { ran, failed };
    },
  };
}
