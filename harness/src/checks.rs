//! The checks, each a rule over what the nodes report. They are the harness's oracle: they
//! read only event logs, application logs, management answers and process states, never
//! fjell's internals.

use std::collections::HashMap;
use std::net::SocketAddr;

use fjell_runtime::event_log::EventRecord;

use crate::app::Received;
use crate::observe::View;

/// A node as the checks see it at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Its number.
    pub index: usize,
    /// Its process runs.
    pub alive: bool,
    /// Its current incarnation's view, once it reported anything.
    pub view: Option<&'a View>,
}

impl Observed<'_> {
    /// Running, Up in its own eyes, not downed, not stopped.
    pub fn serving(&self) -> bool {
        self.alive && self.view.is_some_and(View::serving)
    }
}

/// **No split brain, as decisions**: two serving nodes that have each seen the other
/// downed. Each side of a partition may down the other only if at most one of them goes
/// on serving.
pub fn mutual_downing(nodes: &[Observed<'_>]) -> Option<String> {
    for a in nodes.iter().filter(|n| n.serving()) {
        for b in nodes.iter().filter(|n| n.serving() && n.index > a.index) {
            let (va, vb) = (a.view?, b.view?);
            if va.downed.contains(&vb.incarnation) && vb.downed.contains(&va.incarnation) {
                return Some(format!(
                    "split brain: nodes {} and {} both serve and each downed the other",
                    a.index, b.index
                ));
            }
        }
    }
    None
}

/// **No split brain, as clusters**: two serving nodes neither of which counts the other as
/// a member (checked when the network is whole and the run has settled).
pub fn separate_clusters(nodes: &[Observed<'_>]) -> Option<String> {
    for a in nodes.iter().filter(|n| n.serving()) {
        for b in nodes.iter().filter(|n| n.serving() && n.index > a.index) {
            let (va, vb) = (a.view?, b.view?);
            if !va.sees_member(&vb.incarnation) && !vb.sees_member(&va.incarnation) {
                return Some(format!(
                    "split brain: nodes {} and {} both serve in clusters without each other",
                    a.index, b.index
                ));
            }
        }
    }
    None
}

/// **No UnreachableMember** (`expect.no-unreachable`).
pub fn unreachable(node: usize, r: &EventRecord) -> Option<String> {
    (r.event == "UnreachableMember").then(|| {
        format!(
            "node {node} reported {} unreachable (expect.no-unreachable)",
            r.member.as_deref().unwrap_or("?")
        )
    })
}

/// **No downing** (`expect.no-downing`).
pub fn downing(node: usize, r: &EventRecord) -> Option<String> {
    matches!(r.event.as_str(), "Downing" | "MemberDowned" | "SelfDowned").then(|| {
        format!(
            "node {node} reported {} {} (expect.no-downing)",
            r.event,
            r.member.as_deref().or(r.detail.as_deref()).unwrap_or("")
        )
    })
}

/// **Majority Up** (`expect.majority-up`): more than half of `total` nodes serve.
pub fn majority_up(nodes: &[Observed<'_>], total: usize) -> Option<String> {
    let up = nodes.iter().filter(|n| n.serving()).count();
    (2 * up <= total).then(|| format!("only {up} of {total} nodes are Up (expect.majority-up)"))
}

/// **Application messages in order**: per receiver, each sender run's sequence numbers
/// only grow (gaps are allowed: a message to an unreachable peer is dropped, never
/// delivered late out of order).
#[derive(Debug, Default)]
pub struct MessageOrder {
    last: HashMap<(usize, SocketAddr, u64), u64>,
    /// Messages checked.
    pub received: u64,
    /// When each receiver last heard from each sender address (Unix ms).
    pub heard: HashMap<(usize, SocketAddr), u64>,
}

impl MessageOrder {
    /// Checks one received message.
    pub fn check(&mut self, receiver: usize, m: &Received) -> Option<String> {
        self.received += 1;
        self.heard.insert((receiver, m.from), m.unix_ms);
        let key = (receiver, m.from, m.run);
        let prev = self.last.get(&key).copied();
        if prev.is_none_or(|p| m.seq > p) {
            self.last.insert(key, m.seq);
        }
        match prev {
            Some(p) if m.seq <= p => Some(format!(
                "node {receiver} got message {} from {} (run {:x}) after message {p}: {}",
                m.seq,
                m.from,
                m.run,
                if m.seq == p {
                    "a duplicate"
                } else {
                    "out of order"
                }
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Seen;

    fn view(me: &str, downed: &[&str], members: &[&str]) -> View {
        let mut v = View {
            incarnation: me.into(),
            ..View::default()
        };
        for m in members.iter().chain([&me]) {
            let addr = m.split('#').next().unwrap();
            v.members.insert(
                addr.into(),
                Seen {
                    incarnation: (*m).into(),
                    status: "Up".into(),
                },
            );
        }
        v.downed = downed.iter().map(|s| s.to_string()).collect();
        v
    }

    /// Node 0 (running) and node 1, each with its view.
    fn pair<'v>(a: &'v View, b: &'v View, alive_b: bool) -> [Observed<'v>; 2] {
        [
            Observed {
                index: 0,
                alive: true,
                view: Some(a),
            },
            Observed {
                index: 1,
                alive: alive_b,
                view: Some(b),
            },
        ]
    }

    #[test]
    fn mutual_downing_is_a_split_brain_only_while_both_serve() {
        let a = view("a:1#1", &["b:1#2"], &[]);
        let b = view("b:1#2", &["a:1#1"], &[]);
        assert!(mutual_downing(&pair(&a, &b, true)).is_some());
        assert!(mutual_downing(&pair(&a, &b, false)).is_none());
        // Downing an older incarnation of the other is no split brain.
        let b2 = view("b:1#3", &["a:1#1"], &[]);
        let n = pair(&a, &b2, true);
        assert!(mutual_downing(&n).is_none());
        assert!(separate_clusters(&n).is_some());
    }

    #[test]
    fn messages_must_keep_their_order_per_sender_run() {
        let from: SocketAddr = "10.201.0.1:7355".parse().unwrap();
        let m = |run, seq| Received {
            unix_ms: 0,
            from,
            run,
            seq,
        };
        let mut o = MessageOrder::default();
        assert!(o.check(1, &m(7, 0)).is_none());
        assert!(o.check(1, &m(7, 2)).is_none()); // a gap is fine
        assert!(o.check(1, &m(7, 1)).unwrap().contains("out of order"));
        assert!(o.check(1, &m(7, 2)).unwrap().contains("duplicate"));
        assert!(o.check(1, &m(8, 0)).is_none()); // a restarted sender starts over
        assert!(o.check(2, &m(7, 0)).is_none()); // per receiver
    }
}
