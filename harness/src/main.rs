//! `fjell-harness`: runs fjell nodes as real processes in network namespaces and injects
//! faults (see the crate docs and TESTING.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fjell_harness::runner::{self, Options, Outcome};
use fjell_harness::scenario::Scenario;
use fjell_harness::{net, soak};

/// Multi-node fault-injection harness for fjell (Linux, root).
#[derive(Parser)]
#[command(name = "fjell-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (or every `*.toml` in the directories given), one after another.
    Run {
        /// Scenario files or directories.
        #[arg(default_value = "harness/scenarios")]
        paths: Vec<PathBuf>,
        /// Only the scenarios marked `ci = true`.
        #[arg(long)]
        ci: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Random faults for a long time on 7 (or --nodes) nodes; every round must converge.
    Soak {
        /// How long, e.g. `1h`, `30m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Number of nodes.
        #[arg(long, default_value_t = 7)]
        nodes: usize,
        /// Seed of the fault schedule and the impairment.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The harness's node program: fjell-runtime embedded, sending application messages
    /// (what scenarios with `program = "harness-node"` run).
    Node {
        /// The settings file.
        #[arg(long)]
        config: PathBuf,
        /// Where to log received application messages.
        #[arg(long)]
        app_log: PathBuf,
    },
    /// Say what this machine offers: namespaces, TUN, tc netem.
    Env,
}

#[derive(clap::Args)]
struct Common {
    /// The `fjell` binary; by default the one next to this program (built first when this
    /// program runs under `cargo run`).
    #[arg(long)]
    fjell: Option<PathBuf>,
    /// Where runs keep their files.
    #[arg(long, default_value = "target/harness")]
    out: PathBuf,
    /// Keep the files of runs that pass too.
    #[arg(long)]
    keep: bool,
    /// Print only the summary.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Node { config, app_log } => {
            ExitCode::from(fjell_harness::app::run(&config, &app_log))
        }
        Command::Env => {
            println!("{}", net::Impairment::Userspace.description());
            match preflight() {
                Ok(()) => {
                    println!("namespaces and TUN devices: usable");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { paths, ci, common } => {
            let mut scenarios = Vec::new();
            for p in &paths {
                match files(p) {
                    Ok(f) => scenarios.extend(f),
                    Err(e) => {
                        eprintln!("fjell-harness: {}: {e}", p.display());
                        return ExitCode::from(2);
                    }
                }
            }
            let mut loaded = Vec::new();
            for f in scenarios {
                match Scenario::from_file(&f) {
                    Ok(s) if !ci || s.ci => loaded.push(s),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("fjell-harness: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            run_all(&loaded, &common, None)
        }
        Command::Soak {
            duration,
            nodes,
            seed,
            common,
        } => {
            if !(3..=fjell_harness::scenario::MAX_NODES).contains(&nodes) {
                eprintln!(
                    "fjell-harness: --nodes must be 3 to {}",
                    fjell_harness::scenario::MAX_NODES
                );
                return ExitCode::from(2);
            }
            run_all(
                &[soak::scenario(nodes, duration, seed)],
                &common,
                Some(duration),
            )
        }
    }
}

fn files(p: &Path) -> std::io::Result<Vec<PathBuf>> {
    if p.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![p.to_path_buf()])
    }
}

fn run_all(scenarios: &[Scenario], common: &Common, stop_after: Option<Duration>) -> ExitCode {
    if let Err(e) = preflight() {
        eprintln!("fjell-harness: {e}");
        return ExitCode::from(2);
    }
    let fjell = match fjell_binary(common.fjell.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fjell-harness: {e}");
            return ExitCode::from(2);
        }
    };
    runner::install_interrupt_handler();
    match net::cleanup_stale(net::PREFIX_ROOT) {
        Ok(0) | Err(_) => {}
        Ok(n) => println!("removed {n} namespaces left by an earlier run"),
    }
    println!(
        "network impairment: {}",
        net::Impairment::Userspace.description()
    );
    let mut failed = Vec::new();
    for s in scenarios {
        let dir = match runner::run_dir(&common.out, &s.name) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("fjell-harness: {}: {e}", common.out.display());
                return ExitCode::from(2);
            }
        };
        println!(
            "=== {} ({} nodes): {}",
            s.name,
            s.nodes,
            s.description.trim()
        );
        let o = runner::run(
            s,
            &Options {
                fjell: fjell.clone(),
                dir: dir.clone(),
                verbose: !common.quiet,
                stop_after,
            },
        );
        let o = expected(s, o);
        report(&o, !common.quiet);
        if o.failure.is_some() {
            failed.push(s.name.clone());
        } else if !common.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if runner::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    println!(
        "\n{} of {} scenarios passed{}",
        scenarios.len() - failed.len(),
        scenarios.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join(", "))
        }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A control scenario (`fails-with`) passes when its run fails as it should.
fn expected(s: &Scenario, mut o: Outcome) -> Outcome {
    let Some(want) = &s.fails_with else {
        return o;
    };
    o.failure = match o.failure.take() {
        Some(f) if f.contains(want.as_str()) => {
            println!("  failed as it should: {f}");
            None
        }
        Some(f) => Some(format!(
            "a control scenario failed, but not with {want:?}: {f}"
        )),
        None => Some(format!(
            "a control scenario passed: its checks should have failed with {want:?}"
        )),
    };
    o
}

fn report(o: &Outcome, verbose: bool) {
    let extra = format!(
        "{:.1} s; hub dropped {} packets for partitions, {} for loss; {} application messages checked",
        o.elapsed.as_secs_f64(),
        o.dropped.0,
        o.dropped.1,
        o.messages
    );
    match &o.failure {
        None => println!("PASS {} ({extra})", o.name),
        Some(f) => {
            if !verbose {
                // The timeline, for a failure seen only in a summary (CI).
                o.log.iter().for_each(|l| println!("{l}"));
            }
            println!(
                "FAIL {}: {f}\n     ({extra})\n     logs: {}",
                o.name,
                o.dir.display()
            );
            let _ = std::fs::write(
                o.dir.join("timeline.txt"),
                o.log.join("\n") + "\n" + f + "\n",
            );
        }
    }
}

/// The `fjell` binary: given, or next to this program (built first under `cargo run`, so
/// it is never stale).
fn fjell_binary(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let sibling = me.with_file_name("fjell");
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = me.components().any(|c| c.as_os_str() == "release");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "fjell-cli", "--bin", "fjell"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot build fjell: {e}"))?;
        if !status.success() {
            return Err("building the fjell binary failed".into());
        }
    }
    if sibling.exists() {
        Ok(sibling)
    } else {
        Err(format!(
            "no fjell binary at {}: build it (cargo build -p fjell-cli) or pass --fjell",
            sibling.display()
        ))
    }
}

/// Whether this process can build the harness network: root, TUN, `ip`.
fn preflight() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the harness needs root (network namespaces, TUN devices)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("no /dev/net/tun: the kernel offers no TUN devices".into());
    }
    match std::process::Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("no `ip` command: install iproute2".into()),
    }
}
