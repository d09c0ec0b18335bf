//! Real `nats-server` processes on free loopback ports, which the NATS bus
//! tests kill and restart.

use crate::net::free_port;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server` child process on a loopback port; killed (SIGKILL) on
/// drop. The program must be on `PATH` (`apt-get install nats-server`).
#[derive(Debug)]
pub struct NatsServer {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and returns once it greets clients.
    pub fn start() -> Self {
        let mut server = NatsServer {
            port: free_port(),
            child: None,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a server on this server's port again (killing the one
    /// running first); retries while the port is still held, for up to
    /// 10 s.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        crate::process::start_on_port("nats-server", port, || self.spawn());
    }

    fn spawn(&mut self) -> bool {
        let spawned = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "nats-server is not installed (not found on PATH): these tests run real NATS \
                 servers; install it (apt-get install nats-server) and run them again"
            ),
            Err(e) => panic!("cannot run nats-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // exited: the port was taken
            }
            if greets(self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

/// Whether a NATS server on `port` sends its `INFO` greeting.
fn greets(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"INFO"
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
