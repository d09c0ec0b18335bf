//! The recipes' client: a [`Connector`] with its event stream, and bounded
//! waits for what the recipes expect (an open connection, a reply, a push,
//! a close).
//!
//! ```no_run
//! # async fn demo() -> crosswire_recipes::Result<()> {
//! use crosswire_recipes::client::Player;
//! use std::time::Duration;
//!
//! let mut p = Player::connect("ws://127.0.0.1:9001", "u1", Duration::from_secs(5)).await?;
//! println!("{} is on {:?}", p.id(), p.server());
//! let (event, payload) = p.next_push(Duration::from_secs(30)).await?;
//! println!("{event}: {payload}");
//! # Ok(()) }
//! ```

use crate::{RecipeError, Result, WHOAMI_EVENT};
use crosswire_client::{ClientEvent, Connector, ConnectorOptions, EmitOptions, EventStream};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// One client connection and everything it receives.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// bind_query_id(&node);
/// install_whoami(&node)?;
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let mut p = Player::connect(&url, "u1", within).await?;
/// node.to_socket_id("u1", "hello", &"welcome")?;
/// let (event, payload) = p.next_push(within).await?;
/// assert_eq!((event.as_str(), payload), ("hello", serde_json::json!("welcome")));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Player {
    id: String,
    server: Option<String>,
    connector: Connector,
    events: EventStream,
}

impl Player {
    /// Connects to the node at `base_url` (e.g. `ws://127.0.0.1:9001`) with
    /// `?id=<id>`, waits for the connection to open and asks
    /// [`WHOAMI_EVENT`]: once it answered, the node has bound the id, so
    /// pushes from any node reach this player.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let p = Player::connect(&url, "u1", within).await?;
    /// assert_eq!(p.server(), Some("ws1"));
    /// assert_eq!(node.client_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(base_url: &str, id: &str, within: Duration) -> Result<Player> {
        let options = ConnectorOptions::new(base_url).param("id", id);
        let mut player = Player::open(options, id, within).await?;
        let whoami = player.request(WHOAMI_EVENT, &Value::Null, within).await?;
        player.server = whoami
            .as_ref()
            .and_then(|w| w.get("server"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(player)
    }

    /// Opens a connection with `options` and waits until it is open (failing
    /// at the first failed attempt, e.g. a refused upgrade), without
    /// asking anything (for nodes that expect something else first, such as
    /// an auth message). `id` is only a label.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// use crosswire_client::ConnectorOptions;
    /// let p = Player::open(ConnectorOptions::new(url.as_str()).param("id", "u1"), "u1", within).await?;
    /// assert_eq!(p.server(), None); // nothing asked yet
    /// let me = p.request("whoami", &(), within).await?.ok_or("no reply")?;
    /// assert_eq!(me["id"], "u1");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(options: ConnectorOptions, id: &str, within: Duration) -> Result<Player> {
        let connector = Connector::new(options)?;
        let mut events = connector.subscribe();
        connector.start();
        let deadline = Instant::now() + within;
        loop {
            match next_event(&mut events, deadline).await? {
                ClientEvent::Open => break,
                ClientEvent::Close { code, reason } => {
                    return Err(RecipeError::Closed { code, reason }.into())
                }
                // The connector would retry; a recipe wants to know now.
                ClientEvent::Error(e) => {
                    return Err(RecipeError::Unexpected(format!("cannot connect: {e}")).into())
                }
                _ => {}
            }
        }
        Ok(Player {
            id: id.to_owned(),
            server: None,
            connector,
            events,
        })
    }

    /// The id this player connected with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let p = Player::connect(&url, "u1", within).await?;
    /// assert_eq!(p.id(), "u1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The node it is connected to, as [`WHOAMI_EVENT`] answered.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let p = Player::connect(&url, "u1", within).await?;
    /// assert_eq!(p.server(), Some("ws1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The underlying connector.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let p = Player::connect(&url, "u1", within).await?;
    /// assert!(p.connector().is_open());
    /// # Ok(())
    /// # }
    /// ```
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Emits `event` with a callback and waits for the reply (`None` when the
    /// node replied without a value).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let p = Player::connect(&url, "u1", within).await?;
    /// let me = p.request("whoami", &(), within).await?;
    /// assert_eq!(me, Some(serde_json::json!({"id": "u1", "server": "ws1"})));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        within: Duration,
    ) -> Result<Option<Value>> {
        let reply = self
            .connector
            .emit_with_options(event, payload, EmitOptions::new().timeout(within))
            .await?;
        Ok(reply)
    }

    /// The next event pushed by a node, as `(event, payload)`; fails when the
    /// connection closes first or nothing comes within `within`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let mut p = Player::connect(&url, "u1", within).await?;
    /// node.broadcast("news", &serde_json::json!({"n": 1}))?;
    /// let (event, payload) = p.next_push(within).await?;
    /// assert_eq!(event, "news");
    /// assert_eq!(payload["n"], 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_push(&mut self, within: Duration) -> Result<(String, Value)> {
        let deadline = Instant::now() + within;
        loop {
            match next_event(&mut self.events, deadline).await? {
                ClientEvent::Push { event, payload } => {
                    return Ok((event, payload.unwrap_or(Value::Null)))
                }
                ClientEvent::Close { code, reason } => {
                    return Err(RecipeError::Closed { code, reason }.into())
                }
                _ => {}
            }
        }
    }

    /// The payload of the next push of `event`, skipping other pushes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let mut p = Player::connect(&url, "u1", within).await?;
    /// node.to_socket_id("u1", "noise", &1)?;
    /// node.to_socket_id("u1", "score", &42)?;
    /// assert_eq!(p.wait_push("score", within).await?, serde_json::json!(42));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_push(&mut self, event: &str, within: Duration) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (name, payload) = self.next_push(left).await?;
            if name == event {
                return Ok(payload);
            }
        }
    }

    /// Waits for the connection to close; returns the code and reason.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let mut first = Player::connect(&url, "u1", within).await?;
    /// let _second = Player::connect(&url, "u1", within).await?; // same id: kicks the first
    /// let (code, _reason) = first.closed(within).await?;
    /// assert_eq!(code, crosswire_recipes::KICKED);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn closed(&mut self, within: Duration) -> Result<(u16, String)> {
        let deadline = Instant::now() + within;
        loop {
            if let ClientEvent::Close { code, reason } =
                next_event(&mut self.events, deadline).await?
            {
                return Ok((code, reason));
            }
        }
    }

    /// Closes the connection with 4001 (the original's `manualClose`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{bind_query_id, client::Player, install_whoami};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// bind_query_id(&node);
    /// install_whoami(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let mut p = Player::connect(&url, "u1", within).await?;
    /// p.close();
    /// assert_eq!(p.closed(within).await?.0, 4001);
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        self.connector.manual_close();
    }
}

/// The next event of a stream, or a timeout error at `deadline`.
async fn next_event(events: &mut EventStream, deadline: Instant) -> Result<ClientEvent> {
    match tokio::time::timeout_at(deadline, events.recv()).await {
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => Err(RecipeError::Unexpected("the connector stopped".into()).into()),
        Err(_) => Err(RecipeError::Timeout("no event from the node in time".into()).into()),
    }
}
