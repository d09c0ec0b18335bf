//! Bus channel names (`docs/protocol.md` §6.2) and how a received channel is
//! classified.
//!
//! With the default prefixes a cluster uses:
//!
//! | purpose | channel |
//! |---|---|
//! | cross-server events and callback replies | `csbp:server_bridge` |
//! | unicast / multicast to sockets | `ws:private_socket` |
//! | global broadcast to sockets | `ws:broadcast` |
//! | room namespace `chat` | `ws:chat` |
//! | custom | the string exactly as configured |
//!
//! ```
//! use crosswire_protocol::channels::{ChannelKind, Channels};
//! let ch = Channels::default();
//! assert_eq!(ch.bridge(), "csbp:server_bridge");
//! assert_eq!(ch.room_namespace("chat").unwrap(), "ws:chat");
//! assert_eq!(ch.classify("ws:chat"), ChannelKind::Room);
//! assert_eq!(ch.classify("my:custom"), ChannelKind::Custom);
//! ```

/// Default prefix of the bridge channel (the original's `bridgePrefix`).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::{Channels, DEFAULT_BRIDGE_PREFIX};
/// assert_eq!(DEFAULT_BRIDGE_PREFIX, "csbp:");
/// assert_eq!(Channels::default().bridge_prefix(), DEFAULT_BRIDGE_PREFIX);
/// ```
pub const DEFAULT_BRIDGE_PREFIX: &str = "csbp:";

/// Default prefix of every WebSocket routing channel (the original's
/// `wsPrefix`).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::{Channels, DEFAULT_WS_PREFIX};
/// assert_eq!(DEFAULT_WS_PREFIX, "ws:");
/// assert_eq!(Channels::default().ws_prefix(), DEFAULT_WS_PREFIX);
/// ```
pub const DEFAULT_WS_PREFIX: &str = "ws:";

/// Suffix of the bridge channel.
const BRIDGE_SUFFIX: &str = "server_bridge";
/// Suffix of the unicast / multicast channel.
const PRIVATE_SOCKET_SUFFIX: &str = "private_socket";
/// Suffix of the broadcast channel.
const BROADCAST_SUFFIX: &str = "broadcast";

/// The channel names of one cluster, derived from its two prefixes.
///
/// All nodes sharing a bus must use the same prefixes.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::Channels;
/// let ch = Channels::new("app-bridge:", "app-ws:")?;
/// assert_eq!(ch.bridge(), "app-bridge:server_bridge");
/// assert_eq!(ch.private_socket(), "app-ws:private_socket");
/// assert_eq!(ch.broadcast(), "app-ws:broadcast");
/// assert_eq!(ch.room_namespace("chat")?, "app-ws:chat");
/// # Ok::<(), crosswire_protocol::channels::ChannelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    bridge_prefix: String,
    ws_prefix: String,
    bridge: String,
    private_socket: String,
    broadcast: String,
    /// Routing by host: the per-room and per-node channels are recognised.
    routed: bool,
}

/// Which handler a message received on a channel goes to (`docs/protocol.md`
/// §6.3).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::{ChannelKind, Channels};
/// let ch = Channels::default();
/// let kinds: Vec<ChannelKind> = ["csbp:server_bridge", "ws:broadcast", "ws:private_socket", "ws:chat", "jobs"]
///     .iter()
///     .map(|c| ch.classify(c))
///     .collect();
/// assert_eq!(
///     kinds,
///     [ChannelKind::Bridge, ChannelKind::Broadcast, ChannelKind::PrivateSocket, ChannelKind::Room, ChannelKind::Custom]
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// `<bridgePrefix>server_bridge`: cross-server events and callback
    /// replies ([`crate::envelope::BridgeMessage`]).
    Bridge,
    /// `<wsPrefix>broadcast`: a frame for every connected socket.
    Broadcast,
    /// `<wsPrefix>private_socket`: a frame for one or several socket ids.
    PrivateSocket,
    /// Any other channel starting with `wsPrefix`: a room namespace.
    Room,
    /// Routing by host only ([`Channels::routed`]): the channel of one room,
    /// `<bridgePrefix>room:<len>:<namespace>:<room>`
    /// ([`Channels::room`]); its messages are room messages.
    RoutedRoom,
    /// Routing by host only: a node's channel for messages to the socket ids
    /// it holds, `<bridgePrefix>ids:<server>` ([`Channels::node_sockets`]);
    /// its messages are private-socket messages.
    NodeSockets,
    /// Routing by host only: a node's channel for cross-server events
    /// addressed to it and for replies to its calls,
    /// `<bridgePrefix>node:<server>` ([`Channels::node_bridge`]); its
    /// messages are bridge messages.
    NodeBridge,
    /// Everything else: the application's custom channels.
    Custom,
}

