//! The original's `examples/ws-cross-server/clients.js`: many players spread
//! over the WebSocket nodes (player `i` on port `i mod n`), some of them in
//! rooms 1000, 1001 and 1002; prints every `say` they receive.
//!
//! ```text
//! cargo run -p crosswire-recipes --bin cluster-clients -- --ports 9001,9002,9003 --total 50
//! ```

use clap::Parser;
use crosswire_recipes::{cluster, init_tracing};
use rand::seq::IndexedRandom;
use rand::Rng;
use std::time::Duration;

/// Players on every node of the cluster example.
#[derive(Debug, Parser)]
struct Args {
    /// The nodes' host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The nodes' ports (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "9001,9002,9003")]
    ports: Vec<u16>,
    /// Number of players (ids 1..=total).
    #[arg(long, default_value_t = 50)]
    total: usize,
    /// How many of them join a random room.
    #[arg(long, default_value_t = 10)]
    join: usize,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let urls: Vec<String> = args
        .ports
        .iter()
        .map(|p| format!("ws://{}:{p}", args.host))
        .collect();
    let rooms = ["1000", "1001", "1002"];
    let mut rng = rand::rng();
    let mut joiners: Vec<(String, &str)> = Vec::new();
    while joiners.len() < args.join.min(args.total) {
        let id = rng.random_range(1..=args.total).to_string();
        if joiners.iter().all(|(j, _)| *j != id) {
            let room = rooms.choose(&mut rng).copied().unwrap_or("1000");
            joiners.push((id, room));
        }
    }
    let plan: Vec<(&str, &str)> = joiners.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    let players =
        cluster::connect_clients(&urls, args.total, &plan, Duration::from_secs(10)).await?;
    println!(
        "{} players connected; room members: {plan:?}",
        players.len()
    );
    let mut tasks = Vec::new();
    for mut player in players {
        tasks.push(tokio::spawn(async move {
            loop {
                match player.next_push(Duration::from_secs(24 * 3600)).await {
                    Ok((event, payload)) => println!(
                        "[player {} on {}] {event}: {payload}",
                        player.id(),
                        player.server().unwrap_or("?")
                    ),
                    Err(e) => {
                        println!("[player {}] {e}", player.id());
                        return;
                    }
                }
            }
        }));
    }
    tokio::signal::ctrl_c().await?;
    for t in tasks {
        t.abort();
    }
    Ok(())
}
