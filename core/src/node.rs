//! The node state machine: ties membership, gossip, the leader and joining together.
//!
//! Call order (as in quinn-proto): after every input — [`Node::handle_message`],
//! [`Node::handle_timeout`], [`Node::handle_lease`] or a command — call [`Node::drain`] (or
//! drain [`Node::poll_transmit`], [`Node::poll_event`] and [`Node::poll_lease`] by hand, in
//! that order), then sleep until [`Node::poll_timeout`] or the next message, whichever comes
//! first.

use crate::buf::Buf;
use crate::room::Room;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::address::UniqueAddress;
use crate::capacity::{self, Capacity};
use crate::config::{Config, ConfigError, Downing};
use crate::delta::History;
use crate::departure::Departure;
use crate::downing::{Decision, Strategy};
use crate::event::{Event, Limit, Limits, Publisher, StopReason};
use crate::gossip::Gossip;
use crate::heartbeat::{self, Heartbeats, MonitorStats};
use crate::join::{JoinAction, JoinProcess, JoinTiming};
use crate::leader::{self, UpRequirements};
use crate::lease::LeaseRequest;
use crate::member::{IllegalTransition, Member, MemberStatus};
use crate::news;
use crate::outbox::{Out, Outbox, Since};
use crate::phi::DetectorSettings;
use crate::random::Rng;
use crate::reachability::ReachabilityStatus;
use crate::recent::Recent;
use crate::resolver::{DowningDecision, Reason, Resolver, Step};
use crate::states::{Slot, States};
use crate::time::{fraction, micros, scaled, Instant};
use crate::timer::{Timer, TimerTable};
use crate::vclock::Causality;
use crate::view::View;
use crate::wire::{self, Compat, DeliveryClass, Incompatibility, Message, WireError};

/// Gossip rounds without gossip from any member after which a member that still hears from
/// some treats itself as removed (see `Node::ignored`).
pub const IGNORED_ROUNDS: u32 = 30;

/// Queued outgoing messages. Drivers drain after every input, so this only has to hold what
/// one input produces; when full, the newest message is dropped and counted. Heartbeat
/// requests never overflow it: those that do not fit stay due and go out on the next call.
pub const OUTBOX_CAPACITY: usize = 14;
/// Exiting or Down nodes whose departure confirmation is remembered.
pub const MAX_DEPARTED: usize = 8;

/// The candidates of one pass of [`Node::select_target`], tried in order until one has any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Members that have not seen the state and were heard from lately (during a partition
    /// those are on this side).
    UnseenHeardLately,
    /// Members that have not seen the state.
    Unseen,
    /// Any valid member.
    Any,
}

/// Random draws a gossip round makes for a valid target before it counts the valid members.
const TARGET_DRAWS: usize = 8;
/// The least time a tombstone is kept before a removal may push it out of the full table
/// (capped at `prune-gossip-tombstones-after`). Only a copy of the state older than its
/// tombstone can bring a removed member back, and gossip from Down members is not merged, so
/// such a copy would be a message in flight this long: QUIC gives up on a connection within
/// the failure detector's bounds, long before. When every tombstone is younger, removals wait
/// ([`Limit::Tombstones`]).
pub const TOMBSTONE_MIN_AGE: Duration = Duration::from_secs(300);
/// Notices (non-membership events) held until polled.
const NOTICES: usize = 4;
/// Leader ticks a Down node waits for its status to spread before stopping (Pekko: 4).
const SELF_DOWN_TICKS: u32 = 4;
/// Leader ticks an Exiting node keeps confirming its exit before it stops anyway: a safety
/// bound. It normally stops sooner, when the leader removes it or when nobody is left to
/// remove it (`Node::nobody_to_confirm_to`).
const EXIT_CONFIRM_TICKS: u32 = 5;
/// Members told directly when a node departs.
const DEPART_GOSSIP_FANOUT: usize = 5;
/// Members sent the resolver's confirmation directly per leader tick while it waits: as many
/// as the outbox holds, so that every ally of a cluster of a dozen sees it at once. (Five a
/// tick left allies of 16-node clusters to gossip rounds for a third tick, past the bound
/// the campaign holds a decision to: seeds 5917, 51102.)
const CONFIRM_PUSH: usize = OUTBOX_CAPACITY;
// `unseen_targets` collects news targets into a vector of this capacity too.
const _: () = assert!(news::FANOUT <= CONFIRM_PUSH);

/// Where this node is in its own life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Not a member and not trying to join.
    Idle,
    /// Trying to join (seed process or waiting for Welcome).
    Joining,
    /// A member of the cluster (any member status, see [`Node::self_member`]).
    Member,
    /// Exiting: confirming its exit to the leader until it is removed, or until every other
    /// member is on its way out too and has seen it Exiting.
    Exiting,
    /// No longer taking part.
    Stopped(StopReason),
}

/// A message ready to send: its bytes are in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Which lane to use.
    pub class: DeliveryClass,
    /// Bytes written to the buffer.
    pub len: usize,
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// No member at that address.
    UnknownMember(SocketAddr),
    /// This node is already a member or already joining.
    AlreadyJoined,
    /// This node is not a member yet.
    NotAMember,
    /// This node has stopped.
    Stopped,
    /// No seed nodes were given.
    NoSeeds,
    /// More seed nodes than the join process holds ([`crate::join::MAX_SEEDS`]). Every node
    /// must see the same list, so none is left out silently.
    TooManySeeds {
        /// Seeds given.
        given: usize,
        /// The most this node takes.
        max: usize,
    },
    /// The status change is not allowed.
    Illegal(IllegalTransition),
    /// This node may not lead, so it cannot found a cluster: it cannot join itself nor be
    /// the first seed node (see [`Config::leader_eligible`]).
    CannotFound,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownMember(a) => write!(f, "no member at {a}"),
            CommandError::AlreadyJoined => f.write_str("this node already joined or is joining"),
            CommandError::NotAMember => f.write_str("this node is not a member yet"),
            CommandError::Stopped => f.write_str("this node has stopped"),
            CommandError::NoSeeds => f.write_str("no seed nodes given"),
            CommandError::TooManySeeds { given, max } => {
                write!(f, "{given} seed nodes given; at most {max} are supported")
            }
            CommandError::Illegal(t) => t.fmt(f),
            CommandError::CannotFound => f.write_str(
                "this node may not lead (leader-eligible = false), so it cannot found a cluster: \
                 it cannot join itself nor be the first seed node",
            ),
        }
    }
}

/// Why an input was rejected. The transport should treat the peer as misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputError {
    /// The bytes do not decode.
    Decode(WireError),
    /// The message claims a sender other than the address it came from.
    SenderMismatch,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Decode(e) => e.fmt(f),
            InputError::SenderMismatch => {
                f.write_str("message claims a sender other than the peer it came from")
            }
        }
    }
}

/// Counters for what the node dropped or refused, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages that did not decode. A join request at a member that may not lead is not
    /// counted however malformed its body: such a member reads only its sender.
    pub decode_errors: u64,
    /// Messages whose claimed sender did not match the transport's peer.
    pub sender_mismatches: u64,
    /// Gossip dropped: for an old incarnation, from a non-member, from an unreachable member,
    /// or not containing this node.
    pub gossip_dropped: u64,
    /// Inputs refused because a capacity would be exceeded.
    pub over_capacity: u64,
    /// Outgoing messages dropped because the outbox was full.
    pub outbox_overflow: u64,
    /// Outgoing messages dropped because the caller's buffer was too small.
    pub buffer_too_small: u64,
    /// Full gossip messages sent.
    pub gossip_full_sent: u64,
    /// Gossip status messages sent.
    pub gossip_status_sent: u64,
    /// Gossip deltas sent (see [`crate::delta`]).
    pub gossip_delta_sent: u64,
    /// Gossip deltas received for a state other than this node's, answered with a status.
    pub gossip_delta_misses: u64,
    /// Gossip rounds run (periodic and speed-up ticks).
    pub gossip_rounds: u64,
}

/// One cluster node's membership state machine, for at most `M` members, `R` reachability
/// records and `H` heartbeat intervals per monitored member. See the [crate docs](crate) for
/// the call order and an example.
pub struct Node<const M: usize, const R: usize, const H: usize = 64> {
    config: Config,
    me: UniqueAddress,
    rng: Rng,
    status: NodeStatus,
    join: JoinProcess,
    // The current gossip state and the one received gossip is decoded into.
    states: States<Gossip<M, R>>,
    timers: TimerTable,
    ring_update_at: Option<Instant>,
    outbox: Outbox,
    refusal: Option<Incompatibility>,
    publisher: Publisher<M>,
    heartbeats: Heartbeats<H>,
    notices: heapless::Deque<Event, NOTICES>,
    departed: heapless::Vec<UniqueAddress, MAX_DEPARTED>,
    ticks_without_convergence: u32,
    /// Since when this node, which may not lead, has seen no member that may (see `follow`).
    cut_off_since: Option<Instant>,
    /// A full-cluster shutdown this node started or joined (see `shutting_down`), or its
    /// way out: Down, or Exiting.
    departure: Departure,
    resolver: Resolver<M>,
    /// Peers heard from lately (see [`crate::recent`]).
    recent: Recent<M>,
    /// Reaper ticks since a member was last heard from.
    silent_ticks: u8,
    /// Reaper ticks since a member last sent gossip or a gossip status (see
    /// [`Node::ignored`]).
    gossip_silent_ticks: u16,
    stats: Stats,
    /// Limits reached and not yet reported as [`Event::LimitReached`].
    limits: Limits,
    generation: u64,
    /// (generation, version digest, seen digest): digests cost a pass over the state and are
    /// needed for every status sent or received.
    digest_cache: Option<(u64, u64, u64)>,
    /// What the timers derive from the state, for one generation (see [`crate::view`]).
    view: Option<View>,
    /// Stamps and recent versions, for gossip deltas (see [`crate::delta`]).
    history: History<M>,
    /// This input made a local change (pushed at once, see `after_input`).
    made_change: bool,
    /// This input brought news that a member is unreachable (pushed at once, see
    /// [`crate::news`]).
    news: bool,
}

impl<const M: usize, const R: usize, const H: usize> fmt::Debug for Node<M, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("me", &self.me)
            .field("status", &self.status)
            .field("members", &self.gossip().members.len())
            .finish_non_exhaustive()
    }
}

impl<const M: usize, const R: usize, const H: usize> Node<M, R, H> {
    /// A buffer of this many bytes always holds any message this node sends or accepts.
    pub const MAX_MESSAGE_LEN: usize = wire::max_message_len(M, R);

    /// What a node of this type can hold (see [`crate::capacity`]).
    pub const CAPACITY: Capacity = Capacity::of(M, R);

    /// What this node declares it can hold when joining: [`Self::CAPACITY`], bounded by
    /// `max-members`.
    pub fn capacity(&self) -> Capacity {
        let members = self
            .config
            .max_members
            .map_or(Self::CAPACITY.members, |m| m.min(Self::CAPACITY.members));
        Capacity {
            members,
            ..Self::CAPACITY
        }
    }

    /// The node `me`: the address it listens on and its incarnation uid (draw the uid at random
    /// at each process start), with `seed` for its random choices. Validates `config`.
    pub fn new(config: Config, me: UniqueAddress, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        if M < 1 || M > u16::MAX as usize || H > u16::MAX as usize || R > u16::MAX as usize {
            return Err(ConfigError {
                key: "capacity",
                reason: "member, record and history capacities must be between 1 and 65,535",
            });
        }
        if R < 1 {
            return Err(ConfigError {
                key: "capacity",
                reason: "a node needs at least one reachability record",
            });
        }
        Ok(Node {
            config,
            me,
            rng: Rng::new(seed),
            status: NodeStatus::Idle,
            join: JoinProcess::new(me.socket_addr()),
            states: States::new(Gossip::new(), Gossip::new()),
            timers: TimerTable::NONE,
            ring_update_at: None,
            outbox: Outbox::default(),
            refusal: None,
            publisher: Publisher::new(),
            heartbeats: Heartbeats::new(),
            notices: heapless::Deque::new(),
            departed: heapless::Vec::new(),
            ticks_without_convergence: 0,
            cut_off_since: None,
            departure: Departure::SERVING,
            resolver: Resolver::new(),
            recent: Recent::default(),
            silent_ticks: 0,
            gossip_silent_ticks: 0,
            stats: Stats::default(),
            limits: Limits::default(),
            generation: 0,
            digest_cache: None,
            view: None,
            history: History::new(),
            made_change: false,
            news: false,
        })
    }

    // ----- read-only views -------------------------------------------------------------

