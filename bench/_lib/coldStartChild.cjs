// A fresh process as Code Engine starts one: require the bundle, answer one invocation, report, exit.
// Usage: node coldStartChild.cjs <bundle.js> <params.json>
'use strict';
const t0 = performance.now();
const fs = require('node:fs');
const [bundle, paramsFile] = process.argv.slice(2);
const params = JSON.parse(fs.readFileSync(paramsFile, 'utf8'));
const tr = performance.now();
const mod = require(bundle);
const requireMs = performance.now() - tr;
const ti = performance.now();
Promise.resolve(mod.main(params)).then(
  (result) => {
    const invokeMs = performance.now() - ti;
    const status = result && typeof result === 'object' ? result.statusCode : undefined;
    process.stdout.write(
      `${JSON.stringify({ ok: true, requireMs, invokeMs, sinceProcessStartMs: performance.now(), scriptMs: performance.now() - t0, status, body: status >= 500 ? (typeof result.body === 'string' ? result.body : JSON.stringify(result.body)).slice(0, 300) : undefined })}\n`,
    );
    process.exit(0);
  },
  (err) => {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: String(err?.message ? err.message : err).slice(0, 300) })}\n`,
    );
    process.exit(1);
  },
);
