//! When a node without seed nodes joins, and whom (Pekko's `LowestAddressJoinDecider`),
//! sans-IO: lookups and probe answers go in, a [`Decision`] comes out, time is a value.
//!
//! In order, on the contact points whose probe answered within `probing-failure-timeout`
//! (fresh answers):
//!
//! 1. An answer lists seed nodes (a cluster exists): join them, this node's own address
//!    left out (a node restarted on the same address is listed as its old incarnation, and
//!    a node first in its own seed list may found a cluster of its own). If only this node
//!    is listed, wait: a cluster exists, so founding one is never right.
//! 2. Fewer fresh answers than `required-contact-point-nr`: wait.
//! 3. The discovered set changed less than `stable-margin` ago (a failed lookup counts as a
//!    change): wait.
//! 4. With `contact-with-all-contact-points`, a discovered contact point has no fresh
//!    answer: wait.
//! 5. The lowest contact point with a fresh answer (by IP, then port) among those that may
//!    lead (`leader-eligible`; one that may not cannot found) is this node's own: found the
//!    cluster (`new-cluster-enabled`); otherwise wait for the lowest one's cluster to show up
//!    in rule 1.
//!
//! Every node that sees the same set picks the same lowest node, and only that one founds a
//! cluster; the others only ever join addresses a probe reported as members. So a fleet
//! started at once forms one cluster as long as every node discovers the same set of at
//! least `required-contact-point-nr` contact points: set it to the fleet's initial size.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fjell_runtime::settings::Bootstrap;

/// At most this many seed nodes are joined (Pekko's limit).
pub const MAX_SEED_NODES: usize = 5;

/// What the node should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A cluster exists: join it through these members (cluster addresses).
    JoinSeedNodes(Vec<SocketAddr>),
    /// This node is the lowest contact point and nobody has a cluster: found one.
    JoinSelf,
    /// Keep probing, for this reason.
    Wait(Waiting),
}

/// Why the node keeps probing (reported, so an operator sees why a fleet does not form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Waiting {
    /// Fewer contact points answered than required.
    #[error("{answered} of the required {required} contact points answered")]
    TooFewAnswered {
        /// Fresh answers.
        answered: usize,
        /// `required-contact-point-nr`.
        required: usize,
    },
    /// The discovered set changed lately (or the last lookup failed).
    #[error("the contact points changed {since:?} ago; waiting for {margin:?} without change")]
    NotStable {
        /// Since the last change.
        since: Duration,
        /// `stable-margin`.
        margin: Duration,
    },
    /// Some discovered contact points have not answered lately.
    #[error("no answer lately from {0:?}")]
    NotAllAnswered(Vec<SocketAddr>),
    /// This node is not among the contact points, so it never founds a cluster.
    #[error("this node ({0}) is not among the discovered contact points")]
    SelfNotAContactPoint(SocketAddr),
    /// Another contact point is lower: it founds the cluster.
    #[error("waiting for the lowest contact point {0} to form the cluster")]
    NotLowest(SocketAddr),
    /// The only seed node listed is this node's own address (its previous incarnation).
    #[error("the only seed node listed is this node's own address (an earlier incarnation)")]
    OnlySelfListed,
    /// This node is the lowest, but `new-cluster-enabled` is off.
    #[error("this node is the lowest contact point, but new-cluster-enabled is off")]
    NewClusterDisabled,
    /// No contact point that answered may lead (`leader-eligible`), so none may found.
    #[error("no contact point that answered may lead, so none may found the cluster")]
    NoneMayLead,
}

/// The latest answer of one contact point.
#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    seed_nodes: Vec<SocketAddr>,
    may_lead: bool,
}

/// The join decision's state (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Rules {
    settings: Bootstrap,
    me: SocketAddr,
    node: SocketAddr,
    discovered: BTreeSet<SocketAddr>,
    /// When `discovered` last changed; `None` after a failed lookup, until the next one.
    changed_at: Option<Instant>,
    answers: BTreeMap<SocketAddr, Answer>,
}

impl Rules {
    /// Rules for the node whose own contact point is `me` and cluster address `node`.
    pub fn new(settings: Bootstrap, me: SocketAddr, node: SocketAddr) -> Rules {
        Rules {
            settings,
            me,
            node,
            discovered: BTreeSet::new(),
            changed_at: None,
            answers: BTreeMap::new(),
        }
    }

    /// The contact points found by the latest lookup.
    pub fn discovered(&self) -> &BTreeSet<SocketAddr> {
        &self.discovered
    }

