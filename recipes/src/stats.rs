//! FAQ 12, "information about rooms or players in a distributed service":
//! room queries are local to a node, so cluster-wide numbers are a
//! cross-server broadcast whose replies are summed.
//!
//! [`install`] registers, on every node, handlers that answer with the
//! node's local numbers; [`room_member_count`], [`room_members`] and
//! [`cluster_summary`] ask every node and aggregate. The number of replies
//! to wait for is either every node the asker knows alive
//! ([`Expect::AllLive`], from crosswire's membership; the original has no
//! membership and needs the count in advance) or a fixed count
//! ([`Expect::Nodes`]). A node that does not answer in time makes the result
//! incomplete (`complete == false`, `missing > 0`), never an error.
//!
//! ```no_run
//! # async fn demo(node: crosswire::Node) -> crosswire::Result<()> {
//! use crosswire_recipes::stats::{self, Expect};
//! use std::time::Duration;
//!
//! stats::install(&node)?;
//! let count = stats::room_member_count(&node, "chat", Some("room123"), Expect::AllLive, Duration::from_secs(2)).await?;
//! if count.complete {
//!     println!("{} members in chat/room123 on {} nodes", count.total, count.per_node.len());
//! } else {
//!     println!("{} so far, {} nodes did not answer", count.total, count.missing);
//! }
//! # Ok(()) }
//! ```

use crosswire::handler::Data;
use crosswire::{CrossServerResult, Match, Node};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Cross-server event: `{"roomNamespace", "roomId"?}` → `{"count"}`, the
/// FAQ's `getSocketCountInRoom`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, ROOM_COUNT_EVENT};
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// node.join_room("chat", "r1", "u1")?;
/// let payload = serde_json::json!({"roomNamespace": "chat", "roomId": "r1"});
/// let result = node.emit_cross_server(ROOM_COUNT_EVENT, &payload)?.collect().await?;
/// assert_eq!(result.responses["n1"].payload, Some(serde_json::json!({"count": 1})));
/// # Ok(())
/// # }
/// ```
pub const ROOM_COUNT_EVENT: &str = "getSocketCountInRoom";

/// Cross-server event: `{"roomNamespace", "roomId"?}` → `{"socketIds": [...]}`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, ROOM_MEMBERS_EVENT};
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// node.join_room("chat", "r1", "u1")?;
/// let payload = serde_json::json!({"roomNamespace": "chat", "roomId": "r1"});
/// let result = node.emit_cross_server(ROOM_MEMBERS_EVENT, &payload)?.collect().await?;
/// let expected = serde_json::json!({"socketIds": ["u1"]});
/// assert_eq!(result.responses["n1"].payload, Some(expected));
/// # Ok(())
/// # }
/// ```
pub const ROOM_MEMBERS_EVENT: &str = "getRoomSocketIds";

/// Cross-server event: `{}` → the node's [`NodeStats`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, NODE_STATS_EVENT};
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// node.join_room("chat", "r1", "u1")?;
/// let payload = serde_json::json!({});
/// let result = node.emit_cross_server(NODE_STATS_EVENT, &payload)?.collect().await?;
/// let reply = result.responses["n1"].payload.clone().ok_or("no payload")?;
/// assert_eq!(reply["rooms"], 1);
/// # Ok(())
/// # }
/// ```
pub const NODE_STATS_EVENT: &str = "getNodeStats";

/// How many replies a cluster-wide query waits for.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// let within = Duration::from_secs(2);
/// let count = stats::room_member_count(&node, "chat", None, Expect::Nodes(1), within).await?;
/// assert!(count.complete);
/// assert_eq!(count.total, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One per node the asking node knows alive ([`Node::live_nodes`]).
    AllLive,
    /// Exactly this many (the original's `expectedResponses`).
    Nodes(usize),
}

/// One node's local numbers.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::stats::NodeStats;
/// let stats = NodeStats { rooms: 1, memberships: 2, ..NodeStats::default() };
/// assert_eq!(stats.connections, 0);
/// assert_eq!(serde_json::to_value(&stats).unwrap()["memberships"], 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeStats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Socket ids bound to connections.
    pub clients: usize,
    /// Rooms, over every namespace.
    pub rooms: usize,
    /// Room memberships, over every namespace.
    pub memberships: usize,
}

