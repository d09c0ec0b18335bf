//! FAQ 13, "online detection": one connection per user across the whole
//! cluster, with no central store. Clients may connect to any node (no
//! sticky sessions); when a user logs in on node B while already connected
//! to node A:
//!
//! 1. B binds the new connection locally (a second connection of the user on
//!    B itself is closed with 4012 at once);
//! 2. B asks every other node "is this user on your node?" — a broadcast
//!    cross-server call ([`find_user`]);
//! 3. with [`Policy::KickOld`], B asks the nodes that said yes to kick their
//!    connection ([`kick_user`]): A closes it with [`KICKED`] (4012). With
//!    [`Policy::RejectNew`], B closes the new connection with
//!    [`ALREADY_ONLINE`] (4013) instead.
//!
//! Two logins of one user at the same moment on two nodes would kick each
//! other; each login therefore carries a [`LoginStamp`] (wall-clock time,
//! node name, sequence) and a node only kicks a connection **older** than
//! the login asking for it, so exactly the newest login survives (assuming
//! the nodes' clocks agree to within the time between two logins).
//!
//! The connection handler waits for the whole exchange, and a client's first
//! event is dispatched only after it, so the new connection is the only one
//! of its user when its first event runs.
//!
//! ```no_run
//! # async fn demo(node: crosswire::Node) -> crosswire::Result<()> {
//! use crosswire_recipes::single_login::{self, Policy, SingleLogin};
//! single_login::install(&node, SingleLogin::new(Policy::KickOld))?;
//! # Ok(()) }
//! ```

use crate::{PlayerId, AUTH_FAILURE, KICKED};
use crosswire::auth::AuthenticatedUser;
use crosswire::{Node, Socket};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Cross-server event: `{"userId"}` → `{"online": bool, "stamp"?}`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// # use crosswire_recipes::{client::Player, install_whoami, single_login::{self, Policy, SingleLogin}};
/// # use std::time::Duration;
/// # let node = crosswire::Node::builder().server_name("n1").build()?;
/// # single_login::install(&node, SingleLogin::new(Policy::KickOld))?;
/// # install_whoami(&node)?;
/// # let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// # let within = Duration::from_secs(5);
/// let _alice = Player::connect(&url, "alice", within).await?;
/// let ask = serde_json::json!({"userId": "alice"});
/// let result = node.emit_cross_server(single_login::WHERE_IS_USER, &ask)?.collect().await?;
/// let reply = result.responses["n1"].payload.clone().ok_or("no reply")?;
/// assert_eq!(reply["online"], true);
/// # Ok(())
/// # }
/// ```
pub const WHERE_IS_USER: &str = "whereIsUser";

/// Cross-server event: `{"userId", "stamp"}` → `{"kicked": bool}`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// # use crosswire_recipes::{client::Player, install_whoami, single_login::{self, Policy, SingleLogin}};
/// # use std::time::Duration;
/// # let node = crosswire::Node::builder().server_name("n1").build()?;
/// # single_login::install(&node, SingleLogin::new(Policy::KickOld))?;
/// # install_whoami(&node)?;
/// # let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// # let within = Duration::from_secs(5);
/// let mut alice = Player::connect(&url, "alice", within).await?;
/// let newer = single_login::LoginStamp { at_ms: u64::MAX, server: "n2".into(), seq: 1 };
/// let kick = serde_json::json!({"userId": "alice", "stamp": newer});
/// let result = node.emit_cross_server(single_login::KICK_USER, &kick)?.collect().await?;
/// assert_eq!(result.responses["n1"].payload, Some(serde_json::json!({"kicked": true})));
/// assert_eq!(alice.closed(within).await?.0, crosswire_recipes::KICKED);
/// # Ok(())
/// # }
/// ```
pub const KICK_USER: &str = "kickUser";

/// Close code of a new connection refused because its user is online
/// elsewhere ([`Policy::RejectNew`]; application range).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{client::Player, install_whoami, single_login::{self, Policy, SingleLogin}};
/// use crosswire_client::ConnectorOptions;
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// single_login::install(&node, SingleLogin::new(Policy::RejectNew))?;
/// install_whoami(&node)?;
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let _first = Player::connect(&url, "alice", within).await?;
/// let options = ConnectorOptions::new(url.as_str()).param("id", "alice");
/// let mut second = Player::open(options, "alice", within).await?;
/// assert_eq!(second.closed(within).await?.0, single_login::ALREADY_ONLINE);
/// # Ok(())
/// # }
/// ```
pub const ALREADY_ONLINE: u16 = 4013;

