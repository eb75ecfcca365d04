//! Cluster-aware routers (Pekko's cluster routers, group flavour): pick a member to send a
//! message to, round-robin, at random, by consistent hashing of a key or weighted by how free
//! each member is (adaptive load balancing, from the [cluster metrics](crate::metrics)), over
//! the members that are eligible now.
//!
//! Two layers:
//!
//! - **Sans-IO** — [`Routees`] (which members are eligible, computed from a member list),
//!   [`HashRing`] (consistent hashing) and [`RouteTable`] (the two plus the logic's state:
//!   the round-robin turn, the random generator). They take membership as data and never
//!   touch a socket or a clock, so they are tested without a network.
//! - **Runtime** — [`Router`]: a [`RouteTable`] kept in step with a [`Cluster`]'s membership,
//!   which sends typed application messages with [`Cluster::send`].
//!
//! A member is **eligible** when it is Up or WeaklyUp, has every role the router asks for
//! ([`RouterSettings::roles`]; none asked: every member), is reachable (unless
//! [`RouterSettings::drop_unreachable`] is off) and is not this node (unless
//! [`RouterSettings::allow_local`], on by default). Unlike Pekko, a router can keep
//! unreachable members: a caller that routes requests with retries may prefer a slow answer
//! to a moved key.
//!
//! **Consistent hashing** places [`RouterSettings`]' `virtual_nodes_factor` points per routee
//! on a ring of 64-bit hashes and sends a key to the routee of the first point at or after
//! the key's hash, wrapping ([`HashRing`]). Points depend only on a routee's socket address,
//! so every node builds the same ring from the same routees, a member that leaves moves only
//! its own keys, one that joins takes only keys from the others (about `1/(n+1)` of them), and
//! a node restarted on the same address gets its keys back. The hash ([`key_hash`]) is
//! FNV-1a 64 finished with splitmix64's mixer: fixed, so it is the same in every process,
//! platform and Rust version.
//!
//! **Adaptive load balancing** ([`RoutingLogic::AdaptiveLoadBalancing`]) draws a routee at
//! random, each with a probability proportional to its weight: how free its node is by a
//! [`MetricsSelector`] over the latest [`NodeMetrics`] (see [`weights`] and
//! [`WeightedRoutees`]). A [`RouteTable`] takes the metrics with
//! [`RouteTable::set_metrics`]; a [`Router`] made with [`Router::with_metrics`] takes them from
//! a [`ClusterMetrics`] before each pick, when they have changed. Without metrics the picks are
//! uniform.
//!
//! ```
//! use std::net::SocketAddr;
//! use fjell_runtime::core::{AppVersion, Member, MemberStatus, RoleSet, UniqueAddress};
//! use fjell_tools::routing::{RouteTable, RouterSettings, RoutingLogic};
//!
//! // Three Up members; this node is the first.
//! let members: Vec<Member> = (1..=3)
//!     .map(|i| {
//!         let addr: SocketAddr = format!("10.0.0.{i}:7355").parse().unwrap();
//!         let mut m = Member::joining(UniqueAddress::new(addr, i), RoleSet::new(), AppVersion::default());
//!         m.status = MemberStatus::Up;
//!         m
//!     })
//!     .collect();
//! let me = members[0].address;
//!
//! // Round-robin over the others.
//! let settings = RouterSettings::new(RoutingLogic::RoundRobin).allow_local(false);
//! let mut table = RouteTable::new(settings)?;
//! table.update(&members, &[], me);
//! let picks: Vec<_> = (0..4).filter_map(|_| table.next()).map(|a| a.socket_addr()).collect();
//! assert_eq!(picks[0], picks[2]);
//! assert_ne!(picks[0], picks[1]);
//! assert!(!picks.contains(&me.socket_addr()));
//!
//! // Consistent hashing: the same key always goes to the same member, on every node.
//! let mut hashing = RouteTable::new(RouterSettings::new(RoutingLogic::consistent_hashing()))?;
//! hashing.update(&members, &[], me);
//! let owner = hashing.route(b"user-42");
//! assert!(owner.is_some());
//! assert_eq!(hashing.route(b"user-42"), owner);
//! # Ok::<(), fjell_tools::routing::SettingsError>(())
//! ```

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use fjell_runtime::core::member::{MAX_ROLES, MAX_ROLE_LEN};
use fjell_runtime::core::{Member, MemberStatus, Role, UniqueAddress};
use fjell_runtime::quic::SendError;
use fjell_runtime::{Cluster, ClusterState};
use serde::Serialize;

use crate::metrics::{weights, ClusterMetrics, MetricsSelector, NodeMetrics, WeightedRoutees};

/// Points per routee on the consistent-hashing ring unless set (Pekko's
/// `virtual-nodes-factor`, 10).
pub const DEFAULT_VIRTUAL_NODES_FACTOR: u32 = 10;

/// The largest accepted `virtual_nodes_factor`: the ring holds `factor × routees` points, and
/// beyond this the ring costs memory (16 bytes a point) without spreading keys noticeably
/// better.
pub const MAX_VIRTUAL_NODES_FACTOR: u32 = 1000;

