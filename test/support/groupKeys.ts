/**
 * Test support for the failover client: a "group" of root keys holding identical material in several emulator
 * regions, created and rotated with plain payloads through IBM's SDK (test setup only; lockstep's own rotation is
 * tested elsewhere). Material never leaves this helper.
 */
import { randomBytes } from 'node:crypto';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import type { MemberEndpoint } from '../../src/client/index.js';
import type { EmulatorStack } from '../../src/local/kp-emulator/index.js';

const KEY_TYPE = 'application/vnd.ibm.kms.key+json';

export interface TestGroup {
  members: MemberEndpoint[];
  /** Rotates every member to one fresh material (duplicates first, primary last). */
  rotate(): Promise<void>;
}

export function authenticatorFor(stack: EmulatorStack, identity = 'operator'): IamAuthenticator {
  return new IamAuthenticator({ apikey: stack.iam.apiKeyFor(identity), url: stack.iam.url });
}

/** Creates one imported root key per region (the first region is the primary), all with the same material. */
export async function createTestGroup(
  stack: EmulatorStack,
  regions: string[],
  name = 'client-test',
): Promise<TestGroup> {
  const auth = authenticatorFor(stack);
  const sdk = (url: string) => new KeyProtectV2({ authenticator: auth, serviceUrl: url });
  let material = randomBytes(32);
  const members: MemberEndpoint[] = [];
  for (const [i, region] of regions.entries()) {
    const r = stack.kp.regions[region];
    if (!r) throw new Error(`no emulator region ${region}`);
    const url = r.url;
    const instanceId = r.instances[0] as string;
    const res = await sdk(url).createKey({
      bluemixInstance: instanceId,
      body: Buffer.from(
        JSON.stringify({
          metadata: { collectionType: KEY_TYPE, collectionTotal: 1 },
          resources: [
            { type: KEY_TYPE, name: `${name}-${region}`, extractable: false, payload: material.toString('base64') },
          ],
        }),
      ),
    });
    const keyId = (res.result as { resources: { id: string }[] }).resources[0]?.id as string;
    members.push({ role: i === 0 ? 'primary' : 'duplicate', region, url, instanceId, keyId });
  }
  material.fill(0);
  return {
    members,
    async rotate() {
      material = randomBytes(32);
      const order = [...members.slice(1), members[0] as MemberEndpoint];
      for (const m of order) {
        await sdk(m.url).rotateKey({
          id: m.keyId,
          bluemixInstance: m.instanceId,
          keyActionRotateBody: Buffer.from(JSON.stringify({ payload: material.toString('base64') })),
        });
      }
      material.fill(0);
    },
  };
}
