//! # fjell-compare
//!
//! Measures fjell-core against foca 1.0 (a sans-IO SWIM library) through one network model
//! and one set of definitions, so that the ratios can be reproduced with one command:
//!
//! ```text
//! cargo bench -p fjell-compare --bench peers            # 10, 100 and 1,000 nodes
//! cargo bench -p fjell-compare --bench peers -- 4096    # any list of sizes
//! ```
//!
//! The library holds what is shared and knows neither protocol: the discrete-event network
//! model ([`net`]: virtual clock, 1 ms one-way latency, FIFO links, no loss, one event queue for
//! messages and every protocol's timers), the [`net::Protocol`] trait each protocol is driven
//! through, the measurements and their definitions ([`measure`]), and a counting allocator for
//! the heap the nodes hold ([`heap`]). The bench (`benches/peers.rs`) holds the two adapters,
//! the targets and the output.
//!
//! A protocol plugs in by implementing [`net::Protocol`]. A toy one, in which every node
//! greets every other node once and counts the greetings:
//!
//! ```
//! use fjell_compare::net::{Ctx, Link, NodeId, Protocol, Sim};
//! use std::time::Duration;
//!
//! struct Hello { n: usize, heard: usize }
//!
//! impl Protocol for Hello {
//!     type Timer = ();
//!     fn start(id: NodeId, n: usize, _seed: u64, ctx: &mut Ctx<'_, ()>) -> Self {
//!         for to in (0..n).filter(|&to| to != id) {
//!             ctx.send(to, b"hello");
//!         }
//!         Hello { n, heard: 0 }
//!     }
//!     fn on_message(&mut self, _from: NodeId, _bytes: &[u8], _ctx: &mut Ctx<'_, ()>) {
//!         self.heard += 1;
//!     }
//!     fn leave(&mut self, _ctx: &mut Ctx<'_, ()>) {}
//!     fn members_seen(&self) -> usize { self.heard + 1 }
//!     fn all_up(&self) -> bool { self.heard + 1 == self.n }
//!     fn value_bytes(&self) -> usize { std::mem::size_of::<Self>() }
//! }
//!
//! let mut sim: Sim<Hello> = Sim::start(4, 1, Link::LAN);
//! let ms = Duration::from_millis;
//! let up = sim.run_until(ms(100), ms(1), |s| s.nodes().iter().all(|p| p.all_up()));
//! assert_eq!(up, Some(Link::LAN.latency)); // every greeting arrives after exactly 1 ms
//! assert_eq!((sim.traffic().messages, sim.traffic().bytes), (12, 60));
//! ```

#![deny(missing_docs)]

pub mod heap;
pub mod measure;
pub mod net;
