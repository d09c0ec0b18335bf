// One test per client defect of the original (docs/compatibility.md,
// "Client defects", items 26-32). Each comment says what the original WebSocketConnector 1.0.7 does,
// which makes the test fail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WsPackage from 'ws';
import {
  IMPLEMENTATIONS,
  call,
  closedPort,
  connector,
  fakeWebSocket,
  next,
  quiet,
  record,
  startServer,
  uncaught,
} from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function open(t, options = {}, impl) {
  const c = connector(t, { url: server.url, ...options }, impl);
  await next(c, 'open');
  return c;
}

/** Silences console.error for test `t`; returns what was logged. */
function muteErrors(t) {
  const logged = [];
  const saved = console.error;
  console.error = (...args) => logged.push(args);
  t.after(() => (console.error = saved));
  return logged;
}

describe('#26 manualClose()/reconnect() while CONNECTING (Node, ws package)', () => {
  // Original: the socket's onerror is detached before `ws` emits its abort
  // error on the next tick: an 'error' event without listener, the process
  // exits with "WebSocket was closed before the connection was established".
  it('manualClose() right after the constructor does not crash', async (t) => {
    const errors = uncaught(t);
    const c = connector(t, { url: server.url }, WsPackage);
    const raw = c.ws;
    assert.equal(raw.readyState, WsPackage.CONNECTING);
    c.manualClose();
    await new Promise((resolve) => raw.once('close', resolve));
    assert.deepEqual(errors, []);
  });

  it('reconnect() right after the constructor does not crash', async (t) => {
    const errors = uncaught(t);
    const c = connector(t, { url: server.url, fastReconnectInterval: 5 }, WsPackage);
    const raw = c.ws;
    c.reconnect();
    await new Promise((resolve) => raw.once('close', resolve));
    await next(c, 'open');
    assert.deepEqual(errors, []);
  });
});

describe('#31 close reporting, with the event order of browsers', () => {
  // Original: at the limit, reconnect() keeps the failed socket and its
  // handlers, so its close 1006 is reported after repeat-limit, while the
  // failed attempts before it were not.
  it('no close event for attempts that never opened, limit included', async (t) => {
    const Fake = fakeWebSocket({ refuse: true });
    const c = connector(t, { url: 'ws://fake', fastReconnectInterval: 5, repeatLimit: 3 }, Fake);
    const events = record(c, ['error', 'close', 'reconnect', 'repeat-limit']);
    await next(c, 'repeat-limit');
    await quiet(20);
    assert.deepEqual(
      events.map(([e]) => e),
      ['error', 'reconnect', 'error', 'reconnect', 'error', 'reconnect', 'error', 'repeat-limit'],
    );
    assert.equal(Fake.instances.length, 4);
  });

  // Original: the error of a failing open connection calls reconnect(),
  // which detaches the handlers: the application never sees that close.
  it('a connection failing while open reports error, close, then reconnects', async (t) => {
    const Fake = fakeWebSocket();
    const c = connector(t, { url: 'ws://fake', fastReconnectInterval: 5 }, Fake);
    await next(c, 'open');
    const events = record(c, ['error', 'close', 'reconnect', 'open']);
    c.ws.fail();
    await next(c, 'open');
    assert.deepEqual(events.map(([e]) => e), ['error', 'close', 'reconnect', 'open']);
    assert.equal(events[1][1].code, 1006);
  });
});

