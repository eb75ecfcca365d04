//! A node's [`Metrics`] in the Prometheus / OpenMetrics text format ([prometheus-client]).
//!
//! Every name starts with `fjell_`. Counters end in `_total` and only grow for the life of
//! the node; per-peer QUIC counters restart with each connection, which Prometheus reads as
//! a counter reset. The `member` label is the member's incarnation (`ADDRESS#UID`), so a
//! restarted member is a new series; `peer` is the address alone.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `fjell_members` | gauge | `status` | members in this node's view, by status |
//! | `fjell_unreachable_members` | gauge | | members some observer flags unreachable |
//! | `fjell_converged` | gauge | | 1 when this node sees convergence |
//! | `fjell_is_leader` | gauge | | 1 when this node is the leader |
//! | `fjell_leader_changes_total` | counter | | leader changes seen |
//! | `fjell_downing_decisions_total` | counter | `decision` | split brain resolver decisions carried out |
//! | `fjell_phi` | gauge | `member` | suspicion of each monitored member |
//! | `fjell_heartbeat_rtt_seconds` | gauge | `member` | round-trip time, from the latest echo of this node's heartbeat |
//! | `fjell_heartbeat_age_seconds` | gauge | `member` | time since the latest heartbeat from the member |
//! | `fjell_messages_total` | counter | `class`, `direction` | membership messages (`heartbeat`, `gossip`, `control`; `in`, `out`) |
//! | `fjell_message_bytes_total` | counter | `class`, `direction` | their bytes |
//! | `fjell_gossip_sent_total` | counter | `kind` | gossip sent: `full`, `delta`, `status` |
//! | `fjell_gossip_rounds_total` | counter | | gossip rounds run |
//! | `fjell_refused_total` | counter | `reason` | input refused: the core's (`decode_error`, `sender_mismatch`, `gossip_dropped`, `over_capacity`) and the transport's (`malformed`, `oversized`, `unknown_kind`, `wrong_version`, `handshake`) |
//! | `fjell_dropped_total` | counter | `reason` | output dropped: `outbox_overflow`, `buffer_too_small`, `heartbeat_queue`, `membership_queue_full`, `stale_app_stream` |
//! | `fjell_quic_connections_established_total` | counter | | connections dialed or accepted |
//! | `fjell_quic_duplicate_connections_closed_total` | counter | | duplicate or superseded connections closed |
//! | `fjell_quic_open_connections` | gauge | | connections the endpoint holds |
//! | `fjell_quic_rtt_seconds` | gauge | `peer` | QUIC's smoothed round-trip time |
//! | `fjell_quic_congestion_window_bytes` | gauge | `peer` | the congestion window |
//! | `fjell_quic_lost_packets_total` | counter | `peer` | packets declared lost |
//! | `fjell_quic_congestion_events_total` | counter | `peer` | congestion window reductions |
//!
//! [prometheus-client]: https://docs.rs/prometheus-client

use std::sync::atomic::AtomicU64;

