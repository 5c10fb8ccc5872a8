#!/usr/bin/env node
// Launcher for `lockstep` (package.json "bin"): runs src/cli/main.ts through tsx, so a fresh clone needs no build.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
