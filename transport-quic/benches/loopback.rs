//! fjell-quic on loopback between two nodes: application message throughput, request/response
//! latency at a steady rate, and heartbeat phi while the link is saturated.
//!
//! `cargo bench -p fjell-quic --bench loopback` (FJELL_BENCH_SECS sets each phase's length,
//! default 10). Prints one line per measurement; BENCHMARKS.md records the results.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use fjell_quic::{DevCa, Transport};

/// 99 bytes of body: 100 bytes serialized (one length byte).
const BODY: usize = 99;

fn main() {
    let secs: u64 = std::env::var("FJELL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let phase = Duration::from_secs(secs);
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b) = pair(&ca);
        for batch in [1, 64, 1024] {
            throughput(&a, &b, phase, batch).await;
        }
        latency_closed_loop(&a, &b, 20_000).await;
        latency_at_rate(&a, &b, 10_000, phase).await;
        a.close().await;
        b.close().await;

        let (na, nb) = two_nodes_up(&ca).await;
        for (what, size, batch) in [
            ("100-byte messages in batches of 1024", BODY, 1024),
            ("4 MiB messages", 4 * 1024 * 1024, 1),
        ] {
            let r = phi_under_load(&na, &nb, phase, size, batch).await;
            println!(
                "phi while saturated with {what}: max phi {:.3} (either direction, sampled every 100 ms), {:.0} msg/s, {:.0} MiB/s, {:?}",
                r.max_phi,
                r.delivered as f64 / r.elapsed.as_secs_f64(),
                r.bytes as f64 / r.elapsed.as_secs_f64() / 1048576.0,
                r.elapsed
            );
        }
    });
}

/// 100-byte messages one way, as fast as they go, for `phase`.
async fn throughput(a: &Transport, b: &Transport, phase: Duration, batch: usize) {
    let to = b.address();
    let count = Arc::new(AtomicU64::new(0));
    let (rx, c) = (b.clone(), count.clone());
    let receiver = smol::spawn(async move {
        while rx.recv().await.is_some() {
            c.fetch_add(1, Relaxed);
        }
    });
    let msg = serde_bytes_vec(BODY);
    let many = vec![msg.clone(); batch];
    // Warm up: the connection and the receiver are running.
    a.send(to, &msg).await.unwrap();
    while count.load(Relaxed) == 0 {
        smol::future::yield_now().await;
    }
    let start = Instant::now();
    let base = count.load(Relaxed);
    while start.elapsed() < phase {
        for _ in 0..16 {
            if batch == 1 {
                a.send(to, &msg).await.unwrap();
            } else {
                a.send_batch(to, &many).await.unwrap();
            }
        }
    }
    let sent_for = start.elapsed();
    // Count what arrives by then and shortly after (in flight when the sender stopped).
    let got_by_end = count.load(Relaxed) - base;
    smol::Timer::after(Duration::from_millis(500)).await;
    drop(receiver);
    println!(
        "throughput, 100-byte messages one way, {}: {:.0} msg/s received while sending ({:.1} MB/s payload)",
        if batch == 1 { "one send() per message".to_string() } else { format!("send_batch() of {batch}") },
        got_by_end as f64 / sent_for.as_secs_f64(),
        got_by_end as f64 * 100.0 / sent_for.as_secs_f64() / 1e6,
    );
    // Drain what is left so the next phase starts empty.
    while b.try_recv().is_some() {}
}

fn responder(b: &Transport) -> smol::Task<()> {
    let t = b.clone();
    smol::spawn(async move {
        while let Some(m) = t.recv().await {
            if m.is_request() {
                let n: u64 = m.decode().unwrap();
                let _ = t.respond(&m, &n).await;
            }
        }
    })
}

fn percentiles(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!(
        "p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} requests)",
        p(0.5),
        p(0.9),
        p(0.99),
        p(0.999),
        v[v.len() - 1],
        v.len()
    )
}

/// One request at a time: the latency floor.
async fn latency_closed_loop(a: &Transport, b: &Transport, n: u64) {
    let _r = responder(b);
    let mut lat = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let back: u64 = a
            .request(b.address(), &i, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(back, i);
        lat.push(t.elapsed().as_micros() as u64);
    }
    println!(
        "request/response, one at a time: {:.0} req/s; {}",
        n as f64 / start.elapsed().as_secs_f64(),
        percentiles(lat)
    );
}

/// Requests started on a fixed schedule (`rate` per second, open loop: a slow response does
/// not delay the next request), each awaited by its own task. The schedule is kept by an OS
/// thread sleeping between starts (an async timer here fires in bursts, at millisecond
/// granularity), so requests really are spaced evenly.
async fn latency_at_rate(a: &Transport, b: &Transport, rate: u64, phase: Duration) {
    let _r = responder(b);
    let lat = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let total = rate * phase.as_secs();
    let (a, to) = (a.clone(), b.address());
    let (l, f) = (lat.clone(), failed.clone());
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let (a, lat, failed) = (a.clone(), l.clone(), f.clone());
            // Timed from the moment the request is due, so time spent waiting for the
            // executor counts too.
            let t = Instant::now();
            tasks.push(smol::spawn(async move {
                match a.request::<_, u64>(to, &i, Duration::from_secs(5)).await {
                    Ok(_) => lat.lock().unwrap().push(t.elapsed().as_micros() as u64),
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
    let lat = std::mem::take(&mut *lat.lock().unwrap());
    println!(
        "request/response at a steady {rate} req/s (achieved {:.0} req/s, {} failed): {}",
        total as f64 / issued_for.as_secs_f64(),
        failed.load(Relaxed),
        percentiles(lat)
    );
}
