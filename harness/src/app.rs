//! The harness's own node program (`fjell-harness node`): what an application embedding
//! fjell-runtime looks like to the harness, and the source of the application traffic that
//! scenarios check.
//!
//! It reads its settings with [`fjell_runtime::Settings::from_file`] (so `event-log` and
//! every other key work as for `fjell run`), starts the node on a thread of its own, and
//! every [`CHATTER`] sends each member it sees Up a numbered [`Chatter`] message. Every
//! message it receives is a line of its application log (`{"unix_ms", "from", "run",
//! "seq"}`), which the harness checks: per sender run, sequence numbers only grow. SIGTERM
//! or SIGINT leaves the cluster gracefully; the program exits when the node has stopped.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjell_core::MemberStatus;
use fjell_runtime::{Cluster, Settings};
use serde::{Deserialize, Serialize};

/// How often each node sends every Up member a message.
pub const CHATTER: Duration = Duration::from_millis(100);

/// How long a send may wait for room in a member's queue.
const SEND_PATIENCE: Duration = Duration::from_millis(20);

/// The application message the harness node sends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Chatter {
    /// Random per process start: tells a restarted sender's numbering from the last one's.
    pub run: u64,
    /// 0, 1, 2, ... per receiver.
    pub seq: u64,
}

/// One line of the application log: a message received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    /// Wall-clock milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The sender's address.
    pub from: SocketAddr,
    /// The sender's run.
    pub run: u64,
    /// The message's number.
    pub seq: u64,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the node from `config`, logging received messages to `app_log`; returns the exit
/// code.
pub fn run(config: &Path, app_log: &Path) -> u8 {
    // Logs to stderr like `fjell run` (RUST_LOG filters; membership changes at info).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::from_file(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fjell-harness node: {e}");
            return 2;
        }
    };
    let mut log = match std::fs::File::options()
        .create(true)
        .append(true)
        .open(app_log)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fjell-harness node: cannot open {}: {e}", app_log.display());
            return 2;
        }
    };
    let cluster = match settings.builder().start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fjell-harness node: cannot start: {e}");
            return 1;
        }
    };
    let run_id = u64::from(std::process::id()) << 32 ^ unix_ms();
    smol::block_on(async {
        let receive = async {
            while let Some(m) = cluster.recv().await {
                let Ok(c) = m.decode::<Chatter>() else {
                    continue;
                };
                let r = Received {
                    unix_ms: unix_ms(),
                    from: m.from,
                    run: c.run,
                    seq: c.seq,
                };
                if let Ok(mut line) = serde_json::to_vec(&r) {
                    line.push(b'\n');
                    let _ = log.write_all(&line);
                }
            }
            std::future::pending::<()>().await
        };
        let send = chatter(&cluster, run_id);
        let signals = signals(&cluster);
        let ended = futures_lite::future::or(cluster.terminated(), signals);
        let _ = futures_lite::future::or(
            async {
                ended.await;
            },
            futures_lite::future::or(receive, send),
        )
        .await;
    });
    0
}

/// Sends each Up member (but this node) the next number every [`CHATTER`].
async fn chatter(cluster: &Cluster, run: u64) {
    let mut next: HashMap<SocketAddr, u64> = HashMap::new();
    loop {
        smol::Timer::after(CHATTER).await;
        let state = cluster.state();
        for m in &state.members {
            if m.status != MemberStatus::Up || m.address == state.self_address {
                continue;
            }
            let to = m.address.socket_addr();
            let seq = next.entry(to).or_insert(0);
            // A member cut off for long fills its queue, and a send then waits for room:
            // give up on this message after a moment rather than stall the others (the
            // number is used again, so the receiver sees no gap for it). A message lost with
            // a connection shows as a gap, never as a reordering.
            let sent = cluster
                .within(SEND_PATIENCE, cluster.send(to, &Chatter { run, seq: *seq }))
                .await;
            if matches!(sent, Some(Ok(()))) {
                *seq += 1;
            }
        }
    }
}

/// Until SIGINT or SIGTERM: then leave gracefully.
async fn signals(cluster: &Cluster) -> fjell_runtime::Termination {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;
    if let Ok(mut signals) = Signals::new([Signal::Int, Signal::Term]) {
        signals.next().await;
    } else {
        eprintln!("fjell-harness node: cannot install the signal handlers");
        std::future::pending::<()>().await;
    }
    cluster.shutdown().await
}
