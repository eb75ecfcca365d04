//! The worker dial-in sample end to end over QUIC: the start-up gate, registration, jobs,
//! dropping an unreachable backend, and "service unavailable" without backends.

use std::time::Duration;

use fjell_examples::local::Loopback;
use fjell_examples::worker::{self, Frontend, BACKEND, FRONTEND, UNAVAILABLE};
use fjell_runtime::MemberStatus;

const T: Duration = Duration::from_secs(60);

#[test]
fn worker_dial_in_end_to_end() {
    smol::block_on(async {
        let mut lo = Loopback::new(4).unwrap();
        let frontend = lo
            .builder(0)
            .unwrap()
            .roles([FRONTEND])
            .configure(worker::configure)
            .start()
            .unwrap();
        let (tx, rx) = smol::channel::bounded(1);
        let f = frontend.clone();
        frontend.register_on_member_up(move || {
            let _ = tx.try_send(Frontend::start(f));
        });
        let mut backends = Vec::new();
        let b1 = lo
            .builder(1)
            .unwrap()
            .roles([BACKEND])
            .configure(worker::configure);
        backends.push(b1.start().unwrap());
        smol::spawn(worker::backend(backends[0].clone())).detach();
        // One backend is not enough: the gate keeps everyone Joining.
        let joined = frontend
            .within(T, frontend.wait_for(|s| s.members.len() == 2))
            .await
            .flatten()
            .expect("both joined");
        assert!(joined
            .members
            .iter()
            .all(|m| m.status == MemberStatus::Joining));
        assert!(
            rx.try_recv().is_err(),
            "the frontend must not start before the gate"
        );
        for i in 2..4 {
            let b = lo
                .builder(i)
                .unwrap()
                .roles([BACKEND])
                .configure(worker::configure)
                .start()
                .unwrap();
            smol::spawn(worker::backend(b.clone())).detach();
            backends.push(b);
        }
        let front = frontend.within(T, rx.recv()).await.unwrap().unwrap();
        frontend
            .within(T, front.wait_for_backends(|b| b.len() == 3))
            .await
            .flatten()
            .expect("three backends registered");
        // Everyone Up before the crash. A member still Joining when one crashes and another
        // leaves is the membership change during a partition that keep-majority answers by
        // downing everyone (Pekko's edge case), which is not what this sample shows.
        frontend
            .within(
                T,
                frontend.wait_for(|s| {
                    s.members.len() == 4 && s.members.iter().all(|m| m.status == MemberStatus::Up)
                }),
            )
            .await
            .flatten()
            .expect("all four Up");
        for i in 0..6 {
            let text = format!("job {i}");
            assert_eq!(front.transform(&text).await, Ok(text.to_uppercase()));
        }

        // A crashed backend is dropped as soon as it is unreachable; jobs keep working.
        let crashed = lo.addrs[3];
        backends[2].abort().await;
        frontend
            .within(T, front.wait_for_backends(|b| !b.contains(&crashed)))
            .await
            .flatten()
            .expect("the crashed backend dropped");
        for i in 0..4 {
            assert_eq!(front.transform(&format!("x{i}")).await, Ok(format!("X{i}")));
        }
        // Keep-majority downs it (this side has three of four); the others can then leave.
        let down_or_gone = |s: &fjell_runtime::ClusterState| {
            s.member(crashed)
                .is_none_or(|m| m.status == MemberStatus::Down)
        };
        frontend
            .within(T, frontend.wait_for(down_or_gone))
            .await
            .flatten()
            .expect("the crashed backend downed");

        // Without backends: service unavailable.
        for b in &backends[..2] {
            b.shutdown().await;
        }
        frontend
            .within(T, front.wait_for_backends(|b| b.is_empty()))
            .await
            .flatten()
            .expect("backends gone");
        assert_eq!(front.transform("late").await, Err(UNAVAILABLE.to_string()));
        frontend.shutdown().await;
    });
}
