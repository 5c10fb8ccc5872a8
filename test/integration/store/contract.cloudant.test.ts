/**
 * The store contract against a real IBM Cloudant or CouchDB 3 instance, for operators before going live:
 *
 *   CLOUDANT_URL=https://<account>.cloudantnosqldb.appdomain.cloud CLOUDANT_APIKEY=<key> npm run test:store-contract
 *   CLOUDANT_URL=http://admin:<password>@127.0.0.1:5984 npm run test:store-contract          # a plain CouchDB
 *
 * Credentials are read as the functions read them (`storeConfigFromEnv`: CLOUDANT_APIKEY, CLOUDANT_TRUSTED_PROFILE,
 * CLOUDANT_USERNAME + CLOUDANT_PASSWORD, IAM_URL); for convenience `user:password@` in the URL becomes basic auth here
 * (the functions refuse credentials in the URL). Every run works in databases of its own
 * (`lockstep-test-cloudant-url-<random>-*`) and deletes them afterwards. See src/store/README.md.
 */
import { describe } from 'vitest';
import { storeConfigFromEnv } from '../../../src/store/index.js';
import { describeStoreContract } from './contract.js';

/** The environment with `user:password@` of CLOUDANT_URL moved to CLOUDANT_USERNAME / CLOUDANT_PASSWORD. */
function contractEnv(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const raw = env.CLOUDANT_URL;
  if (!raw) return env;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return env; // storeConfigFromEnv says what is wrong with it
  }
  if (!u.username && !u.password) return env;
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  return { ...env, CLOUDANT_URL: u.toString(), CLOUDANT_USERNAME: username, CLOUDANT_PASSWORD: password };
}

if (process.env.CLOUDANT_URL) {
  describeStoreContract('cloudant-url', async () => {
    const { url, authenticator, timeoutMs } = storeConfigFromEnv(contractEnv(process.env));
    return { url, authenticator, timeoutMs: timeoutMs ?? 30_000 };
  });
} else {
  console.warn(
    '[store contract] CLOUDANT_URL is not set: the contract suite against a real CouchDB/Cloudant is skipped ' +
      '(it runs against the embedded server, with and without credentials, in contract.embedded/credentials)',
  );
  describe.skipIf(true)('store contract against CLOUDANT_URL (skipped: CLOUDANT_URL is not set)', () => {
    describeStoreContract('cloudant-url', async () => ({ url: 'http://127.0.0.1:1' }));
  });
}
