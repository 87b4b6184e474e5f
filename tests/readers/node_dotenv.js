// Reads an env file with node `dotenv` (the version pinned in package.json), both its
// default parser and its `fast` parser, for tests/readers.rs.
// Usage: node node_dotenv.js FILE
// Prints {"node-dotenv": {"values": {...}, "error": null}, "node-dotenv-fast": {...}}.
'use strict';
const fs = require('fs');
const dotenv = require('dotenv');

const src = fs.readFileSync(process.argv[2]);
const out = {};
for (const [name, options] of [['node-dotenv', {}], ['node-dotenv-fast', { fast: true }]]) {
  try {
    out[name] = { values: dotenv.parse(src, options), error: null };
  } catch (e) {
    out[name] = { values: {}, error: String(e) };
  }
}
process.stdout.write(JSON.stringify(out));
