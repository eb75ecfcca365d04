//! Routers over a real cluster (QUIC on loopback): a round-robin router reaches every member
//! and follows a member's leave; consistent-hashing routers on two nodes agree on every key,
//! before and after; a role-restricted router runs out of routees.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use fjell_runtime::quic::DevCa;
use fjell_runtime::{Cluster, StopReason, Termination};
use fjell_tools::routing::{RouteError, Routed, Router, RouterSettings, RoutingLogic};
use serde::{Deserialize, Serialize};

use common::{all_up, sockets, until, within};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Job(u32);

#[test]
fn routers_follow_membership() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (sockets, addrs) = sockets(3);
        let nodes: Vec<Cluster> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let roles: &[&str] = if i == 2 { &["backend"] } else { &[] };
                common::node(&ca, s, &addrs, common::config(), |b| b.roles(roles))
            })
            .collect();
        for n in &nodes {
            until(30, "three members Up, converged", n, all_up(3)).await;
        }
        let mut sorted = addrs.clone();
        sorted.sort();

        // Round-robin on node 1: every member in turn, in address order, itself included.
        let rr = Router::new(nodes[0].clone(), RouterSettings::default()).unwrap();
        assert_eq!(rr.routees(), sorted);
        let mut picked = Vec::new();
        for i in 0..6 {
            let routed = rr.send_next(&Job(i)).await.unwrap();
            match routed {
                Routed::Local(a) => assert_eq!(a, addrs[0], "local means this node"),
                Routed::Remote(a) => assert_ne!(a, addrs[0]),
            }
            picked.push(routed.addr());
        }
        assert_eq!(picked[..3], sorted[..]);
        assert_eq!(picked[3..], sorted[..]);
        // The remote members each received their two jobs.
        for (n, a) in nodes.iter().zip(&addrs).skip(1) {
            let mut got = Vec::new();
            for _ in 0..2 {
                let m = within(10, "a routed job", n.recv()).await.unwrap();
                assert_eq!(m.from, addrs[0]);
                got.push(m.decode::<Job>().unwrap().0);
            }
            let expected: Vec<u32> = (0..6).filter(|i| picked[*i as usize] == *a).collect();
            assert_eq!(got, expected, "{a}");
        }

        // Consistent hashing on nodes 1 and 2: the same owner for every key.
        let hashing = RouterSettings::new(RoutingLogic::consistent_hashing());
        let ch1 = Router::new(nodes[0].clone(), hashing.clone()).unwrap();
        let ch2 = Router::new(nodes[1].clone(), hashing).unwrap();
        let keys: Vec<String> = (0..300).map(|k| format!("order-{k}")).collect();
        let before: Vec<SocketAddr> = keys
            .iter()
            .map(|k| ch1.route(k.as_bytes()).unwrap())
            .collect();
        for (k, owner) in keys.iter().zip(&before) {
            assert_eq!(ch2.route(k.as_bytes()), Some(*owner), "{k}");
        }
        assert_eq!(before.iter().collect::<BTreeSet<_>>().len(), 3);
        // A keyed send from node 2 reaches the key's owner.
        let (k, _) = keys
            .iter()
            .zip(&before)
            .find(|(_, o)| **o == addrs[2])
            .unwrap();
        assert_eq!(
            ch2.send(k.as_bytes(), &Job(99)).await.unwrap(),
            Routed::Remote(addrs[2])
        );
        let m = within(10, "the keyed job", nodes[2].recv()).await.unwrap();
        assert_eq!((m.from, m.decode::<Job>().unwrap()), (addrs[1], Job(99)));

        // Only the backend (node 3).
        let backend = Router::new(
            nodes[0].clone(),
            RouterSettings::default().roles(["backend"]),
        )
        .unwrap();
        assert_eq!(backend.routees(), [addrs[2]]);

        // Node 3 leaves and is removed: every router follows.
        let gone = addrs[2];
        assert_eq!(
            within(40, "node 3 leaving", nodes[2].shutdown()).await,
            Termination::Stopped(StopReason::Left)
        );
        for n in &nodes[..2] {
            until(30, "node 3 removed", n, |s| s.member(gone).is_none()).await;
        }
        let rest: Vec<_> = sorted.iter().copied().filter(|a| *a != gone).collect();
        assert_eq!(rr.routees(), rest);
        for _ in 0..4 {
            assert_ne!(rr.next(), Some(gone));
        }
        assert_eq!(backend.routees(), []);
        assert!(matches!(
            backend.send_next(&Job(0)).await,
            Err(RouteError::NoRoutees)
        ));
        // Only node 3's keys moved, and both nodes still agree.
        for (k, old) in keys.iter().zip(&before) {
            let owner = ch1.route(k.as_bytes()).unwrap();
            assert_eq!(ch2.route(k.as_bytes()), Some(owner), "{k}");
            assert_ne!(owner, gone);
            if *old != gone {
                assert_eq!(owner, *old, "{k} moved between remaining members");
            }
        }

        drop((rr, ch1, ch2, backend));
        for n in &nodes[..2] {
            n.shutdown().await;
        }
    });
}
