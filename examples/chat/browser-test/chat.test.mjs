// The chat demo in a real browser: headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core) on two chat nodes that share
// a Redis server of their own, on a node whose Redis is not up yet, and on
// two nodes of one process (in-memory bus, room history) where a page loses
// its connection and recovers the messages it missed.
// Besides the chat itself it checks what assistive technology and input
// methods rely on: Enter while an input method composes does not send,
// every control has an accessible name (Chromium's accessibility tree), the
// connection status is a live region that follows the connection, and text
// meets WCAG AA contrast.
//
// Needs: the chat binary (cargo build -p crosswire-examples --bin chat),
// redis-server, chromium. clients/js/run-tests.sh provides all three.
// Screenshots go to target/screenshots/.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CHAT_BIN,
  SCREENSHOTS,
  WAIT,
  assertText,
  freePort,
  launchBrowser,
  lowContrast,
  start,
  startRedis,
  stop,
  stopAll,
} from './helpers.mjs';

let browser;

/**
 * Starts a chat process with two nodes on the in-memory bus (with room
 * history); resolves with [child, url of node 1, url of node 2].
 */
async function startMemoryPair(name) {
  const [child, m] = await start(
    CHAT_BIN,
    ['--port', '0', '--nodes', '2', '--name', name],
    /listening on (http:\/\/\S+?)\n[\s\S]*listening on (http:\/\/\S+?)\n/,
  );
  return [child, m[1], m[2]];
}

/**
 * A TCP proxy to the node at `target` (a URL; `proxy.target` may be changed,
 * e.g. to a restarted node). `offline()` resets every connection through it
 * at once (the page's socket ends without a close frame, as when a network
 * goes away) and refuses new ones until `online()`.
 */
