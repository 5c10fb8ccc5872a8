/**
 * The rules every verifier of IBM Cloud IAM access tokens applies after the signature check (the API and the
 * HTTP-triggered functions alike): pure, over the decoded payload.
 */
import { AppError } from './errors.js';

/**
 * An IAM access token "expires after at most 1 hour" (IBM Cloud docs, iam-iamtoken_from_apikey): a token whose
 * `exp - iat` is longer, or that was issued longer ago, was not issued by IAM as an access token.
 */
export const MAX_TOKEN_LIFETIME_SECONDS = 3600;
export const CLOCK_TOLERANCE_SECONDS = 5;
/**
 * The jose claim checks every IAM access-token verifier uses (spread into `jwtVerify`'s options), followed by
 * {@link checkIamAccessToken} on the payload.
 */
export const IAM_ACCESS_TOKEN_CLAIMS = {
  clockTolerance: CLOCK_TOLERANCE_SECONDS,
  requiredClaims: ['exp', 'iat'],
  maxTokenAge: MAX_TOKEN_LIFETIME_SECONDS,
};
/** Identity claims are IAM ids (`IBMid-…`, `iam-ServiceId-…`, `iam-Profile-…`): bounded, printable, no spaces. */
const IDENTITY_SHAPE = /^[\x21-\x7e]{1,256}$/;

/** The claims of a decoded token this module reads. */
export interface IamTokenClaims {
  exp?: unknown;
  iat?: unknown;
  iam_id?: unknown;
  sub?: unknown;
}

/**
 * What jose's options cannot check on a verified IAM access token: a lifetime (`exp - iat`) of at most an hour, and
 * a string identity. Returns the identity.
 * @throws {AppError} UNAUTHENTICATED
 */
export function checkIamAccessToken(payload: IamTokenClaims): string {
  const lifetimeSec = (payload.exp as number) - (payload.iat as number);
  if (!(lifetimeSec <= MAX_TOKEN_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS)) {
    throw new AppError(
      'UNAUTHENTICATED',
      `The token is valid for longer than ${MAX_TOKEN_LIFETIME_SECONDS / 60} minutes (exp - iat); IAM access tokens never are`,
    );
  }
  return identityOf(payload);
}

/**
 * The caller's identity: `iam_id`, else `sub`. A present identity claim that is not a bounded printable string is
 * refused rather than skipped, so a token can never pick which claim names it.
 */
function identityOf(payload: IamTokenClaims): string {
  for (const claim of ['iam_id', 'sub'] as const) {
    if (payload[claim] !== undefined && (typeof payload[claim] !== 'string' || !IDENTITY_SHAPE.test(payload[claim]))) {
      throw new AppError('UNAUTHENTICATED', `The token's ${claim} claim is not an IAM id (a printable string)`);
    }
  }
  const iamId = (payload.iam_id ?? payload.sub) as string | undefined;
  if (iamId === undefined)
    throw new AppError('UNAUTHENTICATED', 'The token names no identity (no iam_id or sub claim)');
  return iamId;
}
