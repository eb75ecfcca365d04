//! Real QUIC on loopback: core nodes over the transport, mutual TLS, bad input, messaging.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use fjell_core::MemberStatus;
use fjell_quic::{
    close_code, Credentials, DevCa, RequestError, SendError, Transport, TransportConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Chat {
    Hello { text: String, n: u32 },
    Ping(u64),
    Pong(u64),
}

/// Answers every request with `Pong(n)` for `Ping(n)`, forwards one-way messages.
fn responder(t: Transport) -> async_channel::Receiver<fjell_quic::AppMessage> {
    let (tx, rx) = async_channel::unbounded();
    smol::spawn(async move {
        while let Some(m) = t.recv().await {
            if m.is_request() {
                if let Ok(Chat::Ping(n)) = m.decode() {
                    let _ = t.respond(&m, &Chat::Pong(n)).await;
                }
            } else {
                let _ = tx.send(m).await;
            }
        }
    })
    .detach();
    rx
}

#[test]
fn three_nodes_exchange_gossip_heartbeats_and_application_messages() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let ts: Vec<Transport> = (0..3).map(|_| node_transport(&ca)).collect();
        let seeds: Vec<_> = ts.iter().map(|t| t.address()).collect();
        let nodes: Vec<Driven> = ts
            .iter()
            .enumerate()
            .map(|(i, t)| drive(t.clone(), i as u64 + 1, &seeds))
            .collect();
        // Gossip: every node sees all three Up and the same state.
        for n in &nodes {
            n.until(20, "three members Up and converged", |node| {
                node.members().len() == 3
                    && node.members().iter().all(|m| m.status == MemberStatus::Up)
                    && node.is_converged()
            })
            .await;
        }
        // Heartbeats: each node monitors the other two and has heard back from both.
        for n in &nodes {
            n.until(10, "heartbeat responses from both peers", |node| {
                let now = n.now();
                let stats: Vec<_> = node.monitored(now).collect();
                stats.len() == 2
                    && stats
                        .iter()
                        .all(|s| s.rtt.is_some() && s.available && s.phi < 1.0)
            })
            .await;
        }
        // Application messages, with the sender's certified identity.
        let inbox: Vec<_> = ts.iter().map(|t| responder(t.clone())).collect();
        for (i, from) in ts.iter().enumerate() {
            for (j, to) in ts.iter().enumerate() {
                if i == j {
                    continue;
                }
                let msg = Chat::Hello {
                    text: format!("{i} to {j}"),
                    n: i as u32,
                };
                from.send(to.address(), &msg).await.unwrap();
                let got = within(5, "an application message", inbox[j].recv())
                    .await
                    .unwrap();
                assert_eq!(got.from, from.address());
                assert_eq!(got.decode::<Chat>().unwrap(), msg);
                let pong: Chat = from
                    .request(
                        to.address(),
                        &Chat::Ping(i as u64 * 10 + j as u64),
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap();
                assert_eq!(pong, Chat::Pong(i as u64 * 10 + j as u64));
            }
        }
        for t in &ts {
            let c = t.counters();
            assert_eq!((c.malformed, c.refused_handshakes), (0, 0), "{c:?}");
        }
        for t in &ts {
            t.close().await;
        }
    })
}

