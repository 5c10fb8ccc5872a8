/**
 * Which Key Protect key states lockstep rotates (ibm-cloud-docs/key-protect `concepts/key-states.md`):
 *
 * | state | Key Protect allows rotate | lockstep rotates | why |
 * |---|---|---|---|
 * | 0 pre-active | – (no key exists yet) | no | nothing to rotate |
 * | 1 active | yes | yes | |
 * | 2 suspended | no | no | Key Protect refuses (409) |
 * | 3 deactivated | **yes** | **no** | a deactivated key can never wrap again, "even if rotated while deactivated", and rotation does not extend `expirationDate`: rotating it would record a generation that member cannot serve at failover. The group stays degraded until the member is replaced (`region add`) or a new key takes its place |
 * | 5 destroyed | no | no | deleted |
 */

const REASONS: Record<number, string> = {
  0: 'is not active: pre-active (state 0), the key does not exist yet',
  2: 'is not active: suspended (state 2, disabled); enable it in Key Protect',
  3: 'is not active: deactivated (state 3, past its expirationDate); Key Protect still rotates it, but it can never wrap again, so lockstep does not rotate the group; replace the member',
  5: 'is not active: destroyed (state 5, deleted); restore it within 30 days or replace the member',
};

/** Why a member in `state` cannot take part in a rotation; undefined for an active key. */
export function memberStateProblem(state: number, deleted = false): string | undefined {
  if (deleted && state !== 5) return REASONS[5];
  if (state === 1) return undefined;
  return REASONS[state] ?? `is not active (state ${state})`;
}
