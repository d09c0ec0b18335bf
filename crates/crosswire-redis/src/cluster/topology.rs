//! Hash slots and the slot map of the cluster.

use redis::Value;

/// Number of hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// No master owns the slot.
const NONE: u16 = u16::MAX;

/// The hash slot of a key or shard channel, as Redis Cluster computes it:
/// CRC16 (XMODEM) of its hash tag — the part between the first `{` and the
/// next `}`, when not empty — or else of the whole name, modulo 16384.
///
/// Channels with the same hash tag live on the same master:
/// `ws:room:{chat}:a` and `ws:room:{chat}:b` share a slot.
///
/// # Examples
///
/// ```
/// use crosswire_redis::key_slot;
/// assert_eq!(key_slot("foo"), 12182);
/// assert_eq!(key_slot("bar"), 5061);
/// assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
/// assert_ne!(key_slot("{}foo"), key_slot("foo")); // an empty tag: the whole name
/// assert!(key_slot("ws:broadcast") < 16384);
/// ```
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16(hashed) % 16384
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Which master owns each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    /// The masters' `host:port`, sorted.
    pub(crate) masters: Vec<String>,
    /// Per slot, an index into `masters` (`NONE`: no owner).
    owners: Vec<u16>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            masters: Vec::new(),
            owners: vec![NONE; SLOTS],
        }
    }
}

impl Topology {
    /// The `host:port` of the master owning `slot`.
    pub(crate) fn owner(&self, slot: u16) -> Option<&str> {
        let i = *self.owners.get(usize::from(slot))?;
        self.masters.get(usize::from(i)).map(String::as_str)
    }

    /// Whether every slot has an owner.
    pub(crate) fn complete(&self) -> bool {
        !self.masters.is_empty() && self.owners.iter().all(|&o| o != NONE)
    }

    /// The map from a `CLUSTER SLOTS` reply asked of `host` (an empty
    /// address in the reply means that host).
    pub(crate) fn from_cluster_slots(reply: &Value, host: &str) -> Result<Topology, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS: unexpected reply {reply:?}"));
        };
        let mut ranges_out: Vec<(u16, u16, String)> = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err("CLUSTER SLOTS: a range is not an array".into());
            };
            let slot = |v: Option<&Value>| match v {
                Some(Value::Int(n)) => u16::try_from(*n).ok().filter(|&s| usize::from(s) < SLOTS),
                _ => None,
            };
            let (Some(start), Some(end)) = (slot(fields.first()), slot(fields.get(1))) else {
                return Err("CLUSTER SLOTS: a range without valid slot numbers".into());
            };
            let Some(Value::Array(master)) = fields.get(2) else {
                return Err("CLUSTER SLOTS: a range without a master".into());
            };
            let ip = match master.first() {
                Some(Value::BulkString(ip)) => String::from_utf8_lossy(ip).into_owned(),
                Some(Value::SimpleString(ip)) => ip.clone(),
                _ => return Err("CLUSTER SLOTS: a master without an address".into()),
            };
            let ip = if ip.is_empty() || ip == "?" {
                host.to_owned()
            } else {
                ip
            };
            let port = match master.get(1) {
                Some(Value::Int(p)) => u16::try_from(*p).ok().filter(|&p| p != 0),
                _ => None,
            };
            let Some(port) = port else {
                return Err("CLUSTER SLOTS: a master without a port".into());
            };
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            ranges_out.push((start, end, addr));
        }
        let mut masters: Vec<String> = ranges_out.iter().map(|(_, _, a)| a.clone()).collect();
        masters.sort_unstable();
        masters.dedup();
        let mut owners = vec![NONE; SLOTS];
        for (start, end, addr) in &ranges_out {
            let Ok(i) = masters.binary_search(addr) else {
                continue;
            };
            let i = u16::try_from(i).unwrap_or(NONE);
            for slot in *start..=*end {
                if let Some(o) = owners.get_mut(usize::from(slot)) {
                    *o = i;
                }
            }
        }
        Ok(Topology { masters, owners })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn crc16_and_slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{foo}bar"), 12182);
        assert_eq!(key_slot("{}foo"), key_slot("{}foo"));
        assert_ne!(key_slot("{}foo"), key_slot("foo"));
        assert_eq!(key_slot("a{b"), crc16(b"a{b") % 16384);
    }

    #[test]
    fn parses_cluster_slots() {
        let range = |s: i64, e: i64, ip: &str, port: i64| {
            Value::Array(vec![
                Value::Int(s),
                Value::Int(e),
                Value::Array(vec![
                    Value::BulkString(ip.as_bytes().to_vec()),
                    Value::Int(port),
                    Value::BulkString(b"id".to_vec()),
                ]),
            ])
        };
        let reply = Value::Array(vec![
            range(0, 8191, "127.0.0.1", 7001),
            range(8192, 16383, "", 7002),
        ]);
        let t = Topology::from_cluster_slots(&reply, "10.0.0.9").unwrap();
        assert_eq!(t.masters, ["10.0.0.9:7002", "127.0.0.1:7001"]);
        assert_eq!(t.owner(0), Some("127.0.0.1:7001"));
        assert_eq!(t.owner(16383), Some("10.0.0.9:7002"));
        assert!(t.complete());
        let partial = Value::Array(vec![range(0, 10, "h", 1)]);
        let t = Topology::from_cluster_slots(&partial, "x").unwrap();
        assert!(!t.complete());
        assert_eq!(t.owner(11), None);
        assert!(Topology::from_cluster_slots(&Value::Nil, "x").is_err());
    }
}