#[test]
fn application_messages_keep_order_and_refuse_unknown_members_at_once() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b) = (node_transport(&ca), node_transport(&ca));
        let stranger = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            a.send(b.address(), &1u32).await,
            Err(SendError::UnknownMember(b.address()))
        );
        a.set_members([a.address(), b.address()]);
        b.set_members([a.address(), b.address()]);
        assert_eq!(
            a.send(stranger, &1u32).await,
            Err(SendError::UnknownMember(stranger))
        );
        assert_eq!(
            a.request::<_, u32>(stranger, &1u32, Duration::from_secs(5))
                .await,
            Err(RequestError::Send(SendError::UnknownMember(stranger)))
        );
        assert_eq!(
            a.send(a.address(), &1u32).await,
            Err(SendError::ToSelf(a.address()))
        );
        // FIFO per peer within the lane, interleaving single sends and batches, with a
        // large message (its own stream) in the middle that may overtake or trail them.
        let big = vec![7u8; 300 * 1024];
        let mut sent = 0u32;
        for round in 0..50u32 {
            if round == 25 {
                a.send(b.address(), &big).await.unwrap();
            }
            if round % 2 == 0 {
                a.send(b.address(), &sent).await.unwrap();
                sent += 1;
            } else {
                let batch: Vec<u32> = (sent..sent + 10).collect();
                a.send_batch(b.address(), &batch).await.unwrap();
                sent += 10;
            }
        }
        let mut next = 0u32;
        let mut got_big = false;
        while next < sent || !got_big {
            let m = within(10, "ordered messages", b.recv()).await.unwrap();
            if m.payload.len() > 1024 {
                assert_eq!(m.decode::<Vec<u8>>().unwrap(), big);
                got_big = true;
            } else {
                assert_eq!(m.decode::<u32>().unwrap(), next);
                next += 1;
            }
        }
        // A member that never answers: the request times out.
        let r = a
            .request::<_, u32>(b.address(), &Chat::Ping(1), Duration::from_millis(200))
            .await;
        assert_eq!(r, Err(RequestError::Timeout(b.address())));
        // Disconnected: the next send dials again.
        assert!(a.is_connected(b.address()));
        a.disconnect(b.address());
        eventually(5, "the connection closed", || !a.is_connected(b.address())).await;
        a.send(b.address(), &7u32).await.unwrap();
        // (B never answered the request above; it is still in B's inbox.)
        let m = within(5, "the unanswered request", b.recv()).await.unwrap();
        assert!(m.is_request());
        let m = within(5, "a message after disconnecting", b.recv())
            .await
            .unwrap();
        assert_eq!(m.decode::<u32>(), Ok(7));
        // Removed from membership: refused at once.
        a.set_members([a.address()]);
        assert_eq!(
            a.send(b.address(), &1u32).await,
            Err(SendError::UnknownMember(b.address()))
        );
        a.close().await;
        b.close().await;
    })
}

