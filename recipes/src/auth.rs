//! FAQ 17, "how to transmit authentication information": the two ways the
//! FAQ recommends, with crosswire's helpers.
//!
//! * **Token in the URL, verified at upgrade** ([`token_in_url`]): the
//!   client connects to `ws://host/?token=...`; the node's upgrade hook
//!   ([`crosswire::auth::query_token_hook`]) checks the token **before** the
//!   WebSocket exists and refuses with HTTP 401 otherwise. URLs end up in
//!   logs, so the tokens are short-lived and one-time: a login service
//!   issues them ([`TokenIssuer::issue`]) and the node redeems each once
//!   ([`TokenIssuer::redeem`]).
//! * **Auth message after connecting** ([`auth_message`]): the client
//!   connects without credentials and sends `auth {"token": ...}`; until it
//!   does, the node drops its other events and sends it no broadcasts; after
//!   `timeout` the node closes it with 4005, and a bad token closes it with
//!   4011 ([`NodeBuilder::auth_message`]). The token never appears in a URL,
//!   so it may be a longer-lived one ([`TokenIssuer::verify`]).
//!
//! Either way, use `wss://` in production.
//!
//! ```no_run
//! # async fn demo() -> crosswire_recipes::Result<()> {
//! use crosswire_recipes::auth::{self, TokenIssuer};
//! use std::time::Duration;
//!
//! let issuer = TokenIssuer::new();
//! let node = auth::token_in_url(crosswire::Node::builder().server_name("ws1"), issuer.clone())?;
//! let addr = node.listen("127.0.0.1:0").await?;
//! let token = issuer.issue("alice", Duration::from_secs(30));
//! println!("connect to ws://{addr}/?token={token}");
//! # Ok(()) }
//! ```

use crate::client::Player;
use crate::{install_whoami, PlayerId, RecipeError, Result};
use crosswire::auth::{query_token_hook, AuthenticatedUser};
use crosswire::{Node, NodeBuilder};
use crosswire_client::ConnectorOptions;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The client event of the auth-message mode.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::auth::AUTH_EVENT;
/// assert_eq!(AUTH_EVENT, "auth");
/// ```
pub const AUTH_EVENT: &str = "auth";

