//! Death watch over a real cluster (QUIC on loopback), with the keep-majority split brain
//! resolver: a member that leaves ends its watches as left; a crashed member is suspected,
//! downed by the resolver and removed, and its watches end as downed; watching a non-member
//! ends at once; a watch ends when its own node stops.

mod common;

use fjell_runtime::quic::DevCa;
use fjell_runtime::{Cluster, MemberStatus, StopReason, Termination, UniqueAddress};
use fjell_tools::death_watch::{watch, DeathWatch, Notice, Removed};

use common::{all_up, node, sockets, within};

#[test]
fn watches_end_when_members_are_removed() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (sockets, addrs) = sockets(4);
        let nodes: Vec<Cluster> = sockets
            .into_iter()
            .map(|s| node(&ca, s, &addrs, common::keep_majority(), |b| b))
            .collect();
        for n in &nodes {
            let s = within(30, "four members Up", n.wait_for(all_up(4))).await;
            assert!(s.is_some(), "a node stopped while forming");
        }
        let [n1, n2, n3, n4] = [&nodes[0], &nodes[1], &nodes[2], &nodes[3]];
        let (a2, a4) = (n2.self_address(), n4.self_address());

        // Not a member: at once, whether no node ever had the address or another
        // incarnation has it.
        let stranger = UniqueAddress::new("127.0.0.1:9".parse().unwrap(), 1);
        assert_eq!(
            within(5, "a stranger's watch", watch(n1, stranger)).await,
            Removed::NotAMember
        );
        let other = UniqueAddress::new(addrs[1], a2.uid().wrapping_add(1));
        assert_eq!(
            within(5, "another incarnation's watch", watch(n1, other)).await,
            Removed::NotAMember
        );

        // Node 1 watches nodes 2 and 4 and wants to hear of suspicion; node 3 watches node 2.
        let mut w1 = DeathWatch::start(n1).await;
        w1.notify_suspected(true);
        w1.watch(a4);
        w1.watch(a2);
        let mut w3 = DeathWatch::start(n3).await;
        w3.watch(a2);

        // Node 4 leaves. A plain `watch` on node 3 (its subscription is taken on its first
        // poll, seconds before the removal can happen) and node 1's death watch see it left
        // and then removed.
        let (left, ended) = within(
            40,
            "node 4 leaving",
            futures_lite::future::zip(watch(n3, a4), n4.shutdown()),
        )
        .await;
        assert_eq!(ended, Termination::Stopped(StopReason::Left));
        assert!(
            matches!(
                left,
                Removed::Left {
                    previous_status: MemberStatus::Leaving | MemberStatus::Exiting
                }
            ),
            "{left:?}"
        );
        let n = within(20, "node 4's removal on node 1", w1.next()).await;
        assert!(
            matches!(n, Some(Notice::Removed { member, removed: Removed::Left { .. } }) if member == a4),
            "{n:?}"
        );
        // Removed, so no longer a member: a new watch ends at once.
        assert_eq!(
            within(5, "a removed member's watch", watch(n1, a4)).await,
            Removed::NotAMember
        );

        // Node 2 crashes: unreachable (suspected on node 1), downed by the resolver on the
        // majority side (nodes 1 and 3), removed.
        assert_eq!(n2.abort().await, Termination::Aborted);
        let n = within(30, "node 2 suspected", w1.next()).await;
        assert_eq!(n, Some(Notice::Suspected(a2)));
        let n = within(30, "node 2 downed and removed", w1.next()).await;
        assert_eq!(
            n,
            Some(Notice::Removed {
                member: a2,
                removed: Removed::Downed
            })
        );
        let n = within(30, "node 2 removed on node 3", w3.next()).await;
        assert_eq!(
            n,
            Some(Notice::Removed {
                member: a2,
                removed: Removed::Downed
            })
        );
        // Nothing is watched any more.
        assert_eq!(w1.next().await, None);

        // A watch ends when its own node stops: node 3, watching node 1, leaves.
        w3.watch(n1.self_address());
        assert_eq!(
            within(40, "node 3 leaving", n3.shutdown()).await,
            Termination::Stopped(StopReason::Left)
        );
        let n = within(5, "node 3's own stop", w3.next()).await;
        assert_eq!(
            n,
            Some(Notice::Removed {
                member: n1.self_address(),
                removed: Removed::Stopped(Some(StopReason::Left))
            })
        );
        // And any watch started on a stopped node.
        assert_eq!(
            within(5, "a watch on a stopped node", watch(n3, n1.self_address())).await,
            Removed::Stopped(Some(StopReason::Left))
        );

        n1.shutdown().await;
    });
}