#[test]
fn a_node_with_a_certificate_from_another_ca_is_refused() {
    smol::block_on(async {
        let (ca, other) = (DevCa::new().unwrap(), DevCa::new().unwrap());
        let a = node_transport(&ca);
        let intruder = node_transport(&other);
        // The intruder dials A: the handshake fails (on both sides), nothing is delivered.
        intruder.set_members([a.address()]);
        let _ = intruder.send(a.address(), &"let me in").await;
        eventually(10, "A refusing the handshake", || {
            a.counters().refused_handshakes >= 1
        })
        .await;
        eventually(10, "the intruder refusing A", || {
            intruder.counters().refused_handshakes >= 1
        })
        .await;
        assert!(a.try_recv().is_none());
        assert!(!intruder.is_connected(a.address()));

        // A client that trusts A's CA but presents another CA's certificate, or none at all:
        // A refuses it during the handshake.
        let (_, addr) = free_socket();
        let (cert, key) = other.node_pem(addr).unwrap();
        let foreign =
            Credentials::from_pem(ca.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        for cfg in [foreign.quinn_client_config().unwrap(), no_certificate(&ca)] {
            let before = a.counters().refused_handshakes;
            if let Ok(conn) = raw_connect(cfg, a.address()).await {
                // TLS 1.3: the client may finish first; A then closes the connection.
                let why = within(5, "A closing the connection", conn.closed()).await;
                assert!(
                    !matches!(why, quinn::ConnectionError::ApplicationClosed(_)),
                    "closed by the TLS layer, not after the handshake: {why}"
                );
            }
            eventually(5, "A counting the refusal", || {
                a.counters().refused_handshakes > before
            })
            .await;
        }
        assert!(a.try_recv().is_none());
        a.close().await;
        intruder.close().await;
    })
}

/// A client configuration that trusts `ca` and presents no certificate.
fn no_certificate(ca: &DevCa) -> quinn::ClientConfig {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![fjell_quic::tls::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(cfg).unwrap();
    quinn::ClientConfig::new(std::sync::Arc::new(crypto))
}

type Counter = fn(&fjell_quic::Counters) -> u64;

#[test]
fn a_peer_sending_garbage_or_an_oversized_frame_is_disconnected_while_others_are_served() {
    use fjell_quic::frame::{stream_header, Lane};
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b) = pair(&ca);
        let header = stream_header(Lane::App);
        let cases: [(&str, Vec<u8>, u32, Counter); 4] = [
            (
                "garbage",
                b"this is not fjell".to_vec(),
                close_code::MALFORMED,
                |c| c.malformed,
            ),
            (
                "an oversized length",
                [&header[..], &u32::MAX.to_le_bytes()].concat(),
                close_code::OVERSIZED,
                |c| c.oversized,
            ),
            (
                "an unknown frame kind",
                [&header[..], &1u32.to_le_bytes(), &[0x63]].concat(),
                close_code::UNKNOWN_KIND,
                |c| c.unknown_kind,
            ),
            (
                "a wrong version",
                b"FJ\x09\x00".to_vec(),
                close_code::WRONG_VERSION,
                |c| c.wrong_version,
            ),
        ];
        for (i, (what, bytes, code, counter)) in cases.into_iter().enumerate() {
            // A member's valid certificate, on its own path: only the bytes are bad.
            let (socket, addr) = free_socket();
            let creds = ca.node(addr).unwrap();
            let conn = raw_connect_from(socket, creds.quinn_client_config().unwrap(), a.address())
                .await
                .unwrap();
            let mut s = conn.open_uni().await.unwrap();
            s.write_all(&bytes).await.unwrap();
            match within(5, what, conn.closed()).await {
                quinn::ConnectionError::ApplicationClosed(c) => {
                    assert_eq!(c.error_code, quinn::VarInt::from_u32(code), "{what}")
                }
                other => panic!("{what}: closed with {other}"),
            }
            assert_eq!(counter(&a.counters()), 1, "{what}");
            // A keeps serving B.
            b.send(a.address(), &Chat::Ping(i as u64)).await.unwrap();
            let m = within(5, "B's message after the bad peer", a.recv())
                .await
                .unwrap();
            assert_eq!(
                (m.from, m.decode::<Chat>().unwrap()),
                (b.address(), Chat::Ping(i as u64))
            );
        }
        // A datagram that is not a heartbeat closes the connection too.
        let (socket, addr) = free_socket();
        let conn = raw_connect_from(
            socket,
            ca.node(addr).unwrap().quinn_client_config().unwrap(),
            a.address(),
        )
        .await
        .unwrap();
        conn.send_datagram(Bytes::from(vec![fjell_quic::frame::FRAME_VERSION, 0x63]))
            .unwrap();
        assert!(matches!(
            within(5, "a bad datagram", conn.closed()).await,
            quinn::ConnectionError::ApplicationClosed(_)
        ));
        assert_eq!(a.counters().unknown_kind, 2);
        assert!(b.is_connected(a.address()));
        a.close().await;
        b.close().await;
    })
}

#[test]
fn a_node_restarted_on_the_same_port_is_reconnected() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let a = node_transport(&ca);
        let (socket, b_addr) = free_socket();
        let b_creds = ca.node(b_addr).unwrap();
        let b = transport_on(b_creds.clone(), socket);
        a.set_members([b_addr]);
        b.set_members([a.address()]);
        a.send(b_addr, &1u32).await.unwrap();
        assert_eq!(
            within(5, "first message", b.recv())
                .await
                .unwrap()
                .decode::<u32>(),
            Ok(1)
        );
        b.close().await;
        drop(b);
        // The same port and certificate, a new process in all but name.
        let socket = within(10, "the port to be released", async {
            loop {
                match std::net::UdpSocket::bind(b_addr) {
                    Ok(s) => return s,
                    Err(_) => smol::Timer::after(Duration::from_millis(20)).await,
                };
            }
        })
        .await;
        let b = transport_on(b_creds, socket);
        b.set_members([a.address()]);
        a.send(b_addr, &2u32).await.unwrap();
        assert_eq!(
            within(10, "message after restart", b.recv())
                .await
                .unwrap()
                .decode::<u32>(),
            Ok(2)
        );
        b.send(a.address(), &3u32).await.unwrap();
        assert_eq!(
            within(10, "reply after restart", a.recv())
                .await
                .unwrap()
                .decode::<u32>(),
            Ok(3)
        );
        a.close().await;
        b.close().await;
    })
}

