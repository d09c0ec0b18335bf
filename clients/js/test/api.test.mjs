// The public API of WebSocketConnector against a real crosswire node: the
// original's options, defaults, events, emit/emitWithPromise, pending,
// heartbeat and reconnection (docs/protocol.md §2-§5, docs/concepts.md
// "Reconnection", docs/migration.md "Client").
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  IMPLEMENTATIONS,
  call,
  closedPort,
  connector,
  next,
  quiet,
  record,
  startServer,
} from './helpers.mjs';
import { WebSocketConnector } from '../src/websocket-connector.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** A connector that is open. */
async function open(t, options = {}, impl) {
  const c = connector(t, { url: server.url, ...options }, impl);
  await next(c, 'open');
  return c;
}

describe('defaults', () => {
  it('has the original options and defaults', async (t) => {
    const c = await open(t);
    const { url, ...rest } = c.options;
    assert.equal(url, server.url);
    assert.deepEqual(rest, {
      pingInterval: 10000,
      pongTimeout: 2000,
      fastReconnectThreshold: 3,
      fastReconnectInterval: 3000,
      reconnectMaxInterval: 120000,
      pingMsg: '',
      callbackTimeout: 5000,
      repeatLimit: null,
      pendingTimeout: 100,
      customParams: {},
    });
    assert.equal(c.getPingInterval(), 10000);
    assert.equal(c.reconnecting(), false);
  });

  it('is exported as named and default export, and with the script build', async () => {
    const mod = await import('../src/websocket-connector.mjs');
    assert.equal(mod.default, mod.WebSocketConnector);
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    const cjs = require('../dist/websocket-connector.js');
    assert.equal(typeof cjs.WebSocketConnector, 'function');
    assert.equal(cjs.default, cjs.WebSocketConnector);
  });

  it('the script build defines window.WebSocketConnector', async () => {
    const { readFileSync } = await import('node:fs');
    const vm = await import('node:vm');
    const code = readFileSync(new URL('../dist/websocket-connector.js', import.meta.url), 'utf8');
    const window = { WebSocket: function () {} };
    window.globalThis = window;
    vm.runInNewContext(code, window);
    assert.equal(typeof window.WebSocketConnector, 'function');
    assert.equal(typeof window.WebSocketConnector.prototype.emitWithPromise, 'function');
  });

  it('refuses to start without a WebSocket implementation', () => {
    const saved = globalThis.WebSocket;
    globalThis.WebSocket = undefined;
    try {
      assert.throws(() => new WebSocketConnector({ url: 'ws://127.0.0.1:1' }), TypeError);
    } finally {
      globalThis.WebSocket = saved;
    }
  });
});

