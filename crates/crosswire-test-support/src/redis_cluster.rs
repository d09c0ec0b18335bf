//! A real Redis Cluster of `redis-server` processes (`--cluster-enabled
//! yes`) on free loopback ports, formed in the test, and the faults the
//! cluster bus tests inject: a master killed (its replica takes over), a
//! slot migrated to another master.
//!
//! Every wait polls the servers with a deadline; reaching it fails the test
//! saying what the cluster did not do.

use crate::net::free_port;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the cluster has to form, or to settle after a fault.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// One `redis-server` of a [`RedisCluster`].
#[derive(Debug)]
pub struct ClusterNode {
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its cluster bus port (`--cluster-port`).
    pub bus_port: u16,
    /// Its node id (40 hex characters).
    pub id: String,
    child: Option<Child>,
}

impl ClusterNode {
    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether its process runs (it was not killed).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// A Redis Cluster of `masters` masters, each with `replicas` replicas,
/// in a temporary directory (removed on drop); every process is killed
/// (SIGKILL) on drop. The slots are split evenly among the masters, in
/// order: master 0 has the lowest slots.
///
/// The nodes run with `cluster-node-timeout 1000` and
/// `cluster-replica-validity-factor 0`, so a killed master is replaced by
/// its replica within a few seconds. `redis-server` must be on `PATH`.
///
/// ```no_run
/// use crosswire_test_support::RedisCluster;
/// let cluster = RedisCluster::start(3, 1);
/// assert_eq!(cluster.master_ports().len(), 3);
/// let seeds = cluster.seed_urls();
/// # let _ = seeds;
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    /// Every node: the masters first (in slot order), then the replicas.
    pub nodes: Vec<ClusterNode>,
    masters: usize,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the processes, forms the cluster (ADDSLOTSRANGE, MEET,
    /// REPLICATE) and returns once every node reports `cluster_state:ok`,
    /// agrees on the owner of every slot, and every replica is in sync.
    pub fn start(masters: usize, replicas: usize) -> Self {
        assert!(masters >= 1, "a cluster needs a master");
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "crosswire-redis-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            masters,
            dir,
        };
        for _ in 0..masters * (1 + replicas) {
            let node = cluster.spawn_node();
            cluster.nodes.push(node);
        }
        // Slots, split evenly among the masters.
        let total = usize::from(SLOTS);
        for i in 0..masters {
            let start = total * i / masters;
            let end = total * (i + 1) / masters - 1;
            let port = cluster.nodes[i].port;
            ok(
                port,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &start.to_string(),
                    &end.to_string(),
                ],
            );
        }
        let first = cluster.nodes[0].port;
        for node in &cluster.nodes[1..] {
            ok(
                first,
                &[
                    "CLUSTER",
                    "MEET",
                    "127.0.0.1",
                    &node.port.to_string(),
                    &node.bus_port.to_string(),
                ],
            );
        }
        let n = cluster.nodes.len();
        cluster.settle("every node knows every other", |c| {
            c.live().all(|node| {
                cluster_nodes(node.port).is_some_and(|lines| {
                    lines.len() == n && lines.iter().all(|l| !l.flags.contains("handshake"))
                })
            })
        });
        for r in 0..masters * replicas {
            let replica = cluster.nodes[masters + r].port;
            let master = &cluster.nodes[r % masters].id;
            ok(replica, &["CLUSTER", "REPLICATE", master]);
        }
        cluster.wait_ok();
        cluster.settle("every replica in sync with its master", |c| {
            c.nodes[masters..].iter().all(|node| {
                command(node.port, &["INFO", "replication"])
                    .ok()
                    .and_then(|r| r.text())
                    .is_some_and(|t| t.contains("master_link_status:up"))
            })
        });
        cluster
    }

    /// The masters' URLs: seeds for a cluster client.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes[..self.masters]
            .iter()
            .map(ClusterNode::url)
            .collect()
    }

    /// The nodes that run.
    fn live(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.iter().filter(|n| n.running())
    }

    /// The node with client port `port`.
    pub fn node(&self, port: u16) -> &ClusterNode {
        match self.nodes.iter().find(|n| n.port == port) {
            Some(node) => node,
            None => panic!("no cluster node on port {port}"),
        }
    }

    /// The ports of the masters that own slots now, as a running node sees
    /// it, in slot order.
    pub fn master_ports(&self) -> Vec<u16> {
        let mut owners: Vec<(u16, u16)> = self
            .slot_ranges()
            .into_iter()
            .map(|(s, _, p)| (s, p))
            .collect();
        owners.sort_unstable();
        let mut ports: Vec<u16> = Vec::new();
        for (_, port) in owners {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        ports
    }

    /// The port of the master owning `slot`, as a running node sees it.
    pub fn owner_of(&self, slot: u16) -> u16 {
        match self
            .slot_ranges()
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
        {
            Some((_, _, port)) => port,
            None => panic!("no master owns slot {slot}"),
        }
    }

    /// `CLUSTER SLOTS` of the first running node: (start, end, master port).
    fn slot_ranges(&self) -> Vec<(u16, u16, u16)> {
        for node in self.live() {
            if let Some(ranges) = slot_ranges(node.port) {
                return ranges;
            }
        }
        panic!("no cluster node answers CLUSTER SLOTS")
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, as Redis computes it).
    pub fn key_slot(&self, key: &str) -> u16 {
        let Some(node) = self.live().next() else {
            panic!("no cluster node runs");
        };
        match command(node.port, &["CLUSTER", "KEYSLOT", key]) {
            Ok(Reply::Int(slot)) => match u16::try_from(slot) {
                Ok(slot) => slot,
                Err(_) => panic!("CLUSTER KEYSLOT {key}: {slot} is not a slot"),
            },
            other => panic!("CLUSTER KEYSLOT {key}: unexpected answer {other:?}"),
        }
    }

    /// Kills the node on `port` (SIGKILL, as `kill -9`).
    pub fn kill(&mut self, port: u16) {
        let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) else {
            panic!("no cluster node on port {port}");
        };
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the master on `port` and returns once one of its replicas
    /// owns its slots in the view of every running node and the cluster
    /// is `ok` again. Returns the new master's port.
    pub fn kill_master_and_wait_failover(&mut self, port: u16) -> u16 {
        let slots: Vec<(u16, u16)> = self
            .slot_ranges()
            .into_iter()
            .filter(|(_, _, p)| *p == port)
            .map(|(s, e, _)| (s, e))
            .collect();
        assert!(!slots.is_empty(), "port {port} is not a master with slots");
        let slot = slots[0].0;
        self.kill(port);
        self.settle("a replica took over the killed master's slots", |c| {
            c.live().all(|n| {
                slot_ranges(n.port).is_some_and(|ranges| {
                    ranges
                        .iter()
                        .any(|(s, e, p)| (*s..=*e).contains(&slot) && *p != port)
                })
            })
        });
        self.wait_ok();
        self.owner_of(slot)
    }

    /// Moves `slot` (it holds no keys) from its master to the master on
    /// `to` (`CLUSTER SETSLOT` IMPORTING, MIGRATING, then NODE on every
    /// master) and returns once every running node sees `to` own it.
    pub fn migrate_slot(&self, slot: u16, to: u16) {
        let from = self.owner_of(slot);
        assert_ne!(from, to, "slot {slot} is on port {to} already");
        let s = slot.to_string();
        let from_id = self.node(from).id.clone();
        let to_id = self.node(to).id.clone();
        ok(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]);
        ok(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]);
        ok(to, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
        ok(from, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
        for port in self.master_ports() {
            if port != from && port != to {
                ok(port, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
            }
        }
        self.settle("every node sees the migrated slot on its new master", |c| {
            c.live().all(|n| {
                slot_ranges(n.port).is_some_and(|ranges| {
                    ranges
                        .iter()
                        .any(|(a, b, p)| (*a..=*b).contains(&slot) && *p == to)
                })
            })
        });
    }

    /// Waits until every running node reports `cluster_state:ok` and all
    /// agree on the owners of the slots.
    pub fn wait_ok(&self) {
        self.settle("cluster_state:ok and one slot map on every node", |c| {
            let mut views = Vec::new();
            for node in c.live() {
                let state_ok = command(node.port, &["CLUSTER", "INFO"])
                    .ok()
                    .and_then(|r| r.text())
                    .is_some_and(|t| t.contains("cluster_state:ok"));
                if !state_ok {
                    return false;
                }
                match slot_ranges(node.port) {
                    Some(mut ranges) => {
                        ranges.sort_unstable();
                        views.push(ranges);
                    }
                    None => return false,
                }
            }
            views.windows(2).all(|w| w[0] == w[1])
        });
    }

    /// Polls `cond` every 20 ms until it holds; fails after 30 s.
    fn settle(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "Redis Cluster: timed out after {SETTLE_LIMIT:?} waiting for: {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts one node on free ports (another pair when the first is taken).
    fn spawn_node(&self) -> ClusterNode {
        for _ in 0..20 {
            let port = free_port();
            let bus_port = free_port();
            if port == bus_port {
                continue;
            }
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus_port.to_string()])
                .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", "1000"])
                .args(["--cluster-replica-validity-factor", "0"])
                .arg("--dir")
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                    "redis-server is not installed (not found on PATH): these tests run a real \
                     Redis Cluster; install it (apt-get install redis-server) and run them again"
                ),
                Err(e) => panic!("cannot run redis-server: {e}"),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: a port was taken meanwhile
                }
                if let Ok(Reply::Bulk(id)) = command(port, &["CLUSTER", "MYID"]) {
                    return ClusterNode {
                        port,
                        bus_port,
                        id,
                        child: Some(child),
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "redis-server --cluster-enabled yes started on 20 pairs of free ports and never \
             answered (a redis-server older than 7.0 refuses --cluster-port and sharded pub/sub)"
        )
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    flags: String,
}

fn cluster_nodes(port: u16) -> Option<Vec<NodeLine>> {
    let text = command(port, &["CLUSTER", "NODES"]).ok()?.text()?;
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| NodeLine {
                flags: l.split(' ').nth(2).unwrap_or_default().to_owned(),
            })
            .collect(),
    )
}

