#!/usr/bin/env node
'use strict';
// Every qvm-* command is a link to this file; the name it was called by picks the tool.
// The tools run from one bundle (dist/apps/qvm/main.js) so that starting one stays fast.
const path = require('node:path');

const root = path.resolve(__dirname, '../../..');
const bundle = path.join(root, 'dist/apps/qvm/main.js');
let cli;
try {
  cli = require(bundle);
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(bundle)) {
    process.stderr.write(`ERROR: the qvm tools are not built yet: run 'npm start' (or 'npm run build') in ${root}\n`);
    process.exit(1);
  }
  throw err;
}
cli.run(path.basename(process.argv[1]), process.argv.slice(2)).catch((err) => {
  // run() reports every failure itself; anything reaching here is a bug in the tool.
  process.stderr.write(`ERROR: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
