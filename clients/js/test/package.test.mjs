// The npm package: `npm pack` ships exactly what users need (the ES module,
// the script/CommonJS build, the type declarations of both, the README and
// both licence texts), and the package's entry points resolve by its name.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const PACKAGE_DIR = here('..');
const ROOT = here('../../..');

const EXPECTED_FILES = [
  'LICENSE-APACHE',
  'LICENSE-MIT',
  'README.md',
  'dist/websocket-connector.js',
  'index.d.mts',
  'index.d.ts',
  'package.json',
  'src/websocket-connector.mjs',
];

/** What `npm pack` would put in the tarball, from its JSON report. */
async function packed() {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: PACKAGE_DIR,
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
  });
  const report = JSON.parse(stdout);
  assert.equal(report.length, 1, 'one package');
  return report[0];
}

describe('npm package', () => {
  it('is publishable and packs exactly the files users need', async () => {
    const pkg = JSON.parse(await readFile(here('../package.json'), 'utf8'));
    assert.equal(pkg.private, undefined, 'package.json must not be private');
    assert.equal(pkg.license, 'MIT OR Apache-2.0');

    const report = await packed();
    assert.equal(report.name, pkg.name);
    assert.equal(report.version, pkg.version);
    const files = report.files.map((f) => f.path).sort();
    assert.deepEqual(files, EXPECTED_FILES);
    for (const f of report.files) assert.ok(f.size > 0, `${f.path} is empty`);
  });

  it('points every entry point at a packed file', async () => {
    const pkg = JSON.parse(await readFile(here('../package.json'), 'utf8'));
    const targets = [pkg.main, pkg.module, pkg.types];
    const walk = (v) => (typeof v === 'string' ? targets.push(v) : Object.values(v).forEach(walk));
    walk(pkg.exports);
    const packedFiles = new Set((await packed()).files.map((f) => f.path));
    for (const t of targets) {
      assert.ok(packedFiles.has(t.replace(/^\.\//, '')), `${t} is not in the package`);
    }
  });

  it('ships the licence texts of the repository unchanged', async () => {
    for (const name of ['LICENSE-MIT', 'LICENSE-APACHE']) {
      const shipped = await readFile(here(`../${name}`), 'utf8');
      const original = await readFile(`${ROOT}/${name}`, 'utf8');
      assert.equal(shipped, original, `clients/js/${name} differs from ${name}: copy it again`);
    }
  });

  it('resolves by name: import gives the ES module, require the script build', async () => {
    // A package can import itself by name through its "exports".
    const esm = await import('crosswire-client');
    assert.equal(typeof esm.WebSocketConnector, 'function');
    assert.equal(esm.default, esm.WebSocketConnector);
    assert.equal(import.meta.resolve('crosswire-client'), new URL('../src/websocket-connector.mjs', import.meta.url).href);

    const require = createRequire(import.meta.url);
    assert.equal(require.resolve('crosswire-client'), here('../dist/websocket-connector.js'));
    assert.equal(require.resolve('crosswire-client/script'), here('../dist/websocket-connector.js'));
    const cjs = require('crosswire-client');
    assert.equal(typeof cjs.WebSocketConnector, 'function');
    assert.equal(cjs.default, cjs.WebSocketConnector);
  });
});
