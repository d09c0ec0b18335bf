// Builds dist/websocket-connector.js, the plain-script (and CommonJS) form of
// src/websocket-connector.mjs: a <script> tag exposes window.WebSocketConnector,
// require() returns { WebSocketConnector }.
//
//   node build.mjs          write dist/websocket-connector.js
//   node build.mjs --check  fail if dist/ is not up to date with src/
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const SRC = here('./src/websocket-connector.mjs');
const OUT = here('./dist/websocket-connector.js');

export function build() {
  const src = readFileSync(SRC, 'utf8');
  let body = src
    .replace(/^export class WebSocketConnector /m, 'class WebSocketConnector ')
    .replace(/^export default WebSocketConnector;\n/m, '');
  if (/^\s*(export|import)\b/m.test(body)) {
    throw new Error('build.mjs: unexpected import/export left in the source');
  }
  body = body
    .trimEnd()
    .split('\n')
    .map((line) => (line ? '  ' + line : line))
    .join('\n');
  return `// Generated from src/websocket-connector.mjs by build.mjs: do not edit.
(function (root) {
  'use strict';

${body}

  if (typeof module === 'object' && module && module.exports) {
    module.exports = { WebSocketConnector, default: WebSocketConnector };
  } else {
    root.WebSocketConnector = WebSocketConnector;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this);
`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = build();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OUT, 'utf8');
    } catch {}
    if (current !== out) {
      console.error('dist/websocket-connector.js is out of date: run `node build.mjs` in clients/js');
      process.exit(1);
    }
    console.log('dist/websocket-connector.js is up to date');
  } else {
    writeFileSync(OUT, out);
    console.log('wrote dist/websocket-connector.js');
  }
}
