//! Bring your own executor: a runtime made of `async-executor` (run by the test's own
//! threads) and `async-io` for timers and sockets; the driver is a plain future, polled by a
//! plain `block_on` on a thread of its own.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use fjell_runtime::runtime::{AsyncTimer, AsyncUdpSocket};
use fjell_runtime::{ClusterBuilder, Runtime};

#[derive(Debug, Clone)]
struct MyExecutor(Arc<async_executor::Executor<'static>>);

impl Runtime for MyExecutor {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(async_io::Timer::at(at))
    }
    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.0.spawn(task).detach();
    }
    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
        quinn::SmolRuntime.wrap_udp_socket(socket)
    }
}

#[test]
fn a_driver_polled_by_a_plain_block_on_runs_a_node_on_a_third_executor() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let ca = fjell_quic::DevCa::new().unwrap();
    let executor = MyExecutor(Arc::new(async_executor::Executor::new()));
    let (cluster, driver) = ClusterBuilder::new()
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .seed_nodes([addr])
        .configure(|c| c.leader_actions_interval = std::time::Duration::from_millis(200))
        .build(executor.clone())
        .unwrap();
    // The transport's tasks run on the executor, driven by a thread of the test's; the
    // driver by a plain `block_on` on another.
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let ex = executor.0.clone();
    let running = std::thread::spawn(move || {
        async_io::block_on(ex.run(async {
            let _ = stopped.recv().await;
        }))
    });
    let driving = std::thread::spawn(move || futures_lite::future::block_on(driver));
    futures_lite::future::block_on(async {
        common::comes_up_and_leaves(&cluster).await;
    });
    driving
        .join()
        .expect("the driver completes after the node stopped");
    drop(stop);
    running.join().unwrap();
}

#[test]
fn a_server_sized_node_is_built_from_a_small_stack() {
    // A server-sized node (4,096 members of capacity) must build from any thread: with
    // fjell-core's `alloc` feature its per-member state is on the heap, so the value that
    // passes through the stack in a debug build is small. Build it from a 256 KiB stack.
    let ca = fjell_quic::DevCa::new().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let credentials = ca.node(socket.local_addr().unwrap()).unwrap();
    let built = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            ClusterBuilder::new()
                .socket(socket)
                .credentials(credentials)
                .build(fjell_runtime::Smol)
                .map(|(cluster, _driver)| cluster.self_address())
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(built.is_ok());
    assert!(std::mem::size_of::<fjell_runtime::DefaultNode>() < 16 * 1024);
}
