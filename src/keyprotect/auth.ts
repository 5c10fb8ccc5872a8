import {
  type AuthenticatorInterface,
  BearerTokenAuthenticator,
  ContainerAuthenticator,
  IamAuthenticator,
} from 'ibm-cloud-sdk-core';
import { AppError, Sensitive } from '../core/index.js';

/**
 * An IBM Cloud authenticator (an sdk-core `Authenticator`), opaque outside this module. Build one with
 * {@link authenticatorFromConfig}.
 */
export type KeyProtectAuthenticator = AuthenticatorInterface;

/** A secret given as a plain string or wrapped in `Sensitive`. */
export type SecretInput = string | Sensitive<string>;

/** How lockstep authenticates to IBM Cloud IAM. */
export type KeyProtectAuthConfig =
  /** An IAM API key (service ID); `iamUrl` is the IAM base URL (default IBM Cloud IAM). */
  | { kind: 'iam'; apiKey: SecretInput; iamUrl?: string }
  /**
   * A Code Engine / Kubernetes compute-resource token exchanged for a trusted profile (sdk-core
   * `ContainerAuthenticator`). Give `profileName` or `profileId`.
   */
  | { kind: 'container'; profileName?: string; profileId?: string; iamUrl?: string; crTokenFilename?: string }
  /** A ready bearer token (tests, short scripts); it is not refreshed. */
  | { kind: 'bearer'; token: SecretInput };

/**
 * Builds the authenticator for a config.
 * @throws {AppError} CONFIG_INVALID naming the field to fix (secrets are never echoed)
 * @example
 * const auth = authenticatorFromConfig({ kind: 'iam', apiKey: new Sensitive(process.env.KP_API_KEY!) });
 */
export function authenticatorFromConfig(cfg: KeyProtectAuthConfig): KeyProtectAuthenticator {
  if (typeof cfg !== 'object' || cfg === null) throw invalid('auth', 'the auth config must be an object');
  switch (cfg.kind) {
    case 'iam': {
      const apikey = secret('auth.apiKey', cfg.apiKey);
      const url = optionalUrl('auth.iamUrl', cfg.iamUrl);
      return new IamAuthenticator(url ? { apikey, url } : { apikey });
    }
    case 'container': {
      const iamProfileName = optionalText('auth.profileName', cfg.profileName);
      const iamProfileId = optionalText('auth.profileId', cfg.profileId);
      if (!iamProfileName && !iamProfileId) {
        throw invalid('auth.profileName', 'a container authenticator needs profileName or profileId (trusted profile)');
      }
      const url = optionalUrl('auth.iamUrl', cfg.iamUrl);
      const crTokenFilename = optionalText('auth.crTokenFilename', cfg.crTokenFilename);
      return new ContainerAuthenticator({
        ...(iamProfileName ? { iamProfileName } : {}),
        ...(iamProfileId ? { iamProfileId } : {}),
        ...(url ? { url } : {}),
        ...(crTokenFilename ? { crTokenFilename } : {}),
      });
    }
    case 'bearer':
      return new BearerTokenAuthenticator({ bearerToken: secret('auth.token', cfg.token) });
    default:
      throw invalid(
        'auth.kind',
        `unknown auth kind ${JSON.stringify((cfg as { kind?: unknown }).kind)}; use iam, container or bearer`,
      );
  }
}

/**
 * Wraps an authenticator so that a failed IAM token request surfaces as an AppError (`UNAUTHENTICATED` when IAM
 * refused the credential, `UPSTREAM_UNAVAILABLE` when IAM could not be reached) instead of an SDK error that would
 * look like a Key Protect failure. The wrapped request never left, which the caller can rely on.
 */
export function guardAuthenticator(inner: KeyProtectAuthenticator): KeyProtectAuthenticator {
  return {
    authenticationType: () => inner.authenticationType(),
    async authenticate(requestOptions) {
      try {
        await inner.authenticate(requestOptions);
      } catch (cause) {
        const status = (cause as { status?: unknown } | null)?.status;
        const unavailable = typeof status !== 'number' || status >= 500 || status === 429;
        throw new AppError(
          unavailable ? 'UPSTREAM_UNAVAILABLE' : 'UNAUTHENTICATED',
          unavailable
            ? 'The IAM token service could not be reached; retry later'
            : 'IAM refused the credential; check the API key or trusted profile',
          {
            retryable: unavailable,
            details: { upstream: 'iam', iamStatus: typeof status === 'number' ? status : null },
            cause,
          },
        );
      }
    },
  };
}

function secret(field: string, value: unknown): string {
  const raw = value instanceof Sensitive ? value.reveal() : value;
  if (typeof raw !== 'string' || raw.trim() === '') throw invalid(field, `${field} is required`);
  if (/\s/.test(raw)) throw invalid(field, `${field} must not contain whitespace`);
  return raw;
}

function optionalText(field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw invalid(field, `${field} must be a non-empty string`);
  return value;
}

function optionalUrl(field: string, value: unknown): string | undefined {
  const text = optionalText(field, value);
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(field, `${field} must be an absolute http(s) URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalid(field, `${field} must be an absolute http(s) URL`);
  }
  return text.replace(/\/+$/, '');
}

function invalid(field: string, message: string): AppError {
  return new AppError('CONFIG_INVALID', `Invalid Key Protect auth config: ${message}`, { details: { field } });
}
