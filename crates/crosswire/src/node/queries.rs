//! Cluster-wide queries: the sockets of a room or of the whole cluster, the
//! sizes of a namespace's rooms, and which node holds a socket id, asked of
//! every live node at once and answered within a timeout, with a flag when
//! a node did not answer.
//!
//! One mechanism: a cross-server call of crosswire's own event
//! [`QUERY_EVENT`] to every live node (this one included), which each
//! answers from its local state; the answers are merged. A node that does
//! not answer in time (frozen, overloaded, just died) makes the answer
//! partial, and is named, rather than making the caller wait.

use super::{CrossReply, Node};
use crate::cross_server::CrossServerMessage;
use crate::{Match, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The cross-server event of cluster queries (reserved: see
/// [`RESERVED_PREFIX`](crate::cross_server::RESERVED_PREFIX)).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::QUERY_EVENT, "_cw_query_");
/// ```
pub const QUERY_EVENT: &str = "_cw_query_";

/// How long a query waits for the nodes by default.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::DEFAULT_QUERY_TIMEOUT, std::time::Duration::from_secs(2));
/// ```
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket somewhere in the cluster.
///
/// # Examples
///
/// ```
/// use crosswire::ClusterSocket;
/// let s = ClusterSocket { id: "u1".into(), node: "n1".into(), info: serde_json::json!({"name": "Ann"}) };
/// assert_eq!(serde_json::to_string(&s)?, r#"{"id":"u1","node":"n1","info":{"name":"Ann"}}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSocket {
    /// The socket id.
    pub id: String,
    /// The node that holds it.
    pub node: String,
    /// What the application set with [`Socket::set_info`](crate::Socket::set_info)
    /// (`null` when nothing).
    pub info: Value,
}

/// What the nodes answered, and whether all of them did.
///
/// # Examples
///
/// ```
/// use crosswire::ClusterAnswer;
/// let a = ClusterAnswer { value: 3usize, partial: true, answered: vec!["n1".into()], missing: vec!["n2".into()] };
/// assert!(a.partial);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterAnswer<T> {
    /// The merged answer of the nodes that answered.
    pub value: T,
    /// Some live node did not answer within the timeout: `value` lacks its
    /// part.
    pub partial: bool,
    /// The nodes that answered, sorted.
    pub answered: Vec<String>,
    /// The live nodes that did not, sorted.
    pub missing: Vec<String>,
}

/// A cluster-wide query; see [`Node::query`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::bus::MemoryHub;
/// use std::time::Duration;
/// let hub = MemoryHub::new();
/// let a = crosswire::Node::builder().server_name("a").bus(hub.bus()).build()?;
/// let b = crosswire::Node::builder().server_name("b").bus(hub.bus()).build()?;
/// a.ready().await;
/// b.ready().await;
/// // The nodes asked are the live ones this node knows of.
/// while a.live_nodes().len() < 2 {
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// }
/// a.join_room("chat", "r1", "u1")?;
/// b.join_room("chat", "r1", "u2")?;
/// b.join_room("chat", "r2", "u3")?;
/// let q = a.query().timeout(Duration::from_secs(1));
/// let counts = q.room_counts("chat").await?;
/// assert_eq!(counts.value["r1"], 2);
/// assert_eq!(counts.value["r2"], 1);
/// let members = a.query().room_sockets("chat", "r1").await?;
/// let mut ids: Vec<_> = members.value.iter().map(|s| (s.id.as_str(), s.node.as_str())).collect();
/// ids.sort();
/// assert_eq!(ids, [("u1", "a"), ("u2", "b")]);
/// // Only connected sockets have a node: these ids are members without one.
/// assert!(a.query().locate("u3").await?.value.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClusterQuery {
    node: Node,
    timeout: Duration,
}

/// A query as it travels to the nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "q", rename_all = "snake_case")]
enum Ask {
    Room { ns: String, room: String },
    All,
    Counts { ns: String },
    Locate { id: String },
    Namespaces,
    Health,
}

