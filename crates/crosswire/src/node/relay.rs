//! Relaying to other nodes through the bus, and the bus channels this node subscribes to.

use super::cluster::Reason;
use super::*;
use crosswire_protocol::envelope::WsRoute;

impl Node {
    // ----- relaying to other nodes (the bus plugs in here) ------------------

    pub(crate) fn relay_broadcast(&self, frame: &PushFrame) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let route = WsRoute::Broadcast {
            data: frame.clone(),
            sender_server: self.server_name().to_owned(),
        };
        cluster.publish_route(self.inner.channels.broadcast(), &route);
    }

    pub(crate) fn relay_to_sockets(&self, socket_ids: &[&str], frame: &PushFrame) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        if !self.routes_by_host() {
            let route = self.sockets_route(socket_ids, frame);
            cluster.publish_route(self.inner.channels.private_socket(), &route);
            return;
        }
        // Routing by host: each holder gets its own ids on its own channel;
        // ids no live node is known to hold go on the shared channel.
        let routes = self.route_ids(socket_ids);
        for (node, ids) in &routes.nodes {
            let route = self.sockets_route(ids, frame);
            cluster.publish_route(&self.inner.channels.node_sockets(node), &route);
        }
        if !routes.unknown.is_empty() {
            Stats::incr(&self.inner.stats.routed_unknown_ids);
            let route = self.sockets_route(&routes.unknown, frame);
            cluster.publish_route(self.inner.channels.private_socket(), &route);
        }
    }

    /// Passes a message sent to this node's socket-id channel on to the
    /// shared channel, for the ids this node does not hold (any more): the
    /// sender's directory was behind.
    pub(crate) fn forward_unheld(&self, socket_ids: &[&str], frame: &PushFrame) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        Stats::incr(&self.inner.stats.routed_forwarded);
        let route = self.sockets_route(socket_ids, frame);
        cluster.publish_route(self.inner.channels.private_socket(), &route);
    }

    fn sockets_route(&self, socket_ids: &[&str], frame: &PushFrame) -> WsRoute {
        match socket_ids {
            [one] => WsRoute::Socket {
                data: frame.clone(),
                socket_id: (*one).to_owned(),
                sender_server: self.server_name().to_owned(),
            },
            many => WsRoute::Sockets {
                data: frame.clone(),
                socket_ids: many.iter().map(|s| (*s).to_owned()).collect(),
                sender_server: self.server_name().to_owned(),
            },
        }
    }

    /// Publishes a bridge message: on the shared bridge channel, or with
    /// routing by host on the own channel of each of `targets` (none: the
    /// shared channel).
    pub(crate) fn publish_bridge_to(
        &self,
        targets: &[String],
        msg: &crosswire_protocol::envelope::BridgeMessage,
    ) -> Result<()> {
        let cluster = self.cluster().ok_or(Error::NoBus)?;
        if !self.routes_by_host() || targets.is_empty() {
            return cluster.publish_bridge(self.inner.channels.bridge(), msg);
        }
        let mut result = Ok(());
        for target in targets.iter().filter(|t| *t != self.server_name()) {
            if let Err(e) = cluster.publish_bridge(&self.inner.channels.node_bridge(target), msg) {
                result = Err(e);
            }
        }
        result
    }

    pub(crate) fn relay_room(&self, ns: &str, room: &str, frame: &PushFrame, exclude: Vec<String>) {
        self.relay_room_at(ns, room, frame, exclude, None);
    }

    /// [`relay_room`](Self::relay_room) of a message with a position in its
    /// room's history.
    pub(crate) fn relay_room_at(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        exclude: Vec<String>,
        position: Option<&crate::history::Position>,
    ) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let Some(channel) = self.room_channel(ns, room) else {
            return;
        };
        let route = WsRoute::Room {
            data: frame.clone(),
            room_namespace: ns.to_owned(),
            room_id: Some(room.to_owned()),
            sender_server: self.server_name().to_owned(),
            exclude_socket_ids: exclude,
        };
        cluster.publish_route_at(&channel, &route, position);
    }

    // ----- bus channels --------------------------------------------------------

    /// Waits until the node's bus subscriptions match what it needs (core
    /// channels, presets, customs, joined namespaces). Immediate without a bus.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.wait_settled().await;
        }
    }

    /// Subscribes to a custom channel (`manualSubscribe`); resolves once the
    /// bus confirmed it. Its messages go to the custom channel handler.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.subscribe("jobs").await?;
    /// assert!(node.subscribed_channels().contains(&"jobs".to_owned()));
    /// let standalone = crosswire::Node::builder().build()?;
    /// assert!(standalone.subscribe("jobs").await.is_err()); // no bus
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, channel: &str) -> Result<()> {
        non_empty(channel, "The channel must be a non-empty string")?;
        let cluster = self.cluster().ok_or(Error::NoBus)?;
        if self.inner.channels.is_routed() && self.inner.channels.is_routing_channel(channel) {
            return Err(Error::InvalidArgument(
                "this channel name is used by routing by host",
            ));
        }
        cluster.want(channel, Reason::Manual, true);
        cluster.wait_confirmed(channel, true).await;
        Ok(())
    }

    /// Drops a manual subscription (`manualUnsubscribe`). The channel stays
    /// subscribed while the node still needs it for another reason (a
    /// joined namespace, a preset): internal channels cannot be removed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.subscribe("jobs").await?;
    /// node.unsubscribe("jobs").await?;
    /// assert!(!node.subscribed_channels().contains(&"jobs".to_owned()));
    /// // Internal channels stay.
    /// node.unsubscribe("ws:broadcast").await?;
    /// assert!(node.subscribed_channels().contains(&"ws:broadcast".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unsubscribe(&self, channel: &str) -> Result<()> {
        non_empty(channel, "The channel must be a non-empty string")?;
        let cluster = self.cluster().ok_or(Error::NoBus)?;
        cluster.want(channel, Reason::Manual, false);
        if !cluster.is_wanted(channel) {
            cluster.wait_confirmed(channel, false).await;
        }
        Ok(())
    }

    /// Channels this node is subscribed to (confirmed by the bus), sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels(), ["csbp:server_bridge", "ws:broadcast", "ws:private_socket"]);
    /// assert!(crosswire::Node::builder().build()?.subscribed_channels().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribed_channels(&self) -> Vec<String> {
        self.cluster().map(|c| c.subscribed()).unwrap_or_default()
    }

    /// Sets the handler of messages on custom channels
    /// (`setCustomChannelHandler`), replacing any previous one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    /// b.set_custom_channel_handler(move |channel, message| {
    ///     let _ = tx.send((channel, message));
    ///     async {}
    /// });
    /// b.subscribe("jobs").await?;
    /// a.publish_raw("jobs", &serde_json::json!({"id": 7}))?;
    /// let (channel, message) = received.recv().await.ok_or(crosswire::Error::Shutdown)?;
    /// assert_eq!(channel, "jobs");
    /// assert_eq!(message, serde_json::json!({"id": 7}));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_custom_channel_handler<F, Fut>(&self, handler: F)
    where
        F: Fn(String, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: Arc<CustomHandler> = Arc::new(move |c, v| Box::pin(handler(c, v)));
        *self.inner.custom_handler.write() = Some(h);
    }

    /// Removes the custom channel handler (`removeCustomChannelHandler`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// b.set_custom_channel_handler(|_channel, _message| async {});
    /// b.remove_custom_channel_handler();
    /// b.subscribe("jobs").await?;
    /// a.publish_raw("jobs", &serde_json::json!({"id": 7}))?;
    /// while b.stats().bus_dropped_unhandled == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_custom_channel_handler(&self) {
        *self.inner.custom_handler.write() = None;
    }

    /// Publishes `message` as is on `channel` with the cluster codec
    /// (`publishRedisMessage`); nothing is added to it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// b.subscribe("metrics").await?;
    /// let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    /// b.set_custom_channel_handler(move |_channel, message| {
    ///     let _ = tx.send(message);
    ///     async {}
    /// });
    /// a.publish_raw("metrics", &serde_json::json!({"cpu": 0.5}))?;
    /// assert_eq!(received.recv().await, Some(serde_json::json!({"cpu": 0.5})));
    /// assert!(a.publish_raw("metrics", &[1, 2]).is_err()); // not an object
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish_raw<T: Serialize + ?Sized>(&self, channel: &str, message: &T) -> Result<()> {
        non_empty(channel, "channel must be a non-empty string")?;
        let cluster = self.cluster().ok_or(Error::NoBus)?;
        let value = serde_json::to_value(message)?;
        if !value.is_object() {
            return Err(Error::InvalidArgument("message must be an object"));
        }
        let bytes = crosswire_protocol::envelope::encode_value(&value, cluster.codec)?;
        cluster.publish_raw(channel, bytes)
    }
}
