// Missed-message recovery (`recovery: true`, docs/protocol.md §10.3) against
// a real crosswire node whose namespaces `chat` and `short` (2 messages)
// keep a history: positions on room messages, the resume positions sent on
// a reconnection, what was missed delivered before anything new (once, in
// order, marked recovered), the per-room recovery report, and nothing of it
// when recovery is off.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IMPLEMENTATIONS, call, connector, fakeWebSocket, next, startServer } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

let counter = 0;
/** A name no other test uses (socket ids and rooms). */
function unique(prefix) {
  counter += 1;
  return `${prefix}${counter}`;
}

/** What a connector saw, in order; waits for a condition on it. */
class Log {
  constructor() {
    this.items = [];
    this.waiters = [];
    /** Every frame received, parsed (the `message` event). */
    this.raw = [];
  }

  add(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) {
      if (w.done(this.items)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves once `done(items)` holds; rejects after `ms`. */
  until(done, ms = 5000) {
    if (done(this.items)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { done, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`not seen within ${ms} ms; saw ${JSON.stringify(this.items)}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** The items as short strings: `5@5`, `recovered 3@3`, `complete/3`, ... */
  lines() {
    return this.items.map((i) => {
      if (i.leaked) return `leaked ${JSON.stringify(i.leaked)}`;
      if (i.report) {
        const r = i.report;
        return r.reason ? `${r.status}/${r.reason}/${r.recovered}` : `${r.status}/${r.recovered}`;
      }
      if (i.meta === undefined) return `${i.m} (${i.args} argument)`;
      return `${i.meta.recovered ? 'recovered ' : ''}${i.m}@${i.meta.offset}`;
    });
  }

  count(pred) {
    return this.items.filter(pred).length;
  }
}

/** Records event `m` (with its argument count), recovery reports, and any `_cw_*` event. */
function watch(c) {
  const log = new Log();
  c.on('message', (data) => {
    try {
      log.raw.push(JSON.parse(String(data)));
    } catch {
      // a heartbeat
    }
  });
  c.on('m', (...args) => log.add({ m: args[0], meta: args[1], args: args.length }));
  c.on('recovery', (report) => log.add({ report }));
  c.on('_cw_joined', (p) => log.add({ leaked: p }));
  c.on('_cw_left', (p) => log.add({ leaked: p }));
  return log;
}

const reports = (i) => i.report !== undefined;
const messages = (i) => i.m !== undefined;

/**
 * A connector with recovery on, bound to `id`, whose socket id joins
 * `rooms` ([ns, room] pairs) on connection; resolves once every room
 * reported its recovery.
 */
async function member(t, impl, id, rooms, options = {}) {
  const join = rooms.map(([ns, room]) => `${ns}/${room}`).join(',');
  const c = connector(
    t,
    {
      url: server.url,
      recovery: true,
      customParams: { id, join },
      // Reconnections are started by the test (connect()), not by a timer.
      fastReconnectInterval: 60000,
      ...options,
    },
    impl,
  );
  const log = watch(c);
  await log.until((items) => items.filter(reports).length === rooms.length);
  return { c, log };
}

/** A plain connector that sends to rooms. */
async function sender(t, impl) {
  const c = connector(t, { url: server.url, customParams: { id: unique('sender') } }, impl);
  await next(c, 'open');
  return {
    c,
    async send(ns, room, ...values) {
      for (const payload of values) {
        assert.deepEqual(await call(c, 'toRoom', { ns, room, event: 'm', payload }), { ok: true });
      }
    },
  };
}

/**
 * Drops `c`'s connection without a close frame and waits until the node
 * has let go of socket id `id` (so that a new connection can bind it).
 */
async function drop(c, id, s) {
  c.emit('terminate', {});
  const closed = await next(c, 'close');
  assert.equal(closed.code, 1006);
  assert.notEqual(await call(s.c, 'closeInfo', { id }), null);
}

for (const [implName, impl] of IMPLEMENTATIONS) {
  describe(`recovery with the ${implName} WebSocket`, () => {
    it('room messages carry their position; the join reports it and _cw_joined reaches no listener', async (t) => {
      const room = unique('r');
      const id = unique('a');
      const { c, log } = await member(t, impl, id, [['chat', room]]);
      const { epoch, ...joined } = log.items[0].report;
      assert.deepEqual(joined, { ns: 'chat', room, status: 'none', reason: null, recovered: 0, offset: 0 });
      assert.match(epoch, /^\S+$/);
      const who = await call(c, 'whoami', {});
      assert.equal(who.params.cwRecovery, '1');
      assert.equal(who.params.cwResume, undefined, 'a first connection resumes nothing');

      const s = await sender(t, impl);
      await s.send('chat', room, 'one', { two: 2 }, 3);
      await log.until((items) => items.filter(messages).length === 3);
      assert.deepEqual(log.items.slice(1), [
        { m: 'one', args: 2, meta: { recovered: false, ns: 'chat', room, epoch, offset: 1 } },
        { m: { two: 2 }, args: 2, meta: { recovered: false, ns: 'chat', room, epoch, offset: 2 } },
        { m: 3, args: 2, meta: { recovered: false, ns: 'chat', room, epoch, offset: 3 } },
      ]);
      // On the wire: _cw_joined (which no listener got), then the frames
      // with cwPos (the listeners got the payload alone as first argument).
      const pushed = log.raw.filter((f) => f.event !== undefined);
      assert.deepEqual(
        pushed.map((f) => [f.event, f.payload?.offset ?? f.payload, f.cwPos?.offset]),
        [
          ['_cw_joined', 0, undefined],
          ['m', 'one', 1],
          ['m', { two: 2 }, 2],
          ['m', 3, 3],
        ],
      );
      assert.equal(log.count((i) => i.leaked), 0);
      assert.deepEqual(c.recoveryPositions(), [{ ns: 'chat', room, epoch, offset: 3 }]);
    });

    it('after a dropped connection the missed messages come first, once, in order, marked recovered', async (t) => {
      const room = unique('r');
      const id = unique('a');
      const { c, log } = await member(t, impl, id, [['chat', room]]);
      const s = await sender(t, impl);
      await s.send('chat', room, 1, 2);
      await log.until((items) => items.filter(messages).length === 2);
      const { epoch } = log.items[0].report;

      await drop(c, id, s);
      await s.send('chat', room, 3, 4, 5);
      c.connect();
      await log.until((items) => items.filter(reports).length === 2);
      await s.send('chat', room, 6);
      await log.until((items) => items.filter(messages).length === 6);

      assert.deepEqual(log.lines(), [
        'none/0',
        '1@1',
        '2@2',
        'recovered 3@3',
        'recovered 4@4',
        'recovered 5@5',
        'complete/3',
        '6@6',
      ]);
      const report = log.items.filter(reports)[1].report;
      assert.deepEqual(report, { ns: 'chat', room, status: 'complete', reason: null, recovered: 3, epoch, offset: 5 });
      // The new connection gave the last position it had.
      const who = await call(c, 'whoami', {});
      assert.equal(who.params.cwRecovery, '1');
      assert.deepEqual(JSON.parse(who.params.cwResume), [['chat', room, epoch, 2]]);
    });

    it('a position older than the history is reported incomplete (too_old) and nothing is replayed', async (t) => {
      const room = unique('r');
      const id = unique('a');
      const { c, log } = await member(t, impl, id, [['short', room]]);
      const s = await sender(t, impl);
      await s.send('short', room, 1);
      await log.until((items) => items.filter(messages).length === 1);

      await drop(c, id, s);
      await s.send('short', room, 2, 3, 4, 5, 6); // the history keeps 5 and 6
      c.connect();
      await log.until((items) => items.filter(reports).length === 2);
      await s.send('short', room, 7);
      await log.until((items) => items.filter(messages).length === 2);
      assert.deepEqual(log.lines(), ['none/0', '1@1', 'incomplete/too_old/0', '7@7']);
      assert.equal(log.items[2].report.offset, 6, 'the position is where the room is now');
    });

    it('a node without the history of the position (epoch changed) reports incomplete', async (t) => {
      const room = unique('r');
      const id = unique('a');
      const { c, log } = await member(t, impl, id, [['chat', room]]);
      const s = await sender(t, impl);
      await s.send('chat', room, 1);
      await log.until((items) => items.filter(messages).length === 1);
      const before = log.items[0].report.epoch;
      await drop(c, id, s);

      // The node is replaced by a new one (a restart): same rooms, no history.
      const other = await startServer();
      t.after(() => other.stop());
      c.options.url = other.url;
      c.connect();
      await log.until((items) => items.filter(reports).length === 2);
      const report = log.items.at(-1).report;
      assert.deepEqual(
        { status: report.status, reason: report.reason, recovered: report.recovered, offset: report.offset },
        { status: 'incomplete', reason: 'epoch_changed', recovered: 0, offset: 0 },
      );
      assert.notEqual(report.epoch, before);
      assert.deepEqual(c.recoveryPositions(), [{ ns: 'chat', room, epoch: report.epoch, offset: 0 }]);
    });

    it('_cw_left forgets the room; the most recently updated rooms are resumed first', async (t) => {
      const [r1, r2, r3] = [unique('r'), unique('r'), unique('r')];
      const id = unique('a');
      const { c, log } = await member(t, impl, id, [
        ['chat', r1],
        ['chat', r2],
        ['chat', r3],
      ]);
      const s = await sender(t, impl);
      await s.send('chat', r2, 'x');
      await s.send('chat', r1, 'y');
      await log.until((items) => items.filter(messages).length === 2);
      assert.deepEqual(
        c.recoveryPositions().map((p) => [p.room, p.offset]),
        [
          [r1, 1],
          [r2, 1],
          [r3, 0],
        ],
      );
      // The reply follows the _cw_left frame on the same connection.
      assert.deepEqual(await call(c, 'leaveRoom', { ns: 'chat', room: r2 }), { ok: true });
      assert.deepEqual(
        c.recoveryPositions().map((p) => p.room),
        [r1, r3],
      );
      await drop(c, id, s);
      c.connect();
      await log.until((items) => items.filter(reports).length === 6);
      // Joined again (the connection's join parameter names all three):
      // r2 had no position any more. Each room reports when its own
      // catch-up ends: rooms may report in any order.
      const order = [r1, r2, r3];
      assert.deepEqual(
        log.items
          .filter(reports)
          .slice(3)
          .map(({ report }) => [report.room, report.status, report.recovered])
          .sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0])),
        [
          [r1, 'complete', 0],
          [r2, 'none', 0],
          [r3, 'complete', 0],
        ],
      );
      const who = await call(c, 'whoami', {});
      assert.deepEqual(
        JSON.parse(who.params.cwResume).map(([ns, room, , offset]) => [ns, room, offset]),
        [
          ['chat', r1, 1],
          ['chat', r3, 0],
        ],
      );
      assert.equal(log.count((i) => i.leaked), 0, 'no _cw_* event reached a listener');
    });

    it('recovery off: no parameters, no positions, nothing replayed (the original behaviour)', async (t) => {
      const room = unique('r');
      const id = unique('p');
      const c = connector(
        t,
        { url: server.url, customParams: { id, join: `chat/${room}` }, fastReconnectInterval: 60000 },
        impl,
      );
      const log = watch(c);
      await next(c, 'open');
      const who = await call(c, 'whoami', {});
      assert.deepEqual(Object.keys(who.params).sort(), ['id', 'join']);
      const s = await sender(t, impl);
      await s.send('chat', room, 1);
      await log.until((items) => items.filter(messages).length === 1);
      await drop(c, id, s);
      await s.send('chat', room, 2); // missed, and never delivered
      c.connect();
      await next(c, 'open');
      const again = await call(c, 'whoami', {});
      assert.deepEqual(Object.keys(again.params).sort(), ['id', 'join']);
      await s.send('chat', room, 3);
      await log.until((items) => items.filter(messages).length === 2);
      assert.deepEqual(log.lines(), ['1 (1 argument)', '3 (1 argument)']);
      // The frames are the original's: no cwPos, no _cw_* events.
      assert.deepEqual(
        log.raw.filter((f) => f.event !== undefined),
        [
          { event: 'm', payload: 1 },
          { event: 'm', payload: 3 },
        ],
      );
      assert.deepEqual(c.recoveryPositions(), []);
    });
  });
}

describe('recovery on a scripted socket', () => {
  const frame = (room, offset, extra = {}) =>
    JSON.stringify({ event: 'm', payload: offset, cwPos: { ns: 'chat', room, epoch: 'e1', offset }, ...extra });

  it('resumes at most 256 rooms, the most recently updated first, percent-encoded', async (t) => {
    const Fake = fakeWebSocket();
    const c = connector(t, {
      url: 'ws://127.0.0.1:9/ws#frag',
      recovery: true,
      customParams: { id: 'u 1' },
      fastReconnectInterval: 1,
    }, Fake);
    await next(c, 'open');
    const first = Fake.instances[0];
    assert.equal(first.url, 'ws://127.0.0.1:9/ws?id=u+1&cwRecovery=1');
    for (let i = 0; i < 300; i += 1) first.onmessage({ data: frame(`r ${i}`, i + 1) });
    first.onmessage({ data: frame('r 5', 1000) });
    c.reconnect();
    await next(c, 'open');
    const url = Fake.instances[1].url;
    const query = url.slice(url.indexOf('?') + 1).split('&');
    assert.deepEqual(query.slice(0, 2), ['id=u+1', 'cwRecovery=1']);
    assert.ok(query[2].startsWith('cwResume='));
    const encoded = query[2].slice('cwResume='.length);
    assert.doesNotMatch(encoded, /[^A-Za-z0-9\-_.!~*'()%]/, 'encodeURIComponent form');
    const resume = JSON.parse(decodeURIComponent(encoded));
    assert.equal(resume.length, 256);
    assert.deepEqual(resume[0], ['chat', 'r 5', 'e1', 1000]);
    assert.deepEqual(resume[1], ['chat', 'r 299', 'e1', 300]);
    assert.deepEqual(resume[255], ['chat', 'r 45', 'e1', 46]);
    assert.equal(resume.filter(([, room]) => room === 'r 5').length, 1);
  });

  it('with recovery on, pushed recovery/_cw_* events and invalid positions do not pass as positions', async (t) => {
    const Fake = fakeWebSocket();
    const c = connector(t, { url: 'ws://127.0.0.1:9/', recovery: true }, Fake);
    const log = watch(c);
    const pushedRecovery = [];
    c.on('recovery', (r) => pushedRecovery.push(r));
    await next(c, 'open');
    const ws = Fake.instances[0];
    const send = (f) => ws.onmessage({ data: typeof f === 'string' ? f : JSON.stringify(f) });
    send({ event: 'recovery', payload: { status: 'complete' } });
    send({ event: 'm', payload: 1, cwPos: { ns: '', room: 'r', epoch: 'e', offset: 1 } });
    send({ event: 'm', payload: 2, cwPos: { ns: 'chat', room: 'r', epoch: 'e', offset: -1 } });
    send({ event: 'm', payload: 3, cwPos: 'e:3' });
    send(frame('r', 4, { cwRecovered: true }));
    send({ event: '_cw_left', payload: { ns: 'chat', room: 'r' } });
    assert.deepEqual(log.lines(), ['1 (1 argument)', '2 (1 argument)', '3 (1 argument)', 'recovered 4@4']);
    assert.deepEqual(pushedRecovery, []);
    assert.deepEqual(c.recoveryPositions(), []);
  });

  it('with recovery off, frames are dispatched as before (positions ignored, _cw_* and recovery pushes delivered)', async (t) => {
    const Fake = fakeWebSocket();
    const c = connector(t, { url: 'ws://127.0.0.1:9/', fastReconnectInterval: 1 }, Fake);
    const got = [];
    for (const e of ['m', 'recovery', '_cw_joined']) c.on(e, (...args) => got.push([e, ...args]));
    await next(c, 'open');
    assert.equal(Fake.instances[0].url, 'ws://127.0.0.1:9/');
    const ws = Fake.instances[0];
    ws.onmessage({ data: frame('r', 1, { cwRecovered: true }) });
    ws.onmessage({ data: '{"event":"recovery","payload":"r"}' });
    ws.onmessage({ data: '{"event":"_cw_joined","payload":{"ns":"chat","room":"r","epoch":"e","offset":1}}' });
    assert.deepEqual(got, [
      ['m', 1],
      ['recovery', 'r'],
      ['_cw_joined', { ns: 'chat', room: 'r', epoch: 'e', offset: 1 }],
    ]);
    c.reconnect();
    await next(c, 'open');
    assert.equal(Fake.instances[1].url, 'ws://127.0.0.1:9/');
  });
});
