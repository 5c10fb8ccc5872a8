/**
 * The store's Cloudant client keeps no cookies (it authenticates with IAM bearer tokens or not at all), so the SDK's
 * tough-cookie jar — and its public-suffix table, which the function bundles load lazily — is never used.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudantStores } from '../../../src/store/index.js';

describe('store client cookies', () => {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, {
      'content-type': 'application/json',
      'set-cookie': 'AuthSession=abc123; Path=/; HttpOnly',
    });
    res.end(JSON.stringify({ couchdb: 'Welcome', version: '3.3.3' }));
  });
  let url = '';
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('does not send back a cookie the server set', async () => {
    // Arrange
    const stores = await createCloudantStores({ url, dbPrefix: 'cookie-test-' });
    // Act: two requests; the first answer sets a cookie
    await stores.client.getServerInformation();
    await stores.client.getServerInformation();
    // Assert
    expect(seen).toHaveLength(2);
    expect(seen[1]!.cookie).toBeUndefined();
  });
});