/// Issues and checks tokens (what a login service and the nodes share; in a
/// real deployment a signed token or a shared store). Cheap to clone.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::auth::TokenIssuer;
/// use std::time::Duration;
/// let issuer = TokenIssuer::new();
/// let login_service = issuer.clone(); // shares the tokens
/// let token = login_service.issue("alice", Duration::from_secs(30));
/// assert_eq!(issuer.verify(&token).as_deref(), Some("alice"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct TokenIssuer {
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl TokenIssuer {
    /// An issuer without tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// let issuer = crosswire_recipes::auth::TokenIssuer::new();
    /// assert_eq!(issuer.verify("no-such-token"), None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A new random token for `user`, valid for `ttl`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let issuer = crosswire_recipes::auth::TokenIssuer::new();
    /// let token = issuer.issue("alice", Duration::from_secs(30));
    /// assert_eq!(issuer.verify(&token).as_deref(), Some("alice"));
    /// assert_eq!(issuer.redeem(&token).as_deref(), Some("alice"));
    /// assert_eq!(issuer.redeem(&token), None); // one time only
    /// ```
    pub fn issue(&self, user: &str, ttl: Duration) -> String {
        let token = format!("{:032x}", rand::rng().random::<u128>());
        let mut tokens = self.lock();
        let now = Instant::now();
        tokens.retain(|_, (_, expiry)| *expiry > now);
        tokens.insert(token.clone(), (user.to_owned(), now + ttl));
        token
    }

    /// The user of a valid token, which stays valid (for the auth message).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let issuer = crosswire_recipes::auth::TokenIssuer::new();
    /// let token = issuer.issue("bob", Duration::from_secs(3600));
    /// assert_eq!(issuer.verify(&token).as_deref(), Some("bob"));
    /// assert_eq!(issuer.verify(&token).as_deref(), Some("bob")); // still valid
    /// let expired = issuer.issue("bob", Duration::ZERO);
    /// assert_eq!(issuer.verify(&expired), None);
    /// ```
    pub fn verify(&self, token: &str) -> Option<String> {
        let tokens = self.lock();
        let (user, expiry) = tokens.get(token)?;
        (*expiry > Instant::now()).then(|| user.clone())
    }

    /// The user of a valid token, which is then spent (for URLs).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let issuer = crosswire_recipes::auth::TokenIssuer::new();
    /// let token = issuer.issue("alice", Duration::from_secs(30));
    /// assert_eq!(issuer.redeem(&token).as_deref(), Some("alice"));
    /// assert_eq!(issuer.verify(&token), None); // spent
    /// ```
    pub fn redeem(&self, token: &str) -> Option<String> {
        let (user, expiry) = self.lock().remove(token)?;
        (expiry > Instant::now()).then_some(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds a node that accepts only connections whose `?token=` redeems at
/// `issuer` (HTTP 401 otherwise, before the upgrade), binds each to its user
/// and answers `whoami`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::auth::{self, TokenIssuer};
/// use std::time::Duration;
/// let issuer = TokenIssuer::new();
/// let node = auth::token_in_url(crosswire::Node::builder().server_name("ws1"), issuer.clone())?;
/// let base = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let token = issuer.issue("alice", Duration::from_secs(30));
/// let alice = auth::connect_with_url_token(&base, &token, within).await?;
/// let me = alice.request("whoami", &(), within).await?.ok_or("no reply")?;
/// assert_eq!(me["id"], "alice");
/// assert!(auth::connect_with_url_token(&base, "forged", within).await.is_err());
/// # Ok(())
/// # }
/// ```
pub fn token_in_url(builder: NodeBuilder, issuer: TokenIssuer) -> crosswire::Result<Node> {
    let node = builder
        .on_upgrade(query_token_hook("token", move |token| {
            let user = issuer.redeem(&token);
            async move { user }
        }))
        .build()?;
    node.on_connection(|socket, _handshake| async move {
        let Some(node) = socket.node() else { return };
        // The hook attached the user; the upgrade was refused otherwise.
        let Some(AuthenticatedUser(user)) = socket.data::<AuthenticatedUser>() else {
            socket.close(crate::AUTH_FAILURE, "Auth failure");
            return;
        };
        if let Ok(Some(old)) = node.set_user_socket(&user, &socket) {
            old.close(crate::KICKED, "Kicked by concurrent login");
        }
        socket.insert_data(PlayerId(user));
    });
    install_whoami(&node)?;
    Ok(node)
}

/// Builds a node where each connection must send [`AUTH_EVENT`]
/// `{"token": ...}` valid at `issuer` within `timeout`; the node binds it to
/// the token's user and replies `{"ok": true}`. It answers `whoami` once
/// authenticated.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::auth::{self, TokenIssuer};
/// use std::time::Duration;
/// let issuer = TokenIssuer::new();
/// let within = Duration::from_secs(5);
/// let builder = crosswire::Node::builder().server_name("ws1");
/// let node = auth::auth_message(builder, issuer.clone(), within)?;
/// let base = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let token = issuer.issue("bob", Duration::from_secs(3600));
/// let bob = auth::connect_with_auth_message(&base, &token, within).await?;
/// let me = bob.request("whoami", &(), within).await?.ok_or("no reply")?;
/// assert_eq!(me["id"], "bob");
/// # Ok(())
/// # }
/// ```
pub fn auth_message(
    builder: NodeBuilder,
    issuer: TokenIssuer,
    timeout: Duration,
) -> crosswire::Result<Node> {
    let node = builder
        .auth_message(AUTH_EVENT, timeout, move |payload: Value| {
            let user = payload
                .get("token")
                .and_then(Value::as_str)
                .and_then(|t| issuer.verify(t));
            async move { user }
        })
        .build()?;
    install_whoami(&node)?;
    Ok(node)
}

/// Connects to an auth-message node at `base_url` and authenticates with
/// `token`; fails when the node refuses.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::auth::{self, TokenIssuer};
/// use std::time::Duration;
/// let issuer = TokenIssuer::new();
/// let within = Duration::from_secs(5);
/// let builder = crosswire::Node::builder().server_name("ws1");
/// let node = auth::auth_message(builder, issuer.clone(), within)?;
/// let base = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let token = issuer.issue("bob", Duration::from_secs(3600));
/// let bob = auth::connect_with_auth_message(&base, &token, within).await?;
/// assert!(bob.connector().is_open());
/// assert!(auth::connect_with_auth_message(&base, "forged", within).await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn connect_with_auth_message(
    base_url: &str,
    token: &str,
    within: Duration,
) -> Result<Player> {
    let player = Player::open(ConnectorOptions::new(base_url), "", within).await?;
    let answer = player
        .request(AUTH_EVENT, &json!({ "token": token }), within)
        .await?;
    if answer
        .as_ref()
        .and_then(|a| a.get("ok"))
        .and_then(Value::as_bool)
        != Some(true)
    {
        return Err(RecipeError::Unexpected(format!("auth refused: {answer:?}")).into());
    }
    Ok(player)
}

/// Connects to a token-in-URL node at `base_url` with `?token=<token>`;
/// fails at once when the node refuses the upgrade.
///
/// The connector reuses its URL when it reconnects, and a one-time token
/// does not work twice: after a disconnection, get a new token and connect
/// a new `Player`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::auth::{self, TokenIssuer};
/// use std::time::Duration;
/// let issuer = TokenIssuer::new();
/// let node = auth::token_in_url(crosswire::Node::builder().server_name("ws1"), issuer.clone())?;
/// let base = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let token = issuer.issue("alice", Duration::from_secs(30));
/// let alice = auth::connect_with_url_token(&base, &token, within).await?;
/// let me = alice.request("whoami", &(), within).await?.ok_or("no reply")?;
/// assert_eq!(me["id"], "alice");
/// // The token is spent: a second connection with it is refused.
/// assert!(auth::connect_with_url_token(&base, &token, within).await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn connect_with_url_token(
    base_url: &str,
    token: &str,
    within: Duration,
) -> Result<Player> {
    let options = ConnectorOptions::new(base_url).param("token", token);
    Player::open(options, "", within).await
}

/// What [`demo`] saw.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::auth::{self, DemoReport};
/// use std::time::Duration;
/// let report: DemoReport = auth::demo(Duration::from_secs(5), Duration::from_millis(200)).await?;
/// assert_eq!(report.url_user.as_deref(), Some("alice"));
/// assert!(report.spent_token_refused);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// The user a fresh URL token connected as.
    pub url_user: Option<String>,
    /// Whether connecting again with the same (spent) token failed.
    pub spent_token_refused: bool,
    /// The user an auth message authenticated.
    pub message_user: Option<String>,
    /// How a connection that never authenticated was closed.
    pub silent_closed: (u16, String),
}

