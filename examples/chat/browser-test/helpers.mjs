// What the browser tests share: paths of the binaries, child processes that
// are killed when the tests end (chat nodes, redis-server), free ports,
// headless Chromium, and waiting for a text to show.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const TARGET = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target');
export const CHAT_BIN = process.env.CROSSWIRE_CHAT_BIN || path.join(TARGET, 'debug', 'chat');
export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = path.join(REPO, 'target', 'screenshots');
/** Longest wait for anything the page should show. */
export const WAIT = 10000;

/** Every process started with start(), for stopAll(). */
const children = [];

/** A port of 127.0.0.1 that was free a moment ago (bound, then released). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Spawns `cmd`; resolves with [child, match] once stdout matches `ready`. */
export async function start(cmd, args, ready) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  const match = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready in ${WAIT} ms:\n${out}`)), WAIT);
    const onData = (chunk) => {
      out += chunk;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => (out += chunk));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}):\n${out}`)));
  });
  child.removeAllListeners('exit');
  child.exited = new Promise((resolve) => child.once('exit', resolve));
  return [child, match];
}

/** Stops `child` with `signal`, then SIGKILL if it is still there after 5 s. */
export async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await child.exited;
  clearTimeout(timer);
}

/** Kills every process start() started (for an `after` hook). */
export async function stopAll() {
  for (const child of children) await stop(child, 'SIGKILL');
}

/** Starts a redis-server of its own on `port` (no persistence). */
export function startRedis(port) {
  return start(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    /Ready to accept connections/,
  );
}

/**
 * Checks that the chat binary and chromium are there, creates the
 * screenshots directory and launches headless Chromium.
 */
export async function launchBrowser() {
  for (const [what, file] of [
    ['chat binary', CHAT_BIN],
    ['chromium', CHROMIUM],
  ]) {
    if (!existsSync(file)) throw new Error(`${what} missing: ${file} (clients/js/run-tests.sh installs/builds it)`);
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}

/**
 * Waits until `locator` (its first match) shows `expected` (a string, or a
 * RegExp it matches); resolves with the text; fails after WAIT.
 */
export async function assertText(locator, expected) {
  const deadline = Date.now() + WAIT;
  let actual;
  for (;;) {
    actual = (await locator.count()) > 0 ? await locator.first().textContent() : null;
    if (expected instanceof RegExp ? expected.test(actual ?? '') : actual === expected) return actual;
    if (Date.now() > deadline) {
      assert.fail(`expected ${locator} to show ${expected}, it shows ${JSON.stringify(actual)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Visible text of `page` below WCAG AA (4.5:1): one line per element whose
 * own text, blended by its opacity over its first opaque background, falls
 * short. Disabled controls are exempt, as in WCAG.
 */
export async function lowContrast(page) {
  return page.evaluate(() => {
    const parse = (css) => {
      const m = /rgba?\(([^)]+)\)/.exec(css);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const channel = (v) => {
      const c = v / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      const ownText = Array.from(el.childNodes).some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
      if (!ownText || el.closest('[hidden]') || el.getClientRects().length === 0) continue;
      const style = getComputedStyle(el);
      if (style.visibility !== 'visible' || el.matches(':disabled')) continue;
      let alpha = parse(style.color).a;
      for (let e = el; e; e = e.parentElement) alpha *= Number(getComputedStyle(e).opacity);
      const fg = parse(style.color);
      const bg = background(el);
      const shown = {
        r: alpha * fg.r + (1 - alpha) * bg.r,
        g: alpha * fg.g + (1 - alpha) * bg.g,
        b: alpha * fg.b + (1 - alpha) * bg.b,
      };
      const [hi, lo] = [luminance(shown), luminance(bg)].sort((x, y) => y - x);
      const ratio = (hi + 0.05) / (lo + 0.05);
      if (ratio < 4.5) {
        const what = `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className ? '.' + el.className : ''}`;
        bad.push(`${what} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}:1`);
      }
    }
    return bad;
  });
}
