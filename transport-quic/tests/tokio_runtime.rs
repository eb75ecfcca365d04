//! The runtime is a value: transports on tokio, and a transport on tokio talking to one on
//! smol in the same process and the same build.

use std::sync::Arc;
use std::time::Duration;

use fjell_quic::{DevCa, Runtime, Transport, TransportConfig};

fn transport(ca: &DevCa, runtime: Arc<dyn Runtime>) -> Transport {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    Transport::with_socket(
        TransportConfig::new(ca.node(addr).unwrap()),
        socket,
        runtime,
    )
    .unwrap()
}

/// Answers every request from `t` with the number plus one.
async fn answer(t: Transport) {
    while let Some(m) = t.recv().await {
        let n: u32 = m.decode().unwrap();
        if m.is_request() {
            t.respond(&m, &(n + 1)).await.unwrap();
        }
    }
}

/// What `b` answers `a` for `n`, within 10 s (on tokio's timer: call inside a tokio runtime).
async fn ask(a: &Transport, b: &Transport, n: u32) -> u32 {
    tokio::time::timeout(
        Duration::from_secs(10),
        a.request(b.address(), &n, Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn messages_and_requests_flow_on_tokio() {
    tokio_rt().block_on(async {
        let ca = DevCa::new().unwrap();
        let tokio: Arc<dyn Runtime> = Arc::new(quinn::TokioRuntime);
        let (a, b) = (transport(&ca, tokio.clone()), transport(&ca, tokio));
        a.set_members([b.address()]);
        b.set_members([a.address()]);
        tokio::spawn(answer(b.clone()));
        assert_eq!(ask(&a, &b, 41).await, 42);
        a.close().await;
        b.close().await;
    });
}

#[test]
fn a_tokio_transport_and_a_smol_transport_talk() {
    let ca = DevCa::new().unwrap();
    // `b` lives on smol's global executor; `a` on a tokio runtime driven by this thread.
    let b = transport(&ca, Arc::new(quinn::SmolRuntime));
    smol::spawn(answer(b.clone())).detach();
    let rt = tokio_rt();
    let a = rt.block_on(async { transport(&ca, Arc::new(quinn::TokioRuntime)) });
    a.set_members([b.address()]);
    b.set_members([a.address()]);
    rt.block_on(async {
        assert_eq!(ask(&a, &b, 1).await, 2);
        a.close().await;
    });
    smol::block_on(b.close());
}
