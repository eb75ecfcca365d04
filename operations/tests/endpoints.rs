//! The HTTP endpoints of real nodes on loopback QUIC, queried over real TCP with hyper's
//! client; `/metrics` is read back by an independent parser (prometheus-parse).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use async_io::Async;
use fjell_ops::Endpoints;
use fjell_runtime::management::{MemberInfo, Request as Manage, Response as Managed};
use fjell_runtime::quic::DevCa;
use fjell_runtime::{
    Cluster, ClusterBuilder, ClusterState, Config, Downing, MemberStatus, Smol, Strategy,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use smol_hyper::rt::FuturesIo;

fn config() -> Config {
    let mut c = Config {
        gossip_interval: Duration::from_millis(500),
        leader_actions_interval: Duration::from_millis(500),
        seed_node_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    c.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    c.downing.stable_after = Some(Duration::from_secs(2));
    c
}

/// A node on its own thread and its endpoints on smol's executor; the endpoints' address.
fn node(ca: &DevCa, socket: UdpSocket, seeds: &[SocketAddr]) -> (Cluster, SocketAddr) {
    let addr = socket.local_addr().unwrap();
    let cluster = ClusterBuilder::new()
        .config(config())
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .seed_nodes(seeds.iter().copied())
        .start()
        .unwrap();
    let endpoints = Endpoints::bind("127.0.0.1:0".parse().unwrap(), cluster.clone()).unwrap();
    let http = endpoints.local_addr().unwrap();
    smol::spawn(endpoints.run(Smol)).detach();
    (cluster, http)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

/// One request on a new connection.
async fn call(http: SocketAddr, method: Method, path: &str) -> Answer {
    try_call(http, method, path).await.unwrap()
}

/// One request on a new connection; an error if the connection fails, for example because
/// the server closed it at accept.
async fn try_call(
    http: SocketAddr,
    method: Method,
    path: &str,
) -> Result<Answer, Box<dyn std::error::Error>> {
    let stream = Async::<TcpStream>::connect(http).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(FuturesIo::new(stream)).await?;
    smol::spawn(conn).detach();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "node")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec())?,
    })
}

async fn get(http: SocketAddr, path: &str) -> Answer {
    call(http, Method::GET, path).await
}