/// Both modes on two standalone nodes: a URL token used twice, an auth
/// message, and a connection that never authenticates (closed after
/// `auth_timeout`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use std::time::Duration;
/// let report = crosswire_recipes::auth::demo(Duration::from_secs(5), Duration::from_millis(200)).await?;
/// assert_eq!(report.message_user.as_deref(), Some("bob"));
/// assert_eq!(report.silent_closed.0, 4005);
/// # Ok(())
/// # }
/// ```
pub async fn demo(within: Duration, auth_timeout: Duration) -> Result<DemoReport> {
    let issuer = TokenIssuer::new();

    let url_node = token_in_url(Node::builder().server_name("url-auth"), issuer.clone())?;
    let url_base = format!("ws://{}", url_node.listen("127.0.0.1:0").await?);
    let token = issuer.issue("alice", Duration::from_secs(30));
    let alice = connect_with_url_token(&url_base, &token, within).await?;
    let url_user = whoami(&alice, within).await?;
    let spent_token_refused = connect_with_url_token(&url_base, &token, within)
        .await
        .is_err();

    let msg_node = auth_message(
        Node::builder().server_name("message-auth"),
        issuer.clone(),
        auth_timeout,
    )?;
    let msg_base = format!("ws://{}", msg_node.listen("127.0.0.1:0").await?);
    let token = issuer.issue("bob", Duration::from_secs(3600));
    let bob = connect_with_auth_message(&msg_base, &token, within).await?;
    let message_user = whoami(&bob, within).await?;
    let mut silent =
        Player::open(ConnectorOptions::new(msg_base.as_str()), "silent", within).await?;
    let silent_closed = silent.closed(auth_timeout + within).await?;

    drop((alice, bob, silent));
    url_node.shutdown(Duration::from_millis(500)).await;
    msg_node.shutdown(Duration::from_millis(500)).await;
    Ok(DemoReport {
        url_user,
        spent_token_refused,
        message_user,
        silent_closed,
    })
}

async fn whoami(player: &Player, within: Duration) -> Result<Option<String>> {
    let answer = player
        .request(crate::WHOAMI_EVENT, &Value::Null, within)
        .await?;
    Ok(answer
        .as_ref()
        .and_then(|a| a.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}
