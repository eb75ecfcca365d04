//! How many keys move when the routees of a consistent-hashing router change, and what a
//! lookup costs.
//!
//! `cargo bench -p fjell-tools --bench consistent_hashing`
//!
//! Ten members at 10.0.0.1..=10:7355, 100,000 keys `key-0` .. `key-99999`. For each member in
//! turn: the share of keys that move when it leaves (only its own may, and each must), and,
//! for ten different newcomers, the share that moves when an eleventh joins (only to it).
//! Exits 1 if a key moves that should not, or if, at the default factor, the share moved by
//! any one member's leave falls outside 5–15 % (the mean over all members is 10 % by
//! construction: their shares add up to the whole).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use fjell_runtime::core::UniqueAddress;
use fjell_tools::routing::{HashRing, DEFAULT_VIRTUAL_NODES_FACTOR};

const MEMBERS: u32 = 10;
const KEYS: usize = 100_000;

fn member(host: u32) -> UniqueAddress {
    let addr = SocketAddr::new([10, 0, (host / 256) as u8, (host % 256) as u8].into(), 7355);
    UniqueAddress::new(addr, u64::from(host))
}

fn owners(ring: &HashRing, keys: &[Vec<u8>]) -> Vec<UniqueAddress> {
    keys.iter()
        .map(|k| ring.lookup(k).expect("a ring with members"))
        .collect()
}

struct Shares {
    min: f64,
    mean: f64,
    max: f64,
}

fn shares(v: &[f64]) -> Shares {
    Shares {
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Moved shares when each member leaves, and when each of ten newcomers joins; `Err` names a
/// key that moved where it must not.
fn measure(factor: u32, keys: &[Vec<u8>]) -> Result<(Vec<f64>, Vec<f64>), String> {
    let all: Vec<_> = (1..=MEMBERS).map(member).collect();
    let ring = HashRing::new(&all, factor).map_err(|e| e.to_string())?;
    let before = owners(&ring, keys);
    let mut leave = Vec::new();
    for gone in &all {
        let rest: Vec<_> = all.iter().copied().filter(|a| a != gone).collect();
        let after = owners(
            &HashRing::new(&rest, factor).map_err(|e| e.to_string())?,
            keys,
        );
        let mut moved = 0;
        for (k, (b, a)) in before.iter().zip(&after).enumerate() {
            if (b != a) != (b == gone) {
                return Err(format!(
                    "factor {factor}, {gone} leaves: key-{k} {b} -> {a}"
                ));
            }
            moved += usize::from(b != a);
        }
        leave.push(moved as f64 / keys.len() as f64);
    }
    let mut join = Vec::new();
    for host in MEMBERS + 1..=2 * MEMBERS {
        let newcomer = member(host);
        let mut more = all.clone();
        more.push(newcomer);
        let after = owners(
            &HashRing::new(&more, factor).map_err(|e| e.to_string())?,
            keys,
        );
        let mut moved = 0;
        for (k, (b, a)) in before.iter().zip(&after).enumerate() {
            if b != a && *a != newcomer {
                return Err(format!(
                    "factor {factor}, {newcomer} joins: key-{k} {b} -> {a}"
                ));
            }
            moved += usize::from(b != a);
        }
        join.push(moved as f64 / keys.len() as f64);
    }
    Ok((leave, join))
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

fn main() -> ExitCode {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|k| format!("key-{k}").into_bytes()).collect();
    println!("consistent hashing: {MEMBERS} members, {KEYS} keys");
    println!();
    println!("| virtual nodes | leave: min | mean | max | join (11th): min | mean | max | ideal leave / join |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for factor in [1, DEFAULT_VIRTUAL_NODES_FACTOR, 100, 1000] {
        let (leave, join) = match measure(factor, &keys) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("a key moved that must not: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (l, j) = (shares(&leave), shares(&join));
        println!(
            "| {factor}{} | {} | {} | {} | {} | {} | {} | {} / {} |",
            if factor == DEFAULT_VIRTUAL_NODES_FACTOR {
                " (default)"
            } else {
                ""
            },
            pct(l.min),
            pct(l.mean),
            pct(l.max),
            pct(j.min),
            pct(j.mean),
            pct(j.max),
            pct(1.0 / f64::from(MEMBERS)),
            pct(1.0 / f64::from(MEMBERS + 1)),
        );
        if factor == DEFAULT_VIRTUAL_NODES_FACTOR
            && !leave.iter().all(|s| (0.05..=0.15).contains(s))
        {
            ok = false;
        }
    }
    println!();

    // Cost: building a ring (done when the routees change) and a lookup (every message).
    let all: Vec<_> = (1..=MEMBERS).map(member).collect();
    let rounds = 2_000;
    let t = Instant::now();
    let mut points = 0;
    for _ in 0..rounds {
        points += std::hint::black_box(HashRing::new(
            std::hint::black_box(&all),
            DEFAULT_VIRTUAL_NODES_FACTOR,
        ))
        .map(|r| r.len())
        .unwrap_or(0);
    }
    let build = t.elapsed() / rounds;
    let ring = HashRing::new(&all, DEFAULT_VIRTUAL_NODES_FACTOR).expect("valid factor");
    let t = Instant::now();
    let mut found = 0;
    for _ in 0..10 {
        for k in &keys {
            found += usize::from(ring.lookup(std::hint::black_box(k)).is_some());
        }
    }
    let lookup = t.elapsed() / (10 * KEYS as u32);
    assert_eq!(found, 10 * KEYS);
    println!(
        "ring of {} points ({MEMBERS} members x {DEFAULT_VIRTUAL_NODES_FACTOR}): built in {build:?}; lookup of a 9-byte key {lookup:?}",
        points / rounds as usize
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("the share moved by a leave at the default factor is out of bounds");
        ExitCode::FAILURE
    }
}
