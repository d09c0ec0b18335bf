//! Sending: to everyone, to socket ids, to a room with exclusions; each send encodes its frame once.

use super::*;
use crate::error::SOCKET_ID_MSG;
use crate::socket::to_utf8;

/// Options of [`Node::broadcast_to_room`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use futures_util::{SinkExt, StreamExt};
/// # let node = crosswire::Node::builder().server_name("n1").build()?;
/// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
/// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
/// # let socket = sockets.recv().await.ok_or("no connection")?;
/// use crosswire::RoomSend;
/// node.set_user_socket("u1", &socket)?;
/// node.join_room("chat", "r1", "u1")?;
/// node.join_room("chat", "r1", "u2")?;
/// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new().exclude(["u2"]).local_only().destroy())?;
/// let text = client.next().await.ok_or("closed")??.into_text()?;
/// assert_eq!(text.as_str(), r#"{"event":"say","payload":"hi"}"#);
/// assert_eq!(node.room_count("chat", crosswire::Match::Exact), 0); // destroyed
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct RoomSend {
    pub(in crate::node) exclude: Vec<String>,
    pub(in crate::node) local_only: bool,
    destroy: bool,
}

impl RoomSend {
    /// Default options: no exclusions, relayed to every node, room kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::RoomSend;
    /// let node = crosswire::Node::builder().build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new())?;
    /// assert!(node.is_joined_room("u1", "chat", Some("r1")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Socket ids that must not receive the frame (`excludeSocketIds`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// use crosswire::RoomSend;
    /// node.set_user_socket("u1", &socket)?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.broadcast_to_room("chat", "r1", "a", &1, RoomSend::new().exclude(["u1"]))?;
    /// node.broadcast_to_room("chat", "r1", "b", &2, RoomSend::new())?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"b","payload":2}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn exclude<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Only this node's members (`localOnly`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{bus::MemoryHub, RoomSend};
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// // Delivered to this node's members only, nothing is published.
    /// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new().local_only())?;
    /// assert_eq!(node.room_count("chat", crosswire::Match::Exact), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_only(mut self) -> Self {
        self.local_only = true;
        self
    }

    /// Remove the room on this node after sending (`roomDstroy`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{Match, RoomSend};
    /// let node = crosswire::Node::builder().build()?;
    /// node.join_room("game", "g1", "u1")?;
    /// node.broadcast_to_room("game", "g1", "over", &"u1 wins", RoomSend::new().destroy())?;
    /// assert_eq!(node.room_count("game", Match::Exact), 0);
    /// assert!(!node.is_joined_room("u1", "game", None));
    /// # Ok(())
    /// # }
    /// ```
    pub fn destroy(mut self) -> Self {
        self.destroy = true;
        self
    }
}

impl Node {
    // ----- sending ---------------------------------------------------------