impl NodeStats {
    /// The local numbers of `node`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_recipes::stats::NodeStats;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("chat", "r2", "u1")?;
    /// let stats = NodeStats::of(&node);
    /// assert_eq!((stats.rooms, stats.memberships, stats.connections), (2, 2, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn of(node: &Node) -> NodeStats {
        let mut stats = NodeStats {
            connections: node.connection_count(),
            clients: node.client_count(),
            ..NodeStats::default()
        };
        for ns in node.room_namespaces() {
            stats.rooms += node.room_count(&ns, Match::Exact);
            stats.memberships += node.socket_count_in_room(&ns, None, Match::Exact);
        }
        stats
    }

    fn add(&mut self, other: &NodeStats) {
        self.connections += other.connections;
        self.clients += other.clients;
        self.rooms += other.rooms;
        self.memberships += other.memberships;
    }
}

/// Registers the three query handlers on `node`. Every node of the cluster
/// needs them (nodes without them simply do not answer).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// let short = Duration::from_millis(100);
/// let before = stats::cluster_summary(&node, Expect::Nodes(1), short).await?;
/// assert_eq!(before.missing, 1); // nobody answers yet
/// stats::install(&node)?;
/// let after = stats::cluster_summary(&node, Expect::Nodes(1), Duration::from_secs(2)).await?;
/// assert!(after.complete);
/// # Ok(())
/// # }
/// ```
pub fn install(node: &Node) -> crosswire::Result<()> {
    node.on_cross_server(ROOM_COUNT_EVENT, |node: Node, payload: Value| async move {
        let count = match room_args(&payload) {
            Some((ns, room)) => node.socket_count_in_room(ns, room, Match::Exact),
            None => 0,
        };
        json!({ "count": count })
    })?;
    node.on_cross_server(
        ROOM_MEMBERS_EVENT,
        |node: Node, payload: Value| async move {
            let ids: BTreeSet<String> = match room_args(&payload) {
                Some((ns, room)) => node
                    .room_socket_ids(ns, room, Match::Exact)
                    .into_iter()
                    .collect(),
                None => BTreeSet::new(),
            };
            json!({ "socketIds": ids })
        },
    )?;
    node.on_cross_server(NODE_STATS_EVENT, |node: Node| async move {
        Data(NodeStats::of(&node))
    })?;
    Ok(())
}

fn room_args(payload: &Value) -> Option<(&str, Option<&str>)> {
    let ns = payload.get("roomNamespace")?.as_str()?;
    let room = payload.get("roomId").and_then(Value::as_str);
    Some((ns, room))
}

/// A number summed over the nodes that answered.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, ClusterCount, Expect};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// node.join_room("chat", "r1", "u1")?;
/// let within = Duration::from_secs(2);
/// let count: ClusterCount = stats::room_member_count(&node, "chat", None, Expect::Nodes(1), within).await?;
/// assert_eq!((count.total, count.missing), (1, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterCount {
    /// The sum.
    pub total: u64,
    /// Each answering node's share.
    pub per_node: BTreeMap<String, u64>,
    /// Whether every expected node answered in time.
    pub complete: bool,
    /// Expected replies that did not come.
    pub missing: usize,
}