/// Invalid prefixes or room namespaces.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::{ChannelError, Channels};
/// assert_eq!(Channels::new("p:", "p:"), Err(ChannelError::SamePrefix("p:".into())));
/// let ch = Channels::default();
/// assert_eq!(ch.room_namespace(""), Err(ChannelError::EmptyNamespace));
/// let err = ch.room_namespace("broadcast").unwrap_err();
/// assert_eq!(err, ChannelError::ReservedNamespace("broadcast".into()));
/// assert_eq!(err.to_string(), r#"room namespace "broadcast" maps to a reserved channel"#);
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// Both prefixes are equal (the original's constructor error).
    #[error(
        "bridgePrefix and wsPrefix must be different to avoid channel conflicts. Received: \"{0}\""
    )]
    SamePrefix(String),
    /// An empty room namespace.
    #[error("roomNamespace must be a non-empty string")]
    EmptyNamespace,
    /// A room namespace whose channel is one of the reserved channels
    /// (`broadcast`, `private_socket`, or the bridge channel).
    #[error("room namespace \"{0}\" maps to a reserved channel")]
    ReservedNamespace(String),
}

impl Default for Channels {
    fn default() -> Self {
        Self::build(DEFAULT_BRIDGE_PREFIX, DEFAULT_WS_PREFIX)
    }
}

impl Channels {
    /// Channel names for the given prefixes. An empty prefix selects the
    /// default (the original treats any falsy prefix that way); equal
    /// prefixes are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::{ChannelError, Channels};
    /// let ch = Channels::new("", "app:").unwrap();
    /// assert_eq!(ch.bridge(), "csbp:server_bridge");
    /// assert_eq!(ch.broadcast(), "app:broadcast");
    /// assert_eq!(Channels::new("x:", "x:").unwrap_err(), ChannelError::SamePrefix("x:".into()));
    /// ```
    pub fn new(bridge_prefix: &str, ws_prefix: &str) -> Result<Channels, ChannelError> {
        let bridge_prefix = if bridge_prefix.is_empty() {
            DEFAULT_BRIDGE_PREFIX
        } else {
            bridge_prefix
        };
        let ws_prefix = if ws_prefix.is_empty() {
            DEFAULT_WS_PREFIX
        } else {
            ws_prefix
        };
        if bridge_prefix == ws_prefix {
            return Err(ChannelError::SamePrefix(ws_prefix.to_owned()));
        }
        Ok(Self::build(bridge_prefix, ws_prefix))
    }

    fn build(bridge_prefix: &str, ws_prefix: &str) -> Channels {
        Channels {
            bridge_prefix: bridge_prefix.to_owned(),
            ws_prefix: ws_prefix.to_owned(),
            bridge: format!("{bridge_prefix}{BRIDGE_SUFFIX}"),
            private_socket: format!("{ws_prefix}{PRIVATE_SOCKET_SUFFIX}"),
            broadcast: format!("{ws_prefix}{BROADCAST_SUFFIX}"),
            routed: false,
        }
    }

    /// The same names, with the channels of routing by host recognised by
    /// [`classify`](Self::classify): a room's own channel, and each node's
    /// channels for its socket ids and its cross-server messages. Without
    /// it those names are custom channels, as in the original.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::{ChannelKind, Channels};
    /// let ch = Channels::default().routed(true);
    /// assert!(ch.is_routed());
    /// assert_eq!(ch.classify(&ch.room("chat", "r1")), ChannelKind::RoutedRoom);
    /// assert_eq!(ch.classify(&ch.node_sockets("n1")), ChannelKind::NodeSockets);
    /// assert_eq!(ch.classify(&ch.node_bridge("n1")), ChannelKind::NodeBridge);
    /// assert_eq!(Channels::default().classify(&ch.room("chat", "r1")), ChannelKind::Custom);
    /// ```
    pub fn routed(mut self, on: bool) -> Channels {
        self.routed = on;
        self
    }

    /// Whether the channels of routing by host are recognised.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert!(!Channels::default().is_routed());
    /// ```
    pub fn is_routed(&self) -> bool {
        self.routed
    }

    /// The channel of one room under routing by host:
    /// `<bridgePrefix>room:<byte length of ns>:<ns>:<room>`, so that no two
    /// (namespace, room) pairs share a channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// let ch = Channels::default();
    /// assert_eq!(ch.room("chat", "r1"), "csbp:room:4:chat:r1");
    /// assert_ne!(ch.room("a:b", "c"), ch.room("a", "b:c"));
    /// ```
    pub fn room(&self, ns: &str, room: &str) -> String {
        format!("{}room:{}:{ns}:{room}", self.bridge_prefix, ns.len())
    }

