/**
 * IAM service access of the emulator: which identity holds which Key Protect service role on which instance or key
 * ring. Sources: ibm-cloud-docs/key-protect `concepts/manage-access.md` (roles per action, "roles are additive",
 * KeyPurge apart), `key-rings.md` (grants scoped to a key ring through the "Key Ring ID" attribute; listing,
 * creating and deleting rings needs access to the whole instance), `at-events.md` (401 "for unauthorized/forbidden").
 */

/** Key Protect service roles (manage-access.md). */
export const KP_ROLES = ['Reader', 'ReaderPlus', 'Writer', 'Manager', 'KeyPurge'] as const;
export type KpRole = (typeof KP_ROLES)[number];

/**
 * One IAM policy: `subject` (an `iam_id`, or an identity name of the local IAM) holds `roles` on `instanceId` (or
 * `'*'`: every instance of the account), optionally only inside key ring `keyRingId`.
 */
export interface AccessGrant {
  subject: string;
  instanceId: string;
  keyRingId?: string;
  roles: KpRole[];
}

/** The additive ladder (manage-access.md: "A Manager has all of the permissions that a Reader has and more"). */
const LEVEL: Record<Exclude<KpRole, 'KeyPurge'>, number> = { Reader: 1, ReaderPlus: 2, Writer: 3, Manager: 4 };

/** What one route needs: a role, and whether a ring-scoped grant can satisfy it. */
export interface Requirement {
  role: KpRole;
  /** `instance`: only a grant on the whole instance counts (key-ring admin, instance policies, unscoped lists). */
  scope: 'ring' | 'instance';
}

/**
 * The role each Key Protect action needs (manage-access.md tables). Actions not in the table (unknown routes)
 * need Reader, so an identity without any role is still refused first.
 */
export const ROLE_BY_ACTION: Readonly<Record<string, Requirement>> = Object.freeze({
  'kms.secrets.create': { role: 'Writer', scope: 'ring' },
  'kms.secrets-with-policy-overrides.create': { role: 'Writer', scope: 'ring' },
  // "Retrieve a key" (with payload): ReaderPlus; "Retrieve key metadata": Reader.
  'kms.secrets.read': { role: 'ReaderPlus', scope: 'ring' },
  'kms.secrets-metadata.read': { role: 'Reader', scope: 'ring' },
  'kms.secrets.head': { role: 'Reader', scope: 'ring' },
  'kms.secrets.list': { role: 'Reader', scope: 'ring' },
  'kms.secrets-key-versions.list': { role: 'Reader', scope: 'ring' },
  'kms.secrets.wrap': { role: 'Reader', scope: 'ring' },
  'kms.secrets.unwrap': { role: 'Reader', scope: 'ring' },
  'kms.secrets.rewrap': { role: 'Reader', scope: 'ring' },
  'kms.secrets.rotate': { role: 'Writer', scope: 'ring' },
  'kms.secrets.disable': { role: 'Manager', scope: 'ring' },
  'kms.secrets.enable': { role: 'Manager', scope: 'ring' },
  'kms.secrets.setkeyfordeletion': { role: 'Writer', scope: 'ring' },
  'kms.secrets.unsetkeyfordeletion': { role: 'Writer', scope: 'ring' },
  'kms.secrets.delete': { role: 'Manager', scope: 'ring' },
  'kms.secrets.restore': { role: 'Manager', scope: 'ring' },
  'kms.secrets.patch': { role: 'Manager', scope: 'ring' },
  'kms.secrets.sync': { role: 'Writer', scope: 'ring' },
  'kms.secrets.purge': { role: 'KeyPurge', scope: 'ring' },
  // Aliases are not in the table: modifying a key's metadata is the Writer's "using an object" (stricter than Reader).
  'kms.secrets-alias.create': { role: 'Writer', scope: 'ring' },
  'kms.secrets-alias.delete': { role: 'Writer', scope: 'ring' },
  'kms.policies.read': { role: 'Manager', scope: 'ring' },
  'kms.policies.write': { role: 'Manager', scope: 'ring' },
  'kms.instance-policies.read': { role: 'Manager', scope: 'instance' },
  'kms.instance-policies.write': { role: 'Manager', scope: 'instance' },
  // Import tokens: Writer; the SDK's X-Kms-Key-Ring note says the header is needed only without access to `default`.
  'kms.import-token.create': { role: 'Writer', scope: 'ring' },
  'kms.import-token.read': { role: 'Writer', scope: 'ring' },
  'kms.key-rings.list': { role: 'Reader', scope: 'instance' },
  'kms.key-rings.create': { role: 'Writer', scope: 'instance' },
  'kms.key-rings.delete': { role: 'Manager', scope: 'instance' },
  'kms.registrations.list': { role: 'Reader', scope: 'ring' },
});

export function requirementOf(action: string): Requirement {
  return ROLE_BY_ACTION[action] ?? { role: 'Reader', scope: 'instance' };
}

function satisfies(held: readonly KpRole[], need: KpRole): boolean {
  if (need === 'KeyPurge') return held.includes('KeyPurge');
  const want = LEVEL[need];
  return held.some((r) => r !== 'KeyPurge' && LEVEL[r] >= want);
}

/**
 * Whether `subjects` (the caller's iam_id and name) may perform `action` on `instanceId`, in key ring `ring`
 * (undefined: a call not addressed to one ring). `grants === undefined` is the open mode: every identity of the
 * account acts as the account owner (Manager + KeyPurge everywhere).
 */
export function allows(
  grants: readonly AccessGrant[] | undefined,
  subjects: readonly string[],
  instanceId: string,
  action: string,
  ring: string | undefined,
): boolean {
  if (grants === undefined) return true;
  const req = requirementOf(action);
  const held: KpRole[] = [];
  for (const g of grants) {
    if (!subjects.includes(g.subject)) continue;
    if (g.instanceId !== '*' && g.instanceId.toLowerCase() !== instanceId) continue;
    if (g.keyRingId !== undefined) {
      if (req.scope === 'instance' || ring === undefined || g.keyRingId !== ring) continue;
    }
    held.push(...g.roles);
  }
  return satisfies(held, req.role);
}

/** Validates grants given through the admin API or options. @throws {Error} naming the bad field */
export function checkGrants(raw: unknown): AccessGrant[] {
  if (!Array.isArray(raw)) throw new Error('access grants must be an array');
  return raw.map((g, i) => {
    const x = g as Partial<AccessGrant> | null;
    if (!x || typeof x.subject !== 'string' || x.subject === '') throw new Error(`grants[${i}].subject is required`);
    if (typeof x.instanceId !== 'string' || x.instanceId === '') {
      throw new Error(`grants[${i}].instanceId is required ('*' for every instance)`);
    }
    if (x.keyRingId !== undefined && (typeof x.keyRingId !== 'string' || x.keyRingId === '')) {
      throw new Error(`grants[${i}].keyRingId must be a non-empty string`);
    }
    if (!Array.isArray(x.roles) || x.roles.some((r) => !KP_ROLES.includes(r as KpRole))) {
      throw new Error(`grants[${i}].roles must be a list of ${KP_ROLES.join(', ')}`);
    }
    return {
      subject: x.subject,
      instanceId: x.instanceId.toLowerCase(),
      ...(x.keyRingId !== undefined ? { keyRingId: x.keyRingId } : {}),
      roles: [...x.roles],
    };
  });
}