/// Both nodes dial at once, each to send its first message: one connection survives, and
/// the messages written to the other one still arrive (it is retired, not closed at once).
/// With the duplicate closed at once, a message was lost in most rounds of this test.
#[test]
fn simultaneous_dials_leave_one_connection() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        for round in 0..6u8 {
            let (a, b) = pair(&ca);
            let (ra, rb) = futures_lite::future::zip(
                a.send(b.address(), &(2 * round)),
                b.send(a.address(), &(2 * round + 1)),
            )
            .await;
            ra.unwrap();
            rb.unwrap();
            // Whichever connection carried them, both messages arrive.
            let at_b = within(5, "a's first message", b.recv()).await.unwrap();
            assert_eq!(at_b.decode::<u8>(), Ok(2 * round), "round {round}");
            let at_a = within(5, "b's first message", a.recv()).await.unwrap();
            assert_eq!(at_a.decode::<u8>(), Ok(2 * round + 1), "round {round}");
            for (t, other) in [(&a, &b), (&b, &a)] {
                eventually(10, "a single connection", || {
                    t.is_connected(other.address()) && t.open_connections() == 1
                })
                .await;
            }
            a.send(b.address(), &u8::MAX).await.unwrap();
            let survivor = within(5, "a message on the survivor", b.recv()).await;
            assert_eq!(survivor.unwrap().decode::<u8>(), Ok(u8::MAX));
            a.close().await;
            b.close().await;
        }
    })
}

#[test]
fn heartbeats_travel_on_a_stream_to_a_peer_that_takes_no_datagrams() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let no_datagrams = node_transport_with(&ca, |c| c.datagrams = false);
        let (a, b) = two_nodes_up_on(node_transport(&ca), no_datagrams).await;
        // Heartbeats have been answered both ways (two_nodes_up_on waits for that); they keep
        // flowing: a second response arrives.
        for (n, peer) in [(&a, &b), (&b, &a)] {
            let first = n
                .node
                .lock()
                .unwrap()
                .monitored(n.now())
                .next()
                .unwrap()
                .last_heartbeat_age;
            assert!(first.is_some());
            n.until(5, "another heartbeat response", |node| {
                node.monitored(n.now()).all(|s| {
                    s.last_heartbeat_age
                        .is_some_and(|age| age < Duration::from_millis(1500))
                })
            })
            .await;
            assert!(phi_of(n, peer.transport.address()) < 1.0);
        }
        a.transport.close().await;
        b.transport.close().await;
    })
}

#[test]
fn a_node_cannot_speak_for_another_member() {
    use fjell_quic::frame::{stream_header, Frame, Lane};
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let t = node_transport(&ca);
        let a = drive(t.clone(), 1, &[t.address()]);
        a.until(10, "A founding its cluster", |n| n.members().len() == 1)
            .await;
        // A seed probe from R, sent over a connection certified as P (from P's address).
        let (p_socket, p) = free_socket();
        let (_, r) = free_socket();
        let mut forger = fjell_core::DeviceNode::new(
            fjell_core::Config::default(),
            fjell_core::UniqueAddress::new(r, 9),
            9,
        )
        .unwrap();
        forger
            .join_seed_nodes(fjell_core::Instant::ZERO, &[t.address()])
            .unwrap();
        let mut buf = vec![0u8; fjell_core::DeviceNode::MAX_MESSAGE_LEN];
        let tx = forger
            .poll_transmit(fjell_core::Instant::ZERO, &mut buf)
            .unwrap();
        let mut bytes = stream_header(Lane::Membership).to_vec();
        Frame::Core {
            class: fjell_quic::DeliveryClass::Control,
            bytes: Bytes::copy_from_slice(&buf[..tx.len]),
        }
        .encode_framed(&mut bytes);
        let conn = raw_connect_from(
            p_socket,
            ca.node(p).unwrap().quinn_client_config().unwrap(),
            t.address(),
        )
        .await
        .unwrap();
        let mut s = conn.open_uni().await.unwrap();
        s.write_all(&bytes).await.unwrap();
        s.finish().unwrap();
        a.until(10, "the core refusing the forged sender", |n| {
            n.stats().sender_mismatches == 1
        })
        .await;
        assert_eq!(a.node.lock().unwrap().members().len(), 1);

        // A node whose certificate names another address than the one dialed is refused.
        let (socket, q) = free_socket();
        let liar = transport_on(ca.node(p).unwrap(), socket);
        t.set_members([q]);
        t.send(q, &1u8).await.unwrap();
        eventually(10, "the dial to a mislabelled node refused", || {
            t.counters().refused_handshakes >= 1
        })
        .await;
        assert!(liar.try_recv().is_none());

        // An administrator certificate is not a node's: its connection carries management
        // requests only (never registered as a peer, so nothing it sends reaches the core).
        let client = fjell_quic::AdminClient::connect(
            &ca.admin("ops").unwrap(),
            t.address(),
            Duration::from_secs(5),
            std::sync::Arc::new(quinn::SmolRuntime),
        )
        .await
        .unwrap();
        let ask = client.request(b"ping", Duration::from_secs(5));
        let serve = async {
            let req = t.recv_admin().await.expect("a request");
            assert_eq!(req.from, "ops");
            assert_eq!(&req.payload[..], b"ping");
            req.respond(b"pong").await.unwrap();
        };
        let (answer, ()) = futures_lite::future::zip(ask, serve).await;
        assert_eq!(answer.unwrap(), b"pong".to_vec());
        client.close().await;
        liar.close().await;
        t.close().await;
    })
}

