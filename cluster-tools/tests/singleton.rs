//! The cluster singleton over real QUIC on loopback: four nodes with keep-majority downing.
//! The instance runs on the oldest; a proxy on another node reaches it; when the host leaves
//! the next oldest takes over only after the old instance ended, and requests sent meanwhile
//! are answered by the new one; when that host crashes, the next one starts once the crashed
//! node is downed and removed. Instances report to the test through a channel, with times,
//! so overlaps are checked on what actually ran.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use fjell_quic::DevCa;
use fjell_runtime::Smol;
use fjell_tools::hub::Hub;
use fjell_tools::singleton::{ClusterSingleton, SingletonContext, SingletonSettings};

use common::{all_up, self_up, within};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Started(usize, Instant),
    Ended(usize, Instant),
}

/// The instance: reports its start and end, answers "where are you" with its node's index.
async fn instance(ctx: SingletonContext, me: usize, reports: Sender<Report>) {
    let _ = reports.send(Report::Started(me, Instant::now())).await;
    while let Some(m) = ctx.recv().await {
        if m.is_request() {
            let _ = m.respond(&me);
        }
    }
    // A little work before it ends, as a real instance would flush its state.
    fjell_quic::sleep(&Smol, Duration::from_millis(100)).await;
    let _ = reports.send(Report::Ended(me, Instant::now())).await;
}

fn settings() -> SingletonSettings {
    SingletonSettings {
        stop_timeout: Duration::from_secs(2),
        ..SingletonSettings::new("scheduler")
    }
}

async fn next(reports: &Receiver<Report>, what: &str) -> Report {
    within(40, what, reports.recv()).await.unwrap()
}

#[test]
fn one_instance_on_the_oldest_handed_over_on_leave_and_failed_over_on_crash() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (sockets, addrs) = common::sockets(4);
        let (tx, reports) = async_channel::unbounded();
        let mut nodes = Vec::new();
        let mut singletons = Vec::new();
        // The first node founds the cluster, so it is the oldest.
        for (i, s) in sockets.into_iter().enumerate() {
            let cluster = common::node(&ca, s, &addrs[..1], common::keep_majority(), |b| b);
            within(30, "the node to be Up", cluster.wait_for(self_up)).await;
            let hub = Hub::start(&cluster, Smol);
            let tx = tx.clone();
            let singleton =
                ClusterSingleton::start(&hub, settings(), move |ctx| instance(ctx, i, tx.clone()))
                    .unwrap();
            nodes.push(cluster);
            singletons.push(singleton);
        }
        for n in &nodes {
            within(30, "four members Up", n.wait_for(all_up(4))).await;
        }
        assert!(matches!(
            next(&reports, "the first instance").await,
            Report::Started(0, _)
        ));
        let proxy = singletons[3].proxy();
        let host: usize = within(10, "an answer", proxy.request(&"where"))
            .await
            .unwrap();
        assert_eq!(host, 0);

        // Hand-over: node 0 leaves; requests sent meanwhile wait and are answered by node 1.
        let left_at = Instant::now();
        let leaving = nodes[0].clone();
        let leave = Arc::new(smol::spawn(async move { leaving.shutdown().await }));
        let waiting = {
            let proxy = proxy.clone();
            smol::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..20 {
                    answers.push(proxy.request::<_, usize>(&"where").await);
                    fjell_quic::sleep(&Smol, Duration::from_millis(100)).await;
                }
                answers
            })
        };
        let Report::Ended(0, ended) = next(&reports, "node 0's instance to end").await else {
            panic!("node 0's instance ended first");
        };
        let Report::Started(1, started) = next(&reports, "node 1's instance").await else {
            panic!("node 1 took over");
        };
        assert!(
            started >= ended,
            "the new instance started before the old one ended"
        );
        eprintln!(
            "hand-over: leave to new instance {:?}, old instance end to new start {:?}",
            started - left_at,
            started - ended
        );
        for a in waiting.await {
            let a = a.expect("every request sent during the hand-over is answered");
            assert!(a == 0 || a == 1, "answered by {a}");
        }
        drop(leave);

        // Fail-over: node 1 crashes; node 2 starts once node 1 is downed and removed.
        let crashed_at = Instant::now();
        nodes[1].abort().await;
        let report = next(&reports, "node 2's instance after the crash").await;
        // The crashed node's instance was dropped with its node: it reports nothing.
        let Report::Started(2, started) = report else {
            panic!("node 2 took over after the crash, got {report:?}");
        };
        eprintln!(
            "fail-over: crash to new instance {:?}",
            started - crashed_at
        );
        let host: usize = within(10, "an answer", proxy.request(&"where"))
            .await
            .unwrap();
        assert_eq!(host, 2);
        assert_eq!(
            singletons[3].phase(),
            fjell_tools::singleton::decide::Phase::Younger
        );
        for n in &nodes[2..] {
            n.shutdown().await;
        }
    });
}
