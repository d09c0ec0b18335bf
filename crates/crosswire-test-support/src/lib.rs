//! Helpers shared by the tests of the crosswire workspace (not published).
//!
//! - [`wait`]: bounded waits. A test waits for an event or a condition with
//!   a deadline; reaching the deadline fails the test. Nothing here sleeps
//!   to let something happen.
//! - [`ws`]: a plain WebSocket client over TCP (tokio-tungstenite) with
//!   helpers to send text frames, read the next one, and see how the
//!   connection closed.
//! - [`redis_server`]: real `redis-server` processes on free loopback ports, with
//!   the faults the bus tests inject (kill -9, SIGSTOP/SIGCONT, restart on
//!   the same port).
//! - [`redis_cluster`]: a real Redis Cluster (masters and replicas) formed
//!   in the test, with a master killed and a slot migrated on demand.
//! - [`net`]: free ports and a minimal HTTP GET.
//! - [`process`]: signals and `/proc` figures of a child process.
//! - [`tls`]: a private certificate authority made in the test, with server
//!   and client certificates and rustls client configurations trusting it
//!   (for `wss://` and `rediss://` tests; [`RedisServer::start_tls`]).
//!
//! Every helper panics with a message saying what did not happen: in a test
//! that is the failure.
//!
//! The waits use tokio's clock, so a test on a paused clock
//! (`#[tokio::test(start_paused = true)]`) gets deadlines in its own time.
//! A paused clock jumps to the next timer whenever the runtime is idle, also
//! while a socket's bytes are on their way: keep such tests to in-process
//! parts (the memory bus, channels), never real sockets or processes.
//!
//! ```
//! use crosswire_test_support::{bounded, eventually, WAIT};
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let done = Arc::new(AtomicBool::new(false));
//! let flag = done.clone();
//! let task = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
//! eventually(WAIT, "the task ran", || done.load(Ordering::SeqCst)).await;
//! bounded(task).await.unwrap();
//! # }
//! ```
pub mod nats_server;
pub mod net;
pub mod process;
pub mod redis_cluster;
pub mod redis_server;
pub mod tls;
pub mod wait;
pub mod ws;

pub use nats_server::NatsServer;
pub use net::{free_addr, free_port, http_body, http_get, percent_encode};
pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;
pub use tls::{CertPem, TestPki};
pub use wait::{bounded, eventually, eventually_async, recv, wait_until, within, WAIT};
pub use ws::{
    close_with, closed, connect, next_json, next_text, nothing_more, send_text, sync, Ws,
};