for (const [implName, impl] of IMPLEMENTATIONS) {
  describe(`with the ${implName} WebSocket`, () => {
    it('emit with a callback gets the reply payload', async (t) => {
      const c = await open(t, {}, impl);
      const data = { text: 'héllo ✓ <b>', n: 1.5, list: [1, null, { deep: true }] };
      const reply = await new Promise((resolve) => c.emit('echo', data, (err, payload) => resolve([err, payload])));
      assert.deepEqual(reply, [null, data]);
    });

    it('emitWithPromise resolves {success, data}; a reply without value has no data', async (t) => {
      const c = await open(t, {}, impl);
      assert.deepEqual(await c.emitWithPromise('echo', 'x'), { success: true, data: 'x' });
      assert.deepEqual(await c.emitWithPromise('echo', 0), { success: true, data: 0 });
      const empty = await c.emitWithPromise('echoEmpty', {});
      assert.equal(empty.success, true);
      assert.equal(empty.data, undefined);
    });

    it('sends {event, payload, callbackId} with the original callback id format', async (t) => {
      const c = await open(t, {}, impl);
      const frames = record(c, ['message']);
      await call(c, 'echo', 1);
      await call(c, 'echo', 2);
      const ids = frames.map(([, raw]) => JSON.parse(String(raw)).callbackId);
      assert.equal(ids.length, 2);
      for (const id of ids) assert.match(id, /^[0-9a-z]+-[0-9a-z]{0,4}-[0-9a-z]+$/);
      assert.deepEqual(ids.map((id) => id.split('-')[2]), ['1', '2']);
    });

    it('acts on the first of several replies only', async (t) => {
      const c = await open(t, {}, impl);
      const got = [];
      await new Promise((resolve) =>
        c.emit('replyTwice', {}, (err, payload) => {
          got.push(payload);
          resolve();
        }),
      );
      await call(c, 'echo', 'sync'); // the second reply came before this one
      assert.deepEqual(got, ['first']);
    });

    it('emit without a callback sends the event', async (t) => {
      const c = await open(t, {}, impl);
      const pushed = next(c, 'hello');
      c.emit('push', { event: 'hello', payload: { a: 1 } });
      assert.deepEqual(await pushed, { a: 1 });
    });

    it('validates arguments like the original', async (t) => {
      const c = await open(t, {}, impl);
      assert.throws(() => c.emit('', 1), { name: 'TypeError', message: 'event must be a non-empty string' });
      assert.throws(() => c.emit(5, 1), TypeError);
      assert.throws(() => c.emit('echo', null), { message: 'emit: data cannot be null or undefined' });
      assert.throws(() => c.emit('echo', 1, () => {}, { callbackTimeout: -5 }), {
        message: 'Invalid timeout parameters: "callbackTimeout" must be positive integers.',
      });
      assert.throws(() => c.emit('echo', 1, () => {}, { pendingTimeout: 1.5 }), {
        message: '"pendingTimeout" must be a positive integer if provided.',
      });
      assert.deepEqual(await c.emitWithPromise('', 1), {
        success: false,
        error: 'No event provided in emitWithPromise',
      });
      assert.deepEqual(await c.emitWithPromise('echo', undefined), {
        success: false,
        error: 'Data cannot be null or undefined',
      });
      assert.throws(() => c.on('', () => {}), { message: 'event must be a non-empty string' });
      assert.throws(() => c.on('x', 'nope'), { message: 'listener must be a function' });
      assert.throws(() => c.setPingInterval(0), { message: 'pingInterval must be a positive number' });
      assert.throws(() => c.setPingInterval('5'), TypeError);
    });

    it('answers WS_NOT_OPEN at once when not connected', async (t) => {
      const c = connector(t, { url: server.url }, impl);
      let result;
      c.emit('echo', 1, (err, payload) => {
        result = [err, payload];
      });
      assert.deepEqual(result, [{ error: 'WebSocket is not open', errorCode: 'WS_NOT_OPEN' }, null]);
      assert.deepEqual(await c.emitWithPromise('echo', 1), {
        success: false,
        error: 'WebSocket is not open',
        errorCode: 'WS_NOT_OPEN',
      });
      await next(c, 'open');
    });

    it('times out callbacks and promises with the original messages', async (t) => {
      const c = await open(t, { callbackTimeout: 30 }, impl);
      const [err, payload] = await new Promise((resolve) =>
        c.emit('noReply', {}, (e, p) => resolve([e, p])),
      );
      assert.equal(payload, null);
      assert.equal(err.errorCode, 'CALLBACK_TIMEOUT');
      assert.match(err.error, /^Is callback timeout: [0-9a-z-]+$/);
      const res = await c.emitWithPromise('noReply', {}, { callbackTimeout: 20 });
      assert.equal(res.success, false);
      assert.equal(res.errorCode, 'CALLBACK_TIMEOUT');
      assert.match(res.error, /^Is promise callback timeout: [0-9a-z-]+$/);
    });

    it('calls onPending once while a reply is late, and not for fast replies', async (t) => {
      const c = await open(t, {}, impl);
      let pending = 0;
      const slow = await c.emitWithPromise(
        'delayedEcho',
        { ms: 150, payload: 'late' },
        { pendingTimeout: 10, onPending: () => (pending += 1) },
      );
      assert.deepEqual(slow, { success: true, data: 'late' });
      assert.equal(pending, 1);
      let never = 0;
      await c.emitWithPromise(
        'delayedEcho',
        { ms: 40, payload: 1 },
        { pendingTimeout: 100, callbackTimeout: 100, onPending: () => (never += 1) },
      );
      await c.emitWithPromise('echo', 1, { pendingTimeout: 2000, onPending: () => (never += 1) });
      assert.equal(never, 0);
    });

    it('dispatches pushed events to on/once listeners; off by function, tag or all', async (t) => {
      const c = await open(t, {}, impl);
      const seen = [];
      const a = (p) => seen.push(['a', p]);
      c.on('news', a);
      c.on('news', (p) => seen.push(['tagged', p]), 'tag1');
      c.on('news', (p) => seen.push(['tag-number', p]), 1);
      c.once('news', (p) => seen.push(['once', p]));
      const push = (n) => call(c, 'push', { event: 'news', payload: n });
      await push(1);
      await push(2);
      c.off('news', a);
      c.off('news', '1'); // tags compare strictly: removes nothing
      await push(3);
      c.off('news', 'tag1');
      c.off('news', 1);
      await push(4);
      c.on('news', a);
      c.on('news', a);
      c.off('news');
      await push(5);
      assert.deepEqual(seen, [
        ['a', 1],
        ['tagged', 1],
        ['tag-number', 1],
        ['once', 1],
        ['a', 2],
        ['tagged', 2],
        ['tag-number', 2],
        ['tagged', 3],
        ['tag-number', 3],
      ]);
    });

    it('a listener that throws does not stop the others', async (t) => {
      const c = await open(t, {}, impl);
      const errors = [];
      const saved = console.error;
      console.error = (...args) => errors.push(args);
      t.after(() => (console.error = saved));
      const seen = [];
      c.on('boom', () => {
        throw new Error('listener failure');
      });
      c.on('boom', (p) => seen.push(p));
      await call(c, 'push', { event: 'boom', payload: 7 });
      assert.deepEqual(seen, [7]);
      assert.equal(errors.length, 1);
    });

    it('appends customParams to the URL query', async (t) => {
      const c = await open(
        t,
        {
          url: `${server.url}/chat/room?pre=1`,
          customParams: { id: 'u1', name: 'Sam Smith', q: 'a&b=c/d?é+*~', n: 42, arr: [1, 2], nul: null },
        },
        impl,
      );
      const who = await call(c, 'whoami', {});
      assert.deepEqual(who, {
        params: { pre: '1', id: 'u1', name: 'Sam Smith', q: 'a&b=c/d?é+*~', n: '42', arr: '1,2', nul: 'null' },
        path: 'chat/room',
      });
    });

    it('heartbeat: ping, then pong with the round trip', async (t) => {
      const c = await open(t, { pingInterval: 15 }, impl);
      const events = record(c, ['ping', 'pong']);
      const rtt = await next(c, 'pong');
      assert.equal(typeof rtt, 'number');
      assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
      await next(c, 'pong');
      assert.deepEqual(
        events.slice(0, 4).map(([e]) => e),
        ['ping', 'pong', 'ping', 'pong'],
      );
    });

    it('setPingInterval changes the period, at once with immediate', async (t) => {
      const c = await open(t, { pingInterval: 60000 }, impl);
      c.setPingInterval(10, true);
      assert.equal(c.getPingInterval(), 10);
      await next(c, 'pong', 1000);
    });

    it('heartbeat without a reply: pong-timeout, then close 4002', async (t) => {
      // The node's heartbeat string is '': 'hb' is not answered.
      const c = await open(t, { pingInterval: 10, pongTimeout: 20, pingMsg: 'hb' }, impl);
      const events = record(c, ['ping', 'pong', 'pong-timeout']);
      const closed = await next(c, 'close');
      assert.equal(closed.code, 4002);
      assert.equal(closed.reason, 'pong timeout');
      assert.deepEqual(events.map(([e]) => e), ['ping', 'pong-timeout']);
    });

    it('close from the server: close event, no automatic reconnection', async (t) => {
      const c = await open(t, {}, impl);
      const events = record(c, ['reconnect', 'error']);
      c.emit('kick', { code: 4010, reason: 'Forced logout' });
      const closed = await next(c, 'close');
      assert.equal(closed.code, 4010);
      assert.equal(closed.reason, 'Forced logout');
      await quiet(30);
      assert.deepEqual(events, []);
      assert.equal(c.ws, null);
    });

    it('reconnect() from a close listener opens again; reconnecting() during open', async (t) => {
      const c = await open(t, { fastReconnectInterval: 5 }, impl);
      c.on('close', () => c.reconnect());
      const scheduled = next(c, 'reconnect');
      c.emit('kick', { code: 4010, reason: 'again' });
      assert.deepEqual(await scheduled, { repeat: 1, timeout: 5 });
      let during;
      c.once('open', () => (during = c.reconnecting()));
      await next(c, 'open');
      assert.equal(during, true);
      assert.equal(c.reconnecting(), false);
      assert.equal((await c.emitWithPromise('echo', 'back')).data, 'back');
    });

    it('manualClose: the server sees 4001, no close event, no reconnection', async (t) => {
      const c = await open(t, { customParams: { id: `manual-${implName}` } }, impl);
      const events = record(c, ['close', 'reconnect', 'error']);
      c.manualClose();
      const watcher = await open(t, {}, impl);
      const info = await call(watcher, 'closeInfo', { id: `manual-${implName}` });
      assert.deepEqual(info, { code: 4001, reason: 'client manual close' });
      c.reconnect();
      assert.deepEqual(events, []);
      assert.equal(c.ws, null);
    });

    it('backoff schedule of the original (threshold 2, interval 20, max 200, limit 7)', async (t) => {
      const port = await closedPort();
      const c = connector(
        t,
        {
          url: `ws://127.0.0.1:${port}`,
          fastReconnectThreshold: 2,
          fastReconnectInterval: 20,
          reconnectMaxInterval: 200,
          repeatLimit: 7,
        },
        impl,
      );
      const delays = [];
      c.on('reconnect', ({ repeat, timeout }) => delays.push([repeat, timeout]));
      assert.equal(await next(c, 'repeat-limit', 5000), 7);
      assert.deepEqual(delays.map(([r]) => r), [1, 2, 3, 4, 5, 6, 7]);
      const d = delays.map(([, ms]) => ms);
      assert.deepEqual(d.slice(0, 2), [20, 20]);
      assert.ok(d[2] >= 40 && d[2] < 60, `attempt 3: ${d[2]}`);
      assert.ok(d[3] >= 80 && d[3] < 100, `attempt 4: ${d[3]}`);
      assert.ok(d[4] >= 160 && d[4] < 180, `attempt 5: ${d[4]}`);
      assert.deepEqual(d.slice(5), [200, 200]);
      assert.equal(c.reconnecting(), true);
    });

    it('reconnect(true) resets the attempt count', async (t) => {
      const port = await closedPort();
      const c = connector(t, { url: `ws://127.0.0.1:${port}`, fastReconnectInterval: 5, repeatLimit: 2 }, impl);
      await next(c, 'repeat-limit');
      const again = next(c, 'reconnect');
      c.reconnect(true);
      assert.equal((await again).repeat, 1);
    });
  });
}
