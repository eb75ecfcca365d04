//! What a node that is not in a cluster yet tells its operator.
//!
//! A node waiting to join can wait for a long time for many reasons: no seed nodes, seeds
//! that do not answer, a certificate the cluster refuses, a join the cluster refuses. Each
//! looks the same from outside, so the node says which it is: its join attempts at info, and
//! once `seed-node-timeout` has passed without getting in, a warning that lists every contact
//! and what it answered (repeated at growing intervals, at most every minute).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use fjell_core::Instant;
use fjell_quic::DialOutcome;

/// Longest interval between two warnings.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The join attempts of a node not in a cluster yet.
#[derive(Debug)]
pub(crate) struct JoinProgress {
    first: Duration,
    started: Option<Instant>,
    interval: Duration,
    next: Option<Instant>,
    /// Every address asked, with the refusal it answered (if any).
    contacts: BTreeMap<SocketAddr, Option<String>>,
}

impl JoinProgress {
    /// First warning `seed_node_timeout` after the first attempt.
    pub(crate) fn new(seed_node_timeout: Duration) -> Self {
        JoinProgress {
            first: seed_node_timeout,
            started: None,
            interval: seed_node_timeout,
            next: None,
            contacts: BTreeMap::new(),
        }
    }

    /// The node starts joining through `contacts` (seed nodes or one address) at `now`. An
    /// attempt after the node got in (it joins again) starts the report over.
    pub(crate) fn attempt(&mut self, now: Instant, contacts: &[SocketAddr]) {
        if self.started.is_none() || self.next.is_none() {
            self.started = Some(now);
            self.next = Some(now + self.first);
            self.interval = self.first;
            self.contacts.clear();
        }
        for c in contacts {
            // A new attempt through a contact forgets what it answered before.
            self.contacts.insert(*c, None);
        }
    }

    /// `by` refused the join, for `reason`.
    pub(crate) fn refused(&mut self, by: SocketAddr, reason: String) {
        self.contacts.insert(by, Some(reason));
    }

    /// The node got in (or stopped trying): nothing more to report until it tries again.
    pub(crate) fn done(&mut self) {
        self.next = None;
    }

    /// When the next warning is due, while one is.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// The warning due at `now`, if one is, given how the last dial to each contact ended.
    pub(crate) fn warning(
        &mut self,
        now: Instant,
        dial: impl Fn(SocketAddr) -> Option<DialOutcome>,
    ) -> Option<String> {
        let (Some(next), Some(started)) = (self.next, self.started) else {
            return None;
        };
        if now < next {
            return None;
        }
        self.interval = (self.interval * 2).min(MAX_INTERVAL);
        self.next = Some(now + self.interval);
        let waited = (now - started).as_secs();
        if self.contacts.is_empty() {
            return Some(format!(
                "not in a cluster after {waited} s: no seed nodes are configured \
                 (set `seed-nodes`, or join by hand with `fjell join`)"
            ));
        }
        let answers: Vec<String> = self
            .contacts
            .iter()
            .map(|(addr, refusal)| {
                let answer = match (refusal, dial(*addr)) {
                    (Some(r), _) => format!("join refused: {r}"),
                    (None, Some(DialOutcome::Connected)) => {
                        "connected, but no welcome yet (is it a member of a cluster?)".to_owned()
                    }
                    (None, Some(o)) => o.to_string(),
                    (None, None) => "not dialed yet".to_owned(),
                };
                format!("{addr}: {answer}")
            })
            .collect();
        Some(format!(
            "not in a cluster after {waited} s; contacts: {}",
            answers.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    #[test]
    fn warns_after_the_seed_node_timeout_with_every_contacts_answer() {
        let mut p = JoinProgress::new(Duration::from_secs(5));
        p.attempt(
            at(0),
            &[a("10.0.0.1:7355"), a("10.0.0.2:7355"), a("10.0.0.3:7355")],
        );
        p.refused(a("10.0.0.3:7355"), "Capacity".into());
        let dial = |addr: SocketAddr| match addr.port() {
            7355 if addr.ip().to_string() == "10.0.0.1" => {
                Some(DialOutcome::NoAnswer("timed out".into()))
            }
            _ => Some(DialOutcome::HandshakeRefused("UnknownCA".into())),
        };
        assert_eq!(p.warning(at(4), dial), None);
        assert_eq!(
            p.warning(at(5), dial).unwrap(),
            "not in a cluster after 5 s; contacts: 10.0.0.1:7355: no answer (timed out); \
             10.0.0.2:7355: TLS handshake refused: UnknownCA; 10.0.0.3:7355: join refused: Capacity"
        );
        // Then at growing intervals: 10 s later, 20 s after that.
        assert_eq!(p.warning(at(14), dial), None);
        assert!(p.warning(at(15), dial).is_some());
        assert_eq!(p.deadline(), Some(at(35)));
        p.done();
        assert_eq!(p.warning(at(100), dial), None);
        // Joining again (say the node found itself removed) starts the report over, and the
        // old refusal is forgotten.
        p.attempt(at(200), &[a("10.0.0.3:7355")]);
        assert_eq!(p.warning(at(204), dial), None);
        assert_eq!(
            p.warning(at(205), dial).unwrap(),
            "not in a cluster after 5 s; contacts: 10.0.0.3:7355: TLS handshake refused: UnknownCA"
        );
    }

    #[test]
    fn a_node_without_seeds_says_so() {
        let mut p = JoinProgress::new(Duration::from_secs(5));
        p.attempt(at(0), &[]);
        assert_eq!(
            p.warning(at(5), |_| None).unwrap(),
            "not in a cluster after 5 s: no seed nodes are configured \
             (set `seed-nodes`, or join by hand with `fjell join`)"
        );
    }
}
