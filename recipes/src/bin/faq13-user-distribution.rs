//! FAQ 13: distributing users over WebSocket nodes with consistent hashing
//! (what a login service would answer to "where should user X connect?").
//! Prints each user's URL, the spread over the nodes, and how many users
//! move when one more node is added.
//!
//! ```text
//! cargo run -p crosswire-recipes --bin faq13-user-distribution -- --users 10000 u1 u2 u3
//! ```

use clap::Parser;
use crosswire_recipes::hashring::HashRing;
use std::collections::BTreeMap;

/// Consistent hashing of user ids to node addresses.
#[derive(Debug, Parser)]
struct Args {
    /// The WebSocket nodes (comma-separated base URLs).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:9001,ws://127.0.0.1:9002,ws://127.0.0.1:9003"
    )]
    nodes: Vec<String>,
    /// The node added for the "what moves" figure.
    #[arg(long, default_value = "ws://127.0.0.1:9004")]
    add: String,
    /// How many synthetic users (`user-0` ...) to spread.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// User ids to print a connection URL for.
    ids: Vec<String>,
}

fn main() {
    let args = Args::parse();
    let mut ring = HashRing::new(args.nodes.iter().cloned());
    for id in &args.ids {
        println!("{id} -> {}", ring.connection_url(id).unwrap_or_default());
    }
    let users: Vec<String> = (0..args.users).map(|i| format!("user-{i}")).collect();
    let before: Vec<String> = users
        .iter()
        .map(|u| ring.node_for(u).unwrap_or_default().to_owned())
        .collect();
    let mut spread: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &before {
        *spread.entry(node.as_str()).or_default() += 1;
    }
    println!(
        "{} users over {} nodes: {spread:?}",
        users.len(),
        ring.len()
    );
    ring.add(args.add.as_str());
    let moved = users
        .iter()
        .zip(&before)
        .filter(|(u, old)| ring.node_for(u) != Some(old.as_str()))
        .count();
    println!(
        "adding {} moves {moved} users ({:.1} %), all of them to it",
        args.add,
        100.0 * moved as f64 / users.len().max(1) as f64
    );
}