    /// A lookup found `contact_points`.
    pub fn handle_lookup(&mut self, now: Instant, contact_points: BTreeSet<SocketAddr>) {
        if self.changed_at.is_none() || contact_points != self.discovered {
            self.changed_at = Some(now);
            // Answers of contact points no longer discovered do not count.
            self.answers.retain(|a, _| contact_points.contains(a));
            self.discovered = contact_points;
        }
    }

    /// A lookup failed: the set is unknown, and the stable margin starts again after the
    /// next successful one (Pekko's rule: an unreliable source must not found a cluster).
    pub fn handle_lookup_failed(&mut self) {
        self.changed_at = None;
        self.discovered.clear();
        self.answers.clear();
    }

    /// `contact_point` answered a probe at `now`, listing `seed_nodes` (empty: it is in no
    /// cluster), and whether it may lead. Answers from contact points not discovered are
    /// ignored.
    pub fn handle_answer(
        &mut self,
        now: Instant,
        contact_point: SocketAddr,
        seed_nodes: Vec<SocketAddr>,
        may_lead: bool,
    ) {
        if self.discovered.contains(&contact_point) {
            self.answers.insert(
                contact_point,
                Answer {
                    at: now,
                    seed_nodes,
                    may_lead,
                },
            );
        }
    }

