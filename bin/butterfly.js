#!/usr/bin/env node
// Thin launcher: the CLI lives in compiled TypeScript (npm install runs the build).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv)).catch((err) => {
  process.stderr.write(`butterfly: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
