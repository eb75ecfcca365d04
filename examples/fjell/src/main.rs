//! The `fjell` command.
//!
//! - `fjell demo`: five nodes on loopback over QUIC (development certificates); prints every
//!   membership event as each node sees it, crashes a node (the split brain resolver downs
//!   it), lets another leave, prints the final members.
//! - `fjell run --config node.toml`: a long-running node from a settings file.
//! - `fjell certs ca|node|admin|fingerprint`: a cluster CA and certificates, as PEM files;
//!   fingerprints for the deny list.
//! - `fjell members|status|leader|unreachable|is-available|join|leave|down`: management of a
//!   running node over QUIC, with an administrator certificate.
//! - `fjell fd-chart`: phi against the time since the last heartbeat, for given failure
//!   detector settings or as a running node observes its members, as an SVG chart, with the
//!   time to suspicion and the expected false suspicions per hour.
//! - `fjell simulate`: the same kind of story in the deterministic simulator (virtual time).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fjell_cli::manage::{self, Subject};
use fjell_quic::Credentials;
use fjell_runtime::management::Request;
use fjell_runtime::settings::resolve_address;
use fjell_runtime::Settings;

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
    /// Create a cluster CA and certificates (PEM files).
    #[command(subcommand)]
    Certs(Certs),
    /// List the members, as the node sees them.
    Members(Manage),
    /// The node's status: itself, the leader, convergence, phi per monitored member.
    Status(Manage),
    /// The leader, as the node sees it.
    Leader(Manage),
    /// Members some observer flags unreachable.
    Unreachable(Manage),
    /// Exit 0 if the node is Up (or WeaklyUp), 1 if not.
    IsAvailable(Manage),
    /// Have the node (not yet a member) join the cluster through the member at ADDRESS.
    Join(Target),
    /// Have the member at ADDRESS leave gracefully.
    Leave(Target),
    /// Mark the member at ADDRESS Down.
    Down(Target),
    /// Chart phi against the time since the last heartbeat (SVG), and print the time to
    /// suspicion and the expected false suspicions per hour, for detector settings and
    /// inter-arrival statistics given here or observed by a running node (`--node`).
    FdChart(FdChart),
    /// Form a cluster in the deterministic simulator (virtual time, in-process network), let
    /// one node leave, and print the events each node saw (feature `simulate`).
    #[cfg(feature = "simulate")]
    Simulate {
        /// Number of nodes (2 to 64).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=64))]
        nodes: u16,
        /// The simulation's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum Certs {
    /// A new cluster CA: `<out>/ca.pem` (for every node and tool) and `<out>/ca.key`.
    Ca {
        /// The cluster's name, in the CA's subject (`CN=fjell cluster CA NAME, O=fjell`), so
        /// that CAs of different clusters are told apart.
        #[arg(long)]
        cluster: String,
        /// Days the CA is valid (from 5 minutes ago, for clock skew).
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Directory to write into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// A node certificate for the address the node advertises.
    Node {
        /// The node's advertised address, IP:PORT or HOST:PORT. A host name is resolved now
        /// (first IPv4 address, else first address) and the certificate certifies that
        /// IP:PORT.
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        issuer: Issuer,
        /// Directory to write `<name>.pem` and `<name>.key` into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// File name stem.
        #[arg(long, default_value = "node")]
        name: String,
    },
    /// An administrator certificate for the management commands.
    Admin {
        /// The administrator's name.
        #[arg(long, default_value = "admin")]
        admin: String,
        #[command(flatten)]
        issuer: Issuer,
        /// Directory to write `<name>.pem` and `<name>.key` into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// File name stem.
        #[arg(long, default_value = "admin")]
        name: String,
    },
    /// Print the SHA-256 fingerprint of each PEM certificate file (its first certificate),
    /// as `sha256:<hex>  FILE`: what `tls.deny` lists.
    Fingerprint {
        /// PEM certificate files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The CA that issues a certificate, and for how long.
#[derive(Args)]
struct Issuer {
    /// The CA certificate; issued certificates chain to it.
    #[arg(long, default_value = "ca.pem")]
    ca_cert: PathBuf,
    /// The CA's private key (must be the key of `--ca-cert`).
    #[arg(long, default_value = "ca.key")]
    ca_key: PathBuf,
    /// Days the certificate is valid (from 5 minutes ago; never beyond the CA).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
}

impl Issuer {
    fn validity(&self) -> Duration {
        whole_days(self.days)
    }
}

fn whole_days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 86_400)
}

/// How to reach a node as an administrator.
#[derive(Args)]
struct Manage {
    /// The node to ask: the IP:PORT it advertises (its certificate must certify exactly
    /// that address), or HOST:PORT resolving to it (first IPv4 address, else first address).
    #[arg(long, env = "FJELL_NODE")]
    node: String,
    #[command(flatten)]
    admin: Admin,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the node's answer (connection and request together).
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

/// An administrator's credentials from the cluster CA.
#[derive(Args, Clone)]
struct Admin {
    /// The cluster CA certificate.
    #[arg(long, env = "FJELL_ADMIN_CA", default_value = "ca.pem")]
    ca: PathBuf,
    /// The administrator certificate.
    #[arg(long, env = "FJELL_ADMIN_CERT", default_value = "admin.pem")]
    cert: PathBuf,
    /// The administrator's private key.
    #[arg(long, env = "FJELL_ADMIN_KEY", default_value = "admin.key")]
    key: PathBuf,
}

/// `fjell fd-chart`'s options.
#[derive(Args)]
struct FdChart {
    /// `failure-detector.heartbeat-interval` (and the mean inter-arrival time of the curves).
    #[arg(long, default_value = "1s", value_parser = duration)]
    heartbeat_interval: Duration,
    /// `failure-detector.acceptable-heartbeat-pause`.
    #[arg(long, default_value = "3s", value_parser = duration)]
    acceptable_heartbeat_pause: Duration,
    /// `failure-detector.min-std-deviation`.
    #[arg(long, default_value = "100ms", value_parser = duration)]
    min_std_deviation: Duration,
    /// `failure-detector.threshold`.
    #[arg(long, default_value_t = 8.0)]
    threshold: f64,
    /// Standard deviations of the inter-arrival times, one curve each.
    #[arg(long, value_delimiter = ',', default_value = "100ms,200ms,500ms,1s", value_parser = duration)]
    std_deviation: Vec<Duration>,
    /// Instead: the settings and the inter-arrival statistics a running node observes, one
    /// curve per member it monitors (administrator credentials as for `fjell status`).
    #[arg(long, env = "FJELL_NODE")]
    node: Option<String>,
    #[command(flatten)]
    admin: Admin,
    /// Seconds to wait for the node's answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The chart file (SVG).
    #[arg(long, default_value = "fd-chart.svg")]
    out: PathBuf,
    /// Chart width in pixels.
    #[arg(long, default_value_t = 900)]
    width: u32,
    /// Chart height in pixels.
    #[arg(long, default_value_t = 560)]
    height: u32,
}

fn duration(s: &str) -> Result<Duration, String> {
    fjell_runtime::settings::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration with a unit, like 500ms or 3s"))
}

/// A command about one member.
#[derive(Args)]
struct Target {
    /// The member's address: IP:PORT, or HOST:PORT resolving to it.
    #[arg(value_parser = resolve_address)]
    address: SocketAddr,
    #[command(flatten)]
    manage: Manage,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            nodes,
            keep_running,
        } => {
            let opts = fjell_cli::demo::Options {
                nodes: nodes.into(),
                keep_running,
            };
            match smol::block_on(fjell_cli::demo::run(opts, std::io::stdout())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fjell demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => run(config),
        Command::Certs(c) => certs(c),
        Command::Members(m) => manage(m, Request::Members),
        Command::Status(m) => manage(m, Request::Status),
        Command::Leader(m) => manage(m, Request::Leader),
        Command::Unreachable(m) => manage(m, Request::Unreachable),
        Command::IsAvailable(m) => manage(m, Request::IsAvailable),
        Command::Join(t) => manage(t.manage, Request::Join(t.address)),
        Command::Leave(t) => manage(t.manage, Request::Leave(t.address)),
        Command::Down(t) => manage(t.manage, Request::Down(t.address)),
        Command::FdChart(c) => fd_chart(c),
        #[cfg(feature = "simulate")]
        Command::Simulate { nodes, seed } => simulate(nodes.into(), seed),
    }
}

fn certs(c: Certs) -> ExitCode {
    let done = match c {
        Certs::Ca { cluster, days, out } => manage::certs_ca(&out, &cluster, whole_days(days)),
        Certs::Node {
            addr,
            issuer,
            out,
            name,
        } => resolve_address(&addr)
            .map_err(Into::into)
            .and_then(|resolved| {
                let msg = manage::certs_issue(
                    &issuer.ca_cert,
                    &issuer.ca_key,
                    &out,
                    &name,
                    Subject::Node(resolved),
                    issuer.validity(),
                )?;
                // Say which address a name became: the certificate certifies only that one.
                Ok(if resolved.to_string() == addr.trim() {
                    msg
                } else {
                    format!("{addr} resolves to {resolved}; certifying {resolved}\n{msg}")
                })
            }),
        Certs::Admin {
            admin,
            issuer,
            out,
            name,
        } => manage::certs_issue(
            &issuer.ca_cert,
            &issuer.ca_key,
            &out,
            &name,
            Subject::Admin(&admin),
            issuer.validity(),
        ),
        Certs::Fingerprint { files } => manage::certs_fingerprint(&files),
    };
    match done {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fjell certs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fd_chart(c: FdChart) -> ExitCode {
    use fjell_cli::fd_chart::{analyse, render, report, Curve};
    let mut settings = fjell_core::DetectorSettings {
        heartbeat_interval: c.heartbeat_interval,
        acceptable_heartbeat_pause: c.acceptable_heartbeat_pause,
        min_std_deviation: c.min_std_deviation,
        threshold: c.threshold,
        ..Default::default()
    };
    let curves: Vec<Curve> = match &c.node {
        None => c
            .std_deviation
            .iter()
            .map(|std| Curve {
                label: format!("std {} ms", std.as_millis()),
                mean: c.heartbeat_interval,
                std: *std,
            })
            .collect(),
        Some(node) => {
            let m = Manage {
                node: node.clone(),
                admin: c.admin.clone(),
                json: true,
                timeout: c.timeout,
            };
            let status = match ask_status(&m) {
                Ok(s) => s,
                Err((text, code)) => {
                    eprintln!("{text}");
                    return ExitCode::from(code);
                }
            };
            let d = &status.detector;
            settings.heartbeat_interval = Duration::from_millis(d.heartbeat_interval_ms);
            settings.acceptable_heartbeat_pause =
                Duration::from_millis(d.acceptable_heartbeat_pause_ms);
            settings.min_std_deviation = Duration::from_millis(d.min_std_deviation_ms);
            settings.threshold = d.threshold;
            let curves: Vec<Curve> = status
                .monitored
                .iter()
                .filter_map(|m| {
                    Some(Curve {
                        label: m.address.to_string(),
                        mean: Duration::from_secs_f64(m.mean_interval_ms? / 1000.0),
                        std: Duration::from_secs_f64(m.std_interval_ms? / 1000.0),
                    })
                })
                .collect();
            if curves.is_empty() {
                eprintln!(
                    "fjell fd-chart: {node} has no inter-arrival statistics yet (no monitored \
                     member has answered a heartbeat, or it runs the deadline detector)"
                );
                return ExitCode::FAILURE;
            }
            curves
        }
    };
    let analyses = analyse(&settings, &curves);
    print!("{}", report(&settings, &analyses));
    match render(&settings, &analyses, &c.out, (c.width, c.height)) {
        Ok(()) => {
            println!("chart: {}", c.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fjell fd-chart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The node's status, for `fd-chart --node`.
fn ask_status(m: &Manage) -> Result<fjell_runtime::management::Status, (String, u8)> {
    let node =
        resolve_address(&m.node).map_err(|e| (format!("fjell: {e}"), manage::EXIT_UNREACHABLE))?;
    let credentials = Credentials::from_pem_files(&m.admin.ca, &m.admin.cert, &m.admin.key)
        .map_err(|e| {
            (
                format!("fjell: cannot load the administrator credentials: {e}"),
                manage::EXIT_UNREACHABLE,
            )
        })?;
    let timeout = Duration::from_secs(m.timeout);
    let (text, code) = smol::block_on(manage::call(
        &credentials,
        node,
        Request::Status,
        true,
        timeout,
    ));
    if code != 0 {
        return Err((text, code));
    }
    serde_json::from_str(&text).map_err(|e| {
        (
            format!("fjell: unreadable status: {e}"),
            manage::EXIT_UNREACHABLE,
        )
    })
}

fn manage(m: Manage, request: Request) -> ExitCode {
    // Resolved once: the node's certificate certifies the IP, and the handshake checks it.
    let node = match resolve_address(&m.node) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fjell: {e}");
            return ExitCode::from(manage::EXIT_UNREACHABLE);
        }
    };
    let credentials = match Credentials::from_pem_files(&m.admin.ca, &m.admin.cert, &m.admin.key) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "fjell: cannot load the administrator credentials ({}, {}, {}): {e}",
                m.admin.ca.display(),
                m.admin.cert.display(),
                m.admin.key.display()
            );
            return ExitCode::from(manage::EXIT_UNREACHABLE);
        }
    };
    let timeout = Duration::from_secs(m.timeout);
    let (text, code) = smol::block_on(manage::call(&credentials, node, request, m.json, timeout));
    if code == manage::EXIT_UNREACHABLE {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    ExitCode::from(code)
}

/// `fjell run`: logs to stderr (RUST_LOG filters; membership changes at info), as text or,
/// with `log-json`, one JSON object per line.
fn run(path: PathBuf) -> ExitCode {
    let settings = match Settings::from_file(&path) {
        Ok(s) => s,
        Err(e) => {
            // Names the file: "cannot read the settings file F: ..." or "F: invalid setting ...".
            eprintln!("fjell run: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_json {
        log.json().init();
    } else {
        log.init();
    }
    let http = settings.http;
    let bootstrap = settings.bootstrap.clone();
    smol::block_on(async {
        let cluster = match settings.builder().start() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fjell run: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let endpoints = match http.map(|a| (a, fjell_ops::Endpoints::bind(a, cluster.clone()))) {
            None => None,
            Some((_, Ok(e))) => Some(e),
            Some((a, Err(e))) => {
                eprintln!("fjell run: management.http: cannot listen on {a}: {e}");
                cluster.abort().await;
                return ExitCode::FAILURE;
            }
        };
        if let Some(e) = endpoints {
            let local = e.local_addr();
            if let Ok(a) = local {
                tracing::info!(
                    "fjell: HTTP endpoints on http://{a} (/alive /ready /cluster/members /metrics)"
                );
            }
            smol::spawn(e.run(fjell_runtime::Smol)).detach();
            // No seed nodes: find the others and join (or found) as Cluster Bootstrap decides.
            if let (Some(b), Ok(local)) = (bootstrap, local) {
                let me = fjell_ops::bootstrap::contact_point(
                    local,
                    cluster.self_address().socket_addr(),
                );
                let c = cluster.clone();
                smol::spawn(async move {
                    let outcome = fjell_ops::bootstrap::run(&c, b, me).await;
                    tracing::info!("fjell: bootstrap ended: {outcome:?}");
                })
                .detach();
            }
        }
        // Ctrl-C or SIGTERM: leave gracefully, so the others never see this node unreachable.
        // SIGHUP: reload the TLS credentials and the deny list.
        let t = futures_lite::future::or(cluster.terminated(), signals(&cluster)).await;
        eprintln!("fjell run: node ended: {t:?}");
        ExitCode::SUCCESS
    })
}

/// Until SIGINT or SIGTERM: then leave gracefully. On SIGHUP reload the TLS credentials and
/// the deny list (the driver logs the outcome).
#[cfg(unix)]
async fn signals(cluster: &fjell_runtime::Cluster) -> fjell_runtime::Termination {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;
    let mut signals = match Signals::new([Signal::Int, Signal::Term, Signal::Hup]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fjell run: cannot install the signal handlers: {e}");
            return std::future::pending().await;
        }
    };
    while let Some(signal) = signals.next().await {
        match signal {
            Ok(Signal::Hup) => {
                let _ = cluster.reload_credentials().await;
            }
            Ok(_) => break,
            // A failure to read one signal is no reason to leave.
            Err(e) => eprintln!("fjell run: reading a signal failed: {e}"),
        }
    }
    eprintln!("fjell run: leaving the cluster");
    cluster.shutdown().await
}

/// Until Ctrl-C: then leave gracefully.
#[cfg(not(unix))]
async fn signals(cluster: &fjell_runtime::Cluster) -> fjell_runtime::Termination {
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    }) {
        eprintln!("fjell run: cannot install the signal handler: {e}");
    }
    let _ = stop_rx.recv().await;
    eprintln!("fjell run: leaving the cluster");
    cluster.shutdown().await
}

#[cfg(feature = "simulate")]
fn describe(e: &fjell_core::Event) -> String {
    use fjell_core::Event;
    match e {
        Event::MemberJoined(m) => format!("MemberJoined  {}", m.address),
        Event::MemberWeaklyUp(m) => format!("MemberWeaklyUp {}", m.address),
        Event::MemberUp(m) => format!(
            "MemberUp      {} (up-number {})",
            m.address,
            m.up_number.map_or(0, |n| n.get())
        ),
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

#[cfg(feature = "simulate")]
fn simulate(n: usize, seed: u64) -> ExitCode {
    let mut sim: fjell_sim::Sim = fjell_sim::Sim::new(seed);
    let ids = sim.start_cluster(n, &fjell_core::Config::default(), 3);
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
        println!(
            "  {}  {:?}  up-number {}",
            m.address,
            m.status,
            m.up_number.map_or(0, |n| n.get())
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// `fjell run` ignores exactly the variables the management commands read; a new one
    /// added here without `Settings::MANAGEMENT_VARIABLES` would stop nodes from starting.
    #[test]
    fn the_management_variables_are_the_ones_settings_ignore() {
        let cli = Cli::command();
        let members = cli.find_subcommand("members").unwrap();
        let mut read: Vec<String> = members
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        read.sort();
        let mut ignored: Vec<String> = Settings::MANAGEMENT_VARIABLES
            .iter()
            .map(|v| v.to_string())
            .collect();
        ignored.sort();
        assert_eq!(read, ignored);
    }
}
