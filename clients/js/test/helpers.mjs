// Test helpers: the crosswire test node (examples/src/bin/js-test-server.rs),
// connectors that are closed after each test, and waiting for events.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WsPackage from 'ws';
import { WebSocketConnector } from '../src/websocket-connector.mjs';

export const REPO = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** Path of a binary of the crosswire-examples package. */
export function binary(name) {
  const fromEnv = process.env[`CROSSWIRE_${name.toUpperCase().replace(/-/g, '_')}_BIN`];
  if (fromEnv) return fromEnv;
  const target = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target');
  return path.join(target, 'debug', name);
}

/**
 * Starts the test node; resolves with {url, stop}. Its stdin is a pipe: the
 * node exits when this process does.
 */
export async function startServer() {
  const bin = binary('js-test-server');
  if (!existsSync(bin)) {
    throw new Error(
      `${bin} is missing: run clients/js/run-tests.sh, or ` +
        'cargo build -p crosswire-examples --bin js-test-server',
    );
  }
  const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const addr = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /LISTENING (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`js-test-server exited early (${code})`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    url: `ws://${addr}`,
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A port of 127.0.0.1 where nothing listens (bound, then released). */
export async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The WebSocket implementations to run the tests with. */
export const IMPLEMENTATIONS = [
  ...(typeof globalThis.WebSocket === 'function' ? [['native', globalThis.WebSocket]] : []),
  ['ws', WsPackage],
];

/** A connector that is closed when test `t` ends. */
export function connector(t, options, impl = IMPLEMENTATIONS[0][1]) {
  const c = new WebSocketConnector({ WebSocket: impl, ...options });
  t.after(() => c.manualClose());
  return c;
}

/**
 * Resolves with the argument of the next `event` of connector `c`; rejects
 * after `ms`.
 */
export function next(c, event, ms = 2000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.off(event, listener);
      reject(new Error(`no '${event}' event within ${ms} ms`));
    }, ms);
    const listener = (arg) => {
      clearTimeout(timer);
      c.off(event, listener);
      resolve(arg);
    };
    c.on(event, listener);
  });
}

/** Records every occurrence of `events` on `c` as [event, arg] pairs. */
export function record(c, events) {
  const seen = [];
  for (const e of events) c.on(e, (arg) => seen.push([e, arg]));
  return seen;
}

/** Collects uncaught exceptions while test `t` runs. */
export function uncaught(t) {
  const errors = [];
  const handler = (err) => errors.push(err);
  process.on('uncaughtException', handler);
  t.after(() => process.off('uncaughtException', handler));
  return errors;
}

/** Waits `ms` (only to show that something does NOT happen). */
export function quiet(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends `event` and resolves with the reply payload (fails the test otherwise). */
export async function call(c, event, data, options) {
  const res = await c.emitWithPromise(event, data, options);
  if (!res.success) throw new Error(`${event} failed: ${JSON.stringify(res)}`);
  return res.data;
}

/**
 * A scripted WebSocket with the event order of browsers: a refused attempt
 * fires `error` then `close` 1006 (Node's ws does the same; Node 20's
 * built-in WebSocket fires no `close` there), and a connection failing while
 * open fires `error` then `close`. `refuse` selects what new sockets do.
 */
export function fakeWebSocket({ refuse = false } = {}) {
  return class FakeWebSocket {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      FakeWebSocket.instances.push(this);
      setTimeout(() => {
        if (this.readyState !== 0) return;
        if (refuse) {
          this.fail();
        } else {
          this.readyState = 1;
          this.onopen?.({ type: 'open' });
        }
      }, 0);
    }
    send(data) {
      this.sent.push(data);
    }
    close(code, reason) {
      this.closedWith = [code, reason];
      if (this.readyState < 2) this.readyState = 2;
      setTimeout(() => this._closed(code ?? 1005, reason ?? ''), 0);
    }
    /** The connection fails: error, then close 1006. */
    fail() {
      this.onerror?.({ type: 'error' });
      this._closed(1006, '');
    }
    _closed(code, reason) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ type: 'close', code, reason, wasClean: false });
    }
  };
}
