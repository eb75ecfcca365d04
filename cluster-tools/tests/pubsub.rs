//! Distributed publish-subscribe over real QUIC on loopback: subscriptions spread to every
//! node; a publish reaches every subscriber once; groups get one message per group; a path
//! gets one receiver; a node that joins later is reached once it subscribes; a node that
//! leaves and is removed is no longer published to; an unsubscribe spreads too.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use fjell_quic::DevCa;
use fjell_runtime::{Cluster, Smol};
use fjell_tools::hub::Hub;
use fjell_tools::pubsub::{DistributedPubSub, PubSubError, PubSubSettings, Subscription};

use common::{all_up, within};

fn settings() -> PubSubSettings {
    PubSubSettings {
        gossip_interval: Duration::from_millis(200),
        ..PubSubSettings::default()
    }
}

async fn received(s: &Subscription, what: &str) -> String {
    within(10, what, s.next()).await.unwrap().decode().unwrap()
}

#[test]
fn publish_subscribe_across_a_join_and_a_removal() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (sockets, addrs) = common::sockets(4);
        let mut sockets = sockets.into_iter();
        let mut nodes: Vec<Cluster> = Vec::new();
        let mut ps: Vec<DistributedPubSub> = Vec::new();
        let mut start = |nodes: &mut Vec<Cluster>, ps: &mut Vec<DistributedPubSub>| {
            let c = common::node(
                &ca,
                sockets.next().unwrap(),
                &addrs[..1],
                common::config(),
                |b| b,
            );
            let hub = Hub::start(&c, Smol);
            ps.push(DistributedPubSub::start(&hub, settings()).unwrap());
            nodes.push(c);
        };
        for _ in 0..3 {
            start(&mut nodes, &mut ps);
        }
        for n in &nodes {
            within(30, "three members Up", n.wait_for(all_up(3))).await;
        }
        let addr = |i: usize| -> SocketAddr { addrs[i] };

        // Two subscribers of "news", on nodes 1 and 2; node 0 publishes.
        let s1 = ps[1].subscribe("news").unwrap();
        let s2 = ps[2].subscribe("news").unwrap();
        let both = |n: &[SocketAddr]| n.len() == 2;
        within(
            10,
            "both subscriptions on node 0",
            ps[0].wait_for_subscribers("news", both),
        )
        .await;
        assert_eq!(ps[0].publish("news", "hello").await.unwrap(), 2);
        assert_eq!(received(&s1, "news on node 1").await, "hello");
        assert_eq!(received(&s2, "news on node 2").await, "hello");

        // Groups: one of the two "workers" gets each job.
        let w1 = ps[1].subscribe_group("jobs", "workers").unwrap();
        let w2 = ps[2].subscribe_group("jobs", "workers").unwrap();
        let both_workers = |p: &DistributedPubSub| {
            p.groups("jobs")
                .get("workers")
                .is_some_and(|n| n.len() == 2)
        };
        within(10, "the group on node 0", ps[0].wait_until(both_workers)).await;
        for job in 1..=10u32 {
            assert_eq!(ps[0].publish_to_groups("jobs", &job).await.unwrap(), 1);
        }
        let mut got = Vec::new();
        within(10, "ten jobs", async {
            while got.len() < 10 {
                let m = futures_lite::future::or(w1.next(), w2.next())
                    .await
                    .unwrap();
                got.push(m.decode::<u32>().unwrap());
            }
        })
        .await;
        got.sort();
        assert_eq!(got, (1..=10).collect::<Vec<_>>(), "each job once");

        // A path: one receiver; an unknown path is a typed error.
        let cache = ps[2].register("/user/cache").unwrap();
        let path = |p: &DistributedPubSub| p.registered_nodes("/user/cache") == [addr(2)];
        within(10, "the path on node 0", ps[0].wait_until(path)).await;
        ps[0].send("/user/cache", "get k", false).await.unwrap();
        assert_eq!(received(&cache, "the path's message").await, "get k");
        assert!(matches!(
            ps[0].send("/user/none", "x", false).await,
            Err(PubSubError::NoSuchPath(_))
        ));

        // A node joins and subscribes: node 0 reaches it.
        start(&mut nodes, &mut ps);
        for n in &nodes {
            within(30, "four members Up", n.wait_for(all_up(4))).await;
        }
        let s3 = ps[3].subscribe("news").unwrap();
        let three = |n: &[SocketAddr]| n.len() == 3;
        within(
            10,
            "node 3's subscription on node 0",
            ps[0].wait_for_subscribers("news", three),
        )
        .await;
        assert_eq!(ps[0].publish("news", "again").await.unwrap(), 3);
        for (s, what) in [(&s1, "node 1"), (&s2, "node 2"), (&s3, "node 3")] {
            assert_eq!(received(s, what).await, "again");
        }

        // Node 1 leaves and is removed: no longer published to. Node 2 unsubscribes.
        nodes[1].shutdown().await;
        let gone = |n: &[SocketAddr]| !n.contains(&addr(1));
        within(
            30,
            "node 1's bucket dropped",
            ps[0].wait_for_subscribers("news", gone),
        )
        .await;
        drop(s2);
        let only_3 = |n: &[SocketAddr]| n == [addr(3)];
        within(
            10,
            "node 2's unsubscribe on node 0",
            ps[0].wait_for_subscribers("news", only_3),
        )
        .await;
        assert_eq!(ps[0].publish("news", "last").await.unwrap(), 1);
        assert_eq!(received(&s3, "node 3").await, "last");

        // Bad names and settings are typed errors naming the key.
        assert!(matches!(ps[0].subscribe(""), Err(PubSubError::BadName)));
        let short = PubSubSettings {
            removed_time_to_live: Duration::from_secs(1),
            ..PubSubSettings::default()
        };
        let hub = Hub::start(&nodes[0], Smol);
        let e = DistributedPubSub::start(&hub, short).unwrap_err();
        assert!(e.to_string().contains("removed-time-to-live"), "{e}");

        // A subscriber that does not read loses what its queue cannot hold, and is told.
        let flood = ps[0].subscribe("flood").unwrap();
        let before = ps[0].dead_letters();
        for i in 0..1005u32 {
            ps[0].publish("flood", &i).await.unwrap();
        }
        assert_eq!(flood.dropped(), 5);
        assert_eq!(ps[0].dead_letters() - before, 5);
        assert_eq!(flood.try_next().unwrap().decode::<u32>().unwrap(), 0);
        for n in [&nodes[0], &nodes[2], &nodes[3]] {
            n.shutdown().await;
        }
    });
}