#[test]
fn closing_releases_the_port_at_once_even_while_backing_off_from_a_peer() {
    smol::block_on(async {
        let (ca, other) = (DevCa::new().unwrap(), DevCa::new().unwrap());
        let (socket, addr) = free_socket();
        let a = transport_on(ca.node(addr).unwrap(), socket);
        // A peer whose handshakes always fail: A redials it with growing backoff.
        let stranger = node_transport(&other);
        a.set_members([stranger.address()]);
        a.send(stranger.address(), &1u8).await.unwrap();
        eventually(10, "five failed dials (the next backoff is 1.6 s)", || {
            a.counters().refused_handshakes >= 5
        })
        .await;
        a.close().await;
        drop(a);
        within(1, "the port to be released", async {
            while std::net::UdpSocket::bind(addr).is_err() {
                smol::Timer::after(Duration::from_millis(10)).await;
            }
        })
        .await;
        stranger.close().await;
    })
}

/// A copy of node B's certificate and key used from another address (a leaked key, a cloned
/// VM) is refused, and B's own connection is untouched.
#[test]
fn a_certificate_used_from_another_address_is_refused() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b) = pair(&ca);
        b.send(a.address(), &Chat::Ping(1)).await.unwrap();
        let m = within(5, "B's first message", a.recv()).await.unwrap();
        assert_eq!(m.from, b.address());

        // The impostor: B's certificate, another port.
        let b_creds = ca.node(b.address()).unwrap();
        let before = a.counters().refused_handshakes;
        let conn = raw_connect(b_creds.quinn_client_config().unwrap(), a.address())
            .await
            .unwrap();
        match within(5, "A closing the impostor", conn.closed()).await {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(
                    c.error_code,
                    quinn::VarInt::from_u32(close_code::WRONG_PATH)
                )
            }
            other => panic!("closed with {other}"),
        }
        assert_eq!(a.counters().refused_handshakes, before + 1);

        // A whole transport doing the same never reaches A either.
        let (socket, _) = free_socket();
        let impostor = transport_on(b_creds, socket);
        impostor.set_members([a.address()]);
        impostor.send(a.address(), &Chat::Ping(99)).await.unwrap();
        eventually(10, "A refusing the impostor transport", || {
            a.counters().refused_handshakes >= before + 2
        })
        .await;

        // B is still B, on its own connection.
        b.send(a.address(), &Chat::Ping(2)).await.unwrap();
        let m = within(5, "B's message after the impostor", a.recv())
            .await
            .unwrap();
        assert_eq!(
            (m.from, m.decode::<Chat>().unwrap()),
            (b.address(), Chat::Ping(2))
        );
        assert!(a.try_recv().is_none(), "nothing from the impostor");
        assert!(a.is_connected(b.address()));
    });
}

