//! The cross-node system tests that every bus runs: three nodes of one
//! cluster, a WebSocket client on each, and
//!
//! - [`send_paths`]: every send path across nodes (broadcast, to one socket
//!   id, to several ids with an unknown one among them, a room broadcast
//!   with an exclusion, local-only sends), exact frames, nothing extra;
//! - [`cross_server_calls`]: targeted calls, replies collected from all,
//!   except-self, payloads round-tripped, and the timeouts when a target
//!   does not answer or does not exist;
//! - [`cluster_counts`]: the cluster-wide queries (room counts, sockets,
//!   room members, where a socket is), before and after a leave;
//! - [`crash`]: one node dies without a goodbye; the survivors drop it from
//!   `live_nodes()` by the member timeout only, and `expect_all()` then
//!   completes with the survivors.
//!
//! The test files of each bus crate include this file with
//! `#[path = "../../crosswire-test-support/suites/cross_node.rs"] mod cross_node;`
//! (it needs crosswire, which the support library cannot depend on) and call
//! [`run_all`] with a `make` closure: `make(name)` gives a builder with the
//! bus, the server name, the codec and fast membership set, plus whatever
//! option a run is about (a routing mode, a signed bus): the suite builds
//! the node, registers its handlers and listens on 127.0.0.1:0. Each
//! scenario starts its own nodes and shuts them down at its end, so the
//! scenarios can share the bus servers of one test.
//!
//! The membership set by `make` must announce at least every 200 ms and
//! drop a silent member after at least 500 ms (see [`crash`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crosswire::{CrossReply, CrossServerMessage, Match, Node, NodeBuilder, RoomSend};
use crosswire_test_support::{
    closed, connect, eventually, eventually_async, next_text, nothing_more, within, Ws,
};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Upper bound of every single wait of the suite.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The node names of every scenario.
const NAMES: [&str; 3] = ["n1", "n2", "n3"];

/// Runs every scenario, one after the other, each on fresh nodes.
pub async fn run_all(make: impl Fn(&str) -> BoxFuture<'static, NodeBuilder>) {
    send_paths(&make).await;
    cross_server_calls(&make).await;
    cluster_counts(&make).await;
    crash(&make).await;
}

/// The suite's nodes on the in-memory bus `hub`, in `codec`, announcing
/// every 100 ms and dropped after 1 s of silence.
pub fn on_memory(
    hub: crosswire::bus::MemoryHub,
    codec: crosswire::protocol::envelope::Codec,
) -> impl Fn(&str) -> BoxFuture<'static, NodeBuilder> {
    move |name: &str| -> BoxFuture<'static, NodeBuilder> {
        let builder = Node::builder()
            .server_name(name)
            .codec(codec)
            .bus(hub.bus())
            .membership(Duration::from_millis(100), Duration::from_millis(1000));
        Box::pin(async move { builder })
    }
}

/// The same nodes as `make`'s, routing by host (`Routing::ByHost`).
pub fn by_host(
    make: impl Fn(&str) -> BoxFuture<'static, NodeBuilder>,
) -> impl Fn(&str) -> BoxFuture<'static, NodeBuilder> {
    move |name: &str| -> BoxFuture<'static, NodeBuilder> {
        let builder = make(name);
        Box::pin(async move { builder.await.routing(crosswire::Routing::ByHost) })
    }
}

/// Builds the node, binds `?id=` connections to that socket id, registers
/// the suite's cross-server handlers, listens and waits until it is ready.
///
/// Handlers: `who` replies with the node's name, `echo` with the payload,
/// `silent` never replies.
async fn start(builder: NodeBuilder) -> (Node, SocketAddr) {
    let node = builder.build().unwrap();
    node.on_connection(|socket, hs| async move {
        if let (Some(node), Some(id)) = (socket.node(), hs.param("id")) {
            node.set_user_socket(id, &socket).unwrap();
        }
    });
    let name = node.server_name().to_owned();
    node.on_cross_server(
        "who",
        move |_m: CrossServerMessage, r: Option<CrossReply>| {
            let name = name.clone();
            async move { r.unwrap().send(&name).unwrap() }
        },
    )
    .unwrap();
    node.on_cross_server(
        "echo",
        |m: CrossServerMessage, r: Option<CrossReply>| async move {
            r.unwrap().send(&m.payload).unwrap()
        },
    )
    .unwrap();
    node.on_cross_server(
        "silent",
        |_m: CrossServerMessage, _r: Option<CrossReply>| async {},
    )
    .unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    within(LIMIT, node.ready()).await;
    (node, addr)
}

