//! Bring your own executor: the driver is a plain future, polled here by
//! `futures_lite::future::block_on` on a thread of its own, with a timer that needs no
//! runtime. (fjell-quic's socket I/O runs on smol's own threads, so this needs the `smol`
//! feature and not `tokio`.)

#![cfg(all(feature = "smol", not(feature = "tokio")))]

mod common;

use std::time::Duration;

use fjell_runtime::{BoxFuture, ClusterBuilder, Timer};

/// The simplest timer there is: a thread per sleep. Enough for a test; a real one keeps a
/// single thread with a heap of deadlines.
struct ThreadTimer;

impl Timer for ThreadTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        let (tx, rx) = async_channel::bounded::<()>(1);
        std::thread::spawn(move || {
            std::thread::sleep(d);
            let _ = tx.try_send(());
        });
        Box::pin(async move {
            let _ = rx.recv().await;
        })
    }
}

#[test]
fn a_driver_polled_by_a_plain_block_on_runs_a_node() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let ca = fjell_quic::DevCa::new().unwrap();
    let (cluster, driver) = ClusterBuilder::new()
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .seed_nodes([addr])
        .configure(|c| c.leader_actions_interval = Duration::from_millis(200))
        .build(ThreadTimer)
        .unwrap();
    let driving = std::thread::spawn(move || futures_lite::future::block_on(driver));
    futures_lite::future::block_on(async {
        common::comes_up_and_leaves(&cluster).await;
    });
    driving
        .join()
        .expect("the driver completes after the node stopped");
}

#[test]
fn a_server_sized_node_is_built_from_a_small_stack() {
    // 1.8 MB of node must never pass through the caller's stack (in debug builds a value
    // returned by `Node::new` does): build it from a thread with a 256 KiB stack.
    let ca = fjell_quic::DevCa::new().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let credentials = ca.node(socket.local_addr().unwrap()).unwrap();
    let built = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            ClusterBuilder::new()
                .socket(socket)
                .credentials(credentials)
                .build(ThreadTimer)
                .map(|(cluster, _driver)| cluster.self_address())
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(built.is_ok());
    assert!(std::mem::size_of::<fjell_runtime::DefaultNode>() > 1 << 20);
}
