//! The identity of a Redis node within one bus.

use serde::Serialize;
use std::fmt;

/// Identifies one Redis node of a [`RedisBus`](crate::RedisBus), unique for
/// the life of the bus (ids of removed nodes are not reused). Nodes given to
/// [`RedisBus::connect`](crate::RedisBus::connect) get ids `0, 1, …` in
/// configuration order.
///
/// # Examples
///
/// ```
/// use crosswire_redis::NodeId;
/// assert_eq!(NodeId::new(3).get(), 3);
/// assert_eq!(NodeId::new(3).to_string(), "#3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeId(u64);

impl NodeId {
    /// The id with the given number.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_redis::NodeId;
    /// const FIRST: NodeId = NodeId::new(0);
    /// assert_eq!(FIRST.to_string(), "#0");
    /// assert!(NodeId::new(1) > FIRST);
    /// ```
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number of this id.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_redis::NodeId;
    /// assert_eq!(NodeId::new(42).get(), 42);
    /// ```
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