/// Reloading credentials: a rotated certificate serves new connections with no change to
/// the peers; a certificate put on the deny list loses its connection at once and cannot
/// connect again until it is taken off.
#[test]
fn reloaded_credentials_and_deny_list_apply_without_a_restart() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b, b_creds) = pair_with_credentials(&ca);
        b.send(a.address(), &Chat::Ping(1)).await.unwrap();
        within(5, "B's first message", a.recv()).await.unwrap();

        // Rotation: A takes a new certificate for the same address; B keeps talking.
        let rotated = ca.node(a.address()).unwrap();
        a.reload(&rotated, []).unwrap();
        let other_addr = ca.node(b.address()).unwrap();
        assert!(a.reload(&other_addr, []).is_err(), "another address");
        b.send(a.address(), &Chat::Ping(2)).await.unwrap();
        let m = within(5, "B after the rotation", a.recv()).await.unwrap();
        assert_eq!(m.decode::<Chat>().unwrap(), Chat::Ping(2));

        // Deny B's certificate: its connection closes within seconds.
        let b_fp = b_creds.fingerprint();
        a.reload(&rotated, [b_fp]).unwrap();
        eventually(5, "B's connection closed", || !b.is_connected(a.address())).await;
        let refused = a.counters().refused_handshakes;
        b.send(a.address(), &Chat::Ping(3)).await.unwrap();
        eventually(10, "B's redial refused", || {
            a.counters().refused_handshakes > refused
        })
        .await;
        assert!(a.try_recv().is_none(), "nothing from a denied peer");
        // B learns why (what a node that cannot get in reports).
        eventually(5, "B knowing it was denied", || {
            matches!(
                b.dial_outcome(a.address()),
                Some(fjell_quic::DialOutcome::Refused(why)) if why.contains("deny list")
            )
        })
        .await;

        // Off the list again: B gets through (its queued message, then a new one).
        a.reload(&rotated, []).unwrap();
        b.send(a.address(), &Chat::Ping(4)).await.unwrap();
        loop {
            let m = within(15, "B after the deny list is cleared", a.recv())
                .await
                .unwrap();
            if m.decode::<Chat>().unwrap() == Chat::Ping(4) {
                break;
            }
        }
    });
}

/// A reload closes every admitted connection the deny list now names: one that never sent
/// a hello (so was never adopted as a peer's link) and an administrator's.
#[test]
fn a_reload_closes_connections_that_were_never_adopted() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (socket, a_addr) = free_socket();
        let a_creds = ca.node(a_addr).unwrap();
        let a = transport_on(a_creds.clone(), socket);
        let (socket, c_addr) = free_socket();
        let c_creds = ca.node(c_addr).unwrap();
        let silent = raw_connect_from(socket, c_creds.quinn_client_config().unwrap(), a_addr)
            .await
            .unwrap();
        let ops = ca.admin("ops").unwrap();
        let admin = fjell_quic::AdminClient::connect(
            &ops,
            a_addr,
            Duration::from_secs(5),
            std::sync::Arc::new(quinn::SmolRuntime),
        )
        .await
        .unwrap();
        a.reload(&a_creds, [c_creds.fingerprint(), ops.fingerprint()])
            .unwrap();
        let closed = [
            (
                "silent node",
                within(5, "silent node", silent.closed()).await,
            ),
            (
                "administrator",
                within(5, "administrator", admin.closed()).await,
            ),
        ];
        for (what, why) in closed {
            match why {
                quinn::ConnectionError::ApplicationClosed(c) => {
                    assert_eq!(
                        c.error_code,
                        quinn::VarInt::from_u32(close_code::DENIED),
                        "{what}"
                    )
                }
                other => panic!("{what}: closed with {other}"),
            }
        }
    });
}

/// Messages to a member stay in order when the connection is replaced while frames of the
/// old one are still being delivered (found by the multi-node harness after a partition
/// healed: the old connection's reader, blocked on a full inbox, delivered its frames after
/// the new connection's). Gaps are allowed, going back is not.
#[test]
fn application_messages_stay_in_order_across_a_new_connection() {
    // The race needs the old reader to hold frames as the new one starts: it showed in 4 of
    // 5 runs before the fix; three rounds make a miss unlikely.
    for _ in 0..3 {
        smol::block_on(order_across_new_connections());
    }
}

