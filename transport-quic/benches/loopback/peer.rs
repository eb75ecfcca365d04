//! The peer process: a fjell-quic node and a raw quinn endpoint that receive and answer
//! what the benchmark's main process sends, steered by lines on stdin, reporting on stdout.
//!
//! The conversation: the peer binds its two sockets and prints `bound FJELL RAW` (their
//! addresses); the main process issues certificates for them into a directory and writes
//! `certs DIR MAIN_FJELL`; the peer starts both endpoints and prints `ready`. Then each
//! `count` line is answered with `FJELL RAW CPU`: the one-way messages each has received so
//! far, and the CPU time (nanoseconds) this process has used.
//! End of input (or `quit`) closes both and exits.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use fjell_quic::{Credentials, Transport, TransportConfig};

use crate::raw;

pub fn run() {
    let fjell_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let raw_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "bound {} {}",
        fjell_socket.local_addr().unwrap(),
        raw_socket.local_addr().unwrap()
    )
    .unwrap();
    out.flush().unwrap();

    let mut lines = std::io::stdin().lock().lines();
    let certs = lines.next().expect("certs line").unwrap();
    let mut words = certs.split_whitespace();
    assert_eq!(
        words.next(),
        Some("certs"),
        "expected `certs`, got {certs:?}"
    );
    let dir = PathBuf::from(words.next().unwrap());
    let main_fjell: SocketAddr = words.next().unwrap().parse().unwrap();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();

    let creds =
        Credentials::from_pem(&read("ca.pem"), &read("fjell.pem"), &read("fjell.key")).unwrap();
    let cfg = TransportConfig::new(creds);
    let tc = raw::quic_settings(&cfg);
    let fjell = Transport::with_socket(cfg, fjell_socket, Arc::new(quinn::SmolRuntime)).unwrap();
    fjell.set_members([main_fjell]);
    let fjell_count = Arc::new(AtomicU64::new(0));
    let (t, n) = (fjell.clone(), fjell_count.clone());
    // The application: counts one-way messages, answers each request with its value. It
    // takes what has arrived up to 1,024 at a time (the raw side counts each read's messages
    // in place).
    smol::spawn(async move {
        let mut got = Vec::with_capacity(1024);
        while t.recv_many(&mut got, 1024).await > 0 {
            let mut one_way = 0;
            for m in got.drain(..) {
                if m.is_request() {
                    let v: u64 = m.decode().unwrap();
                    let _ = t.respond(&m, &v).await;
                } else {
                    one_way += 1;
                }
            }
            n.fetch_add(one_way, Relaxed);
        }
    })
    .detach();

    let raw_count = Arc::new(AtomicU64::new(0));
    let raw = raw::serve(
        raw_socket,
        &read("ca.pem"),
        &read("raw.pem"),
        &read("raw.key"),
        tc,
        raw_count.clone(),
    );
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();

    for line in lines {
        match line.unwrap().trim() {
            "count" => {
                writeln!(
                    out,
                    "{} {} {}",
                    fjell_count.load(Relaxed),
                    raw_count.load(Relaxed),
                    crate::cpu_ns()
                )
                .unwrap();
                out.flush().unwrap();
            }
            "quit" => break,
            other => panic!("unknown command {other:?}"),
        }
    }
    smol::block_on(fjell.close());
    raw.close(quinn::VarInt::from_u32(0), b"done");
}
