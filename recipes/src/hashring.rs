//! FAQ 13, "how to distribute users to different WebSocket servers": a
//! consistent-hash ring that maps user ids to node addresses, for the login
//! service that tells each client where to connect.
//!
//! Each node is placed on the ring at many points ("virtual nodes"), a user
//! goes to the first point at or after the hash of its id. Compared with
//! `hash(user) % nodes.len()` (the FAQ's first sketch), adding or removing
//! one node moves only the users of that node's arcs — about `1/n` of them —
//! instead of almost everyone, so most users keep their node (and the
//! business state that lives there) when the cluster grows.
//!
//! The hash is FNV-1a with a 64-bit finaliser: stable across processes,
//! platforms and Rust versions, so every login service instance computes the
//! same assignment.
//!
//! ```
//! use crosswire_recipes::hashring::HashRing;
//!
//! let mut ring = HashRing::new(["ws://10.0.0.1:9000", "ws://10.0.0.2:9000", "ws://10.0.0.3:9000"]);
//! let before = ring.node_for("user-42").unwrap().to_owned();
//! assert_eq!(ring.node_for("user-42"), Some(before.as_str())); // deterministic
//!
//! ring.add("ws://10.0.0.4:9000");
//! let after = ring.node_for("user-42").unwrap();
//! // Either the user stayed, or it moved to the new node: never elsewhere.
//! assert!(after == before || after == "ws://10.0.0.4:9000");
//! ```

use std::collections::BTreeMap;

/// A consistent-hash ring of node addresses.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::hashring::HashRing;
/// let ring = HashRing::new(["ws://10.0.0.1:9000", "ws://10.0.0.2:9000"]);
/// let node = ring.node_for("user-42");
/// assert!(node == Some("ws://10.0.0.1:9000") || node == Some("ws://10.0.0.2:9000"));
/// assert_eq!(ring.node_for("user-42"), node);
/// ```
#[derive(Debug, Clone)]
pub struct HashRing {
    /// Point on the ring → node address.
    points: BTreeMap<u64, String>,
    /// The nodes, in insertion order.
    nodes: Vec<String>,
    replicas: usize,
}

impl Default for HashRing {
    /// An empty ring with [`DEFAULT_REPLICAS`](Self::DEFAULT_REPLICAS).
    fn default() -> Self {
        Self::with_replicas(Vec::<String>::new(), Self::DEFAULT_REPLICAS)
    }
}

impl HashRing {
    /// Virtual nodes per node by default: with a handful of nodes, each gets
    /// its share of users to within about 10 %.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::hashring::HashRing;
    /// assert_eq!(HashRing::DEFAULT_REPLICAS, 256);
    /// ```
    pub const DEFAULT_REPLICAS: usize = 256;

    /// A ring of `nodes` with [`DEFAULT_REPLICAS`](Self::DEFAULT_REPLICAS)
    /// points each. Duplicates are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = crosswire_recipes::hashring::HashRing::new(["a", "b", "a"]);
    /// assert_eq!(ring.nodes(), ["a", "b"]);
    /// ```
    pub fn new<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_replicas(nodes, Self::DEFAULT_REPLICAS)
    }

    /// A ring with `replicas` points per node (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = crosswire_recipes::hashring::HashRing::with_replicas(["a"], 1);
    /// assert_eq!(ring.node_for("anyone"), Some("a"));
    /// ```
    pub fn with_replicas<I, S>(nodes: I, replicas: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut ring = HashRing {
            points: BTreeMap::new(),
            nodes: Vec::new(),
            replicas: replicas.max(1),
        };
        for node in nodes {
            ring.add(node);
        }
        ring
    }

    /// Adds a node; false if it was already there.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ring = crosswire_recipes::hashring::HashRing::new(["a"]);
    /// assert!(ring.add("b"));
    /// assert!(!ring.add("b"));
    /// ```
    pub fn add(&mut self, node: impl Into<String>) -> bool {
        let node = node.into();
        if self.nodes.contains(&node) {
            return false;
        }
        for i in 0..self.replicas {
            let point = hash64(format!("{node}#{i}").as_bytes());
            // On the (rare) collision of two points the earlier node keeps
            // it, so that the assignment does not depend on insertion order
            // of later nodes more than necessary.
            self.points.entry(point).or_insert_with(|| node.clone());
        }
        self.nodes.push(node);
        true
    }

    /// Removes a node; false if it was not there. Only its users move.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ring = crosswire_recipes::hashring::HashRing::new(["a", "b"]);
    /// assert!(ring.remove("a"));
    /// assert_eq!(ring.node_for("anyone"), Some("b"));
    /// assert!(!ring.remove("a"));
    /// ```
    pub fn remove(&mut self, node: &str) -> bool {
        let Some(pos) = self.nodes.iter().position(|n| n == node) else {
            return false;
        };
        self.nodes.remove(pos);
        // Rebuild, so that points the removed node shadowed on a collision
        // come back.
        let nodes = std::mem::take(&mut self.nodes);
        self.points.clear();
        for n in nodes {
            self.add(n);
        }
        true
    }

    /// The node `key` (a user id, a room id, ...) belongs to; `None` for an
    /// empty ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::hashring::HashRing;
    /// assert_eq!(HashRing::new(Vec::<String>::new()).node_for("u1"), None);
    /// ```
    pub fn node_for(&self, key: &str) -> Option<&str> {
        let h = hash64(key.as_bytes());
        self.points
            .range(h..)
            .next()
            .or_else(|| self.points.iter().next())
            .map(|(_, node)| node.as_str())
    }

    /// The URL a user should connect to: its node's address with `?id=<user>`
    /// (for a node address given as a `ws://` or `wss://` base URL).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = crosswire_recipes::hashring::HashRing::new(["ws://10.0.0.1:9000"]);
    /// assert_eq!(ring.connection_url("u 1").as_deref(), Some("ws://10.0.0.1:9000/?id=u+1"));
    /// ```
    pub fn connection_url(&self, user: &str) -> Option<String> {
        let node = self.node_for(user)?;
        let options = crosswire_client::ConnectorOptions::new(node).param("id", user);
        Some(options.connection_url())
    }

    /// The nodes, in insertion order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ring = crosswire_recipes::hashring::HashRing::new(["b", "a"]);
    /// ring.add("c");
    /// assert_eq!(ring.nodes(), ["b", "a", "c"]);
    /// ```
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Number of nodes.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = crosswire_recipes::hashring::HashRing::new(["a", "b"]);
    /// assert_eq!(ring.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no node.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::hashring::HashRing;
    /// let mut ring = HashRing::default();
    /// assert!(ring.is_empty());
    /// ring.add("a");
    /// assert!(!ring.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The ring's hash: 64-bit FNV-1a followed by the MurmurHash3 finaliser (FNV
