//! fjell-quic against raw quinn on loopback, each peer in its own process: application
//! message throughput and request/response latency, then heartbeat phi while the link is
//! saturated.
//!
//! `cargo bench -p fjell-quic --bench loopback` (FJELL_BENCH_SECS sets each measurement's
//! length per stack, default 10; FJELL_BENCH_PHI=0 skips the phi phases). The benchmark
//! re-executes itself as the peer process (see `loopback/peer.rs`); the two meet on
//! 127.0.0.1. Raw quinn uses the same runtime (smol, `SMOL_THREADS` threads in each process),
//! crypto, certificates, QUIC settings and message sizes as fjell, with nothing of fjell's on
//! top (see `loopback/raw.rs`). Each measurement alternates between the two stacks in ten
//! slices, so that other work on the machine falls on both alike. Prints the results and the
//! ratios fjell/raw; exits 1 when fjell's p99 at 10,000 req/s is above 1.25x raw quinn's or
//! its batched throughput below 0.8x raw quinn's.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "loopback/peer.rs"]
mod peer;
#[path = "loopback/raw.rs"]
mod raw;

use common::*;
use fjell_quic::{DevCa, Transport, TransportConfig};

/// Set (to anything) in the environment of the peer process.
const PEER_ENV: &str = "FJELL_QUIC_BENCH_PEER";
/// 99 bytes of body: 100 bytes serialized (one length byte).
const BODY: usize = 99;
/// Application messages per `send_batch` (and per raw `write_all`) in the batched phases.
const BATCH: usize = 1024;
/// Requests in the one-at-a-time phases.
const CLOSED_LOOP: u64 = 20_000;
/// The open-loop request rate.
const RATE: u64 = 10_000;
/// Targets: fjell's p99 at `RATE` at most this multiple of raw quinn's, and its batched
/// throughput at least this fraction of raw quinn's.
const P99_TARGET: f64 = 1.25;
const THROUGHPUT_TARGET: f64 = 0.8;
/// Slices each measurement is cut into, alternating between the stacks.
const SLICES: u32 = 10;

fn main() {
    // The role comes from the environment, not the arguments: cargo bench adds its own.
    if std::env::var_os(PEER_ENV).is_some() {
        return peer::run();
    }
    let secs: u64 = std::env::var("FJELL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let phase = Duration::from_secs(secs);
    let phi = std::env::var("FJELL_BENCH_PHI").map_or(true, |v| v != "0");
    let met = smol::block_on(async {
        let met = versus_raw(phase).await;
        if phi {
            phi_phases(phase).await;
        }
        met
    });
    if !met {
        println!("a target was missed");
        std::process::exit(1);
    }
}

/// Which of the two stacks a measurement is of.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Raw,
    Fjell,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Raw => "raw quinn",
            Side::Fjell => "fjell",
        })
    }
}

