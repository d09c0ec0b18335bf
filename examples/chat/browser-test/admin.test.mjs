// The admin page of the HTTP API (/admin) in a real browser: headless
// Chromium on two chat nodes that share a Redis server of their own, each
// with `--http-api ... --http-token ... --admin`. The page refuses a wrong
// token without showing anything, then with the right one shows the live
// nodes, the bus, the connections of real WebSocket clients, the rooms they
// joined over the cluster, and charts that move under load; when its node
// goes away it says the node is unreachable and comes back with it.
//
// Needs: the chat binary (cargo build -p crosswire-examples --bin chat),
// redis-server, chromium. clients/js/run-tests.sh provides all three.
// Screenshots go to target/screenshots/ (admin-refused.png, admin-live.png,
// admin-unreachable.png).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
});

/**
 * Starts chat node `name` on Redis with its HTTP API and admin page on
 * 127.0.0.1:`apiPort`; resolves with {child, url (of the chat page), api
 * (base URL of the HTTP API)}.
 */
async function startNode(name, redisUrl, token, apiPort, port = 0) {
  const [child, m] = await start(
    CHAT_BIN,
    [
      '--port',
      String(port),
      '--name',
      name,
      '--redis',
      redisUrl,
      '--http-api',
      `127.0.0.1:${apiPort}`,
      '--http-token',
      token,
      '--admin',
    ],
    /listening on (http:\/\/\S+?)\n[\s\S]*HTTP API of \S+ on (http:\/\/\S+?)\/api\/v1\/ \(admin page: \/admin\)/,
  );
  return { child, url: m[1], api: m[2] };
}

/** The data attributes of the chart of `series`: {last, points}. */
function chart(page, series) {
  return page
    .locator(`svg[data-series="${series}"]`)
    .evaluate((svg) => ({ last: svg.dataset.last, points: Number(svg.dataset.points) }));
}

/** Waits until chart `series` shows a last value >= `min` over more than `points` samples. */
function chartMoved(page, series, min, points) {
  return page.waitForFunction(
    ([series, min, points]) => {
      const svg = document.querySelector(`svg[data-series="${series}"]`);
      return svg && svg.dataset.last !== '' && Number(svg.dataset.last) >= min && Number(svg.dataset.points) > points;
    },
    [series, min, points],
    { timeout: WAIT },
  );
}

/** The rows of the rooms table as [namespace, room, size] texts. */
function roomRows(page) {
  return page
    .locator('#rooms tbody tr')
    .evaluateAll((rows) => rows.map((tr) => Array.from(tr.cells, (td) => td.textContent)));
}

/** Opens the chat page of `url`, joins `room` as `name`. */
async function chatPage(url, name, room, problems) {
  const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  page.on('pageerror', (err) => problems.push(`chat page error: ${err.message}`));
  await page.goto(url);
  await page.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join');
  await assertText(page.locator('#me'), name);
  return page;
}