/// Three started nodes that all see each other as live.
struct Cluster {
    nodes: Vec<(Node, SocketAddr)>,
}

impl Cluster {
    async fn start(make: &impl Fn(&str) -> BoxFuture<'static, NodeBuilder>) -> Cluster {
        let mut nodes = Vec::new();
        for name in NAMES {
            nodes.push(start(make(name).await).await);
        }
        let c = Cluster { nodes };
        c.wait_members(&NAMES).await;
        c
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i].0
    }

    /// A client of node `i`, bound to socket id `id`.
    async fn client(&self, i: usize, id: &str) -> Ws {
        let (node, addr) = &self.nodes[i];
        client(node, *addr, id).await
    }

    /// Waits until every node lists exactly `names` as live.
    async fn wait_members(&self, names: &[&str]) {
        for (node, _) in &self.nodes {
            eventually(LIMIT, "membership", || node.live_nodes() == names).await;
        }
    }

    async fn ready(&self) {
        for (node, _) in &self.nodes {
            within(LIMIT, node.ready()).await;
        }
    }

    async fn shutdown(self) {
        for (node, _) in &self.nodes {
            within(LIMIT, node.shutdown(Duration::from_secs(1))).await;
        }
    }
}

/// A client of `node` at `addr`, bound to socket id `id`.
async fn client(node: &Node, addr: SocketAddr, id: &str) -> Ws {
    let ws = connect(addr, &format!("?id={id}")).await;
    eventually(LIMIT, "socket bound", || node.get_socket(id).is_some()).await;
    ws
}

