// Type declarations of the crosswire JavaScript client (WebSocketConnector).

/** Constructor options; every option has the original's default. */
export interface WebSocketConnectorOptions {
  /** Full `ws://` or `wss://` URL. Required. */
  url?: string;
  /** Milliseconds between an open (or a heartbeat reply) and the next heartbeat. Default 10000. */
  pingInterval?: number;
  /** Milliseconds to wait for the heartbeat reply before closing with 4002. Default 2000. */
  pongTimeout?: number;
  /** Number of attempts that use the fixed fast delay. Default 3. */
  fastReconnectThreshold?: number;
  /** Fast delay, also the backoff unit and jitter range. Default 3000. */
  fastReconnectInterval?: number;
  /** Cap of the backoff delay. Default 120000. */
  reconnectMaxInterval?: number;
  /** Heartbeat string; must equal the server's heartbeat string. Default `''`. */
  pingMsg?: string;
  /** Default reply timeout of emit/emitWithPromise. Default 5000. */
  callbackTimeout?: number;
  /** Maximum number of scheduled reconnection attempts; `null` = unlimited. Default null. */
  repeatLimit?: number | null;
  /** Default delay before `onPending`. Default 100. */
  pendingTimeout?: number;
  /** Query parameters added to the URL (plain objects are sent as JSON). Default `{}`. */
  customParams?: Record<string, unknown>;
  /**
   * WebSocket implementation to use instead of the global one (e.g. the
   * `ws` package on Node.js 20). crosswire extension.
   */
  WebSocket?: new (url: string) => WebSocketLike;
  /**
   * Missed-message recovery (crosswire extension, off by default): connect
   * with `cwRecovery=1`, keep the last position of every room, resume from
   * them on every reconnection, report each room's recovery with the
   * `recovery` event, and give room messages their position as the
   * listener's second argument ({@link MessageMeta}). With it on, pushes
   * named `_cw_joined`, `_cw_left` or `recovery` never reach listeners.
   */
  recovery?: boolean;
  /**
   * Room presence (crosswire extension, off by default): connect with
   * `cwPresence=1`, keep the members of every room the connection's id
   * joins, and report them with the `presence` event (pushes named
   * `_cw_presence_state`, `_cw_presence` or `presence` never reach
   * listeners).
   */
  presence?: boolean;
}

/** Where a room message stands in its room's history (recovery on). */
export interface RoomPosition {
  /** The room's namespace. */
  ns: string;
  /** The room. */
  room: string;
  /** The history's generation; changes whenever the server lost the history. */
  epoch: string;
  /** The message's number within the epoch, from 1 (0: before the first). */
  offset: number;
}

/**
 * Second argument of a server event listener for a room message with a
 * position (recovery on).
 */
export interface MessageMeta extends RoomPosition {
  /** Whether the message was sent again after a reconnection (it was missed). */
  recovered: boolean;
}

/** A member of a room (presence on): a socket id on a node. */
export interface PresenceMember {
  id: string;
  node: string;
  /** What the server's application set about it (null when nothing). */
  info: unknown;
}

/** A room's members after a change (presence on). */
export interface PresenceReport {
  ns: string;
  room: string;
  /** Every member, sorted by id. */
  members: PresenceMember[];
  /** What changed; null when the whole list was (re)received. */
  change: { op: 'join' | 'leave'; member: PresenceMember } | null;
}

/** How the recovery of one room went, after the connector (re)joined it. */
export interface RecoveryReport extends RoomPosition {
  /**
   * `none`: no position was given for this room (a first join);
   * `complete`: every missed message was delivered (`recovered` of them),
   * before this report; `incomplete`: they could not be, the application
   * must reload its state (see `reason`).
   */
  status: 'none' | 'complete' | 'incomplete';
  /** Why an incomplete recovery failed; null otherwise. */
  reason: 'epoch_changed' | 'too_old' | 'unavailable' | null;
  /** How many messages were delivered again. */
  recovered: number;
}

/** What the connector needs from a WebSocket implementation. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}

/** Why a callback or promise did not get a reply. */
export interface EmitError {
  error: string;
  /**
   * WS_NOT_OPEN: not connected when sending; CALLBACK_TIMEOUT: no reply in
   * time; WS_CLOSED: the connection went before the reply (crosswire);
   * INVALID_OPTIONS: invalid timeouts (emitWithPromise only, crosswire).
   */
  errorCode?: 'WS_NOT_OPEN' | 'CALLBACK_TIMEOUT' | 'WS_CLOSED' | 'INVALID_OPTIONS';
}

export interface EmitOptions {
  /** Reply timeout for this call (falsy: the instance default). */
  callbackTimeout?: number;
  /** Delay before onPending (falsy: the instance default). */
  pendingTimeout?: number;
  /** Called once when no reply came within pendingTimeout (< callbackTimeout). */
  onPending?: () => void;
}

export type EmitResult<T = any> =
  | { success: true; data: T }
  | ({ success: false } & EmitError);

