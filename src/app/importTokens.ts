/**
 * Import tokens fetched ahead of their secure import, each under its instance's token lease (one token per instance:
 * Key Protect keeps the newest, last writer wins), and what a claim hands to the pass that follows it (PassSeed).
 */
import type { KeyMaterial } from '../core/index.js';
import type { RotationRun } from '../rotation/index.js';
import type { KeyProtectPort, KeyRef, Lease, PreparedImportToken, Stores, Versioned } from './ports.js';

/** What prefetching needs of the runner's context. */
export interface TokenContext {
  kp: KeyProtectPort;
  stores: Stores;
  clock: { nowMs(): number };
  config: { tokenLeaseTtlMs: number };
  random: { uuid(): string };
}

/** An import token fetched ahead of its secure import, under its instance's token lease taken at `atMs`. */
export interface PreparedToken {
  lease: Lease;
  token: Promise<PreparedImportToken | undefined>;
  atMs: number;
}

/** `region:instanceId`: the unit of import tokens (one per instance) and of their leases. */
export const instanceKeyOf = (m: { region: string; instanceId: string }): string => `${m.region}:${m.instanceId}`;

/** The lease that serialises secure imports in one instance (`token:<region>:<instanceId>`). */
export const tokenLeaseName = (m: { region: string; instanceId: string }): string => `token:${instanceKeyOf(m)}`;

/**
 * For each instance of `refs` (once per instance): takes its token lease once, without waiting (`undefined` when
 * another run holds it), and starts fetching an import token under it (POST then GET import_token). The entries never
 * reject: a failed fetch is ignored by the rotate, which then fetches its own token.
 */
export function prefetchImportTokens(
  ctx: TokenContext,
  refs: ReadonlyArray<Pick<KeyRef, 'region' | 'instanceId' | 'keyRingId'>>,
  holder: string,
): Map<string, Promise<PreparedToken | undefined>> {
  const out = new Map<string, Promise<PreparedToken | undefined>>();
  const prepare = ctx.kp.prepareImportToken?.bind(ctx.kp);
  const byKey = new Map(refs.map((r) => [instanceKeyOf(r), r]));
  if (!prepare || byKey.size === 0) return out;
  const keys = [...byKey.keys()];
  const atMs = ctx.clock.nowMs();
  const ttl = ctx.config.tokenLeaseTtlMs;
  const leases = ctx.stores.leases;
  // Several instances: every lease in one store round trip sequence (read, write, read back), not one per instance.
  const all =
    keys.length > 1 && leases.acquireMany
      ? leases.acquireMany(
          keys.map((k) => tokenLeaseName(byKey.get(k)!)),
          holder,
          ttl,
          atMs,
        )
      : undefined;
  keys.forEach((key, i) => {
    const ref = byKey.get(key)!;
    const entry = (async (): Promise<PreparedToken | undefined> => {
      const lease = all ? (await all)[i] : await leases.acquire(tokenLeaseName(ref), holder, ttl, atMs);
      if (!lease) return undefined;
      const token = prepare(
        { region: ref.region, instanceId: ref.instanceId, ...(ref.keyRingId ? { keyRingId: ref.keyRingId } : {}) },
        { correlationId: ctx.random.uuid() },
      );
      token.catch(() => undefined);
      return { lease, token, atMs };
    })();
    out.set(
      key,
      entry.catch(() => undefined),
    );
  });
  return out;
}

/**
 * What a claim prepared for the pass that follows it at once (a rotation the tick starts): import tokens fetched
 * under their instances' leases, by instance, and the material whose escrow the claimed run already holds.
 */
export interface PassSeed {
  prepared: Map<string, Promise<PreparedToken | undefined>>;
  material?: KeyMaterial;
  /** The run as the claim created it (the pass still re-reads it under the group lease). */
  run?: Versioned<RotationRun>;
}

/** Releases the leases of prepared tokens nobody used, and forgets them (the tokens themselves just expire). */
export async function releasePreparedTokens(
  stores: Stores,
  prepared: Map<string, Promise<PreparedToken | undefined>>,
): Promise<void> {
  const entries = [...prepared.values()];
  prepared.clear();
  await Promise.all(
    entries.map(async (e) => {
      const pre = await e.catch(() => undefined);
      if (pre) await stores.leases.release(pre.lease).catch(() => undefined);
    }),
  );
}

/**
 * Frees what a seed still holds: the token leases are released, the material zeroed. A pass that took the seed
 * (`Worker.adopt`) left it empty, so this is a no-op then.
 */
export async function disposeSeed(stores: Stores, seed: PassSeed | undefined): Promise<void> {
  if (!seed) return;
  seed.material?.zero();
  delete seed.material;
  await releasePreparedTokens(stores, seed.prepared);
}