    /// Sends `event` with `payload` to every connected socket of every node
    /// (`broadcast`), bound to an id or not.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// node.broadcast("news", &serde_json::json!({"n": 1}))?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"news","payload":{"n":1}}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<()> {
        let frame = encode(event, payload)?;
        self.broadcast_frame(&frame, false);
        Ok(())
    }

    /// Like [`broadcast`](Self::broadcast) for this node's sockets only.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// node.broadcast_local("local-news", &1)?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"local-news","payload":1}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_local<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<()> {
        let frame = encode(event, payload)?;
        self.broadcast_frame(&frame, true);
        Ok(())
    }

    /// Broadcasts an encoded frame (see [`PushFrame`], e.g. for an event
    /// without payload).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// use crosswire::protocol::client::PushFrame;
    /// let frame = PushFrame::encode::<()>("refresh", None)?;
    /// node.broadcast_frame(&frame, false);
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"refresh"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_frame(&self, frame: &PushFrame, local_only: bool) {
        self.inner.local.push_to_all(&to_utf8(frame));
        if !local_only {
            self.relay_broadcast(frame);
        }
    }

    /// Sends to the socket bound to `socket_id`, on this node or any other
    /// (`toSocketId`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_id("u1", "pm", &"hello")?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"pm","payload":"hello"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_id<T: Serialize + ?Sized>(
        &self,
        socket_id: &str,
        event: &str,
        payload: &T,
    ) -> Result<()> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        let frame = encode(event, payload)?;
        self.to_socket_id_frame(socket_id, &frame);
        Ok(())
    }

    /// [`to_socket_id`](Self::to_socket_id) with an encoded frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// use crosswire::protocol::client::PushFrame;
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_id_frame("u1", &PushFrame::encode("pm", Some(&1))?);
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"pm","payload":1}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_id_frame(&self, socket_id: &str, frame: &PushFrame) {
        if !self.push_to_bound(socket_id, &to_utf8(frame)) {
            self.relay_to_sockets(&[socket_id], frame);
        }
    }

    /// Queues `text` for the open socket bound to `socket_id` on this node;
    /// false when there is none.
    pub(crate) fn push_to_bound(&self, socket_id: &str, text: &Utf8Bytes) -> bool {
        self.inner.local.push_to_bound(socket_id, text)
    }

    /// Sends to the sockets bound to `socket_ids`, wherever they are
    /// (`toSocketIds`): local ones directly, the rest in one relay message.
    /// Empty ids are skipped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_ids(&["u1", "offline-user"], "invite", &"game-7")?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"invite","payload":"game-7"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_ids<S: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        socket_ids: &[S],
        event: &str,
        payload: &T,
    ) -> Result<()> {
        let frame = encode(event, payload)?;
        self.to_socket_ids_frame(socket_ids, &frame);
        Ok(())
    }

    /// Sends event `event` to those of `socket_ids` bound on this node only
    /// (nothing goes on the bus).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to_local_socket_ids(&["u1"], "note", &"only here")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_local_socket_ids<S: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        socket_ids: &[S],
        event: &str,
        payload: &T,
    ) -> Result<()> {
        let text = to_utf8(&encode(event, payload)?);
        for id in socket_ids {
            self.push_to_bound(id.as_ref(), &text);
        }
        Ok(())
    }

    /// [`to_socket_ids`](Self::to_socket_ids) with an encoded frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// use crosswire::protocol::client::PushFrame;
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_ids_frame(&["u1", ""], &PushFrame::encode::<()>("tick", None)?);
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"tick"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_ids_frame<S: AsRef<str>>(&self, socket_ids: &[S], frame: &PushFrame) {
        let text = to_utf8(frame);
        let mut remote: Vec<&str> = Vec::new();
        for id in socket_ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| !id.is_empty())
        {
            if !self.push_to_bound(id, &text) {
                remote.push(id);
            }
        }
        if !remote.is_empty() {
            self.relay_to_sockets(&remote, frame);
        }
    }

    /// Sends to every member of room `room` of namespace `ns` on every node,
    /// except the excluded ids (`broadcastToRoom`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(node: crosswire::Node) -> crosswire::Result<()> {
    /// use crosswire::RoomSend;
    /// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new().exclude(["u9"]))?;
    /// # Ok(()) }
    /// ```
    pub fn broadcast_to_room<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        room: &str,
        event: &str,
        payload: &T,
        options: RoomSend,
    ) -> Result<()> {
        self.check_room_args(ns, room)?;
        let frame = encode(event, payload)?;
        self.broadcast_to_room_frame(ns, room, &frame, options)
    }

    /// [`broadcast_to_room`](Self::broadcast_to_room) with an encoded frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// use crosswire::protocol::client::PushFrame;
    /// use crosswire::RoomSend;
    /// node.set_user_socket("u1", &socket)?;
    /// node.join_room("chat", "r1", "u1")?;
    /// let frame = PushFrame::encode("say", Some(&"hi"))?;
    /// node.broadcast_to_room_frame("chat", "r1", &frame, RoomSend::new())?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), frame.as_str());
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_to_room_frame(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: RoomSend,
    ) -> Result<()> {
        self.check_room_args(ns, room)?;
        let destroy = options.destroy;
        if let Some((store, config)) = self.history_of(ns) {
            self.send_with_history(ns, room, frame, &options, store, config);
        } else {
            self.deliver_to_room(ns, Some(room), frame, &options.exclude);
            if !options.local_only {
                self.relay_room(ns, room, frame, options.exclude);
            }
        }
        if destroy {
            self.remove_room(ns, room);
        }
        Ok(())
    }

    /// Writes `frame` to the local members of one room (or, with `None`, of
    /// every room of the namespace), skipping `exclude`.
    pub(crate) fn deliver_to_room(
        &self,
        ns: &str,
        room: Option<&str>,
        frame: &PushFrame,
        exclude: &[String],
    ) {
        self.inner
            .local
            .push_to_room(ns, room, &to_utf8(frame), exclude, None);
    }
}
