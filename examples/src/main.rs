//! The `fjell` command.
//!
//! - `fjell demo`: five nodes on loopback over QUIC (development certificates); prints every
//!   membership event as each node sees it, crashes a node (the split brain resolver downs
//!   it), lets another leave, prints the final members.
//! - `fjell run --config node.toml`: a long-running node from a settings file.
//! - `fjell simulate`: the same kind of story in the deterministic simulator (virtual time).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fjell_core::{Config, Event};
use fjell_runtime::{Settings, Smol};
use fjell_sim::Sim;

/// fjell: cluster membership for Rust.
#[derive(Parser)]
#[command(name = "fjell", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster on loopback over QUIC, crash a node, let one leave, print
    /// every membership event.
    Demo {
        /// Number of nodes (3 to 32).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=32))]
        nodes: u16,
        /// Keep the remaining nodes running after the script, until interrupted.
        #[arg(long)]
        keep_running: bool,
    },
    /// Run one node until it is stopped (Ctrl-C leaves the cluster gracefully).
    Run {
        /// The node's settings (TOML; FJELL_* environment variables override it).
        #[arg(long)]
        config: PathBuf,
    },
    /// Form a cluster in the deterministic simulator (virtual time, in-process network), let
    /// one node leave, and print the events each node saw.
    Simulate {
        /// Number of nodes (2 to 64).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=64))]
        nodes: u16,
        /// The simulation's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            nodes,
            keep_running,
        } => {
            let opts = fjell_examples::demo::Options {
                nodes: nodes.into(),
                keep_running,
            };
            match smol::block_on(fjell_examples::demo::run(opts, std::io::stdout())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fjell demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => run(config),
        Command::Simulate { nodes, seed } => simulate(nodes.into(), seed),
    }
}

/// `fjell run`: logs to stderr (RUST_LOG filters; membership changes at info).
fn run(path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::from_file(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fjell run: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    smol::block_on(async {
        let cluster = match settings.builder().start(Smol) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fjell run: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Ctrl-C or SIGTERM: leave gracefully, so the others never see this node unreachable.
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        if let Err(e) = ctrlc::set_handler(move || {
            let _ = stop_tx.try_send(());
        }) {
            eprintln!("fjell run: cannot install the signal handler: {e}");
        }
        let stopped = async {
            let _ = stop_rx.recv().await;
            eprintln!("fjell run: leaving the cluster");
            cluster.shutdown().await
        };
        let t = futures_lite::future::or(cluster.terminated(), stopped).await;
        eprintln!("fjell run: node ended: {t:?}");
        ExitCode::SUCCESS
    })
}

fn describe(e: &Event) -> String {
    match e {
        Event::MemberJoined(m) => format!("MemberJoined  {}", m.address),
        Event::MemberWeaklyUp(m) => format!("MemberWeaklyUp {}", m.address),
        Event::MemberUp(m) => format!("MemberUp      {} (up-number {})", m.address, m.up_number),
        Event::MemberLeft(m) => format!("MemberLeft    {}", m.address),
        Event::MemberExited(m) => format!("MemberExited  {}", m.address),
        Event::MemberDowned(m) => format!("MemberDowned  {}", m.address),
        Event::MemberRemoved {
            member,
            previous_status,
        } => format!("MemberRemoved {} (was {previous_status:?})", member.address),
        Event::LeaderChanged(l) => match l {
            Some(l) => format!("LeaderChanged {l}"),
            None => "LeaderChanged none".into(),
        },
        other => format!("{other:?}"),
    }
}

fn simulate(n: usize, seed: u64) -> ExitCode {
    let mut sim: Sim = Sim::new(seed);
    let ids = sim.start_cluster(n, &Config::default(), 3);
    if let Err(e) = sim.run_until(Duration::from_secs(60), |s| {
        s.all_up(&ids) && s.converged(&ids)
    }) {
        eprintln!("fjell: cluster did not form: {e}");
        return ExitCode::FAILURE;
    }
    let leaver = ids[n - 1];
    sim.leave(leaver, leaver);
    let rest = &ids[..n - 1];
    let left = sim.run_until(Duration::from_secs(60), |s| {
        s.all_up(rest) && s.converged(rest) && s.is_stopped(leaver)
    });
    for l in sim.events() {
        let t = Duration::from_micros(l.at.as_micros()).as_secs_f64();
        println!("{t:8.3}s  node {:<2} {}", l.node, describe(&l.event));
    }
    if let Err(e) = left {
        eprintln!("fjell: leave did not complete: {e}");
        return ExitCode::FAILURE;
    }
    println!("\nfinal members (as node 0 sees them):");
    for m in sim.node(ids[0]).members() {
        println!("  {}  {:?}  up-number {}", m.address, m.status, m.up_number);
    }
    ExitCode::SUCCESS
}