for (const [implName, impl] of IMPLEMENTATIONS) {
  describe(`with the ${implName} WebSocket`, () => {
    // Original: listeners live in a plain object, so "constructor" finds a
    // function and `.forEach` throws; a non-string event throws a TypeError
    // out of the message handler (uncaught: process exit with `ws`).
    it('#27 pushes named like prototype keys or not strings are ignored', async (t) => {
      const errors = uncaught(t);
      const c = await open(t, {}, impl);
      const got = [];
      c.on('after', (p) => got.push(p));
      await call(c, 'pushRaw', {
        frames: [
          '{"event":"constructor","payload":1}',
          '{"event":"__proto__","payload":1}',
          '{"event":"toString"}',
          '{"event":"hasOwnProperty"}',
          '{"event":5,"payload":1}',
          '{"event":{"a":1}}',
          '{"event":["x"]}',
          '[1,2]',
          '"just a string"',
          '{"callbackId":"unknown-id","payload":1}',
          'not json',
          '{"event":"after","payload":"ok"}',
        ],
      });
      assert.deepEqual(got, ['ok']);
      assert.deepEqual(errors, []);
      // still fully working
      assert.equal(await call(c, 'echo', 2), 2);
    });

    // Original: pushed events share the table of the lifecycle events, so the
    // server fires the client's close/open/reconnect listeners (whose
    // documented use is calling manualClose() or reconnect()).
    it('#28 the server cannot fire lifecycle events', async (t) => {
      const c = await open(t, {}, impl);
      const lifecycle = ['open', 'close', 'error', 'ping', 'pong', 'pong-timeout', 'reconnect', 'repeat-limit'];
      const fired = record(c, lifecycle);
      const messages = record(c, ['message']);
      const got = [];
      c.on('after', (p) => got.push(p));
      await call(c, 'pushRaw', {
        frames: [...lifecycle, 'message'].map((e) => JSON.stringify({ event: e, payload: { code: 4001 } })),
      });
      await call(c, 'push', { event: 'after', payload: 1 });
      assert.deepEqual(fired, []);
      assert.deepEqual(got, [1]);
      // `message` still sees every raw frame, the spoofed ones included.
      assert.ok(messages.length >= lifecycle.length + 3);
    });

    // Original: the retry timer creates the socket while lockReconnect is
    // still true, so the reconnect() of the synchronous failure is refused:
    // with an invalid URL exactly two attempts are made, and no repeat-limit.
    it('#29 retries go on after a synchronous connection failure', async (t) => {
      const logged = muteErrors(t);
      const c = connector(t, { url: 'not a websocket url', fastReconnectInterval: 5, repeatLimit: 4 }, impl);
      const repeats = [];
      c.on('reconnect', ({ repeat }) => repeats.push(repeat));
      assert.equal(await next(c, 'repeat-limit'), 4);
      // The first attempt ran in the constructor, before any listener.
      assert.deepEqual(repeats, [2, 3, 4]);
      // one failure in the constructor, then one per scheduled attempt
      assert.equal(logged.length, 5);
    });

    // Original: _onClose leaves the heartbeat timers running: one spurious
    // `ping` + `pong-timeout` pair follows every close.
    it('#30 heartbeat timers stop when the connection closes', async (t) => {
      const c = await open(t, { pingInterval: 20, pongTimeout: 10 }, impl);
      const events = record(c, ['ping', 'pong-timeout']);
      c.emit('kick', { code: 4010, reason: 'bye' });
      await next(c, 'close');
      events.length = 0;
      assert.equal(c.pingTimer, null);
      assert.equal(c.pongTimer, null);
      await quiet(60);
      assert.deepEqual(events, []);
    });

    // Original: failed attempts that reconnect emit no `close`, but the
    // attempt that hits repeatLimit does (close 1006 after repeat-limit).
    it('#31 no close event for attempts that never opened, limit included', async (t) => {
      const port = await closedPort();
      const c = connector(t, { url: `ws://127.0.0.1:${port}`, fastReconnectInterval: 5, repeatLimit: 2 }, impl);
      const closes = record(c, ['close']);
      const limits = record(c, ['repeat-limit']);
      await next(c, 'repeat-limit');
      await quiet(50);
      assert.deepEqual(closes, []);
      assert.equal(limits.length, 1);
    });

    // Original: an `error` on an open connection calls reconnect(), which
    // detaches the handlers first: the application never sees that `close`.
    it('#31 a connection that opened reports its close exactly once', async (t) => {
      const c = await open(t, { fastReconnectInterval: 5 }, impl);
      const closes = record(c, ['close']);
      c.emit('terminate', {});
      const closed = await next(c, 'close');
      assert.equal(closed.code, 1006);
      await quiet(30);
      assert.equal(closes.length, 1);
    });

    // Original: reconnect() closes an open socket with 4001 "client manual
    // close", exactly what manualClose() sends.
    it('#31 reconnect() closes with 4000, distinct from manualClose() (4001)', async (t) => {
      const id = `reconnect-code-${implName}`;
      const c = await open(t, { fastReconnectInterval: 5, customParams: { id } }, impl);
      c.reconnect();
      await next(c, 'open');
      assert.deepEqual(await call(c, 'closeInfo', { id }), { code: 4000, reason: 'client reconnect' });
      c.manualClose();
      const watcher = await open(t, {}, impl);
      assert.deepEqual(await call(watcher, 'closeInfo', { id }), {
        code: 4001,
        reason: 'client manual close',
      });
    });

    // Original: pending callbacks wait for their timeout after a disconnect.
    it('#32 waiting callbacks fail at once when the connection goes', async (t) => {
      const c = await open(t, { callbackTimeout: 60000 }, impl);
      const started = Date.now();
      const viaCallback = new Promise((resolve) => c.emit('noReply', {}, (err, p) => resolve([err, p])));
      const viaPromise = c.emitWithPromise('noReply', {});
      c.emit('kick', { code: 4010, reason: 'bye' });
      const [err, payload] = await viaCallback;
      assert.equal(payload, null);
      assert.equal(err.errorCode, 'WS_CLOSED');
      const res = await viaPromise;
      assert.equal(res.success, false);
      assert.equal(res.errorCode, 'WS_CLOSED');
      assert.ok(Date.now() - started < 2000);
    });

    it('#32 manualClose() fails waiting callbacks too', async (t) => {
      const c = await open(t, { callbackTimeout: 60000 }, impl);
      const pending = c.emitWithPromise('noReply', {});
      c.manualClose();
      const res = await pending;
      assert.equal(res.errorCode, 'WS_CLOSED');
    });

    // Original: any frame equal to pingMsg ('' by default) counts as the
    // heartbeat reply, even unasked: a `pong` with a meaningless time.
    it('#32 an unasked heartbeat frame is not a pong', async (t) => {
      const c = await open(t, {}, impl);
      const pongs = record(c, ['pong']);
      await call(c, 'pushRaw', { frames: ['', ''] });
      assert.deepEqual(pongs, []);
    });

    // Original: {...defaults, ...options} lets `undefined` replace a default
    // (pingInterval undefined: a 1 ms heartbeat loop).
    it('#32 an option given as undefined keeps its default', async (t) => {
      const c = await open(t, { pingInterval: undefined, callbackTimeout: undefined, pingMsg: undefined }, impl);
      assert.equal(c.getPingInterval(), 10000);
      assert.equal(c.options.callbackTimeout, 5000);
      assert.equal(c.options.pingMsg, '');
    });

    // Original: customParams go after a #fragment (never sent), and plain
    // objects are sent as "[object Object]".
    it('#32 customParams go before a #fragment; objects are sent as JSON', async (t) => {
      const c = await open(
        t,
        { url: `${server.url}/room?pre=1#section`, customParams: { id: 'u1', obj: { a: [1, 'b'] } } },
        impl,
      );
      const who = await call(c, 'whoami', {});
      assert.deepEqual(who.params, { pre: '1', id: 'u1', obj: '{"a":[1,"b"]}' });
      assert.equal(who.path, 'room');
    });

    // Original: manualClose() is irreversible; there is no way to connect
    // again with the same instance.
    it('#32 connect() opens again after manualClose()', async (t) => {
      const c = await open(t, {}, impl);
      c.manualClose();
      c.connect();
      await next(c, 'open');
      assert.equal(await call(c, 'echo', 'again'), 'again');
    });

    // Original: invalid timeouts make emitWithPromise reject although it is
    // documented to always resolve.
    it('#32 emitWithPromise resolves, never rejects, on invalid options', async (t) => {
      const c = await open(t, {}, impl);
      const res = await c.emitWithPromise('echo', 1, { callbackTimeout: -1 });
      assert.deepEqual(res, {
        success: false,
        error: 'Invalid timeout parameters: "callbackTimeout" must be positive integers.',
        errorCode: 'INVALID_OPTIONS',
      });
    });
  });
}