impl Node {
    /// A cluster-wide query, answered by every live node (this one
    /// included) within [`DEFAULT_QUERY_TIMEOUT`] or the given timeout.
    ///
    /// # Examples
    ///
    /// See [`ClusterQuery`].
    pub fn query(&self) -> ClusterQuery {
        ClusterQuery {
            node: self.clone(),
            timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// Answers the queries of the other nodes (registered at build).
    pub(crate) fn install_queries(&self) -> Result<()> {
        self.on_internal(
            QUERY_EVENT,
            |node: Node, msg: CrossServerMessage, reply: Option<CrossReply>| async move {
                let (Some(reply), Ok(ask)) = (reply, serde_json::from_value::<Ask>(msg.payload))
                else {
                    return;
                };
                if let Err(e) = reply.send(&node.answer(&ask)) {
                    tracing::debug!(error = %e, "cluster query answer not sent");
                }
            },
        )?;
        Ok(())
    }

    /// This node's part of an answer.
    fn answer(&self, ask: &Ask) -> Value {
        let socket = |id: String| {
            let info = self.get_socket(&id).and_then(|s| s.info());
            serde_json::json!({ "id": id, "info": info.unwrap_or(Value::Null) })
        };
        match ask {
            Ask::Room { ns, room } => {
                let ids = self.room_socket_ids(ns, Some(room), Match::Exact);
                Value::Array(ids.into_iter().map(socket).collect())
            }
            Ask::All => {
                let ids = self.inner.local.bound_ids();
                Value::Array(ids.into_iter().map(socket).collect())
            }
            Ask::Counts { ns } => {
                let counts: BTreeMap<String, usize> = self
                    .room_ids(ns, Match::Prefix)
                    .into_iter()
                    .map(|room| {
                        let n = self.socket_count_in_room(ns, Some(&room), Match::Exact);
                        (room, n)
                    })
                    .collect();
                serde_json::to_value(counts).unwrap_or(Value::Null)
            }
            Ask::Locate { id } => Value::Bool(self.get_socket(id).is_some()),
            Ask::Namespaces => serde_json::to_value(self.room_namespaces()).unwrap_or(Value::Null),
            Ask::Health => serde_json::to_value(self.health()).unwrap_or(Value::Null),
        }
    }
}

impl ClusterQuery {
    /// How long to wait for the nodes (default [`DEFAULT_QUERY_TIMEOUT`]).
    ///
    /// # Examples
    ///
    /// See [`ClusterQuery`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The sockets in room `room` of namespace `ns`, on every node.
    ///
    /// # Examples
    ///
    /// See [`ClusterQuery`].
    pub async fn room_sockets(
        self,
        ns: &str,
        room: &str,
    ) -> Result<ClusterAnswer<Vec<ClusterSocket>>> {
        let ask = Ask::Room {
            ns: ns.to_owned(),
            room: room.to_owned(),
        };
        self.sockets_of(ask).await
    }

    /// Every bound socket of the cluster.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// assert!(node.query().sockets().await?.value.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sockets(self) -> Result<ClusterAnswer<Vec<ClusterSocket>>> {
        self.sockets_of(Ask::All).await
    }

    /// The number of sockets in each room of namespace `ns`, over the
    /// cluster.
    ///
    /// # Examples
    ///
    /// See [`ClusterQuery`].
    pub async fn room_counts(self, ns: &str) -> Result<ClusterAnswer<BTreeMap<String, usize>>> {
        let ask = Ask::Counts { ns: ns.to_owned() };
        self.ask(ask, BTreeMap::new(), |total, _, part| {
            if let Ok(counts) = serde_json::from_value::<BTreeMap<String, usize>>(part) {
                for (room, n) in counts {
                    *total.entry(room).or_insert(0) += n;
                }
            }
        })
        .await
    }

    /// The namespaces that have rooms on some node, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// assert_eq!(node.query().namespaces().await?.value, ["chat"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn namespaces(self) -> Result<ClusterAnswer<Vec<String>>> {
        let mut answer = self
            .ask(
                Ask::Namespaces,
                Vec::new(),
                |all: &mut Vec<String>, _, part| {
                    if let Ok(names) = serde_json::from_value::<Vec<String>>(part) {
                        all.extend(names);
                    }
                },
            )
            .await?;
        answer.value.sort();
        answer.value.dedup();
        Ok(answer)
    }

    /// Every live node's [`Health`](crate::Health) (its status,
    /// connections, view of the cluster and bus), by node name.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let health = node.query().health().await?;
    /// assert_eq!(health.value["n1"].connections, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn health(self) -> Result<ClusterAnswer<BTreeMap<String, crate::Health>>> {
        self.ask(Ask::Health, BTreeMap::new(), |all, node, part| {
            if let Ok(health) = serde_json::from_value::<crate::Health>(part) {
                all.insert(node.to_owned(), health);
            }
        })
        .await
    }

    /// The nodes that hold socket id `id` (one, normally; none when it is
    /// not connected).
    ///
    /// # Examples
    ///
    /// See [`ClusterQuery`].
    pub async fn locate(self, id: &str) -> Result<ClusterAnswer<Vec<String>>> {
        let ask = Ask::Locate { id: id.to_owned() };
        let mut answer = self
            .ask(ask, Vec::new(), |nodes, node, part| {
                if part == Value::Bool(true) {
                    nodes.push(node.to_owned());
                }
            })
            .await?;
        answer.value.sort();
        Ok(answer)
    }

    async fn sockets_of(self, ask: Ask) -> Result<ClusterAnswer<Vec<ClusterSocket>>> {
        self.ask(ask, Vec::new(), |all, node, part| {
            let Value::Array(items) = part else { return };
            for item in items {
                if let (Some(id), info) = (item.get("id").and_then(Value::as_str), item.get("info"))
                {
                    all.push(ClusterSocket {
                        id: id.to_owned(),
                        node: node.to_owned(),
                        info: info.cloned().unwrap_or(Value::Null),
                    });
                }
            }
        })
        .await
    }

    /// Asks every live node and merges each answer into `value`.
    async fn ask<T>(
        self,
        ask: Ask,
        mut value: T,
        mut merge: impl FnMut(&mut T, &str, Value),
    ) -> Result<ClusterAnswer<T>> {
        let live = self.node.live_nodes();
        let payload = serde_json::to_value(&ask)?;
        let result = self
            .node
            .emit_internal(QUERY_EVENT, payload)
            .expect_all()
            .timeout(self.timeout)
            .collect()
            .await?;
        let mut answered = Vec::with_capacity(result.responses.len());
        for (node, reply) in result.responses {
            merge(&mut value, &node, reply.payload.unwrap_or(Value::Null));
            answered.push(node);
        }
        answered.sort();
        let missing: Vec<String> = live
            .into_iter()
            .filter(|n| answered.binary_search(n).is_err())
            .collect();
        Ok(ClusterAnswer {
            value,
            partial: !result.success || !missing.is_empty(),
            answered,
            missing,
        })
    }
}
