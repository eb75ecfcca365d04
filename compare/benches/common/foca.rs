//! foca 1.0 through [`Protocol`]: `Config::new_lan(n)` (foca's recommended configuration for
//! a LAN cluster of `n`), postcard codec, the identity of foca's own example agent (address
//! and a `bump` that renews it; the bump starts at the same seconds-since-the-epoch value on
//! every node, as nodes started in the same second have there), a `SmallRng` seeded per node.
//! Every node but node 0 announces to node 0. A graceful leave is `leave_cluster`, after which
//! the node stops (foca's docs call it the cleanest way to terminate a running Foca: left
//! running, a renewable identity would rejoin under a new identity).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use fjell_compare::net::{Ctx, NodeId, Observation, Protocol};
use foca::{Config, Foca, Identity, NoCustomBroadcast, Notification, PostcardCodec, Runtime};
use foca::{State, Timer};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::{addr_of, id_of};

/// Seconds since the epoch at the nodes' start (2026-12-01), the initial `bump` of every
/// identity.
const STARTED: u64 = 1_796_083_200;

/// foca's example identity: an address, and a bump that renews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Id {
    addr: SocketAddr,
    bump: u64,
}

impl Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

type Inner = Foca<Id, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// A foca node.
pub struct FocaNode {
    foca: Inner,
    n: usize,
    /// Left the cluster and stopped.
    stopped: bool,
}

struct Rt<'c, 'a> {
    ctx: &'c mut Ctx<'a, Timer<Id>>,
}

impl Runtime<Id> for Rt<'_, '_> {
    fn notify(&mut self, notification: Notification<'_, Id>) {
        if let Notification::MemberDown(id) = notification {
            let peer = id_of(id.addr);
            self.ctx.observe(Observation::Flagged(peer));
            self.ctx.observe(Observation::Departing(peer));
        }
    }

    fn send_to(&mut self, to: Id, data: &[u8]) {
        self.ctx.send(id_of(to.addr), data);
    }

    fn submit_after(&mut self, event: Timer<Id>, after: Duration) {
        self.ctx.submit_after(after, event);
    }
}

impl Protocol for FocaNode {
    type Timer = Timer<Id>;

    fn start(id: NodeId, n: usize, seed: u64, ctx: &mut Ctx<'_, Timer<Id>>) -> Self {
        let size = NonZeroU32::new(n as u32).expect("at least one node");
        let me = Id {
            addr: addr_of(id),
            bump: STARTED,
        };
        let mut foca = Foca::new(
            me,
            Config::new_lan(size),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
        );
        if id != 0 {
            // The announce is accepted by any identity at that address.
            let seed_node = Id {
                addr: addr_of(0),
                bump: 0,
            };
            foca.announce(seed_node, Rt { ctx }).expect("announce");
        }
        FocaNode {
            foca,
            n,
            stopped: false,
        }
    }

    fn on_message(&mut self, _from: NodeId, bytes: &[u8], ctx: &mut Ctx<'_, Timer<Id>>) {
        if !self.stopped {
            let _ = self.foca.handle_data(bytes, Rt { ctx });
        }
    }

    fn on_timer(&mut self, timer: Timer<Id>, ctx: &mut Ctx<'_, Timer<Id>>) {
        if !self.stopped {
            let _ = self.foca.handle_timer(timer, Rt { ctx });
        }
    }

    fn leave(&mut self, ctx: &mut Ctx<'_, Timer<Id>>) {
        self.foca.leave_cluster(Rt { ctx }).expect("leave_cluster");
        self.stopped = true;
    }

    fn members_seen(&self) -> usize {
        self.foca.num_members() + 1
    }

    fn all_up(&self) -> bool {
        self.foca.num_members() + 1 == self.n
            && self.foca.iter_members().all(|m| m.state() == State::Alive)
    }

    fn suspects(&self, peer: NodeId) -> Option<bool> {
        let addr = addr_of(peer);
        Some(
            self.foca
                .iter_membership_state()
                .any(|m| m.id().addr == addr && m.state() == State::Suspect),
        )
    }

    fn value_bytes(&self) -> usize {
        std::mem::size_of::<Inner>()
    }
}
