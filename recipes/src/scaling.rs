//! FAQ 4 and 5: growing a running cluster.
//!
//! **A Redis node at runtime (FAQ 4).** Every node subscribes on every Redis
//! node and publishes on one of them, so a new Redis node must be added on
//! every node. Each node registers the cross-server event [`ADD_REDIS`]
//! ([`install_add_redis`]): it adds the Redis node to its own
//! [`RedisBus`] ([`RedisBus::add_node`]), waits until that node is a publish
//! target of its bus (connected **and** subscribed to every channel, so it
//! never publishes there before it can receive from there), and replies. An
//! admin node broadcasts the event ([`add_redis_everywhere`]).
//!
//! While the nodes add the Redis node one after the other, a node that has
//! it may publish there before another node subscribed to it; that other
//! node misses the message (the FAQ's warning). Replies travel the same way,
//! so [`add_redis_everywhere`] asks again, targeted, the nodes whose reply
//! was lost (adding is idempotent). Do it in a quiet period, and add the
//! Redis node to every node's configuration file too (FAQ 6: a node started
//! later with the old configuration would not receive what is published on
//! the new Redis node).
//!
//! **A WebSocket node at runtime (FAQ 5).** Start it with the same bus
//! configuration ([`join_cluster`]); it subscribes, announces itself, and
//! takes part at once: sends from any node reach its clients, its sends
//! reach everyone, and cluster-wide calls with
//! [`expect_all`](crosswire::CrossServerEmit::expect_all)
//! count it as soon as the others saw its announcement. Then point part of
//! the traffic at it (load balancer weights, or the login service's
//! [`HashRing`](crate::hashring::HashRing)).
//!
//! ```no_run
//! # async fn demo(admin: crosswire::Node, bus: crosswire_redis::RedisBus) -> crosswire::Result<()> {
//! use crosswire_recipes::scaling;
//! use std::time::Duration;
//!
//! // On every node, at start:
//! scaling::install_add_redis(&admin, bus, Duration::from_secs(5))?;
//! // Later, from any node:
//! let outcome = scaling::add_redis_everywhere(&admin, "redis://10.0.0.9:6379", Duration::from_secs(6), 3).await?;
//! assert!(outcome.missing.is_empty(), "not added on {:?}", outcome.missing);
//! # Ok(()) }
//! ```

use crate::{wait_for_live_nodes, Result};
use crosswire::{Node, NodeBuilder};
use crosswire_redis::RedisBus;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Cross-server event: `{"url": "redis://..."}` → `{"success": bool,
/// "nodes": <Redis nodes of the bus>, "error"?}`.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::scaling::ADD_REDIS, "addRedis");
/// ```
pub const ADD_REDIS: &str = "addRedis";

/// Registers [`ADD_REDIS`] on `node`, whose bus is `bus`. The reply comes
/// once the Redis node is a publish target of `bus`, or says
/// `success: false` after `ready_within`.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::scaling;
/// use crosswire_redis::{RedisBus, RedisBusConfig};
/// use std::time::Duration;
/// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:6379"])).await?;
/// let node = crosswire::Node::builder().server_name("n1").bus(bus.clone()).build()?;
/// scaling::install_add_redis(&node, bus.clone(), Duration::from_secs(5))?;
/// let outcome = scaling::add_redis_everywhere(&node, "redis://127.0.0.1:6380", Duration::from_secs(6), 3).await?;
/// assert_eq!(outcome.confirmed["n1"], 2);
/// assert_eq!(bus.node_count(), 2);
/// # Ok(()) }
/// ```
pub fn install_add_redis(
    node: &Node,
    bus: RedisBus,
    ready_within: Duration,
) -> crosswire::Result<()> {
    node.on_cross_server(ADD_REDIS, move |payload: Value| {
        let bus = bus.clone();
        async move {
            match payload.get("url").and_then(Value::as_str) {
                Some(url) => add_here(&bus, url, ready_within).await,
                None => json!({ "success": false, "error": "url missing" }),
            }
        }
    })?;
    Ok(())
}