/// How a router picks among its routees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingLogic {
    /// Each routee in turn, in address order.
    RoundRobin,
    /// A routee drawn at random (splitmix64 from `seed`: the same seed, the same sequence of
    /// picks over the same routees).
    Random {
        /// The generator's seed.
        seed: u64,
    },
    /// The routee that owns the key on a consistent-hashing ring ([`HashRing`]). Picks
    /// without a key ([`RouteTable::next`]) take the routees in turn.
    ConsistentHashing {
        /// Points per routee on the ring, 1 to [`MAX_VIRTUAL_NODES_FACTOR`] (Pekko's
        /// `virtual-nodes-factor`; default [`DEFAULT_VIRTUAL_NODES_FACTOR`]). More points
        /// spread keys more evenly and cost memory.
        virtual_nodes_factor: u32,
    },
    /// A routee drawn at random, weighted by how free its node is by `selector` over the
    /// latest cluster metrics (Pekko's `cluster-metrics-adaptive-group`; see the [module
    /// docs](self)). Picks with a key ignore it. A [`Router`] with this logic is made with
    /// [`Router::with_metrics`].
    AdaptiveLoadBalancing {
        /// Which metrics rate a node (the default selector is [`MetricsSelector::Mix`]).
        selector: MetricsSelector,
        /// The generator's seed (splitmix64, as [`RoutingLogic::Random`]).
        seed: u64,
    },
}

impl RoutingLogic {
    /// [`RoutingLogic::Random`] seeded from the process's random source.
    pub fn random() -> RoutingLogic {
        RoutingLogic::Random {
            seed: random_seed(),
        }
    }

    /// [`RoutingLogic::AdaptiveLoadBalancing`] by `selector`, seeded from the process's random
    /// source.
    pub fn adaptive(selector: MetricsSelector) -> RoutingLogic {
        RoutingLogic::AdaptiveLoadBalancing {
            selector,
            seed: random_seed(),
        }
    }

    /// [`RoutingLogic::ConsistentHashing`] with [`DEFAULT_VIRTUAL_NODES_FACTOR`] points per
    /// routee.
    pub fn consistent_hashing() -> RoutingLogic {
        RoutingLogic::ConsistentHashing {
            virtual_nodes_factor: DEFAULT_VIRTUAL_NODES_FACTOR,
        }
    }
}

/// What a router routes to and how (Pekko's `cluster` deployment settings for a group
/// router). Build with [`RouterSettings::new`] and the setters; checked by
/// [`RouterSettings::validate`] when a [`RouteTable`] or [`Router`] is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSettings {
    /// How a routee is picked (default [`RoutingLogic::RoundRobin`]).
    pub logic: RoutingLogic,
    /// Roles a member must all have to be a routee (`use-roles`; default none: every
    /// member). At most [`MAX_ROLES`] names of 1 to [`MAX_ROLE_LEN`] bytes: a member has no
    /// more roles than that, so a longer list could never match.
    pub roles: Vec<String>,
    /// Whether this node may be a routee (`allow-local-routees`, default on). A message
    /// routed here is not sent: the transport does not deliver to its own node, so
    /// [`Router::send`] returns [`Routed::Local`] for the caller to handle it.
    pub allow_local: bool,
    /// Whether members flagged unreachable stop being routees until reachable again
    /// (default on, as in Pekko). Off: messages to an unreachable member wait in its queue
    /// or are lost; keys do not move while a member is only suspected.
    pub drop_unreachable: bool,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings::new(RoutingLogic::RoundRobin)
    }
}

impl RouterSettings {
    /// Settings for `logic`: every member, this node included, reachable members only.
    pub fn new(logic: RoutingLogic) -> Self {
        RouterSettings {
            logic,
            roles: Vec::new(),
            allow_local: true,
            drop_unreachable: true,
        }
    }

    /// Only members with all of `roles` (see [`RouterSettings::roles`]).
    pub fn roles<S: AsRef<str>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        self.roles = roles.into_iter().map(|r| r.as_ref().to_string()).collect();
        self
    }

    /// Whether this node may be a routee (see [`RouterSettings::allow_local`]).
    pub fn allow_local(mut self, on: bool) -> Self {
        self.allow_local = on;
        self
    }

    /// Whether unreachable members are dropped (see [`RouterSettings::drop_unreachable`]).
    pub fn drop_unreachable(mut self, on: bool) -> Self {
        self.drop_unreachable = on;
        self
    }

    /// Checks the settings; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let RoutingLogic::ConsistentHashing {
            virtual_nodes_factor,
        } = self.logic
        {
            check_factor(virtual_nodes_factor)?;
        }
        if self.roles.len() > MAX_ROLES {
            return Err(SettingsError::TooManyRoles(self.roles.len()));
        }
        if let Some(bad) = self.roles.iter().find(|r| Role::new(r).is_err()) {
            return Err(SettingsError::Role(bad.clone()));
        }
        Ok(())
    }
}

fn random_seed() -> u64 {
    RandomState::new().hash_one(0x5eed_u64)
}

fn check_factor(factor: u32) -> Result<(), SettingsError> {
    if (1..=MAX_VIRTUAL_NODES_FACTOR).contains(&factor) {
        Ok(())
    } else {
        Err(SettingsError::VirtualNodesFactor(factor))
    }
}

/// Router settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `virtual_nodes_factor` is 0 or too large.
    #[error("virtual-nodes-factor must be 1 to {MAX_VIRTUAL_NODES_FACTOR}, not {0}")]
    VirtualNodesFactor(u32),
    /// A role name is empty, longer than [`MAX_ROLE_LEN`] bytes, or contains NUL.
    #[error("roles: {0:?} is not a role name (1 to {MAX_ROLE_LEN} bytes of UTF-8 without NUL)")]
    Role(String),
    /// More roles than a member can have: no member could ever match.
    #[error("roles: {0} roles given, but a member has at most {MAX_ROLES}")]
    TooManyRoles(usize),
    /// An adaptive router made without the cluster metrics it weighs members by.
    #[error("logic: adaptive load balancing needs the cluster metrics (Router::with_metrics)")]
    MetricsRequired,
}

