/**
 * The DR routes: `GET /v1/groups/{groupId}/endpoints` (what the failover client reads), `GET|POST
 * /v1/groups/{groupId}/drills`, and the other chain of its own, `GET /v1/groups/{groupId}/evidence` (late evidence). Schemas: `openapiDr.ts`.
 */
import type { DrillService, Stores } from '../app/index.js';
import type {
  DrillCheckpoint,
  DrillRecord,
  EvidenceCheckpoint,
  EvidenceRecord,
  Group,
  GroupId,
  HttpResponse,
  Trigger,
} from '../core/index.js';
import { AppError, asGroupId, ibmKeyProtectUrl, jsonResponse, keyProtectEndpoints } from '../core/index.js';
import { checkLineageText } from '../lineage/index.js';
import type { Principal } from './auth.js';
import type { Route } from './createApi.js';
import { decodeCursor } from './cursor.js';
import { OPERATIONS, type OperationSpec } from './operations.js';

export interface DrRouteDeps {
  stores: Stores;
  drills?: DrillService;
  /** Key Protect URL per region as lockstep is configured (IBM's regional URL when a region is not configured). */
  keyProtectEndpoints?: Readonly<Record<string, string>>;
  requireGroup(groupId: GroupId): Promise<Group>;
  /** The router's route builder: method, path, parameters and body schema come from `operations.ts`. */
  fromOp(op: OperationSpec, access: Route['access'], handle: Route['handle']): Route;
  /** A collection page as every list route answers it (items, limit, first, next). */
  page<T>(
    path: string,
    limit: number,
    items: T[],
    storeNext: string | undefined,
    scope: string,
  ): Record<string, unknown>;
  basePath: string;
  nowMs(): number;
}

/** How often a failover client should re-read the endpoints (seconds). */
export const ENDPOINTS_REFRESH_SECONDS = 300;

/** The drill record as stored (exactly its fields, so its hash can be recomputed from the response). */
export function drillView<R extends DrillRecord | EvidenceRecord>(r: R): R {
  const { _id: _i, _rev: _r, ...rest } = r as R & { _id?: string; _rev?: string };
  return JSON.parse(JSON.stringify(rest)) as R;
}

/** The fields of a drill or evidence checkpoint a response carries (nothing a store added). */
export function drillCheckpointView<C extends DrillCheckpoint | EvidenceCheckpoint>(c: C): C {
  const { chain, groupId, seq, headHash, signedAtMs, keyId, algorithm, signature } = c;
  return { chain, groupId, seq, headHash, signedAtMs, keyId, algorithm, signature } as C;
}

/** The fields of an evidence checkpoint a response carries. */
export const evidenceCheckpointView = (c: EvidenceCheckpoint): EvidenceCheckpoint => drillCheckpointView(c);

/** Each member's role, region, Key Protect URLs, instance, key, ring and health as the latest drill found it. */
export function endpointsView(group: Group, endpoints: Readonly<Record<string, string>>, nowMs: number) {
  const drill = group.lastDrill;
  return {
    groupId: group.id,
    status: group.status,
    currentGeneration: group.currentGeneration,
    generatedAtMs: nowMs,
    refreshAfterSeconds: ENDPOINTS_REFRESH_SECONDS,
    members: group.members.map((m) => {
      const seen = drill?.members.find((x) => x.crn === m.crn);
      return {
        role: m.role,
        region: m.region,
        instanceId: m.instanceId,
        keyId: m.keyId,
        crn: m.crn,
        keyRingId: m.keyRingId ?? null,
        endpoints: keyProtectEndpoints(endpoints[m.region] ?? ibmKeyProtectUrl(m.region)),
        health:
          drill && seen
            ? { status: seen.health, source: 'drill', checkedAtMs: drill.atMs, drillSeq: drill.seq }
            : { status: 'unknown', source: 'none' },
      };
    }),
  };
}

export function createDrRoutes(deps: DrRouteDeps): Route[] {
  const repo = () => {
    if (!deps.stores.drills) throw new AppError('CONFIG_INVALID', 'This deployment stores no DR drills');
    return deps.stores.drills;
  };
  /** A page of one of the group's seq chains, newest first, with its latest signed head. */
  async function listChain<R extends DrillRecord | EvidenceRecord, C extends DrillCheckpoint | EvidenceCheckpoint>(
    name: 'drills' | 'evidence',
    store: () => {
      list(groupId: GroupId, opts: { limit: number; cursor?: string }): Promise<{ items: R[]; next?: string }>;
      checkpoints(groupId: GroupId): Promise<C[]>;
    },
    input: { query: Record<string, unknown> },
    params: Record<string, string>,
  ): Promise<HttpResponse> {
    const groupId = asGroupId(params.groupId);
    const limit = input.query.limit as number;
    const scope = `${name}:${groupId}`;
    const cursor = input.query.cursor === undefined ? undefined : decodeCursor(input.query.cursor as string, scope);
    await deps.requireGroup(groupId);
    const chain = store();
    const [page, checkpoints] = await Promise.all([
      chain.list(groupId, { limit, ...(cursor ? { cursor } : {}) }),
      chain.checkpoints(groupId),
    ]);
    const latest = [...checkpoints].sort((a, b) => b.seq - a.seq || b.signedAtMs - a.signedAtMs)[0];
    return jsonResponse(200, {
      ...deps.page(`${deps.basePath}/v1/groups/${groupId}/${name}`, limit, page.items.map(drillView), page.next, scope),
      checkpoint: latest ? drillCheckpointView(latest) : null,
    });
  }
  return [
    deps.fromOp(OPERATIONS.getGroupEndpoints, 'read', async ({ params }) => {
      const group = await deps.requireGroup(asGroupId(params.groupId));
      return jsonResponse(200, endpointsView(group, deps.keyProtectEndpoints ?? {}, deps.nowMs()), {
        'cache-control': `private, max-age=${ENDPOINTS_REFRESH_SECONDS}`,
      });
    }),
    deps.fromOp(OPERATIONS.listDrills, 'read', ({ input, params }) => listChain('drills', repo, input, params)),
    deps.fromOp(OPERATIONS.listEvidence, 'read', ({ input, params }) =>
      listChain(
        'evidence',
        () => {
          if (!deps.stores.evidence) throw new AppError('CONFIG_INVALID', 'This deployment stores no evidence chain');
          return deps.stores.evidence;
        },
        input,
        params,
      ),
    ),
    deps.fromOp(OPERATIONS.runDrill, 'act', async ({ input, params, principal }): Promise<HttpResponse> => {
      const groupId = asGroupId(params.groupId);
      const body = (input.body ?? {}) as { reason?: string };
      await deps.requireGroup(groupId);
      if (!deps.drills) throw new AppError('CONFIG_INVALID', 'This deployment cannot run DR drills');
      const trigger: Trigger = {
        kind: 'operator',
        by: (principal as Principal).iamId,
        // The reason enters the drill record (chained, signed): the lineage text rules.
        ...(body.reason !== undefined ? { reason: checkLineageText('reason', body.reason, 'reason') } : {}),
      };
      const record = await deps.drills.run(groupId, { trigger });
      const path = `${deps.basePath}/v1/groups/${groupId}/drills`;
      return jsonResponse(201, drillView(record), { location: path });
    }),
  ];
}
