//! Real `redis-server` processes on free loopback ports, and the faults the
//! bus tests inject into them; plain or TLS only.

use crate::net::free_port;
use crate::process;
use crate::tls::TestPki;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
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
    tls: Option<Tls>,
}

/// What a TLS-only server is started with.
#[derive(Debug, Clone)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    /// Clients must present a certificate signed by the CA.
    auth_clients: bool,
    /// Trusts the CA and presents the client certificate: for the PING that
    /// tells the server is up.
    client: Arc<rustls::ClientConfig>,
}

impl RedisServer {
    /// Starts a server on a free port and returns once it answers PING.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that speaks TLS only (`--tls-port`, `--port 0`) with
    /// `pki`'s server certificate, and returns once it answers PING over
    /// TLS. With `auth_clients` it also requires a client certificate
    /// signed by `pki`'s authority (`--tls-auth-clients yes`); without, it
    /// asks for none. Connect to [`tls_url`](Self::tls_url). `pki`'s files
    /// must outlive the server when it is [`restart`](Self::restart)ed.
    pub fn start_tls(pki: &TestPki, auth_clients: bool) -> Self {
        Self::start_with(Some(Tls {
            cert: pki.server_cert_path(),
            key: pki.server_key_path(),
            ca: pki.ca_path(),
            auth_clients,
            client: pki.client_config_with_cert(),
        }))
    }

    fn start_with(tls: Option<Tls>) -> Self {
        for _ in 0..20 {
            let mut server = RedisServer::reserve();
            server.tls = tls.clone();
            if server.spawn() {
                return server;
            }
            // It exited: someone else took the port meanwhile. Another one.
        }
        match tls {
            None => panic!(
                "redis-server started on 20 free ports in turn and never answered PING within 10 s \
                 (run `redis-server --port 6390 --save ''` by hand to see why it fails)"
            ),
            Some(tls) => panic!(
                "redis-server with TLS started on 20 free ports in turn and never answered PING \
                 over TLS within 10 s (a redis-server built without TLS refuses --tls-port; run \
                 `redis-server --port 0 --tls-port 6390 --tls-cert-file {} --tls-key-file {} \
                 --tls-ca-cert-file {}` by hand to see why it fails)",
                tls.cert.display(),
                tls.key.display(),
                tls.ca.display()
            ),
        }
    }

    /// A free port with no server on it yet: for "Redis is down at start"
    /// cases; [`restart`](Self::restart) starts the server later.
    pub fn reserve() -> Self {
        RedisServer {
            port: free_port(),
            child: None,
            tls: None,
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:PORT`: the URL of a server started with
    /// [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
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
        let port = self.port;
        process::start_on_port("redis-server", port, || self.spawn());
    }

    /// Starts a server on `self.port`; true once it answers PING, false if it
    /// exited or did not answer in time.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => {
                command.args(["--port", &port]);
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args([
                        "--tls-auth-clients",
                        if tls.auth_clients { "yes" } else { "no" },
                    ]);
            }
        }
        let spawned = command
            .args(["--bind", "127.0.0.1"])
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
            let up = match &self.tls {
                None => ping(self.port),
                Some(tls) => ping_tls(self.port, &tls.client),
            };
            if up {
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

/// PING over TLS (the server's certificate verified for `127.0.0.1`); true
/// when the answer is PONG.
fn ping_tls(port: u16, client: &Arc<rustls::ClientConfig>) -> bool {
    let Ok(name) = rustls::pki_types::ServerName::try_from("127.0.0.1") else {
        return false;
    };
    let Ok(conn) = rustls::ClientConnection::new(client.clone(), name) else {
        return false;
    };
    let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = tcp.set_write_timeout(Some(Duration::from_millis(500)));
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
