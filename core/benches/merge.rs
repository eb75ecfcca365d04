//! Gossip merge and codec micro-benchmarks: `cargo bench -p fjell-core --bench merge`.

use divan::Bencher;
use fjell_core::member::{AppVersion, Member, MemberStatus, RoleSet};
use fjell_core::testing::gossip::Gossip;
use fjell_core::testing::wire::{self, Message};
use fjell_core::{Instant, UniqueAddress};

type G = Gossip<1024, 1024>;

fn addr(i: usize) -> UniqueAddress {
    UniqueAddress::new(
        ([10, (i >> 8) as u8, i as u8, 1], 7355).into(),
        0x9E37_79B9 * i as u64 + 1,
    )
}

/// `n` Up members, every member has bumped the clock, half have seen it; `b` additionally
/// moves a few members on and bumps, so the merge is a true concurrent merge.
fn pair(n: usize) -> (Box<G>, Box<G>) {
    let mut a = Box::new(G::new());
    for i in 0..n {
        let mut m = Member::joining(addr(i), RoleSet::new(), AppVersion::new(1, 0, 0));
        m.status = MemberStatus::Up;
        m.up_number = std::num::NonZeroU32::new(i as u32 + 1);
        a.add_member(m).unwrap();
    }
    for i in 0..n {
        a.bump(addr(i), false).unwrap();
    }
    for i in 0..n / 2 {
        a.add_seen(addr(i));
    }
    let mut b = a.clone();
    for i in (0..n).step_by(10) {
        b.set_status(&addr(i), MemberStatus::Leaving).unwrap();
    }
    b.bump(addr(1), true).unwrap();
    a.bump(addr(2), true).unwrap();
    (a, b)
}

/// One concurrent merge, in place (what a node does with received gossip); the copy of the
/// receiving state made before each run is not timed.
#[divan::bench(args = [100, 1000])]
fn merge(bencher: Bencher, n: usize) {
    let (a, b) = pair(n);
    bencher
        .with_inputs(|| b.clone())
        .bench_local_refs(|g| g.merge_in(divan::black_box(&a)).unwrap());
}

#[divan::bench(args = [100, 1000])]
fn encode(bencher: Bencher, n: usize) {
    let (a, _) = pair(n);
    let mut buf = vec![0u8; wire::max_message_len(1024, 1024)];
    let msg = Message::Gossip {
        from: addr(0),
        to: addr(1),
        gossip: &*a,
    };
    bencher.bench_local(|| msg.emit(Instant::ZERO, &mut buf).unwrap());
}

#[divan::bench(args = [100, 1000])]
fn decode(bencher: Bencher, n: usize) {
    let (a, _) = pair(n);
    let mut buf = vec![0u8; wire::max_message_len(1024, 1024)];
    let msg = Message::Gossip {
        from: addr(0),
        to: addr(1),
        gossip: &*a,
    };
    let len = msg.emit(Instant::ZERO, &mut buf).unwrap();
    let mut scratch = Box::new(G::new());
    bencher.bench_local(|| Message::parse(&buf[..len], &mut scratch, Instant::ZERO).unwrap());
}

fn main() {
    divan::main();
}
