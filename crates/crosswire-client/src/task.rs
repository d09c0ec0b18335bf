//! The connector's background task: it owns the socket, the timers
//! (heartbeat, reconnection, callback timeouts) and the pending callbacks,
//! and runs every listener.

use crate::close_code;
use crate::command::{guarded, Command, Completion, Request};
use crate::error::EmitError;
use crate::event::{ClientEvent, EventKind, ReconnectInfo};
use crate::recovery::{resume_url, Meta};
use crate::shared::{EventContext, ReadyState, Rejection, Shared};
use crosswire_protocol::client::{decode_server_frame, ServerFrame};
use crosswire_protocol::history::{read_position, Joined, JOINED_EVENT, LEFT_EVENT, POSITION_KEY};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type ConnectFuture = Pin<Box<dyn Future<Output = Result<Box<Ws>, WsError>> + Send>>;

struct Pending {
    done: Completion,
    on_pending: Option<Box<dyn FnOnce() + Send + 'static>>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum CallbackTimer {
    Pending(String),
    Timeout(String),
}

enum Conn {
    Idle,
    Connecting(ConnectFuture),
    Open {
        out: mpsc::UnboundedSender<Message>,
        stream: SplitStream<Ws>,
    },
    /// This client sent a close frame (pong timeout) and waits for the echo.
    Closing {
        out: mpsc::UnboundedSender<Message>,
        stream: SplitStream<Ws>,
        deadline: Instant,
        code: u16,
        reason: String,
    },
}

enum Io {
    Connected(Result<Box<Ws>, WsError>),
    Frame(Option<Result<Message, WsError>>),
}

