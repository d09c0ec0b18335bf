/**
 * crosswire JavaScript client: WebSocketConnector.
 *
 * A dependency-free drop-in for the WebSocketConnector class of the Node.js
 * library websocket-cross-server-adapter (1.0.7): same constructor options
 * and defaults, same methods, same events, same frames on the wire. It runs
 * in browsers and in Node.js (global WebSocket of Node >= 22, or
 * `--experimental-websocket` on Node 20, or any implementation passed as
 * `options.WebSocket`, e.g. the `ws` package).
 *
 * Deliberate differences from the original (each fixes a defect; see
 * README.md in this folder):
 *  - a pushed event named like a lifecycle event (open, close, error, ...)
 *    or like an Object prototype key never reaches listeners;
 *  - a socket dropped by manualClose()/reconnect() keeps a no-op error
 *    handler, so the `ws` package cannot crash the process;
 *  - automatic retries survive a synchronous connection failure;
 *  - heartbeat timers stop when the connection closes;
 *  - `close` is emitted once for every connection that opened (and never for
 *    attempts that failed before opening); reconnect() closes with 4000, so a
 *    server can tell it from manualClose() (4001);
 *  - waiting callbacks fail at once with WS_CLOSED when the connection goes;
 *  - a heartbeat reply counts only while a heartbeat is outstanding;
 *  - an explicit `undefined` option keeps the default;
 *  - customParams go before a #fragment, plain objects are sent as JSON;
 *  - connect() opens again after manualClose();
 *  - emitWithPromise() always resolves, even for invalid options.
 *
 * crosswire extension, off unless `options.recovery` is true: missed-message
 * recovery (docs/protocol.md §10.3). The connector keeps the last position
 * of every room it is in, sends them when it connects again, and tells the
 * application how the recovery of each room went (`recovery` event); room
 * messages reach listeners with a second argument, their position.
 */

const CONNECTING = 0;
const OPEN = 1;

/** Close code and reason sent by manualClose(). */
const MANUAL_CLOSE = [4001, 'client manual close'];
/** Close code and reason sent when the heartbeat reply is missing. */
const PONG_TIMEOUT = [4002, 'pong timeout'];
/** Close code and reason sent when reconnect() drops a live connection. */
const RECONNECT_CLOSE = [4000, 'client reconnect'];

/** Events the connector fires itself; a server push can never fire them. */
const LIFECYCLE_EVENTS = new Set([
  'open',
  'close',
  'error',
  'message',
  'ping',
  'pong',
  'pong-timeout',
  'reconnect',
  'repeat-limit',
]);

// Missed-message recovery (crosswire extension, docs/protocol.md §10.3).
/** Query parameter opting into recovery (`cwRecovery=1`). */
const RECOVERY_PARAM = 'cwRecovery';
/** Query parameter with the positions to resume from. */
const RESUME_PARAM = 'cwResume';
/** Frame key of a room message's position. */
const POSITION_KEY = 'cwPos';
/** Frame key marking a message sent again during a recovery. */
const RECOVERED_KEY = 'cwRecovered';
/** Pushed after the replay of a room: the position and the outcome. */
const JOINED_EVENT = '_cw_joined';
/** Pushed when the socket left a room: forget its position. */
const LEFT_EVENT = '_cw_left';
/** Most rooms one resume parameter may name. */
const MAX_RESUME_ROOMS = 256;
/** The connector's event reporting the recovery of a room (with `recovery: true`). */
const RECOVERY_EVENT = 'recovery';

// Room presence (crosswire extension, docs/protocol.md §10.4).
/** Query parameter opting into presence events (`cwPresence=1`). */
const PRESENCE_PARAM = 'cwPresence';
/** Pushed when the socket's id joined a room: its members. */
const PRESENCE_STATE_EVENT = '_cw_presence_state';
/** Pushed when a member joined or left a room the socket is in. */
const PRESENCE_CHANGE_EVENT = '_cw_presence';
/** The connector's event reporting a room's members (with `presence: true`). */
const PRESENCE_EVENT = 'presence';