    /// This node's identity.
    pub fn address(&self) -> UniqueAddress {
        self.me
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where this node is in its own life.
    pub fn status(&self) -> NodeStatus {
        self.status
    }

    /// The current gossip state. For the simulator and tests (its type is in the hidden
    /// `testing` module); applications use the views below.
    #[doc(hidden)]
    pub fn gossip(&self) -> &Gossip<M, R> {
        self.states.cur()
    }

    /// Members in address order.
    pub fn members(&self) -> &[Member] {
        &self.gossip().members
    }

    /// This node's member record, once it is a member.
    pub fn self_member(&self) -> Option<&Member> {
        let g = self.gossip();
        // Many rules ask for it on every message and timer: the per-state view has the index.
        match self.view {
            Some(v) if v.generation == self.generation => v.me.and_then(|i| g.members.get(i)),
            _ => g.member(&self.me),
        }
    }

    /// The leader as this node sees it.
    pub fn leader(&self) -> Option<UniqueAddress> {
        leader::leader(self.gossip(), &self.me)
    }

    /// The leader of the members with `role`.
    pub fn role_leader(&self, role: &str) -> Option<UniqueAddress> {
        leader::role_leader(self.gossip(), &self.me, role)
    }

    /// True if this node sees convergence.
    pub fn is_converged(&self) -> bool {
        self.is_member() && self.gossip().is_converged(&self.me, &self.departed)
    }

    /// Members flagged unreachable by some observer (this node excluded).
    pub fn unreachable(&self) -> impl Iterator<Item = &Member> {
        let g = self.gossip();
        g.members
            .iter()
            .filter(move |m| m.address != self.me && !g.reachability().is_reachable(&m.address))
    }

    /// Whether `member` is reachable, as this node's view of the cluster aggregates every
    /// observer's verdict: `Reachable` unless a member that is not Down flags it, `Terminated`
    /// if one knows it is dead (the worst verdict wins). `None` if `member` is not a member in
    /// this node's view.
    pub fn reachability(&self, member: &UniqueAddress) -> Option<ReachabilityStatus> {
        let g = self.gossip();
        g.is_member(member).then(|| g.reachability_of(member))
    }

    /// Failure-detector view of each member this node monitors: phi, time since the last
    /// heartbeat from it, round-trip time.
    pub fn monitored(&self, now: Instant) -> impl Iterator<Item = MonitorStats> + '_ {
        self.heartbeats.stats(now, &self.config.failure_detector)
    }

