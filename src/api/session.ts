/**
 * The timeline page's session value: `v1.<base64url(iv ‖ ciphertext ‖ tag)>`, AES-256-GCM over
 * `{"i": iam id, "t": issued (s), "e": expires (s)}` with a fixed AAD. The IAM access token is verified at login and
 * then dropped: the cookie never carries it, so a leaked cookie is worth one lockstep page session (at most
 * {@link SESSION_MAX_SECONDS}), not the caller's IAM identity across the account. The role is looked up again on
 * every request, so a role taken away takes effect at once.
 *
 * The key is derived (HKDF-SHA256) from `LOCKSTEP_UI_SESSION_SECRET` when set — every container of the `api`
 * function then accepts every other container's sessions — or drawn at random per process (sessions end with the
 * container: log in again).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { AppError } from '../core/index.js';

/** Longest page session: IAM access tokens live at most 1 h; the page asks for a new login sooner. */
export const SESSION_MAX_SECONDS = 30 * 60;
const AAD = Buffer.from('lockstep-ui-session/v1');
const IV_BYTES = 12;
const TAG_BYTES = 16;
const MAX_VALUE_CHARS = 1024;

export interface Session {
  iamId: string;
  issuedAtSec: number;
  expiresAtSec: number;
}

export interface SessionSealer {
  seal(s: Session): string;
  /** @throws {AppError} UNAUTHENTICATED when the value was not sealed here, was altered, or has expired */
  open(value: string | undefined, nowSec: number): Session;
}

/** Minimum length of `LOCKSTEP_UI_SESSION_SECRET`. */
export const MIN_SESSION_SECRET_CHARS = 32;

/** Builds the sealer; without `secret` the key is random (per process). */
export function createSessionSealer(secret?: string): SessionSealer {
  if (secret !== undefined && secret.length < MIN_SESSION_SECRET_CHARS) {
    throw new AppError(
      'CONFIG_INVALID',
      `The UI session secret must be at least ${MIN_SESSION_SECRET_CHARS} characters`,
    );
  }
  const key =
    secret === undefined
      ? randomBytes(32)
      : Buffer.from(hkdfSync('sha256', secret, 'lockstep', 'ui-session/aes-256-gcm/v1', 32));
  const ended = (why: string) => new AppError('UNAUTHENTICATED', why);
  return {
    seal(s) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(AAD);
      const body = Buffer.from(JSON.stringify({ i: s.iamId, t: s.issuedAtSec, e: s.expiresAtSec }));
      const ct = Buffer.concat([cipher.update(body), cipher.final()]);
      return `v1.${Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64url')}`;
    },
    open(value, nowSec) {
      if (value === undefined || value === '') throw ended('Log in with an IAM access token');
      if (value.length > MAX_VALUE_CHARS || !/^v1\.[A-Za-z0-9_-]+$/.test(value)) {
        throw ended('The session is not valid; log in again');
      }
      const raw = Buffer.from(value.slice(3), 'base64url');
      if (raw.length <= IV_BYTES + TAG_BYTES) throw ended('The session is not valid; log in again');
      let parsed: { i?: unknown; t?: unknown; e?: unknown };
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
        decipher.setAAD(AAD);
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
        const plain = Buffer.concat([
          decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)),
          decipher.final(),
        ]);
        parsed = JSON.parse(plain.toString('utf8'));
      } catch {
        // another container's key (no shared secret), a rotated secret, or an altered value
        throw ended('The session is not valid here (it was altered, or the server restarted); log in again');
      }
      if (typeof parsed.i !== 'string' || typeof parsed.t !== 'number' || typeof parsed.e !== 'number') {
        throw ended('The session is not valid; log in again');
      }
      if (parsed.e <= nowSec || parsed.e - parsed.t > SESSION_MAX_SECONDS)
        throw ended('Your session expired; log in again');
      return { iamId: parsed.i, issuedAtSec: parsed.t, expiresAtSec: parsed.e };
    },
  };
}
