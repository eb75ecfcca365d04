//! The transport on tokio (`--no-default-features --features tokio,dev-certs`).

#![cfg(all(feature = "tokio", feature = "dev-certs"))]

use std::time::Duration;

use fjell_quic::{DevCa, Transport, TransportConfig};

fn transport(ca: &DevCa) -> Transport {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    Transport::with_socket(TransportConfig::new(ca.node(addr).unwrap()), socket).unwrap()
}

#[test]
fn messages_and_requests_flow_on_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b) = (transport(&ca), transport(&ca));
        a.set_members([b.address()]);
        b.set_members([a.address()]);
        let responder = b.clone();
        tokio::spawn(async move {
            while let Some(m) = responder.recv().await {
                let n: u32 = m.decode().unwrap();
                if m.is_request() {
                    responder.respond(&m, &(n + 1)).await.unwrap();
                }
            }
        });
        let reply: u32 = tokio::time::timeout(
            Duration::from_secs(10),
            a.request(b.address(), &41u32, Duration::from_secs(5)),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(reply, 42);
        a.close().await;
        b.close().await;
    });
}