/// The peer process and its control pipes.
struct PeerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PeerProcess {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(PEER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        PeerProcess {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "the peer process ended");
        l.trim().to_string()
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// One-way messages the peer's fjell node or raw endpoint has received so far, and the
    /// CPU time the peer process has used (nanoseconds).
    fn count(&mut self, side: Side) -> (u64, u64) {
        self.say("count");
        let l = self.line();
        let n: Vec<u64> = l.split(' ').map(|w| w.parse().unwrap()).collect();
        (n[side as usize ^ 1], n[2])
    }

    fn quit(mut self) {
        self.say("quit");
        let _ = self.child.wait();
    }
}

/// The measurements of fjell and raw quinn side by side; true if both targets are met.
async fn versus_raw(phase: Duration) -> bool {
    let smol_threads = std::env::var("SMOL_THREADS").unwrap_or_else(|_| "1 (default)".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "fjell vs raw quinn, one peer per process on 127.0.0.1, {phase:?} per phase, SMOL_THREADS {smol_threads}, load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // The peer binds first; its certificates need its addresses.
    let mut peer = PeerProcess::start();
    let bound = peer.line();
    let addrs: Vec<SocketAddr> = bound
        .strip_prefix("bound ")
        .unwrap_or_else(|| panic!("expected `bound`, got {bound:?}"))
        .split(' ')
        .map(|a| a.parse().unwrap())
        .collect();
    let (peer_fjell, peer_raw) = (addrs[0], addrs[1]);

    let ca = DevCa::new().unwrap();
    let dir = std::env::temp_dir().join(format!("fjell-quic-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("ca.pem", &ca.ca_pem());
    let (cert, key) = ca.node_pem(peer_fjell).unwrap();
    write("fjell.pem", &cert);
    write("fjell.key", &key);
    let (cert, key) = ca.node_pem(peer_raw).unwrap();
    write("raw.pem", &cert);
    write("raw.key", &key);

    let (socket, me) = free_socket();
    let cfg = TransportConfig::new(ca.node(me).unwrap());
    let tc = raw::quic_settings(&cfg);
    let fjell = Transport::with_socket(cfg, socket, Arc::new(quinn::SmolRuntime)).unwrap();
    fjell.set_members([peer_fjell]);
    peer.say(&format!("certs {} {me}", dir.display()));
    let ready = peer.line();
    assert_eq!(ready, "ready");
    let _ = std::fs::remove_dir_all(&dir);

    let (raw_socket, raw_me) = free_socket();
    let client = raw::Client::connect(raw_socket, &ca.node(raw_me).unwrap(), tc, peer_raw).await;
    let fj = Target::Fjell(fjell.clone(), peer_fjell);
    let rw = Target::Raw(client.clone());
    // Warm up: connections established, congestion windows and RTT estimates settled.
    for t in [&rw, &fj] {
        for i in 0..1000 {
            t.request(i).await.unwrap();
        }
    }

    // Each measurement alternates between the stacks in slices, so that background load
    // on a shared machine falls on both alike.
    let slice = phase / SLICES;
    let mut tput = async |batch| {
        let mut r = [Rate::default(), Rate::default()];
        for k in 0..SLICES {
            for side in order(k) {
                let measured = match side {
                    Side::Raw => {
                        let sink = RawSink::new(&client, batch).await;
                        throughput(&mut peer, side, slice, sink).await
                    }
                    Side::Fjell => {
                        let sink = FjellSink::new(fjell.clone(), peer_fjell, batch);
                        throughput(&mut peer, side, slice, sink).await
                    }
                };
                r[side as usize].add(measured);
            }
        }
        r
    };
    let [raw_b, fjell_b] = tput(BATCH).await;
    let [raw_1, fjell_1] = tput(1).await;
    let mut closed = [Collected::default(), Collected::default()];
    let mut open = [Collected::default(), Collected::default()];
    for k in 0..SLICES {
        for t in order(k).map(|s| [&rw, &fj][s as usize]) {
            let into = &mut closed[t.side() as usize];
            let cpu = (cpu_ns(), peer.count(t.side()).1);
            closed_loop(t, CLOSED_LOOP / u64::from(SLICES), into).await;
            into.cpu(cpu, cpu_ns(), peer.count(t.side()).1);
        }
    }
    for k in 0..SLICES {
        for t in order(k).map(|s| [&rw, &fj][s as usize]) {
            let into = &mut open[t.side() as usize];
            let cpu = (cpu_ns(), peer.count(t.side()).1);
            at_rate(t, RATE, slice, into).await;
            into.cpu(cpu, cpu_ns(), peer.count(t.side()).1);
        }
    }
    peer.quit();
    fjell.close().await;
    client.conn.close(quinn::VarInt::from_u32(0), b"done");
    let [raw_c, fjell_c] = closed.map(Collected::done);
    let [raw_o, fjell_o] = open.map(Collected::done);

    let mut met = true;
    println!("100-byte application messages one way, received while sending ({SLICES} slices each, range over slices):");
    let ratio = fjell_b.rate() / raw_b.rate();
    let ok = ratio >= THROUGHPUT_TARGET;
    met &= ok;
    println!(
        "  batches of {BATCH}: raw quinn {}, fjell {}; fjell/raw {ratio:.2} (target >= {THROUGHPUT_TARGET}: {})",
        raw_b.line(),
        fjell_b.line(),
        verdict(ok)
    );
    println!(
        "  one by one:      raw quinn {}, fjell {}; fjell/raw {:.2}",
        raw_1.line(),
        fjell_1.line(),
        fjell_1.rate() / raw_1.rate()
    );
    println!("  CPU time per message (whole process, until all have arrived):");
    for (what, r, f) in [
        (format!("batches of {BATCH}"), &raw_b, &fjell_b),
        ("one by one".to_string(), &raw_1, &fjell_1),
    ] {
        println!("    {what}: raw quinn {}; fjell {}", r.cpu(), f.cpu());
    }
    println!("request/response one at a time (closed loop):");
    println!("  raw quinn: {}", raw_c.line());
    println!("  fjell:     {}", fjell_c.line());
    println!("  fjell/raw: {}", fjell_c.ratios(&raw_c));
    println!("request/response at a steady {RATE} req/s (open loop, timed from when each is due):");
    println!("  raw quinn: {}", raw_o.line());
    println!("  fjell:     {}", fjell_o.line());
    let ratio = fjell_o.p(0.99) as f64 / raw_o.p(0.99) as f64;
    let ok = ratio <= P99_TARGET && fjell_o.failed == 0;
    met &= ok;
    println!(
        "  fjell/raw: {} (target p99 <= {P99_TARGET}x, no failures: {})",
        fjell_o.ratios(&raw_o),
        verdict(ok)
    );
    met
}

/// CPU time this process has used so far, in nanoseconds: the sum over its threads of the
/// scheduler's run time (finer than the clock ticks of `/proc/self/stat`). Threads that have
/// ended are not counted; the benchmark's threads live throughout.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The order of the stacks in slice `k`: raw first, then fjell first, and so on.
fn order(k: u32) -> [Side; 2] {
    if k % 2 == 0 {
        [Side::Raw, Side::Fjell]
    } else {
        [Side::Fjell, Side::Raw]
    }
}

/// Messages received over the slices of a throughput measurement.
#[derive(Default)]
struct Rate {
    got: u64,
    time: Duration,
    slices: Vec<f64>,
    sent: u64,
    sender_cpu: u64,
    receiver_cpu: u64,
}

impl Rate {
    fn add(&mut self, s: Slice) {
        self.got += s.got;
        self.time += s.time;
        self.slices.push(s.got as f64 / s.time.as_secs_f64());
        self.sent += s.sent;
        self.sender_cpu += s.sender_cpu;
        self.receiver_cpu += s.receiver_cpu;
    }

    fn rate(&self) -> f64 {
        self.got as f64 / self.time.as_secs_f64()
    }

    fn line(&self) -> String {
        let min = self.slices.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.slices.iter().copied().fold(0.0, f64::max);
        format!("{:.0} msg/s ({:.0}-{:.0})", self.rate(), min, max)
    }

    /// CPU per message in the sending and the receiving process.
    fn cpu(&self) -> String {
        let per = |ns: u64| ns as f64 / self.sent as f64;
        format!(
            "sender {:.0} ns, receiver {:.0} ns",
            per(self.sender_cpu),
            per(self.receiver_cpu)
        )
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// What the throughput phases send with.
trait Sink {
    /// Sends one batch (or one message); the number of messages sent.
    fn send(&mut self) -> impl Future<Output = u64>;
    /// Ends the phase.
    fn end(self);
}

struct FjellSink {
    t: Transport,
    to: SocketAddr,
    one: Blob,
    many: Vec<Blob>,
}

impl FjellSink {
    fn new(t: Transport, to: SocketAddr, batch: usize) -> Self {
        let one = serde_bytes_vec(BODY);
        let many = if batch > 1 {
            vec![one.clone(); batch]
        } else {
            Vec::new()
        };
        FjellSink { t, to, one, many }
    }
}

impl Sink for FjellSink {
    async fn send(&mut self) -> u64 {
        if self.many.is_empty() {
            self.t.send(self.to, &self.one).await.unwrap();
            1
        } else {
            self.t.send_batch(self.to, &self.many).await.unwrap();
            self.many.len() as u64
        }
    }

    fn end(self) {}
}

/// Length-prefixed 100-byte messages on one unidirectional stream: a batch is one
/// `write_all`.
struct RawSink {
    s: quinn::SendStream,
    buf: Vec<u8>,
    batch: u64,
}

impl RawSink {
    async fn new(c: &raw::Client, batch: usize) -> Self {
        let s = c.conn.open_uni().await.unwrap();
        let body: Vec<u8> = (0..BODY + 1).map(|i| i as u8).collect();
        let mut buf = Vec::new();
        for _ in 0..batch {
            raw::frame(&mut buf, &body);
        }
        RawSink {
            s,
            buf,
            batch: batch as u64,
        }
    }
}

impl Sink for RawSink {
    async fn send(&mut self) -> u64 {
        self.s.write_all(&self.buf).await.unwrap();
        self.batch
    }

    fn end(mut self) {
        let _ = self.s.finish();
    }
}

/// What one throughput slice measured.
struct Slice {
    /// Messages the peer received while they were being sent, and for how long they were.
    got: u64,
    time: Duration,
    /// Messages sent (all of them arrive before the slice ends).
    sent: u64,
    /// CPU time the sending and the receiving process used for them (nanoseconds).
    sender_cpu: u64,
    receiver_cpu: u64,
}

/// 100-byte messages one way, as fast as they go, for `slice`; then waits until all have
/// arrived.
async fn throughput(
    peer: &mut PeerProcess,
    side: Side,
    slice: Duration,
    mut sink: impl Sink,
) -> Slice {
    let (base, peer_cpu) = peer.count(side);
    let cpu = cpu_ns();
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < slice {
        for _ in 0..16 {
            sent += sink.send().await;
        }
    }
    let time = start.elapsed();
    let got = peer.count(side).0 - base;
    sink.end();
    // Let what is still in flight arrive, so the next slice starts with an idle link.
    let deadline = Instant::now() + Duration::from_secs(60);
    let peer_cpu = loop {
        let (n, c) = peer.count(side);
        if n >= base + sent {
            break c - peer_cpu;
        }
        assert!(Instant::now() < deadline, "{side}: messages lost");
        smol::Timer::after(Duration::from_millis(5)).await;
    };
    Slice {
        got,
        time,
        sent,
        sender_cpu: cpu_ns() - cpu,
        receiver_cpu: peer_cpu,
    }
}

/// Where requests go.
#[derive(Clone)]
enum Target {
    Fjell(Transport, SocketAddr),
    Raw(Arc<raw::Client>),
}

impl Target {
    fn side(&self) -> Side {
        match self {
            Target::Fjell(..) => Side::Fjell,
            Target::Raw(_) => Side::Raw,
        }
    }

    /// A request carrying `i`, answered with `i`.
    async fn request(&self, i: u64) -> Result<(), String> {
        let back = match self {
            Target::Fjell(t, to) => t
                .request::<_, u64>(*to, &i, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?,
            Target::Raw(c) => c.request(i).await?,
        };
        assert_eq!(back, i);
        Ok(())
    }
}

/// Latencies (nanoseconds) and failures gathered over the slices of a measurement.
#[derive(Default)]
struct Collected {
    lat: Vec<u64>,
    failed: u64,
    requests: u64,
    time: Duration,
    /// CPU time of the requesting and the responding process (nanoseconds).
    requester_cpu: u64,
    responder_cpu: u64,
}

impl Collected {
    /// Adds the CPU time used since `before` (this process's, the peer's).
    fn cpu(&mut self, before: (u64, u64), mine: u64, peers: u64) {
        self.requester_cpu += mine - before.0;
        self.responder_cpu += peers - before.1;
    }

    fn done(mut self) -> Latencies {
        self.lat.sort_unstable();
        let per = |ns: u64| ns as f64 / self.requests as f64 / 1000.0;
        Latencies {
            per_second: self.requests as f64 / self.time.as_secs_f64(),
            cpu: (per(self.requester_cpu), per(self.responder_cpu)),
            sorted: self.lat,
            failed: self.failed,
        }
    }
}

/// Latencies of a measurement, sorted.
struct Latencies {
    sorted: Vec<u64>,
    failed: u64,
    per_second: f64,
    /// CPU time per request, requester and responder (µs).
    cpu: (f64, f64),
}

impl Latencies {
    fn p(&self, q: f64) -> u64 {
        let v = &self.sorted;
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    }

    fn line(&self) -> String {
        let us = |ns: u64| format!("{:.0}", ns as f64 / 1000.0);
        format!(
            "p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} requests, {:.0} req/s, {} failed; CPU per request {:.1} µs requester, {:.1} µs responder)",
            us(self.p(0.5)),
            us(self.p(0.9)),
            us(self.p(0.99)),
            us(self.p(0.999)),
            us(*self.sorted.last().unwrap()),
            self.sorted.len(),
            self.per_second,
            self.failed,
            self.cpu.0,
            self.cpu.1
        )
    }

    fn ratios(&self, base: &Latencies) -> String {
        let r = |q| self.p(q) as f64 / base.p(q) as f64;
        format!(
            "p50 {:.2}, p99 {:.2}, p99.9 {:.2}",
            r(0.5),
            r(0.99),
            r(0.999)
        )
    }
}

/// `n` requests one at a time: the latency floor.
async fn closed_loop(target: &Target, n: u64, into: &mut Collected) {
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        target.request(i).await.unwrap();
        into.lat.push(t.elapsed().as_nanos() as u64);
    }
    into.requests += n;
    into.time += start.elapsed();
}

/// Requests started on a fixed schedule (`rate` per second for `slice`, open loop: a slow
/// response does not delay the next request), each awaited by its own task. The schedule is
/// kept by an OS thread sleeping between starts (an async timer here fires in bursts, at
/// millisecond granularity), so requests really are spaced evenly.
async fn at_rate(target: &Target, rate: u64, slice: Duration, into: &mut Collected) {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let total = (rate as f64 * slice.as_secs_f64()) as u64;
    let (l, f, target) = (lat.clone(), failed.clone(), target.clone());
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let (target, lat, failed) = (target.clone(), l.clone(), f.clone());
            // Timed from the moment the request is due, so time spent waiting for the
            // executor counts too.
            tasks.push(smol::spawn(async move {
                match target.request(i).await {
                    Ok(()) => lat.lock().unwrap().push(due.elapsed().as_nanos() as u64),
                    Err(_) => {
                        failed.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
        (tasks, start.elapsed())
    });
    let (tasks, issued_for) = smol::unblock(move || pacer.join().unwrap()).await;
    for t in tasks {
        t.await;
    }
    into.lat.append(&mut lat.lock().unwrap());
    into.failed += failed.load(Relaxed);
    into.requests += total;
    into.time += issued_for;
}

/// Heartbeat phi while application messages saturate the link (both nodes in this process,
/// each driven by a minimal core driver).
async fn phi_phases(phase: Duration) {
    let ca = DevCa::new().unwrap();
    let (na, nb) = two_nodes_up(&ca).await;
    for (what, size, batch) in [
        ("100-byte messages in batches of 1024", BODY, 1024),
        ("4 MiB messages", 4 * 1024 * 1024, 1),
    ] {
        let r = phi_under_load(&na, &nb, phase, size, batch).await;
        println!(
            "phi while saturated with {what} (both nodes in this process): max phi {:.3} (either direction, sampled every 100 ms), {:.0} msg/s, {:.0} MiB/s, {:?}",
            r.max_phi,
            r.delivered as f64 / r.elapsed.as_secs_f64(),
            r.bytes as f64 / r.elapsed.as_secs_f64() / 1048576.0,
            r.elapsed
        );
    }
    na.transport.close().await;
    nb.transport.close().await;
}