/// Members of room `room` of `ns` (every room of `ns` with `None`) on every
/// node, summed: the FAQ's `getSocketCountInRoom` broadcast.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::MemoryHub;
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let hub = MemoryHub::new();
/// let a = crosswire::Node::builder().server_name("a").bus(hub.bus()).build()?;
/// let b = crosswire::Node::builder().server_name("b").bus(hub.bus()).build()?;
/// stats::install(&a)?;
/// stats::install(&b)?;
/// a.ready().await;
/// b.ready().await;
/// let within = Duration::from_secs(2);
/// a.join_room("chat", "r1", "u1")?;
/// b.join_room("chat", "r1", "u2")?;
/// b.join_room("chat", "r1", "u3")?;
/// let count = stats::room_member_count(&a, "chat", Some("r1"), Expect::Nodes(2), within).await?;
/// assert_eq!(count.total, 3);
/// assert_eq!(count.per_node["b"], 2);
/// # Ok(())
/// # }
/// ```
pub async fn room_member_count(
    node: &Node,
    ns: &str,
    room: Option<&str>,
    expect: Expect,
    timeout: Duration,
) -> crosswire::Result<ClusterCount> {
    let result = ask(
        node,
        ROOM_COUNT_EVENT,
        &room_payload(ns, room),
        expect,
        timeout,
    )
    .await?;
    let per_node: BTreeMap<String, u64> = result
        .responses
        .iter()
        .map(|(server, r)| {
            let n = r
                .payload
                .as_ref()
                .and_then(|p| p.get("count"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            (server.clone(), n)
        })
        .collect();
    Ok(ClusterCount {
        total: per_node.values().sum(),
        per_node,
        complete: result.success,
        missing: result.unresponded_count,
    })
}

/// The distinct socket ids in room `room` of `ns` over every node.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// node.join_room("chat", "r1", "u1")?;
/// let within = Duration::from_secs(2);
/// let members = stats::room_members(&node, "chat", Some("r1"), Expect::Nodes(1), within).await?;
/// assert_eq!(members.socket_ids.into_iter().collect::<Vec<_>>(), ["u1"]);
/// assert_eq!(members.missing, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterMembers {
    /// The ids, each once even when it is a member on several nodes.
    pub socket_ids: BTreeSet<String>,
    /// Whether every expected node answered in time.
    pub complete: bool,
    /// Expected replies that did not come.
    pub missing: usize,
}

/// The members of room `room` of `ns` on every node (`getRoomSocketIds`,
/// cluster-wide).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::MemoryHub;
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let hub = MemoryHub::new();
/// let a = crosswire::Node::builder().server_name("a").bus(hub.bus()).build()?;
/// let b = crosswire::Node::builder().server_name("b").bus(hub.bus()).build()?;
/// stats::install(&a)?;
/// stats::install(&b)?;
/// a.ready().await;
/// b.ready().await;
/// let within = Duration::from_secs(2);
/// a.join_room("chat", "r1", "u1")?;
/// b.join_room("chat", "r1", "u1")?;
/// b.join_room("chat", "r1", "u2")?;
/// let members = stats::room_members(&a, "chat", Some("r1"), Expect::Nodes(2), within).await?;
/// assert_eq!(members.socket_ids.len(), 2); // u1 counted once
/// assert!(members.complete);
/// # Ok(())
/// # }
/// ```
pub async fn room_members(
    node: &Node,
    ns: &str,
    room: Option<&str>,
    expect: Expect,
    timeout: Duration,
) -> crosswire::Result<ClusterMembers> {
    let result = ask(
        node,
        ROOM_MEMBERS_EVENT,
        &room_payload(ns, room),
        expect,
        timeout,
    )
    .await?;
    let socket_ids = result
        .responses
        .values()
        .filter_map(|r| r.payload.as_ref()?.get("socketIds")?.as_array().cloned())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    Ok(ClusterMembers {
        socket_ids,
        complete: result.success,
        missing: result.unresponded_count,
    })
}

/// Every node's [`NodeStats`] and their sum.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// stats::install(&node)?;
/// node.join_room("chat", "r1", "u1")?;
/// let within = Duration::from_secs(2);
/// let summary = stats::cluster_summary(&node, Expect::Nodes(1), within).await?;
/// assert_eq!(summary.total, summary.nodes["n1"]);
/// assert_eq!(summary.total.memberships, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterSummary {
    /// By node.
    pub nodes: BTreeMap<String, NodeStats>,
    /// Summed over the nodes that answered.
    pub total: NodeStats,
    /// Whether every expected node answered in time.
    pub complete: bool,
    /// Expected replies that did not come.
    pub missing: usize,
}

