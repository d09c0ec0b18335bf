//! Test support: bounded waits, and `redis-server` processes on free
//! loopback ports, killed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound of any single wait: reaching it is a failure, not a sleep.
pub const WAIT: Duration = Duration::from_secs(10);

/// A `redis-server` child process on a free loopback port; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start() -> Self {
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (apt-get install redis-server)");
            let mut server = RedisServer {
                port,
                child: Some(child),
            };
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if ping(port) {
                    return server;
                }
                if let Some(Ok(Some(_))) = server.child.as_mut().map(Child::try_wait) {
                    break; // exited: the port was taken meanwhile
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            server.kill();
        }
        panic!("could not start redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A Redis bus configuration with short health intervals, for tests.
pub fn redis_config(servers: &[&RedisServer]) -> crosswire_redis::RedisBusConfig {
    crosswire_redis::RedisBusConfig {
        nodes: servers.iter().map(|s| s.url()).collect(),
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(1000),
        reconnect_backoff_max: Duration::from_millis(200),
        ..crosswire_redis::RedisBusConfig::default()
    }
}

/// Awaits `fut`, failing the test after [`WAIT`].
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut).await.expect("timed out")
}