fn frame(event: &str, payload: &str) -> String {
    format!(r#"{{"event":"{event}","payload":{payload}}}"#)
}

/// The replying nodes of a result and their payloads, in name order.
fn replies(r: &crosswire::CrossServerResult) -> BTreeMap<String, Option<Value>> {
    (r.responses.iter())
        .map(|(node, data)| (node.clone(), data.payload.clone()))
        .collect()
}

/// `who` replies of `nodes`: each its own name.
fn names(nodes: &[&str]) -> BTreeMap<String, Option<Value>> {
    nodes
        .iter()
        .map(|n| (n.to_string(), Some(json!(n))))
        .collect()
}

/// Every send path across nodes: n1, n2, n3 with clients a, b, c.
pub async fn send_paths(make: &impl Fn(&str) -> BoxFuture<'static, NodeBuilder>) {
    let cl = Cluster::start(make).await;
    let mut a = cl.client(0, "a").await;
    let mut b = cl.client(1, "b").await;
    let mut c = cl.client(2, "c").await;

    cl.node(0).broadcast("news", &json!({"n": 1})).unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(next_text(ws).await, frame("news", r#"{"n":1}"#));
    }
    // One socket on another node.
    cl.node(1).to_socket_id("c", "pm", &"hello").unwrap();
    assert_eq!(next_text(&mut c).await, frame("pm", r#""hello""#));
    // Several ids over two other nodes, one of them unknown.
    cl.node(2)
        .to_socket_ids(&["a", "b", "ghost"], "multi", &[1, 2])
        .unwrap();
    assert_eq!(next_text(&mut a).await, frame("multi", "[1,2]"));
    assert_eq!(next_text(&mut b).await, frame("multi", "[1,2]"));

    // A room over the three nodes (a name with a dot, which some buses
    // must escape), b excluded.
    for (i, id) in [(0, "a"), (1, "b"), (2, "c")] {
        cl.node(i).join_room("chat", "r.1", id).unwrap();
    }
    cl.ready().await;
    cl.node(0)
        .broadcast_to_room(
            "chat",
            "r.1",
            "say",
            &json!({"t": "yo"}),
            RoomSend::new().exclude(["b"]),
        )
        .unwrap();
    assert_eq!(next_text(&mut a).await, frame("say", r#"{"t":"yo"}"#));
    assert_eq!(next_text(&mut c).await, frame("say", r#"{"t":"yo"}"#));
    // Local only: nothing crosses.
    cl.node(0).broadcast_local("local", &1).unwrap();
    cl.node(0)
        .broadcast_to_room("chat", "r.1", "localroom", &1, RoomSend::new().local_only())
        .unwrap();
    assert_eq!(next_text(&mut a).await, frame("local", "1"));
    assert_eq!(next_text(&mut a).await, frame("localroom", "1"));
    // b and c got nothing of the above: the next frame each sees is this
    // one, and nothing follows it.
    cl.node(0).broadcast("after", &0).unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(next_text(ws).await, frame("after", "0"));
    }
    for ws in [&mut a, &mut b, &mut c] {
        nothing_more(ws).await;
    }
    cl.shutdown().await;
}

/// Cross-server calls between n1, n2 and n3: exact reply sets.
pub async fn cross_server_calls(make: &impl Fn(&str) -> BoxFuture<'static, NodeBuilder>) {
    let cl = Cluster::start(make).await;
    let n1 = cl.node(0);
    let call = |event: &str, payload: Value| n1.emit_cross_server(event, &payload).unwrap();

    // Targeted: one node, then two.
    let r = call("who", json!(1)).to(["n3"]).collect().await.unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(replies(&r), names(&["n3"]));
    let r = call("who", json!(1))
        .to(["n2", "n3"])
        .collect()
        .await
        .unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(replies(&r), names(&["n2", "n3"]));
    // Replies collected from every live node, this one included.
    let r = call("who", json!(1)).expect_all().collect().await.unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(replies(&r), names(&NAMES));
    assert_eq!((r.received, r.unresponded_count), (3, 0));
    // Every node but this one.
    let r = call("who", json!(1))
        .except_self()
        .expect(2)
        .collect()
        .await
        .unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(replies(&r), names(&["n2", "n3"]));
    let r = call("who", json!(1))
        .except_self()
        .expect_all()
        .collect()
        .await
        .unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(replies(&r), names(&["n2", "n3"]));
    // The payload crosses the bus both ways unchanged.
    let payload = json!({"s": "é\"\n", "a": [1, -2, 3.5, null, true], "o": {"k": {}}});
    let r = call("echo", payload.clone())
        .to(["n2"])
        .collect()
        .await
        .unwrap();
    assert_eq!(
        replies(&r),
        BTreeMap::from([("n2".to_owned(), Some(payload))])
    );

    // A target that does not answer: the call ends at its timeout, with
    // what came.
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let r = call("silent", json!(1))
        .to(["n2"])
        .timeout(timeout)
        .collect()
        .await
        .unwrap();
    assert!(started.elapsed() >= timeout);
    assert!(!r.success, "{r:?}");
    assert!(r.responses.is_empty(), "{r:?}");
    assert_eq!(r.unresponded_count, 1);
    // A target that does not exist, next to one that answers.
    let r = call("who", json!(1))
        .to(["n2", "ghost"])
        .timeout(timeout)
        .collect()
        .await
        .unwrap();
    assert!(!r.success, "{r:?}");
    assert_eq!(replies(&r), names(&["n2"]));
    assert_eq!(r.unresponded_count, 1);
    // More replies expected than nodes: all of them, then the timeout.
    let r = call("who", json!(1))
        .expect(4)
        .timeout(timeout)
        .collect()
        .await
        .unwrap();
    assert!(!r.success, "{r:?}");
    assert_eq!(replies(&r), names(&NAMES));
    assert_eq!(r.unresponded_count, 1);
    // Nothing is left pending anywhere.
    for (node, _) in &cl.nodes {
        eventually(LIMIT, "no pending call", || {
            node.pending_cross_server_calls() == 0
        })
        .await;
    }
    cl.shutdown().await;
}

/// (id, node) pairs of a query answer, sorted.
fn placed(sockets: &[crosswire::ClusterSocket]) -> Vec<(String, String)> {
    let mut v: Vec<_> = (sockets.iter())
        .map(|s| (s.id.clone(), s.node.clone()))
        .collect();
    v.sort();
    v
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Cluster-wide counts and socket queries over n1, n2, n3: a on n1, b on
/// n2, c and d on n3; a, b, c in room `chat/r.1`, d in `chat/r2`.
pub async fn cluster_counts(make: &impl Fn(&str) -> BoxFuture<'static, NodeBuilder>) {
    let cl = Cluster::start(make).await;
    let _a = cl.client(0, "a").await;
    let _b = cl.client(1, "b").await;
    let _c = cl.client(2, "c").await;
    let _d = cl.client(2, "d").await;
    for (i, id) in [(0, "a"), (1, "b"), (2, "c")] {
        cl.node(i).join_room("chat", "r.1", id).unwrap();
    }
    cl.node(2).join_room("chat", "r2", "d").unwrap();
    cl.ready().await;
    let all = NAMES.map(str::to_owned).to_vec();

    // Local figures.
    assert_eq!(cl.node(2).connection_count(), 2);
    assert_eq!(
        cl.node(2)
            .socket_count_in_room("chat", Some("r.1"), Match::Exact),
        1
    );
    // Cluster-wide, asked from each node in turn.
    let counts = cl.node(0).query().room_counts("chat").await.unwrap();
    assert!(!counts.partial, "{counts:?}");
    assert_eq!(counts.answered, all);
    assert!(counts.missing.is_empty());
    assert_eq!(
        counts.value,
        BTreeMap::from([("r.1".to_owned(), 3), ("r2".to_owned(), 1)])
    );
    let sockets = cl.node(1).query().sockets().await.unwrap();
    assert!(!sockets.partial, "{sockets:?}");
    assert_eq!(
        placed(&sockets.value),
        pairs(&[("a", "n1"), ("b", "n2"), ("c", "n3"), ("d", "n3")])
    );
    let members = cl
        .node(2)
        .query()
        .room_sockets("chat", "r.1")
        .await
        .unwrap();
    assert!(!members.partial, "{members:?}");
    assert_eq!(
        placed(&members.value),
        pairs(&[("a", "n1"), ("b", "n2"), ("c", "n3")])
    );
    let found = cl.node(0).query().locate("d").await.unwrap();
    assert_eq!(found.value, ["n3"]);
    let found = cl.node(0).query().locate("ghost").await.unwrap();
    assert!(found.value.is_empty() && !found.partial, "{found:?}");

    // A leave on one node shows in the counts asked on another.
    cl.node(1).leave_room("chat", "r.1", "b").unwrap();
    cl.ready().await;
    let counts = cl.node(2).query().room_counts("chat").await.unwrap();
    assert!(!counts.partial, "{counts:?}");
    assert_eq!(
        counts.value,
        BTreeMap::from([("r.1".to_owned(), 2), ("r2".to_owned(), 1)])
    );
    cl.shutdown().await;
}

/// A node on a runtime of its own, in a thread of its own: dropping that
/// runtime ends every task of the node at once (its bus connection, its
/// listener, its sockets, its announcements) without any of its shutdown
/// steps: no leave announcement, no close frames. The closest equivalent
/// of kill -9 inside one process.
struct Doomed {
    addr: SocketAddr,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Doomed {
    async fn start(builder: BoxFuture<'static, NodeBuilder>) -> Doomed {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (node, addr) = start(builder.await).await;
                let _ = ready_tx.send(addr);
                let _ = killed.await;
                drop(node); // a handle only: the node is not shut down
            });
            // Every task of the runtime, the node's included, is dropped here.
            drop(rt);
        });
        let addr = within(LIMIT, ready_rx).await.expect("the node started");
        Doomed {
            addr,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Drops the node's runtime and waits until it is gone.
    async fn crash(&mut self) {
        if let Some(kill) = self.kill.take() {
            kill.send(()).unwrap();
        }
        if let Some(thread) = self.thread.take() {
            let joined = within(LIMIT, tokio::task::spawn_blocking(move || thread.join())).await;
            assert!(matches!(joined, Ok(Ok(()))), "the node's thread ended");
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        // A failed test must not leave the thread waiting forever.
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// n3 dies without a goodbye: its client's connection ends without a close
/// frame, the survivors list it as live until its member timeout, a call
/// expecting all still waits for it until then, and afterwards
/// `expect_all()` completes with the survivors only.
pub async fn crash(make: &impl Fn(&str) -> BoxFuture<'static, NodeBuilder>) {
    let mut survivors = Vec::new();
    for name in ["n1", "n2"] {
        survivors.push(start(make(name).await).await);
    }
    let mut n3 = Doomed::start(make("n3")).await;
    let cl = Cluster { nodes: survivors };
    cl.wait_members(&NAMES).await;
    let (n1, n2) = (cl.node(0), cl.node(1));
    let (member_timeout, announce) = (n1.config().member_timeout, n1.config().announce_interval);
    assert!(
        announce <= Duration::from_millis(200) && member_timeout >= Duration::from_millis(500),
        "the suite needs fast announcements and a member timeout of 500 ms or more"
    );
    let mut a = cl.client(0, "a").await;
    let mut b = cl.client(1, "b").await;
    let mut c = connect(n3.addr, "?id=c").await;
    eventually_located(n1, "c", &["n3"]).await;
    for (i, id) in [(0, "a"), (1, "b")] {
        cl.node(i).join_room("chat", "r.1", id).unwrap();
    }
    cl.ready().await;
    let r = n1
        .emit_cross_server("who", &1)
        .unwrap()
        .expect_all()
        .collect()
        .await
        .unwrap();
    assert_eq!(replies(&r), names(&NAMES));

    n3.crash().await;
    let crashed = Instant::now();
    // No close frame: the connection just ends.
    assert_eq!(closed(&mut c).await, None, "n3 sent a close frame");
    // Still live until its member timeout (no leave was announced), so a
    // call expecting all waits for it and times out with the survivors'
    // replies.
    assert!(n1.live_nodes().contains(&"n3".to_owned()));
    let r = n1
        .emit_cross_server("who", &1)
        .unwrap()
        .expect_all()
        .timeout(Duration::from_millis(200))
        .collect()
        .await
        .unwrap();
    assert!(!r.success, "{r:?}");
    assert_eq!(replies(&r), names(&["n1", "n2"]));
    assert_eq!(r.unresponded_count, 1);
    // The survivors drop it within the member timeout (and the sweep's
    // fifth of a second), not before its last announcement expired.
    let survivors = ["n1", "n2"];
    eventually(
        member_timeout + Duration::from_secs(1),
        "the survivors drop n3",
        || n1.live_nodes() == survivors && n2.live_nodes() == survivors,
    )
    .await;
    let gone_after = crashed.elapsed();
    assert!(
        gone_after + 2 * announce >= member_timeout,
        "n3 dropped after {gone_after:?}, before its member timeout {member_timeout:?}"
    );
    // Calls expecting all now complete with the survivors, well before
    // their timeout.
    for node in [n1, n2] {
        let started = Instant::now();
        let r = node
            .emit_cross_server("who", &1)
            .unwrap()
            .expect_all()
            .timeout(LIMIT)
            .collect()
            .await
            .unwrap();
        assert!(r.success, "{r:?}");
        assert_eq!(replies(&r), names(&survivors));
        assert!(started.elapsed() < LIMIT / 2);
    }
    // The survivors still talk: a room broadcast and a complete query.
    n2.broadcast_to_room("chat", "r.1", "still", &1, RoomSend::new())
        .unwrap();
    assert_eq!(next_text(&mut a).await, frame("still", "1"));
    assert_eq!(next_text(&mut b).await, frame("still", "1"));
    let counts = n1.query().room_counts("chat").await.unwrap();
    assert!(!counts.partial, "{counts:?}");
    assert_eq!(counts.answered, survivors);
    assert_eq!(counts.value, BTreeMap::from([("r.1".to_owned(), 2)]));
    cl.shutdown().await;
}

/// Waits until a cluster query from `node` finds socket `id` on `nodes`.
async fn eventually_located(node: &Node, id: &str, nodes: &[&str]) {
    eventually_async(LIMIT, "socket located", || async {
        node.query().locate(id).await.unwrap().value == nodes
    })
    .await;
}
