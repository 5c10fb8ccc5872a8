import { describe } from 'vitest';
import { storeConfigFromEnv } from '../../../src/store/index.js';
import { describeStoreContract } from './contract.js';

const url = process.env.CLOUDANT_URL;

if (url) {
  describeStoreContract('cloudant-url', async () => {
    const { url, authenticator, timeoutMs } = storeConfigFromEnv(process.env);
    return { url, authenticator, timeoutMs: timeoutMs ?? 30_000 };
  });
} else {
  console.warn(
    '[store contract] CLOUDANT_URL is not set: the contract suite against a real CouchDB/Cloudant is skipped',
  );
  describe.skipIf(true)('store contract against CLOUDANT_URL (skipped: CLOUDANT_URL is not set)', () => {
    describeStoreContract('cloudant-url', async () => ({ url: 'http://127.0.0.1:1' }));
  });
}