async fn order_across_new_connections() {
    {
        let ca = DevCa::new().unwrap();
        let tweak = |c: &mut TransportConfig| {
            c.inbound_queue = 16;
            c.app_queue = 64;
        };
        let (a, b) = (
            node_transport_with(&ca, tweak),
            node_transport_with(&ca, tweak),
        );
        a.set_members([a.address(), b.address()]);
        b.set_members([a.address(), b.address()]);
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let sender = {
            let (a, to, sent) = (a.clone(), b.address(), sent.clone());
            smol::spawn(async move {
                for i in 0..6_000u32 {
                    if a.send(to, &i).await.is_err() {
                        break;
                    }
                    sent.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        // B does not read: its inbox fills and its stream reader holds decoded frames. Then
        // the connection is replaced, several times.
        let mut got = Vec::new();
        for round in 0..5u32 {
            let floor = 1_000 * (round + 1);
            eventually(10, "messages queued", || {
                sent.load(std::sync::atomic::Ordering::Relaxed) >= floor.min(5_000)
            })
            .await;
            a.disconnect(b.address());
            eventually(5, "the connection closed", || !a.is_connected(b.address())).await;
            // Read a little, so the old reader and the new one both deliver.
            for _ in 0..200 {
                let m = within(10, "a message", b.recv()).await.unwrap();
                got.push(m.decode::<u32>().unwrap());
            }
        }
        sender.await;
        while let Some(m) = b.try_recv() {
            got.push(m.decode::<u32>().unwrap());
        }
        for w in got.windows(2) {
            assert!(
                w[0] < w[1],
                "message {} arrived after {}: {got:?}",
                w[1],
                w[0]
            );
        }
        assert!(got.len() >= 1_000, "only {} messages arrived", got.len());
        a.close().await;
        b.close().await;
    }
}

/// Senders that find the application lane idle write into its stream themselves, and may
/// write only part of a frame when the stream's window is short; the lane's writer then
/// finishes it before anything else. One sender sends 60 KiB messages (below the
/// large-message threshold, above the receiver's stream window), each once the one before
/// has arrived, so that it finds the lane idle and the window short; another, on another
/// thread, sends small messages meanwhile. Every message arrives whole, and each sender's
/// in the order sent.
#[test]
fn concurrent_senders_keep_their_order_and_frames_whole_when_writes_fit_in_part() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let a = node_transport(&ca);
        let b = node_transport_with(&ca, |c| c.stream_receive_window = 32 * 1024);
        a.set_members([b.address()]);
        b.set_members([a.address()]);
        const EACH: u32 = 100;
        fn message(sender: u8, seq: u32) -> (u8, u32, Blob) {
            let len = if sender == 0 {
                60 * 1024
            } else {
                seq as usize % 200
            };
            (sender, seq, Blob(vec![seq as u8; len]))
        }
        let to = b.address();
        let (arrived, next_arrived) = async_channel::unbounded::<()>();
        let large = {
            let a = a.clone();
            smol::spawn(async move {
                for seq in 0..EACH {
                    a.send(to, &message(0, seq)).await.unwrap();
                    next_arrived.recv().await.unwrap();
                }
            })
        };
        let small = {
            let a = a.clone();
            smol::unblock(move || {
                smol::block_on(async {
                    for seq in 0..EACH * 10 {
                        a.send(to, &message(1, seq)).await.unwrap();
                        if seq % 10 == 0 {
                            smol::Timer::after(Duration::from_micros(500)).await;
                        }
                    }
                })
            })
        };
        let mut next = [0u32; 2];
        let mut got = Vec::new();
        while next != [EACH, EACH * 10] {
            // Several at a time when several are there.
            let n = within(20, "all messages", b.recv_many(&mut got, 16)).await;
            assert!((1..=16).contains(&n));
            for m in got.drain(..) {
                let (sender, seq, body): (u8, u32, Vec<u8>) = m.decode().unwrap();
                assert_eq!(seq, next[sender as usize], "sender {sender} out of order");
                assert_eq!(body, message(sender, seq).2 .0, "message {seq} damaged");
                next[sender as usize] += 1;
                if sender == 0 {
                    arrived.send(()).await.unwrap();
                }
            }
        }
        large.await;
        small.await;
        for c in [a.counters(), b.counters()] {
            assert_eq!(
                c.malformed + c.oversized + c.unknown_kind,
                0,
                "bad input: {c:?}"
            );
            assert_eq!(c.connections, 1, "the connection was replaced: {c:?}");
        }
        a.close().await;
        b.close().await;
    })
}