/// The members a router may pick, in address order (sans-IO).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routees {
    members: Vec<UniqueAddress>,
}

impl Routees {
    /// The members of `members` that are eligible under `settings` (see the [module
    /// docs](self)), as seen by the node `self_address`; `unreachable` lists the members
    /// flagged unreachable ([`ClusterState`]'s lists fit as they are).
    pub fn eligible(
        settings: &RouterSettings,
        members: &[Member],
        unreachable: &[Member],
        self_address: UniqueAddress,
    ) -> Routees {
        let mut eligible: Vec<UniqueAddress> = members
            .iter()
            .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::WeaklyUp))
            .filter(|m| settings.roles.iter().all(|r| m.has_role(r)))
            .filter(|m| settings.allow_local || m.address != self_address)
            .filter(|m| {
                !settings.drop_unreachable || !unreachable.iter().any(|u| u.address == m.address)
            })
            .map(|m| m.address)
            .collect();
        // The caller's order is not trusted: every node must list the same routees alike.
        eligible.sort_unstable();
        eligible.dedup();
        Routees { members: eligible }
    }

    /// The routees of `state`, as its node sees them.
    pub fn of_state(settings: &RouterSettings, state: &ClusterState) -> Routees {
        Routees::eligible(
            settings,
            &state.members,
            &state.unreachable,
            state.self_address,
        )
    }

    /// The routees in address order.
    pub fn as_slice(&self) -> &[UniqueAddress] {
        &self.members
    }

    /// Their socket addresses, in address order.
    pub fn socket_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.socket_addr()).collect()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True if the member at `addr` (any incarnation) is a routee.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.members.iter().any(|m| m.same_address(addr))
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// splitmix64's finalizer: FNV-1a alone changes only the low bits for keys that differ in
/// their last byte (`user-1`, `user-2`), which would put such keys next to each other on the
/// ring; the mixer spreads every input bit over the whole word.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The position of `key` on a consistent-hashing ring: FNV-1a 64 of the bytes, finished
/// with splitmix64's mixer. Fixed (not `std`'s hasher, which may change between Rust
/// versions), so every process and platform computes the same value, and a program in
/// another language can too.
pub fn key_hash(key: &[u8]) -> u64 {
    mix(fnv1a(FNV_OFFSET, key))
}

/// The position of a routee's `vnode`-th point: [`key_hash`] of the socket address in a
/// fixed encoding (4 or 6, the IP's bytes, the port big-endian) followed by `vnode`
/// little-endian. Not the incarnation: a node restarted on the same address owns the same
/// keys again, as Pekko's group routees do.
fn point_hash(addr: SocketAddr, vnode: u32) -> u64 {
    let h = match addr.ip() {
        IpAddr::V4(ip) => fnv1a(fnv1a(FNV_OFFSET, &[4]), &ip.octets()),
        IpAddr::V6(ip) => fnv1a(fnv1a(FNV_OFFSET, &[6]), &ip.octets()),
    };
    let h = fnv1a(h, &addr.port().to_be_bytes());
    mix(fnv1a(h, &vnode.to_le_bytes()))
}

/// A consistent-hashing ring over routees (sans-IO): `virtual_nodes_factor` points per
/// routee, a key owned by the routee of the first point at or after its [`key_hash`],
/// wrapping around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRing {
    /// (position, index into `routees`), sorted; ties (never seen in practice) by index, so
    /// the order does not depend on the order routees were given in.
    points: Vec<(u64, u32)>,
    routees: Vec<UniqueAddress>,
}

impl HashRing {
    /// The ring of `routees` (any order; one entry per socket address is kept, the lowest
    /// incarnation) with `virtual_nodes_factor` points each, 1 to
    /// [`MAX_VIRTUAL_NODES_FACTOR`].
    pub fn new(
        routees: &[UniqueAddress],
        virtual_nodes_factor: u32,
    ) -> Result<HashRing, SettingsError> {
        check_factor(virtual_nodes_factor)?;
        let mut routees = routees.to_vec();
        routees.sort_unstable();
        // Two incarnations at one address would own the same points: the destination is the
        // same socket address either way, so keep one.
        routees.dedup_by(|b, a| a.socket_addr() == b.socket_addr());
        let mut points = Vec::with_capacity(routees.len() * virtual_nodes_factor as usize);
        for (i, r) in routees.iter().enumerate() {
            let addr = r.socket_addr();
            // At most 4,096 members × 1,000 points: indices fit in u32.
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            points.extend((0..virtual_nodes_factor).map(|v| (point_hash(addr, v), index)));
        }
        points.sort_unstable();
        Ok(HashRing { points, routees })
    }

    /// The routee that owns `key`; `None` if the ring is empty.
    pub fn lookup(&self, key: &[u8]) -> Option<UniqueAddress> {
        self.lookup_hash(key_hash(key))
    }

    /// The routee that owns the position `hash` (a [`key_hash`]); `None` if the ring is
    /// empty.
    pub fn lookup_hash(&self, hash: u64) -> Option<UniqueAddress> {
        let i = self.points.partition_point(|(p, _)| *p < hash);
        let (_, owner) = self.points.get(i).or_else(|| self.points.first())?;
        self.routees.get(*owner as usize).copied()
    }

