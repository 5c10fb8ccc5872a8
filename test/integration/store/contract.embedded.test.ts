import { afterAll, beforeAll } from 'vitest';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../../src/local/couch/index.js';
import { describeStoreContract } from './contract.js';

let couch: EmbeddedCouch | undefined;
beforeAll(async () => {
  couch = await startEmbeddedCouch();
});
afterAll(async () => {
  await couch?.close();
});

describeStoreContract('embedded', async () => ({ ...couch!.storeOptions, timeoutMs: 10_000 }));