async fn next_io(conn: &mut Conn) -> Io {
    match conn {
        Conn::Idle => std::future::pending().await,
        Conn::Connecting(fut) => Io::Connected(fut.as_mut().await),
        Conn::Open { stream, .. } | Conn::Closing { stream, .. } => Io::Frame(stream.next().await),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(crate) struct Task {
    shared: Arc<Shared>,
    /// Handed to handlers that take a `Connector`; weak, so that the task
    /// ends when the last handle is dropped.
    commands: mpsc::WeakUnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
    conn: Conn,
    /// Reconnection attempts since the last open (the original's `repeat`).
    repeat: u32,
    /// When the scheduled attempt starts (the original's `lockReconnect`).
    reconnect_at: Option<Instant>,
    /// `manual_close()` was called (the original's `forbidReconnect`).
    forbid: bool,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    /// Send time of the outstanding heartbeat.
    ping_sent_at: Option<Instant>,
    pending: HashMap<String, Pending>,
    timers: BinaryHeap<Reverse<(Instant, CallbackTimer)>>,
}

impl Task {
    pub(crate) fn new(
        shared: Arc<Shared>,
        commands: mpsc::WeakUnboundedSender<Command>,
        rx: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        Task {
            shared,
            commands,
            rx,
            conn: Conn::Idle,
            repeat: 0,
            reconnect_at: None,
            forbid: false,
            next_ping: None,
            pong_deadline: None,
            ping_sent_at: None,
            pending: HashMap::new(),
            timers: BinaryHeap::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                io = next_io(&mut self.conn) => self.io(io),
                () = sleep_until(deadline) => self.timers(),
            }
        }
        // Every handle is gone: close like a page that goes away.
        self.forbid = true;
        self.reconnect_at = None;
        self.teardown(close_code::GOING_AWAY, "client dropped");
        self.shared.registry.lock().finish();
    }

    // ----- events ------------------------------------------------------

    fn fire(&self, ev: ClientEvent) {
        let Some(kind) = ev.kind() else { return };
        let handlers = self.shared.registry.lock().take_lifecycle(kind);
        for h in handlers {
            guarded("listener", || h(&ev));
        }
        self.shared.registry.lock().publish(&ev);
    }

    fn fire_push(&self, event: String, payload: Option<Value>, meta: &Meta) {
        let handlers = self.shared.registry.lock().push_handlers(&event);
        if !handlers.is_empty() {
            let null = Value::Null;
            let cx = EventContext {
                event: &event,
                payload: payload.as_ref().unwrap_or(&null),
                meta,
                shared: &self.shared,
                commands: &self.commands,
            };
            for (id, once, h) in handlers {
                match guarded("listener", || h(&cx)) {
                    Some(Ok(())) | None => {
                        if once {
                            self.shared.registry.lock().remove_id(id);
                        }
                    }
                    Some(Err(rejection)) => self.rejected(&cx, rejection),
                }
            }
        }
        self.shared
            .registry
            .lock()
            .publish(&ClientEvent::Push { event, payload });
    }

    /// A handler refused the payload (or an argument could not be made).
    fn rejected(&self, cx: &EventContext<'_>, rejection: Rejection) {
        match rejection {
            Rejection::Decode(error) => {
                self.shared.count_rejected();
                tracing::warn!(
                    event = cx.event,
                    %error,
                    "pushed payload does not fit the handler's type: handler skipped"
                );
            }
            Rejection::Unavailable(what) => {
                tracing::debug!(
                    event = cx.event,
                    what,
                    "handler skipped: argument unavailable"
                );
            }
        }
    }

    fn set_state(&self, state: ReadyState) {
        self.shared.set_state(state);
    }

    fn set_repeat(&mut self, repeat: u32) {
        self.repeat = repeat;
        self.shared.set_repeat(repeat);
    }

    // ----- commands ----------------------------------------------------

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start => {
                if self.forbid {
                    self.forbid = false;
                    self.set_repeat(0);
                }
                if matches!(self.conn, Conn::Idle) {
                    self.reconnect_at = None;
                    self.connect();
                }
            }
            Command::Send(frame) => match &self.conn {
                Conn::Open { out, .. } => {
                    let _ = out.send(Message::text(frame));
                }
                _ => tracing::debug!("emit dropped: the connection closed meanwhile"),
            },
            Command::Request(req) => self.request(req),
            Command::Reconnect(reset) => self.reconnect(reset),
            Command::ManualClose => self.manual_close(),
            Command::PingInterval { immediate } => {
                if immediate && self.next_ping.is_some() {
                    self.next_ping = Some(Instant::now() + self.shared.ping_interval());
                }
            }
        }
    }

    fn request(&mut self, req: Request) {
        let Conn::Open { out, .. } = &self.conn else {
            req.done.complete(Err(EmitError::NotOpen));
            return;
        };
        let _ = out.send(Message::text(req.frame));
        let now = Instant::now();
        let on_pending = req.on_pending.filter(|_| req.pending_timeout < req.timeout);
        if on_pending.is_some() {
            self.timers.push(Reverse((
                now + req.pending_timeout,
                CallbackTimer::Pending(req.id.clone()),
            )));
        }
        self.timers.push(Reverse((
            now + req.timeout,
            CallbackTimer::Timeout(req.id.clone()),
        )));
        self.pending.insert(
            req.id,
            Pending {
                done: req.done,
                on_pending,
            },
        );
    }

    // ----- connection ----------------------------------------------------

    fn connect(&mut self) {
        self.set_state(ReadyState::Connecting);
        let url = if self.shared.options.recovery {
            // Every room it holds a position in, resumed (none the first time).
            let positions = self.shared.positions.lock().list();
            resume_url(&self.shared.url, &positions)
        } else {
            self.shared.url.clone()
        };
        tracing::debug!(%url, "connecting");
        self.conn = Conn::Connecting(Box::pin(async move {
            #[cfg(feature = "rustls")]
            {
                // Harmless when the application installed a provider already.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _response)| Box::new(ws))
        }));
    }

    fn io(&mut self, io: Io) {
        match io {
            Io::Connected(Ok(ws)) => self.opened(ws),
            Io::Connected(Err(e)) => {
                tracing::debug!(error = %e, "connection attempt failed");
                self.conn = Conn::Idle;
                self.set_state(ReadyState::Closed);
                self.fire(ClientEvent::Error(e.to_string()));
                self.reconnect(false);
            }
            Io::Frame(Some(Ok(msg))) => self.frame(msg),
            Io::Frame(Some(Err(e))) => self.abnormal(e.to_string()),
            Io::Frame(None) => self.abnormal("connection closed without a close frame".into()),
        }
    }

    fn opened(&mut self, ws: Box<Ws>) {
        let (sink, stream) = (*ws).split();
        let (out, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(sink, rx));
        self.conn = Conn::Open { out, stream };
        self.set_state(ReadyState::Open);
        tracing::debug!("open");
        // Listeners see `reconnecting() == true` after a reconnection, as in
        // the original; the count is reset and the heartbeat armed after.
        self.shared.rooms.lock().clear();
        self.fire(ClientEvent::Open);
        self.set_repeat(0);
        self.arm_heartbeat();
    }

    fn frame(&mut self, msg: Message) {
        let open = matches!(self.conn, Conn::Open { .. });
        match msg {
            Message::Text(text) if open => self.text(text.as_str()),
            Message::Binary(data) if open => match std::str::from_utf8(&data) {
                Ok(text) => self.text(text),
                Err(_) => tracing::debug!("binary frame is not UTF-8: ignored"),
            },
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                    None => (close_code::NO_STATUS, String::new()),
                };
                tracing::debug!(code, %reason, "closed by the node");
                match std::mem::replace(&mut self.conn, Conn::Idle) {
                    Conn::Open { out, stream } | Conn::Closing { out, stream, .. } => {
                        retire(out, stream, self.shared.options.close_timeout);
                    }
                    Conn::Idle | Conn::Connecting(_) => {}
                }
                self.closed(code, reason);
                // A clean close never reconnects by itself: the application
                // decides (server kicks and auth failures must not loop).
            }
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if self.shared.registry.lock().observed(EventKind::Message) {
            self.fire(ClientEvent::Message(text.to_owned()));
        }
        let ping_msg = &self.shared.options.ping_msg;
        if text == ping_msg {
            // A heartbeat reply counts only while a heartbeat is outstanding
            // (the original takes any frame equal to the ping string).
            if let Some(sent) = self.ping_sent_at.take() {
                self.pong_deadline = None;
                self.fire(ClientEvent::Pong(sent.elapsed()));
                self.arm_heartbeat();
            }
            return;
        }
        match decode_server_frame(text, ping_msg) {
            Some(ServerFrame::Reply {
                callback_id,
                payload,
            }) => {
                if let Some(p) = self.pending.remove(&callback_id) {
                    p.done.complete(Ok(payload));
                }
            }
            Some(ServerFrame::Event { event, payload }) => {
                if self.shared.options.presence && self.presence_frame(&event, payload.as_ref()) {
                    return;
                }
                if !self.shared.options.recovery {
                    self.fire_push(event, payload, &Meta::default());
                } else if !self.recovery_frame(&event, payload.as_ref()) {
                    let meta = self.position_of(text);
                    self.fire_push(event, payload, &meta);
                }
            }
            Some(ServerFrame::Heartbeat) | None => {}
        }
    }

    /// Presence on: keeps the members the node's presence frames tell and
    /// reports them; those frames never reach handlers of pushed events.
    /// Returns whether `event` was one.
    fn presence_frame(&self, event: &str, payload: Option<&Value>) -> bool {
        use crosswire_protocol::presence::{Change, State, CHANGE_EVENT, STATE_EVENT};
        let null = Value::Null;
        let payload = payload.unwrap_or(&null);
        let (ns, room, change) = if event == STATE_EVENT {
            let Ok(state) = State::deserialize(payload) else {
                tracing::debug!("malformed presence state: ignored");
                return true;
            };
            let members = state
                .members
                .into_iter()
                .map(|m| ((m.node.clone(), m.id.clone()), m))
                .collect();
            let key = (state.ns.clone(), state.room.clone());
            self.shared.rooms.lock().insert(key, members);
            (state.ns, state.room, None)
        } else if event == CHANGE_EVENT {
            let Ok(c) = Change::deserialize(payload) else {
                tracing::debug!("malformed presence change: ignored");
                return true;
            };
            {
                let mut rooms = self.shared.rooms.lock();
                let members = rooms.entry((c.ns.clone(), c.room.clone())).or_default();
                let key = (c.member.node.clone(), c.member.id.clone());
                match c.op {
                    crosswire_protocol::presence::Op::Join => {
                        members.insert(key, c.member.clone());
                    }
                    crosswire_protocol::presence::Op::Leave => {
                        members.remove(&key);
                    }
                }
            }
            (c.ns, c.room, Some((c.op, c.member)))
        } else {
            return false;
        };
        let members = crate::connector::sorted_members(&self.shared, &ns, &room);
        self.fire(ClientEvent::Presence(crate::PresenceReport {
            ns,
            room,
            members,
            change,
        }));
        true
    }

    /// Recovery on: handles the node's own recovery frames, which never
    /// reach handlers of pushed events. Returns whether `event` was one.
    fn recovery_frame(&self, event: &str, payload: Option<&Value>) -> bool {
        #[derive(Deserialize)]
        struct Left {
            ns: String,
            room: String,
        }
        let null = Value::Null;
        let payload = payload.unwrap_or(&null);
        if event == JOINED_EVENT {
            match Joined::deserialize(payload) {
                Ok(joined) => {
                    tracing::debug!(
                        ns = %joined.ns,
                        room = %joined.room,
                        status = ?joined.recovery,
                        reason = ?joined.reason,
                        recovered = joined.recovered,
                        "room recovery"
                    );
                    self.shared.positions.lock().set(
                        &joined.ns,
                        &joined.room,
                        &joined.epoch,
                        joined.offset,
                    );
                    self.fire(ClientEvent::Recovery(joined));
                }
                Err(error) => tracing::debug!(%error, "malformed recovery report: ignored"),
            }
            true
        } else if event == LEFT_EVENT {
            match Left::deserialize(payload) {
                Ok(left) => self.shared.positions.lock().forget(&left.ns, &left.room),
                Err(error) => tracing::debug!(%error, "malformed room departure: ignored"),
            }
            true
        } else {
            false
        }
    }

    /// Recovery on: the position a room message carries, now the one held
    /// for its room.
    fn position_of(&self, text: &str) -> Meta {
        // Most frames have none: skip the second parse for them.
        if !text.contains(POSITION_KEY) {
            return Meta::default();
        }
        match read_position(text) {
            Some((position, recovered)) => {
                self.shared.positions.lock().set(
                    &position.ns,
                    &position.room,
                    &position.epoch,
                    position.offset,
                );
                Meta {
                    position: Some(position),
                    recovered,
                }
            }
            None => Meta::default(),
        }
    }

    /// The connection broke (no close frame, read error, close handshake
    /// timeout): `error`, `close` 1006, then an automatic reconnection.
    fn abnormal(&mut self, why: String) {
        tracing::debug!(error = %why, "connection lost");
        self.conn = Conn::Idle;
        self.fire(ClientEvent::Error(why));
        self.closed(close_code::ABNORMAL, String::new());
        self.reconnect(false);
    }

    /// Bookkeeping common to every end of an open connection.
    fn closed(&mut self, code: u16, reason: String) {
        self.clear_heartbeat();
        self.fail_pending();
        self.set_state(ReadyState::Closed);
        self.fire(ClientEvent::Close { code, reason });
    }

    /// Ends the current connection or attempt from this side.
    fn teardown(&mut self, code: u16, reason: &str) {
        self.clear_heartbeat();
        match std::mem::replace(&mut self.conn, Conn::Idle) {
            Conn::Idle => {}
            // Dropping the attempt aborts it; nothing is reported.
            Conn::Connecting(_) => self.set_state(ReadyState::Closed),
            Conn::Open { out, stream } => {
                let _ = out.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })));
                retire(out, stream, self.shared.options.close_timeout);
                self.closed(code, reason.to_owned());
            }
            Conn::Closing {
                out,
                stream,
                code,
                reason,
                ..
            } => {
                retire(out, stream, self.shared.options.close_timeout);
                self.closed(code, reason);
            }
        }
    }

    fn fail_pending(&mut self) {
        self.timers.clear();
        for (callback_id, p) in self.pending.drain() {
            p.done
                .complete(Err(EmitError::Disconnected { callback_id }));
        }
    }

    /// `reconnect(reset)` (`docs/concepts.md`, "Reconnection").
    fn reconnect(&mut self, reset: bool) {
        if reset {
            self.set_repeat(0);
        }
        if self.reconnect_at.is_some() || self.forbid {
            return;
        }
        if let Some(limit) = self.shared.options.repeat_limit {
            if limit <= self.repeat {
                tracing::debug!(limit, "repeat limit reached");
                self.fire(ClientEvent::RepeatLimit(limit));
                return;
            }
        }
        self.teardown(close_code::RECONNECT, "client reconnect");
        self.set_repeat(self.repeat.saturating_add(1));
        let opts = &self.shared.options;
        let u = if opts.jitter {
            rand::random::<f64>()
        } else {
            0.0
        };
        let delay = opts.reconnect_delay(self.repeat, u);
        self.reconnect_at = Some(Instant::now() + delay);
        tracing::debug!(attempt = self.repeat, ?delay, "reconnection scheduled");
        self.fire(ClientEvent::Reconnect(ReconnectInfo {
            attempt: self.repeat,
            delay,
        }));
    }

    fn manual_close(&mut self) {
        self.forbid = true;
        self.reconnect_at = None;
        self.teardown(close_code::MANUAL_CLOSE, "client manual close");
    }

    // ----- timers ----------------------------------------------------------

    fn next_deadline(&self) -> Option<Instant> {
        let closing = match &self.conn {
            Conn::Closing { deadline, .. } => Some(*deadline),
            _ => None,
        };
        [
            self.reconnect_at,
            self.next_ping,
            self.pong_deadline,
            closing,
            self.timers.peek().map(|Reverse((at, _))| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                CallbackTimer::Timeout(callback_id) => {
                    if let Some(p) = self.pending.remove(&callback_id) {
                        p.done.complete(Err(EmitError::Timeout { callback_id }));
                    }
                }
                CallbackTimer::Pending(id) => {
                    if let Some(hook) = self.pending.get_mut(&id).and_then(|p| p.on_pending.take())
                    {
                        guarded("on_pending hook", hook);
                    }
                }
            }
        }
        if self.pong_deadline.is_some_and(|d| d <= now) {
            self.pong_timeout();
        }
        if self.next_ping.is_some_and(|d| d <= now) {
            self.ping();
        }
        if let Conn::Closing { deadline, .. } = &self.conn {
            if *deadline <= now {
                self.abnormal("close handshake timed out".into());
            }
        }
        if self.reconnect_at.is_some_and(|d| d <= now) {
            self.reconnect_at = None;
            if matches!(self.conn, Conn::Idle) {
                self.connect();
            }
        }
    }

    fn arm_heartbeat(&mut self) {
        self.ping_sent_at = None;
        self.pong_deadline = None;
        self.next_ping = Some(Instant::now() + self.shared.ping_interval());
    }

    fn clear_heartbeat(&mut self) {
        self.next_ping = None;
        self.pong_deadline = None;
        self.ping_sent_at = None;
    }

    fn ping(&mut self) {
        self.next_ping = None;
        self.fire(ClientEvent::Ping);
        if let Conn::Open { out, .. } = &self.conn {
            let now = Instant::now();
            let _ = out.send(Message::text(self.shared.options.ping_msg.clone()));
            self.ping_sent_at = Some(now);
            self.pong_deadline = Some(now + self.shared.options.pong_timeout);
        }
    }

    fn pong_timeout(&mut self) {
        self.pong_deadline = None;
        self.ping_sent_at = None;
        tracing::debug!("pong timeout");
        self.fire(ClientEvent::PongTimeout);
        if let Conn::Open { out, stream } = std::mem::replace(&mut self.conn, Conn::Idle) {
            let reason = "pong timeout";
            let _ = out.send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(close_code::PONG_TIMEOUT),
                reason: reason.into(),
            })));
            self.conn = Conn::Closing {
                out,
                stream,
                deadline: Instant::now() + self.shared.options.close_timeout,
                code: close_code::PONG_TIMEOUT,
                reason: reason.to_owned(),
            };
            self.set_state(ReadyState::Closing);
            // Replies can no longer be trusted to arrive: fail them now.
            self.fail_pending();
            // The `close` event follows the node's answer: a clean 4002 is
            // left to the application; no answer is an abnormal close.
        }
    }
}

/// Writes queued frames, flushing once per burst.
async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(msg) = rx.recv().await {
        if let Err(e) = sink.feed(msg).await {
            tracing::debug!(error = %e, "write failed");
            return;
        }
        while let Ok(msg) = rx.try_recv() {
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        if let Err(e) = sink.flush().await {
            tracing::debug!(error = %e, "flush failed");
            return;
        }
    }
}

/// Lets a finished connection complete its close handshake in the
/// background (bounded by `timeout`), then drops it.
fn retire(out: mpsc::UnboundedSender<Message>, mut stream: SplitStream<Ws>, timeout: Duration) {
    drop(out);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
    });
}
