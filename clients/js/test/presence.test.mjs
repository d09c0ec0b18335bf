// Room presence (`presence: true`, docs/protocol.md §10.4) against a real
// crosswire node whose namespace `lobby` has presence: the members of a
// room when the connection's id joins it, every join and leave after, the
// list kept by the connector, and nothing of it when presence is off.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IMPLEMENTATIONS, connector, next, startServer } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

let counter = 0;
function unique(prefix) {
  counter += 1;
  return `${prefix}${counter}`;
}

/** Resolves with the first `presence` report for which `done` holds. */
function report(c, done, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no such presence report in ${ms} ms`)), ms);
    const listener = (r) => {
      if (done(r)) {
        clearTimeout(timer);
        c.off('presence', listener);
        resolve(r);
      }
    };
    c.on('presence', listener);
  });
}

for (const [name, impl] of IMPLEMENTATIONS) {
  describe(`presence (${name})`, () => {
    it('reports the members of a room, then every join and leave', async (t) => {
      const room = unique('room');
      const [ann, bob] = [unique('ann'), unique('bob')];
      const a = connector(
        t,
        { url: server.url, presence: true, customParams: { id: ann, name: 'Ann', join: `lobby/${room}` } },
        impl,
      );
      const first = await report(a, (r) => r.room === room && r.change === null);
      assert.deepEqual(first.members, [{ id: ann, node: 'js-test-server', info: { name: 'Ann' } }]);
      const b = connector(
        t,
        { url: server.url, customParams: { id: bob, name: 'Bob', join: `lobby/${room}` } },
        impl,
      );
      const joined = await report(a, (r) => r.change?.op === 'join' && r.change.member.id === bob);
      assert.equal(joined.ns, 'lobby');
      assert.deepEqual(joined.change.member, { id: bob, node: 'js-test-server', info: { name: 'Bob' } });
      assert.deepEqual(
        a.presenceMembers('lobby', room).map((m) => m.id),
        [ann, bob].sort(),
      );
      b.manualClose();
      const left = await report(a, (r) => r.change?.op === 'leave' && r.change.member.id === bob);
      assert.deepEqual(left.members.map((m) => m.id), [ann]);
      assert.deepEqual(a.presenceMembers('lobby', room).map((m) => m.id), [ann]);
    });

    it('sends nothing new to a connector without presence', async (t) => {
      const room = unique('room');
      const raw = [];
      const c = connector(t, { url: server.url, customParams: { id: unique('p'), join: `lobby/${room}` } }, impl);
      c.on('message', (m) => raw.push(String(m.data ?? m)));
      let reports = 0;
      c.on('presence', () => (reports += 1));
      await next(c, 'open');
      const other = connector(t, { url: server.url, customParams: { id: unique('q'), join: `lobby/${room}` } }, impl);
      await next(other, 'open');
      // A round trip after the join: any presence frame would have come.
      await c.emitWithPromise('echo', 1);
      assert.equal(reports, 0);
      assert.ok(raw.every((m) => !m.includes('_cw_presence')), JSON.stringify(raw));
      assert.deepEqual(c.presenceMembers('lobby', room), []);
    });
  });
}