const DEFAULTS = Object.freeze({
  url: '',
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

function noop() {}

function checkEvent(event) {
  if (!event || typeof event !== 'string') {
    throw new TypeError('event must be a non-empty string');
  }
}

function isPositiveInteger(n) {
  return typeof n === 'number' && Number.isInteger(n) && n > 0;
}

function isName(s) {
  return typeof s === 'string' && s.length > 0;
}

/**
 * `{ns, room, epoch, offset}` from a position object of the server (`cwPos`
 * or a `_cw_joined` payload), or null when it is not a valid one.
 */
function readPosition(p) {
  if (!p || typeof p !== 'object') return null;
  const { ns, room, epoch, offset } = p;
  if (!isName(ns) || !isName(room) || !isName(epoch)) return null;
  if (!Number.isSafeInteger(offset) || offset < 0) return null;
  return { ns, room, epoch, offset };
}

/**
 * `url` with `params` added to its query (before any #fragment, which a
 * WebSocket URL cannot carry and is dropped). Values are stringified as the
 * original does (`String(v)`), except plain objects, sent as JSON.
 */
function buildUrl(url, params) {
  if (!params || typeof params !== 'object' || Array.isArray(params)) {
    return url;
  }
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    const isPlainObject = value !== null && typeof value === 'object' && !Array.isArray(value);
    query.append(key, isPlainObject ? JSON.stringify(value) : String(value));
  }
  const serialized = query.toString();
  const hash = url.indexOf('#');
  const base = hash >= 0 ? url.slice(0, hash) : url;
  if (!serialized) {
    return base;
  }
  return base + (base.includes('?') ? '&' : '?') + serialized;
}

/** Frame data as text, or null when it cannot be read synchronously (Blob). */
function frameText(data) {
  if (typeof data === 'string') {
    return data;
  }
  if (typeof ArrayBuffer !== 'undefined') {
    if (data instanceof ArrayBuffer) {
      return new TextDecoder().decode(new Uint8Array(data));
    }
    if (ArrayBuffer.isView(data)) {
      return new TextDecoder().decode(data);
    }
    if (Array.isArray(data)) {
      // `ws` with binaryType 'fragments'
      return data.map((part) => new TextDecoder().decode(part)).join('');
    }
  }
  return null;
}

/** The client of a crosswire node (or of the original server). */
export class WebSocketConnector {
  /**
   * Connects at once.
   * @param {object} options see index.d.ts; an option given as `undefined`
   *   keeps its default.
   */
  constructor(options = {}) {
    const given = {};
    for (const [key, value] of Object.entries(options || {})) {
      if (value !== undefined) {
        given[key] = value;
      }
    }
    this.options = { ...DEFAULTS, ...given };
    delete this.options.WebSocket;
    this._WebSocket = given.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError(
        'No WebSocket implementation: use a browser, Node.js >= 22 (or 20 with ' +
          '--experimental-websocket), or pass options.WebSocket (e.g. the ws package)',
      );
    }

    /** The current WebSocket, or null between attempts. */
    this.ws = null;
    /** Reconnection attempts since the last successful open. */
    this.repeat = 0;
    this.pingGoTime = 0;
    this.pingTimer = null;
    this.pongTimer = null;
    this.reconnectTimer = null;
    this.lockReconnect = false;
    this.forbidReconnect = false;

    this._listeners = new Map();
    this._pending = new Map();
    this._callbackCounter = 0;
    /** State of the current socket: whether it opened, whether it erred. */
    this._opened = false;
    this._erredWhileOpen = false;
    /** Whether missed-message recovery is on (fixed for the instance). */
    this._recovery = this.options.recovery === true;
    /**
     * The last position of every room, by JSON [ns, room], least recently
     * updated first (a Map keeps insertion order).
     */
    this._positions = new Map();
    /** Whether presence events are on (fixed for the instance). */
    this._presence = this.options.presence === true;
    /** Members of every room, by JSON [ns, room]: Map of `node id` → member. */
    this._rooms = new Map();

    this._createWebSocket();
  }

  /**
   * The URL of the next connection: the options' URL with `customParams`,
   * and with recovery on `cwRecovery=1` and the positions to resume from.
   */
  _connectionUrl() {
    let url = buildUrl(String(this.options.url), this.options.customParams);
    if (!this._recovery && !this._presence) return url;
    const hash = url.indexOf('#');
    if (hash >= 0) url = url.slice(0, hash);
    if (this._presence) {
      url += (url.includes('?') ? '&' : '?') + PRESENCE_PARAM + '=1';
    }
    if (!this._recovery) return url;
    url += (url.includes('?') ? '&' : '?') + RECOVERY_PARAM + '=1';
    const resume = this.recoveryPositions();
    if (resume.length > 0) {
      const entries = resume.map((p) => [p.ns, p.room, p.epoch, p.offset]);
      url += '&' + RESUME_PARAM + '=' + encodeURIComponent(JSON.stringify(entries));
    }
    return url;
  }

  /**
   * The positions the next connection resumes from (recovery on): one
   * `{ns, room, epoch, offset}` per room, most recently updated first, at
   * most 256. crosswire extension.
   * @returns {{ns: string, room: string, epoch: string, offset: number}[]}
   */
  recoveryPositions() {
    const all = [...this._positions.values()].reverse().slice(0, MAX_RESUME_ROOMS);
    return all.map((p) => ({ ...p }));
  }

  _remember(p) {
    const key = JSON.stringify([p.ns, p.room]);
    this._positions.delete(key);
    this._positions.set(key, p);
  }

  // ----- connection ---------------------------------------------------------

  _createWebSocket() {
    this._opened = false;
    this._erredWhileOpen = false;
    let ws;
    try {
      if (!this.options.url) {
        throw new Error(
          'Missing WebSocket URL: please provide a complete ws:// or wss:// address in options.url.',
        );
      }
      ws = new this._WebSocket(this._connectionUrl());
    } catch (e) {
      console.error('Failed to connect to WebSocket server:', e);
      this.reconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = (event) => this._onOpen(ws, event);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onerror = (event) => this._onError(ws, event);
    ws.onclose = (event) => this._onClose(ws, event);
  }

  /** Stops listening to `ws` and closes it if needed; never throws. */
  _discard(ws, [code, reason]) {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    // Keep an error handler: with the `ws` package an 'error' emitted without
    // a listener (e.g. closing while CONNECTING) would crash the process.
    ws.onerror = noop;
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
      try {
        ws.close(code, reason);
      } catch (e) {
        // already closing or an implementation that refuses the code
      }
    }
    if (this.ws === ws) {
      this.ws = null;
    }
  }

  _onOpen(ws, event) {
    if (ws !== this.ws) return;
    this._opened = true;
    this._executeListeners('open', event);
    if (ws !== this.ws) return; // a listener closed or replaced it
    this.repeat = 0;
    this._heartCheck();
  }

  _onError(ws, event) {
    if (ws !== this.ws) return;
    this._executeListeners('error', event);
    if (ws !== this.ws) return;
    if (this._opened) {
      // The connection was up: report its close first, then reconnect.
      this._erredWhileOpen = true;
      return;
    }
    this.reconnect();
  }

  _onClose(ws, event) {
    if (ws !== this.ws) return;
    this._clearHeartbeat();
    if (!this._opened) {
      // An attempt that never opened: not a `close`; retry.
      this._discard(ws, RECONNECT_CLOSE);
      this.reconnect();
      return;
    }
    const erred = this._erredWhileOpen;
    this.ws = null;
    ws.onerror = noop;
    this._failPending();
    // Members are known again from the state of each room rejoined.
    this._rooms.clear();
    this._executeListeners('close', event);
    if (erred) {
      this.reconnect();
    }
  }

  /**
   * Drops the current connection (closing it with 4000 when it is up) and
   * schedules a new attempt with the backoff delay. Refused while an attempt
   * is already scheduled, after manualClose(), and once `repeatLimit`
   * attempts were made (then `repeat-limit` is emitted).
   * @param {boolean} [repeatReset=false] restart the attempt count at 0
   */
  reconnect(repeatReset = false) {
    this._clearHeartbeat();
    if (repeatReset) {
      this.repeat = 0;
    }
    if (this.lockReconnect || this.forbidReconnect) {
      return;
    }
    const limit = this.options.repeatLimit;
    if (typeof limit === 'number' && limit <= this.repeat) {
      if (this.ws && !this._opened) {
        this._discard(this.ws, RECONNECT_CLOSE);
      }
      this._executeListeners('repeat-limit', limit);
      return;
    }
    if (this.ws) {
      const wasOpen = this._opened;
      this._discard(this.ws, RECONNECT_CLOSE);
      if (wasOpen) {
        this._failPending();
      }
    }
    this.lockReconnect = true;
    this.repeat += 1;
    const timeout = this._reconnectDelay(this.repeat);
    this._executeListeners('reconnect', { repeat: this.repeat, timeout });
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      // Unlock first: a synchronous failure below must be able to schedule
      // the next attempt.
      this.lockReconnect = false;
      if (!this.forbidReconnect) {
        this._createWebSocket();
      }
    }, timeout);
  }

  _reconnectDelay(r) {
    const { fastReconnectThreshold: t, fastReconnectInterval: i, reconnectMaxInterval: m } =
      this.options;
    if (r <= t) {
      return i;
    }
    return Math.floor(Math.max(Math.min(2 ** (r - t) * i + Math.random() * i, m), i));
  }

  /** Whether the connector is retrying (attempts since the last open > 0). */
  reconnecting() {
    return this.repeat > 0;
  }

  /**
   * Closes the connection with 4001 and stops every timer; no `close` event
   * and no reconnection follow. Callbacks still waiting fail with WS_CLOSED.
   * connect() opens again.
   */
  manualClose() {
    this.forbidReconnect = true;
    this._clearHeartbeat();
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.lockReconnect = false;
    if (this.ws) {
      this._discard(this.ws, MANUAL_CLOSE);
    }
    this._failPending();
  }

  /**
   * Connects now: after manualClose(), or to skip the wait of a scheduled
   * attempt. Does nothing while a connection is open or opening.
   */
  connect() {
    if (this.ws && (this.ws.readyState === CONNECTING || this.ws.readyState === OPEN)) {
      return;
    }
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.lockReconnect = false;
    this.forbidReconnect = false;
    this._createWebSocket();
  }

  // ----- inbound frames -------------------------------------------------------

  _onMessage(ws, event) {
    if (ws !== this.ws || !event || event.data === undefined) return;
    const data = event.data;
    this._executeListeners('message', data);
    if (ws !== this.ws) return;
    const text = frameText(data);
    if (text === null) return;
    if (text === this.options.pingMsg) {
      if (this.pongTimer !== null) {
        this._executeListeners('pong', Date.now() - this.pingGoTime);
        if (ws === this.ws) this._heartCheck();
      }
      return;
    }
    this._handleMessage(text);
  }

  _handleMessage(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (frame.callbackId) {
      const entry = this._pending.get(frame.callbackId);
      if (entry) {
        this._settle(frame.callbackId, entry, null, frame.payload);
      }
      return;
    }
    const event = frame.event;
    if (typeof event !== 'string' || !event) return;
    if (this._presence && (event === PRESENCE_STATE_EVENT || event === PRESENCE_CHANGE_EVENT)) {
      this._onPresence(event, frame.payload);
      return;
    }
    if (event === PRESENCE_EVENT && this._presence) return;
    if (!this._recovery) {
      if (LIFECYCLE_EVENTS.has(event)) return;
      this._executeListeners(event, frame.payload);
      return;
    }
    if (event === JOINED_EVENT) {
      this._onJoined(frame.payload);
      return;
    }
    if (event === LEFT_EVENT) {
      const p = frame.payload;
      if (p && isName(p.ns) && isName(p.room)) {
        this._positions.delete(JSON.stringify([p.ns, p.room]));
      }
      return;
    }
    if (LIFECYCLE_EVENTS.has(event) || event === RECOVERY_EVENT) return;
    const position = readPosition(frame[POSITION_KEY]);
    if (position === null) {
      this._executeListeners(event, frame.payload);
      return;
    }
    this._remember(position);
    const meta = { recovered: frame[RECOVERED_KEY] === true, ...position };
    this._executeListeners(event, frame.payload, meta);
  }

  /**
   * The members of a room as the connector knows them (presence on): one
   * `{id, node, info}` per member, sorted by id. crosswire extension.
   * @param {string} ns
   * @param {string} room
   * @returns {{id: string, node: string, info: any}[]}
   */
  presenceMembers(ns, room) {
    const members = this._rooms.get(JSON.stringify([ns, room]));
    if (!members) return [];
    return [...members.values()]
      .map((m) => ({ ...m }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.node < b.node ? -1 : 1));
  }

  /** A room's members, or one member joining or leaving: kept, reported. */
  _onPresence(event, p) {
    if (!p || !isName(p.ns) || !isName(p.room)) return;
    const key = JSON.stringify([p.ns, p.room]);
    const member = (m) =>
      m && isName(m.id) && isName(m.node) ? { id: m.id, node: m.node, info: m.info ?? null } : null;
    let change = null;
    if (event === PRESENCE_STATE_EVENT) {
      if (!Array.isArray(p.members)) return;
      const members = new Map();
      for (const m of p.members.map(member)) {
        if (m) members.set(m.node + ' ' + m.id, m);
      }
      this._rooms.set(key, members);
    } else {
      const m = member(p.member);
      if (!m || (p.op !== 'join' && p.op !== 'leave')) return;
      let members = this._rooms.get(key);
      if (!members) {
        members = new Map();
        this._rooms.set(key, members);
      }
      if (p.op === 'join') members.set(m.node + ' ' + m.id, m);
      else members.delete(m.node + ' ' + m.id);
      change = { op: p.op, member: { ...m } };
    }
    this._executeListeners(PRESENCE_EVENT, {
      ns: p.ns,
      room: p.room,
      members: this.presenceMembers(p.ns, p.room),
      change,
    });
  }

  /** A room's replay is over: keep its position, report the outcome. */
  _onJoined(payload) {
    const position = readPosition(payload);
    if (position === null) return;
    this._remember(position);
    const status = isName(payload.recovery) ? payload.recovery : 'none';
    const recovered = Number.isSafeInteger(payload.recovered) ? payload.recovered : 0;
    this._executeListeners(RECOVERY_EVENT, {
      ns: position.ns,
      room: position.room,
      status,
      reason: isName(payload.reason) ? payload.reason : null,
      recovered,
      epoch: position.epoch,
      offset: position.offset,
    });
  }

  // ----- listeners --------------------------------------------------------------

  /** Calls the listeners of `event` with `arg` (and `meta` when given). */
  _executeListeners(event, arg, meta) {
    const list = this._listeners.get(event);
    if (!list || list.length === 0) return;
    for (const entry of list.slice()) {
      if (entry.once) {
        this._removeEntry(event, entry);
      } else if (!list.includes(entry)) {
        continue; // removed by an earlier listener of this round
      }
      try {
        if (meta === undefined) {
          entry.fn(arg);
        } else {
          entry.fn(arg, meta);
        }
      } catch (err) {
        console.error(`[${event}] Listener execution failed:`, err);
      }
    }
  }

  _add(event, listener, once, tag) {
    checkEvent(event);
    if (typeof listener !== 'function') {
      throw new TypeError('listener must be a function');
    }
    let list = this._listeners.get(event);
    if (!list) {
      list = [];
      this._listeners.set(event, list);
    }
    list.push({ fn: listener, once, tag });
  }

  _removeEntry(event, entry) {
    const list = this._listeners.get(event);
    if (!list) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(event);
  }

  /**
   * Adds a listener of `event`: a lifecycle event or a server-pushed event.
   * A pushed event gets its payload; with recovery on, a room message with a
   * position also gets a second argument `{recovered, ns, room, epoch,
   * offset}` (`recovered`: sent again after a reconnection).
   * @param {string} event
   * @param {Function} listener
   * @param {*} [tag] for off(event, tag)
   */
  on(event, listener, tag) {
    this._add(event, listener, false, tag);
  }

  /** Like on(), for the next occurrence only. */
  once(event, listener, tag) {
    this._add(event, listener, true, tag);
  }

  /**
   * Removes listeners of `event`: all of them without a second argument,
   * those with that function, or those with that tag (strict equality).
   */
  off(event, listenerOrTag) {
    checkEvent(event);
    const list = this._listeners.get(event);
    if (!list) return;
    let keep;
    if (listenerOrTag === undefined) {
      keep = [];
    } else if (typeof listenerOrTag === 'function') {
      keep = list.filter((e) => e.fn !== listenerOrTag);
    } else {
      keep = list.filter((e) => e.tag !== listenerOrTag);
    }
    // Mutate in place so that a dispatch in progress sees the removal.
    list.splice(0, list.length, ...keep);
    if (list.length === 0) this._listeners.delete(event);
  }

  // ----- sending --------------------------------------------------------------------

  _isOpen() {
    return this.ws !== null && this.ws.readyState === OPEN;
  }

  _generateCallbackId() {
    this._callbackCounter += 1;
    return (
      Date.now().toString(36) +
      '-' +
      Math.random().toString(36).substring(2, 6) +
      '-' +
      this._callbackCounter.toString(36)
    );
  }

  _timeouts(options) {
    const callbackTimeout = options.callbackTimeout || this.options.callbackTimeout;
    const pendingTimeout = options.pendingTimeout || this.options.pendingTimeout;
    if (!isPositiveInteger(callbackTimeout)) {
      throw new Error(
        'Invalid timeout parameters: "callbackTimeout" must be positive integers.',
      );
    }
    if (pendingTimeout !== undefined && pendingTimeout !== null && !isPositiveInteger(pendingTimeout)) {
      throw new Error('"pendingTimeout" must be a positive integer if provided.');
    }
    return { callbackTimeout, pendingTimeout };
  }

  _register(callbackId, kind, fn, onPending, { callbackTimeout, pendingTimeout }) {
    const entry = { kind, fn, timeoutId: null, pendingTimer: null };
    entry.timeoutId = setTimeout(() => {
      if (this._pending.get(callbackId) !== entry) return;
      const error =
        kind === 'promise'
          ? `Is promise callback timeout: ${callbackId}`
          : `Is callback timeout: ${callbackId}`;
      this._settle(callbackId, entry, { error, errorCode: 'CALLBACK_TIMEOUT' });
    }, callbackTimeout);
    if (typeof onPending === 'function' && pendingTimeout && pendingTimeout < callbackTimeout) {
      entry.pendingTimer = setTimeout(() => {
        entry.pendingTimer = null;
        if (this._pending.get(callbackId) !== entry) return;
        try {
          onPending();
        } catch (err) {
          console.error('[onPending] failed:', err);
        }
      }, pendingTimeout);
    }
    this._pending.set(callbackId, entry);
  }

  /** Resolves a pending entry once: with `error`, or with the reply `payload`. */
  _settle(callbackId, entry, error, payload) {
    if (this._pending.get(callbackId) !== entry) return;
    this._pending.delete(callbackId);
    clearTimeout(entry.timeoutId);
    if (entry.pendingTimer) clearTimeout(entry.pendingTimer);
    try {
      if (entry.kind === 'promise') {
        entry.fn(error ? { success: false, ...error } : { success: true, data: payload });
      } else if (error) {
        entry.fn(error, null);
      } else {
        entry.fn(null, payload);
      }
    } catch (err) {
      console.error('[callback] failed:', err);
    }
  }

  _failPending() {
    if (this._pending.size === 0) return;
    for (const [id, entry] of [...this._pending]) {
      this._settle(id, entry, {
        error: 'WebSocket closed before the reply arrived',
        errorCode: 'WS_CLOSED',
      });
    }
  }

  _send(event, data, callbackId) {
    const frame = { event, payload: data };
    if (callbackId !== undefined) frame.callbackId = callbackId;
    this.ws.send(JSON.stringify(frame));
  }

  /**
   * Sends `event` with `data`. With a callback, the server's reply arrives as
   * `callback(null, payload)`; failures as `callback({error, errorCode}, null)`
   * with errorCode WS_NOT_OPEN (called at once), CALLBACK_TIMEOUT or WS_CLOSED.
   * @param {string} event
   * @param {*} data not null or undefined
   * @param {Function} [callback]
   * @param {{callbackTimeout?: number, pendingTimeout?: number, onPending?: Function}} [options]
   */
  emit(event, data, callback, options = {}) {
    checkEvent(event);
    if (data === null || data === undefined) {
      throw new Error('emit: data cannot be null or undefined');
    }
    const withCallback = typeof callback === 'function';
    if (!this._isOpen()) {
      if (withCallback) {
        callback({ error: 'WebSocket is not open', errorCode: 'WS_NOT_OPEN' }, null);
      }
      return;
    }
    if (!withCallback) {
      this._send(event, data);
      return;
    }
    const opts = options || {};
    const timeouts = this._timeouts(opts);
    const callbackId = this._generateCallbackId();
    this._register(callbackId, 'callback', callback, opts.onPending, timeouts);
    this._send(event, data, callbackId);
  }

  /**
   * Sends `event` with `data` and resolves with the reply:
   * `{success: true, data}` or `{success: false, error, errorCode?}`. Never
   * rejects.
   */
  emitWithPromise(event, data, options = {}) {
    return new Promise((resolve) => {
      if (!event || typeof event !== 'string') {
        resolve({ success: false, error: 'No event provided in emitWithPromise' });
        return;
      }
      if (data === null || data === undefined) {
        resolve({ success: false, error: 'Data cannot be null or undefined' });
        return;
      }
      if (!this._isOpen()) {
        resolve({ success: false, error: 'WebSocket is not open', errorCode: 'WS_NOT_OPEN' });
        return;
      }
      const opts = options || {};
      let timeouts;
      try {
        timeouts = this._timeouts(opts);
      } catch (e) {
        resolve({ success: false, error: e.message, errorCode: 'INVALID_OPTIONS' });
        return;
      }
      const callbackId = this._generateCallbackId();
      this._register(callbackId, 'promise', resolve, opts.onPending, timeouts);
      this._send(event, data, callbackId);
    });
  }

  // ----- heartbeat --------------------------------------------------------------------

  _clearHeartbeat() {
    if (this.pingTimer) clearTimeout(this.pingTimer);
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  _heartCheck() {
    this._clearHeartbeat();
    this._startPing();
  }

  _startPing() {
    if (this.forbidReconnect) return;
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      this.pingTimer = null;
      this._executeListeners('ping');
      this.pingGoTime = Date.now();
      if (this._isOpen()) {
        this.ws.send(this.options.pingMsg);
      }
      if (this.pongTimer) clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        this.pongTimer = null;
        this._executeListeners('pong-timeout');
        if (this._isOpen()) {
          this.ws.close(PONG_TIMEOUT[0], PONG_TIMEOUT[1]);
        }
      }, this.options.pongTimeout);
    }, this.options.pingInterval);
  }

  /**
   * Changes the heartbeat period (from the next heartbeat on, or at once
   * with `immediate`).
   */
  setPingInterval(newInterval, immediate = false) {
    if (typeof newInterval !== 'number' || !(newInterval > 0)) {
      throw new TypeError('pingInterval must be a positive number');
    }
    this.options.pingInterval = newInterval;
    if (immediate && this.pingTimer) {
      this._startPing();
    }
  }

  /** The heartbeat period in ms. */
  getPingInterval() {
    return this.options.pingInterval;
  }
}

export default WebSocketConnector;
