//! `loadgen`: drives a bench server (crosswire's or a peer's) through the
//! scenarios of `docs/benchmarks.md` and reports throughput, latency, loss,
//! duplicates and the CPU of every process involved.
//!
//! ```text
//! loadgen --url ws://127.0.0.1:9001 --pid server=1234 fanout -n 1000 -p 10 --rate 40 --duration 10
//! loadgen --proto socketio --url ws://127.0.0.1:9101 echo -c 50
//! loadgen --url ws://127.0.0.1:9001 --pid server=1234 slow -n 1000 -s 10 --pad 1024
//! loadgen --url ws://127.0.0.1:9001 --pid server=1234 storm -n 1000 -k 5000 --rounds 5
//! loadgen --url ws://127.0.0.1:9001 recovery -c 50 --rate 200 --drop-share 0.3 --down 2
//! loadgen compare results.jsonl
//! ```
//!
//! Human output goes to stdout, followed by one JSON line; progress goes to
//! stderr. Exit status: 0 = the run met the contract, 2 = it did not (loss,
//! duplicates, drops, wrong replies, connection failures), 1 = bad usage,
//! 3 = the hard time limit was hit.

use clap::Parser;
use crosswire_bench::loadgen::cli::{Cli, Cmd};
use crosswire_bench::loadgen::report::{compare, final_json};
use crosswire_bench::loadgen::scenarios::{self, env_from};
use crosswire_bench::loadgen::sys::raise_nofile;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Compare(a) => return ExitCode::from(compare(a) as u8),
        Cmd::FreePorts { n } => return free_ports(*n),
        _ => {}
    }
    let limit = cli.common.max_time.clamp(1, 3600);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(limit));
        eprintln!("loadgen: hard time limit of {limit} s reached, stopping");
        std::process::exit(3);
    });
    let (soft, hard) = raise_nofile();
    let conns = scenarios::connections(&cli.cmd);
    if conns as u64 + 32 > soft {
        eprintln!(
            "loadgen: {conns} connections need more open files than the limit allows \
             (soft {soft}, hard {hard}); lower the count"
        );
        return ExitCode::from(1);
    }
    let env = match env_from(&cli.common, conns) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // `compare` and `free-ports` returned above: every command left is a scenario.
    let Some(out) = rt.block_on(scenarios::run(&env, &cli.cmd)) else {
        return ExitCode::from(1);
    };
    let src_ips = env.target.src_ips;
    env.gen.shutdown();
    for l in &out.lines {
        println!("{l}");
    }
    let c = &cli.common;
    let j = final_json(
        &c.system,
        &c.case_name,
        c.proto.name(),
        &out.failures,
        json!({
            "threads": c.threads, "park_us": c.park_us, "nofile_soft": soft,
            "nofile_hard": hard, "src_ips": src_ips, "urls": c.urls, "pids": c.pids,
        }),
        out.json,
    );
    println!("{j}");
    if out.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn free_ports(n: usize) -> ExitCode {
    let mut held = Vec::new();
    for _ in 0..n.min(64) {
        match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => held.push(l),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(1);
            }
        }
    }
    for l in &held {
        if let Ok(a) = l.local_addr() {
            println!("{}", a.port());
        }
    }
    ExitCode::SUCCESS
}
