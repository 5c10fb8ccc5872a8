'use strict';
// Serverless Framework 3 loads plugins with require(). The plugin is written in TypeScript, so compile it in memory
// with esbuild (already a dependency: it also builds the function bundles) and load the CommonJS result.
const path = require('node:path');
const Module = require('node:module');
const esbuild = require('esbuild');

const entry = path.join(__dirname, 'plugin.ts');
const out = esbuild.buildSync({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  write: false,
  logLevel: 'silent',
});
const compiled = new Module(entry, module);
compiled.filename = entry;
compiled.paths = Module._nodeModulePaths(__dirname);
compiled._compile(out.outputFiles[0].text, entry);
module.exports = compiled.exports.CodeEngineProviderPlugin;
