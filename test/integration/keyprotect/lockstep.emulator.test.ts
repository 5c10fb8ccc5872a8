/**
 * Two regions kept in lockstep through the client: the same material imported securely into a key in each region,
 * rotated through several identical generations one hour apart (emulator clock); every ciphertext of every
 * generation unwraps in the other region, and a key with different material unwraps none.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo, KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import type { RegionId } from '../../../src/core/index.js';
import { type ClientStack, HOUR_MS, newMaterial, startClientStack } from './support.js';

const SOUTH = 'us-south' as RegionId;
const EAST = 'us-east' as RegionId;

describe('identical material across regions', () => {
  let cs: ClientStack;
  let stack: ClientStack['stack'];
  let kp: KeyProtectPort;
  const secrets: string[] = [];
  const instance = (region: RegionId) => cs.instance(region);
  const refOf = (region: RegionId, key: KeyInfo): KeyRef => cs.refOf(region, key);

  beforeAll(async () => {
    cs = await startClientStack([SOUTH, EAST]);
    ({ stack, kp } = cs);
  });

  afterAll(async () => {
    await cs?.close();
  });

  it('keeps two regions in lockstep: same material through secure import, rotated together, each unwraps the other', async () => {
    // Prepare: the same generation-0 material in both regions
    const generations = [newMaterial(secrets), newMaterial(secrets), newMaterial(secrets), newMaterial(secrets)];
    const dek = randomBytes(32);
    const [south, east] = await Promise.all([
      kp.createImportedKey({
        region: SOUTH,
        instanceId: instance(SOUTH),
        name: 'dr-primary',
        material: generations[0]!.material,
      }),
      kp.createImportedKey({
        region: EAST,
        instanceId: instance(EAST),
        name: 'dr-duplicate',
        material: generations[0]!.material,
      }),
    ]);
    const refs = { [SOUTH]: refOf(SOUTH, south), [EAST]: refOf(EAST, east) };
    const ciphertexts: { region: RegionId; generation: number; ciphertext: string; aad: string[] }[] = [];
    const wrapBoth = async (generation: number) => {
      for (const region of [SOUTH, EAST]) {
        const aad = [`gen-${generation}`, region];
        const { ciphertext } = await kp.wrap(refs[region]!, dek, aad);
        ciphertexts.push({ region, generation, ciphertext, aad });
      }
    };
    await wrapBoth(0);

    // Act: three rotations, one hour apart, identical material in both regions (duplicate first, primary last)
    for (let g = 1; g < generations.length; g++) {
      stack.kp.advanceClock(HOUR_MS + 1_000);
      await kp.rotateWithMaterial(refs[EAST]!, generations[g]!.material);
      await kp.rotateWithMaterial(refs[SOUTH]!, generations[g]!.material);
      await wrapBoth(g);
    }

    // Assess: both keys have four versions, newest first
    const [southVersions, eastVersions] = await Promise.all([
      kp.listVersions(refs[SOUTH]!),
      kp.listVersions(refs[EAST]!),
    ]);
    expect(southVersions).toHaveLength(4);
    expect(eastVersions).toHaveLength(4);
    expect(southVersions.map((v) => v.createdAtMs)).toEqual(
      [...southVersions.map((v) => v.createdAtMs)].sort((a, b) => b - a),
    );
    expect((await kp.getKey(refs[SOUTH]!)).currentVersionId).toBe(southVersions[0]!.id);

    // every ciphertext of every generation unwraps in the other region, to the same DEK, at that generation's version
    expect(ciphertexts).toHaveLength(8);
    for (const c of ciphertexts) {
      const other = c.region === SOUTH ? EAST : SOUTH;
      const otherVersions = other === SOUTH ? southVersions : eastVersions;
      const out = await kp.unwrap(refs[other]!, c.ciphertext, c.aad);
      expect(out.plaintext.equals(dek), `gen ${c.generation} from ${c.region} in ${other}`).toBe(true);
      expect(out.keyVersionId).toBe(otherVersions[otherVersions.length - 1 - c.generation]!.id);
    }

    // Act + Assess: a key with different material cannot unwrap them
    const stranger = await cs.client({ useImportToken: false }).createImportedKey({
      region: EAST,
      instanceId: instance(EAST),
      name: 'stranger',
      material: newMaterial(secrets).material,
    });
    for (const c of ciphertexts.filter((x) => x.generation === 0 || x.generation === 3)) {
      await expect(kp.unwrap(refOf(EAST, stranger), c.ciphertext, c.aad)).rejects.toMatchObject({
        code: 'MATERIAL_MISMATCH',
        details: { kpCode: 'UNPROCESSABLE_CIPHERTEXT_ERR', status: 422, region: EAST },
      });
    }
  });

  it('never logged the material', () => {
    for (const line of cs.log.lines) for (const secret of secrets) expect(line.includes(secret)).toBe(false);
    expect(cs.log.lines.length).toBeGreaterThan(20);
  });
});
