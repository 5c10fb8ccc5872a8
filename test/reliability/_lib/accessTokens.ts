/**
 * The credential cases of the access scenario. Valid-but-wrong tokens come from the real local IAM (expired,
 * outsider, auditor) or carry a valid IAM signature with wrong claims (audience, issuer, no identity, not yet valid:
 * signed with the IAM's own key); bad ones are crafted with jose / node:crypto (foreign key, alg none, HS256 keyed
 * with the public key, a tampered payload).
 */
import { createHmac } from 'node:crypto';
import { decodeJwt, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import type { IamSigningKey, LocalIam } from '../../../src/local/iam/index.js';

/** What a credential should get: rejected as unauthenticated, refused (no role), or a role. */
export type Credential = 'bad' | 'no-role' | 'auditor' | 'operator';

export interface CredentialCase {
  name: string;
  kind: Credential;
  /** The bearer token (undefined: none sent). */
  token?: string;
  /** A raw Authorization header instead of `Bearer <token>`. */
  rawAuthorization?: string;
}

const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Builds every credential case against `iam` (whose signing key is `signingKey`). */
export async function credentialCases(iam: LocalIam, signingKey: IamSigningKey): Promise<CredentialCase[]> {
  const operator = await iam.issueToken('operator');
  const auditor = await iam.issueToken('auditor');
  const outsider = await iam.issueToken('outsider');
  const expired = await iam.issueToken('operator', { expiresInSeconds: -600 });
  const base = decodeJwt(operator) as JWTPayload & Record<string, unknown>;
  const nowSec = Math.floor(Date.now() / 1000);
  const claims: JWTPayload & Record<string, unknown> = { ...base, iat: nowSec, exp: nowSec + 3600 };
  const { iss: _iss, aud: _aud, ...body } = claims;

  const signWith = (key: IamSigningKey['privateKey'], kid: string, payload: JWTPayload, iss = base.iss!) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuer(iss).sign(key);

  // A key IAM does not publish: once with IAM's kid (looks right, signature cannot verify), once with its own kid.
  const attacker = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const forgedSameKid = await signWith(attacker.privateKey, signingKey.kid, body);
  const forgedOwnKid = await signWith(attacker.privateKey, 'attacker-key', body);

  // alg none (no signature, and a junk one), and HS256 keyed with IAM's public key (algorithm confusion).
  const noneHeader = b64u({ alg: 'none', typ: 'JWT' });
  const algNone = `${noneHeader}.${b64u(claims)}.`;
  const algNoneJunk = `${noneHeader}.${b64u(claims)}.${b64u('x')}`;
  const hsHeader = b64u({ alg: 'HS256', kid: signingKey.kid, typ: 'JWT' });
  const publicPem = await exportSPKI(signingKey.publicKey as Parameters<typeof exportSPKI>[0]);
  const hsInput = `${hsHeader}.${b64u(claims)}`;
  const algConfusion = `${hsInput}.${createHmac('sha256', publicPem).update(hsInput).digest('base64url')}`;

  // The auditor's real token with the payload rewritten to the operator's identity (signature kept).
  const [h, , sig] = auditor.split('.');
  const auditorClaims = decodeJwt(auditor);
  const tampered = `${h}.${b64u({ ...auditorClaims, iam_id: base.iam_id, sub: base.sub, id: base.iam_id })}.${sig}`;

  // Valid IAM signature, wrong claims.
  const wrongAudience = await new SignJWT(body)
    .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'JWT' })
    .setIssuer(base.iss!)
    .setAudience('https://other-relying-party.example/api')
    .sign(signingKey.privateKey);
  const wrongIssuer = await signWith(
    signingKey.privateKey,
    signingKey.kid,
    body,
    'https://iam.attacker.example/identity',
  );
  const { iam_id: _i, sub: _s, id: _id, ...anonymous } = body;
  const noIdentity = await signWith(signingKey.privateKey, signingKey.kid, anonymous);
  const notYetValid = await signWith(signingKey.privateKey, signingKey.kid, { ...body, nbf: nowSec + 3600 });
  // Issue 13 finding 8: IAM-signed, but not what IAM issues as an access token (at most 1 h, with exp and iat).
  const { exp: _e, ...withoutExp } = body;
  const { iat: _t, ...withoutIat } = body;
  const noExp = await signWith(signingKey.privateKey, signingKey.kid, withoutExp);
  const noIat = await signWith(signingKey.privateKey, signingKey.kid, withoutIat);
  const farFuture = await signWith(signingKey.privateKey, signingKey.kid, { ...body, exp: nowSec + 300 * 365 * 86400 });
  const oldButUnexpired = await signWith(signingKey.privateKey, signingKey.kid, {
    ...body,
    iat: nowSec - 2 * 3600,
    exp: nowSec + 600,
  });
  const issuedInFuture = await signWith(signingKey.privateKey, signingKey.kid, {
    ...body,
    iat: nowSec + 1800,
    exp: nowSec + 3000,
  });
  // a non-string iam_id next to the operator's sub: must not fall back to sub
  const arrayIamId = await signWith(signingKey.privateKey, signingKey.kid, { ...body, iam_id: [base.iam_id] });
  const numberSub = await signWith(signingKey.privateKey, signingKey.kid, {
    ...anonymous,
    sub: 12345,
  } as unknown as JWTPayload);

  return [
    { name: 'no token', kind: 'bad' },
    { name: 'not a bearer header', kind: 'bad', rawAuthorization: `Basic ${b64u('operator:secret')}` },
    { name: 'garbage token', kind: 'bad', token: 'not-a-jwt' },
    { name: 'expired (real IAM token)', kind: 'bad', token: expired },
    { name: 'forged: foreign key, IAM kid', kind: 'bad', token: forgedSameKid },
    { name: 'forged: foreign key, own kid', kind: 'bad', token: forgedOwnKid },
    { name: 'forged: alg none', kind: 'bad', token: algNone },
    { name: 'forged: alg none + junk signature', kind: 'bad', token: algNoneJunk },
    { name: 'forged: HS256 keyed with the IAM public key', kind: 'bad', token: algConfusion },
    { name: 'tampered payload (auditor → operator)', kind: 'bad', token: tampered },
    { name: 'wrong audience (IAM-signed)', kind: 'bad', token: wrongAudience },
    { name: 'wrong issuer (IAM-signed)', kind: 'bad', token: wrongIssuer },
    { name: 'no identity claims (IAM-signed)', kind: 'bad', token: noIdentity },
    { name: 'not yet valid (IAM-signed)', kind: 'bad', token: notYetValid },
    { name: 'no exp (IAM-signed)', kind: 'bad', token: noExp },
    { name: 'no iat (IAM-signed)', kind: 'bad', token: noIat },
    { name: 'exp 300 years ahead (IAM-signed)', kind: 'bad', token: farFuture },
    { name: 'issued 2 h ago, unexpired (IAM-signed)', kind: 'bad', token: oldButUnexpired },
    { name: 'issued in the future (IAM-signed)', kind: 'bad', token: issuedInFuture },
    { name: 'non-string iam_id, operator sub (IAM-signed)', kind: 'bad', token: arrayIamId },
    { name: 'numeric sub, no iam_id (IAM-signed)', kind: 'bad', token: numberSub },
    { name: 'identity without a role (real IAM token)', kind: 'no-role', token: outsider },
    { name: 'auditor (real IAM token)', kind: 'auditor', token: auditor },
    { name: 'operator (real IAM token)', kind: 'operator', token: operator },
  ];
}

/** The Authorization header of a case (undefined when none is sent). */
export function authorizationOf(c: CredentialCase): string | undefined {
  return c.rawAuthorization ?? (c.token === undefined ? undefined : `Bearer ${c.token}`);
}
