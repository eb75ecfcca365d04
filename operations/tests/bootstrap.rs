//! Cluster Bootstrap end to end: five real nodes started at once, no seed nodes, contact
//! points from a DNS server in the test (SRV records, and A records), probes over the real
//! HTTP endpoints. The oracle is the nodes' own views: one cluster of all five, one founder.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use fjell_ops::bootstrap::{self, Outcome};
use fjell_ops::Endpoints;
use fjell_runtime::quic::DevCa;
use fjell_runtime::settings::{Bootstrap, DiscoveryMethod};
use fjell_runtime::{Cluster, ClusterBuilder, ClusterState, Config, MemberStatus, Smol};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One SRV record: target, port, and the target's address.
type SrvTarget = (String, u16, IpAddr);

/// What the test's DNS server knows.
#[derive(Clone, Default)]
struct Zone {
    /// SRV name → its records.
    srv: Vec<(String, Vec<SrvTarget>)>,
    /// Name → IPv4 addresses.
    a: Vec<(String, Vec<IpAddr>)>,
}

/// A DNS server on loopback answering from `zone`; NXDOMAIN for anything else.
fn dns_server(zone: Zone) -> SocketAddr {
    let socket = Async::<UdpSocket>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = socket.get_ref().local_addr().unwrap();
    let zone = Arc::new(zone);
    smol::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.add_query(query.clone());
            let name = query.name().to_ascii();
            let mut found = false;
            match query.query_type() {
                RecordType::SRV => {
                    for (n, targets) in &zone.srv {
                        if *n == name {
                            found = true;
                            for (t, port, ip) in targets {
                                let target = Name::from_ascii(t).unwrap();
                                r.add_answer(Record::from_rdata(
                                    query.name().clone(),
                                    5,
                                    RData::SRV(SRV::new(0, 0, *port, target.clone())),
                                ));
                                if let IpAddr::V4(v4) = ip {
                                    r.add_additional(Record::from_rdata(
                                        target,
                                        5,
                                        RData::A(A(*v4)),
                                    ));
                                }
                            }
                        }
                    }
                }
                RecordType::A | RecordType::AAAA => {
                    for (n, ips) in &zone.a {
                        if *n == name {
                            found = true;
                            if query.query_type() == RecordType::A {
                                for ip in ips {
                                    if let IpAddr::V4(v4) = ip {
                                        r.add_answer(Record::from_rdata(
                                            query.name().clone(),
                                            5,
                                            RData::A(A(*v4)),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            if !found {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = socket.send_to(&r.to_vec().unwrap(), from).await;
        }
    })
    .detach();
    addr
}

fn config() -> Config {
    Config {
        gossip_interval: Duration::from_millis(500),
        leader_actions_interval: Duration::from_millis(500),
        ..Config::default()
    }
}

fn settings(method: DiscoveryMethod, dns: SocketAddr) -> Bootstrap {
    Bootstrap {
        dns_server: Some(dns),
        required_contact_point_nr: 5,
        stable_margin: Duration::from_secs(2),
        probe_interval: Duration::from_millis(300),
        interval: Duration::from_millis(300),
        ..Bootstrap::new(method)
    }
}

/// A node with no seed nodes, its endpoints on `http` (port 0: any).
fn node(ca: &DevCa, ip: [u8; 4], http: SocketAddr) -> (Cluster, Endpoints) {
    let socket = UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap();
    let addr = socket.local_addr().unwrap();
    let cluster = ClusterBuilder::new()
        .config(config())
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .start()
        .unwrap();
    let endpoints = Endpoints::bind(http, cluster.clone()).unwrap();
    (cluster, endpoints)
}

fn all_up(n: usize) -> impl Fn(&ClusterState) -> bool {
    move |s| {
        s.members.len() == n
            && s.members.iter().all(|m| m.status == MemberStatus::Up)
            && s.converged
    }
}

/// Starts the nodes' bootstraps at once; checks one cluster of all, one founder.
async fn form(nodes: Vec<(Cluster, Endpoints)>, settings: Bootstrap) {
    let n = nodes.len();
    let mut runs = Vec::new();
    let mut clusters = Vec::new();
    for (cluster, endpoints) in nodes {
        let me = bootstrap::contact_point(
            endpoints.local_addr().unwrap(),
            cluster.self_address().socket_addr(),
        );
        smol::spawn(endpoints.run(Smol)).detach();
        let (c, s) = (cluster.clone(), settings.clone());
        runs.push(smol::spawn(async move { bootstrap::run(&c, s, me).await }));
        clusters.push(cluster);
    }
    let mut founders = 0;
    for r in runs {
        match r.await {
            Outcome::Founded => founders += 1,
            Outcome::Joined(seeds) => assert!(!seeds.is_empty()),
            other => panic!("bootstrap ended with {other:?}"),
        }
    }
    assert_eq!(founders, 1, "exactly one node founds the cluster");
    let everyone: BTreeSet<SocketAddr> = clusters
        .iter()
        .map(|c| c.self_address().socket_addr())
        .collect();
    for c in &clusters {
        let s = futures_lite::future::or(c.wait_for(all_up(n)), async {
            smol::Timer::after(Duration::from_secs(60)).await;
            None
        })
        .await
        .expect("all five Up in one cluster");
        let members: BTreeSet<SocketAddr> =
            s.members.iter().map(|m| m.address.socket_addr()).collect();
        assert_eq!(members, everyone);
    }
    for c in &clusters {
        c.shutdown().await;
    }
}

#[test]
fn five_nodes_started_at_once_form_one_cluster_from_srv_records() {
    smol::block_on(async {
        for round in 0..2 {
            let ca = DevCa::new().unwrap();
            let nodes: Vec<(Cluster, Endpoints)> = (0..5)
                .map(|_| node(&ca, [127, 0, 0, 1], "127.0.0.1:0".parse().unwrap()))
                .collect();
            let name = format!("_management._tcp.fjell{round}.test.");
            let targets = nodes
                .iter()
                .enumerate()
                .map(|(i, (_, e))| {
                    let a = e.local_addr().unwrap();
                    (format!("node-{i}.fjell{round}.test."), a.port(), a.ip())
                })
                .collect();
            let dns = dns_server(Zone {
                srv: vec![(name.clone(), targets)],
                ..Zone::default()
            });
            form(nodes, settings(DiscoveryMethod::DnsSrv { name }, dns)).await;
        }
    });
}

#[test]
fn five_nodes_started_at_once_form_one_cluster_from_a_records() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        // One management port, five loopback addresses (Linux routes all of 127/8).
        let port = std::net::TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ips: Vec<[u8; 4]> = (1..=5).map(|i| [127, 0, 0, 10 + i]).collect();
        let nodes: Vec<(Cluster, Endpoints)> = ips
            .iter()
            .map(|ip| node(&ca, *ip, SocketAddr::from((*ip, port))))
            .collect();
        let dns = dns_server(Zone {
            a: vec![(
                "fjell.test.".into(),
                ips.iter().map(|ip| IpAddr::from(*ip)).collect(),
            )],
            ..Zone::default()
        });
        let method = DiscoveryMethod::Dns {
            name: "fjell.test".into(),
            port: None,
        };
        form(nodes, settings(method, dns)).await;
    });
}

#[test]
fn discovery_errors_are_errors_not_empty_fleets() {
    use fjell_ops::discovery::{Discovery, DiscoveryError};
    smol::block_on(async {
        let dns = dns_server(Zone::default());
        let t = Duration::from_secs(3);
        // NXDOMAIN: no contact points, not an error.
        let d = Discovery::new(
            DiscoveryMethod::DnsSrv {
                name: "_x._tcp.none.test".into(),
            },
            Some(dns),
            0,
            t,
        );
        assert!(d.lookup().await.unwrap().is_empty());
        // A server that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let d = Discovery::new(
            DiscoveryMethod::Dns {
                name: "fjell.test".into(),
                port: Some(1),
            },
            Some(silent.local_addr().unwrap()),
            0,
            Duration::from_millis(600),
        );
        assert!(d.lookup().await.is_err());
        // A file with one bad line; a command that fails; a command that hangs.
        let dir = std::env::temp_dir().join(format!("fjell-ops-discovery-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("contacts");
        std::fs::write(&file, "127.0.0.1:8558 # one\n\n[::1]:8558\n").unwrap();
        let d = Discovery::new(DiscoveryMethod::File(file.clone()), Some(dns), 0, t);
        let found: Vec<SocketAddr> = d.lookup().await.unwrap().into_iter().collect();
        assert_eq!(
            found,
            [
                "127.0.0.1:8558".parse().unwrap(),
                "[::1]:8558".parse().unwrap()
            ]
        );
        std::fs::write(&file, "127.0.0.1:8558\nnot an address\n").unwrap();
        assert!(matches!(d.lookup().await, Err(DiscoveryError::BadLine(_))));
        let d = Discovery::new(
            DiscoveryMethod::Command("echo 10.0.0.1:8558; echo 10.0.0.2:8558".into()),
            Some(dns),
            0,
            t,
        );
        assert_eq!(d.lookup().await.unwrap().len(), 2);
        let d = Discovery::new(DiscoveryMethod::Command("exit 3".into()), Some(dns), 0, t);
        assert!(matches!(
            d.lookup().await,
            Err(DiscoveryError::Command { .. })
        ));
        let d = Discovery::new(
            DiscoveryMethod::Command("sleep 30".into()),
            Some(dns),
            0,
            Duration::from_millis(500),
        );
        let started = std::time::Instant::now();
        assert!(matches!(d.lookup().await, Err(DiscoveryError::Timeout(_))));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the command is not waited for"
        );
        // A pipeline's members go with the lookup, not only the shell.
        let d = Discovery::new(
            DiscoveryMethod::Command("sleep 31.2345 | cat".into()),
            Some(dns),
            0,
            Duration::from_millis(500),
        );
        assert!(matches!(d.lookup().await, Err(DiscoveryError::Timeout(_))));
        let left = || {
            let ps = std::process::Command::new("ps")
                .args(["-eo", "stat,args"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&ps.stdout)
                .lines()
                .any(|l| l.contains("sleep 31.2345") && !l.starts_with('Z'))
        };
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while left() {
            assert!(
                std::time::Instant::now() < end,
                "the pipeline outlived its lookup"
            );
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