/// The samples of `/metrics`, parsed.
async fn scrape(http: SocketAddr) -> prometheus_parse::Scrape {
    let a = get(http, "/metrics").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.content_type.starts_with("application/openmetrics-text"));
    assert!(a.body.ends_with("# EOF\n"));
    prometheus_parse::Scrape::parse(a.body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`; none if there is none.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        })
}

fn count(s: &prometheus_parse::Scrape, name: &str) -> usize {
    s.samples.iter().filter(|x| x.metric == name).count()
}

/// Polls `cond` until it holds, or panics after `secs`.
async fn until<F: std::future::Future<Output = bool>>(secs: u64, what: &str, cond: impl Fn() -> F) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            Instant::now() < end,
            "timed out after {secs} s waiting for {what}"
        );
        smol::Timer::after(Duration::from_millis(100)).await;
    }
}

fn all_up(n: usize) -> impl Fn(&ClusterState) -> bool {
    move |s| {
        s.members.len() == n
            && s.members.iter().all(|m| m.status == MemberStatus::Up)
            && s.converged
    }
}

#[test]
fn every_endpoint_answers_and_follows_the_cluster() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let sockets: Vec<UdpSocket> = (0..4)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let mut sockets = sockets.into_iter();
        let nodes: Vec<(Cluster, SocketAddr)> = (0..3)
            .map(|_| node(&ca, sockets.next().unwrap(), &addrs[..3]))
            .collect();
        // A fourth node joins nobody: alive, not ready.
        let (lone, lone_http) = node(&ca, sockets.next().unwrap(), &[]);
        let a = get(lone_http, "/alive").await;
        assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "alive\n"));
        let r = get(lone_http, "/ready").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body, "not ready: not a member yet\n");

        for (c, _) in &nodes {
            let s = c.wait_for(all_up(3));
            assert!(
                futures_lite::future::or(s, async {
                    smol::Timer::after(Duration::from_secs(30)).await;
                    None
                })
                .await
                .is_some(),
                "three members Up"
            );
        }
        for (c, http) in &nodes {
            let r = get(*http, "/ready").await;
            assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ready\n"));
            // The members, as `fjell members --json` prints them, and as the node answers
            // a management request.
            let m = get(*http, "/cluster/members").await;
            assert_eq!(m.status, StatusCode::OK);
            assert_eq!(m.content_type, "application/json");
            let members: Vec<MemberInfo> = serde_json::from_str(&m.body).unwrap();
            let mut listed: Vec<SocketAddr> = members.iter().map(|m| m.address).collect();
            listed.sort();
            let mut expected = addrs[..3].to_vec();
            expected.sort();
            assert_eq!(listed, expected);
            assert!(members.iter().all(|m| m.status == "Up" && !m.unreachable));
            let Some(Managed::Members(direct)) = c.manage(Manage::Members).await else {
                panic!("no answer from the node")
            };
            assert_eq!(m.body, serde_json::to_string_pretty(&direct).unwrap());
        }

        // Metrics: the same moment's numbers, read back by another parser.
        let mut leaders = 0.0;
        for (_, http) in &nodes {
            // Heartbeat answers and QUIC round trips arrive within a second or two of Up.
            until(20, "a heartbeat round trip to both peers", || async {
                let s = scrape(*http).await;
                count(&s, "fjell_heartbeat_rtt_seconds") == 2
            })
            .await;
            let s = scrape(*http).await;
            assert_eq!(value(&s, "fjell_members", &[("status", "up")]), Some(3.0));
            assert_eq!(
                value(&s, "fjell_members", &[("status", "joining")]),
                Some(0.0)
            );
            assert_eq!(value(&s, "fjell_unreachable_members", &[]), Some(0.0));
            assert_eq!(value(&s, "fjell_converged", &[]), Some(1.0));
            leaders += value(&s, "fjell_is_leader", &[]).unwrap();
            assert!(value(&s, "fjell_leader_changes_total", &[]).unwrap() >= 1.0);
            assert_eq!(count(&s, "fjell_phi"), 2, "phi for each monitored member");
            assert_eq!(
                count(&s, "fjell_quic_rtt_seconds"),
                2,
                "one connection per peer"
            );
            for class in ["heartbeat", "gossip"] {
                for dir in ["in", "out"] {
                    let l = [("class", class), ("direction", dir)];
                    assert!(
                        value(&s, "fjell_messages_total", &l).unwrap() > 0.0,
                        "{class} {dir}"
                    );
                    assert!(value(&s, "fjell_message_bytes_total", &l).unwrap() > 0.0);
                }
            }
            assert_eq!(
                value(&s, "fjell_refused_total", &[("reason", "decode_error")]),
                Some(0.0)
            );
            assert!(value(&s, "fjell_quic_connections_established_total", &[]).unwrap() >= 2.0);
        }
        assert_eq!(leaders, 1.0, "exactly one node says it leads");

        // What is not an endpoint.
        let (_, http) = &nodes[0];
        assert_eq!(get(*http, "/nope").await.status, StatusCode::NOT_FOUND);
        let post = call(*http, Method::POST, "/ready").await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        let head = call(*http, Method::HEAD, "/alive").await;
        assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));

        // A crash: the others flag it, keep-majority downs it, and its endpoints say so.
        let (crashed, crashed_http) = &nodes[2];
        crashed.abort().await;
        let a = get(*crashed_http, "/alive").await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.body, "not alive: the node stopped (Aborted)\n");
        assert_eq!(
            get(*crashed_http, "/ready").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            get(*crashed_http, "/metrics").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (_, survivor) = nodes[0];
        until(30, "the crashed node flagged unreachable", || async {
            let s = scrape(survivor).await;
            value(&s, "fjell_unreachable_members", &[]) == Some(1.0)
        })
        .await;
        until(30, "the crashed node downed and removed", || async {
            let mut decided = 0.0;
            for (_, http) in &nodes[..2] {
                let s = scrape(*http).await;
                if value(&s, "fjell_members", &[("status", "up")]) != Some(2.0) {
                    return false;
                }
                decided += value(
                    &s,
                    "fjell_downing_decisions_total",
                    &[("decision", "down_unreachable")],
                )
                .unwrap();
            }
            decided >= 1.0
        })
        .await;
        for (_, http) in &nodes[..2] {
            assert_eq!(get(*http, "/ready").await.status, StatusCode::OK);
        }
        for (c, _) in &nodes[..2] {
            c.shutdown().await;
        }
        lone.shutdown().await;
    });
}

#[test]
fn hostile_clients_do_not_stop_the_endpoints() {
    use std::io::{Read, Write};
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let (cluster, http) = node(&ca, socket, &[addr]);
        // Garbage instead of a request: a 400, the connection closed.
        let mut s = TcpStream::connect(http).unwrap();
        s.write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        // A head larger than the limit.
        let mut s = TcpStream::connect(http).unwrap();
        let big = format!(
            "GET /alive HTTP/1.1\r\nHost: node\r\nX-Big: {}\r\n\r\n",
            "a".repeat(fjell_ops::http::MAX_HEAD_BYTES * 2)
        );
        let _ = s.write_all(big.as_bytes());
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
        // More connections than the limit, all silent: the extra ones are closed at once.
        let idle: Vec<TcpStream> = (0..fjell_ops::http::MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(http).unwrap())
            .collect();
        until(10, "the extra connection closed at accept", || async {
            let mut extra = TcpStream::connect(http).unwrap();
            extra
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut b = [0u8; 1];
            matches!(extra.read(&mut b), Ok(0))
        })
        .await;
        drop(idle);
        // Once the server has seen them close, the endpoints serve again. Until then a new
        // connection may still be over the limit and closed at accept, which is not a failure.
        until(10, "served again", || async {
            matches!(try_call(http, Method::GET, "/alive").await, Ok(a) if a.status == StatusCode::OK)
        })
        .await;
        cluster.shutdown().await;
    });
}
