//! The cluster suite, over real QUIC on loopback: formation, events in order, application
//! messages, graceful shutdown and drop, downing, restart on the same port. The same test
//! bodies run in one build with every node on a thread of its own, on smol and on tokio.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fjell_core::{Downing, Event, MemberStatus, StopReason, Strategy};
use fjell_quic::DevCa;
use fjell_runtime::{Cluster, Runtime, SharedMemoryLease, Termination};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Msg {
    Hello(String),
    Ping(u32),
    Pong(u32),
}

/// Three nodes started at once form one cluster; everybody agrees; subscribers see each
/// member's statuses in lifecycle order; callbacks run; application messages flow.
async fn three_nodes_form<R: Place>(rt: R) {
    let timer: &dyn Runtime = &rt;
    let ca = DevCa::new().unwrap();
    let (sockets, seeds) = sockets(3);
    let (up_tx, up_rx) = async_channel::unbounded();
    let nodes: Vec<Cluster> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let roles = if i == 2 { &["backend"][..] } else { &[][..] };
            node_with(rt.clone(), &ca, s, &seeds, |b| b.roles(roles))
        })
        .collect();
    // Subscribed before the node can have joined: every event of the formation follows.
    let mut subs = Vec::new();
    for n in &nodes {
        subs.push(n.subscribe().await);
    }
    for (i, n) in nodes.iter().enumerate() {
        let tx = up_tx.clone();
        let node = n.clone();
        n.register_on_member_up(move || {
            // The state is published before the event: the callback sees this node Up. (It
            // holds a handle, which the docs advise against; it runs, so the handle drops.)
            let up = node
                .self_member()
                .is_some_and(|m| m.status == MemberStatus::Up);
            let _ = tx.try_send((i, up));
        });
    }
    for n in &nodes {
        until(timer, 30, "three members Up, converged", n, all_up(3)).await;
    }
    // Everyone agrees on the members and the leader.
    let states: Vec<_> = nodes.iter().map(|n| n.state()).collect();
    for s in &states {
        assert_eq!(s.members, states[0].members);
        assert_eq!(s.leader, states[0].leader);
        assert!(s.leader.is_some());
        assert_eq!(s.self_member().unwrap().status, MemberStatus::Up);
    }
    assert_eq!(
        nodes.iter().filter(|n| n.state().is_leader()).count(),
        1,
        "one leader"
    );
    // The only backend leads the backends.
    for s in &states {
        assert_eq!(s.role_leader("backend"), Some(nodes[2].self_address()));
        assert_eq!(s.role_leader("frontend"), None);
    }
    // Each node's own Up ran its callback; one registered now runs at once.
    let mut ups: Vec<(usize, bool)> = within(timer, 5, "on-member-up callbacks", async {
        let mut v = Vec::new();
        while v.len() < 3 {
            v.push(up_rx.recv().await.unwrap());
        }
        v
    })
    .await;
    ups.sort();
    assert_eq!(ups, [(0, true), (1, true), (2, true)]);
    let (tx, rx) = async_channel::bounded(1);
    nodes[0].register_on_member_up(move || {
        let _ = tx.try_send(());
    });
    assert!(
        rx.try_recv().is_ok(),
        "already Up: the callback runs at once"
    );

    // Events in lifecycle order: no member goes back, every member ends Up.
    for s in &subs {
        let mut events = Vec::new();
        while let Some(e) = s.try_next() {
            events.push(e);
        }
        for a in &seeds {
            // What the snapshot said, then what the events said.
            let mut st: Vec<_> = s
                .initial
                .member(*a)
                .map(|m| Some(m.status))
                .into_iter()
                .collect();
            st.extend(statuses_of(&events, *a));
            assert_eq!(st.last(), Some(&Some(MemberStatus::Up)), "{a}: {st:?}");
            let st: Vec<MemberStatus> = st
                .into_iter()
                .map(|s| s.expect("never unreachable"))
                .collect();
            assert!(
                st.windows(2).all(|w| w[0] != w[1] && w[0].can_reach(w[1])),
                "{a} in lifecycle order: {st:?}"
            );
        }
        assert!(
            s.initial.leader.is_some()
                || events
                    .iter()
                    .any(|e| matches!(e, Event::LeaderChanged(Some(_))))
        );
    }
    // A late subscriber that asks for the state as events gets the same picture.
    let late = nodes[1].subscribe_as_events().await;
    let mut replay = Vec::new();
    while let Some(e) = late.try_next() {
        replay.push(e);
    }
    let up: Vec<_> = replay
        .iter()
        .filter_map(|e| match e {
            Event::MemberUp(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(up, late.initial.members);
    // Members first, then the leader, then the role leaders.
    let n = replay.len();
    assert_eq!(
        replay[n - 2..],
        [
            Event::LeaderChanged(late.initial.leader),
            Event::RoleLeaderChanged {
                role: fjell_core::Role::new("backend").unwrap(),
                leader: late.initial.role_leader("backend"),
            }
        ]
    );

    // Application messages and requests between members.
    let b = nodes[1].clone();
    rt.spawn(Box::pin(async move {
        while let Some(m) = b.recv().await {
            if let Ok(Msg::Ping(n)) = m.decode() {
                let _ = b.respond(&m, &Msg::Pong(n + 1)).await;
            }
        }
    }));
    let pong: Msg = nodes[0]
        .request(seeds[1], &Msg::Ping(41), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(pong, Msg::Pong(42));
    nodes[2]
        .send(seeds[0], &Msg::Hello("hi".into()))
        .await
        .unwrap();
    let got = within(timer, 5, "a message", nodes[0].recv())
        .await
        .unwrap();
    assert_eq!(got.from, seeds[2]);
    assert_eq!(got.decode::<Msg>().unwrap(), Msg::Hello("hi".into()));

    for n in &nodes {
        n.shutdown().await;
    }
}

/// Shutting a node down, and dropping the last handle to another, both leave gracefully:
/// the others see Left → Exited → Removed and never Unreachable. A node that left restarts
/// on the same port.
async fn shutdown_and_drop_leave_gracefully<R: Place>(rt: R) {
    let timer: &dyn Runtime = &rt;
    let ca = DevCa::new().unwrap();
    let (mut nodes, seeds) = three_up(&rt, &ca).await;
    let subs = [nodes[0].subscribe().await, nodes[1].subscribe().await];
    let (removed_tx, removed_rx) = async_channel::bounded(1);
    nodes[2].register_on_member_removed(move || {
        let _ = removed_tx.try_send(());
    });

    // Shutdown: the node reports it left, and its removal callback ran.
    let c = nodes.pop().unwrap();
    let gone = seeds[2];
    assert_eq!(
        within(timer, 40, "shutdown", c.shutdown()).await,
        Termination::Stopped(StopReason::Left)
    );
    assert!(removed_rx.try_recv().is_ok(), "on-member-removed ran");
    for s in &subs {
        saw_it_leave(timer, s, gone).await;
    }
    // A removed member's handle answers at once.
    assert_eq!(c.shutdown().await, Termination::Stopped(StopReason::Left));
    assert!(c.join(seeds[0]).await.is_err());

    // The node that left restarts on the same port and joins again.
    let socket = bind_again(timer, seeds[2]).await;
    let c = node(rt.clone(), &ca, socket, &seeds);
    for n in [&nodes[0], &nodes[1], &c] {
        until(timer, 30, "the restarted node Up everywhere", n, all_up(3)).await;
    }

    // Dropping the last handle of a member leaves too.
    let b = nodes.pop().unwrap();
    let gone = seeds[1];
    let watch = b.subscribe().await;
    drop(b);
    saw_it_leave(timer, &subs[0], gone).await;
    // The dropped node's own subscription ends with its stop.
    let own = events_until(timer, 20, "the dropped node stopped", &watch, |e| {
        matches!(e, Event::Stopped(_))
    })
    .await;
    assert_eq!(own.last(), Some(&Event::Stopped(StopReason::Left)));
    until(timer, 20, "two members left", &nodes[0], all_up(2)).await;
    for n in [&nodes[0], &c] {
        n.shutdown().await;
    }
}

/// A crashed member is seen unreachable; downing it removes it; its address can rejoin
/// with a new incarnation on the same port.
async fn down_and_restart_on_the_same_port<R: Place>(rt: R) {
    let timer: &dyn Runtime = &rt;
    let ca = DevCa::new().unwrap();
    let (mut nodes, seeds) = three_up(&rt, &ca).await;
    let subs = [nodes[0].subscribe().await, nodes[1].subscribe().await];

    // Crash: unreachable, then downed by hand, then removed.
    let c = nodes.pop().unwrap();
    let crashed = seeds[2];
    let old = c.self_address();
    assert_eq!(c.abort().await, Termination::Aborted);
    drop(c);
    events_until(
        timer,
        20,
        "the crashed member unreachable",
        &subs[0],
        |e| matches!(e, Event::UnreachableMember(m) if m.address == old),
    )
    .await;
    nodes[0].down(crashed).await.unwrap();
    for (i, s) in subs.iter().enumerate() {
        let events = events_until(
            timer,
            20,
            "the downed member removed",
            s,
            |e| matches!(e, Event::MemberRemoved { member, .. } if member.address == old),
        )
        .await;
        let st = statuses_of(&events, crashed);
        if i == 0 {
            // The node that downed it reported Down at once. Another may learn of Down and
            // the removal from one gossip, and then reports only the removal.
            assert_eq!(
                &st[st.len() - 2..],
                [Some(MemberStatus::Down), Some(MemberStatus::Removed)]
            );
        }
    }

    // Restart on the same port, with a new incarnation.
    let socket = bind_again(timer, crashed).await;
    let c = node(rt.clone(), &ca, socket, &seeds);
    assert_ne!(c.self_address(), old);
    until(timer, 30, "the restarted node Up", &c, all_up(3)).await;
    for n in &nodes {
        until(timer, 20, "the new incarnation Up everywhere", n, |st| {
            all_up(3)(st) && st.member(crashed).unwrap().address == c.self_address()
        })
        .await;
    }
    let all = [nodes[0].clone(), nodes[1].clone(), c];
    for n in &all {
        n.shutdown().await;
    }
}

/// With lease-majority downing, the two survivors of a crash take the lease and down the
/// crashed member, which is then removed everywhere.
async fn lease_majority_downs_a_crashed_member<R: Place>(rt: R) {
    let timer: &dyn Runtime = &rt;
    let ca = DevCa::new().unwrap();
    let lease = SharedMemoryLease::new(Duration::from_secs(60));
    let (sockets, seeds) = sockets(3);
    let mut nodes: Vec<Cluster> = sockets
        .into_iter()
        .map(|s| {
            node_with(rt.clone(), &ca, s, &seeds, |b| {
                b.configure(|c| {
                    c.downing.downing =
                        Downing::SplitBrainResolver(Strategy::LeaseMajority { role: None });
                    c.downing.stable_after = Some(Duration::from_secs(2));
                })
                .lease(lease.clone())
            })
        })
        .collect();
    for n in &nodes {
        until(timer, 30, "three members Up", n, all_up(3)).await;
    }
    let subs = [nodes[0].subscribe().await, nodes[1].subscribe().await];
    let c = nodes.pop().unwrap();
    let crashed = c.self_address();
    c.abort().await;
    let mut decided = 0;
    for sub in &subs {
        let events = events_until(
            timer,
            40,
            "the crashed member removed",
            sub,
            |e| matches!(e, Event::MemberRemoved { member, .. } if member.address == crashed),
        )
        .await;
        decided += events
            .iter()
            .filter(|e| matches!(e, Event::Downing(_)))
            .count();
    }
    // The survivors' leader decides; the decision is an event on that node only.
    assert_eq!(decided, 1, "one resolver decision");
    let holder = lease.holder().expect("the lease was taken");
    assert!(
        nodes.iter().any(|n| n.self_address() == holder),
        "by a survivor"
    );
    for n in &nodes {
        until(timer, 20, "two members Up", n, all_up(2)).await;
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Waits until `sub` reports `gone` removed; it must have reported Left, Exited, Removed
/// and nothing else about it (no Unreachable) since it was Up.
async fn saw_it_leave(
    timer: &dyn Runtime,
    sub: &fjell_runtime::Subscription,
    gone: std::net::SocketAddr,
) {
    let events = events_until(
        timer,
        40,
        "the member removed",
        sub,
        |e| matches!(e, Event::MemberRemoved { member, .. } if member.address.same_address(gone)),
    )
    .await;
    assert_eq!(
        statuses_of(&events, gone),
        [
            Some(MemberStatus::Leaving),
            Some(MemberStatus::Exiting),
            Some(MemberStatus::Removed)
        ],
        "{events:?}"
    );
}

/// Every member leaves at once (the end of the demo): with Pekko's default ticks each stops
/// within 3 s — as soon as the others have seen it Exiting — and nobody is ever seen
/// unreachable. (Before the transport delivered a stopping node's last gossip, the first to
/// stop left the others waiting out five leader ticks, flagging it unreachable meanwhile.)
async fn everyone_leaves_at_once<R: Place>(rt: R) {
    let timer: &dyn Runtime = &rt;
    let ca = DevCa::new().unwrap();
    let (sockets, seeds) = sockets(3);
    let nodes: Vec<Cluster> = sockets
        .into_iter()
        .map(|s| {
            node_with(rt.clone(), &ca, s, &seeds, |b| {
                b.config(fjell_core::Config::default())
            })
        })
        .collect();
    for n in &nodes {
        until(timer, 30, "three members Up", n, all_up(3)).await;
    }
    let subs = futures_lite::future::zip(
        futures_lite::future::zip(nodes[0].subscribe(), nodes[1].subscribe()),
        nodes[2].subscribe(),
    )
    .await;
    let subs = [subs.0 .0, subs.0 .1, subs.1];
    let started = std::time::Instant::now();
    for n in &nodes {
        let n = n.clone();
        rt.spawn(Box::pin(async move {
            n.shutdown().await;
        }));
    }
    for (i, s) in subs.iter().enumerate() {
        let events = events_until(timer, 20, "the node stopped", s, |e| {
            matches!(e, Event::Stopped(_))
        })
        .await;
        let stopped = started.elapsed();
        assert_eq!(events.last(), Some(&Event::Stopped(StopReason::Left)));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::UnreachableMember(_))),
            "node {i} saw a leaving member unreachable: {events:?}"
        );
        assert!(
            stopped < Duration::from_secs(3),
            "node {i} stopped after {stopped:?}: {events:?}"
        );
    }
    for n in &nodes {
        assert_eq!(
            within(timer, 20, "the drivers ended", n.terminated()).await,
            Termination::Stopped(StopReason::Left)
        );
    }
}

/// Three nodes on loopback, all Up and converged.
async fn three_up<R: Place>(rt: &R, ca: &DevCa) -> (Vec<Cluster>, Vec<std::net::SocketAddr>) {
    let (sockets, seeds) = sockets(3);
    let nodes: Vec<Cluster> = sockets
        .into_iter()
        .map(|s| node(rt.clone(), ca, s, &seeds))
        .collect();
    for n in &nodes {
        until(rt, 30, "three members Up", n, all_up(3)).await;
    }
    (nodes, seeds)
}

macro_rules! suite {
    ($block_on:expr, $rt:expr) => {
        #[test]
        fn three_nodes_form() {
            $block_on(async { super::three_nodes_form($rt).await })
        }

        #[test]
        fn shutdown_and_drop_leave_gracefully() {
            $block_on(async { super::shutdown_and_drop_leave_gracefully($rt).await })
        }

        #[test]
        fn lease_majority_downs_a_crashed_member() {
            $block_on(async { super::lease_majority_downs_a_crashed_member($rt).await })
        }

        #[test]
        fn everyone_leaves_at_once() {
            $block_on(async { super::everyone_leaves_at_once($rt).await })
        }

        #[test]
        fn down_and_restart_on_the_same_port() {
            $block_on(async { super::down_and_restart_on_the_same_port($rt).await })
        }
    };
}

mod own_thread_suite {
    suite!(smol::block_on, crate::common::OwnThreads);
}

mod smol_suite {
    suite!(smol::block_on, fjell_runtime::Smol);
}

mod tokio_suite {
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }
    suite!(block_on, fjell_runtime::Tokio::current());
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Cluster>();
    is::<Arc<Cluster>>();
}
