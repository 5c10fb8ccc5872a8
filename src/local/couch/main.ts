/**
 * Standalone embedded CouchDB-compatible server:
 *   LOCKSTEP_COUCH_USERNAME=… LOCKSTEP_COUCH_PASSWORD=… npx tsx src/local/couch/main.ts [--port 5984] [--host 127.0.0.1] [--data-dir dir]
 * Requires those credentials on every request (without them it makes up a password and prints `user:password` on
 * the second line of stdout). Prints its URL; stops cleanly on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { randomCouchCredentials, startEmbeddedCouch } from './index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '5984' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string' },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`--port must be an integer 0-65535, got ${values.port}`);
  process.exit(2);
}
const given = process.env.LOCKSTEP_COUCH_USERNAME && process.env.LOCKSTEP_COUCH_PASSWORD;
const credentials = given
  ? { username: process.env.LOCKSTEP_COUCH_USERNAME as string, password: process.env.LOCKSTEP_COUCH_PASSWORD as string }
  : randomCouchCredentials();
const couch = await startEmbeddedCouch({
  host: values.host,
  port,
  credentials,
  ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
});
// The URL alone on stdout (scripts read it); the banner on stderr.
console.error(`embedded CouchDB-compatible server listening on ${couch.url} (storage: ${couch.storage})`);
console.log(couch.url);
if (!given) console.log(`${credentials.username}:${credentials.password}`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    couch.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('close failed', err);
        process.exit(1);
      },
    );
  });
}