    /// The decision at `now`.
    pub fn decide(&self, now: Instant) -> Decision {
        let s = &self.settings;
        let fresh: BTreeMap<&SocketAddr, &Answer> = self
            .answers
            .iter()
            .filter(|(_, a)| now.saturating_duration_since(a.at) <= s.probing_failure_timeout)
            .collect();
        // 1. A cluster exists.
        let mut seeds: Vec<SocketAddr> = fresh
            .values()
            .flat_map(|a| a.seed_nodes.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !seeds.is_empty() {
            seeds.retain(|s| *s != self.node);
            if seeds.is_empty() {
                return Decision::Wait(Waiting::OnlySelfListed);
            }
            seeds.truncate(MAX_SEED_NODES);
            return Decision::JoinSeedNodes(seeds);
        }
        // 2. Enough answers.
        if fresh.len() < s.required_contact_point_nr {
            return Decision::Wait(Waiting::TooFewAnswered {
                answered: fresh.len(),
                required: s.required_contact_point_nr,
            });
        }
        // 3. A stable set.
        let since = self
            .changed_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if self.changed_at.is_none() || since < s.stable_margin {
            return Decision::Wait(Waiting::NotStable {
                since,
                margin: s.stable_margin,
            });
        }
        // 4. Everyone answered.
        if s.contact_with_all_contact_points {
            let missing: Vec<SocketAddr> = self
                .discovered
                .iter()
                .filter(|a| !fresh.contains_key(a))
                .copied()
                .collect();
            if !missing.is_empty() {
                return Decision::Wait(Waiting::NotAllAnswered(missing));
            }
        }
        // 5. The lowest founds.
        if !self.discovered.contains(&self.me) {
            return Decision::Wait(Waiting::SelfNotAContactPoint(self.me));
        }
        // Settings from code may ask for 0 answers: no answer, no founder.
        if fresh.is_empty() {
            return Decision::Wait(Waiting::TooFewAnswered {
                answered: 0,
                required: s.required_contact_point_nr,
            });
        }
        let Some((&&lowest, _)) = fresh.iter().find(|(_, a)| a.may_lead) else {
            return Decision::Wait(Waiting::NoneMayLead);
        };
        if lowest != self.me {
            Decision::Wait(Waiting::NotLowest(lowest))
        } else if s.new_cluster_enabled {
            Decision::JoinSelf
        } else {
            Decision::Wait(Waiting::NewClusterDisabled)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjell_runtime::settings::DiscoveryMethod;

    fn settings(required: usize) -> Bootstrap {
        Bootstrap {
            required_contact_point_nr: required,
            ..Bootstrap::new(DiscoveryMethod::Command("true".into()))
        }
    }

    fn cp(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 8558))
    }

    fn node(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 7355))
    }

    fn set(ids: &[u8]) -> BTreeSet<SocketAddr> {
        ids.iter().map(|i| cp(*i)).collect()
    }

    #[test]
    fn the_lowest_that_may_lead_founds() {
        let t0 = Instant::now();
        let s = |d: u64| t0 + Duration::from_secs(d);
        // Contact point 1 may not lead: 2 founds, 1 and 3 wait for it.
        let mut rules: Vec<Rules> = (1..=3)
            .map(|i| Rules::new(settings(3), cp(i), node(i)))
            .collect();
        for r in &mut rules {
            r.handle_lookup(s(0), set(&[1, 2, 3]));
            for i in 1..=3 {
                r.handle_answer(s(5), cp(i), vec![], i != 1);
            }
        }
        assert_eq!(
            rules[0].decide(s(5)),
            Decision::Wait(Waiting::NotLowest(cp(2)))
        );
        assert_eq!(rules[1].decide(s(5)), Decision::JoinSelf);
        assert_eq!(
            rules[2].decide(s(5)),
            Decision::Wait(Waiting::NotLowest(cp(2)))
        );
        // None may lead: nobody founds.
        let mut none = Rules::new(settings(2), cp(1), node(1));
        none.handle_lookup(s(0), set(&[1, 2]));
        none.handle_answer(s(5), cp(1), vec![], false);
        none.handle_answer(s(5), cp(2), vec![], false);
        assert_eq!(none.decide(s(5)), Decision::Wait(Waiting::NoneMayLead));
    }

    #[test]
    fn the_lowest_founds_once_everyone_answered_and_the_set_held_still() {
        let t0 = Instant::now();
        let s = |d: u64| t0 + Duration::from_secs(d);
        let mut lowest = Rules::new(settings(3), cp(1), node(1));
        let mut other = Rules::new(settings(3), cp(2), node(2));
        for r in [&mut lowest, &mut other] {
            r.handle_lookup(s(0), set(&[1, 2, 3]));
            r.handle_answer(s(0), cp(1), vec![], true);
            r.handle_answer(s(0), cp(2), vec![], true);
            assert_eq!(
                r.decide(s(0)),
                Decision::Wait(Waiting::TooFewAnswered {
                    answered: 2,
                    required: 3
                })
            );
            r.handle_answer(s(1), cp(3), vec![], true);
            assert!(matches!(
                r.decide(s(1)),
                Decision::Wait(Waiting::NotStable { .. })
            ));
        }
        // The first answers went stale (3 s): fresh ones again.
        for r in [&mut lowest, &mut other] {
            assert!(matches!(
                r.decide(s(5)),
                Decision::Wait(Waiting::TooFewAnswered { .. })
            ));
            for i in 1..=3 {
                r.handle_answer(s(5), cp(i), vec![], true);
            }
        }
        assert_eq!(lowest.decide(s(5)), Decision::JoinSelf);
        assert_eq!(
            other.decide(s(5)),
            Decision::Wait(Waiting::NotLowest(cp(1)))
        );
        // The founder's cluster shows up: the others join it.
        other.handle_answer(s(6), cp(1), vec!["10.0.0.1:7355".parse().unwrap()], true);
        assert_eq!(
            other.decide(s(6)),
            Decision::JoinSeedNodes(vec!["10.0.0.1:7355".parse().unwrap()])
        );
    }

    #[test]
    fn a_node_never_joins_through_its_own_address() {
        let t0 = Instant::now();
        let mut r = Rules::new(settings(2), cp(1), node(1));
        r.handle_lookup(t0, set(&[1, 2]));
        // Restarted on its address: the others still list its old incarnation.
        r.handle_answer(t0, cp(2), vec![node(1)], true);
        assert_eq!(r.decide(t0), Decision::Wait(Waiting::OnlySelfListed));
        r.handle_answer(t0, cp(2), vec![node(1), node(2)], true);
        assert_eq!(r.decide(t0), Decision::JoinSeedNodes(vec![node(2)]));
    }

    #[test]
    fn a_change_or_a_failed_lookup_restarts_the_stable_margin() {
        let t0 = Instant::now();
        let s = |d: u64| t0 + Duration::from_secs(d);
        let mut r = Rules::new(settings(2), cp(1), node(1));
        r.handle_lookup(s(0), set(&[1, 2]));
        r.handle_lookup(s(4), set(&[1, 2, 3]));
        for i in 1..=3 {
            r.handle_answer(s(6), cp(i), vec![], true);
        }
        assert!(matches!(
            r.decide(s(6)),
            Decision::Wait(Waiting::NotStable { .. })
        ));
        // Answers older than probing-failure-timeout (3 s) no longer count.
        assert_eq!(
            r.decide(s(10)),
            Decision::Wait(Waiting::TooFewAnswered {
                answered: 0,
                required: 2
            })
        );
        for i in 1..=3 {
            r.handle_answer(s(10), cp(i), vec![], true);
        }
        assert_eq!(r.decide(s(10)), Decision::JoinSelf);
        r.handle_lookup_failed();
        r.handle_lookup(s(11), set(&[1, 2, 3]));
        for i in 1..=3 {
            r.handle_answer(s(11), cp(i), vec![], true);
        }
        assert!(matches!(
            r.decide(s(11)),
            Decision::Wait(Waiting::NotStable { .. })
        ));
    }

    #[test]
    fn missing_answers_self_outside_the_set_and_a_disabled_founding_wait() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let mut r = Rules::new(settings(2), cp(1), node(1));
        r.handle_lookup(t0, set(&[1, 2, 3]));
        r.handle_answer(later, cp(1), vec![], true);
        r.handle_answer(later, cp(2), vec![], true);
        assert_eq!(
            r.decide(later),
            Decision::Wait(Waiting::NotAllAnswered(vec![cp(3)]))
        );
        let mut outside = Rules::new(settings(2), cp(9), node(9));
        outside.handle_lookup(t0, set(&[1, 2]));
        outside.handle_answer(later, cp(1), vec![], true);
        outside.handle_answer(later, cp(2), vec![], true);
        outside.handle_answer(later, cp(9), vec![], true); // not discovered: ignored
        assert_eq!(
            outside.decide(later),
            Decision::Wait(Waiting::SelfNotAContactPoint(cp(9)))
        );
        let mut off = Rules::new(
            Bootstrap {
                new_cluster_enabled: false,
                ..settings(2)
            },
            cp(1),
            node(1),
        );
        off.handle_lookup(t0, set(&[1, 2]));
        off.handle_answer(later, cp(1), vec![], true);
        off.handle_answer(later, cp(2), vec![], true);
        assert_eq!(
            off.decide(later),
            Decision::Wait(Waiting::NewClusterDisabled)
        );
    }

    /// A fleet of `n` started at once while DNS fills in: each node's lookups see the
    /// records registered up to a lag of its own; probes see who is in a cluster. Returns
    /// how many clusters formed (the oracle: founders, counted outside the rules).
    fn fleet(seed: u64, n: u8, required: usize) -> usize {
        let mut rng = seed;
        let mut next = move |below: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % below
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Nodes start over 20 s; each one's DNS view lags by up to 10 s.
        let registered: Vec<u64> = (0..n).map(|_| next(20_000)).collect();
        let lag: Vec<u64> = (0..n).map(|_| next(10_000)).collect();
        let mut rules: Vec<Rules> = (1..=n)
            .map(|i| Rules::new(settings(required), cp(i), node(i)))
            .collect();
        // The cluster each node is in (by founder), if any.
        let mut cluster: Vec<Option<u8>> = vec![None; usize::from(n)];
        for step in 0..240u64 {
            let now_ms = step * 250 + next(200);
            for i in 0..usize::from(n) {
                if cluster[i].is_some() {
                    continue;
                }
                let seen = now_ms.saturating_sub(lag[i]);
                let found: BTreeSet<SocketAddr> = (0..n)
                    .filter(|j| registered[usize::from(*j)] <= seen)
                    .map(|j| cp(j + 1))
                    .collect();
                rules[i].handle_lookup(at(now_ms), found.clone());
                for c in &found {
                    let j = usize::from(
                        c.ip()
                            .to_string()
                            .rsplit('.')
                            .next()
                            .unwrap()
                            .parse::<u8>()
                            .unwrap()
                            - 1,
                    );
                    // A node answers only once it has started (registered).
                    if registered[j] <= now_ms {
                        let seeds = cluster[j].map(|f| vec![node(f)]).unwrap_or_default();
                        rules[i].handle_answer(at(now_ms), *c, seeds, true);
                    }
                }
                match rules[i].decide(at(now_ms)) {
                    Decision::JoinSelf => cluster[i] = Some(i as u8 + 1),
                    Decision::JoinSeedNodes(s) => {
                        let f = usize::from(
                            s[0].ip()
                                .to_string()
                                .rsplit('.')
                                .next()
                                .unwrap()
                                .parse::<u8>()
                                .unwrap()
                                - 1,
                        );
                        cluster[i] = cluster[f];
                    }
                    Decision::Wait(_) => {}
                }
            }
        }
        assert!(
            cluster.iter().all(Option::is_some),
            "seed {seed}: some node never joined: {cluster:?}"
        );
        cluster.iter().flatten().collect::<BTreeSet<_>>().len()
    }

    #[test]
    fn a_fleet_started_at_once_forms_exactly_one_cluster() {
        for seed in 0..2_000 {
            assert_eq!(fleet(seed, 5, 5), 1, "seed {seed}");
        }
    }

    #[test]
    fn too_low_a_required_count_can_split_a_fleet_under_lagging_dns() {
        // The failure mode the docs warn about, shown to exist: the check above can fail.
        let splits = (0..2_000).filter(|s| fleet(*s, 5, 2) > 1).count();
        assert!(
            splits > 0,
            "no seed split the fleet with required-contact-point-nr = 2"
        );
    }
}