/// What to do when a user logs in while connected elsewhere.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::single_login::{Policy, SingleLogin};
/// assert_eq!(Policy::default(), Policy::KickOld);
/// assert_eq!(SingleLogin::new(Policy::RejectNew).policy, Policy::RejectNew);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Close the older connection with [`KICKED`] (4012).
    #[default]
    KickOld,
    /// Close the new connection with [`ALREADY_ONLINE`] (4013).
    RejectNew,
}

/// Options of [`install`].
///
/// # Examples
///
/// ```
/// use crosswire_recipes::single_login::{Policy, SingleLogin};
/// use std::time::Duration;
/// let options = SingleLogin { timeout: Duration::from_millis(500), ..SingleLogin::new(Policy::KickOld) };
/// assert_eq!(options.timeout, Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleLogin {
    /// What to do with a concurrent login.
    pub policy: Policy,
    /// How long each cross-server step may take (default 2 s). A node that
    /// does not answer in time is assumed not to hold the user.
    pub timeout: Duration,
}

impl SingleLogin {
    /// The policy with the default timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::single_login::{Policy, SingleLogin};
    /// use std::time::Duration;
    /// let options = SingleLogin::new(Policy::KickOld);
    /// assert_eq!(options.timeout, Duration::from_secs(2));
    /// ```
    pub fn new(policy: Policy) -> Self {
        SingleLogin {
            policy,
            timeout: Duration::from_secs(2),
        }
    }
}

/// When and where a login happened; logins compare by time, then node name,
/// then sequence. Attached to the socket.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::single_login::LoginStamp;
/// let a = LoginStamp { at_ms: 1_000, server: "n1".into(), seq: 7 };
/// let b = LoginStamp { at_ms: 1_000, server: "n2".into(), seq: 1 };
/// assert!(a < b); // same millisecond: the node name decides
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LoginStamp {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The node the user logged in on.
    pub server: String,
    /// The login's number on that node.
    pub seq: u64,
}

/// Installs the single-login protocol on `node`: the connection handler
/// (identity from an upgrade-time token, see
/// [`auth`](crate::auth), or else from `?id=`; 4011 without either) and the
/// handlers of [`WHERE_IS_USER`] and [`KICK_USER`]. Install it on every node
/// instead of [`bind_query_id`](crate::bind_query_id).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// # use crosswire_recipes::{client::Player, install_whoami, single_login::{self, Policy, SingleLogin}, Backbone};
/// # use std::time::Duration;
/// # let backbone = Backbone::memory();
/// # let within = Duration::from_secs(5);
/// # let (n1, n2) = (backbone.builder("n1").await?.build()?, backbone.builder("n2").await?.build()?);
/// # let mut urls = Vec::new();
/// # for node in [&n1, &n2] {
/// #     single_login::install(node, SingleLogin::new(Policy::KickOld))?;
/// #     install_whoami(node)?;
/// #     urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
/// # }
/// # for node in [&n1, &n2] {
/// #     crosswire_recipes::wait_for_live_nodes(node, 2, within).await?;
/// # }
/// let mut first = Player::connect(&urls[0], "alice", within).await?;
/// let second = Player::connect(&urls[1], "alice", within).await?;
/// assert_eq!(first.closed(within).await?.0, crosswire_recipes::KICKED);
/// assert_eq!(second.server(), Some("n2"));
/// # Ok(())
/// # }
/// ```
pub fn install(node: &Node, options: SingleLogin) -> crosswire::Result<()> {
    let seq = Arc::new(AtomicU64::new(0));
    node.on_connection(move |socket, handshake| {
        let seq = seq.clone();
        async move {
            let Some(node) = socket.node() else { return };
            let user = socket
                .data::<AuthenticatedUser>()
                .map(|u| u.0)
                .or_else(|| handshake.param("id").map(str::to_owned))
                .filter(|u| !u.is_empty());
            let Some(user) = user else {
                socket.close(AUTH_FAILURE, "Auth failure");
                return;
            };
            let stamp = LoginStamp {
                at_ms: now_ms(),
                server: node.server_name().to_owned(),
                seq: seq.fetch_add(1, Ordering::Relaxed),
            };
            login(&node, &socket, &user, stamp, options).await;
        }
    });

    node.on_cross_server(WHERE_IS_USER, |node: Node, payload: Value| async move {
        let user = payload.get("userId").and_then(Value::as_str);
        let socket = user
            .and_then(|u| node.get_socket(u))
            .filter(Socket::is_open);
        match socket {
            Some(s) => json!({ "online": true, "stamp": s.data::<LoginStamp>() }),
            None => json!({ "online": false }),
        }
    })?;

    node.on_cross_server(KICK_USER, |node: Node, payload: Value| async move {
        json!({ "kicked": kick_local(&node, &payload) })
    })?;
    Ok(())
}

