//! Missed-message recovery from the client's side, over real sockets to a
//! real node keeping the history of namespace `chat`: the connector resumes
//! by itself after its connection is dropped, its handlers get what was
//! missed (marked as recovered) before anything new, each message once and
//! in order, and it reports per room how the recovery went; with recovery
//! off nothing of this exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::history::HistoryConfig;
use crosswire::{Node, Socket};
use crosswire_client::crosswire_protocol::history::parse_resume;
use crosswire_client::{
    ClientEvent, Connector, ConnectorOptions, EventStream, GapReason, Joined, Meta, RecoveryStatus,
    RoomPosition,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// What the application saw, in the order it saw it.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A `m` message: its payload and what its [`Meta`] said.
    Message(u64, Meta),
    /// A recovery report.
    Report(Joined),
    /// A `sync` event pushed to the socket alone.
    Sync,
    /// A handler of `_cw_joined` / `_cw_left` ran: never expected.
    Leak(String),
}

/// The recovery parameters of one connection's URL, as the node saw them.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    recovery: Option<String>,
    resume: Option<String>,
}

/// A node keeping the history of `chat`. A connection with `?id=` is bound
/// to that id and joins room `r1` of `chat` once the test lets it through
/// the gate (the first one passes at once), like an application that checks
/// something first: the test sends the messages the client misses before
/// letting its reconnection in.
struct ChatNode {
    node: Node,
    addr: SocketAddr,
    /// Each connection's recovery parameters, as it arrives.
    queries: mpsc::UnboundedReceiver<Query>,
    /// Each connection's socket, once bound and in the room.
    joined: mpsc::UnboundedReceiver<Socket>,
    gate: Arc<Semaphore>,
}

async fn chat_node(config: HistoryConfig) -> ChatNode {
    let (node, addr) = start(Node::builder().history("chat", config)).await;
    let (qtx, queries) = mpsc::unbounded_channel();
    let (jtx, joined) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(1));
    let pass = gate.clone();
    node.on_connection(move |socket, hs| {
        let _ = qtx.send(Query {
            recovery: hs.param("cwRecovery").map(str::to_owned),
            resume: hs.param("cwResume").map(str::to_owned),
        });
        let (pass, jtx) = (pass.clone(), jtx.clone());
        async move {
            let Ok(permit) = pass.acquire().await else {
                return;
            };
            permit.forget();
            let (Some(node), Some(id)) = (socket.node(), hs.param("id")) else {
                return;
            };
            node.set_user_socket(id, &socket).unwrap();
            node.join_room("chat", "r1", id).unwrap();
            let _ = jtx.send(socket);
        }
    });
    ChatNode {
        node,
        addr,
        queries,
        joined,
        gate,
    }
}

impl ChatNode {
    fn send(&self, range: std::ops::RangeInclusive<u64>) {
        for n in range {
            self.node.to_room("chat", "r1").emit("m", &n).unwrap();
        }
    }

    /// Drops the connection of `socket` without a close frame (the client
    /// sees 1006 and reconnects by itself) and waits until the node let go
    /// of id `a` (and so of its room membership).
    async fn drop_connection(&self, socket: &Socket, events: &mut EventStream) {
        socket.terminate();
        let mut closed = false;
        loop {
            let e = next(events).await;
            no_system_push(std::slice::from_ref(&e));
            match e {
                ClientEvent::Close { code, .. } => {
                    assert_eq!(code, 1006);
                    closed = true;
                }
                ClientEvent::Reconnect(_) if closed => break,
                _ => {}
            }
        }
        wait_until(|| self.node.get_socket("a").is_none()).await;
    }
}

/// A connector as `a`, whose handlers report to the returned channel.
fn client(addr: SocketAddr, recovery: bool) -> (Connector, mpsc::UnboundedReceiver<Seen>) {
    let c = Connector::new(opts(addr).param("id", "a").recovery(recovery)).unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let t = tx.clone();
    c.on("m", move |n: u64, meta: Meta| {
        let _ = t.send(Seen::Message(n, meta));
    })
    .unwrap();
    let t = tx.clone();
    c.on("sync", move || {
        let _ = t.send(Seen::Sync);
    })
    .unwrap();
    for system in ["_cw_joined", "_cw_left"] {
        let t = tx.clone();
        c.on(system, move |payload: &Value| {
            let _ = t.send(Seen::Leak(format!("{system}: {payload}")));
        })
        .unwrap();
    }
    c.on_recovery(move |report| {
        let _ = tx.send(Seen::Report(report.clone()));
    });
    (c, seen)
}