/// alone clusters similar keys such as `node#1`, `node#2`).
///
/// # Examples
///
/// ```
/// use crosswire_recipes::hashring::hash64;
/// assert_eq!(hash64(b"u1"), hash64(b"u1"));
/// assert_ne!(hash64(b"u1"), hash64(b"u2"));
/// ```
pub fn hash64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    // fmix64
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn users(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user-{i}")).collect()
    }

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("ws://10.0.0.{i}:9000")).collect()
    }

    #[test]
    fn the_hash_is_stable() {
        // Fixed values: a change would move every user of every deployment.
        const EMPTY: u64 = 0xefd0_1f60_ba99_2926;
        const USER_1: u64 = 0x41a2_fca5_c684_01c5;
        assert_eq!(hash64(b""), EMPTY);
        assert_eq!(hash64(b"user-1"), USER_1);
        let a = hash64(b"node#1");
        let b = hash64(b"node#2");
        assert_ne!(a >> 56, b >> 56, "finaliser spreads similar keys");
    }

    #[test]
    fn users_spread_evenly() {
        let ring = HashRing::new(nodes(4));
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let all = users(20_000);
        for u in &all {
            *counts.entry(ring.node_for(u).unwrap()).or_default() += 1;
        }
        assert_eq!(counts.len(), 4);
        for (node, n) in counts {
            // 5000 each when perfectly even; allow ±20 %.
            assert!((4000..=6000).contains(&n), "{node} got {n}");
        }
    }

    #[test]
    fn adding_a_node_moves_only_users_to_it() {
        let mut ring = HashRing::new(nodes(4));
        let all = users(20_000);
        let before: Vec<String> = all
            .iter()
            .map(|u| ring.node_for(u).unwrap().to_owned())
            .collect();
        let new = "ws://10.0.0.5:9000";
        assert!(ring.add(new));
        let mut moved = 0;
        for (u, old) in all.iter().zip(&before) {
            let now = ring.node_for(u).unwrap();
            if now != old {
                assert_eq!(now, new, "{u} moved between old nodes");
                moved += 1;
            }
        }
        // About a fifth of the users move (4000 when even).
        assert!((2800..=5200).contains(&moved), "{moved} moved");
    }

    #[test]
    fn removing_a_node_moves_only_its_users() {
        let mut ring = HashRing::new(nodes(5));
        let all = users(10_000);
        let before: Vec<String> = all
            .iter()
            .map(|u| ring.node_for(u).unwrap().to_owned())
            .collect();
        let gone = "ws://10.0.0.3:9000";
        assert!(ring.remove(gone));
        assert_eq!(ring.len(), 4);
        for (u, old) in all.iter().zip(&before) {
            let now = ring.node_for(u).unwrap();
            assert_ne!(now, gone);
            if old != gone {
                assert_eq!(now, old, "{u} moved although its node stayed");
            }
        }
        // Adding it back restores the original assignment exactly.
        ring.add(gone);
        for (u, old) in all.iter().zip(&before) {
            assert_eq!(ring.node_for(u).unwrap(), old);
        }
    }

    #[test]
    fn assignment_does_not_depend_on_node_order() {
        let a = HashRing::new(nodes(3));
        let mut reversed = nodes(3);
        reversed.reverse();
        let b = HashRing::new(reversed);
        for u in users(2000) {
            assert_eq!(a.node_for(&u), b.node_for(&u));
        }
    }

    #[test]
    fn empty_and_single_rings() {
        let mut ring = HashRing::default();
        assert!(ring.is_empty());
        assert_eq!(ring.node_for("u"), None);
        assert_eq!(ring.connection_url("u"), None);
        ring.add("ws://h:1");
        assert_eq!(ring.node_for("u"), Some("ws://h:1"));
        assert_eq!(ring.connection_url("u").unwrap(), "ws://h:1/?id=u");
    }
}
