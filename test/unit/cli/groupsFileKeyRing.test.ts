import { describe, expect, it } from 'vitest';
import { parseGroupsFile } from '../../../src/cli/groupsFile.js';

const G1 = '11111111-2222-3333-4444-555555555555';
const K1 = 'aaaaaaaa-2222-3333-4444-555555555555';

const file = (ring: string) => `
groups:
  - id: rings
    name: in key rings
    primary: { region: us-south, keyRing: ${ring} }
    duplicates:
      - { region: us-east, instanceId: ${G1}, keyId: ${K1}, keyRing: lockstep }
      - { crn: "crn:v1:bluemix:public:kms:eu-de:a/acct:${G1.replace('1111', '2222')}:key:${K1}", keyRing: lockstep }
    schedule: { every: 30d }
`;

describe('groups file: key rings per member', () => {
  it('keeps keyRing on mappings and CRN members', () => {
    const r = parseGroupsFile(file('lockstep'), { knownRegions: ['us-south', 'us-east', 'eu-de'] });
    expect(r.issues).toEqual([]);
    const g = r.groups[0]!;
    expect(g.primary).toEqual({ region: 'us-south', keyRing: 'lockstep' });
    expect(g.duplicates.map((d) => d.keyRing)).toEqual(['lockstep', 'lockstep']);
  });

  it('refuses a malformed key ring id, naming the field', () => {
    const r = parseGroupsFile(file('"bad ring!"'), { knownRegions: ['us-south', 'us-east', 'eu-de'] });
    expect(r.ok).toBe(false);
    expect(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')).toMatch(/keyRing.*not a key ring id/);
  });
});
