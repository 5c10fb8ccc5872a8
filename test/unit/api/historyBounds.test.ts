/**
 * History-sized responses stay bounded (issue 13 finding 6, issue 16): the proof lists a bounded report and hands
 * the group page only the newest records at any history length, verifies incrementally (and still finds a broken
 * continuation), and an export page is bounded by bytes as well as by count.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_PAGE_MAX_BYTES } from '../../../src/api/export.js';
import { type ApiHandler, createApi } from '../../../src/api/index.js';
import { buildProof, loadTrustedKeys, PAGE_RECORDS, PROOF_LIST_LIMIT } from '../../../src/api/proof.js';
import { renderGroupPage } from '../../../src/api/ui.js';
import type { Group, LineageRecord } from '../../../src/core/index.js';
import { buildLineageRecord, hashRecord } from '../../../src/lineage/index.js';
import { createFakeStores, makeChain, makeGroup, testCheckpointKeys } from './support/fakes.js';
import { startTestIssuer } from './support/jwks.js';

const NOW = Date.UTC(2026, 11, 1);
const LONG = 600; // generations: the JSONL export of the group is ~1.5 MB

describe('history-sized responses', () => {
  const stores = createFakeStores();
  const cpKeys = testCheckpointKeys();
  const clock = { nowMs: () => NOW };
  let group: Group;
  let chain: LineageRecord[];

  const append = (r: LineageRecord) => {
    stores.data.lineage.push(r);
    stores.data.checkpoints.push(cpKeys.sign(r, r.finishedAtMs + 1));
  };
  const next = (prev: LineageRecord, over: Partial<LineageRecord> = {}): LineageRecord => {
    const { hash: _h, prevHash: _p, ...rest } = prev;
    return buildLineageRecord(
      { ...rest, generation: prev.generation + 1, finishedAtMs: prev.finishedAtMs + 1000, ...over },
      prev,
    );
  };

  beforeAll(() => {
    group = makeGroup('long', { generation: LONG });
    stores.data.groups.set(group.id, group);
    chain = makeChain(group, LONG);
    for (const r of chain) append(r);
  });

  it('a proof lists a bounded report and the newest records only, with complete counts', async () => {
    const keys = loadTrustedKeys({ main: cpKeys.pem });
    const { proof, records } = await buildProof({ stores, clock, keys }, group.id);
    expect(proof.chain).toMatchObject({ ok: true, length: LONG, headGeneration: LONG, signedThroughGeneration: LONG });
    expect(proof.chain.checkpoints.length).toBeLessThanOrEqual(PROOF_LIST_LIMIT + 1);
    expect(proof.verification).toMatchObject({ mode: 'full', breaks: 0, checkpoints: LONG });
    expect(records.map((r) => r.generation)).toEqual(chain.slice(-PAGE_RECORDS).map((r) => r.generation));
    expect(JSON.stringify(proof).length).toBeLessThan(20_000);
    const html = renderGroupPage({
      basePath: '',
      principal: { iamId: 'IBMid-A', role: 'auditor' } as never,
      group,
      records,
      report: proof.chain,
      checkpoint: proof.checkpoint,
    });
    expect(html).toContain(`Showing the newest ${PAGE_RECORDS} of ${LONG} generations`);
    expect(html.match(/data-testid="generation"/g)).toHaveLength(PAGE_RECORDS);
  });

  it('continues the check incrementally, and finds a break in what was appended', async () => {
    const keys = loadTrustedKeys({ main: cpKeys.pem });
    const g = makeGroup('grows', { generation: 0 });
    stores.data.groups.set(g.id, g);
    const base = makeChain(g, 120);
    for (const r of base) append(r);
    const first = await buildProof({ stores, clock, keys }, g.id);
    expect(first.proof.verification.mode).toBe('full');
    // Act: three more generations; then one whose prevHash does not link
    let head = base.at(-1)!;
    for (let i = 0; i < 3; i++) {
      head = next(head);
      append(head);
    }
    const second = await buildProof({ stores, clock, keys }, g.id);
    expect(second.proof.verification.mode).toBe('incremental');
    expect(second.proof.chain).toMatchObject({ ok: true, length: 123, headGeneration: 123, firstGeneration: 1 });
    expect(second.proof.chain.signedThroughGeneration).toBe(123);
    expect(second.proof.head).toEqual({ generation: 123, hash: head.hash });
    const unchanged = await buildProof({ stores, clock, keys }, g.id);
    expect(unchanged.proof.chain).toEqual(second.proof.chain);
    // generation 124 hashes correctly but links to a record that is not generation 123
    const linked = next(head);
    const unlinked = { ...linked, prevHash: 'f'.repeat(64) };
    const forged = { ...unlinked, hash: hashRecord(unlinked) };
    append(forged);
    const third = await buildProof({ stores, clock, keys }, g.id);
    expect(third.proof.chain.ok).toBe(false);
    expect(third.proof.chain.firstBreak).toMatchObject({ generation: 124, kind: 'prev-hash-mismatch' });
    expect(third.proof.verification).toMatchObject({ mode: 'incremental', breaks: 1 });
  });

  describe('export pages', () => {
    let api: ApiHandler;
    let token: string;
    beforeAll(async () => {
      const issuer = await startTestIssuer();
      token = await issuer.sign('IBMid-AUDITOR1');
      api = createApi({
        stores,
        service: {} as never,
        auth: { jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, roles: { 'IBMid-AUDITOR1': 'auditor' } },
        checkpointPublicKeys: { main: cpKeys.pem },
        clock,
        logger: { debug() {}, info() {}, warn() {}, error() {}, child: () => undefined as never },
      });
      return () => issuer.close();
    });

    it.each(['jsonl', 'csv'] as const)('are bounded by bytes as well as by count (%s)', async (format) => {
      const bodies: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await api({
          method: 'GET',
          path: '/v1/export',
          query: { format, groupId: 'long', ...(cursor ? { cursor } : {}) },
          headers: { host: 'lockstep.test', authorization: `Bearer ${token}` },
          requestId: `r-${bodies.length}`,
        });
        expect(res.statusCode).toBe(200);
        bodies.push(String(res.body));
        cursor = res.headers['x-lockstep-next-cursor'];
      } while (cursor && bodies.length < 20);
      // more than one page although far fewer records than the count limit; each page within the byte bound
      expect(bodies.length).toBeGreaterThan(1);
      for (const b of bodies) expect(Buffer.byteLength(b)).toBeLessThanOrEqual(EXPORT_PAGE_MAX_BYTES);
      const lines = bodies
        .join('')
        .split(format === 'csv' ? '\r\n' : '\n')
        .filter(Boolean);
      if (format === 'jsonl') {
        expect(lines.map((l) => (JSON.parse(l) as LineageRecord).generation)).toEqual(chain.map((r) => r.generation));
      } else {
        expect(lines.length).toBe(1 + LONG * group.members.length); // header + one row per member per generation
      }
    });
  });
});
