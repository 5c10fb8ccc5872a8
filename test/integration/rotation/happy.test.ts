/**
 * Happy path over HTTP: real Key Protect client → emulator (secure import, wrap/unwrap), real Cloudant adapter →
 * embedded store. 1, 2 and 4 duplicates: identical material everywhere (cross-unwrap of every generation), lineage
 * complete and chained, version map correct, and no key material in any log line, stored document or response.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../../src/lineage/index.js';
import { expectChain } from '../../support/assertions.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';
import { checkpointKeyPem, leakedSecrets } from '../../support/rotationHarness.js';

const HOUR = 3_600_000;
let s: LocalStack;
const signing = checkpointKeyPem();
const responses: string[] = [];

beforeAll(async () => {
  s = await startLocalStack({ config: { checkpointSigning: { privateKey: signing.privateKey } } });
});
afterAll(async () => {
  await s?.close();
});

describe('rotation over HTTP (emulator + embedded store)', () => {
  it.each([
    { dups: 1, rotations: 2 },
    { dups: 2, rotations: 2 },
    { dups: 4, rotations: 1 },
  ])('$dups duplicate(s), $rotations rotation(s): every member holds every generation', async ({ dups, rotations }) => {
    const gens = rotations + 1;
    // Arrange
    const svc = s.service();
    const group = await createStackGroup(s, `happy-${dups}`, dups);
    responses.push(JSON.stringify(group));
    // Act: rotations an hour apart (the emulator enforces the 1 h rule)
    for (let i = 0; i < rotations; i++) {
      s.clock.advance(HOUR + 1_000);
      const { runId } = await svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'it' } });
      const run = await driveRun(s, svc, runId);
      responses.push(JSON.stringify(run));
      expect(run.status).toBe('completed');
    }
    // Assert: lineage complete and chained, with a signed checkpoint of the head
    const chain = await expectChain(s.stores, group, gens);
    const checkpoint = await s.stores.checkpoints.latest(group.id);
    expect(checkpoint?.generation).toBe(gens);
    const report = verifyChain(chain, [checkpoint!], { [checkpoint!.keyId]: signing.publicKey });
    responses.push(JSON.stringify(report));
    expect(report).toMatchObject({ ok: true, headGeneration: gens, signedThroughGeneration: gens });
    // version map: each record names the member's Key Protect version, newest first in KP
    for (const m of group.members) {
      const versions = await s.kp.listVersions(m);
      expect(versions).toHaveLength(gens); // exactly one new version per member per generation
      expect(chain.map((r) => r.members.find((x) => x.crn === m.crn)!.keyVersionId)).toEqual(
        versions.map((v) => v.id).reverse(),
      );
      for (const [i, r] of chain.entries()) {
        const found = await s.stores.lineage.findByKeyVersion(versions[versions.length - 1 - i]!.id);
        expect(found?.generation).toBe(r.generation);
      }
    }
    // cross-unwrap: each generation's canary unwraps at every member, reporting the recorded version
    const verify = await svc.verify(group.id);
    responses.push(JSON.stringify(verify));
    expect(verify.ok).toBe(true);
    expect(verify.unchecked).toEqual([]);
    expect(verify.probes).toHaveLength(gens * (dups + 1));
    expect(new Set(chain.map((r) => r.fingerprint)).size).toBe(gens);
    // the escrow ciphertext is kept with the run, never in lineage
    for (const r of chain) expect(JSON.stringify(r)).not.toMatch(/escrow/i);
  });

  it('no key material (hex or base64) in any captured log line, stored document or response', async () => {
    const docs: string[] = [];
    for (const db of Object.values(s.stores.databases)) {
      const all = await s.stores.client.postAllDocs({ db, includeDocs: true });
      docs.push(JSON.stringify(all.result));
    }
    const haystack = [...s.log.lines, ...docs, ...responses].join('\n');
    expect(s.log.lines.length).toBeGreaterThan(50);
    expect(s.random.secrets.length).toBeGreaterThan(10);
    expect(leakedSecrets(haystack, s.random.secrets)).toEqual([]);
  });
});
