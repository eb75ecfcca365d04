//! `Node::reachability`: what an application (the management endpoint of fjell-runtime, for
//! one) asks about a member, without reaching into the gossip state.

use std::time::Duration;

use fjell_core::{Config, ReachabilityStatus, UniqueAddress};
use fjell_sim::{addr_of, Sim};

#[test]
fn a_cut_off_member_is_unreachable_and_a_stranger_is_none() {
    let mut sim: Sim = Sim::new(11);
    let ids = sim.start_cluster(3, &Config::default(), 3);
    sim.run_until(Duration::from_secs(60), |s| {
        s.all_up(&ids) && s.converged(&ids)
    })
    .expect("formed");
    let (a, b, x) = (ids[0], ids[1], ids[2]);
    let xa = sim.node(x).address();
    for &i in &ids {
        for &j in &ids {
            let m = sim.node(j).address();
            assert_eq!(
                sim.node(i).reachability(&m),
                Some(ReachabilityStatus::Reachable)
            );
        }
    }
    sim.partition(&[a, b], &[x]);
    sim.run_until(Duration::from_secs(30), |s| {
        s.node(a).reachability(&xa) == Some(ReachabilityStatus::Unreachable)
            && s.node(b).reachability(&xa) == Some(ReachabilityStatus::Unreachable)
    })
    .expect("a and b flag x");
    let aa = sim.node(a).address();
    assert_eq!(
        sim.node(b).reachability(&aa),
        Some(ReachabilityStatus::Reachable)
    );
    // Another incarnation at x's address, and an address nobody uses, are not members.
    let stranger = UniqueAddress::new(xa.socket_addr(), xa.uid() ^ 1);
    assert_eq!(sim.node(a).reachability(&stranger), None);
    let nobody = UniqueAddress::new(addr_of(99), 1);
    assert_eq!(sim.node(a).reachability(&nobody), None);
}
