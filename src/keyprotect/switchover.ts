/**
 * The DR drill's view of an application: unwraps through the failover client (`lockstep/client`), with chosen
 * members treated as down, exactly as an application's keyring would fail over.
 */
import type { SwitchoverPort } from '../app/drill.js';
import { GroupKeyring, type MemberEndpoint, memberEndpoint } from '../client/index.js';
import { AppError, type Member } from '../core/index.js';
import type { KeyProtectAuthenticator } from './auth.js';

export interface SwitchoverProbeOptions {
  /** Key Protect URL per region (the same map the orchestrator's client uses). */
  endpoints: Readonly<Record<string, string>>;
  authenticator: KeyProtectAuthenticator;
  /** Budget of one switch-over unwrap (default 10 000 ms). */
  deadlineMs?: number;
  /** Per-member answer budget (default 3 000 ms). */
  attemptTimeoutMs?: number;
}

/** @throws {AppError} UPSTREAM_UNAVAILABLE / UPSTREAM_REJECTED when no allowed member could unwrap */
export function createSwitchoverProbe(opts: SwitchoverProbeOptions): SwitchoverPort {
  const toEndpoint = (m: Member): MemberEndpoint => {
    const url = opts.endpoints[m.region];
    if (!url) {
      throw new AppError('CONFIG_INVALID', `No Key Protect endpoint is configured for region ${m.region}`, {
        details: { field: 'endpoints', region: m.region },
      });
    }
    return memberEndpoint(m, url);
  };
  return {
    async unwrap(members, ciphertext, aad, { down }) {
      const ring = new GroupKeyring({
        members: members.map(toEndpoint),
        authenticator: opts.authenticator as never,
        deadlineMs: opts.deadlineMs ?? 10_000,
        attemptTimeoutMs: opts.attemptTimeoutMs ?? 3_000,
      });
      const crnOf = (ref: { region: string; instanceId: string; keyId: string }) =>
        members.find((m) => m.region === ref.region && m.instanceId === ref.instanceId && m.keyId === ref.keyId)?.crn;
      try {
        const out = await ring.unwrap(ciphertext, {
          aad,
          exclude: (ref) => {
            const crn = crnOf(ref);
            return crn !== undefined && down.includes(crn);
          },
        });
        const crn = crnOf(out.member);
        if (!crn) throw new AppError('INTERNAL', 'The failover client answered from an unknown member');
        return { plaintext: out.plaintext, crn, keyVersionId: out.keyVersionId, attempts: out.attempts };
      } catch (err) {
        if (err instanceof AppError) throw err;
        const e = err as { code?: string; message?: string };
        throw new AppError(
          e.code === 'REJECTED' || e.code === 'DENIED' ? 'UPSTREAM_REJECTED' : 'UPSTREAM_UNAVAILABLE',
          `Failover client: ${e.message ?? String(err)}`,
          { details: { keyringCode: e.code ?? null }, cause: err },
        );
      }
    },
  };
}
