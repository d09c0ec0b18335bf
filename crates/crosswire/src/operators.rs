//! Sends that read as sentences: choose the recipients, narrow them, emit.
//!
//! ```text
//! node.to_room("game", "table-7").except(["alice"]).emit("move", &m)?;
//! node.to("bob").to("carol").emit("invite", &"table-7")?;
//! node.to_all().local().emit("maintenance", &"in 5 minutes")?;
//! ```
//!
//! Each `emit` encodes its frame once, delivers it to this node's sockets and
//! (unless [`local`](Emit::local)) relays it to the other nodes, exactly as
//! the original's methods ([`Node::broadcast`], [`Node::to_socket_ids`],
//! [`Node::broadcast_to_room`]), which stay for migration.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use futures_util::StreamExt;
//! let node = crosswire::Node::builder().build()?;
//! node.on_connection(|socket, hs| async move {
//!     let Some(node) = socket.node() else { return };
//!     if let Some(id) = hs.param("id") {
//!         let _ = node.set_user_socket(id, &socket);
//!         let _ = node.join_room("game", "table-7", id);
//!     }
//! });
//! let addr = node.listen("127.0.0.1:0").await?;
//! let (mut alice, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=alice")).await?;
//! let (mut bob, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=bob")).await?;
//! while node.socket_count_in_room("game", Some("table-7"), crosswire::Match::Exact) < 2 {
//!     tokio::task::yield_now().await;
//! }
//! node.to_room("game", "table-7").except(["alice"]).emit("move", &"e4")?;
//! node.to("alice").emit("your-turn", &())?;
//! let text = bob.next().await.ok_or("closed")??.into_text()?;
//! assert_eq!(text.as_str(), r#"{"event":"move","payload":"e4"}"#);
//! let text = alice.next().await.ok_or("closed")??.into_text()?;
//! assert_eq!(text.as_str(), r#"{"event":"your-turn","payload":null}"#);
//! # Ok(())
//! # }
//! ```

use crate::node::{Node, RoomSend};
use crate::Result;
use serde::Serialize;

/// Who an [`Emit`] reaches.
#[derive(Debug, Clone)]
enum Target {
    All,
    Ids(Vec<String>),
    Room { ns: String, room: String },
}

/// A send being composed: recipients chosen by [`Node::to`],
/// [`Node::to_room`] or [`Node::to_all`], narrowed by
/// [`except`](Emit::except) and [`local`](Emit::local), sent by
/// [`emit`](Emit::emit).
///
/// # Examples
///
/// See the [module](crate::operators).
#[derive(Debug, Clone)]
#[must_use = "nothing is sent until `emit`"]
pub struct Emit<'a> {
    node: &'a Node,
    target: Target,
    except: Vec<String>,
    local: bool,
    misuse: Option<&'static str>,
}

impl Node {
    /// A send to socket id `socket_id` (on whichever node holds it); chain
    /// [`to`](Emit::to) for more ids.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// // Nobody is bound to these ids yet: the message goes to the other nodes.
    /// node.to("u1").to("u2").emit("invite", &"room-7")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn to(&self, socket_id: impl Into<String>) -> Emit<'_> {
        self.emit_to(Target::Ids(vec![socket_id.into()]))
    }

    /// A send to every socket in room `room` of namespace `ns`, on every
    /// node.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to_room("chat", "lobby").except(["spammer"]).emit("say", &"hi")?;
    /// assert!(node.to_room("", "lobby").emit("say", &"hi").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_room(&self, ns: impl Into<String>, room: impl Into<String>) -> Emit<'_> {
        self.emit_to(Target::Room {
            ns: ns.into(),
            room: room.into(),
        })
    }

    /// A send to every socket on every node.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to_all().emit("news", &serde_json::json!({"n": 1}))?;
    /// node.to_all().local().emit("restarting", &())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_all(&self) -> Emit<'_> {
        self.emit_to(Target::All)
    }

    fn emit_to(&self, target: Target) -> Emit<'_> {
        Emit {
            node: self,
            target,
            except: Vec::new(),
            local: false,
            misuse: None,
        }
    }
}

impl Emit<'_> {
    /// Adds socket id `socket_id` to a send to ids.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to("a").to("b").to("c").emit("ping", &())?;
    /// // Ids cannot be added to a room or broadcast send.
    /// assert!(node.to_all().to("a").emit("ping", &()).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn to(mut self, socket_id: impl Into<String>) -> Self {
        match &mut self.target {
            Target::Ids(ids) => ids.push(socket_id.into()),
            // Refused at `emit`: keep the mistake visible.
            _ => self.misuse = Some("to(..) adds ids to a send to ids only"),
        }
        self
    }

    /// Leaves out these socket ids (room sends only; the original's
    /// `excludeSocketIds`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to_room("game", "t1").except(["a", "b"]).emit("tick", &1)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn except<I, S>(mut self, socket_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.except.extend(socket_ids.into_iter().map(Into::into));
        self
    }

    /// Only this node's sockets; nothing goes on the bus.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to_room("game", "t1").local().emit("tick", &1)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Encodes the frame once and sends it.
    ///
    /// Fails for an empty event name, an unusable namespace or room, a
    /// payload that does not serialize, [`except`](Emit::except) on a send
    /// that is not to a room, and [`to`](Emit::to) after
    /// [`to_room`](Node::to_room) or [`to_all`](Node::to_all).
    ///
    /// # Examples
    ///
    /// See the [module](crate::operators).
    pub fn emit<T: Serialize + ?Sized>(self, event: &str, payload: &T) -> Result<()> {
        let Emit {
            node,
            target,
            except,
            local,
            misuse,
        } = self;
        if let Some(misuse) = misuse {
            return Err(crate::Error::InvalidArgument(misuse));
        }
        match target {
            Target::Room { ns, room } => {
                let mut options = RoomSend::new().exclude(except);
                if local {
                    options = options.local_only();
                }
                node.broadcast_to_room(&ns, &room, event, payload, options)
            }
            _ if !except.is_empty() => Err(crate::Error::InvalidArgument(
                "except(..) applies to room sends only",
            )),
            Target::All if local => node.broadcast_local(event, payload),
            Target::All => node.broadcast(event, payload),
            Target::Ids(ids) if local => node.to_local_socket_ids(&ids, event, payload),
            Target::Ids(ids) => node.to_socket_ids(&ids, event, payload),
        }
    }
}