    /// The inter-arrival mean and standard deviation, in microseconds, of the heartbeat
    /// answers of each monitored member, as its phi detector has seen them (`None` with the
    /// deadline detector): what `fjell fd-chart` plots for a running node.
    pub fn monitored_intervals(
        &self,
    ) -> impl Iterator<Item = (UniqueAddress, Option<(f64, f64)>)> + '_ {
        self.heartbeats.intervals()
    }

    /// A counter that moves whenever this node's membership state may have changed: callers
    /// that inspect the state (tests, metrics exporters) can skip unchanged nodes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Drop and refusal counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The events describing the current state from an empty one (members by status,
    /// unreachable members, leader, role leaders): what a new subscriber replays.
    pub fn replay(&self) -> crate::event::Replay<'_, M, R> {
        crate::event::Replay::new(self.gossip(), self.me)
    }

    /// This node is a member that is not Up yet (Joining or WeaklyUp): one the cluster may
    /// still drop for capacity, or never have heard of.
    fn not_up_yet(&self) -> bool {
        self.self_member()
            .is_some_and(|m| matches!(m.status, MemberStatus::Joining | MemberStatus::WeaklyUp))
    }

    fn is_member(&self) -> bool {
        matches!(self.status, NodeStatus::Member | NodeStatus::Exiting)
    }

    // ----- outputs ---------------------------------------------------------------------

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        // A downing decision comes before the MemberDowned events it caused.
        if matches!(self.notices.front(), Some(Event::Downing(_))) {
            return self.notices.pop_front();
        }
        if self.publisher.pending() {
            let (g, me) = (self.states.cur(), &self.me);
            if let Some(e) = self.publisher.poll(g, me) {
                return Some(e);
            }
        }
        self.notices
            .pop_front()
            .or_else(|| self.limits.take().map(Event::LimitReached))
    }

    /// The next instant at which [`Node::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.status, NodeStatus::Stopped(_)) {
            return None;
        }
        self.timers
            .next_timeout()
            .into_iter()
            .chain(self.join.next_timeout())
            .min()
    }

    /// The next request for the lease of the lease-majority strategy, if any. Answer an
    /// [`LeaseRequest::Acquire`] with [`Node::handle_lease`].
    pub fn poll_lease(&mut self) -> Option<LeaseRequest> {
        self.resolver.poll_request()
    }

    /// Writes the next outgoing message into `buf` (use [`Node::MAX_MESSAGE_LEN`] bytes; a
    /// message that does not fit is dropped and counted in [`Stats::buffer_too_small`]).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.transmit_into(now, buf)
    }

    /// [`Node::poll_transmit`] into a vector that grows to the message (with the `alloc`
    /// feature): it ends as long as the largest message sent, not [`Node::MAX_MESSAGE_LEN`].
    /// The message is `buf[..t.len]`.
    #[cfg(feature = "alloc")]
    pub fn poll_transmit_vec(
        &mut self,
        now: Instant,
        buf: &mut alloc::vec::Vec<u8>,
    ) -> Option<Transmit> {
        self.transmit_into(now, buf)
    }

    pub(crate) fn transmit_into<B: Room + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut B,
    ) -> Option<Transmit> {
        loop {
            let p = self.outbox.pop()?;
            let me = self.me;
            let (version, seen) = self.digests();
            // Only a gossip status carries this node's index; other messages skip the view.
            let me_index = match p.out {
                Out::GossipStatus(_) | Out::StatusReply(_) => self.view().me,
                _ => None,
            };
            let gossip = self.states.cur();
            let history = &self.history;
            // For a delta: the records to send (stamps, and the base's stamp).
            let mut changes = None;
            let msg = match &p.out {
                Out::InitJoin => Message::InitJoin {
                    from: me,
                    compat: self.compat(),
                },
                Out::InitJoinAck => Message::InitJoinAck { from: me },
                Out::InitJoinNack { member } => Message::InitJoinNack {
                    from: me,
                    member: *member,
                },
                Out::Join => Message::Join {
                    from: me,
                    roles: self.config.roles,
                    app_version: self.config.app_version,
                    compat: self.compat(),
                },
                Out::Welcome(uid) => Message::Welcome {
                    from: me,
                    to: UniqueAddress::new(p.to, *uid),
                    gossip,
                },
                Out::GossipStatus(uid) | Out::StatusReply(uid) => Message::GossipStatus {
                    to_uid: *uid,
                    // Past u16 (or not a member): a hint that points nowhere useful.
                    from_index: me_index.map_or(u16::MAX, |i| i.min(usize::from(u16::MAX)) as u16),
                    version,
                    seen,
                    reply: matches!(p.out, Out::StatusReply(_)),
                },
                Out::Gossip(uid) => {
                    self.stats.gossip_full_sent += 1;
                    Message::Gossip {
                        from: me,
                        to: UniqueAddress::new(p.to, *uid),
                        gossip,
                    }
                }
                Out::Delta { uid, since } => {
                    let to = UniqueAddress::new(p.to, *uid);
                    let since = match since {
                        Since::Version(v) => history.since(*v),
                        Since::Previous => history.previous(),
                        Since::Oldest => history.oldest(),
                        Since::Stamp(s) => Some(*s),
                    };
                    match since.filter(|_| history.is_current(self.generation)) {
                        Some(since) => {
                            self.stats.gossip_delta_sent += 1;
                            changes = Some(wire::Changes {
                                stamps: history.stamps(),
                                since,
                                digest: history.members_digest(),
                            });
                            Message::GossipDelta {
                                from: me,
                                to,
                                gossip,
                            }
                        }
                        None => {
                            self.stats.gossip_full_sent += 1;
                            Message::Gossip {
                                from: me,
                                to,
                                gossip,
                            }
                        }
                    }
                }
                Out::Departed => Message::Departed { from: me },
                Out::JoinRefused => {
                    let Some(reason) = self.refusal.take() else {
                        continue;
                    };
                    Message::JoinRefused { from: me, reason }
                }
                Out::VersionRefused => Message::VersionRefused {
                    version: wire::PROTOCOL_VERSION,
                },
                Out::Heartbeat(beat) => Message::Heartbeat(*beat),
            };
            let class = msg.kind().class();
            let written = match msg.emit_changes(now, buf.bytes(), changes) {
                Err(_) if B::GROWS && buf.grow(msg.changes_len(now, changes)) => {
                    msg.emit_changes(now, buf.bytes(), changes)
                }
                written => written,
            };
            match written {
                Ok(len) => {
                    return Some(Transmit {
                        destination: p.to,
                        class,
                        len,
                    })
                }
                Err(_) => {
                    self.stats.buffer_too_small += 1;
                    self.limits.reached(Limit::Buffer);
                }
            }
        }
    }

    /// What this node declares when joining (built on demand: it is rarely needed).
    #[inline(never)]
    fn compat(&self) -> Compat {
        Compat {
            capacity: self.capacity(),
            ..Compat::of(&self.config)
        }
    }

    // Out of line: two dozen callers (code size on a device).
    #[inline(never)]
    fn send(&mut self, to: SocketAddr, out: Out) {
        self.outbox.push(to, out, &mut self.stats, &mut self.limits);
    }

    fn notify(&mut self, e: Event) {
        if self.notices.is_full() {
            self.notices.pop_front();
        }
        let _ = self.notices.push_back(e);
    }

    // ----- commands ---------------------------------------------------------------------

    fn timing(&self) -> JoinTiming {
        JoinTiming {
            seed_node_timeout: self.config.seed_node_timeout,
            retry_join_after: self.config.retry_unsuccessful_join_after,
            give_up_after: self.config.shutdown_after_unsuccessful_join_seed_nodes,
        }
    }

    fn check_can_join(&self) -> Result<(), CommandError> {
        match self.status {
            NodeStatus::Idle => Ok(()),
            NodeStatus::Stopped(_) => Err(CommandError::Stopped),
            _ => Err(CommandError::AlreadyJoined),
        }
    }

    /// Joins the cluster through the seed-node process (notes §8.2). `seeds` must be the same
    /// list, in the same order, on every node: its first entry is the only node that may
    /// found a new cluster, so it must be a node that may lead ([`CommandError::CannotFound`]
    /// otherwise).
    pub fn join_seed_nodes(
        &mut self,
        now: Instant,
        seeds: &[SocketAddr],
    ) -> Result<(), CommandError> {
        self.check_can_join()?;
        if seeds.is_empty() {
            return Err(CommandError::NoSeeds);
        }
        if seeds.len() > crate::join::MAX_SEEDS {
            return Err(CommandError::TooManySeeds {
                given: seeds.len(),
                max: crate::join::MAX_SEEDS,
            });
        }
        // Only the first seed founds, and a node that may not lead cannot move itself Up: as
        // the first seed it would leave every node waiting for a cluster nobody founds.
        if seeds[0] == self.me.socket_addr() && !self.may_lead() {
            return Err(CommandError::CannotFound);
        }
        let t = self.timing();
        let action = self.join.start_seeds(now, seeds, &t);
        self.status = NodeStatus::Joining;
        self.run_join_action(now, action);
        Ok(())
    }

    /// Joins through the member at `addr`; joining one's own address founds a new cluster.
    /// A node that may not lead cannot found one ([`CommandError::CannotFound`]).
    pub fn join(&mut self, now: Instant, addr: SocketAddr) -> Result<(), CommandError> {
        self.check_can_join()?;
        if addr == self.me.socket_addr() && !self.may_lead() {
            return Err(CommandError::CannotFound);
        }
        let t = self.timing();
        let action = self.join.start_join(now, addr, &t);
        self.status = NodeStatus::Joining;
        self.run_join_action(now, action);
        Ok(())
    }

    fn member_at(&self, addr: SocketAddr) -> Result<UniqueAddress, CommandError> {
        if !self.is_member() {
            return Err(match self.status {
                NodeStatus::Stopped(_) => CommandError::Stopped,
                _ => CommandError::NotAMember,
            });
        }
        self.gossip()
            .member_at(addr)
            .map(|m| m.address)
            .ok_or(CommandError::UnknownMember(addr))
    }

    /// Asks the member at `addr` (this node or any other) to leave gracefully: it becomes
    /// Leaving, the leader moves it to Exiting and then removes it.
    pub fn leave(&mut self, now: Instant, addr: SocketAddr) -> Result<(), CommandError> {
        let who = self.member_at(addr)?;
        let status = self.gossip().member(&who).map(|m| m.status);
        if matches!(
            status,
            Some(MemberStatus::Leaving | MemberStatus::Exiting | MemberStatus::Down)
        ) {
            return Ok(()); // already on its way out
        }
        // A local change: pushed at once (see `after_input`).
        self.set_status_local(now, who, MemberStatus::Leaving)?;
        Ok(())
    }

    /// Marks the member at `addr` Down (from any member). The leader removes it once it is
    /// unreachable or has confirmed it stopped; a Down node that sees its status stops.
    pub fn down(&mut self, now: Instant, addr: SocketAddr) -> Result<(), CommandError> {
        let who = self.member_at(addr)?;
        let already = self.gossip().member(&who).map(|m| m.status) == Some(MemberStatus::Down);
        self.set_status_local(now, who, MemberStatus::Down)?;
        if who != self.me && !already {
            // Tell the downed node straight away so it stops serving.
            self.send(who.socket_addr(), Out::Gossip(who.uid()));
        }
        Ok(())
    }

    /// Starts a full-cluster shutdown: every Up member becomes PreparingForShutdown, no one
    /// new is let in, and the leader moves them to ReadyForShutdown.
    pub fn prepare_for_full_cluster_shutdown(&mut self, now: Instant) -> Result<(), CommandError> {
        self.member_at(self.me.socket_addr())?;
        let generation = self.generation;
        self.departure.prepare_for_shutdown();
        let ups: Buf<UniqueAddress, M> = self
            .gossip()
            .members
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .map(|m| m.address)
            .collect();
        let g = self.states.cur_mut();
        for a in &ups {
            let _ = g.set_status(a, MemberStatus::PreparingForShutdown);
        }
        if !ups.is_empty() {
            self.local_change();
            self.after_input(now, generation);
        }
        Ok(())
    }

    fn set_status_local(
        &mut self,
        now: Instant,
        who: UniqueAddress,
        to: MemberStatus,
    ) -> Result<(), CommandError> {
        let generation = self.generation;
        let changed = match self.states.cur_mut().set_status(&who, to) {
            Ok(c) => c,
            Err(crate::gossip::UpdateError::Illegal(t)) => return Err(CommandError::Illegal(t)),
            Err(crate::gossip::UpdateError::UnknownMember) => {
                return Err(CommandError::UnknownMember(who.socket_addr()))
            }
        };
        if changed {
            self.local_change();
            self.after_self_change();
            self.after_input(now, generation);
        }
        Ok(())
    }

    // ----- inputs -----------------------------------------------------------------------

    /// Feeds one message received from `from` (the transport's authenticated peer address).
    // Out of line, as `handle_timeout`: inlined into a caller's loop (a device's main loop),
    // the whole step was, and the loop kept a hundred of its addresses spilled on the stack
    // (1.9 kB of flash at opt-level "s"). One call per input is nothing beside its work.
    #[inline(never)]
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), InputError> {
        let generation = self.generation;
        let result = self.dispatch(now, from, bytes);
        self.after_input(now, generation);
        result
    }

    fn dispatch(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), InputError> {
        if matches!(self.status, NodeStatus::Stopped(_)) {
            return Ok(());
        }
        let takes_joiners = self.may_lead();
        let (cur, incoming) = self.states.both_mut();
        let msg = match Message::parse_received(bytes, cur, incoming, now, takes_joiners) {
            Ok(m) => m,
            Err(WireError::StaleBase) => {
                // Made for another state than ours: tell the sender which one we hold. As a
                // reply: a sender that does not know it sends full gossip, which is also what
                // a sender this node does not count as a member needs (see `on_gossip`).
                self.stats.gossip_delta_misses += 1;
                let sender = self.sender_named(bytes, wire::Kind::GossipDelta, from)?;
                if self.is_member() {
                    self.send(from, Out::StatusReply(sender.uid()));
                }
                return Ok(());
            }
            Err(WireError::JoinRequestUnread { probe }) => {
                // This node may not lead, so it takes no joiners (see `answer_probe`).
                let kind = if probe {
                    wire::Kind::InitJoin
                } else {
                    wire::Kind::Join
                };
                let sender = self.sender_named(bytes, kind, from)?;
                if probe {
                    self.answer_probe(sender);
                }
                return Ok(());
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                if let WireError::UnsupportedVersion { version, kind } = e {
                    // (A node that may not lead sends no VersionRefused: it takes no joiners.)
                    let join = kind == wire::Kind::InitJoin as u8 || kind == wire::Kind::Join as u8;
                    if join && self.may_lead() {
                        self.send(from, Out::VersionRefused);
                        let reason = Incompatibility::ProtocolVersion {
                            cluster: wire::PROTOCOL_VERSION,
                            joiner: version,
                        };
                        self.notify_refusal(from, reason);
                    }
                }
                return Err(InputError::Decode(e));
            }
        };
        if let Some(claimed) = claimed_sender(&msg) {
            if !claimed.same_address(from) {
                self.stats.sender_mismatches += 1;
                return Err(InputError::SenderMismatch);
            }
        }
        // Heartbeats are heard in their arm: their sender's index is known without a search.
        let mut sender = None;
        if let Message::GossipStatus { from_index, .. } = msg {
            sender = self.gossip().index_at_hinted(from, usize::from(from_index));
        } else if matches!(msg, Message::Gossip { .. } | Message::GossipDelta { .. }) {
            sender = self.gossip().index_at(from);
        }
        if let Some(i) = sender {
            self.heard(i);
            self.gossip_silent_ticks = 0;
        }
        match msg {
            Message::InitJoin { from, compat } => self.on_init_join(from, &compat),
            Message::InitJoinAck { from } => {
                let t = self.timing();
                let a = self.join.on_ack(now, from.socket_addr(), &t);
                self.run_join_action(now, a);
            }
            Message::InitJoinNack { from, member } => {
                let a = self.join.on_nack(from.socket_addr(), member);
                self.run_join_action(now, a);
            }
            Message::Join {
                from,
                roles,
                app_version,
                compat,
            } => {
                let joiner = Member {
                    capacity: compat.capacity,
                    leader_eligible: compat.leader_eligible,
                    ..Member::joining(from, roles, app_version)
                };
                self.on_join(joiner, &compat)
            }
            Message::Welcome { from, to, .. } => self.on_welcome(now, from, to),
            Message::GossipStatus {
                to_uid,
                version,
                seen,
                reply,
                ..
            } => self.on_gossip_status(from, sender, to_uid, version, seen, reply),
            Message::Heartbeat(beat) => {
                let s = self.config.failure_detector;
                let beaten = self
                    .heartbeats
                    .on_beat(now, from, &beat, &s, self.generation);
                if let Some(i) = beaten.index.or_else(|| self.gossip().index_at(from)) {
                    self.heard(i);
                }
                if beat.reply {
                    // Answer anyone: an answer is no larger than the heartbeat, and a node
                    // that was just added must be answerable before its Welcome arrives.
                    let me = self.me;
                    let answer = self.heartbeats.answer(now, &beat, &me);
                    self.send(from, Out::Heartbeat(answer));
                }
            }
            Message::Gossip { from, to, .. } | Message::GossipDelta { from, to, .. } => {
                self.on_gossip(now, from, to)
            }
            Message::Departed { from } => self.on_departed(from),
            Message::JoinRefused { from, reason } => {
                self.on_refused(now, from.socket_addr(), reason)
            }
            Message::VersionRefused { version } => {
                let reason = Incompatibility::ProtocolVersion {
                    cluster: version,
                    joiner: wire::PROTOCOL_VERSION,
                };
                self.on_refused(now, from, reason)
            }
        }
        Ok(())
    }

    /// The lease's answer to [`LeaseRequest::Acquire`]: with it this side downs the others;
    /// without it, this side downs itself.
    pub fn handle_lease(&mut self, now: Instant, acquired: bool) {
        if matches!(self.status, NodeStatus::Stopped(_)) {
            return;
        }
        let generation = self.generation;
        let s = self.config.downing;
        let g = self.states.cur();
        if let Some((d, r)) = self.resolver.on_lease(now, acquired, g, generation, &s) {
            self.carry_out(now, d, r);
        }
        self.after_input(now, generation);
    }

    /// The sender a message of `kind` names, read again where the parser stopped before it
    /// ([`WireError::StaleBase`], [`WireError::JoinRequestUnread`]): only if it is the
    /// transport's peer `from`, as for every message that names one.
    fn sender_named(
        &mut self,
        bytes: &[u8],
        kind: wire::Kind,
        from: SocketAddr,
    ) -> Result<UniqueAddress, InputError> {
        match wire::sender_of(bytes, kind) {
            Some(sender) if sender.same_address(from) => Ok(sender),
            _ => {
                self.stats.sender_mismatches += 1;
                Err(InputError::SenderMismatch)
            }
        }
    }

    /// Runs every timer that is due at `now`.
    #[inline(never)]
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.status, NodeStatus::Stopped(_)) {
            return;
        }
        let generation = self.generation;
        // Timers that fire much later than asked mean this node itself did not run (a
        // stop-the-world pause, a starved executor): its peers were not silent, it was.
        let late = self.timers.next_timeout().filter(|t| *t <= now);
        if let Some(late) = late.map(|t| now - t) {
            if late >= fraction(self.config.failure_detector.heartbeat_interval, 2) {
                self.heartbeats.discount(now, late);
            }
        }
        self.run_timers(now);
        self.after_input(now, generation);
    }

    /// What a changed state calls for, once per input: the leader's actions if it converged
    /// ([`Timer::Actions`]); a push of a change this node made, or of news that a member is
    /// unreachable ([`crate::news`]); and, when too few have seen the state, extra gossip
    /// rounds from now rather than from the next regular tick (Pekko waits for that tick), so
    /// it spreads at three rounds per interval from the moment it exists.
    fn after_input(&mut self, now: Instant, generation_before: u64) {
        if self.generation != generation_before && self.actions_due() {
            self.timers.set(Timer::Actions, now);
        }
        let made_change = core::mem::take(&mut self.made_change);
        let news = core::mem::take(&mut self.news);
        let new_version =
            self.is_member() && self.history.record(self.states.cur(), self.generation);
        if new_version && news {
            // Pushed to more than one member, by every node that learns it.
            self.push_news();
        } else if new_version && made_change {
            // This node made the change: push it at once rather than at the next round. (Only
            // the maker: every node pushing each version it learns multiplied the gossip a
            // change costs by ten for a second less of spreading at 100 nodes.)
            self.gossip_round();
        }
        if self.generation != generation_before
            && self.timers.get(Timer::SpeedUp).is_none()
            && self.speed_up_needed()
        {
            self.timers.start_speed_up(self.speed_up_at(now));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        if self.join.next_timeout().is_some_and(|t| t <= now) {
            let t = self.timing();
            let a = self.join.on_timeout(now, &t);
            self.run_join_action(now, a);
        }
        // The reaper before the leader: a decision must not act on a verdict this node's own
        // failure detector has already taken back (both tick once a second, together).
        if self.due(Timer::Reaper, now) {
            self.timers.set(
                Timer::Reaper,
                now + self.config.unreachable_nodes_reaper_interval,
            );
            self.reap(now);
        }
        if self.due(Timer::Leader, now) {
            self.timers
                .set(Timer::Leader, now + self.config.leader_actions_interval);
            self.leader_tick(now);
        }
        if self.due(Timer::Actions, now) {
            self.timers.stop(Timer::Actions);
            if self.actions_due() {
                self.act_on_convergence(now);
            }
        }
        if self.due(Timer::Gossip, now) {
            self.timers
                .set(Timer::Gossip, now + self.config.gossip_interval);
            self.recent.tick(self.gossip().members.len());
            self.gossip_round();
            if self.speed_up_needed() {
                self.timers.start_speed_up(self.speed_up_at(now));
            }
        }
        if self.due(Timer::Heartbeat, now) {
            self.heartbeat_tick(now);
        }
        if self.due(Timer::SpeedUp, now) {
            self.timers.stop(Timer::SpeedUp);
            if self.speed_up_needed() {
                self.gossip_round();
                self.timers.speed_up_ran(self.speed_up_at(now));
            }
        }
    }

    fn due(&self, t: Timer, now: Instant) -> bool {
        self.timers.expired(t, now)
    }

    // ----- join -------------------------------------------------------------------------

    fn run_join_action(&mut self, now: Instant, action: JoinAction) {
        match action {
            JoinAction::Wait => {}
            JoinAction::Probe => {
                let targets: heapless::Vec<SocketAddr, { crate::join::MAX_SEEDS }> =
                    self.join.probe_targets().collect();
                for s in targets {
                    self.send(s, Out::InitJoin);
                }
            }
            JoinAction::SendJoin(to) => self.send(to, Out::Join),
            // Never for a node that may not lead: `join` and `join_seed_nodes` refuse it.
            JoinAction::JoinSelf if self.may_lead() => self.join_self(now),
            JoinAction::JoinSelf => {}
            JoinAction::GiveUp => self.stop(StopReason::JoinGaveUp),
        }
    }

    fn join_self(&mut self, now: Instant) {
        self.join.stop();
        let me = Member {
            capacity: self.capacity(),
            leader_eligible: self.may_lead(),
            ..Member::joining(self.me, self.config.roles, self.config.app_version)
        };
        let g = self.states.cur_mut();
        g.clear();
        let _ = g.add_member(me);
        self.become_member(now);
        self.local_change();
        // A lone founder is converged: move it up at once, so the oldest member is
        // deterministic when seeds start together (Pekko's DeterministicOldestWhenJoining).
        self.leader_tick(now);
    }

    fn become_member(&mut self, now: Instant) {
        self.status = NodeStatus::Member;
        self.silent_ticks = 0;
        self.gossip_silent_ticks = 0;
        self.join.stop();
        // Spread the first gossip tick so nodes started together do not gossip in lockstep.
        // The other periodic timers start on the same tick: with equal intervals (the
        // defaults) a node then wakes once a second for all of them, and steady-state CPU
        // follows the wake-ups as much as the messages.
        let jitter = self
            .rng
            .below(crate::time::micros(self.config.gossip_interval).max(1) as usize)
            as u64;
        let tick = now + Duration::from_micros(jitter);
        self.timers.set(Timer::Gossip, tick);
        self.timers.set(Timer::Leader, tick);
        self.timers.set(Timer::Heartbeat, tick);
        self.timers.set(Timer::Reaper, tick);
        self.changed();
    }

    /// Whether this node is a member a joiner can count on: a member, not leaving, whose own
    /// record is neither Down nor Exiting and, if not yet Up, [acknowledged](Self::acknowledged).
    fn settled_member(&self) -> bool {
        self.status == NodeStatus::Member
            && !self.shutting_down()
            && self.self_member().is_some_and(|m| match m.status {
                MemberStatus::Down | MemberStatus::Exiting => false,
                MemberStatus::Joining | MemberStatus::WeaklyUp => self.acknowledged(),
                _ => true,
            })
    }

    /// A seed probe at a member that may not lead, which takes no joiners: the cluster it
    /// belongs to may have nobody left who could move them Up. It says it cannot, and whether
    /// it is a member: the joiner goes on to its other seeds, and a first seed does not found
    /// a second cluster beside it. The probe's declaration is not read (see
    /// [`WireError::JoinRequestUnread`]), nor is a Join: it is ignored.
    fn answer_probe(&mut self, from: UniqueAddress) {
        let member = self.settled_member();
        self.send(from.socket_addr(), Out::InitJoinNack { member });
    }

    /// A seed probe at a member that may lead (one that may not never reads it:
    /// [`Node::answer_probe`]).
    fn on_init_join(&mut self, from: UniqueAddress, compat: &Compat) {
        // `dispatch` reads no join request for a member that may not lead; the check lets a
        // build without `lead` leave the joiner's path out.
        debug_assert!(
            self.may_lead(),
            "a join request read by a member that may not lead"
        );
        if !self.may_lead() {
            return;
        }
        if let Some(reason) = self.compat().check(compat) {
            self.refuse(from, reason);
            return;
        }
        let can_take = self.settled_member();
        // A new incarnation of a member takes its place (the old one is downed when it sends
        // its Join): no room needed.
        let replaces = self.gossip().member_at(from.socket_addr()).is_some();
        if can_take && !replaces {
            if let Err(reason) = capacity::admits(self.members(), self.capacity(), compat.capacity)
            {
                self.refuse(from, reason);
                return;
            }
        }
        let out = if can_take {
            Out::InitJoinAck
        } else {
            Out::InitJoinNack { member: false }
        };
        self.send(from.socket_addr(), out);
    }

    /// Whether another member that is not Down has seen this node's current state, or this
    /// node is the only member. A member not yet Up (Joining or WeaklyUp) that is not
    /// acknowledged answers `InitJoinNack` (Pekko takes joiners at any initialized node): the
    /// node that welcomed it may have crashed or been downed before anyone else heard of it,
    /// leaving it a member only in its own eyes, and a joiner it took in would be stuck with it
    /// (campaign seeds 68219 and 10941).
    fn acknowledged(&self) -> bool {
        let g = self.gossip();
        g.members().len() == 1
            || g.seen().iter().any(|a| {
                *a != self.me && g.member(a).is_some_and(|m| m.status != MemberStatus::Down)
            })
    }

    fn refuse(&mut self, from: UniqueAddress, reason: Incompatibility) {
        // One refusal in flight at a time keeps the outbox small; a joiner that misses its
        // refusal retries and gets it then.
        if self.refusal.is_none() && !self.outbox.is_full() {
            self.refusal = Some(reason.clone());
            self.send(from.socket_addr(), Out::JoinRefused);
        } else {
            self.stats.outbox_overflow += 1;
            self.limits.reached(Limit::Outbox);
        }
        self.notify_refusal(from.socket_addr(), reason);
    }

    /// Reports a refused join request, unless the same report is already queued or the queue
    /// is full: anyone can send join requests, and a flood of them must not push out the
    /// notices that matter (a downing decision, this node stopping).
    fn notify_refusal(&mut self, from: SocketAddr, reason: Incompatibility) {
        let e = Event::JoinRequestRefused { from, reason };
        if !self.notices.is_full() && !self.notices.iter().any(|n| *n == e) {
            let _ = self.notices.push_back(e);
        }
    }

    fn on_refused(&mut self, now: Instant, by: SocketAddr, reason: Incompatibility) {
        if self.status != NodeStatus::Joining {
            return;
        }
        if reason == Incompatibility::Removed && self.join.joining_to() == Some(by) {
            // Removed while its Welcome was lost: this incarnation is over.
            self.notify(Event::JoinRefused { by, reason });
            self.stop(StopReason::Removed);
            return;
        }
        let t = self.timing();
        let temporary = matches!(reason, Incompatibility::Capacity { .. });
        match self.join.on_refused(now, by, &t, temporary) {
            Some(action) => self.run_join_action(now, action),
            None => {
                self.join.stop();
                self.status = NodeStatus::Idle;
                self.notify(Event::JoinRefused { by, reason });
            }
        }
    }

    /// A join request at a member that may lead (one that may not never reads it).
    fn on_join(&mut self, joiner: Member, compat: &Compat) {
        // As in `on_init_join`.
        debug_assert!(
            self.may_lead(),
            "a join request read by a member that may not lead"
        );
        if !self.may_lead() {
            return;
        }
        if let Some(reason) = self.compat().check(compat) {
            self.refuse(joiner.address, reason);
            return;
        }
        if self.status != NodeStatus::Member || self.shutting_down() {
            return;
        }
        if self
            .self_member()
            .is_none_or(|m| matches!(m.status, MemberStatus::Down | MemberStatus::Exiting))
        {
            return;
        }
        let who = joiner.address;
        let existing = self
            .gossip()
            .member_at(who.socket_addr())
            .map(|m| (m.address, m.status));
        match existing {
            Some((a, _)) if a == who => {
                // A retry after a lost Welcome.
                self.send(who.socket_addr(), Out::Welcome(who.uid()));
            }
            Some((old, MemberStatus::Exiting)) => {
                // A new incarnation of a member that was leaving gracefully (a rolling
                // restart): the old one has stopped, which confirms its exit as its own
                // Departed would. The leader removes it like any exited member (it has the
                // old one's own Departed, or its failure detector flags the stopped
                // incarnation): nobody reports a graceful leaver downed, and the joiner's
                // retry gets in after that. (Marking it Down would not remove it sooner: a
                // Down member is removed on the same evidence.)
                self.on_departed(old);
            }
            Some((old, status)) => {
                // A new incarnation on the same address: the old one is dead. Mark it
                // Terminated and Down; the leader removes it, and the joiner's retry gets in.
                let g = self.states.cur_mut();
                let changed_r = g
                    .observe(self.me, old, ReachabilityStatus::Terminated)
                    .unwrap_or_else(|_| {
                        self.stats.over_capacity += 1;
                        self.limits.reached(Limit::ReachabilityRecords);
                        false
                    });
                let changed_s = status != MemberStatus::Down
                    && g.set_status(&old, MemberStatus::Down).unwrap_or(false);
                if changed_r || changed_s {
                    self.local_change();
                }
            }
            None if self.gossip().is_tombstoned(&who) => {
                // An incarnation that was removed never returns. Say so, or it would retry
                // for good (its Welcome was lost before it was removed).
                self.refuse(who, Incompatibility::Removed)
            }
            None => {
                if let Err(reason) =
                    capacity::admits(self.members(), self.capacity(), joiner.capacity)
                {
                    self.refuse(who, reason);
                    return;
                }
                // The Welcome must decode at the joiner: the table within its records, compacted
                // if need be, but without losing a flagged member.
                let limit = usize::from(joiner.capacity.records);
                let g = self.states.cur_mut();
                if g.reachability.rows().len() > limit {
                    if g.reachability().flagged_subjects(|_| true).count() > limit {
                        let reason =
                            capacity::full(self.members(), self.capacity(), joiner.capacity);
                        self.refuse(who, reason);
                        return;
                    }
                    g.reachability.compact(&g.members, limit);
                }
                self.admit(joiner);
            }
        }
    }

    fn admit(&mut self, joiner: Member) {
        let who = joiner.address;
        match self.states.cur_mut().add_member(joiner) {
            Ok(true) => {
                self.local_change();
                self.send(who.socket_addr(), Out::Welcome(who.uid()));
            }
            Ok(false) => {}
            // `capacity::admits` checked the room, and `M` bounds every member's capacity.
            Err(_) => {
                self.stats.over_capacity += 1;
                self.limits.reached(Limit::Members);
            }
        }
    }

    fn on_welcome(&mut self, now: Instant, from: UniqueAddress, to: UniqueAddress) {
        if self.status != NodeStatus::Joining
            || to != self.me
            || self.join.joining_to() != Some(from.socket_addr())
        {
            return;
        }
        let inc = self.states.incoming();
        if !inc.is_member(&self.me) || !inc.is_member(&from) {
            self.stats.gossip_dropped += 1;
            return;
        }
        self.states.adopt_incoming();
        self.states.cur_mut().add_seen(self.me);
        self.become_member(now);
        self.send(from.socket_addr(), Out::Gossip(from.uid()));
        self.after_self_change();
    }

    // ----- gossip -----------------------------------------------------------------------

    /// A removed incarnation is still gossiping: it missed its Down (it was cut off when it
    /// was downed, and nobody that knew watched it come back). Send it this node's gossip,
    /// whose tombstone stops it. Akka relies on Artery's quarantine for this; without it the
    /// removed node lives on and can later decide against the cluster (campaign seed 2621).
    /// One answer per message the removed node sends, never more.
    fn tell_removed(&mut self, who: Option<UniqueAddress>) {
        if let Some(who) = who.filter(|w| self.is_member() && self.gossip().is_tombstoned(w)) {
            self.send(who.socket_addr(), Out::Gossip(who.uid()));
        }
    }

    /// Whether gossip from `from` may be merged: a member that is not Down and that this node
    /// does not flag. A Down member may hold a state from before removals whose tombstones are
    /// gone by the time it is heard again (cut off while the down-removal margin held it), and
    /// it has nothing the cluster needs: it is told instead ([`Node::tell_down`]).
    fn valid_peer(&mut self, from: &UniqueAddress) -> bool {
        let i = self.gossip().index_of(from);
        i.is_ok_and(|i| self.valid_peer_at(i))
    }

    /// [`Self::valid_peer`] for the member at index `i`, without searches: a gossip status
    /// arrives every round.
    fn valid_peer_at(&mut self, i: usize) -> bool {
        let me = self.view().me;
        let g = self.gossip();
        g.members
            .get(i)
            .is_some_and(|m| m.status != MemberStatus::Down)
            && me.is_none_or(|o| {
                g.reachability().status_by_index(o, i) == ReachabilityStatus::Reachable
            })
    }

    /// A member this node has Down sent gossip or a status (`knows`: its gossip already says
    /// it is Down): send it the state that says so, once per message, so it stops.
    fn tell_down(&mut self, from: UniqueAddress, knows: bool) {
        let down = self
            .gossip()
            .member(&from)
            .is_some_and(|m| m.status == MemberStatus::Down);
        if down && !knows && self.is_member() {
            self.send(from.socket_addr(), Out::Gossip(from.uid()));
        }
    }

    /// A gossip status from `from`, the member at index `index` of the current state if any.
    fn on_gossip_status(
        &mut self,
        from: SocketAddr,
        index: Option<usize>,
        to_uid: u64,
        version: u64,
        seen: u64,
        reply: bool,
    ) {
        let valid = index
            .is_some_and(|i| self.is_member() && to_uid == self.me.uid() && self.valid_peer_at(i));
        let sender = index
            .and_then(|i| self.gossip().members.get(i))
            .map(|m| m.address);
        let Some(sender) = sender.filter(|_| valid) else {
            self.stats.gossip_dropped += 1;
            let removed = self
                .gossip()
                .tombstones()
                .iter()
                .find(|t| t.address.socket_addr() == from)
                .map(|t| t.address);
            self.tell_removed(removed);
            if let Some(s) = sender.filter(|_| to_uid == self.me.uid()) {
                // A status cannot say whether the sender knows it is Down.
                self.tell_down(s, false);
            }
            return;
        };
        let (ours, our_seen) = self.digests();
        let uid = sender.uid();
        // (Contact counts only for a decision, which only a node that may lead takes.)
        if ours == version && self.may_lead() {
            // The peer holds this very version: it has seen it.
            let (g, me) = (self.states.cur(), self.me);
            self.resolver.note_contact_of(g, &me, &sender);
        }
        if reply && (ours, our_seen) != (version, seen) {
            // An answer to our status, or to a delta that missed: the peer does not know our
            // version, or could not rebuild our state from its own. Full gossip always
            // applies, so the exchange ends here (a delta could miss again, for good).
            self.send(from, Out::Gossip(uid));
        } else if ours == version {
            if our_seen != seen {
                // Only the seen sets differ: a delta without records.
                let since = Since::Version(ours);
                self.send(from, Out::Delta { uid, since });
            }
        } else if self.history.since(version).is_some() {
            // A version this node held: the peer is behind.
            let since = Since::Version(version);
            self.send(from, Out::Delta { uid, since });
        } else {
            // Newer, concurrent, or too old to remember: Pekko's rule is that the newer side
            // sends, so answer with ours; a peer that knows it sends a delta against it.
            self.send(from, Out::StatusReply(uid));
        }
    }

    fn on_gossip(&mut self, now: Instant, from: UniqueAddress, to: UniqueAddress) {
        if !self.is_member() || to != self.me || !self.valid_peer(&from) {
            self.stats.gossip_dropped += 1;
            // Answer only a sender that counts this node in: one that has it Down, removed or
            // not at all needs nothing from it, and two nodes that each had the other out would
            // otherwise answer each other for good.
            let inc = self.states.incoming();
            let counts_me = inc
                .member(&self.me)
                .is_some_and(|m| m.status != MemberStatus::Down);
            let knows = inc
                .member(&from)
                .is_some_and(|m| m.status == MemberStatus::Down);
            if to == self.me && counts_me {
                self.tell_removed(Some(from));
                self.tell_down(from, knows);
                self.tell_unknown(from);
            }
            return;
        }
        let me = self.me;
        if self.may_lead() {
            self.resolver.note_contact(self.states.incoming(), &me);
        }
        // A talkback is a delta of what the sender lacks. Adopting its version leaves it
        // lacking nothing but seen marks; otherwise this node sees the sender's state now,
        // before a merge, and finds the records of its own that differ.
        let since_theirs = |n: &Self| {
            let (g, inc) = (n.states.cur(), n.states.incoming());
            match n.history.is_current(n.generation) {
                true => Since::Stamp(n.history.since_state(g, inc)),
                false => Since::Oldest,
            }
        };
        let exiting = self.status == NodeStatus::Exiting;
        // After an exit, removal is the expected end; otherwise we were removed unannounced.
        let removed = if exiting {
            StopReason::Left
        } else {
            StopReason::Removed
        };
        let joining = self.not_up_yet();
        let inc = self.states.incoming();
        if !inc.is_member(&self.me) {
            if inc.is_tombstoned(&self.me) {
                let state = Slot::Incoming;
                self.removed_by(from.socket_addr(), removed, joining, state);
            } else if joining {
                // A member sent this joiner a state without it and without its tombstone: the
                // cluster never heard of it (see `tell_unknown`). Join again.
                self.rejoin(now, from.socket_addr());
            } else {
                self.stats.gossip_dropped += 1;
            }
            return;
        }
        let remote_version = inc.version_digest();
        let mut since = Since::Version(remote_version);
        let (talkback, mut changed) = match self.gossip().compare(inc) {
            Causality::Same => {
                let remote_saw_me = inc.seen_by(&self.me);
                let (c, i) = self.states.both_mut();
                // Tell the peer what it lacks: our own mark, or others' it has not heard of.
                let we_know_more = c.seen().iter().any(|a| !i.seen_by(a));
                let before = c.seen().len();
                c.union_seen(i);
                let mut changed = c.seen().len() != before;
                // Tombstones expire by local time, so equal versions may differ there.
                for t in i.tombstones.iter() {
                    if !c.is_member(&t.address) && !c.is_tombstoned(&t.address) {
                        c.add_tombstone(*t);
                        changed = true;
                    }
                }
                (!remote_saw_me || we_know_more, changed)
            }
            Causality::Before => {
                let remote_saw_me = inc.seen_by(&self.me);
                self.states.adopt_incoming();
                self.news |= news::newly_flagged(self.states.incoming(), self.states.cur());
                (!remote_saw_me, true)
            }
            Causality::After => {
                since = since_theirs(self);
                (true, false)
            }
            Causality::Concurrent => {
                since = since_theirs(self);
                let (c, i) = self.states.both_mut();
                let dropped: heapless::Vec<UniqueAddress, DEPART_GOSSIP_FANOUT> =
                    i.merge_drops(c).take(DEPART_GOSSIP_FANOUT).collect();
                let prunes = !dropped.is_empty() || i.merge_prunes(c);
                // Merge into the incoming buffer: on failure our state is untouched.
                if let Err(e) = i.merge_in_at(c, now) {
                    self.stats.over_capacity += 1;
                    self.limits.reached(match e {
                        crate::gossip::CapacityError::Members => Limit::Members,
                        crate::gossip::CapacityError::Reachability => Limit::ReachabilityRecords,
                    });
                    return;
                }
                // A merge that dropped a removed member's clock entry may have produced a
                // version another node holds with other contents: make it new.
                if prunes && i.is_member(&self.me) && i.bump(self.me, false).is_err() {
                    self.stats.over_capacity += 1;
                    self.limits.reached(Limit::Members);
                    return;
                }
                self.states.adopt_incoming();
                self.news |= news::newly_flagged(self.states.incoming(), self.states.cur());
                self.tell_dropped(&dropped);
                (true, true)
            }
        };
        if !self.gossip().is_member(&self.me) {
            let state = Slot::Current;
            self.removed_by(from.socket_addr(), removed, joining, state);
            return;
        }
        if !exiting && !self.states.cur().seen_by(&self.me) {
            self.states.cur_mut().add_seen(self.me);
            changed = true;
        }
        if changed {
            self.departed.retain(|d| self.states.cur().is_member(d));
            self.changed();
            self.after_self_change();
        }
        // An exiting node takes no further part in spreading state (Pekko does the same).
        let talkback = talkback && !exiting;
        if talkback && self.is_member() {
            let uid = from.uid();
            self.send(from.socket_addr(), Out::Delta { uid, since });
        }
    }

    /// A node this node neither lists nor has a tombstone for gossips to it as a member. If
    /// the sender's state holds nothing this node has not seen (every clock entry of a
    /// current member is at most ours), its membership came from members the cluster no
    /// longer has: it was welcomed by a node that was downed, or cut off and removed, before
    /// anyone else heard of it. Send it this node's state, which leaves it out, so that it
    /// joins again; otherwise it would stay a member in its own eyes only. A joiner welcomed
    /// by a current member that this node has not heard from yet holds a newer entry of that
    /// member, and is left alone.
    fn tell_unknown(&mut self, from: UniqueAddress) {
        let (g, inc) = (self.states.cur(), self.states.incoming());
        if !self.is_member() || g.is_member(&from) || g.is_tombstoned(&from) {
            return;
        }
        if !inc.is_member(&from) {
            return;
        }
        let stale = inc
            .version()
            .iter()
            .all(|(n, v)| !g.is_member(n) || v <= g.version().get(n));
        if stale {
            self.send(from.socket_addr(), Out::Gossip(from.uid()));
        }
    }

    /// The cluster does not know this joiner although it took itself for a member
    /// ([`Self::tell_unknown`]): start over as a joiner, through the same seeds, or else
    /// through `via`. It reports itself removed; its events start over, as for a first join.
    fn rejoin(&mut self, now: Instant, via: SocketAddr) {
        // This node leaves the membership it believed in: say so for itself alone (the
        // cluster removed none of the others).
        if let Some(m) = self.self_member() {
            let mut member = m.clone();
            let previous_status = member.status;
            member.status = MemberStatus::Removed;
            self.notify(Event::MemberRemoved {
                member,
                previous_status,
            });
        }
        self.status = NodeStatus::Joining;
        self.silent_ticks = 0;
        self.gossip_silent_ticks = 0;
        self.timers = TimerTable::NONE;
        self.ring_update_at = None;
        self.heartbeats.clear();
        self.recent.clear();
        self.departed.clear();
        self.resolver = Resolver::new();
        self.ticks_without_convergence = 0;
        self.cut_off_since = None;
        self.states.cur_mut().clear();
        self.history.clear();
        // Its view of the others goes without a MemberRemoved for each, and the next
        // membership is reported afresh.
        self.generation += 1;
        self.publisher.reset();
        let t = self.timing();
        let action = self.join.resume(now, &t, Some(via));
        self.run_join_action(now, action);
    }

    /// This node's merge dropped these members for capacity (and tombstoned them,
    /// [`crate::capacity`]): tell them, with the state that says so, and report the refusal.
    fn tell_dropped(&mut self, dropped: &[UniqueAddress]) {
        let reason = capacity::full(self.members(), self.capacity(), Capacity::UNBOUNDED);
        let me = self.me;
        for d in dropped.iter().filter(|d| **d != me) {
            self.send(d.socket_addr(), Out::Gossip(d.uid()));
            self.notify_refusal(d.socket_addr(), reason.clone());
        }
    }

    /// Gossip from `by` (or its merge, the state in `state`) removed this node. A node that was
    /// `joining` (not Up yet) into a cluster that is full was let in concurrently with others
    /// past the capacity and dropped ([`crate::capacity`]): it says so before stopping.
    fn removed_by(&mut self, by: SocketAddr, reason: StopReason, joining: bool, state: Slot) {
        let inc = self.states.get(state);
        let full = inc.members.len() >= capacity::cluster_holds(&inc.members, self.capacity());
        if reason == StopReason::Removed && joining && full {
            let refusal = capacity::full(&inc.members, self.capacity(), self.capacity());
            self.notify(Event::JoinRefused {
                by,
                reason: refusal,
            });
            self.stop(StopReason::Dropped);
        } else {
            self.stop(reason);
        }
    }

    fn on_departed(&mut self, from: UniqueAddress) {
        let departing = self
            .gossip()
            .member(&from)
            .is_some_and(|m| matches!(m.status, MemberStatus::Exiting | MemberStatus::Down));
        if departing && !self.departed.contains(&from) {
            // Convergence counts departures: the view must be derived again.
            self.view = None;
            if self.departed.push(from).is_err() {
                self.stats.over_capacity += 1;
                self.limits.reached(Limit::Departed);
            }
        }
    }

    /// One gossip round: pick a target; send it a status if it has seen our version, a delta
    /// of the last change otherwise (see [`crate::delta`]).
    fn gossip_round(&mut self) {
        if !self.is_member() || self.gossip().members.len() < 2 {
            return;
        }
        self.stats.gossip_rounds += 1;
        if let Some((i, t)) = self.select_target() {
            let g = self.gossip();
            let out = if g.seen_at(i) {
                Out::GossipStatus(t.uid())
            } else {
                let n = g.members.len();
                self.recent.pushed(i, n);
                Out::Delta {
                    uid: t.uid(),
                    since: Since::Previous,
                }
            };
            self.send(t.socket_addr(), out);
        }
    }

    /// Gossip rounds within which a member counts as heard from lately: the acceptable
    /// heartbeat pause, at least one.
    fn recent_rounds(&self) -> u8 {
        // In 32-bit microseconds (the pause is at most an hour, `Config::validate`; a longer
        // round saturates, still above it): `Duration`'s own are 128-bit, and a 64-bit
        // division is a library routine on a 32-bit device.
        let us = |d| u32::try_from(micros(d)).unwrap_or(u32::MAX);
        let pause = us(self.config.failure_detector.acceptable_heartbeat_pause);
        let round = us(self.config.gossip_interval).max(1);
        pause.div_ceil(round).clamp(1, u32::from(u8::MAX - 1)) as u8
    }

    /// Probability of preferring a node that has not seen our version: the configured value
    /// up to `reduce-gossip-different-view-probability` members, falling linearly to a tenth of
    /// it at three times that size, so huge clusters do not all hammer the few stragglers.
    fn different_view_probability(&self, n: usize) -> f32 {
        let p = self.config.gossip_different_view_probability;
        let r = self.config.reduce_gossip_different_view_probability as usize;
        if n <= r {
            p
        } else if n >= 3 * r {
            p / 10.0
        } else {
            p - (p - p / 10.0) * ((n - r) as f32 / (2 * r) as f32)
        }
    }

    /// The member to gossip with this round, and its index in the current state.
    fn select_target(&mut self) -> Option<(usize, UniqueAddress)> {
        let n = self.gossip().members.len();
        let prefer_unseen = self.rng.unit() < self.different_view_probability(n);
        // Nobody unseen (a converged cluster): skip the scans for unseen members.
        let view = self.view();
        let prefer_unseen = prefer_unseen && view.unseen > 0;
        let g = self.states.cur();
        let me = self.me;
        // Never gossip to a member this node itself flags (others' flags do not matter).
        let mine = match view.me {
            Some(i) => g.reachability().rows_of_index(i),
            None => g.reachability().rows_of_index(usize::MAX),
        };
        let valid = |m: &Member| {
            m.address != me
                && !mine
                    .clone()
                    .any(|r| r.subject == m.address && r.status != ReachabilityStatus::Reachable)
        };
        // Uniform among the valid members unless unseen ones are preferred.
        let mut passes: &[Pass] = &[Pass::Any];
        if prefer_unseen {
            // Stragglers that someone flags are most likely cut off: during a partition the
            // other side's members are all "unseen", and preferring them would spend nearly
            // every round where it cannot arrive. While this node flags members itself, the
            // ones it heard from lately are on its side: prefer those (see `crate::recent`).
            let partitioned = mine
                .clone()
                .any(|r| r.status != ReachabilityStatus::Reachable);
            passes = if partitioned {
                &[Pass::UnseenHeardLately, Pass::Unseen, Pass::Any]
            } else {
                &[Pass::Unseen, Pass::Any]
            };
        }
        let recent = &self.recent;
        let rounds = self.recent_rounds();
        for &pass in passes {
            if pass == Pass::Any {
                // Nearly every member is valid, so a few random draws find one without a
                // pass over the members; the pass is the fallback.
                for _ in 0..TARGET_DRAWS {
                    let i = self.rng.below(n);
                    let Some(m) = g.members.get(i) else {
                        break;
                    };
                    if valid(m) {
                        return Some((i, m.address));
                    }
                }
            }
            // Unseen members never include a straggler: one that ignores this node's gossip
            // is not worth most rounds (`crate::recent`).
            let wanted = |&(i, (m, seen)): &(usize, (&Member, bool))| {
                valid(m)
                    && match pass {
                        Pass::Any => true,
                        Pass::Unseen | Pass::UnseenHeardLately => {
                            !seen
                                && g.reachability().is_reachable(&m.address)
                                && !recent.is_straggler(i, n)
                                && (pass == Pass::Unseen || recent.is_recent(i, n, rounds))
                        }
                    }
            };
            let count = g.members_with_seen().enumerate().filter(&wanted).count();
            if count > 0 {
                let k = self.rng.below(count);
                return g
                    .members_with_seen()
                    .enumerate()
                    .filter(&wanted)
                    .nth(k)
                    .map(|(i, (m, _))| (i, m.address));
            }
        }
        None
    }

    /// Pekko's condition for extra gossip rounds: a Down member, or fewer than half have seen
    /// the current version.
    fn speed_up_needed(&mut self) -> bool {
        self.is_member() && self.view().speed_up
    }

    /// When an extra gossip round runs: a third of the gossip interval from `now`.
    fn speed_up_at(&self, now: Instant) -> Instant {
        now + fraction(self.config.gossip_interval, 3)
    }

    /// The facts of [`View`] for the current state, computed at most once per generation.
    fn view(&mut self) -> View {
        match self.view {
            Some(v) if v.generation == self.generation => v,
            _ => {
                let v = View::of(self.gossip(), &self.me, &self.departed, self.generation);
                self.view = Some(v);
                v
            }
        }
    }

    // ----- failure detection -------------------------------------------------------------

    fn heartbeat_tick(&mut self, now: Instant) {
        if !self.is_member() {
            return;
        }
        let s = self.config.failure_detector;
        let interval = s.heartbeat_interval;
        if self.ring_update_at.is_none_or(|t| t <= now) {
            // Who to monitor is re-derived once per interval.
            self.ring_update_at = Some(now + interval);
            let (k, expected) = (
                self.config.failure_detector.monitored_by_nr_of_members,
                self.config.failure_detector.expected_response_after,
            );
            let generation = self.generation;
            self.heartbeats.update(
                now,
                self.states.cur(),
                generation,
                &self.me,
                k,
                &s,
                expected,
            );
        }
        let room = self.outbox.room();
        let me = self.me;
        let beats: heapless::Vec<(SocketAddr, heartbeat::Beat), { heartbeat::MAX_MONITORED }> =
            self.heartbeats
                .beats(now, interval, &me)
                .take(room)
                .collect();
        for (to, beat) in beats {
            self.send(to, Out::Heartbeat(beat));
        }
        let next = self
            .heartbeats
            .next_beat_at()
            .into_iter()
            .chain(self.ring_update_at)
            .min();
        match next {
            Some(at) => self.timers.set(Timer::Heartbeat, at),
            None => self.timers.stop(Timer::Heartbeat),
        }
    }

    /// A message from the member at index `i` arrived.
    fn heard(&mut self, i: usize) {
        let n = self.gossip().members.len();
        self.recent.heard(i, n);
        self.silent_ticks = 0;
    }

    /// Writes this node's failure-detector verdicts into the reachability table (notes §9.3).
    fn reap(&mut self, now: Instant) {
        if !self.is_member() || self.gossip().members.len() < 2 {
            return;
        }
        let s: DetectorSettings = self.config.failure_detector;
        let me = self.me;
        let mut changes: heapless::Vec<
            (UniqueAddress, ReachabilityStatus),
            { heartbeat::MAX_MONITORED * 2 },
        > = heapless::Vec::new();
        // Indices rather than searches: this runs every second for every monitored member.
        let my_index = self.view().me;
        let g = self.states.cur();
        let generation = self.generation;
        for (subject, verdict, index) in self.heartbeats.reap(now, &s, generation) {
            let Some(i) = index.or_else(|| g.index_of(&subject).ok()) else {
                continue;
            };
            let current = match my_index {
                Some(o) => g.reachability().status_by_index(o, i),
                None => ReachabilityStatus::Reachable,
            };
            // Only an answer takes a flag back: a new monitor that has not heard from the
            // member yet is no evidence (the flag this node set on a silent member it downed
            // would otherwise vanish, and the member would never be removed).
            match (verdict, current) {
                (heartbeat::Verdict::Unavailable, ReachabilityStatus::Reachable) => {
                    let _ = changes.push((subject, ReachabilityStatus::Unreachable));
                }
                (heartbeat::Verdict::Answering, ReachabilityStatus::Unreachable) => {
                    let _ = changes.push((subject, ReachabilityStatus::Reachable));
                }
                _ => {}
            }
        }
        // A member this node flags but cannot monitor (more flagged members than monitor slots)
        // keeps its flag until a monitor frees up and sees it answer: dropping the flag without
        // evidence would make it flap.
        let news = changes.iter().any(|(subject, status)| {
            *status == ReachabilityStatus::Unreachable && g.reachability().is_reachable(subject)
        });
        let mut changed = false;
        for (subject, status) in changes {
            match self.states.cur_mut().observe(me, subject, status) {
                Ok(c) => changed |= c,
                Err(_) => {
                    self.stats.over_capacity += 1;
                    self.limits.reached(Limit::ReachabilityRecords);
                }
            }
        }
        if changed {
            self.news |= news;
            self.local_change();
        }
        // A joiner (not Up yet) that hears from no member has nobody to learn its fate from:
        // its cluster may be gone (downed while it was cut off from it), and it would stay a
        // member in its own eyes. After three acceptable pauses of silence it joins again; a
        // member that still has it welcomes it back at once.
        self.silent_ticks = self.silent_ticks.saturating_add(1);
        let joining = self.not_up_yet();
        let interval = self.config.unreachable_nodes_reaper_interval;
        let silence = scaled(interval, u32::from(self.silent_ticks));
        if joining && silence > scaled(s.acceptable_heartbeat_pause, 3) {
            let via = self.gossip().members.iter().find(|m| m.address != me);
            if let Some(via) = via.map(|m| m.address.socket_addr()) {
                self.rejoin(now, via);
            }
            return;
        }
        self.gossip_silent_ticks = self.gossip_silent_ticks.saturating_add(1);
        if self.ignored() {
            // Not a rejoin as the same incarnation: if the cluster removed it, that
            // incarnation must never come back (its tombstone may be gone by now).
            self.stop(StopReason::Removed);
        }
    }

    /// A member that the members it hears from (their heartbeats) no longer gossip with has
    /// been removed without learning it, or is taken for another incarnation: it would stay a
    /// member in its own eyes only. Members gossip with one another every round, so after
    /// [`IGNORED_ROUNDS`] rounds (at least three acceptable pauses) without gossip or a
    /// gossip status from any member, while some member other than itself is neither
    /// flagged by it nor Down or Exiting, it stops as removed ([`StopReason::Removed`]); a
    /// new incarnation can join. A member cut off from everyone flags them all, and is left
    /// to the downing strategy instead (a survivor of the split brain resolver must not give
    /// itself up).
    fn ignored(&self) -> bool {
        if self.status != NodeStatus::Member || self.not_up_yet() {
            return false;
        }
        let bound = scaled(self.config.gossip_interval, IGNORED_ROUNDS).max(scaled(
            self.config.failure_detector.acceptable_heartbeat_pause,
            3,
        ));
        let silence = scaled(
            self.config.unreachable_nodes_reaper_interval,
            u32::from(self.gossip_silent_ticks),
        );
        if silence <= bound {
            return false;
        }
        let g = self.gossip();
        let mine = g.reachability().rows_of(&self.me);
        g.members.iter().any(|m| {
            m.address != self.me
                && !matches!(m.status, MemberStatus::Down | MemberStatus::Exiting)
                && !mine
                    .clone()
                    .any(|r| r.subject == m.address && r.status != ReachabilityStatus::Reachable)
        })
    }

    // ----- leader and self ----------------------------------------------------------------

    fn leader_tick(&mut self, now: Instant) {
        if !self.is_member() {
            return;
        }
        let ttl = self.config.prune_gossip_tombstones_after;
        if self.states.cur_mut().prune_tombstones(now, ttl) {
            self.changed();
        }
        // A node that may not lead never decides for others, not even down-all-when-unstable:
        // it downs nobody, so it cannot be one of two sides that each went on without the
        // other; an eligible member's decision reaches it as gossip, or it stops on its own.
        if self.may_lead() {
            self.resolve(now);
        } else {
            self.follow(now);
        }
        let view = self.view();
        if self.may_lead() && view.leader == Some(self.me) && self.status == NodeStatus::Member {
            if self.is_member() && view.converged {
                self.act_on_convergence(now);
            } else {
                self.ticks_without_convergence = self.ticks_without_convergence.saturating_add(1);
                if let Some(after) = self.config.allow_weakly_up_members {
                    let waited = scaled(
                        self.config.leader_actions_interval,
                        self.ticks_without_convergence,
                    );
                    if waited >= after && !self.shutting_down() {
                        let req = up_requirements(&self.config, false);
                        let moved = leader::weakly_up(self.states.cur_mut(), &req);
                        if moved > 0 {
                            self.local_change();
                        }
                    }
                }
            }
        }
        // Every node: join a full-cluster shutdown that others started.
        if self.view().shutdown
            && self
                .self_member()
                .is_some_and(|m| m.status == MemberStatus::Up)
        {
            self.departure.prepare_for_shutdown();
            let me = self.me;
            let _ = self.set_status_local(now, me, MemberStatus::PreparingForShutdown);
        }
        match self.status {
            NodeStatus::Exiting => {
                let ticks = self.departure.tick();
                if ticks > EXIT_CONFIRM_TICKS || self.nobody_to_confirm_to() {
                    self.stop(StopReason::Left);
                } else {
                    self.confirm_departure();
                }
            }
            NodeStatus::Member
                if self
                    .self_member()
                    .is_some_and(|m| m.status == MemberStatus::Down) =>
            {
                if self.departure.downed() {
                    // Down before any change was reported (not expected: every path that
                    // changes the state reports it first).
                    self.notify(Event::SelfDowned);
                }
                let ticks = self.departure.tick();
                // Pekko §12.4: stop once every Down member (this one included) has seen the
                // state or is unreachable, so the others downed with us learn it too.
                let g = self.gossip();
                let spread = g
                    .members
                    .iter()
                    .filter(|m| m.status == MemberStatus::Down)
                    .all(|m| g.seen_by(&m.address) || !g.reachability().is_reachable(&m.address));
                if spread || ticks >= SELF_DOWN_TICKS {
                    self.depart(StopReason::Downed);
                }
            }
            _ => {}
        }
    }

    /// Whether this node leads a converged state with something to act on. The leader acts
    /// as soon as an input makes the state converge, not only on its next tick: a join, a
    /// leave or a removal would otherwise wait up to a leader interval at each step (a cold
    /// start took two to four seconds for that alone). It acts on a [`Timer::Actions`] due at
    /// once rather than within the input, so that the state that converged is reported
    /// before the actions change it (a member seen Leaving, a Down before its removal). It
    /// cannot act twice on one convergence: its actions make a new version, which must
    /// converge again first.
    fn actions_due(&mut self) -> bool {
        if !self.may_lead() || self.status != NodeStatus::Member || !self.is_member() {
            return false;
        }
        let view = self.view();
        view.leader == Some(self.me) && view.converged && view.actionable
    }

    /// The leader's actions on a converged state (see [`leader::actions_on_convergence`]):
    /// on every leader tick, and when an input makes the state converge.
    fn act_on_convergence(&mut self, now: Instant) {
        self.ticks_without_convergence = 0;
        let req = up_requirements(&self.config, self.shutting_down());
        let s = self.config.downing;
        self.resolver
            .catch_up(now, self.states.cur(), self.generation, &s);
        let keep_down = self.resolver.holds_down_members(now);
        let keep = TOMBSTONE_MIN_AGE.min(self.config.prune_gossip_tombstones_after);
        let out = leader::actions_on_convergence(
            self.states.cur_mut(),
            now,
            &req,
            &self.departed,
            keep_down,
            keep,
        );
        if out.deferred > 0 {
            self.limits.reached(Limit::Tombstones);
        }
        if out.changed() {
            self.local_change();
            // Tell removed nodes that confirmed their departure, so they stop at once
            // instead of confirming until their own deadline.
            let departed = core::mem::take(&mut self.departed);
            for d in &departed {
                if self.states.cur().is_member(d) {
                    let _ = self.departed.push(*d);
                } else {
                    self.send(d.socket_addr(), Out::Gossip(d.uid()));
                }
            }
            self.after_self_change();
        }
    }

    /// The rule of a node that may not lead, on each leader tick: cut off from every member
    /// that may for as long as a decision takes (`stable-after` and the confirmation wait), it
    /// stops ([`StopReason::NoLeader`]), when a leader on its side would have decided. Nobody
    /// on its side can decide, so it would otherwise wait for good; and the other side removes
    /// the members it downs a down-removal margin after its decision, by when this node has
    /// stopped. Cut off: no member that may lead is in contact with this node's side (its
    /// downing lead, see `View`, is none) while some member is flagged (a member no monitor on
    /// this side watches is never flagged here, but does not see this side's state either),
    /// or every member that may lead is Down. Never with manual downing, where an operator
    /// decides.
    fn follow(&mut self, now: Instant) {
        let s = self.config.downing;
        // Down or Exiting, it stops on its own way out.
        let member = self.status == NodeStatus::Member
            && self
                .self_member()
                .is_some_and(|m| !matches!(m.status, MemberStatus::Down | MemberStatus::Exiting));
        let lead = self.view().lead;
        let (cut_off, wait) = {
            let g = self.states.cur();
            let r = g.reachability();
            let flagged = g.members.iter().any(|m| !r.is_reachable(&m.address));
            let none_left = !g
                .members
                .iter()
                .any(|m| m.leader_eligible && m.status != MemberStatus::Down);
            let cut_off = lead.is_none() && (flagged || none_left);
            let n = g.members.len();
            (cut_off, s.stable_after_for(n) + s.confirm_wait_for(n))
        };
        if !cut_off || !member || s.downing == Downing::Manual {
            self.cut_off_since = None;
            return;
        }
        let since = *self.cut_off_since.get_or_insert(now);
        if now >= since + wait {
            self.stop(StopReason::NoLeader);
        }
    }

    /// Whether this node may lead: configured so, and built with the code for it. False
    /// at compile time without the `lead` feature, so that code is left out.
    fn may_lead(&self) -> bool {
        cfg!(feature = "lead") && self.config.leader_eligible
    }

    /// Whether this node may act on a downing decision: a member that has been Up and is
    /// neither on its way out nor Down.
    fn serving(&self) -> bool {
        self.status == NodeStatus::Member
            && self.self_member().is_some_and(|m| {
                matches!(
                    m.status,
                    MemberStatus::WeaklyUp
                        | MemberStatus::Up
                        | MemberStatus::Leaving
                        | MemberStatus::PreparingForShutdown
                        | MemberStatus::ReadyForShutdown
                )
            })
    }

    /// Runs the downing strategy's clock, and carries out what it decides.
    fn resolve(&mut self, now: Instant) {
        // Each side of a partition has one node that leads it in its own view: the leader
        // among the members in contact with it. A member of the other side that no monitor
        // here flags never sees this side's state, so it cannot lead this side (it would,
        // by address, and nobody here would decide). A node that sees itself flagged defers
        // to an unflagged member in contact, if there is one: counting itself as reachable
        // (as Pekko's leader rule does) made two nodes of one connected side both decide, one
        // with the lease and one denied it, and their decisions left two disjoint groups
        // serving (campaign seed 42424). Others take over when the decision is overdue
        // (`Resolver::overdue`).
        // (The lead is computed in `View::of`.)
        let me = self.me;
        let View { lead, rank, .. } = self.view();
        let s = self.config.downing;
        // When the leader has not acted for a stable-after past the deadline, the members in
        // contact take over in address order, a stable-after apart.
        let overdue = self
            .resolver
            .overdue(now, self.gossip().members.len(), rank, &s);
        let responsible = self.serving() && (lead == Some(me) || overdue);
        let g = self.states.cur();
        self.resolver.note_contact(g, &me);
        let tick = self.config.leader_actions_interval;
        match self
            .resolver
            .tick(now, g, self.generation, responsible, &s, tick)
        {
            None => {}
            Some(Step::Act(d, r)) => self.carry_out(now, d, r),
            Some(Step::Confirm) => {
                // A new version that every ally must see before the decision; only members
                // still in contact with this side can see it.
                self.local_change();
                let (g, me) = (self.states.cur(), self.me);
                self.resolver.confirming(now, g, &me);
                self.push_to_unseen();
            }
            Some(Step::Push) => self.push_to_unseen(),
        }
    }

    /// Full gossip to up to [`CONFIRM_PUSH`] members that have not seen the current state and
    /// that nobody flags, from a random place in the member list on: over the
    /// confirmation wait it reaches every such member of a small cluster, and random gossip
    /// spreads it further in a large one.
    fn push_to_unseen(&mut self) {
        let targets = self.unseen_targets(CONFIRM_PUSH);
        for t in targets {
            self.send(t.socket_addr(), Out::Gossip(t.uid()));
        }
    }

    /// The news that a member is unreachable, to [`news::FANOUT`] members that have not seen
    /// this state: a delta of the change, as a gossip round sends (see [`crate::news`]).
    fn push_news(&mut self) {
        if self.status != NodeStatus::Member {
            return;
        }
        let targets = self.unseen_targets(news::FANOUT);
        for t in targets {
            let (uid, since) = (t.uid(), Since::Previous);
            self.send(t.socket_addr(), Out::Delta { uid, since });
        }
    }

    /// Up to `k` members that have not seen the current state, that nobody flags and that the
    /// outbox has room for, from a random place in the member list on.
    fn unseen_targets(&mut self, k: usize) -> heapless::Vec<UniqueAddress, CONFIRM_PUSH> {
        let g = self.states.cur();
        let n = g.members.len();
        if n < 2 {
            return heapless::Vec::new();
        }
        let reach = g.reachability();
        let room = self.outbox.room().saturating_sub(2);
        let start = self.rng.below(n);
        (0..n)
            .map(|k| &g.members[(start + k) % n])
            .filter(|m| m.address != self.me && !g.seen_by(&m.address))
            .filter(|m| !reach.rows_of(&self.me).any(|r| r.subject == m.address))
            .filter(|m| reach.is_reachable(&m.address))
            .map(|m| m.address)
            .take(k.min(room))
            .collect()
    }

    /// Marks Down the members `decision` selects — this node last, so it still spreads the
    /// news — and reports the decision.
    fn carry_out(&mut self, now: Instant, decision: Decision, reason: Reason) {
        if !self.serving() {
            return;
        }
        let s = self.config.downing;
        let strategy = match s.downing {
            Downing::SplitBrainResolver(strategy) => strategy,
            _ => Strategy::DownAll,
        };
        let (mask, silent) = {
            let p = self.resolver.partition(self.states.cur());
            (p.to_down(&strategy, decision), p.silent())
        };
        let me = self.states.cur().index_of(&self.me).ok();
        let self_downed = me.is_some_and(|i| mask[i]);
        // Who is told at once, directly: first the members that have seen the state decided
        // on (in contact: allies kept, or this side's members downed with it), so that none is
        // cut off before it knows what was downed (it would count the downed members as alive
        // if it later found itself with them); then downed members this node does not flag,
        // so they stop at once.
        let told: heapless::Vec<UniqueAddress, OUTBOX_CAPACITY> = {
            let g = self.states.cur();
            let mine = g.reachability().rows_of(&self.me);
            let room = self.outbox.room().saturating_sub(2);
            let others = g
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.address != self.me);
            let contact =
                |m: &Member| g.seen_by(&m.address) || self.resolver.in_contact(&m.address);
            let in_contact = others.clone().filter(|(_, m)| contact(m));
            let downed_unflagged = others.filter(|(i, m)| {
                mask[*i] && !contact(m) && !mine.clone().any(|r| r.subject == m.address)
            });
            in_contact
                .chain(downed_unflagged)
                .map(|(_, m)| m.address)
                .take(room)
                .collect()
        };
        let g = self.states.cur_mut();
        let mut downed = 0;
        let order = (0..g.members.len()).filter(|i| Some(*i) != me).chain(me);
        for i in order.filter(|i| mask[*i]) {
            let a = g.members[i].address;
            if g.set_status(&a, MemberStatus::Down).unwrap_or(false) {
                downed += 1;
            }
            // A silent member downed here is out of contact: flag it as this node's
            // observation, so that it does not hold back convergence (and its removal) as a
            // reachable member that never sees the state.
            if silent[i] && !self_downed {
                let r = g.observe(self.me, a, ReachabilityStatus::Unreachable);
                if r.is_err() {
                    self.stats.over_capacity += 1;
                    self.limits.reached(Limit::ReachabilityRecords);
                }
            }
        }
        self.notify(Event::Downing(DowningDecision {
            by: s.downing,
            decision,
            reason,
            downed,
            self_downed,
        }));
        self.resolver.acted(now, self.states.cur(), downed, &s);
        if downed > 0 {
            self.local_change();
            for a in &told {
                self.send(a.socket_addr(), Out::Gossip(a.uid()));
            }
            // The change itself is pushed at once (see `after_input`); a node that downed
            // itself also makes sure the news outlives it.
            if self_downed {
                self.spread_to_some();
            }
            self.after_self_change();
        }
    }

    /// Reacts to this node's own status after the gossip changed.
    fn after_self_change(&mut self) {
        let Some(status) = self.self_member().map(|m| m.status) else {
            return;
        };
        if status == MemberStatus::Down && self.departure.downed() {
            self.notify(Event::SelfDowned);
        }
        if status == MemberStatus::Exiting && self.status == NodeStatus::Member {
            // Exiting tasks: there is nothing to hand over inside the core, so finish at once:
            // spread the news, confirm to the leader, and keep confirming for a few ticks.
            self.status = NodeStatus::Exiting;
            self.departure.start_exit();
            self.states.cur_mut().add_seen(self.me);
            self.changed();
            self.spread_to_some();
            self.confirm_departure();
        }
        if self.status == NodeStatus::Exiting && self.nobody_to_confirm_to() {
            self.stop(StopReason::Left);
        }
    }

    /// Every other member is Down, or Exiting and has seen the current state (in which this
    /// node is Exiting): no leader is left to remove this node, and every member still running
    /// knows it is on its way out. Members that all leave at once would otherwise keep
    /// confirming to each other for [`EXIT_CONFIRM_TICKS`]; Pekko's Exiting node stops as soon
    /// as its exiting tasks are done, without waiting for anyone.
    fn nobody_to_confirm_to(&self) -> bool {
        let g = self.gossip();
        g.members.iter().all(|m| {
            m.address == self.me
                || m.status == MemberStatus::Down
                || (m.status == MemberStatus::Exiting && g.seen_by(&m.address))
        })
    }

    /// Full gossip to a few distinct random members, so news about this node outlives it.
    /// Best effort: it leaves room in the outbox for the departure confirmations that follow.
    fn spread_to_some(&mut self) {
        let room = self.outbox.room().saturating_sub(2);
        let mut sent: heapless::Vec<UniqueAddress, DEPART_GOSSIP_FANOUT> = heapless::Vec::new();
        for _ in 0..2 * DEPART_GOSSIP_FANOUT {
            if sent.len() >= DEPART_GOSSIP_FANOUT.min(room) {
                break;
            }
            if let Some((_, t)) = self.select_target() {
                if !sent.contains(&t) {
                    let _ = sent.push(t);
                    self.send(t.socket_addr(), Out::Gossip(t.uid()));
                }
            }
        }
    }

    /// Tells the leader (as computed without this node) and the next candidate that this node
    /// has stopped taking part, so they may remove it without waiting for failure detection.
    fn confirm_departure(&mut self) {
        let me = self.me;
        let g = self.states.cur();
        let first = leader::leader_among(g, &me, |m| m.address != me);
        let second =
            first.and_then(|f| leader::leader_among(g, &me, |m| m.address != me && m.address != f));
        for t in [first, second].into_iter().flatten() {
            self.send(t.socket_addr(), Out::Departed);
        }
    }

    fn depart(&mut self, reason: StopReason) {
        self.spread_to_some();
        self.confirm_departure();
        self.stop(reason);
    }

    fn stop(&mut self, reason: StopReason) {
        if matches!(self.status, NodeStatus::Stopped(_)) {
            return;
        }
        self.status = NodeStatus::Stopped(reason);
        self.join.stop();
        self.timers = TimerTable::NONE;
        self.heartbeats.clear();
        self.recent.clear();
        self.changed();
        self.notify(Event::Stopped(reason));
    }

    /// A full-cluster shutdown is under way: this node started it, or some member is
    /// PreparingForShutdown or ReadyForShutdown. Nobody new is let in or moved up then, on
    /// every node, even one whose own status was switched by another node's command.
    fn shutting_down(&self) -> bool {
        self.departure.full_shutdown()
            || self.gossip().members.iter().any(|m| {
                matches!(
                    m.status,
                    MemberStatus::PreparingForShutdown | MemberStatus::ReadyForShutdown
                )
            })
    }

    /// Digests of the current version and seen set.
    fn digests(&mut self) -> (u64, u64) {
        match self.digest_cache {
            Some((g, v, s)) if g == self.generation => (v, s),
            _ => {
                let g = self.gossip();
                let (v, s) = (g.version_digest(), g.seen_digest());
                self.digest_cache = Some((self.generation, v, s));
                (v, s)
            }
        }
    }

    /// The gossip changed (locally or by a merge): events must be re-diffed.
    fn changed(&mut self) {
        self.generation += 1;
        self.publisher.invalidate();
    }

    /// A local change to the gossip: bump our clock entry; only we have seen it.
    fn local_change(&mut self) {
        let mark_seen = self.status != NodeStatus::Exiting;
        let me = self.me;
        if self.states.cur_mut().bump(me, mark_seen).is_err() {
            self.stats.over_capacity += 1;
            self.limits.reached(Limit::Members);
        }
        self.made_change = true;
        self.changed();
    }
}