/// Binds `user` to `socket` on `node` and makes it the user's only
/// connection in the cluster (or refuses it), per `options`.
async fn login(node: &Node, socket: &Socket, user: &str, stamp: LoginStamp, options: SingleLogin) {
    // 1. Locally: the new connection replaces any other of this node (or,
    //    with RejectNew, is refused when there is one).
    if options.policy == Policy::RejectNew {
        let existing = node.get_socket(user).filter(|s| s.is_open() && s != socket);
        if existing.is_some() {
            socket.close(ALREADY_ONLINE, "Already online");
            return;
        }
    }
    match node.set_user_socket(user, socket) {
        Ok(Some(old)) => old.close(KICKED, "Kicked by concurrent login"),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot bind user");
            socket.close(AUTH_FAILURE, "Auth failure");
            return;
        }
    }
    socket.insert_data(stamp.clone());
    socket.insert_data(PlayerId(user.to_owned()));

    // 2. Elsewhere: who else holds this user?
    let holders = match find_user(node, user, options.timeout).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, %user, "online detection failed");
            return;
        }
    };
    if holders.is_empty() {
        return;
    }
    // 3. Kick them, or step back.
    match options.policy {
        Policy::KickOld => match kick_user(node, user, &holders, &stamp, options.timeout).await {
            Ok(n) => tracing::info!(%user, kicked = n, on = ?holders, "concurrent login kicked"),
            Err(e) => tracing::warn!(error = %e, %user, "kick failed"),
        },
        Policy::RejectNew => {
            // Closing is enough: the node unbinds the user when the
            // connection ends, unless another connection took it meanwhile.
            socket.close(ALREADY_ONLINE, "Already online on another node");
        }
    }
}