/// `CLUSTER SLOTS` of one node: (start, end, master port).
fn slot_ranges(port: u16) -> Option<Vec<(u16, u16, u16)>> {
    let Reply::Array(ranges) = command(port, &["CLUSTER", "SLOTS"]).ok()? else {
        return None;
    };
    let mut out = Vec::new();
    for range in ranges {
        let Reply::Array(fields) = range else {
            return None;
        };
        let int = |r: &Reply| match r {
            Reply::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        let start = int(fields.first()?)?;
        let end = int(fields.get(1)?)?;
        let Reply::Array(master) = fields.get(2)? else {
            return None;
        };
        out.push((start, end, int(master.get(1)?)?));
    }
    Some(out)
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(String),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    fn text(self) -> Option<String> {
        match self {
            Reply::Bulk(s) | Reply::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// Runs a command that must answer `+OK`; fails the test otherwise.
fn ok(port: u16, args: &[&str]) {
    match command(port, args) {
        Ok(Reply::Status(s)) if s == "OK" => {}
        other => panic!("{} on port {port}: {other:?}", args.join(" ")),
    }
}

/// One command over a new connection (synchronous, 2 s timeouts).
fn command(port: u16, args: &[&str]) -> Result<Reply, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(2)));
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    tcp.write_all(out.as_bytes()).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(tcp);
    match read_reply(&mut reader)? {
        Reply::Error(e) => Err(e),
        reply => Ok(reply),
    }
}

fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at_checked(1).ok_or("connection closed")?;
    let int = |s: &str| s.parse::<i64>().map_err(|e| format!("{s:?}: {e}"));
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Int(int(rest)?)),
        "$" => {
            let Ok(len) = usize::try_from(int(rest)?) else {
                return Ok(Reply::Nil);
            };
            let mut buf = vec![0u8; len + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(len);
            Ok(Reply::Bulk(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let Ok(n) = usize::try_from(int(rest)?) else {
                return Ok(Reply::Nil);
            };
            (0..n)
                .map(|_| read_reply(r))
                .collect::<Result<_, _>>()
                .map(Reply::Array)
        }
        other => Err(format!("unexpected RESP type {other:?}")),
    }
}