fn live(n: u64, epoch: &str) -> Seen {
    Seen::Message(
        n,
        Meta {
            position: Some(RoomPosition::new("chat", "r1", epoch, n)),
            recovered: false,
        },
    )
}

fn replayed(n: u64, epoch: &str) -> Seen {
    Seen::Message(
        n,
        Meta {
            position: Some(RoomPosition::new("chat", "r1", epoch, n)),
            recovered: true,
        },
    )
}

/// The first report of a connector that never was in the room.
async fn first_report(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Joined {
    match recv(seen).await {
        Seen::Report(j) => {
            assert_eq!(
                (j.ns.as_str(), j.room.as_str(), j.recovery, j.offset),
                ("chat", "r1", RecoveryStatus::None, 0),
                "{j:?}"
            );
            j
        }
        other => panic!("expected the first recovery report, got {other:?}"),
    }
}

/// Every event the stream holds now.
fn drain(events: &mut EventStream) -> Vec<ClientEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

fn no_system_push(events: &[ClientEvent]) {
    for e in events {
        if let ClientEvent::Push { event, .. } = e {
            assert!(!event.starts_with("_cw_"), "{e:?} reached the stream");
        }
    }
}

#[tokio::test]
async fn a_dropped_connector_resumes_by_itself_and_handles_what_it_missed_once_in_order_before_new_messages(
) {
    let mut chat = chat_node(HistoryConfig::default()).await;
    let (c, mut seen) = client(chat.addr, true);
    assert!(c.url().ends_with("?id=a&cwRecovery=1"), "{}", c.url());
    let mut events = c.subscribe();
    c.start();
    assert_eq!(
        recv(&mut chat.queries).await,
        Query {
            recovery: Some("1".into()),
            resume: None
        }
    );
    let epoch = first_report(&mut seen).await.epoch;
    let socket = recv(&mut chat.joined).await;
    chat.send(1..=3);
    for n in 1..=3 {
        assert_eq!(recv(&mut seen).await, live(n, &epoch));
    }

    // Away: the connection drops, five messages are sent meanwhile.
    chat.drop_connection(&socket, &mut events).await;
    chat.send(4..=8);
    // The connector came back by itself, resuming from the last position.
    let query = recv(&mut chat.queries).await;
    assert_eq!(query.recovery.as_deref(), Some("1"));
    let resume = parse_resume(query.resume.as_deref().expect("no cwResume")).unwrap();
    assert_eq!(resume, [RoomPosition::new("chat", "r1", epoch.as_str(), 3)]);
    chat.gate.add_permits(1);

    // The missed messages, marked, then the report, then live ones.
    for n in 4..=8 {
        assert_eq!(recv(&mut seen).await, replayed(n, &epoch));
    }
    match recv(&mut seen).await {
        Seen::Report(j) => assert_eq!(
            (
                j.recovery,
                j.reason,
                j.recovered,
                j.epoch.as_str(),
                j.offset
            ),
            (RecoveryStatus::Complete, None, 5, epoch.as_str(), 8)
        ),
        other => panic!("expected the recovery report, got {other:?}"),
    }
    let _socket = recv(&mut chat.joined).await;
    chat.send(9..=11);
    for n in 9..=11 {
        assert_eq!(recv(&mut seen).await, live(n, &epoch));
    }
    assert!(seen.try_recv().is_err(), "nothing else was handled");
    assert_eq!(
        c.room_positions(),
        [RoomPosition::new("chat", "r1", epoch.as_str(), 11)]
    );
    let events = drain(&mut events);
    no_system_push(&events);
    let reports: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Recovery(j) => Some((j.recovery, j.recovered)),
            _ => None,
        })
        .collect();
    assert_eq!(reports, [(RecoveryStatus::Complete, 5)]);
}