/// Adds `url` to `bus` unless it is there, and waits until it is a publish
/// target.
async fn add_here(bus: &RedisBus, url: &str, ready_within: Duration) -> Value {
    let existing = bus.nodes().into_iter().find(|n| n.url == url).map(|n| n.id);
    let id = match existing {
        Some(id) => id,
        None => match bus.add_node(url).await {
            Ok(id) => id,
            Err(e) => return json!({ "success": false, "error": e.to_string() }),
        },
    };
    // RedisBus has no per-node readiness event: poll its status.
    let deadline = tokio::time::Instant::now() + ready_within;
    loop {
        let target = bus.nodes().iter().any(|n| n.id == id && n.publish_target);
        if target {
            return json!({ "success": true, "nodes": bus.node_count() });
        }
        if tokio::time::Instant::now() >= deadline {
            return json!({
                "success": false,
                "nodes": bus.node_count(),
                "error": "the Redis node is not usable yet",
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The outcome of [`add_redis_everywhere`].
///
/// # Examples
///
/// ```
/// use crosswire_recipes::scaling::AddRedisOutcome;
/// let outcome = AddRedisOutcome {
///     confirmed: [("n1".to_owned(), 2)].into(),
///     missing: ["n2".to_owned()].into(),
///     rounds: 3,
/// };
/// assert!(!outcome.missing.is_empty()); // n2 must be handled by hand
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddRedisOutcome {
    /// Nodes that confirmed, with their number of Redis nodes.
    pub confirmed: BTreeMap<String, u64>,
    /// Nodes (known alive to the admin) that did not confirm.
    pub missing: BTreeSet<String>,
    /// Rounds used.
    pub rounds: usize,
}

/// Asks every live node (the admin included) to add the Redis node `url`;
/// repeats the request, targeted at the nodes that did not confirm, up to
/// `rounds` times, each round waiting at most `round_timeout`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{scaling, Backbone};
/// use std::time::Duration;
/// let admin = Backbone::memory().builder("admin").await?.build()?;
/// // A stand-in for `install_add_redis` (which needs a Redis bus): it confirms.
/// admin.on_cross_server(scaling::ADD_REDIS, || async {
///     serde_json::json!({"success": true, "nodes": 2})
/// })?;
/// crosswire_recipes::wait_for_live_nodes(&admin, 1, Duration::from_secs(5)).await?;
/// let outcome = scaling::add_redis_everywhere(&admin, "redis://10.0.0.9:6379", Duration::from_secs(2), 3).await?;
/// assert_eq!(outcome.confirmed["admin"], 2);
/// assert!(outcome.missing.is_empty());
/// assert_eq!(outcome.rounds, 1);
/// # Ok(())
/// # }
/// ```
pub async fn add_redis_everywhere(
    admin: &Node,
    url: &str,
    round_timeout: Duration,
    rounds: usize,
) -> crosswire::Result<AddRedisOutcome> {
    let mut missing: BTreeSet<String> = admin.live_nodes().into_iter().collect();
    let mut confirmed = BTreeMap::new();
    let payload = json!({ "url": url });
    let mut used = 0;
    while used < rounds.max(1) && !missing.is_empty() {
        let call = admin
            .emit_cross_server(ADD_REDIS, &payload)?
            .timeout(round_timeout);
        let call = if used == 0 {
            // First round: a broadcast, so that nodes the admin does not know
            // yet add it too.
            call.expect(missing.len())
        } else {
            call.to(missing.iter().cloned())
        };
        let result = call.collect().await?;
        used += 1;
        for (server, reply) in &result.responses {
            let p = reply.payload.as_ref();
            let ok = p.and_then(|p| p.get("success")).and_then(Value::as_bool) == Some(true);
            if ok {
                let nodes = p.and_then(|p| p.get("nodes")).and_then(Value::as_u64);
                confirmed.insert(server.clone(), nodes.unwrap_or(0));
                missing.remove(server);
            }
        }
    }
    Ok(AddRedisOutcome {
        confirmed,
        missing,
        rounds: used,
    })
}

/// Starts a WebSocket node that joins a running cluster (FAQ 5): builds it
/// from `builder` (which must carry the cluster's bus configuration), lets
/// `setup` register the application's handlers (the same as on every other
/// node), listens on `addr`, and returns once the node is subscribed and
/// sees at least `cluster_size` live nodes, itself included.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{scaling, stats, Backbone};
/// use std::time::Duration;
/// let backbone = Backbone::memory();
/// let within = Duration::from_secs(5);
/// let builder = backbone.builder("n1").await?;
/// let (n1, _) = scaling::join_cluster(builder, stats::install, "127.0.0.1:0", 1, within).await?;
/// let builder = backbone.builder("n2").await?;
/// let (n2, addr) = scaling::join_cluster(builder, stats::install, "127.0.0.1:0", 2, within).await?;
/// assert_ne!(addr.port(), 0);
/// assert!(n2.live_nodes().contains(&"n1".to_owned()));
/// # let _ = n1;
/// # Ok(())
/// # }
/// ```
pub async fn join_cluster(
    builder: NodeBuilder,
    setup: impl FnOnce(&Node) -> crosswire::Result<()>,
    addr: &str,
    cluster_size: usize,
    within: Duration,
) -> Result<(Node, SocketAddr)> {
    let node = builder.build()?;
    setup(&node)?;
    let local = node.listen(addr).await?;
    tokio::time::timeout(within, node.ready())
        .await
        .map_err(|_| crate::RecipeError::Timeout("bus subscriptions".into()))?;
    wait_for_live_nodes(&node, cluster_size, within).await?;
    Ok((node, local))
}

/// A node of the FAQ 4 demo: a WebSocket node of the cluster example that
/// also answers [`ADD_REDIS`] and the statistics queries, with its bus.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::scaling;
/// use crosswire_redis::RedisBusConfig;
/// use std::time::Duration;
/// let config = RedisBusConfig::new(["redis://127.0.0.1:6379"]);
/// let (node, addr, bus) = scaling::redis_node("n1", &config, Duration::from_secs(5)).await?;
/// assert_eq!(node.server_name(), "n1");
/// assert_eq!(bus.node_count(), 1);
/// println!("connect to ws://{addr}/?id=u1");
/// # Ok(()) }
/// ```
pub async fn redis_node(
    name: &str,
    config: &crosswire_redis::RedisBusConfig,
    within: Duration,
) -> Result<(Node, SocketAddr, RedisBus)> {
    let bus = RedisBus::connect(crosswire_redis::RedisBusConfig {
        server_name: Some(name.to_owned()),
        ..config.clone()
    })
    .await?;
    let node = Node::builder()
        .server_name(name)
        .membership(Duration::from_millis(500), Duration::from_secs(3))
        .preset_room_namespaces([crate::cluster::NAMESPACE])
        .bus(bus.clone())
        .build()?;
    crate::cluster::install_ws_node(&node)?;
    crate::stats::install(&node)?;
    install_add_redis(&node, bus.clone(), within)?;
    let addr = node.listen("127.0.0.1:0").await?;
    tokio::time::timeout(within, node.ready())
        .await
        .map_err(|_| crate::RecipeError::Timeout("bus subscriptions".into()))?;
    Ok((node, addr, bus))
}

/// What [`demo_add_redis`] saw.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::scaling;
/// use std::time::Duration;
/// let initial = ["redis://127.0.0.1:6379".to_owned()];
/// let demo: scaling::AddRedisDemo =
///     scaling::demo_add_redis(&initial, "redis://127.0.0.1:6380", Duration::from_secs(5)).await?;
/// assert_eq!(demo.buses["n2"].len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct AddRedisDemo {
    /// The outcome of the request.
    pub outcome: AddRedisOutcome,
    /// Redis nodes of each node's bus afterwards, with whether each is a
    /// publish target.
    pub buses: BTreeMap<String, Vec<(String, bool)>>,
}

/// Two nodes on the Redis nodes `initial`; `n1` asks every node to add
/// `new_url`.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> crosswire_recipes::Result<()> {
/// use std::time::Duration;
/// let initial = ["redis://127.0.0.1:6379".to_owned()];
/// let new_url = "redis://127.0.0.1:6380";
/// let demo = crosswire_recipes::scaling::demo_add_redis(&initial, new_url, Duration::from_secs(5)).await?;
/// assert!(demo.outcome.missing.is_empty());
/// assert_eq!(demo.outcome.confirmed.len(), 2);
/// # Ok(()) }
/// ```
pub async fn demo_add_redis(
    initial: &[String],
    new_url: &str,
    within: Duration,
) -> Result<AddRedisDemo> {
    let config = crosswire_redis::RedisBusConfig::new(initial.iter().cloned());
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        nodes.push(redis_node(name, &config, within).await?);
    }
    for (node, _, _) in &nodes {
        wait_for_live_nodes(node, 2, within).await?;
    }
    let outcome = add_redis_everywhere(&nodes[0].0, new_url, within, 3).await?;
    let buses = nodes
        .iter()
        .map(|(node, _, bus)| {
            let status = bus
                .nodes()
                .into_iter()
                .map(|n| (n.url, n.publish_target))
                .collect();
            (node.server_name().to_owned(), status)
        })
        .collect();
    for (node, _, _) in &nodes {
        node.shutdown(Duration::from_millis(500)).await;
    }
    Ok(AddRedisDemo { outcome, buses })
}

/// What [`demo_join`] saw.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{scaling, Backbone};
/// use std::time::Duration;
/// let demo: scaling::JoinDemo = scaling::demo_join(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(demo.after, ["n1", "n2", "n3"]);
/// assert_eq!(demo.lobby.total, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct JoinDemo {
    /// Live nodes as `n1` saw them before `n3` joined.
    pub before: Vec<String>,
    /// Live nodes as `n1` sees them afterwards.
    pub after: Vec<String>,
    /// What the player on `n3` got from a broadcast of `n1`.
    pub pushed: Value,
    /// What the player on `n1` got from a room message of the player on `n3`.
    pub room_message: Value,
    /// Room `chat/lobby`, counted cluster-wide by `n3`.
    pub lobby: crate::stats::ClusterCount,
}

/// Two running nodes, a third one joining (FAQ 5), and traffic both ways.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{scaling, Backbone};
/// use std::time::Duration;
/// let demo = scaling::demo_join(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(demo.before, ["n1", "n2"]);
/// assert_eq!(demo.pushed["from"], "n1");
/// assert_eq!(demo.room_message["msg"], "hello from n3");
/// # Ok(())
/// # }
/// ```
pub async fn demo_join(backbone: &crate::Backbone, within: Duration) -> Result<JoinDemo> {
    let setup = |node: &Node| {
        crate::cluster::install_ws_node(node)?;
        crate::stats::install(node)
    };
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        let builder = backbone.builder(name).await?;
        nodes.push(join_cluster(builder, setup, "127.0.0.1:0", 1, within).await?);
    }
    let before = wait_for_live_nodes(&nodes[0].0, 2, within).await?;
    let mut old =
        crate::client::Player::connect(&format!("ws://{}", nodes[0].1), "old", within).await?;
    old.request("joinRoom", &json!({ "roomId": "lobby" }), within)
        .await?;

    // FAQ 5: the same bus configuration, the same handlers; nothing else.
    let builder = backbone.builder("n3").await?;
    let (n3, addr3) = join_cluster(builder, setup, "127.0.0.1:0", 3, within).await?;
    let after = wait_for_live_nodes(&nodes[0].0, 3, within).await?;
    let mut new = crate::client::Player::connect(&format!("ws://{addr3}"), "new", within).await?;
    new.request("joinRoom", &json!({ "roomId": "lobby" }), within)
        .await?;

    nodes[0].0.broadcast("news", &json!({ "from": "n1" }))?;
    let pushed = new.wait_push("news", within).await?;
    new.request(
        "command",
        &json!({ "action": "toRoom", "roomId": "lobby", "msg": "hello from n3" }),
        within,
    )
    .await?;
    let room_message = old.wait_push(crate::cluster::SAY, within).await?;
    let lobby = crate::stats::room_member_count(
        &n3,
        crate::cluster::NAMESPACE,
        Some("lobby"),
        crate::stats::Expect::AllLive,
        within,
    )
    .await?;
    drop((old, new));
    for node in nodes.iter().map(|(n, _)| n).chain([&n3]) {
        node.shutdown(Duration::from_millis(500)).await;
    }
    Ok(JoinDemo {
        before,
        after,
        pushed,
        room_message,
        lobby,
    })
}
