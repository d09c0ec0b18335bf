//! The socket-id registry: binding ids to this node's sockets.

use super::*;
use crate::error::SOCKET_ID_MSG;

impl Node {
    // ----- socket registry -----------------------------------------------

    /// Binds `socket_id` to `socket` (`setUserSocket`). Returns the socket the
    /// id was bound to before, if another one: it is neither closed nor
    /// otherwise touched, so the caller decides (e.g. close it with 4012).
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
    /// assert_eq!(node.set_user_socket("u1", &socket)?, None);
    /// assert_eq!(node.get_socket("u1").as_ref(), Some(&socket));
    /// assert_eq!(socket.socket_ids(), ["u1"]);
    /// // Binding the same id to the same socket again changes nothing.
    /// assert_eq!(node.set_user_socket("u1", &socket)?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_user_socket(&self, socket_id: &str, socket: &Socket) -> Result<Option<Socket>> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        let previous = self.inner.local.bind(socket_id, socket);
        self.directory_touched(socket_id);
        self.claim_login(socket_id, socket, previous.as_ref());
        self.recover_bound(socket_id, socket);
        Ok(previous)
    }

    /// Unbinds `socket_id` and removes it from every room
    /// (`removeUserSocket`). The socket itself stays open.
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
    /// node.join_room("chat", "r1", "u1")?;
    /// node.remove_user_socket("u1")?;
    /// assert!(node.get_socket("u1").is_none());
    /// assert!(!node.is_joined_room("u1", "chat", None));
    /// assert!(socket.is_open());
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_user_socket(&self, socket_id: &str) -> Result<()> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        if let Some(socket) = self.get_socket(socket_id) {
            self.session_ended(socket_id, socket.id());
        }
        self.inner.local.unbind(socket_id);
        self.directory_touched(socket_id);
        self.leave_all_rooms(socket_id);
        Ok(())
    }

    /// The socket bound to `socket_id` (`getSocketInstance`).
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
    /// assert!(node.get_socket("u1").is_none());
    /// node.set_user_socket("u1", &socket)?;
    /// assert_eq!(node.get_socket("u1").map(|s| s.id()), Some(socket.id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_socket(&self, socket_id: &str) -> Option<Socket> {
        self.inner.local.get(socket_id)
    }

    /// Number of bound socket ids (`getSocketClientCount`).
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
    /// assert_eq!(node.client_count(), 0);
    /// node.set_user_socket("u1", &socket)?;
    /// node.set_user_socket("u1-tab2", &socket)?;
    /// assert_eq!(node.client_count(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn client_count(&self) -> usize {
        self.inner.local.bound_count()
    }

    /// Number of open connections, bound or not.
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
    /// assert_eq!(node.connection_count(), 1);
    /// assert_eq!(node.client_count(), 0); // connected, not bound
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_count(&self) -> usize {
        self.inner.local.connection_count()
    }

    /// Called when a connection ended: unbind the ids it still owns and
    /// remove them from their rooms.
    pub(crate) fn release(&self, socket: &Socket) {
        for id in self.inner.local.release(socket) {
            self.directory_touched(&id);
            self.session_ended(&id, socket.id());
            self.leave_all_rooms(&id);
        }
    }
}