    /// A node's channel for messages to the socket ids it holds (routing by
    /// host): `<bridgePrefix>ids:<server>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().node_sockets("n1"), "csbp:ids:n1");
    /// ```
    pub fn node_sockets(&self, server: &str) -> String {
        format!("{}ids:{server}", self.bridge_prefix)
    }

    /// A node's channel for the cross-server events addressed to it and the
    /// replies to its calls (routing by host): `<bridgePrefix>node:<server>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().node_bridge("n1"), "csbp:node:n1");
    /// ```
    pub fn node_bridge(&self, server: &str) -> String {
        format!("{}node:{server}", self.bridge_prefix)
    }

    /// Whether `channel` is one of the names routing by host uses (a custom
    /// channel must not take one in that mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// let ch = Channels::default();
    /// assert!(ch.is_routing_channel("csbp:ids:n2"));
    /// assert!(!ch.is_routing_channel("jobs"));
    /// ```
    pub fn is_routing_channel(&self, channel: &str) -> bool {
        channel
            .strip_prefix(self.bridge_prefix.as_str())
            .is_some_and(|rest| {
                rest.starts_with("room:") || rest.starts_with("ids:") || rest.starts_with("node:")
            })
    }

    /// The bridge prefix (default `csbp:`).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().bridge_prefix(), "csbp:");
    /// assert_eq!(Channels::new("b:", "")?.bridge_prefix(), "b:");
    /// # Ok::<(), crosswire_protocol::channels::ChannelError>(())
    /// ```
    pub fn bridge_prefix(&self) -> &str {
        &self.bridge_prefix
    }

    /// The WebSocket routing prefix (default `ws:`).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().ws_prefix(), "ws:");
    /// assert_eq!(Channels::new("", "app:")?.ws_prefix(), "app:");
    /// # Ok::<(), crosswire_protocol::channels::ChannelError>(())
    /// ```
    pub fn ws_prefix(&self) -> &str {
        &self.ws_prefix
    }

