//! Test support: real `redis-server` processes on free loopback ports, fault
//! injection (kill -9, SIGSTOP/SIGCONT, restart on the same port), raw Redis
//! taps, and polling helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use crosswire::bus::{Bus, BusMessage};
use crosswire_redis::{HealthEvent, RedisBus, RedisBusConfig, Strategy};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A `redis-server` child process; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    stopped: bool,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        for _ in 0..20 {
            let port = free_port();
            let mut server = RedisServer {
                port,
                child: None,
                stopped: false,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    /// A free port on which no server runs yet (for "down at start" cases).
    pub fn reserve() -> Self {
        RedisServer {
            port: free_port(),
            child: None,
            stopped: false,
        }
    }

    /// Starts (again) on this server's port; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        self.stopped = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                // Exited (port taken by someone else?).
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        self.stopped = false;
    }

    /// Freezes the process (SIGSTOP).
    pub fn pause(&mut self) {
        let status = Command::new("kill").args(["-STOP", &self.pid()]).status();
        assert!(status.unwrap().success());
        self.stopped = true;
    }

    /// Resumes the process (SIGCONT).
    pub fn resume(&mut self) {
        let status = Command::new("kill").args(["-CONT", &self.pid()]).status();
        assert!(status.unwrap().success());
        self.stopped = false;
    }

    /// Starts a server on the same port (after `kill9`, or for the first time
    /// after `reserve`).
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "could not restart redis on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A raw, synchronous PING.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A bus configuration with short intervals for tests.
pub fn config(servers: &[&RedisServer], strategy: Strategy) -> RedisBusConfig {
    RedisBusConfig {
        nodes: servers.iter().map(|s| s.url()).collect(),
        strategy,
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(300),
        reconnect_backoff_max: Duration::from_millis(200),
        ..RedisBusConfig::default()
    }
}

/// Connects a bus and waits until all its nodes are publish targets.
pub async fn connect(config: RedisBusConfig) -> RedisBus {
    let n = config.nodes.len();
    let bus = RedisBus::connect(config).await.expect("valid config");
    within(Duration::from_secs(10), bus.wait_for_publish_targets(n))
        .await
        .unwrap();
    bus
}

/// Awaits `fut`, failing the test after `limit`.
pub async fn within<F: std::future::Future>(limit: Duration, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut).await.expect("timed out")
}

/// Polls `cond` every 10 ms until it holds; fails the test after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`eventually`], with an async condition.
pub async fn eventually_async<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every health event of a bus, recorded.
pub fn record_health(bus: &RedisBus) -> Arc<Mutex<Vec<HealthEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    bus.on_health_change(move |e| sink.lock().unwrap().push(e));
    events
}

/// Collects what a bus endpoint receives, in the background.
pub struct Inbox {
    pub messages: Arc<Mutex<Vec<BusMessage>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Inbox {
    pub fn new(bus: &RedisBus) -> Self {
        let mut rx: mpsc::Receiver<BusMessage> = bus.take_incoming().expect("first take");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                sink.lock().unwrap().push(m);
            }
        });
        Inbox {
            messages,
            _task: task,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// How many times each payload arrived on `channel`.
    pub fn counts(&self, channel: &str) -> HashMap<Bytes, usize> {
        let mut counts = HashMap::new();
        for m in self.messages.lock().unwrap().iter() {
            if &*m.channel == channel {
                *counts.entry(m.payload.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn payloads(&self, channel: &str) -> Vec<Bytes> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| &*m.channel == channel)
            .map(|m| m.payload.clone())
            .collect()
    }
}

/// A raw subscriber on one Redis server (not through the bus): shows which
/// server carried which message.
pub struct Tap {
    pub got: Arc<Mutex<Vec<Bytes>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Tap {
    pub async fn new(server: &RedisServer, channel: &str) -> Self {
        let client = redis::Client::open(server.url()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(channel).await.unwrap();
        let mut stream = pubsub.into_on_message();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                sink.lock()
                    .unwrap()
                    .push(Bytes::copy_from_slice(m.get_payload_bytes()));
            }
        });
        Tap { got, _task: task }
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn contains(&self, payload: &[u8]) -> bool {
        self.got.lock().unwrap().iter().any(|p| &p[..] == payload)
    }
}

/// `PUBSUB NUMSUB channel` on a server: how many connections subscribe it.
pub async fn numsub(server: &RedisServer, channel: &str) -> i64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

/// Publishes and fails the test on error.
pub async fn publish(bus: &RedisBus, channel: &str, payload: impl Into<Bytes>) {
    within(
        Duration::from_secs(10),
        bus.publish(channel, payload.into()),
    )
    .await
    .expect("published");
}