/// The other nodes where `user` has an open connection (asks every node the
/// asker knows alive; a node that does not answer within `timeout` counts as
/// not holding it). Needs [`install`] on every node.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// # use crosswire_recipes::{client::Player, install_whoami, single_login::{self, Policy, SingleLogin}, Backbone};
/// # use std::time::Duration;
/// # let backbone = Backbone::memory();
/// # let within = Duration::from_secs(5);
/// # let (n1, n2) = (backbone.builder("n1").await?.build()?, backbone.builder("n2").await?.build()?);
/// # let mut urls = Vec::new();
/// # for node in [&n1, &n2] {
/// #     single_login::install(node, SingleLogin::new(Policy::KickOld))?;
/// #     install_whoami(node)?;
/// #     urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
/// # }
/// # for node in [&n1, &n2] {
/// #     crosswire_recipes::wait_for_live_nodes(node, 2, within).await?;
/// # }
/// let _alice = Player::connect(&urls[1], "alice", within).await?;
/// assert_eq!(single_login::find_user(&n1, "alice", within).await?, ["n2"]);
/// assert!(single_login::find_user(&n1, "bob", within).await?.is_empty());
/// # Ok(())
/// # }
/// ```
pub async fn find_user(
    node: &Node,
    user: &str,
    timeout: Duration,
) -> crosswire::Result<Vec<String>> {
    // With no other node, a broadcast except self would wait for a reply
    // that cannot come (`expect_all` counts at least one reply).
    if node.live_nodes().len() < 2 {
        return Ok(Vec::new());
    }
    let result = node
        .emit_cross_server(WHERE_IS_USER, &json!({ "userId": user }))?
        .except_self()
        .expect_all()
        .timeout(timeout)
        .collect()
        .await?;
    Ok(result
        .responses
        .iter()
        .filter(|(_, r)| {
            r.payload
                .as_ref()
                .and_then(|p| p.get("online"))
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(|(server, _)| server.clone())
        .collect())
}

/// Asks `nodes` to close their connection of `user` if it is older than
/// `stamp`; returns how many did.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// # use crosswire_recipes::{client::Player, install_whoami, single_login::{self, Policy, SingleLogin}, Backbone};
/// # use std::time::Duration;
/// # let backbone = Backbone::memory();
/// # let within = Duration::from_secs(5);
/// # let (n1, n2) = (backbone.builder("n1").await?.build()?, backbone.builder("n2").await?.build()?);
/// # let mut urls = Vec::new();
/// # for node in [&n1, &n2] {
/// #     single_login::install(node, SingleLogin::new(Policy::KickOld))?;
/// #     install_whoami(node)?;
/// #     urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
/// # }
/// # for node in [&n1, &n2] {
/// #     crosswire_recipes::wait_for_live_nodes(node, 2, within).await?;
/// # }
/// let mut alice = Player::connect(&urls[1], "alice", within).await?;
/// let newer = single_login::LoginStamp { at_ms: u64::MAX, server: "n1".into(), seq: 1 };
/// let kicked = single_login::kick_user(&n1, "alice", &["n2".to_owned()], &newer, within).await?;
/// assert_eq!(kicked, 1);
/// assert_eq!(alice.closed(within).await?.0, crosswire_recipes::KICKED);
/// # Ok(())
/// # }
/// ```
pub async fn kick_user(
    node: &Node,
    user: &str,
    nodes: &[String],
    stamp: &LoginStamp,
    timeout: Duration,
) -> crosswire::Result<usize> {
    if nodes.is_empty() {
        return Ok(0);
    }
    let result = node
        .emit_cross_server(KICK_USER, &json!({ "userId": user, "stamp": stamp }))?
        .to(nodes.iter().cloned())
        .timeout(timeout)
        .collect()
        .await?;
    Ok(result
        .responses
        .values()
        .filter(|r| {
            r.payload
                .as_ref()
                .and_then(|p| p.get("kicked"))
                .and_then(Value::as_bool)
                == Some(true)
        })
        .count())
}

/// Closes this node's connection of the user in `request` if it is older
/// than the request's stamp.
fn kick_local(node: &Node, request: &Value) -> bool {
    let Some(user) = request.get("userId").and_then(Value::as_str) else {
        return false;
    };
    let Some(newer) = request
        .get("stamp")
        .cloned()
        .and_then(|s| serde_json::from_value::<LoginStamp>(s).ok())
    else {
        return false;
    };
    let Some(socket) = node.get_socket(user) else {
        return false;
    };
    let older = socket.data::<LoginStamp>().is_none_or(|mine| mine < newer);
    if older {
        socket.close(KICKED, "Kicked by concurrent login");
    }
    older
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What [`demo`] saw.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{single_login, Backbone};
/// use std::time::Duration;
/// let report: single_login::DemoReport = single_login::demo(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(report.first_closed.0, crosswire_recipes::KICKED);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// How the first connection of `alice` (on `n1`) was closed.
    pub first_closed: (u16, String),
    /// The node the second connection is on.
    pub second_server: Option<String>,
    /// The nodes holding `alice` afterwards, as `n1` finds them.
    pub holders: Vec<String>,
}

/// Two nodes with [`Policy::KickOld`]; `alice` logs in on `n1`, then on `n2`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{single_login, Backbone};
/// use std::time::Duration;
/// let report = single_login::demo(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(report.second_server.as_deref(), Some("n2"));
/// assert_eq!(report.holders, ["n2"]);
/// # Ok(())
/// # }
/// ```
pub async fn demo(backbone: &crate::Backbone, within: Duration) -> crate::Result<DemoReport> {
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for name in ["n1", "n2"] {
        let node = backbone.builder(name).await?.build()?;
        install(&node, SingleLogin::new(Policy::KickOld))?;
        crate::install_whoami(&node)?;
        urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
        nodes.push(node);
    }
    for node in &nodes {
        crate::wait_for_live_nodes(node, 2, within).await?;
    }
    let mut first = crate::client::Player::connect(&urls[0], "alice", within).await?;
    let second = crate::client::Player::connect(&urls[1], "alice", within).await?;
    let first_closed = first.closed(within).await?;
    let holders = find_user(&nodes[0], "alice", within).await?;
    let second_server = second.server().map(str::to_owned);
    drop(second);
    for node in &nodes {
        node.shutdown(Duration::from_millis(500)).await;
    }
    Ok(DemoReport {
        first_closed,
        second_server,
        holders,
    })
}
