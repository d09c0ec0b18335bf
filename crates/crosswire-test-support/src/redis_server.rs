//! Real `redis-server` processes on free loopback ports, and the faults the
//! bus tests inject into them.

use crate::net::free_port;
use crate::process;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server has to answer PING.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A `redis-server` child process on a loopback port, without persistence;
/// killed (SIGKILL) on drop.
///
/// The program must be on `PATH`; when it is not, starting one fails the
/// test saying so and how to install it.
#[derive(Debug)]
pub struct RedisServer {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and returns once it answers PING.
    pub fn start() -> Self {
        for _ in 0..20 {
            let mut server = RedisServer::reserve();
            if server.spawn() {
                return server;
            }
            // It exited: someone else took the port meanwhile. Another one.
        }
        panic!(
            "redis-server started on 20 free ports in turn and never answered PING within 10 s \
             (run `redis-server --port 6390 --save ''` by hand to see why it fails)"
        );
    }

    /// A free port with no server on it yet: for "Redis is down at start"
    /// cases; [`restart`](Self::restart) starts the server later.
    pub fn reserve() -> Self {
        RedisServer {
            port: free_port(),
            child: None,
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("no redis-server runs on port {}", self.port),
        }
    }

    /// Kills the server (SIGKILL, as `kill -9`: no goodbye to its clients)
    /// and reaps it. Nothing happens when none runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): its connections stay open and nothing
    /// answers.
    pub fn pause(&mut self) {
        process::pause(self.pid());
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn resume(&mut self) {
        process::resume(self.pid());
    }

    /// Starts a server on this server's port again (after [`kill`](Self::kill),
    /// or for the first time after [`reserve`](Self::reserve)); kills the one
    /// running first. Retries while the port is still held, for up to 10 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_LIMIT;
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "could not restart redis-server on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a server on `self.port`; true once it answers PING, false if it
    /// exited or did not answer in time.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let spawned = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        self.child = match spawned {
            Ok(child) => Some(child),
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-server is not installed (not found on PATH): these tests run real Redis \
                 servers; install it (apt-get install redis-server) and run them again"
            ),
            Err(e) => panic!("cannot run redis-server: {e}"),
        };
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if ping(self.port) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw, synchronous PING; true when the answer is PONG.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