    /// The routees on the ring, in address order.
    pub fn routees(&self) -> &[UniqueAddress] {
        &self.routees
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True if the ring has no points (no routees).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Routees plus the logic's state (sans-IO): feed it membership with
/// [`RouteTable::update`], ask it with [`RouteTable::route`] or [`RouteTable::next`].
#[derive(Debug, Clone)]
pub struct RouteTable {
    settings: RouterSettings,
    routees: Routees,
    /// Rebuilt only when the routees change; `Some` for consistent hashing only.
    ring: Option<HashRing>,
    /// Round-robin position (also consistent hashing's picks without a key).
    turn: u64,
    /// splitmix64 state for [`RoutingLogic::Random`] and
    /// [`RoutingLogic::AdaptiveLoadBalancing`].
    rng: u64,
    /// The weights from the latest metrics, by node ([`RouteTable::set_metrics`]).
    weights: std::collections::BTreeMap<UniqueAddress, u32>,
    /// The routees weighted; `Some` for adaptive load balancing only.
    weighted: Option<WeightedRoutees>,
}

impl RouteTable {
    /// A table without routees until the first [`RouteTable::update`]; fails on invalid
    /// settings.
    pub fn new(settings: RouterSettings) -> Result<RouteTable, SettingsError> {
        settings.validate()?;
        let ring = match settings.logic {
            RoutingLogic::ConsistentHashing {
                virtual_nodes_factor,
            } => Some(HashRing::new(&[], virtual_nodes_factor)?),
            _ => None,
        };
        let rng = match settings.logic {
            RoutingLogic::Random { seed } | RoutingLogic::AdaptiveLoadBalancing { seed, .. } => {
                seed
            }
            _ => 0,
        };
        let weighted = matches!(settings.logic, RoutingLogic::AdaptiveLoadBalancing { .. })
            .then(WeightedRoutees::default);
        Ok(RouteTable {
            settings,
            routees: Routees::default(),
            ring,
            turn: 0,
            rng,
            weights: Default::default(),
            weighted,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// Recomputes the routees from a member list as the node `self_address` sees it (see
    /// [`Routees::eligible`]). Returns true if they changed (and the ring was rebuilt).
    pub fn update(
        &mut self,
        members: &[Member],
        unreachable: &[Member],
        self_address: UniqueAddress,
    ) -> bool {
        self.set_routees(Routees::eligible(
            &self.settings,
            members,
            unreachable,
            self_address,
        ))
    }

    /// [`RouteTable::update`] from a [`ClusterState`].
    pub fn update_from(&mut self, state: &ClusterState) -> bool {
        self.update(&state.members, &state.unreachable, state.self_address)
    }

    /// Replaces the routees (for callers that choose them another way). Returns true if they
    /// changed.
    pub fn set_routees(&mut self, routees: Routees) -> bool {
        if routees == self.routees {
            return false;
        }
        if let Some(ring) = &mut self.ring {
            if let RoutingLogic::ConsistentHashing {
                virtual_nodes_factor,
            } = self.settings.logic
            {
                // The factor was validated in `new`, so this cannot fail; keep the old ring
                // rather than panic if it somehow did.
                if let Ok(r) = HashRing::new(routees.as_slice(), virtual_nodes_factor) {
                    *ring = r;
                }
            }
        }
        self.routees = routees;
        self.reweigh();
        true
    }

    /// Takes the latest metrics of the nodes (as [`ClusterMetrics::current`] or
    /// [`MetricsGossip::nodes`](crate::metrics::MetricsGossip::nodes) give them) and
    /// reweighs the routees, for [`RoutingLogic::AdaptiveLoadBalancing`]; other logics ignore
    /// them. Nodes that are not routees count too: weights are relative to the least free
    /// node with metrics, as in Pekko. Returns true if a routee's weight changed.
    pub fn set_metrics(&mut self, metrics: &[NodeMetrics]) -> bool {
        let RoutingLogic::AdaptiveLoadBalancing { selector, .. } = self.settings.logic else {
            return false;
        };
        let before = self.weighted.clone();
        self.weights = weights(&selector.capacities(metrics));
        self.reweigh();
        before != self.weighted
    }

    /// Recomputes the weighted routees from the routees and the weights.
    fn reweigh(&mut self) {
        if let Some(w) = &mut self.weighted {
            *w = WeightedRoutees::new(self.routees.as_slice(), &self.weights);
        }
    }

    /// The routees with their weights, for [`RoutingLogic::AdaptiveLoadBalancing`].
    pub fn weighted(&self) -> Option<&WeightedRoutees> {
        self.weighted.as_ref()
    }

    /// The current routees.
    pub fn routees(&self) -> &Routees {
        &self.routees
    }

    /// The consistent-hashing ring, for [`RoutingLogic::ConsistentHashing`].
    pub fn ring(&self) -> Option<&HashRing> {
        self.ring.as_ref()
    }

    /// The routee for a message with `key`: under consistent hashing, the key's owner; under
    /// the other logics the key is ignored and this is [`RouteTable::next`]. `None` if there
    /// are no routees.
    pub fn route(&mut self, key: &[u8]) -> Option<UniqueAddress> {
        match &self.ring {
            Some(ring) => ring.lookup(key),
            None => self.next(),
        }
    }

    /// The routee for a message without a key: the next in turn (round-robin, and consistent
    /// hashing, where Pekko would drop a message without a key), a random one, or one drawn by
    /// weight (adaptive load balancing). `None` if there are no routees.
    // Not `Iterator::next`: `None` means no routees now, not the end; a later update may
    // bring some.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<UniqueAddress> {
        let n = self.routees.len();
        if n == 0 {
            return None;
        }
        let i = match self.settings.logic {
            RoutingLogic::Random { .. } => {
                let draw = crate::metrics::splitmix(&mut self.rng);
                // Multiply-shift instead of `%`: no modulo bias, no division.
                crate::metrics::scale(draw, n as u64) as usize
            }
            RoutingLogic::AdaptiveLoadBalancing { .. } => {
                let draw = crate::metrics::splitmix(&mut self.rng);
                // The weighted routees are the routees, in the same order.
                return self.weighted.as_ref().and_then(|w| w.pick(draw));
            }
            RoutingLogic::RoundRobin | RoutingLogic::ConsistentHashing { .. } => {
                let i = (self.turn % n as u64) as usize;
                self.turn = self.turn.wrapping_add(1);
                i
            }
        };
        self.routees.as_slice().get(i).copied()
    }
}

/// Where [`Router::send`] put a message.
#[must_use = "a message routed to this node was not sent: handle it here"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Sent to the member at this address.
    Remote(SocketAddr),
    /// The router picked this node (only with [`RouterSettings::allow_local`]). The
    /// transport does not deliver to its own node, so the message was **not** sent: the
    /// caller handles it here.
    Local(SocketAddr),
}

impl Routed {
    /// The address the router picked.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Routed::Remote(a) | Routed::Local(a) => *a,
        }
    }
}

/// A message could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No member is eligible now (none Up with the roles, all unreachable, or this node is
    /// not a member yet or any more). Pekko's routers drop the message then; here the
    /// caller decides whether to retry.
    #[error("no routees: no member is eligible for this router now")]
    NoRoutees,
    /// The transport refused the message for the member the router picked.
    #[error("sending to {to} failed: {source}")]
    Send {
        /// The member the router picked.
        to: SocketAddr,
        /// Why the transport refused.
        #[source]
        source: SendError,
    },
}