fn up_requirements(config: &Config, preparing_for_shutdown: bool) -> UpRequirements<'_> {
    UpRequirements {
        min_members: config.min_nr_of_members,
        role_minimums: &config.role_min_nr_of_members,
        preparing_for_shutdown,
    }
}

fn claimed_sender(msg: &Message) -> Option<UniqueAddress> {
    match msg {
        Message::InitJoin { from, .. }
        | Message::InitJoinAck { from }
        | Message::InitJoinNack { from, .. }
        | Message::Join { from, .. }
        | Message::Welcome { from, .. }
        | Message::Gossip { from, .. }
        | Message::GossipDelta { from, .. }
        | Message::Departed { from }
        | Message::JoinRefused { from, .. } => Some(*from),
        Message::VersionRefused { .. }
        | Message::GossipStatus { .. }
        | Message::Heartbeat { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Kind, MAGIC};

    type N = Node<8, 16>;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 7355))
    }

    fn drain(n: &mut N, now: Instant) -> std::vec::Vec<(Transmit, std::vec::Vec<u8>)> {
        let mut buf = [0u8; N::MAX_MESSAGE_LEN];
        let mut out = std::vec::Vec::new();
        while let Some(t) = n.poll_transmit(now, &mut buf) {
            out.push((t, buf[..t.len].to_vec()));
        }
        out
    }

    #[test]
    fn a_join_in_another_protocol_version_is_refused_and_reported() {
        let mut member = N::new(Config::default(), UniqueAddress::new(addr(1), 1), 1).unwrap();
        member.join(Instant::ZERO, addr(1)).unwrap();
        drain(&mut member, Instant::ZERO);
        // A future joiner's InitJoin: the envelope says version 9.
        let bytes = [MAGIC, 9, Kind::InitJoin as u8, 1, 2, 3];
        assert_eq!(
            member.handle_message(Instant::ZERO, addr(2), &bytes),
            Err(InputError::Decode(WireError::UnsupportedVersion {
                version: 9,
                kind: Kind::InitJoin as u8
            }))
        );
        let out = drain(&mut member, Instant::ZERO);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.destination, addr(2));

        // The joiner, on receiving that refusal, reports why and stops joining.
        let mut joiner = N::new(Config::default(), UniqueAddress::new(addr(2), 2), 2).unwrap();
        joiner.join_seed_nodes(Instant::ZERO, &[addr(1)]).unwrap();
        drain(&mut joiner, Instant::ZERO);
        joiner
            .handle_message(Instant::ZERO, addr(1), &out[0].1)
            .unwrap();
        assert_eq!(joiner.status(), NodeStatus::Idle);
        assert!(matches!(
            joiner.poll_event(),
            Some(Event::JoinRefused {
                reason: Incompatibility::ProtocolVersion {
                    cluster: wire::PROTOCOL_VERSION,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn a_flood_of_refused_requests_cannot_push_out_other_notices() {
        let mut member = N::new(Config::default(), UniqueAddress::new(addr(1), 1), 1).unwrap();
        member.join(Instant::ZERO, addr(1)).unwrap();
        while member.poll_event().is_some() {}
        member.notify(Event::SelfDowned);
        for i in 0..100u8 {
            let bytes = [MAGIC, 9, Kind::InitJoin as u8, 1, 2, 3];
            let from = addr(2 + i % 4);
            let _ = member.handle_message(Instant::ZERO, from, &bytes);
        }
        let mut events = std::vec::Vec::new();
        while let Some(e) = member.poll_event() {
            events.push(e);
        }
        assert_eq!(events[0], Event::SelfDowned);
        // One report per joiner and reason, and never more than the queue holds; the refusals
        // that did not fit in the outbox are one more report.
        assert_eq!(events.len(), NOTICES + 1);
        assert!(events[1..NOTICES]
            .iter()
            .all(|e| matches!(e, Event::JoinRequestRefused { .. })));
        assert_eq!(events[NOTICES], Event::LimitReached(Limit::Outbox));
    }

    #[test]
    fn more_seeds_than_the_join_process_holds_are_refused() {
        let mut n = N::new(Config::default(), UniqueAddress::new(addr(1), 1), 1).unwrap();
        let seeds: std::vec::Vec<SocketAddr> = (1..=9).map(addr).collect();
        assert_eq!(
            n.join_seed_nodes(Instant::ZERO, &seeds),
            Err(CommandError::TooManySeeds { given: 9, max: 8 })
        );
        assert_eq!(n.status(), NodeStatus::Idle);
        assert_eq!(n.join_seed_nodes(Instant::ZERO, &seeds[..8]), Ok(()));
    }

    #[test]
    fn a_claimed_sender_must_match_the_transport_peer() {
        let mut a = N::new(Config::default(), UniqueAddress::new(addr(1), 1), 1).unwrap();
        a.join(Instant::ZERO, addr(1)).unwrap();
        let mut b = N::new(Config::default(), UniqueAddress::new(addr(2), 2), 2).unwrap();
        b.join(Instant::ZERO, addr(1)).unwrap();
        let (_, join) = drain(&mut b, Instant::ZERO).remove(0);
        // The Join claims to come from 10.0.0.2 but arrives from 10.0.0.3.
        assert_eq!(
            a.handle_message(Instant::ZERO, addr(3), &join),
            Err(InputError::SenderMismatch)
        );
        assert_eq!(a.stats().sender_mismatches, 1);
        assert_eq!(a.members().len(), 1);
    }

    /// A delta for a state this node does not hold is answered with its status, to the
    /// sender the delta names, and only when that is the transport's peer.
    #[test]
    fn a_missed_delta_is_answered_to_its_sender_only() {
        use crate::member::{AppVersion, RoleSet};
        use crate::wire::Changes;
        let mut a = N::new(Config::default(), UniqueAddress::new(addr(1), 1), 1).unwrap();
        a.join(Instant::ZERO, addr(1)).unwrap();
        drain(&mut a, Instant::ZERO);
        // The sender's state holds a member `a` never heard of, and the delta leaves it out.
        let mut theirs = a.gossip().clone();
        let m = Member::joining(
            UniqueAddress::new(addr(2), 2),
            RoleSet::new(),
            AppVersion::default(),
        );
        theirs.add_member(m).unwrap();
        let changes = Changes {
            stamps: &[0, 0],
            since: 0,
            digest: crate::delta::members_digest(&theirs),
        };
        let mut bytes = [0u8; N::MAX_MESSAGE_LEN];
        let from = UniqueAddress::new(addr(2), 2);
        let delta = Message::GossipDelta {
            from,
            to: UniqueAddress::new(addr(1), 1),
            gossip: &theirs,
        };
        let len = delta
            .emit_changes(Instant::ZERO, &mut bytes, Some(changes))
            .unwrap();
        let delta = &bytes[..len];

        assert_eq!(
            a.handle_message(Instant::ZERO, addr(3), delta),
            Err(InputError::SenderMismatch)
        );
        assert!(drain(&mut a, Instant::ZERO).is_empty());
        assert_eq!(a.handle_message(Instant::ZERO, addr(2), delta), Ok(()));
        assert_eq!(a.stats().gossip_delta_misses, 2);
        let out = drain(&mut a, Instant::ZERO);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.destination, addr(2));
        let mut scratch = Gossip::<8, 16>::new();
        let reply = Message::parse(&out[0].1, &mut scratch, Instant::ZERO).unwrap();
        assert!(matches!(
            reply,
            Message::GossipStatus {
                to_uid: 2,
                reply: true,
                ..
            }
        ));
    }

    /// Delivers what `a` and `b` send each other until neither has more to send.
    fn exchange(a: &mut N, b: &mut N, now: Instant) {
        loop {
            let (from_a, from_b) = (drain(a, now), drain(b, now));
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            for (t, bytes) in from_a {
                if t.destination == b.address().socket_addr() {
                    let _ = b.handle_message(now, a.address().socket_addr(), &bytes);
                }
            }
            for (t, bytes) in from_b {
                if t.destination == a.address().socket_addr() {
                    let _ = a.handle_message(now, b.address().socket_addr(), &bytes);
                }
            }
        }
    }

    /// A member that may not lead takes no joiners: it answers a seed probe from the sender
    /// alone, without reading the joiner's declaration (a truncated one is answered too,
    /// where a member that may lead finds it malformed), and ignores a Join.
    #[test]
    fn a_member_that_may_not_lead_answers_a_probe_without_reading_it() {
        let now = Instant::ZERO;
        let mut leader = N::new(Config::default(), UniqueAddress::new(addr(1), 1), 1).unwrap();
        leader.join(now, addr(1)).unwrap();
        let config = Config {
            leader_eligible: false,
            ..Config::default()
        };
        let mut follower = N::new(config, UniqueAddress::new(addr(2), 2), 2).unwrap();
        follower.join(now, addr(1)).unwrap();
        exchange(&mut leader, &mut follower, now);
        assert_eq!(follower.status(), NodeStatus::Member);

        // A joiner probes both; its probe to the follower, whole and cut short.
        let mut joiner = N::new(Config::default(), UniqueAddress::new(addr(3), 3), 3).unwrap();
        joiner.join_seed_nodes(now, &[addr(1), addr(2)]).unwrap();
        let (_, probe) = drain(&mut joiner, now)
            .into_iter()
            .find(|(t, _)| t.destination == addr(2))
            .expect("a probe to the follower");
        let cut = &probe[..probe.len() - 1];
        assert!(matches!(
            leader.handle_message(now, addr(3), cut),
            Err(InputError::Decode(_))
        ));
        drain(&mut leader, now);
        let mut scratch = Gossip::<8, 16>::new();
        for bytes in [&probe[..], cut] {
            assert_eq!(follower.handle_message(now, addr(3), bytes), Ok(()));
            let out = drain(&mut follower, now);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].0.destination, addr(3));
            let answer = Message::parse(&out[0].1, &mut scratch, now).unwrap();
            assert_eq!(
                answer,
                Message::InitJoinNack {
                    from: follower.address(),
                    member: true
                }
            );
        }
        // The sender must be the transport's peer, as for every message that names one.
        assert_eq!(
            follower.handle_message(now, addr(4), &probe),
            Err(InputError::SenderMismatch)
        );

        // A Join sent to the follower anyway is ignored: no Welcome, no refusal.
        let mut direct = N::new(Config::default(), UniqueAddress::new(addr(3), 3), 3).unwrap();
        direct.join(now, addr(2)).unwrap();
        let (_, join) = drain(&mut direct, now).remove(0);
        assert_eq!(follower.handle_message(now, addr(3), &join), Ok(()));
        assert!(drain(&mut follower, now).is_empty());
        assert_eq!(follower.members().len(), 2);
        assert_eq!(follower.stats().decode_errors, 0);

        // One not yet a member says so: a first seed probing it may found.
        let config = Config {
            leader_eligible: false,
            ..Config::default()
        };
        let mut idle = N::new(config, UniqueAddress::new(addr(2), 5), 5).unwrap();
        assert_eq!(idle.handle_message(now, addr(3), &probe), Ok(()));
        let out = drain(&mut idle, now);
        assert_eq!(out.len(), 1);
        assert_eq!(
            Message::parse(&out[0].1, &mut scratch, now).unwrap(),
            Message::InitJoinNack {
                from: idle.address(),
                member: false
            }
        );
    }

    #[test]
    fn replay_describes_the_current_state_from_scratch() {
        let mut config = Config::default();
        config
            .roles
            .insert(crate::member::Role::new("web").unwrap())
            .unwrap();
        let mut a = N::new(config, UniqueAddress::new(addr(1), 1), 1).unwrap();
        a.join(Instant::ZERO, addr(1)).unwrap();
        while a.poll_event().is_some() {}
        let replay: std::vec::Vec<Event> = a.replay().collect();
        assert!(matches!(&replay[0], Event::MemberUp(m) if m.address == a.address()));
        assert_eq!(replay[1], Event::LeaderChanged(Some(a.address())));
        assert!(matches!(
            &replay[2],
            Event::RoleLeaderChanged { role, leader: Some(l) } if role.as_str() == "web" && *l == a.address()
        ));
        assert_eq!(replay.len(), 3);
    }
}