export interface ReconnectInfo {
  /** Attempt number since the last successful open. */
  repeat: number;
  /** Milliseconds until the attempt. */
  timeout: number;
}

/** Arguments of the connector's own events. */
export interface LifecycleEvents {
  open: (event: any) => void;
  close: (event: { code: number; reason: string; wasClean?: boolean }) => void;
  error: (event: any) => void;
  message: (data: any) => void;
  ping: () => void;
  /** Round-trip time of the heartbeat, in ms. */
  pong: (rttMs: number) => void;
  'pong-timeout': () => void;
  reconnect: (info: ReconnectInfo) => void;
  'repeat-limit': (repeatLimit: number) => void;
  /** With `recovery: true`: a room was (re)joined; how its recovery went (crosswire). */
  recovery: (report: RecoveryReport) => void;
  /** With `presence: true`: the members of a room changed (crosswire). */
  presence: (report: PresenceReport) => void;
}

/**
 * Payload types of the events the server pushes, by event name: an
 * interface such as `{ roomMessage: { from: string; text: string } }`.
 */
export type EventMap = Record<string, any>;

/** The event map of an untyped connector: any event name, any payload. */
export interface DefaultEvents {
  [event: string]: any;
}

/**
 * Names of server events in `Events`, the connector's own events excluded
 * (pushes with those names never reach listeners; `recovery` only when the
 * recovery option is on).
 */
export type ServerEventName<Events extends EventMap> = Exclude<keyof Events, keyof LifecycleEvents> & string;

/**
 * The connector. `Events` types the payloads of the events the server
 * pushes (crosswire extension, types only):
 *
 * ```ts
 * interface ChatEvents {
 *   roomMessage: { from: string; text: string };
 *   serverTime: number;
 * }
 * const c = new WebSocketConnector<ChatEvents>({ url });
 * c.on('roomMessage', (m) => console.log(m.from, m.text)); // m is typed
 * ```
 *
 * Without a type argument every event name is accepted and payloads are `any`.
 *
 * With `recovery: true`, listeners of room messages get their position too:
 *
 * ```ts
 * const c = new WebSocketConnector<ChatEvents>({ url, recovery: true });
 * c.on('roomMessage', (m, meta) => show(m, meta?.recovered ?? false));
 * c.on('recovery', (r) => { if (r.status === 'incomplete') reload(r.room, r.reason); });
 * ```
 */
export declare class WebSocketConnector<Events extends EventMap = DefaultEvents> {
  constructor(options: WebSocketConnectorOptions);

  /** The effective options (defaults merged with the given ones). */
  readonly options: Required<Omit<WebSocketConnectorOptions, 'WebSocket' | 'repeatLimit' | 'recovery' | 'presence'>> & {
    presence?: boolean;
    repeatLimit: number | null;
    recovery?: boolean;
  };
  /** The current WebSocket, or null between attempts. */
  readonly ws: WebSocketLike | null;
  /** Reconnection attempts since the last successful open. */
  readonly repeat: number;

  on<K extends keyof LifecycleEvents>(event: K, listener: LifecycleEvents[K], tag?: unknown): void;
  /** `meta` is given for a room message with a position (recovery on). */
  on<K extends ServerEventName<Events>>(
    event: K,
    listener: (payload: Events[K], meta?: MessageMeta) => void,
    tag?: unknown,
  ): void;
  once<K extends keyof LifecycleEvents>(event: K, listener: LifecycleEvents[K], tag?: unknown): void;
  once<K extends ServerEventName<Events>>(
    event: K,
    listener: (payload: Events[K], meta?: MessageMeta) => void,
    tag?: unknown,
  ): void;
  /** Removes all listeners of `event`, those with this function, or those with this tag. */
  off(event: keyof LifecycleEvents | ServerEventName<Events>, listenerOrTag?: unknown): void;

  emit(
    event: string,
    data: unknown,
    callback?: (error: EmitError | null, payload: any) => void,
    options?: EmitOptions,
  ): void;
  emitWithPromise<T = any>(event: string, data: unknown, options?: EmitOptions): Promise<EmitResult<T>>;

  /** Drops the connection (close 4000) and schedules a new attempt. */
  reconnect(repeatReset?: boolean): void;
  /** Whether attempts were made since the last successful open. */
  reconnecting(): boolean;
  /** Closes with 4001 and stops reconnecting; connect() opens again. */
  manualClose(): void;
  /** Connects now (after manualClose, or instead of waiting for a scheduled attempt). crosswire extension. */
  connect(): void;
  /**
   * With recovery on: the positions the next connection resumes from, most
   * recently updated first, at most 256 (crosswire extension).
   */
  recoveryPositions(): RoomPosition[];
  /** The members of a room as the connector knows them (presence on). */
  presenceMembers(ns: string, room: string): PresenceMember[];
  setPingInterval(newInterval: number, immediate?: boolean): void;
  getPingInterval(): number;
}

export default WebSocketConnector;