/// A router over a [`Cluster`]'s members: a [`RouteTable`] that follows membership.
///
/// Before every pick it compares the cluster's members and unreachable list with the ones
/// it last saw and recomputes the routees if they differ (a comparison of two short lists;
/// the consistent-hashing ring is rebuilt only when the routees change). So a pick never
/// uses a membership older than the node's own view at that moment. Shareable between
/// tasks (`&self` methods, a lock never held across an await).
///
/// Holding a router holds a [`Cluster`] handle: the node does not leave on its own while
/// the router exists (see [`Cluster`]); shut it down with [`Cluster::shutdown`].
#[derive(Debug)]
pub struct Router {
    cluster: Cluster,
    /// Where an adaptive router takes its metrics from.
    metrics: Option<ClusterMetrics>,
    inner: Mutex<Followed>,
}

/// The table and the membership it was computed from.
#[derive(Debug)]
struct Followed {
    members: Vec<Member>,
    unreachable: Vec<Member>,
    /// The [`ClusterMetrics::version`] the table's weights come from.
    metrics_version: Option<u64>,
    table: RouteTable,
}

impl Router {
    /// A router over `cluster`'s members; fails on invalid settings, and for
    /// [`RoutingLogic::AdaptiveLoadBalancing`], which needs [`Router::with_metrics`].
    pub fn new(cluster: Cluster, settings: RouterSettings) -> Result<Router, SettingsError> {
        if matches!(settings.logic, RoutingLogic::AdaptiveLoadBalancing { .. }) {
            return Err(SettingsError::MetricsRequired);
        }
        Router::build(cluster, settings, None)
    }

    /// A router over `cluster`'s members that weighs them by `metrics` (for
    /// [`RoutingLogic::AdaptiveLoadBalancing`]; other logics ignore the metrics). Before
    /// each pick the router takes the latest table if it has changed. Fails on invalid
    /// settings.
    pub fn with_metrics(
        cluster: Cluster,
        settings: RouterSettings,
        metrics: &ClusterMetrics,
    ) -> Result<Router, SettingsError> {
        let adaptive = matches!(settings.logic, RoutingLogic::AdaptiveLoadBalancing { .. });
        Router::build(cluster, settings, adaptive.then(|| metrics.clone()))
    }

    fn build(
        cluster: Cluster,
        settings: RouterSettings,
        metrics: Option<ClusterMetrics>,
    ) -> Result<Router, SettingsError> {
        let mut table = RouteTable::new(settings)?;
        let state = cluster.state();
        table.update_from(&state);
        Ok(Router {
            cluster,
            metrics,
            inner: Mutex::new(Followed {
                members: state.members,
                unreachable: state.unreachable,
                metrics_version: None,
                table,
            }),
        })
    }

    /// The cluster the router follows.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The settings.
    pub fn settings(&self) -> RouterSettings {
        self.with_table(|t| t.settings().clone())
    }

    /// The routees now, in address order.
    pub fn routees(&self) -> Vec<SocketAddr> {
        self.with_table(|t| t.routees().socket_addrs())
    }

    /// The routees now with their weights, in address order, for
    /// [`RoutingLogic::AdaptiveLoadBalancing`] (`None` for other logics).
    pub fn weights(&self) -> Option<Vec<(SocketAddr, u64)>> {
        self.with_table(|t| {
            t.weighted().map(|w| {
                let addrs = w.routees().iter().map(|a| a.socket_addr());
                addrs.zip(w.weights()).collect()
            })
        })
    }

    /// The member for a message with `key` ([`RouteTable::route`]); `None` if there are no
    /// routees. May be this node (see [`RouterSettings::allow_local`]).
    pub fn route(&self, key: &[u8]) -> Option<SocketAddr> {
        self.with_table(|t| t.route(key)).map(|a| a.socket_addr())
    }