test('admin page: refuses a wrong token, then shows the cluster, connections, rooms and live charts', async () => {
  const redisPort = await freePort();
  await startRedis(redisPort);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const token = randomBytes(24).toString('hex');
  const apiPort1 = await freePort();
  let a1 = await startNode('a1', redisUrl, token, apiPort1);
  const a2 = await startNode('a2', redisUrl, token, await freePort());
  const auth = { Authorization: `Bearer ${token}` };

  const problems = [];
  const admin = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  admin.on('pageerror', (err) => problems.push(`admin page error: ${err.message}`));
  admin.on('console', (msg) => {
    // Chromium logs every answer other than 2xx (the refused token's 401s)
    // and every refused connection (the node down) as a failed resource;
    // anything else (a script error, a CSP violation) is a problem.
    const failedApiRequest =
      /^Failed to load resource/.test(msg.text()) && (msg.location().url ?? '').includes('/api/v1/');
    if (msg.type() === 'error' && !failedApiRequest) problems.push(`admin console: ${msg.text()} (${msg.location().url})`);
  });
  const response = await admin.goto(`${a1.api}/admin`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /default-src 'none'/);
  assert.equal(await admin.locator('#dashboard').isVisible(), false);

  // A wrong token: refused, nothing shown, nothing kept.
  await admin.fill('#token', `wrong-${token}`);
  await admin.click('#connect');
  await admin.locator('#status[data-state="refused"]').waitFor({ timeout: WAIT });
  assert.match(await admin.locator('#status').textContent(), /refused/);
  assert.equal(await admin.locator('#dashboard').isVisible(), false);
  assert.equal(await admin.locator('#nodes').isVisible(), false);
  assert.equal(await admin.locator('#nodes li').count(), 0);
  assert.equal(await admin.locator('#connections').textContent(), '');
  assert.equal(await admin.evaluate(() => sessionStorage.getItem('crosswire-admin-token')), null);
  assert.deepEqual(await lowContrast(admin), []);
  await admin.screenshot({ path: path.join(SCREENSHOTS, 'admin-refused.png'), fullPage: true });

  // The right token: connected to a1, which sees both nodes and a healthy
  // bus (the Redis server of this test), and no connection yet.
  await admin.fill('#token', token);
  await admin.click('#connect');
  await admin.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  assert.match(await admin.locator('#status').textContent(), /connected/);
  assert.match(await admin.locator('#status').textContent(), /\ba1\b/);
  assert.equal(await admin.evaluate(() => sessionStorage.getItem('crosswire-admin-token')), token);
  assert.equal(await admin.locator('#token').inputValue(), '', 'the token is not left in the form');
  await admin.waitForFunction(
    () => {
      const names = Array.from(document.querySelectorAll('#nodes li'), (li) => li.firstChild.textContent);
      return names.length === 2 && names.includes('a1') && names.includes('a2');
    },
    null,
    { timeout: WAIT },
  );
  assert.equal(await admin.locator('#nodes li.self').first().textContent(), 'a1(this node)');
  await assertText(admin.locator('#health'), 'ok');
  await assertText(admin.locator('#bus-health'), 'healthy');
  const busRows = admin.locator('#bus tbody tr');
  assert.equal(await busRows.count(), 1);
  assert.equal(await busRows.first().getAttribute('data-healthy'), 'true');
  assert.match(await busRows.first().locator('td').nth(0).textContent(), new RegExp(`:${redisPort}\\b`));
  assert.equal(await busRows.first().locator('td').nth(1).textContent(), 'yes');
  assert.match(await busRows.first().locator('td').nth(2).textContent(), /^\d+(\.\d+)?$/, 'latency in ms');
  await assertText(admin.locator('#connections'), '0');
  for (const id of ['slow-closes', 'rate-closes', 'publish-failures', 'pending-calls']) {
    await assertText(admin.locator(`#${id}`), '0');
  }

  // Five WebSocket clients on a1: the chat page (joined to "lobby") and four
  // connectors of the chat client opened by that page, two of them in lobby
  // and two in a room whose name is markup; a chat page on a2 joins lobby.
  const oddRoom = '<i>ops</i>';
  const chat1 = await chatPage(a1.url, 'alice', 'lobby', problems);
  const chat2 = await chatPage(a2.url, 'bob', 'lobby', problems);
  await chat1.evaluate(async (rooms) => {
    window.extra = [];
    await Promise.all(
      rooms.map(
        (room, i) =>
          new Promise((resolve, reject) => {
            const c = new WebSocketConnector({ url: `ws://${location.host}/ws` });
            window.extra.push(c);
            c.once('open', () =>
              c.emit('join', { name: `client${i}`, room }, (err, res) =>
                err || !res.ok ? reject(new Error(JSON.stringify(err || res))) : resolve(),
              ),
            );
          }),
      ),
    );
  }, ['lobby', oddRoom, oddRoom, 'lobby']);
  await assertText(admin.locator('#connections'), '5');
  const stats = await (await fetch(`${a1.api}/api/v1/stats`, { headers: auth })).json();
  assert.equal(stats.connections, 5, 'the node counts the same five');
  await admin.waitForFunction(
    () => document.querySelector('svg[data-series="connections"]')?.dataset.last === '5',
    null,
    { timeout: WAIT },
  );
  // Every node's own report: a1 holds five connections, a2 the one chat
  // page; both see two live nodes and a healthy bus.
  await admin.waitForFunction(
    () => {
      const row = (n) => Array.from(document.querySelectorAll(`#cluster tr[data-node="${n}"] td`), (td) => td.textContent);
      const [a1, a2] = [row('a1'), row('a2')];
      return a1.length === 7 && a2.length === 7 &&
        a1[1] === 'ok' && a1[2] === '5' && a1[3] === '2' && a1[4] === 'healthy' &&
        a2[1] === 'ok' && a2[2] === '1' && a2[3] === '2' && a2[4] === 'healthy';
    },
    null,
    { timeout: WAIT },
  );

  // Rooms over the cluster, largest first: lobby has three people on a1 and
  // one on a2. The markup of a room name is shown as text.
  const expectedRooms = [
    ['chat', 'lobby', '4'],
    ['chat', oddRoom, '2'],
  ];
  const roomsDeadline = Date.now() + WAIT;
  while (JSON.stringify(await roomRows(admin)) !== JSON.stringify(expectedRooms)) {
    if (Date.now() > roomsDeadline) assert.deepEqual(await roomRows(admin), expectedRooms);
    await admin.waitForTimeout(100);
  }
  assert.equal(await admin.locator('#rooms i, #rooms b, #nodes i').count(), 0);

  // Load: the five clients say something every 50 ms, and the test POSTs
  // broadcasts to the API; the frames-in and HTTP charts move.
  const frames0 = await chart(admin, 'frames_in');
  const http0 = await chart(admin, 'http');
  await chat1.evaluate(() => {
    const clients = [window.chat.connector, ...window.extra];
    let n = 0;
    window.load = setInterval(() => {
      n += 1;
      for (const c of clients) c.emit('say', { text: `load ${n}` });
    }, 50);
  });
  let posting = true;
  const posts = (async () => {
    let sent = 0;
    while (posting) {
      const res = await fetch(`${a1.api}/api/v1/broadcast`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ event: 'admin-test', payload: { n: sent } }),
      });
      assert.equal(res.status, 200, await res.text());
      sent += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return sent;
  })();
  try {
    await chartMoved(admin, 'frames_in', 20, frames0.points);
    await chartMoved(admin, 'http', 10, http0.points);
    await chartMoved(admin, 'bus_in', 1, 0);
  } finally {
    posting = false;
  }
  assert.ok((await posts) > 0);
  const frames = await chart(admin, 'frames_in');
  assert.ok(Number(frames.last) > 0, JSON.stringify(frames));
  assert.ok(frames.points > frames0.points, `${JSON.stringify(frames0)} -> ${JSON.stringify(frames)}`);
  assert.match(await admin.locator('#chart-frames_in-value').textContent(), /^\d+(\.\d)?k?$/);
  assert.match(await admin.locator('#charts').textContent(), /last 5 min/);
  // Text meets WCAG AA contrast, in the light and in the dark scheme.
  assert.deepEqual(await lowContrast(admin), []);
  await admin.emulateMedia({ colorScheme: 'dark' });
  assert.deepEqual(await lowContrast(admin), [], 'dark scheme');
  await admin.emulateMedia({ colorScheme: 'light' });
  await admin.screenshot({ path: path.join(SCREENSHOTS, 'admin-live.png'), fullPage: true });
  await chat1.evaluate(() => clearInterval(window.load));

  // a1 goes away: the page says so and keeps retrying; it comes back with
  // a1, without asking for the token again.
  const port1 = new URL(a1.url).port;
  await stop(a1.child);
  await admin.locator('#status[data-state="unreachable"]').waitFor({ timeout: WAIT });
  assert.match(await admin.locator('#status').textContent(), /unreachable/);
  await assertText(admin.locator('#health'), 'unreachable');
  assert.deepEqual(await lowContrast(admin), []);
  await admin.screenshot({ path: path.join(SCREENSHOTS, 'admin-unreachable.png'), fullPage: true });
  a1 = await startNode('a1', redisUrl, token, apiPort1, port1);
  await admin.locator('#status[data-state="connected"]').waitFor({ timeout: WAIT });
  await assertText(admin.locator('#health'), 'ok');

  await chat1.close();
  await chat2.close();
  assert.deepEqual(problems, []);
});
