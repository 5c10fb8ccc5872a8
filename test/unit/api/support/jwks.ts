import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/**
 * A minimal JWKS issuer for unit tests of the API's auth (the integration tests use the real local IAM):
 * RS256 keys, a JWKS endpoint on 127.0.0.1, tokens with IAM's `iam_id` claim.
 */
export async function startTestIssuer() {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const other = await generateKeyPair('RS256', { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  let jwksRequests = 0;
  const server = createServer((_req, res) => {
    jwksRequests++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${url}/identity`;
  const sign = (
    iamId: string,
    opts: { expiresIn?: number; issuer?: string; audience?: string; foreignKey?: boolean; kid?: string } = {},
  ) => {
    const now = Math.floor(Date.now() / 1000);
    let jwt = new SignJWT({ iam_id: iamId, sub: iamId })
      .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? 'k1' })
      .setIssuer(opts.issuer ?? issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + (opts.expiresIn ?? 3600));
    if (opts.audience) jwt = jwt.setAudience(opts.audience);
    return jwt.sign(opts.foreignKey ? other.privateKey : privateKey);
  };
  return {
    jwksUrl: `${url}/identity/keys`,
    issuer,
    sign,
    jwksRequests: () => jwksRequests,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
