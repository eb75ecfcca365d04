//! Refusals logged per peer and interval, not per attempt.
//!
//! Anyone who can send UDP to a node can make it refuse handshakes as fast as it can send
//! them; one log line each would let them grow the log at that rate. The first refusal from
//! a peer (an IP address: a port is free to change) in an interval is logged at once, with
//! its reason; the rest are counted and summarised, one line per peer, when the interval
//! ends. The table of peers is bounded: beyond it refusals are summarised as one count.
//! Every refusal is still counted in [`crate::Counters`].
//!
//! The decisions take the time as an argument, so they are tested without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long refusals from one peer are summarised before it is logged at once again.
pub(crate) const INTERVAL: Duration = Duration::from_secs(60);

/// Peers tracked per interval; refusals from further peers are counted together.
const MAX_PEERS: usize = 256;

/// Longest reason kept for a summary (reasons may quote peer-controlled text).
const MAX_REASON: usize = 200;

/// What to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// The first refusal from a peer in this interval.
    First {
        /// The peer.
        peer: IpAddr,
        /// Why.
        reason: String,
    },
    /// Refusals after the first, from one peer, in the interval that ended.
    Summary {
        /// The peer.
        peer: IpAddr,
        /// How many.
        count: u64,
        /// The last reason.
        reason: String,
    },
    /// Refusals from peers beyond the table, in the interval that ended.
    Others {
        /// How many refusals.
        count: u64,
    },
}

#[derive(Debug)]
struct State {
    since: Instant,
    /// Per peer: refusals after the first, and the last reason.
    peers: HashMap<IpAddr, (u64, String)>,
    others: u64,
}

/// The aggregated log.
#[derive(Debug)]
pub(crate) struct Refusals {
    what: &'static str,
    state: Mutex<State>,
}

impl Refusals {
    /// A log for refusals of `what` ("handshake", "connection").
    pub(crate) fn new(what: &'static str, now: Instant) -> Self {
        Refusals {
            what,
            state: Mutex::new(State {
                since: now,
                peers: HashMap::new(),
                others: 0,
            }),
        }
    }

    /// A refusal of `peer` at `now`: the lines to log (summaries of the interval that ended,
    /// then this refusal if it is the peer's first in the interval).
    pub(crate) fn refused(&self, now: Instant, peer: IpAddr, reason: &str) -> Vec<Line> {
        let mut s = self.state.lock().unwrap();
        let mut out = Self::roll(&mut s, now);
        let reason = printable(reason);
        let peer = key(peer);
        if let Some((count, last)) = s.peers.get_mut(&peer) {
            *count += 1;
            *last = reason;
        } else if s.peers.len() < MAX_PEERS {
            s.peers.insert(peer, (0, String::new()));
            out.push(Line::First { peer, reason });
        } else {
            s.others += 1;
        }
        out
    }

    /// Summaries of an interval that has ended by `now` (call periodically).
    pub(crate) fn tick(&self, now: Instant) -> Vec<Line> {
        Self::roll(&mut self.state.lock().unwrap(), now)
    }

    fn roll(s: &mut State, now: Instant) -> Vec<Line> {
        if now.saturating_duration_since(s.since) < INTERVAL {
            return Vec::new();
        }
        s.since = now;
        let mut out: Vec<Line> = s
            .peers
            .drain()
            .filter(|(_, (count, _))| *count > 0)
            .map(|(peer, (count, reason))| Line::Summary {
                peer,
                count,
                reason,
            })
            .collect();
        if s.others > 0 {
            out.push(Line::Others { count: s.others });
            s.others = 0;
        }
        out
    }

    /// Writes `lines` to the log, at warning level.
    pub(crate) fn log(&self, lines: Vec<Line>) {
        let what = self.what;
        let secs = INTERVAL.as_secs();
        for l in lines {
            match l {
                Line::First { peer, reason } => tracing::warn!(
                    %peer,
                    "fjell-quic: refused a {what} from {peer}: {reason} \
                     (more from this peer are summarised every {secs} s)"
                ),
                Line::Summary {
                    peer,
                    count,
                    reason,
                } => tracing::warn!(
                    %peer,
                    "fjell-quic: refused {count} more {what}s from {peer} in the last {secs} s \
                     (last: {reason})"
                ),
                Line::Others { count } => tracing::warn!(
                    "fjell-quic: refused {count} {what}s from further peers in the last {secs} s"
                ),
            }
        }
    }
}

/// `text` made safe for a log line: at most [`MAX_REASON`] bytes, control characters
/// escaped (reasons may quote what a peer sent, and a peer must not write lines of its own).
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() >= MAX_REASON {
            break;
        }
    }
    let mut end = out.len().min(MAX_REASON);
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

/// The key refusals are counted under: the IP, or an IPv6 address's /64 (a host usually
/// holds a whole /64, and must not fill the table alone).
fn key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let mut b = v6.octets();
            b[8..].fill(0);
            IpAddr::from(b)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flood_from_one_peer_is_one_line_then_one_summary_per_interval() {
        let t0 = Instant::now();
        let log = Refusals::new("handshake", t0);
        let mut lines = Vec::new();
        for k in 0..3000u32 {
            let now = t0 + Duration::from_millis(u64::from(k) * 10); // 30 s of attempts
            lines.extend(log.refused(now, ip("10.0.0.9"), "unknown CA"));
        }
        assert_eq!(
            lines,
            vec![Line::First {
                peer: ip("10.0.0.9"),
                reason: "unknown CA".into()
            }]
        );
        assert!(log.tick(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(
            log.tick(t0 + INTERVAL),
            vec![Line::Summary {
                peer: ip("10.0.0.9"),
                count: 2999,
                reason: "unknown CA".into()
            }]
        );
        // A new interval logs the peer's next refusal at once again.
        let later = t0 + INTERVAL + Duration::from_secs(1);
        assert_eq!(log.refused(later, ip("10.0.0.9"), "x").len(), 1);
    }

    #[test]
    fn the_peer_table_is_bounded() {
        let t0 = Instant::now();
        let log = Refusals::new("handshake", t0);
        let mut firsts = 0;
        for k in 0..1000u32 {
            let peer = IpAddr::from(k.to_be_bytes());
            firsts += log.refused(t0, peer, &"y".repeat(10_000)).len();
        }
        assert_eq!(firsts, MAX_PEERS);
        let summary = log.tick(t0 + INTERVAL);
        assert_eq!(summary, vec![Line::Others { count: 1000 - 256 }]);
        let long = log.refused(t0 + INTERVAL, ip("10.0.0.1"), &"é".repeat(500));
        match &long[0] {
            Line::First { reason, .. } => assert!(reason.len() <= MAX_REASON),
            other => panic!("{other:?}"),
        }
        // One IPv6 host's /64 is one peer.
        assert_eq!(log.refused(t0 + INTERVAL, ip("2001:db8::1"), "x").len(), 1);
        assert!(log
            .refused(t0 + INTERVAL, ip("2001:db8::2"), "x")
            .is_empty());
    }

    #[test]
    fn a_peer_cannot_write_lines_of_its_own() {
        let log = Refusals::new("handshake", Instant::now());
        let lines = log.refused(Instant::now(), ip("10.0.0.1"), "bad\nFAKE LINE\r\u{1b}[31m");
        match &lines[0] {
            Line::First { reason, .. } => {
                assert!(!reason.chars().any(char::is_control), "{reason:?}");
                assert!(reason.contains("\\n"), "{reason:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
