//! fjell-core through [`Protocol`]: `Config::default()`, every node joins with
//! `join_seed_nodes` through the first three nodes (as fjell-sim's cold start does), drains
//! its outputs after every input and sets its deadline from `poll_timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use fjell_compare::net::{Ctx, NodeId, Observation, Protocol};
use fjell_core::{
    Config, Event, Instant, LeaseRequest, MemberStatus, Node, Sink, Transmit, UniqueAddress,
};

use super::{addr_of, id_of, splitmix};

/// Heartbeat intervals kept per monitored member: the server preset's, for every size.
pub const H: usize = 1000;

/// Seeds every node joins through.
pub const SEEDS: usize = 3;

/// A fjell node holding at most `M` members and `R` reachability records.
pub struct Fjell<const M: usize, const R: usize> {
    node: Box<Node<M, R, H>>,
    me: NodeId,
    /// The node's own message buffer, as fjell-runtime's driver keeps one: it grows to the
    /// largest message the node sent (`Node::drain_vec`).
    buf: Vec<u8>,
}

fn at(d: Duration) -> Instant {
    Instant::from_micros(d.as_micros() as u64)
}

struct Out<'c, 'a> {
    ctx: &'c mut Ctx<'a, ()>,
}

impl Sink for Out<'_, '_> {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        self.ctx.send(id_of(t.destination), bytes);
    }

    fn lease(&mut self, _: LeaseRequest, _: Instant) -> Option<bool> {
        None // the default downing never asks
    }

    fn event(&mut self, e: Event) {
        let peer = |m: &fjell_core::Member| id_of(m.address.socket_addr());
        match e {
            Event::UnreachableMember(m) => self.ctx.observe(Observation::Flagged(peer(&m))),
            Event::MemberDowned(m) => {
                self.ctx.observe(Observation::Flagged(peer(&m)));
                self.ctx.observe(Observation::Departing(peer(&m)));
            }
            Event::MemberLeft(m) | Event::MemberExited(m) => {
                self.ctx.observe(Observation::Departing(peer(&m)))
            }
            Event::MemberRemoved { member, .. } => {
                self.ctx.observe(Observation::Departing(peer(&member)))
            }
            _ => {}
        }
    }
}

impl<const M: usize, const R: usize> Fjell<M, R> {
    fn flush(&mut self, ctx: &mut Ctx<'_, ()>) {
        let now = at(ctx.now());
        self.node
            .drain_vec(now, &mut self.buf, &mut Out { ctx: &mut *ctx });
        let deadline = self
            .node
            .poll_timeout()
            .map(|t| Duration::from_micros(t.as_micros()));
        ctx.set_deadline(deadline);
    }
}

impl<const M: usize, const R: usize> Protocol for Fjell<M, R> {
    type Timer = ();

    fn start(id: NodeId, n: usize, seed: u64, ctx: &mut Ctx<'_, ()>) -> Self {
        let uid = splitmix(seed ^ 0xF1E1) | 1;
        let me = UniqueAddress::new(addr_of(id), uid);
        let node = Box::new(Node::new(Config::default(), me, seed).expect("default config"));
        let mut f = Fjell {
            node,
            me: id,
            buf: Vec::new(),
        };
        let seeds: Vec<SocketAddr> = (0..SEEDS.min(n)).map(addr_of).collect();
        f.node
            .join_seed_nodes(at(ctx.now()), &seeds)
            .expect("join_seed_nodes");
        f.flush(ctx);
        f
    }

    fn on_message(&mut self, from: NodeId, bytes: &[u8], ctx: &mut Ctx<'_, ()>) {
        let _ = self
            .node
            .handle_message(at(ctx.now()), addr_of(from), bytes);
        self.flush(ctx);
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_, ()>) {
        self.node.handle_timeout(at(ctx.now()));
        self.flush(ctx);
    }

    fn leave(&mut self, ctx: &mut Ctx<'_, ()>) {
        self.node
            .leave(at(ctx.now()), addr_of(self.me))
            .expect("leave");
        self.flush(ctx);
    }

    fn members_seen(&self) -> usize {
        self.node.members().len()
    }

    fn all_up(&self) -> bool {
        self.node
            .members()
            .iter()
            .all(|m| m.status == MemberStatus::Up)
    }

    fn value_bytes(&self) -> usize {
        std::mem::size_of::<Node<M, R, H>>()
    }
}