use fjell_runtime::core::Decision;
use fjell_runtime::metrics::{Flow, DECISIONS, MEMBER_STATUSES};
use fjell_runtime::{MemberStatus, Metrics};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// `metrics` as OpenMetrics text, ending with `# EOF`.
pub fn encode(metrics: &Metrics) -> String {
    let mut registry = Registry::default();
    register(&mut registry, metrics);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Registers `metrics` (a snapshot: the values are set once) in `registry` under the prefix
/// `fjell`, for an application that serves its own registry. Call it on a fresh registry
/// per scrape.
pub fn register(registry: &mut Registry, m: &Metrics) {
    let mut r = Builder(registry.sub_registry_with_prefix("fjell"));
    r.gauges(
        "members",
        "Members in this node's view, by status",
        MEMBER_STATUSES
            .iter()
            .zip(m.members)
            .map(|(s, n)| (vec![("status", status(*s).into())], n as i64)),
    );
    r.gauge(
        "unreachable_members",
        "Members some observer flags unreachable",
        m.unreachable as i64,
    );
    r.gauge(
        "converged",
        "1 when this node sees convergence",
        m.converged.into(),
    );
    r.gauge(
        "is_leader",
        "1 when this node is the leader",
        m.is_leader.into(),
    );
    r.counter("leader_changes", "Leader changes seen", m.leader_changes);
    r.counters(
        "downing_decisions",
        "Split brain resolver decisions carried out",
        DECISIONS
            .iter()
            .zip(m.downing)
            .map(|(d, n)| (vec![("decision", decision(*d).into())], n)),
    );
    let member = |s: &fjell_runtime::core::MonitorStats| vec![("member", s.subject.to_string())];
    r.floats(
        "phi",
        "Suspicion of each monitored member (phi)",
        m.monitored.iter().map(|s| (member(s), s.phi)),
    );
    r.floats(
        "heartbeat_rtt_seconds",
        "Round-trip time, from the latest echo of this node's heartbeat",
        m.monitored
            .iter()
            .filter_map(|s| Some((member(s), s.rtt?.as_secs_f64()))),
    );
    r.floats(
        "heartbeat_age_seconds",
        "Time since the latest heartbeat from the member",
        m.monitored
            .iter()
            .filter_map(|s| Some((member(s), s.last_heartbeat_age?.as_secs_f64()))),
    );
    let t = &m.traffic;
    let flows = [
        ("heartbeat", t.heartbeat),
        ("gossip", t.gossip),
        ("control", t.control),
    ];
    let directions = |pick: fn(&Flow) -> (u64, u64)| {
        flows.iter().flat_map(move |(class, f)| {
            let (i, o) = pick(f);
            [("in", i), ("out", o)].map(|(dir, n)| {
                (
                    vec![("class", class.to_string()), ("direction", dir.into())],
                    n,
                )
            })
        })
    };
    r.counters(
        "messages",
        "Membership messages, by delivery class and direction",
        directions(|f| (f.messages_in, f.messages_out)),
    );
    r.counters(
        "message_bytes",
        "Bytes of membership messages, by delivery class and direction",
        directions(|f| (f.bytes_in, f.bytes_out)),
    );
    let c = &m.core;
    r.counters(
        "gossip_sent",
        "Gossip messages sent, by kind",
        [
            ("full", c.gossip_full_sent),
            ("delta", c.gossip_delta_sent),
            ("status", c.gossip_status_sent),
        ]
        .map(|(k, n)| (vec![("kind", k.into())], n)),
    );
    r.counter("gossip_rounds", "Gossip rounds run", c.gossip_rounds);
    let q = &m.transport;
    r.counters(
        "refused",
        "Input refused, by reason",
        [
            ("decode_error", c.decode_errors),
            ("sender_mismatch", c.sender_mismatches),
            ("gossip_dropped", c.gossip_dropped),
            ("over_capacity", c.over_capacity),
            ("malformed", q.malformed),
            ("oversized", q.oversized),
            ("unknown_kind", q.unknown_kind),
            ("wrong_version", q.wrong_version),
            ("handshake", q.refused_handshakes),
        ]
        .map(|(k, n)| (vec![("reason", k.into())], n)),
    );
    r.counters(
        "dropped",
        "Output dropped, by reason",
        [
            ("outbox_overflow", c.outbox_overflow),
            ("buffer_too_small", c.buffer_too_small),
            ("heartbeat_queue", q.heartbeats_dropped),
            ("membership_queue_full", q.membership_queue_full),
            ("stale_app_stream", q.stale_app_streams),
        ]
        .map(|(k, n)| (vec![("reason", k.into())], n)),
    );
    r.counter(
        "quic_connections_established",
        "QUIC connections dialed or accepted",
        q.connections,
    );
    r.counter(
        "quic_duplicate_connections_closed",
        "Duplicate or superseded QUIC connections closed",
        q.duplicates_closed,
    );
    r.gauge(
        "quic_open_connections",
        "QUIC connections the endpoint holds, including closing ones",
        m.open_connections as i64,
    );
    let peer = |c: &fjell_runtime::quic::ConnectionStats| vec![("peer", c.peer.to_string())];
    r.floats(
        "quic_rtt_seconds",
        "QUIC's smoothed round-trip time, per peer",
        m.connections.iter().map(|c| (peer(c), c.rtt.as_secs_f64())),
    );
    r.floats(
        "quic_congestion_window_bytes",
        "QUIC congestion window, per peer",
        m.connections
            .iter()
            .map(|c| (peer(c), c.congestion_window as f64)),
    );
    r.counters(
        "quic_lost_packets",
        "QUIC packets declared lost, per peer connection",
        m.connections.iter().map(|c| (peer(c), c.lost_packets)),
    );
    r.counters(
        "quic_congestion_events",
        "QUIC congestion window reductions, per peer connection",
        m.connections.iter().map(|c| (peer(c), c.congestion_events)),
    );
}

/// Registration of snapshot values, one call per metric family.
struct Builder<'a>(&'a mut Registry);

impl Builder<'_> {
    fn gauge(&mut self, name: &str, help: &str, v: i64) {
        let g = Gauge::<i64>::default();
        g.set(v);
        self.0.register(name, help, g);
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        self.0.register(name, help, c);
    }

    fn gauges(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, i64)>) {
        let f = Family::<Labels, Gauge>::default();
        for (l, v) in values {
            f.get_or_create(&l).set(v);
        }
        self.0.register(name, help, f);
    }

    fn floats(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, f64)>) {
        let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (l, v) in values {
            f.get_or_create(&l).set(v);
        }
        self.0.register(name, help, f);
    }

    fn counters(
        &mut self,
        name: &str,
        help: &str,
        values: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        let f = Family::<Labels, Counter>::default();
        for (l, v) in values {
            f.get_or_create(&l).inc_by(v);
        }
        self.0.register(name, help, f);
    }
}

fn status(s: MemberStatus) -> &'static str {
    match s {
        MemberStatus::Joining => "joining",
        MemberStatus::WeaklyUp => "weakly_up",
        MemberStatus::Up => "up",
        MemberStatus::Leaving => "leaving",
        MemberStatus::Exiting => "exiting",
        MemberStatus::Down => "down",
        MemberStatus::Removed => "removed",
        MemberStatus::PreparingForShutdown => "preparing_for_shutdown",
        MemberStatus::ReadyForShutdown => "ready_for_shutdown",
    }
}

fn decision(d: Decision) -> &'static str {
    match d {
        Decision::DownUnreachable => "down_unreachable",
        Decision::DownReachable => "down_reachable",
        Decision::DownAll => "down_all",
        Decision::DownIndirectlyConnected => "down_indirectly_connected",
        Decision::ReverseDownIndirectlyConnected => "reverse_down_indirectly_connected",
    }
}