    /// The bridge channel, `csbp:server_bridge` by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().bridge(), "csbp:server_bridge");
    /// assert_eq!(Channels::new("b:", "")?.bridge(), "b:server_bridge");
    /// # Ok::<(), crosswire_protocol::channels::ChannelError>(())
    /// ```
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The unicast / multicast channel, `ws:private_socket` by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().private_socket(), "ws:private_socket");
    /// assert_eq!(Channels::new("", "app:")?.private_socket(), "app:private_socket");
    /// # Ok::<(), crosswire_protocol::channels::ChannelError>(())
    /// ```
    pub fn private_socket(&self) -> &str {
        &self.private_socket
    }

    /// The broadcast channel, `ws:broadcast` by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// assert_eq!(Channels::default().broadcast(), "ws:broadcast");
    /// assert_eq!(Channels::new("", "app:")?.broadcast(), "app:broadcast");
    /// # Ok::<(), crosswire_protocol::channels::ChannelError>(())
    /// ```
    pub fn broadcast(&self) -> &str {
        &self.broadcast
    }

    /// The channel of room namespace `ns`, by the original's `joinRoom` rule:
    /// `ns` itself if it already starts with the WebSocket prefix, else the
    /// prefix followed by `ns`.
    ///
    /// Unlike the original, namespaces whose channel would be one of the
    /// reserved channels (`broadcast`, `private_socket`, or the bridge
    /// channel) are refused, so a room message can never turn into a global
    /// broadcast (weakness 12 of `docs/compatibility.md`).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::{ChannelError, Channels};
    /// let ch = Channels::default();
    /// assert_eq!(ch.room_namespace("chat").unwrap(), "ws:chat");
    /// assert_eq!(ch.room_namespace("ws:game").unwrap(), "ws:game");
    /// assert_eq!(ch.room_namespace("csbp:x").unwrap(), "ws:csbp:x");
    /// assert!(matches!(ch.room_namespace("broadcast"), Err(ChannelError::ReservedNamespace(_))));
    /// assert_eq!(ch.room_namespace(""), Err(ChannelError::EmptyNamespace));
    /// ```
    pub fn room_namespace(&self, ns: &str) -> Result<String, ChannelError> {
        if ns.is_empty() {
            return Err(ChannelError::EmptyNamespace);
        }
        let channel = if ns.starts_with(&self.ws_prefix) {
            ns.to_owned()
        } else {
            format!("{}{}", self.ws_prefix, ns)
        };
        if channel == self.private_socket || channel == self.broadcast || channel == self.bridge {
            return Err(ChannelError::ReservedNamespace(ns.to_owned()));
        }
        Ok(channel)
    }

    /// The channel of a preset room namespace.
    ///
    /// The original maps presets with an extra rule (a preset starting with
    /// the *bridge* prefix is used verbatim) while `joinRoom` only checks the
    /// WebSocket prefix, so a preset `csbp:x` was subscribed as `csbp:x` but
    /// joined as `ws:csbp:x` and never received its room messages
    /// (weakness 12 of `docs/compatibility.md`). crosswire maps presets with exactly the same rule as
    /// [`Channels::room_namespace`], including the reserved-name checks, so
    /// presets and joined rooms always agree.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::Channels;
    /// let ch = Channels::default();
    /// assert_eq!(ch.preset_namespace("lobby").unwrap(), "ws:lobby");
    /// assert_eq!(ch.preset_namespace("csbp:x").unwrap(), ch.room_namespace("csbp:x").unwrap());
    /// ```
    pub fn preset_namespace(&self, ns: &str) -> Result<String, ChannelError> {
        self.room_namespace(ns)
    }

    /// Classifies a channel a message was received on, in the original's
    /// order: the bridge channel first, then any channel starting with the
    /// WebSocket prefix (`private_socket` and `broadcast` are special, every
    /// other one is a room namespace), then custom.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::channels::{ChannelKind, Channels};
    /// let ch = Channels::default();
    /// assert_eq!(ch.classify("csbp:server_bridge"), ChannelKind::Bridge);
    /// assert_eq!(ch.classify("ws:broadcast"), ChannelKind::Broadcast);
    /// assert_eq!(ch.classify("ws:private_socket"), ChannelKind::PrivateSocket);
    /// assert_eq!(ch.classify("ws:game"), ChannelKind::Room);
    /// assert_eq!(ch.classify("csbp:other"), ChannelKind::Custom);
    /// ```
    pub fn classify(&self, channel: &str) -> ChannelKind {
        if channel == self.bridge {
            ChannelKind::Bridge
        } else if let Some(rest) = self
            .routed
            .then(|| channel.strip_prefix(self.bridge_prefix.as_str()))
            .flatten()
            .filter(|_| self.is_routing_channel(channel))
        {
            if rest.starts_with("room:") {
                ChannelKind::RoutedRoom
            } else if rest.starts_with("ids:") {
                ChannelKind::NodeSockets
            } else {
                ChannelKind::NodeBridge
            }
        } else if channel.starts_with(&self.ws_prefix) {
            if channel == self.private_socket {
                ChannelKind::PrivateSocket
            } else if channel == self.broadcast {
                ChannelKind::Broadcast
            } else {
                ChannelKind::Room
            }
        } else {
            ChannelKind::Custom
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let ch = Channels::default();
        assert_eq!(ch, Channels::new("", "").unwrap());
        assert_eq!(ch.bridge_prefix(), "csbp:");
        assert_eq!(ch.ws_prefix(), "ws:");
        assert_eq!(ch.bridge(), "csbp:server_bridge");
        assert_eq!(ch.private_socket(), "ws:private_socket");
        assert_eq!(ch.broadcast(), "ws:broadcast");
    }

    #[test]
    fn same_prefix_message() {
        let err = Channels::new("ws:", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bridgePrefix and wsPrefix must be different to avoid channel conflicts. Received: \"ws:\""
        );
    }

    #[test]
    fn reserved_namespaces() {
        let ch = Channels::default();
        for ns in [
            "broadcast",
            "private_socket",
            "ws:broadcast",
            "ws:private_socket",
        ] {
            assert_eq!(
                ch.room_namespace(ns),
                Err(ChannelError::ReservedNamespace(ns.into()))
            );
            assert_eq!(
                ch.preset_namespace(ns),
                Err(ChannelError::ReservedNamespace(ns.into()))
            );
        }
        assert_eq!(ch.preset_namespace(""), Err(ChannelError::EmptyNamespace));
        // Case matters, as in the original.
        assert_eq!(ch.room_namespace("Broadcast").unwrap(), "ws:Broadcast");
    }

    #[test]
    fn bridge_channel_inside_ws_prefix_is_reserved() {
        let ch = Channels::new("ws:x:", "ws:").unwrap();
        assert_eq!(ch.classify("ws:x:server_bridge"), ChannelKind::Bridge);
        assert!(ch.room_namespace("x:server_bridge").is_err());
        assert_eq!(ch.classify("ws:x:other"), ChannelKind::Room);
    }
}
