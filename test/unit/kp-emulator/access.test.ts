import { describe, expect, it } from 'vitest';
import { type AccessGrant, allows, checkGrants, requirementOf } from '../../../src/local/kp-emulator/access.js';

const I = 'aaaaaaaa-0000-4000-8000-000000000000';
const who = ['iam-ServiceId-1', 'lockstep'];

describe('emulator IAM service access (manage-access.md)', () => {
  it.each<[string, AccessGrant[] | undefined, string, string | undefined, boolean]>([
    ['open mode allows everything', undefined, 'kms.secrets.purge', 'default', true],
    ['no grant refuses', [], 'kms.secrets-metadata.read', 'default', false],
    [
      'Reader reads metadata',
      [{ subject: 'lockstep', instanceId: I, roles: ['Reader'] }],
      'kms.secrets-metadata.read',
      'default',
      true,
    ],
    [
      'Reader cannot retrieve (ReaderPlus)',
      [{ subject: 'lockstep', instanceId: I, roles: ['Reader'] }],
      'kms.secrets.read',
      'default',
      false,
    ],
    [
      'Writer covers ReaderPlus (additive)',
      [{ subject: 'lockstep', instanceId: I, roles: ['Writer'] }],
      'kms.secrets.read',
      'default',
      true,
    ],
    [
      'Writer rotates',
      [{ subject: 'iam-ServiceId-1', instanceId: I, roles: ['Writer'] }],
      'kms.secrets.rotate',
      'r1',
      true,
    ],
    [
      'Writer cannot delete',
      [{ subject: 'lockstep', instanceId: I, roles: ['Writer'] }],
      'kms.secrets.delete',
      'default',
      false,
    ],
    [
      'Manager cannot purge (KeyPurge apart)',
      [{ subject: 'lockstep', instanceId: '*', roles: ['Manager'] }],
      'kms.secrets.purge',
      'default',
      false,
    ],
    [
      'KeyPurge purges',
      [{ subject: 'lockstep', instanceId: '*', roles: ['KeyPurge'] }],
      'kms.secrets.purge',
      'default',
      true,
    ],
    [
      'ring grant in its ring',
      [{ subject: 'lockstep', instanceId: I, keyRingId: 'r1', roles: ['Writer'] }],
      'kms.secrets.rotate',
      'r1',
      true,
    ],
    [
      'ring grant in another ring',
      [{ subject: 'lockstep', instanceId: I, keyRingId: 'r1', roles: ['Writer'] }],
      'kms.secrets.rotate',
      'r2',
      false,
    ],
    [
      'ring grant, call in no ring',
      [{ subject: 'lockstep', instanceId: I, keyRingId: 'r1', roles: ['Manager'] }],
      'kms.secrets.list',
      undefined,
      false,
    ],
    [
      'ring grant cannot list rings (instance scope)',
      [{ subject: 'lockstep', instanceId: I, keyRingId: 'r1', roles: ['Manager'] }],
      'kms.key-rings.list',
      'r1',
      false,
    ],
    [
      'grant on another instance',
      [{ subject: 'lockstep', instanceId: 'bbbbbbbb-0000-4000-8000-000000000000', roles: ['Manager'] }],
      'kms.secrets.wrap',
      'default',
      false,
    ],
    [
      'grant for another subject',
      [{ subject: 'auditor', instanceId: I, roles: ['Manager'] }],
      'kms.secrets.wrap',
      'default',
      false,
    ],
  ])('%s', (_name, grants, action, ring, want) => {
    expect(allows(grants, who, I, action, ring)).toBe(want);
  });

  it('unknown actions need Reader on the whole instance', () => {
    expect(requirementOf('kms.secrets.default')).toEqual({ role: 'Reader', scope: 'instance' });
  });

  it('validates grants, naming the bad field', () => {
    expect(() => checkGrants([{ subject: 'x', instanceId: I, roles: ['Owner'] }])).toThrow(/grants\[0\]\.roles/);
    expect(() => checkGrants([{ subject: '', instanceId: I, roles: [] }])).toThrow(/grants\[0\]\.subject/);
    expect(checkGrants([{ subject: 'x', instanceId: I.toUpperCase(), roles: ['Reader'] }])[0]!.instanceId).toBe(I);
  });
});