async function tcpProxy(target) {
  const through = new Set();
  let up = true;
  const reset = (s) => (typeof s.resetAndDestroy === 'function' ? s.resetAndDestroy() : s.destroy());
  const server = net.createServer((client) => {
    if (!up) {
      reset(client);
      return;
    }
    const upstream = net.connect(Number(proxy.target.port), proxy.target.hostname);
    const pair = [client, upstream];
    for (const s of pair) through.add(s);
    const end = () => {
      for (const s of pair) {
        through.delete(s);
        s.destroy();
      }
    };
    for (const s of pair) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = {
    target: new URL(target),
    url: `http://127.0.0.1:${server.address().port}/`,
    offline() {
      up = false;
      for (const s of [...through]) reset(s);
      through.clear();
    },
    online() {
      up = true;
    },
    close() {
      proxy.offline();
      return new Promise((resolve) => server.close(resolve));
    },
  };
  return proxy;
}

function startNode(name, port, redisUrl) {
  return start(CHAT_BIN, ['--port', String(port), '--name', name, '--redis', redisUrl], /listening on (http:\/\/\S+)/);
}

/** Resolves once `url`'s node lists `count` live nodes. */
async function waitForCluster(url, count) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    try {
      const status = await (await fetch(new URL('api/status', url))).json();
      if (status.nodes.length === count) return status;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not see ${count} nodes`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
});

/** Opens the page of node `url`, with fast heartbeat, retries and refreshes. */
async function openPage(url, problems) {
  const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // Chromium logs every refused connection attempt while a node is down,
    // and every /health answer other than 200 (503 while the bus is down).
    if (
      msg.type() === 'error' &&
      !/WebSocket connection to .* failed/.test(msg.text()) &&
      !msg.location().url?.endsWith('/health')
    ) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  await page.goto(`${url}?ping=200&retry=200&retryMax=400&refresh=300&health=200`);
  await page.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  return page;
}

async function join(page, name, room) {
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

/** Waits until the last chat message of `page` is `text` from `name`; returns it. */
async function lastMessage(page, name, text) {
  const last = page.locator('#messages li.message').last();
  await assertText(last.locator('.text'), text);
  await assertText(last.locator('.name'), `${name}:`);
  return last;
}

/** Chromium's accessibility tree of `page`, without the ignored nodes. */
async function accessibilityTree(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    return nodes.filter((n) => !n.ignored);
  } finally {
    await cdp.detach();
  }
}

const CONTROL_ROLES = new Set([
  'button',
  'checkbox',
  'combobox',
  'link',
  'listbox',
  'radio',
  'searchbox',
  'slider',
  'spinbutton',
  'switch',
  'textbox',
]);

/** The controls of `page` as `role "name"` strings, in document order. */
async function controls(page) {
  return (await accessibilityTree(page))
    .filter((n) => CONTROL_ROLES.has(n.role?.value))
    .map((n) => `${n.role.value} "${(n.name?.value ?? '').trim()}"`);
}

/** Records every text the status element shows, from now on. */
async function recordStatus(page) {
  await page.evaluate(() => {
    const el = document.getElementById('status');
    window.statusLog = [];
    // Each text it was given, even one replaced in the same task.
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) window.statusLog.push(node.textContent);
      }
    }).observe(el, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
}

test('two nodes on Redis: join, online count, messages, escaping, limits, reconnection', async () => {
  const redisPort = await freePort();
  await startRedis(redisPort);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const [, [, url1]] = await startNode('b1', 0, redisUrl);
  let [node2, [, url2]] = await startNode('b2', 0, redisUrl);
  await waitForCluster(url1, 2);
  await waitForCluster(url2, 2);

  const problems = [];
  const a = await openPage(url1, problems);
  const b = await openPage(url2, problems);
  await assertText(a.locator('#node'), 'b1');
  await assertText(b.locator('#node'), 'b2');

  // Over-long name: the server answers the callback with an error; shown.
  await join(a, 'x'.repeat(33), 'lobby');
  await assertText(a.locator('#join-error'), /name is too long: 33 characters, at most 32/);
  assert.equal(await a.locator('#room-panel').isVisible(), false);

  await join(a, 'alice', 'lobby');
  await assertText(a.locator('#me'), 'alice');
  assert.equal(await a.locator('#join-error').isVisible(), false);
  await join(b, 'bob', 'lobby');
  await assertText(b.locator('#me'), 'bob');

  // Every control has an accessible name, as Chromium computes it: the
  // message box by its label, the buttons by their text.
  const named = await controls(a);
  for (const control of [
    'textbox "Name"',
    'textbox "Room"',
    'button "Join"',
    'textbox "Message"',
    'button "Send"',
    'button "Leave"',
  ]) {
    assert.ok(named.includes(control), `${control} not in ${JSON.stringify(named)}`);
  }
  assert.deepEqual(
    named.filter((c) => c.endsWith(' ""')),
    [],
    'controls without an accessible name',
  );

  // The connection status is a polite live region (announced when its text
  // changes), showing the connection state.
  const tree = await accessibilityTree(a);
  const status = tree.filter((n) => n.role?.value === 'status');
  assert.equal(status.length, 1, 'one status region');
  const live = status[0].properties?.find((p) => p.name === 'live')?.value?.value;
  assert.equal(live, 'polite');
  assert.equal(await a.getByRole('status').getAttribute('id'), 'status');
  assert.equal(await a.getByRole('status').textContent(), 'connected');

  // Online: counted on both nodes with a cross-server call.
  await assertText(b.locator('#online'), '2');
  await assertText(b.locator('#online-names'), 'alice, bob');
  await assertText(a.locator('#online'), '2');
  await assertText(a.locator('#nodes'), '2');

  // A message from node 1 reaches the page on node 2.
  await say(a, 'hello from node 1');
  const got = await lastMessage(b, 'alice', 'hello from node 1');
  await assertText(got.locator('.node'), 'via b1');
  await lastMessage(a, 'alice', 'hello from node 1');
  await say(b, 'hi alice, this is node 2');
  await lastMessage(a, 'bob', 'hi alice, this is node 2');

  // Markup is shown as text, never run.
  const evil = '<img src=x onerror="window.__xss=1"><b>bold</b>';
  await say(a, evil);
  await lastMessage(b, 'alice', evil);
  await lastMessage(a, 'alice', evil);
  for (const page of [a, b]) {
    assert.equal(await page.locator('#messages img, #messages b').count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  }

  // An input method (Chinese, Japanese, Korean) commits the composed text
  // with Enter: that Enter must not send, whether the browser marks it with
  // isComposing or only with keyCode 229. Sending is synchronous in the
  // keydown handler, so a spy on emit sees at once whether it sent.
  await a.evaluate(() => {
    const connector = window.chat.connector;
    const emit = connector.emit.bind(connector);
    window.emitted = [];
    connector.emit = (event, ...rest) => {
      window.emitted.push(event);
      return emit(event, ...rest);
    };
  });
  await a.fill('#text', 'にほんご');
  const composing = await a.evaluate(() => {
    const text = document.getElementById('text');
    return [
      { key: 'Enter', code: 'Enter', isComposing: true },
      { key: 'Enter', code: 'Enter', keyCode: 229 },
    ].map((init) => {
      const event = new KeyboardEvent('keydown', { ...init, bubbles: true, cancelable: true });
      text.dispatchEvent(event);
      return { isComposing: event.isComposing, keyCode: event.keyCode, sent: window.emitted.length };
    });
  });
  assert.deepEqual(composing, [
    { isComposing: true, keyCode: 0, sent: 0 },
    { isComposing: false, keyCode: 229, sent: 0 },
  ]);
  assert.equal(await a.locator('#text').inputValue(), 'にほんご');
  // Once composed, Enter sends.
  await a.press('#text', 'Enter');
  assert.deepEqual(await a.evaluate(() => window.emitted), ['say']);
  await lastMessage(b, 'alice', 'にほんご');
  assert.equal(await a.locator('#text').inputValue(), '');

  // Own latency, from the heartbeat.
  await assertText(a.locator('#latency'), /^\d+ ms$/);
  await assertText(b.locator('#latency'), /^\d+ ms$/);

  // Over-long message: error through the callback, shown, nothing sent.
  const tooLong = 'y'.repeat(2001);
  await say(a, tooLong);
  await assertText(a.locator('#send-error'), /message is too long: 2001 characters, at most 2000/);
  assert.equal(await a.locator('#text').inputValue(), tooLong);
  await a.screenshot({ path: path.join(SCREENSHOTS, 'chat-node1.png') });
  await b.screenshot({ path: path.join(SCREENSHOTS, 'chat-node2.png') });
  await say(a, 'y'.repeat(2000));
  await lastMessage(b, 'alice', 'y'.repeat(2000));
  assert.equal(await a.locator('#send-error').isVisible(), false);
  assert.equal(await b.locator('#messages li.message .text', { hasText: tooLong }).count(), 0);


  // Text contrast at WCAG AA on both pages.
  assert.deepEqual(await lowContrast(a), []);
  assert.deepEqual(await lowContrast(b), []);

  // Node 2 goes away: its page shows it is reconnecting, in words rather
  // than close codes; node 1 counts one.
  await recordStatus(b);
  const port2 = new URL(url2).port;
  await stop(node2);
  await assertText(b.locator('#status'), /^reconnecting: attempt \d+ in \S+ s \(.+\)$/);
  await assertText(a.locator('#online'), '1');
  assert.deepEqual(await lowContrast(b), [], 'contrast of the offline page');
  await b.screenshot({ path: path.join(SCREENSHOTS, 'chat-node2-reconnecting.png') });

  // It comes back on the same port: the page reconnects and joins again.
  [node2] = await startNode('b2', port2, redisUrl);
  await b.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  // The live region followed the connection, in words.
  const shown = await b.evaluate(() => window.statusLog);
  assert.ok(shown.some((t) => /^disconnected: \D+$/.test(t)), JSON.stringify(shown));
  assert.ok(shown.some((t) => t.startsWith('reconnecting: attempt')), JSON.stringify(shown));
  assert.equal(shown.at(-1), 'connected');
  for (const text of shown) assert.doesNotMatch(text, /\b(1\d{3}|4\d{3})\b/, 'a raw close code');
  await assertText(b.locator('#online'), '2');
  await assertText(a.locator('#online'), '2');
  await say(b, 'bob is back');
  await lastMessage(a, 'bob', 'bob is back');

  assert.deepEqual(problems, []);
});

test('a node whose Redis is not up says so on its page, until Redis is up', async () => {
  const redisPort = await freePort(); // nothing listens there yet
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const [, [, url]] = await startNode('u1', 0, redisUrl);
  const health = await fetch(new URL('health', url));
  assert.equal(health.status, 503);
  const report = await health.json();
  assert.equal(report.bus.healthy, false);

  // The page connects to its node, and says loudly that the node is alone.
  const problems = [];
  const page = await openPage(url, problems);
  const warning = page.getByRole('alert').filter({ hasText: 'message bus' });
  await warning.waitFor({ timeout: WAIT });
  await assertText(warning, /^This node cannot reach its message bus \(redis:\/\/127\.0\.0\.1:\d+\): messages reach only/);
  assert.deepEqual(await lowContrast(page), []);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'chat-redis-unreachable.png') });

  // Redis starts: the node reconnects and the warning goes.
  await startRedis(redisPort);
  await page.locator('#bus-warning').waitFor({ state: 'hidden', timeout: WAIT });
  assert.equal((await fetch(new URL('health', url))).status, 200);
  assert.deepEqual(problems, []);
});

test('a page that lost its connection shows what it missed, marked recovered, once and in order; after a restart it says what is lost', async () => {
  // Two nodes in one process share the room history; page A reaches node 1
  // through a proxy that can cut its connection, page B is on node 2.
  let [chat, url1, url2] = await startMemoryPair('m');
  const proxy = await tcpProxy(url1);
  const problems = [];
  const a = await openPage(proxy.url, problems);
  const b = await openPage(url2, problems);
  await join(a, 'alice', 'lobby');
  await assertText(a.locator('#me'), 'alice');
  await join(b, 'bob', 'lobby');
  await assertText(b.locator('#me'), 'bob');
  await say(b, 'before');
  await lastMessage(a, 'bob', 'before');

  // A's network goes away: its socket ends without a close frame.
  await recordStatus(a);
  proxy.offline();
  await a.locator('#status[data-state="reconnecting"]').waitFor({ timeout: WAIT });
  for (const text of ['missed 1', 'missed 2', 'missed 3']) {
    await say(b, text);
    await lastMessage(b, 'bob', text);
  }
  // Still offline: nothing of it reached A.
  assert.equal(await a.locator('#messages li.message .text', { hasText: 'missed' }).count(), 0);

  // Back: A reconnects (to the same process), joins again and shows the
  // missed messages, marked, before the next one.
  proxy.online();
  await a.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  await lastMessage(a, 'bob', 'missed 3');
  await say(b, 'after');
  await lastMessage(a, 'bob', 'after');
  const shown = await a
    .locator('#messages li.message')
    .evaluateAll((items) =>
      items.map((li) => [li.querySelector('.text').textContent, li.querySelector('.recovered-label')?.textContent ?? null]),
    );
  assert.deepEqual(shown, [
    ['before', null],
    ['missed 1', 'recovered'],
    ['missed 2', 'recovered'],
    ['missed 3', 'recovered'],
    ['after', null],
  ]);
  // The mark is a word in the message's text (what a screen reader reads),
  // not a colour alone.
  const missed = a.locator('#messages li.message', { hasText: 'missed 2' });
  assert.match(await missed.innerText(), /missed 2[\s\S]*recovered/);
  await assertText(a.locator('#messages li.system .text', { hasText: 'back online' }), /^back online: \d+ missed updates? recovered$/);
  assert.equal(await a.locator('#recovery-warning').isVisible(), false);
  const statuses = await a.evaluate(() => window.statusLog);
  assert.ok(statuses.some((t) => t.startsWith('disconnected: ')), JSON.stringify(statuses));
  assert.deepEqual(await lowContrast(a), []);
  await a.screenshot({ path: path.join(SCREENSHOTS, 'chat-recovered.png') });

  // The process restarts: its history is gone. A reconnects to the new
  // process and says that messages may be missing, with a way to reload.
  await b.close();
  await stop(chat, 'SIGKILL');
  [chat, url1] = await startMemoryPair('m');
  proxy.target = new URL(url1);
  await a.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  await a.locator('#recovery-warning').waitFor({ state: 'visible', timeout: WAIT });
  await assertText(
    a.locator('#recovery-text'),
    'Some messages could not be recovered (the server restarted and lost the recent messages). ' +
      'Reload the page to see the conversation.',
  );
  assert.equal(await a.getByRole('alert').filter({ hasText: 'could not be recovered' }).count(), 1);
  assert.ok((await controls(a)).includes('button "Reload"'));
  assert.deepEqual(await lowContrast(a), []);
  await a.screenshot({ path: path.join(SCREENSHOTS, 'chat-recovery-incomplete.png') });
  // Reloading starts afresh: no notice, nothing marked.
  await Promise.all([a.waitForEvent('load'), a.click('#reload')]);
  await a.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  assert.equal(await a.locator('#recovery-warning').isVisible(), false);
  assert.equal(await a.locator('#room-panel').isVisible(), false);
  await proxy.close();
  assert.deepEqual(problems, []);
});
