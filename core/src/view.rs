//! Facts a node derives from its gossip state on its timers: the leader, convergence, whether
//! extra gossip rounds are needed, and who leads the downing decision.
//!
//! Each is a pass over the members, and a node's timers fire several times a second while its
//! state changes only when membership does. So they are computed once per state generation
//! (see `Node::changed`), and a tick in a steady cluster costs the same at 10 members as at
//! 4,096. The rules themselves stay where they are defined ([`crate::leader`],
//! [`Gossip::is_converged`], the speed-up condition below); this module only remembers their
//! results.

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::leader;
use crate::member::{Member, MemberStatus};
use crate::reachability::ReachabilityStatus;

/// What the timers need to know about one state generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// The state generation these facts describe.
    pub generation: u64,
    /// [`leader::leader`].
    pub leader: Option<UniqueAddress>,
    /// [`Gossip::is_converged`], with the departures known when computed.
    pub converged: bool,
    /// Pekko's condition for extra gossip rounds: a Down member, or fewer than half of the
    /// members have seen the current version.
    pub speed_up: bool,
    /// Some member is preparing for, or ready for, a full-cluster shutdown.
    pub shutdown: bool,
    /// The member that leads this node's side in a downing decision (see `Node::resolve`).
    pub lead: Option<UniqueAddress>,
    /// How many leader-eligible members in contact come before this node in address order, the
    /// lead excluded:
    /// the order in which they take over an overdue decision.
    pub rank: usize,
    /// Some member has a status the leader's convergence actions move on or remove: Joining,
    /// WeaklyUp, Leaving, Exiting, Down or PreparingForShutdown.
    pub actionable: bool,
    /// Members other than this node, unseen and flagged by nobody: the candidates for a
    /// gossip round that prefers those that have not seen the state. Zero in a converged
    /// cluster, so such a round skips the scan.
    pub unseen: usize,
    /// This node's index in the member list, if it is a member: its own reachability rows
    /// without a search on every timer.
    pub me: Option<usize>,
}

impl View {
    /// Computes every fact for `g` at `generation`.
    pub fn of<const M: usize, const R: usize>(
        g: &Gossip<M, R>,
        me: &UniqueAddress,
        departed: &[UniqueAddress],
        generation: u64,
    ) -> View {
        let members = g.members();
        let seen = |m: &Member| g.seen_by(&m.address);
        // Each side of a partition is led by the leader among the members in contact with
        // it; a node that sees itself flagged defers to an unflagged member (see
        // `Node::resolve` for why).
        let flagged =
            !g.reachability.is_empty() && g.reachability_of(me) != ReachabilityStatus::Reachable;
        let lead =
            leader::leader_among(g, me, |m| if m.address == *me { !flagged } else { seen(m) })
                .or_else(|| leader::leader_among(g, me, |m| m.address == *me || seen(m)));
        let mut rank = 0;
        let mut seen_count = 0;
        let mut unseen = 0;
        let mut down = false;
        let mut shutdown = false;
        let mut actionable = false;
        for (m, s) in g.members_with_seen() {
            actionable |= matches!(
                m.status,
                MemberStatus::Joining
                    | MemberStatus::WeaklyUp
                    | MemberStatus::Leaving
                    | MemberStatus::Exiting
                    | MemberStatus::Down
                    | MemberStatus::PreparingForShutdown
            );
            seen_count += usize::from(s);
            down |= m.status == MemberStatus::Down;
            shutdown |= matches!(
                m.status,
                MemberStatus::PreparingForShutdown | MemberStatus::ReadyForShutdown
            );
            if s && m.leader_eligible && m.address < *me && Some(m.address) != lead {
                rank += 1;
            }
            if !s && m.address != *me && g.reachability().is_reachable(&m.address) {
                unseen += 1;
            }
        }
        View {
            generation,
            leader: leader::leader(g, me),
            converged: g.is_converged(me, departed),
            speed_up: members.len() > 1 && (down || seen_count < members.len() / 2),
            shutdown,
            actionable,
            lead,
            rank,
            unseen,
            me: g.index_of(me).ok(),
        }
    }
}