    /// The member for a message without a key ([`RouteTable::next`]); `None` if there are
    /// no routees.
    pub fn next(&self) -> Option<SocketAddr> {
        self.with_table(|t| t.next()).map(|a| a.socket_addr())
    }

    /// Sends `message` to the member for `key` ([`Router::route`]) with [`Cluster::send`]
    /// and says where it went; [`Routed::Local`] if that is this node (not sent).
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        message: &T,
    ) -> Result<Routed, RouteError> {
        let to = self.route(key).ok_or(RouteError::NoRoutees)?;
        self.send_to(to, message).await
    }

    /// Sends `message` to the member for a message without a key ([`Router::next`]).
    pub async fn send_next<T: Serialize + ?Sized>(
        &self,
        message: &T,
    ) -> Result<Routed, RouteError> {
        let to = self.next().ok_or(RouteError::NoRoutees)?;
        self.send_to(to, message).await
    }

    async fn send_to<T: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        message: &T,
    ) -> Result<Routed, RouteError> {
        if self.cluster.self_address().same_address(to) {
            return Ok(Routed::Local(to));
        }
        self.cluster
            .send(to, message)
            .await
            .map(|()| Routed::Remote(to))
            .map_err(|source| RouteError::Send { to, source })
    }

    /// Runs `f` on the table brought up to date with the cluster's membership.
    fn with_table<R>(&self, f: impl FnOnce(&mut RouteTable) -> R) -> R {
        let state = self.cluster.state();
        // A poisoned lock only means another caller panicked mid-pick; the table is still
        // consistent (every update replaces whole fields).
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.members != state.members || inner.unreachable != state.unreachable {
            inner.table.update_from(&state);
            inner.members = state.members;
            inner.unreachable = state.unreachable;
        }
        if let Some(metrics) = &self.metrics {
            let version = metrics.version();
            if inner.metrics_version != Some(version) {
                inner.table.set_metrics(&metrics.current());
                inner.metrics_version = Some(version);
            }
        }
        f(&mut inner.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjell_runtime::core::{AppVersion, RoleSet};

    fn member(i: u32, status: MemberStatus, roles: &[&str]) -> Member {
        let addr = SocketAddr::new([10, 0, (i / 250) as u8, (i % 250) as u8 + 1].into(), 7355);
        let mut set = RoleSet::new();
        for r in roles {
            set.insert(Role::new(r).unwrap()).unwrap();
        }
        let mut m = Member::joining(
            UniqueAddress::new(addr, u64::from(i) + 100),
            set,
            AppVersion::default(),
        );
        m.status = status;
        m
    }

    fn up(n: u32) -> Vec<Member> {
        (0..n).map(|i| member(i, MemberStatus::Up, &[])).collect()
    }

    fn addrs(ms: &[Member]) -> Vec<UniqueAddress> {
        ms.iter().map(|m| m.address).collect()
    }

    #[test]
    fn round_robin_cycles_through_all() {
        let ms = up(5);
        let mut t = RouteTable::new(RouterSettings::default()).unwrap();
        assert!(t.update(&ms, &[], ms[0].address));
        let picks: Vec<_> = (0..10).map(|_| t.next().unwrap()).collect();
        assert_eq!(picks[..5], addrs(&ms)[..]);
        assert_eq!(picks[5..], addrs(&ms)[..]);
        // The key is ignored by round-robin.
        assert_eq!(t.route(b"k"), Some(ms[0].address));
    }

    #[test]
    fn no_routees_no_pick() {
        for logic in [
            RoutingLogic::RoundRobin,
            RoutingLogic::random(),
            RoutingLogic::consistent_hashing(),
            RoutingLogic::adaptive(MetricsSelector::Mix),
        ] {
            let mut t = RouteTable::new(RouterSettings::new(logic)).unwrap();
            assert_eq!(t.next(), None);
            assert_eq!(t.route(b"k"), None);
            // Only Joining members: still none.
            let ms = vec![member(0, MemberStatus::Joining, &[])];
            assert!(!t.update(&ms, &[], ms[0].address));
            assert_eq!(t.route(b"k"), None);
        }
    }

    #[test]
    fn eligibility_rules() {
        use MemberStatus::*;
        let ms = vec![
            member(0, Up, &["a", "b"]),
            member(1, WeaklyUp, &["a", "b", "c"]),
            member(2, Joining, &["a", "b"]),
            member(3, Leaving, &["a", "b"]),
            member(4, Exiting, &["a", "b"]),
            member(5, Down, &["a", "b"]),
            member(6, Up, &["a"]),
            member(7, Up, &["a", "b"]),
            member(8, PreparingForShutdown, &["a", "b"]),
        ];
        let me = ms[0].address;
        let unreachable = vec![ms[7].clone()];
        let all = RouterSettings::default();
        let pick = |s: &RouterSettings| -> Vec<usize> {
            let r = Routees::eligible(s, &ms, &unreachable, me);
            ms.iter()
                .enumerate()
                .filter(|(_, m)| r.as_slice().contains(&m.address))
                .map(|(i, _)| i)
                .collect()
        };
        // Up or WeaklyUp, reachable, any roles.
        assert_eq!(pick(&all), [0, 1, 6]);
        // Every role asked for.
        assert_eq!(pick(&all.clone().roles(["a", "b"])), [0, 1]);
        assert_eq!(pick(&all.clone().roles(["c"])), [1]);
        // Not this node.
        assert_eq!(pick(&all.clone().allow_local(false)), [1, 6]);
        // Unreachable kept.
        assert_eq!(pick(&all.clone().drop_unreachable(false)), [0, 1, 6, 7]);
        // A member flagged unreachable under another incarnation's address is a different
        // member.
        let mut other = ms[6].clone();
        other.address = UniqueAddress::new(other.address.socket_addr(), 1);
        let r = Routees::eligible(&all, &ms, &[other], me);
        assert!(r.contains(ms[6].address.socket_addr()));
    }

    #[test]
    fn routees_do_not_depend_on_input_order() {
        let ms = up(7);
        let mut rev = ms.clone();
        rev.reverse();
        let s = RouterSettings::default();
        assert_eq!(
            Routees::eligible(&s, &ms, &[], ms[0].address),
            Routees::eligible(&s, &rev, &[], ms[0].address)
        );
    }

    #[test]
    fn settings_are_validated() {
        let s = |f| {
            RouterSettings::new(RoutingLogic::ConsistentHashing {
                virtual_nodes_factor: f,
            })
        };
        assert_eq!(
            RouteTable::new(s(0)).unwrap_err(),
            SettingsError::VirtualNodesFactor(0)
        );
        assert!(RouteTable::new(s(MAX_VIRTUAL_NODES_FACTOR + 1)).is_err());
        assert!(RouteTable::new(s(1)).is_ok());
        assert!(HashRing::new(&[], 0).is_err());
        let e = RouteTable::new(RouterSettings::default().roles(["a-much-too-long-role-name"]))
            .unwrap_err();
        assert!(e.to_string().contains("roles"), "{e}");
        assert_eq!(
            RouterSettings::default().roles([""]).validate(),
            Err(SettingsError::Role(String::new()))
        );
        assert_eq!(
            RouterSettings::default()
                .roles(["a", "b", "c", "d"])
                .validate(),
            Err(SettingsError::TooManyRoles(4))
        );
        assert!(s(0)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("virtual-nodes-factor"));
    }

    #[test]
    fn random_picks_every_routee_and_repeats_with_the_seed() {
        let ms = up(4);
        let mut a = RouteTable::new(RouterSettings::new(RoutingLogic::Random { seed: 7 })).unwrap();
        let mut b = a.clone();
        a.update(&ms, &[], ms[0].address);
        b.update(&ms, &[], ms[0].address);
        let pa: Vec<_> = (0..400).map(|_| a.next().unwrap()).collect();
        let pb: Vec<_> = (0..400).map(|_| b.next().unwrap()).collect();
        assert_eq!(pa, pb);
        for m in &ms {
            let n = pa.iter().filter(|p| **p == m.address).count();
            assert!((50..150).contains(&n), "{n} of 400 picks");
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Pinned: the hash is a contract between processes (and releases).
    #[test]
    fn key_hash_is_stable() {
        assert_eq!(key_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(key_hash(b"user-42"), KEY_HASH_USER_42);
        let a: SocketAddr = "10.0.0.1:7355".parse().unwrap();
        assert_eq!(point_hash(a, 3), POINT_HASH_10_0_0_1_7355_3);
    }

    const KEY_HASH_USER_42: u64 = 0x7a15_96f0_e94b_5793;
    const POINT_HASH_10_0_0_1_7355_3: u64 = 0x2b9e_5df2_35fd_e476;

    #[test]
    fn same_key_same_routee_whatever_the_member_order() {
        let ms = up(10);
        let mut shuffled = ms.clone();
        shuffled.reverse();
        shuffled.swap(2, 7);
        let settings = RouterSettings::new(RoutingLogic::consistent_hashing());
        let mut a = RouteTable::new(settings.clone()).unwrap();
        let mut b = RouteTable::new(settings).unwrap();
        // Different "self" too: rings do not depend on who builds them.
        a.update(&ms, &[], ms[0].address);
        b.update(&shuffled, &[], ms[5].address);
        assert_eq!(a.ring(), b.ring());
        for k in 0..10_000u32 {
            let key = format!("key-{k}");
            assert_eq!(a.route(key.as_bytes()), b.route(key.as_bytes()));
        }
    }

    fn owners(ring: &HashRing, keys: usize) -> Vec<UniqueAddress> {
        (0..keys)
            .map(|k| ring.lookup(format!("key-{k}").as_bytes()).unwrap())
            .collect()
    }

    const KEYS: usize = 100_000;

    /// Whichever of ten members leaves, only its keys move, and they are about a tenth.
    #[test]
    fn a_member_leaving_moves_only_its_keys() {
        let all = addrs(&up(10));
        let before = HashRing::new(&all, DEFAULT_VIRTUAL_NODES_FACTOR).unwrap();
        let b = owners(&before, KEYS);
        for gone in &all {
            let rest: Vec<_> = all.iter().copied().filter(|a| a != gone).collect();
            let after = HashRing::new(&rest, DEFAULT_VIRTUAL_NODES_FACTOR).unwrap();
            let a = owners(&after, KEYS);
            let mut moved = 0;
            for (x, y) in b.iter().zip(&a) {
                if x != y {
                    assert_eq!(x, gone, "a key of a remaining member moved");
                    moved += 1;
                } else {
                    assert_ne!(x, gone, "a key stayed with the member that left");
                }
            }
            let share = moved as f64 / KEYS as f64;
            assert!(
                (0.05..=0.15).contains(&share),
                "{gone} left: moved share {share}"
            );
        }
    }

    #[test]
    fn a_member_joining_takes_only_its_share() {
        let all = addrs(&up(11));
        let newcomer = all[10];
        let before = HashRing::new(&all[..10], DEFAULT_VIRTUAL_NODES_FACTOR).unwrap();
        let after = HashRing::new(&all, DEFAULT_VIRTUAL_NODES_FACTOR).unwrap();
        let (b, a) = (owners(&before, KEYS), owners(&after, KEYS));
        let mut moved = 0;
        for (x, y) in b.iter().zip(&a) {
            if x != y {
                assert_eq!(*y, newcomer, "a key moved between old members");
                moved += 1;
            }
        }
        let share = moved as f64 / KEYS as f64;
        // About 1/11 (9.1 %).
        assert!((0.05..=0.15).contains(&share), "moved share {share}");
    }

    #[test]
    fn a_restarted_member_gets_its_keys_back() {
        let all = addrs(&up(5));
        let before = HashRing::new(&all, 10).unwrap();
        let mut again = all.clone();
        again[2] = UniqueAddress::new(all[2].socket_addr(), 999);
        let after = HashRing::new(&again, 10).unwrap();
        for k in 0..1000u32 {
            let key = k.to_le_bytes();
            assert_eq!(
                before.lookup(&key).map(|a| a.socket_addr()),
                after.lookup(&key).map(|a| a.socket_addr())
            );
        }
    }

    #[test]
    fn the_ring_is_rebuilt_only_when_routees_change() {
        let mut ms = up(3);
        let me = ms[0].address;
        let mut t =
            RouteTable::new(RouterSettings::new(RoutingLogic::consistent_hashing())).unwrap();
        assert!(t.update(&ms, &[], me));
        assert_eq!(t.ring().unwrap().len(), 30);
        // A change that leaves the routees alone (a Joining member appears).
        ms.push(member(9, MemberStatus::Joining, &[]));
        assert!(!t.update(&ms, &[], me));
        ms[3].status = MemberStatus::Up;
        assert!(t.update(&ms, &[], me));
        assert_eq!(t.ring().unwrap().len(), 40);
        // Unreachable: dropped, then back.
        let u = vec![ms[1].clone()];
        assert!(t.update(&ms, &u, me));
        assert_eq!(t.routees().len(), 3);
        assert!(t.update(&ms, &[], me));
        assert_eq!(t.routees().len(), 4);
    }

    fn cpu(address: UniqueAddress, combined: f64) -> NodeMetrics {
        NodeMetrics {
            address,
            timestamp_ms: 1,
            metrics: vec![crate::metrics::Metric {
                name: crate::metrics::names::CPU_COMBINED.into(),
                value: combined,
                average: None,
            }],
        }
    }

    #[test]
    fn adaptive_tables_weigh_routees_by_their_metrics() {
        let mut ms = up(4);
        let me = ms[0].address;
        let logic = RoutingLogic::AdaptiveLoadBalancing {
            selector: MetricsSelector::Cpu,
            seed: 11,
        };
        let mut t = RouteTable::new(RouterSettings::new(logic)).unwrap();
        t.update(&ms, &[], me);
        // No metrics yet: uniform.
        assert_eq!(t.weighted().unwrap().weights(), [1, 1, 1, 1]);
        // Capacities 0.25, 0.5, 0.75; the fourth member has no metrics: the mean weight.
        let metrics = [
            cpu(ms[0].address, 0.75),
            cpu(ms[1].address, 0.5),
            cpu(ms[2].address, 0.25),
        ];
        assert!(t.set_metrics(&metrics));
        assert!(!t.set_metrics(&metrics));
        assert_eq!(t.weighted().unwrap().weights(), [1, 2, 3, 2]);
        let mut seen = [0usize; 4];
        for _ in 0..8_000 {
            let p = t.next().unwrap();
            seen[ms.iter().position(|m| m.address == p).unwrap()] += 1;
        }
        for (i, w) in [1.0, 2.0, 3.0, 2.0].into_iter().enumerate() {
            let share = seen[i] as f64 / 8_000.0;
            assert!((share - w / 8.0).abs() < 0.03, "{seen:?}");
        }
        // A key is ignored.
        assert!(t.route(b"k").is_some());
        // The busiest member leaves: the others keep their weights (the departed node's
        // metrics count until the table drops them, as in Pekko).
        ms[0].status = MemberStatus::Leaving;
        assert!(t.update(&ms, &[], me));
        assert_eq!(t.weighted().unwrap().weights(), [2, 3, 2]);
        assert_eq!(t.weighted().unwrap().routees(), t.routees().as_slice());
        for _ in 0..100 {
            assert_ne!(t.next(), Some(ms[0].address));
        }
        assert!(t.set_metrics(&metrics[1..]));
        assert_eq!(t.weighted().unwrap().weights(), [1, 2, 1]);
    }

    #[test]
    fn other_logics_ignore_metrics() {
        let ms = up(2);
        let mut t = RouteTable::new(RouterSettings::default()).unwrap();
        t.update(&ms, &[], ms[0].address);
        assert!(!t.set_metrics(&[cpu(ms[0].address, 0.9)]));
        assert!(t.weighted().is_none());
        assert_eq!(t.next(), Some(ms[0].address));
        assert_eq!(t.next(), Some(ms[1].address));
    }

    #[test]
    fn keyless_picks_under_consistent_hashing_take_turns() {
        let ms = up(3);
        let mut t =
            RouteTable::new(RouterSettings::new(RoutingLogic::consistent_hashing())).unwrap();
        t.update(&ms, &[], ms[0].address);
        let picks: Vec<_> = (0..3).map(|_| t.next().unwrap()).collect();
        assert_eq!(picks, addrs(&ms));
    }
}