#[tokio::test]
async fn a_position_the_history_no_longer_covers_is_reported_incomplete_and_nothing_is_replayed() {
    let mut chat = chat_node(HistoryConfig::new(2, Duration::from_secs(60))).await;
    let (c, mut seen) = client(chat.addr, true);
    let mut events = c.subscribe();
    c.start();
    recv(&mut chat.queries).await;
    // It received nothing yet: its position is the one the node gave at join.
    let epoch = first_report(&mut seen).await.epoch;
    let socket = recv(&mut chat.joined).await;

    chat.drop_connection(&socket, &mut events).await;
    chat.send(1..=5); // the room keeps the last 2
    let query = recv(&mut chat.queries).await;
    let resume = parse_resume(query.resume.as_deref().expect("no cwResume")).unwrap();
    assert_eq!(resume, [RoomPosition::new("chat", "r1", epoch.as_str(), 0)]);
    chat.gate.add_permits(1);

    match recv(&mut seen).await {
        Seen::Report(j) => assert_eq!(
            (j.recovery, j.reason, j.recovered, j.offset),
            (RecoveryStatus::Incomplete, Some(GapReason::TooOld), 0, 5)
        ),
        other => panic!("expected an incomplete recovery report, got {other:?}"),
    }
    let _socket = recv(&mut chat.joined).await;
    chat.send(6..=6);
    assert_eq!(recv(&mut seen).await, live(6, &epoch));
    assert!(seen.try_recv().is_err(), "nothing else was handled");
    no_system_push(&drain(&mut events));
}

#[tokio::test]
async fn a_room_the_node_removes_the_connector_from_is_forgotten_and_never_resumed() {
    let mut chat = chat_node(HistoryConfig::default()).await;
    let (c, mut seen) = client(chat.addr, true);
    let mut events = c.subscribe();
    c.start();
    recv(&mut chat.queries).await;
    first_report(&mut seen).await;
    let socket = recv(&mut chat.joined).await;
    assert_eq!(c.room_positions().len(), 1);

    chat.node.leave_room("chat", "r1", "a").unwrap();
    // Frames are handled in order: once `sync` is, `_cw_left` was.
    socket.emit("sync", &()).unwrap();
    assert_eq!(recv(&mut seen).await, Seen::Sync);
    assert!(c.room_positions().is_empty());

    chat.drop_connection(&socket, &mut events).await;
    let query = recv(&mut chat.queries).await;
    assert_eq!(
        query,
        Query {
            recovery: Some("1".into()),
            resume: None
        }
    );
    chat.gate.add_permits(1);
    // Back in the room: a fresh start, not a recovery.
    match recv(&mut seen).await {
        Seen::Report(j) => assert_eq!(j.recovery, RecoveryStatus::None),
        other => panic!("expected a recovery report, got {other:?}"),
    }
    assert!(seen.try_recv().is_err(), "nothing else was handled");
    no_system_push(&drain(&mut events));
}

#[tokio::test]
async fn with_recovery_off_the_connector_is_the_original_one() {
    let mut chat = chat_node(HistoryConfig::default()).await;
    assert!(!ConnectorOptions::default().recovery);
    let (c, mut seen) = client(chat.addr, false);
    assert!(!c.url().contains("cwRecovery"), "{}", c.url());
    let (ftx, mut frames) = mpsc::unbounded_channel();
    c.on_message(move |text| {
        let _ = ftx.send(text.to_owned());
    });
    let mut events = c.subscribe();
    c.start();
    let plain = Query {
        recovery: None,
        resume: None,
    };
    assert_eq!(recv(&mut chat.queries).await, plain);
    let socket = recv(&mut chat.joined).await;
    chat.send(1..=1);
    assert_eq!(recv(&mut frames).await, r#"{"event":"m","payload":1}"#);
    assert_eq!(recv(&mut seen).await, Seen::Message(1, Meta::default()));

    chat.drop_connection(&socket, &mut events).await;
    chat.send(2..=3);
    assert_eq!(recv(&mut chat.queries).await, plain);
    chat.gate.add_permits(1);
    let _socket = recv(&mut chat.joined).await;
    chat.send(4..=4);
    // What was sent while away is gone, as with the original.
    assert_eq!(recv(&mut frames).await, r#"{"event":"m","payload":4}"#);
    assert_eq!(recv(&mut seen).await, Seen::Message(4, Meta::default()));
    assert!(seen.try_recv().is_err(), "nothing else was handled");
    assert!(frames.try_recv().is_err(), "no other frame arrived");
    assert!(c.room_positions().is_empty());
    let events = drain(&mut events);
    no_system_push(&events);
    assert!(
        !events.iter().any(|e| matches!(e, ClientEvent::Recovery(_))),
        "{events:?}"
    );
}
