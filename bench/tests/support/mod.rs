//! A bench-server in its own process (so its memory and file descriptors are
//! its own), with its listening and metrics addresses. The waits, the HTTP
//! GET and the `/proc` figures come from crosswire-test-support.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crosswire_test_support::{http_body, http_get, process, within};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Upper bound for any single wait in a test: a failure, not a sleep.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running bench-server, killed on drop.
pub struct Server {
    child: Child,
    /// The WebSocket listener.
    pub addr: SocketAddr,
    /// The `/metrics` and `/health` listener.
    pub metrics: SocketAddr,
}

impl Server {
    /// Starts this build's bench-server (node `n1`, unless `args` give a
    /// `--name`) on free loopback ports with `args` added.
    pub async fn start(args: &[&str]) -> Server {
        Server::start_program(env!("CARGO_BIN_EXE_bench-server"), args, &[]).await
    }

    /// Starts `program` (a bench-server build) with `args` and environment
    /// `env` added.
    pub async fn start_program(program: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let name: &[&str] = if args.contains(&"--name") {
            &[]
        } else {
            &["--name", "n1"]
        };
        let mut child = Command::new(program)
            .args(["--port", "0", "--metrics-port", "0"])
            .args(name)
            .args(args)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("bench-server starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("bench-server started in time")
                .expect("stdout readable")
                .expect("bench-server printed its addresses");
            let last = line.rsplit(' ').next().and_then(|a| a.parse().ok());
            if line.contains(" metrics on ") {
                metrics = last;
            } else if line.contains(" listening on ") {
                addr = last;
            }
        }
        // Keep draining stdout so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            child,
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        process::rss_kib(self.pid())
    }

    /// The server's open file descriptors.
    pub fn open_fds(&self) -> usize {
        process::open_fds(self.pid())
    }

    /// The value of the first metric line starting with `prefix` (the name,
    /// and the labels when given).
    pub async fn metric(&self, prefix: &str) -> f64 {
        let response = within(WAIT, http_get(self.metrics, "/metrics")).await;
        let text = http_body(&response);
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {prefix} in:\n{text}"))
    }
}

/// Runs this build's `loadgen` against `servers` (one `--url` each) with
/// `args` after the URLs (`--max-time 120`, then the scenario and its
/// options); returns its exit status and its last line, the JSON report.
pub async fn loadgen(
    servers: &[&Server],
    args: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    for s in servers {
        cmd.args(["--url", &format!("ws://{}", s.addr)]);
    }
    cmd.args(["--max-time", "120"])
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(150), cmd.output())
        .await
        .expect("loadgen ended in time")
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let line = stdout.lines().last().unwrap_or_default();
    let json = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "no JSON line ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}
