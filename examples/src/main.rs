//! The `fjell` command.
//!
//! Today it offers `fjell simulate`: a cluster formed in the deterministic simulator (virtual
//! time, in-process network), printing every membership event as each node sees it. The QUIC
//! demo, the node daemon, certificates and management commands arrive with fjell-quic and
//! fjell-runtime.

use std::process::ExitCode;
use std::time::Duration;

use fjell_core::{Config, Event};
use fjell_sim::Sim;

const USAGE: &str = "usage: fjell simulate [--nodes N] [--seed S]

  simulate   form a cluster in the deterministic simulator (virtual time, in-process
             network), let one node leave, and print the membership events each node sees";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("simulate") => match parse(&args[1..]) {
            Ok((nodes, seed)) => simulate(nodes, seed),
            Err(e) => {
                eprintln!("fjell: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: &[String]) -> Result<(usize, u64), String> {
    let (mut nodes, mut seed) = (5usize, 1u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--nodes" => {
                nodes = v
                    .parse()
                    .map_err(|_| format!("--nodes: not a number: {v}"))?
            }
            "--seed" => {
                seed = v
                    .parse()
                    .map_err(|_| format!("--seed: not a number: {v}"))?
            }
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if !(2..=64).contains(&nodes) {
        return Err("--nodes must be between 2 and 64".into());
    }
    Ok((nodes, seed))
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