/// Asks every node for its [`NodeStats`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::MemoryHub;
/// use crosswire_recipes::stats::{self, Expect};
/// use std::time::Duration;
/// let hub = MemoryHub::new();
/// let a = crosswire::Node::builder().server_name("a").bus(hub.bus()).build()?;
/// let b = crosswire::Node::builder().server_name("b").bus(hub.bus()).build()?;
/// stats::install(&a)?;
/// stats::install(&b)?;
/// a.ready().await;
/// b.ready().await;
/// let within = Duration::from_secs(2);
/// b.join_room("chat", "r1", "u1")?;
/// let summary = stats::cluster_summary(&a, Expect::Nodes(2), within).await?;
/// assert_eq!(summary.nodes.len(), 2);
/// assert_eq!(summary.total.rooms, 1);
/// # Ok(())
/// # }
/// ```
pub async fn cluster_summary(
    node: &Node,
    expect: Expect,
    timeout: Duration,
) -> crosswire::Result<ClusterSummary> {
    let result = ask(node, NODE_STATS_EVENT, &json!({}), expect, timeout).await?;
    let nodes: BTreeMap<String, NodeStats> = result
        .responses
        .iter()
        .filter_map(|(server, r)| {
            let stats = serde_json::from_value(r.payload.clone()?).ok()?;
            Some((server.clone(), stats))
        })
        .collect();
    let mut total = NodeStats::default();
    for s in nodes.values() {
        total.add(s);
    }
    Ok(ClusterSummary {
        nodes,
        total,
        complete: result.success,
        missing: result.unresponded_count,
    })
}

fn room_payload(ns: &str, room: Option<&str>) -> Value {
    match room {
        Some(room) => json!({ "roomNamespace": ns, "roomId": room }),
        None => json!({ "roomNamespace": ns }),
    }
}

/// A broadcast to every node, this one included, collected.
async fn ask(
    node: &Node,
    event: &str,
    payload: &Value,
    expect: Expect,
    timeout: Duration,
) -> crosswire::Result<CrossServerResult> {
    let call = node.emit_cross_server(event, payload)?.timeout(timeout);
    let call = match expect {
        Expect::AllLive => call.expect_all(),
        Expect::Nodes(n) => call.expect(n),
    };
    call.collect().await
}

/// What [`demo`] saw.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{stats, Backbone};
/// use std::time::Duration;
/// let report: stats::DemoReport = stats::demo(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(report.room.total, 4);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoReport {
    /// Members of room `chat/1000`, summed over the nodes.
    pub room: ClusterCount,
    /// Their ids.
    pub members: ClusterMembers,
    /// Every node's numbers.
    pub summary: ClusterSummary,
}

/// Three WebSocket nodes of the cluster example ([`crate::cluster`]) with
/// the statistics handlers, players `1..=6` spread over them, players 1, 2,
/// 3 and 5 in room `chat/1000`; then node `ws1` asks the cluster.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{stats, Backbone};
/// use std::time::Duration;
/// let report = stats::demo(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(report.members.socket_ids.len(), 4);
/// assert_eq!(report.summary.total.clients, 6);
/// # Ok(())
/// # }
/// ```
pub async fn demo(backbone: &crate::Backbone, within: Duration) -> crate::Result<DemoReport> {
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for name in ["ws1", "ws2", "ws3"] {
        let node = backbone.builder(name).await?.build()?;
        crate::cluster::install_ws_node(&node)?;
        install(&node)?;
        urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
        nodes.push(node);
    }
    for node in &nodes {
        crate::wait_for_live_nodes(node, 3, within).await?;
    }
    let rooms = [("1", "1000"), ("2", "1000"), ("3", "1000"), ("5", "1000")];
    let players = crate::cluster::connect_clients(&urls, 6, &rooms, within).await?;
    let asker = &nodes[0];
    let room = room_member_count(asker, "chat", Some("1000"), Expect::AllLive, within).await?;
    let members = room_members(asker, "chat", Some("1000"), Expect::AllLive, within).await?;
    let summary = cluster_summary(asker, Expect::Nodes(3), within).await?;
    drop(players);
    for node in &nodes {
        node.shutdown(Duration::from_millis(500)).await;
    }
    Ok(DemoReport {
        room,
        members,
        summary,
    })
}
