//! The hub over real QUIC on loopback: the application's messages reach the application
//! whether sent through the hub or with `Cluster::send`; a tool's message for a tool nobody
//! runs is a dead letter and its sender gets a typed error, not a hang; a message of the
//! wrong type is a typed error.

mod common;

use std::time::Duration;

use fjell_quic::DevCa;
use fjell_runtime::{Cluster, Smol};
use fjell_tools::hub::Hub;
use fjell_tools::singleton::{ClusterSingleton, ProxyError, SingletonSettings};

use common::{all_up, within};

fn two_nodes() -> Vec<Cluster> {
    let ca = DevCa::new().unwrap();
    let (sockets, addrs) = common::sockets(2);
    sockets
        .into_iter()
        .map(|s| common::node(&ca, s, &addrs[..1], common::config(), |b| b))
        .collect()
}

#[test]
fn application_messages_pass_and_unknown_tools_are_dead_letters() {
    smol::block_on(async {
        let nodes = two_nodes();
        for n in &nodes {
            within(30, "two members Up", n.wait_for(all_up(2))).await;
        }
        let hubs: Vec<Hub> = nodes.iter().map(|n| Hub::start(n, Smol)).collect();
        let to = nodes[1].self_address().socket_addr();

        hubs[0].send(to, &("through the hub", 1u32)).await.unwrap();
        let m = within(10, "the hub's message", hubs[1].recv())
            .await
            .unwrap();
        assert_eq!(
            m.decode::<(String, u32)>().unwrap(),
            ("through the hub".into(), 1)
        );
        nodes[0].send(to, &("plain", 2u32)).await.unwrap();
        let m = within(10, "the plain message", hubs[1].recv())
            .await
            .unwrap();
        assert_eq!(m.decode::<(String, u32)>().unwrap(), ("plain".into(), 2));

        // A singleton runs on node 0 only (the oldest); node 1 asks one that runs nowhere.
        let _s =
            ClusterSingleton::start(&hubs[0], SingletonSettings::new("here"), |ctx| async move {
                while let Some(m) = ctx.recv().await {
                    let _ = m.respond(&7u32);
                }
            })
            .unwrap();
        assert!(matches!(
            ClusterSingleton::start(&hubs[0], SingletonSettings::new("here"), |_| async {}),
            Err(fjell_tools::singleton::StartError::AlreadyRunning(_))
        ));
        let settings = SingletonSettings {
            deliver_timeout: Duration::from_secs(2),
            ..SingletonSettings::new("nowhere")
        };
        let proxy = fjell_tools::singleton::SingletonProxy::new(&hubs[1], settings).unwrap();
        let before = hubs[0].dead_letters();
        let r = within(10, "the proxy to give up", proxy.send(&1u32)).await;
        assert!(matches!(r, Err(ProxyError::Timeout)), "{r:?}");
        assert!(hubs[0].dead_letters() > before, "counted as dead letters");

        // The singleton that runs answers with a u32: asking for a string is a typed error.
        let proxy =
            fjell_tools::singleton::SingletonProxy::new(&hubs[1], SingletonSettings::new("here"))
                .unwrap();
        let ok: u32 = within(10, "an answer", proxy.request(&())).await.unwrap();
        assert_eq!(ok, 7);
        let wrong = within(10, "an answer", proxy.request::<_, String>(&())).await;
        assert!(
            matches!(wrong, Err(ProxyError::Deserialize(_))),
            "{wrong:?}"
        );

        // Settings out of range are refused with the key.
        let bad = SingletonSettings {
            buffer_size: 20_000,
            ..SingletonSettings::new("x")
        };
        let e = fjell_tools::singleton::SingletonProxy::new(&hubs[1], bad).unwrap_err();
        assert!(e.to_string().contains("buffer-size"), "{e}");
        for n in &nodes {
            n.shutdown().await;
        }
    });
}
