//! The laws every replicated data type must obey, checked on values built the way replicas
//! build them: random operations on three replicas, with random merges between them, so the
//! values share history (and removes meet concurrent adds).
//!
//! - merge is commutative, associative and idempotent;
//! - a delta replays its mutations: `x ⊔ d == y`, `y ⊔ d == y`, also on a replica that has
//!   seen more than `x`, and deltas of several steps joined or applied out of order;
//! - pruning a replica keeps what a user observes and removes the replica;
//! - values (and deltas) survive a postcard round trip.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::SocketAddr;

use fjell_ddata::crdt::{
    modified_by, Crdt, Data, Element, Flag, GCounter, GSet, Kind, LWWMap, LWWRegister, ORMap,
    ORMultiMap, ORSet, PNCounter, PNCounterMap, ReplicaId, ReplicatedData,
};
use fjell_runtime::core::UniqueAddress;
use proptest::prelude::*;

const REPLICAS: usize = 3;

/// 96 cases per property, a few seconds in debug; `PROPTEST_CASES` asks for more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(96)
}

fn replica(i: usize) -> ReplicaId {
    UniqueAddress::new(
        SocketAddr::from(([127, 0, 0, 1], 2550 + i as u16)),
        100 + i as u64,
    )
}

/// What a user sees of a value: pruning must not change it.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Count(i128),
    Elements(Vec<Element>),
    Value(Option<Element>),
    Flag(bool),
    Map(Vec<(Element, Seen)>),
}

/// A type under test: its operations and what a user sees of it.
trait Model: Crdt + Default {
    type Op: Debug + Clone + 'static;
    fn op() -> BoxedStrategy<Self::Op>;
    fn apply(&mut self, node: ReplicaId, op: &Self::Op);
    fn seen(&self) -> Seen;
}

#[derive(Debug, Clone)]
enum Step<Op> {
    Mutate(usize, Op),
    Merge {
        into: usize,
        from: usize,
    },
    /// `into` applies `from`'s pending delta, as the replicator ships them.
    Delta {
        into: usize,
        from: usize,
    },
}

fn history<M: Model>() -> impl Strategy<Value = Vec<Step<M::Op>>> {
    let step = prop_oneof![
        4 => (0..REPLICAS, M::op()).prop_map(|(r, op)| Step::Mutate(r, op)),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(into, from)| Step::Merge { into, from }),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(into, from)| Step::Delta { into, from }),
    ];
    prop::collection::vec(step, 0..24)
}

fn ops<M: Model>() -> impl Strategy<Value = Vec<M::Op>> {
    prop::collection::vec(M::op(), 0..5)
}

fn run<M: Model>(steps: &[Step<M::Op>]) -> Vec<M> {
    let mut rs: Vec<M> = (0..REPLICAS).map(|_| M::default()).collect();
    for step in steps {
        match step {
            Step::Mutate(r, op) => rs[*r].apply(replica(*r), op),
            Step::Merge { into, from } => {
                let other = rs[*from].clone();
                rs[*into].merge(&other);
            }
            Step::Delta { into, from } => {
                if let Some(d) = rs[*from].take_delta() {
                    rs[*into].merge(&d);
                }
            }
        }
    }
    for r in &mut rs {
        let _ = r.take_delta();
    }
    rs
}

fn join<M: Crdt>(a: &M, b: &M) -> M {
    let mut m = a.clone();
    m.merge(b);
    m
}

fn round_trip<M: Crdt>(v: &M) -> Result<(), TestCaseError> {
    let bytes = postcard::to_allocvec(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: M = postcard::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, v);
    Ok(())
}

fn check_laws<M: Model>(
    steps: &[Step<M::Op>],
    first: &[M::Op],
    second: &[M::Op],
) -> Result<(), TestCaseError> {
    let rs = run::<M>(steps);
    let (a, b, c) = (&rs[0], &rs[1], &rs[2]);

    // Merge laws.
    prop_assert_eq!(join(a, b), join(b, a), "commutative");
    prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)), "associative");
    prop_assert_eq!(&join(a, a), a, "idempotent");
    prop_assert_eq!(
        &join(&join(a, b), b),
        &join(a, b),
        "idempotent after a merge"
    );

    // Deltas: replica 0 mutates x into y, then y into y2.
    let x = a.clone();
    let mut y = x.clone();
    for op in first {
        y.apply(replica(0), op);
    }
    let d1 = y.take_delta();
    let mut y2 = y.clone();
    for op in second {
        y2.apply(replica(0), op);
    }
    let d2 = y2.take_delta();
    let ahead = join(b, &x); // a replica that has seen x, and more
    match &d1 {
        Some(d) => {
            prop_assert_eq!(&join(&x, d), &y, "x ⊔ d == y");
            prop_assert_eq!(&join(&y, d), &y, "y ⊔ d == y");
            prop_assert_eq!(join(&ahead, d), join(&ahead, &y), "z ⊔ d == z ⊔ y");
            round_trip(d)?;
        }
        None if M::HAS_DELTAS => prop_assert_eq!(&y, &x, "no delta, no change"),
        None => {}
    }
    if M::HAS_DELTAS {
        let joined = match (&d1, &d2) {
            (Some(d1), Some(d2)) => Some(join(d1, d2)),
            (d1, d2) => d1.clone().or_else(|| d2.clone()),
        };
        let replayed = joined.map_or_else(|| x.clone(), |d| join(&x, &d));
        prop_assert_eq!(&replayed, &y2, "x ⊔ (d1 ⊔ d2) == y2");
        let mut late = x.clone();
        for d in [&d2, &d1].into_iter().flatten() {
            late.merge(d);
        }
        prop_assert_eq!(&late, &y2, "x ⊔ d2 ⊔ d1 == y2");
    }

    // Pruning replica 1 into replica 0, on each replica and on the join of all.
    let all = join(&join(a, b), c);
    let (removed, into) = (replica(1), replica(0));
    for v in [a, b, c, &all] {
        let mut pruned = v.clone();
        pruned.prune(removed, into);
        prop_assert_eq!(pruned.seen(), v.seen(), "pruning keeps the value");
        prop_assert!(!modified_by(&pruned).contains(&removed), "pruned away");
        // Merging with a replica that cleaned up the removed node keeps the value too.
        let mut cleaned = v.clone();
        cleaned.pruning_cleanup(removed);
        prop_assert!(!modified_by(&cleaned).contains(&removed), "cleaned up");
        let mut after = cleaned.clone();
        after.merge(&pruned);
        prop_assert_eq!(after.seen(), v.seen(), "cleaned ⊔ pruned");
        prop_assert!(!modified_by(&after).contains(&removed));
    }

    for v in [a, b, c, &all, &y2] {
        round_trip(v)?;
    }
    Ok(())
}

fn element() -> impl Strategy<Value = Element> {
    (0u64..5).prop_map(Element::from)
}

fn key() -> impl Strategy<Value = Element> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(Element::from)
}

fn elements<'a>(it: impl Iterator<Item = &'a Element>) -> Seen {
    Seen::Elements(it.cloned().collect())
}

// ---- counters, sets, flag, register ----

impl Model for GCounter {
    type Op = u64;
    fn op() -> BoxedStrategy<u64> {
        (0u64..5).boxed()
    }
    fn apply(&mut self, node: ReplicaId, n: &u64) {
        self.increment(node, *n);
    }
    fn seen(&self) -> Seen {
        Seen::Count(self.value() as i128)
    }
}

#[derive(Debug, Clone)]
enum CounterOp {
    Up(u64),
    Down(u64),
}

fn counter_op() -> BoxedStrategy<CounterOp> {
    prop_oneof![
        (0u64..5).prop_map(CounterOp::Up),
        (0u64..5).prop_map(CounterOp::Down)
    ]
    .boxed()
}

fn apply_counter(c: &mut PNCounter, node: ReplicaId, op: &CounterOp) {
    match op {
        CounterOp::Up(n) => c.increment(node, *n),
        CounterOp::Down(n) => c.decrement(node, *n),
    }
}

impl Model for PNCounter {
    type Op = CounterOp;
    fn op() -> BoxedStrategy<CounterOp> {
        counter_op()
    }
    fn apply(&mut self, node: ReplicaId, op: &CounterOp) {
        apply_counter(self, node, op);
    }
    fn seen(&self) -> Seen {
        Seen::Count(self.value())
    }
}

impl Model for GSet {
    type Op = Element;
    fn op() -> BoxedStrategy<Element> {
        element().boxed()
    }
    fn apply(&mut self, _: ReplicaId, e: &Element) {
        self.add(e.clone());
    }
    fn seen(&self) -> Seen {
        elements(self.elements())
    }
}

#[derive(Debug, Clone)]
enum SetOp {
    Add(Element),
    Remove(Element),
    Clear,
}

fn set_op() -> BoxedStrategy<SetOp> {
    prop_oneof![
        4 => element().prop_map(SetOp::Add),
        3 => element().prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
    .boxed()
}

fn apply_set(s: &mut ORSet, node: ReplicaId, op: &SetOp) {
    match op {
        SetOp::Add(e) => s.add(node, e.clone()),
        SetOp::Remove(e) => s.remove(e.clone()),
        SetOp::Clear => s.clear(),
    }
}

impl Model for ORSet {
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        set_op()
    }
    fn apply(&mut self, node: ReplicaId, op: &SetOp) {
        apply_set(self, node, op);
    }
    fn seen(&self) -> Seen {
        elements(self.elements())
    }
}

impl Model for Flag {
    type Op = bool;
    fn op() -> BoxedStrategy<bool> {
        prop::bool::weighted(0.2).boxed()
    }
    fn apply(&mut self, _: ReplicaId, on: &bool) {
        if *on {
            self.switch_on();
        }
    }
    fn seen(&self) -> Seen {
        Seen::Flag(self.enabled())
    }
}

/// A value and a timestamp from a small range, so ties between replicas are common.
type Write = (Element, i64);

fn write() -> BoxedStrategy<Write> {
    (element(), 0i64..6).boxed()
}

impl Model for LWWRegister {
    type Op = Write;
    fn op() -> BoxedStrategy<Write> {
        write()
    }
    fn apply(&mut self, node: ReplicaId, (v, ts): &Write) {
        self.set(node, v.clone(), *ts);
    }
    fn seen(&self) -> Seen {
        Seen::Value(self.value().cloned())
    }
}

// ---- maps ----

#[derive(Debug, Clone)]
enum LwwMapOp {
    Put(Element, Write),
    Remove(Element),
}

impl Model for LWWMap {
    type Op = LwwMapOp;
    fn op() -> BoxedStrategy<LwwMapOp> {
        prop_oneof![
            3 => (key(), write()).prop_map(|(k, w)| LwwMapOp::Put(k, w)),
            1 => key().prop_map(LwwMapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, node: ReplicaId, op: &LwwMapOp) {
        match op {
            LwwMapOp::Put(k, (v, ts)) => self.put(node, k.clone(), v.clone(), *ts),
            LwwMapOp::Remove(k) => self.remove(k.clone()),
        }
    }
    fn seen(&self) -> Seen {
        Seen::Map(
            self.entries()
                .map(|(k, v)| (k.clone(), Seen::Value(Some(v.clone()))))
                .collect(),
        )
    }
}

#[derive(Debug, Clone)]
enum CounterMapOp {
    Count(Element, CounterOp),
    Remove(Element),
}

impl Model for PNCounterMap {
    type Op = CounterMapOp;
    fn op() -> BoxedStrategy<CounterMapOp> {
        prop_oneof![
            4 => (key(), counter_op()).prop_map(|(k, op)| CounterMapOp::Count(k, op)),
            1 => key().prop_map(CounterMapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, node: ReplicaId, op: &CounterMapOp) {
        match op {
            CounterMapOp::Count(k, CounterOp::Up(n)) => self.increment(node, k.clone(), *n),
            CounterMapOp::Count(k, CounterOp::Down(n)) => self.decrement(node, k.clone(), *n),
            CounterMapOp::Remove(k) => self.remove(k.clone()),
        }
    }
    fn seen(&self) -> Seen {
        Seen::Map(
            self.entries()
                .map(|(k, v)| (k.clone(), Seen::Count(v)))
                .collect(),
        )
    }
}

#[derive(Debug, Clone)]
enum MultiMapOp {
    Bind(Element, Element),
    Unbind(Element, Element),
    Put(Element, Vec<Element>),
    Remove(Element),
}

impl Model for ORMultiMap {
    type Op = MultiMapOp;
    fn op() -> BoxedStrategy<MultiMapOp> {
        prop_oneof![
            4 => (key(), element()).prop_map(|(k, v)| MultiMapOp::Bind(k, v)),
            3 => (key(), element()).prop_map(|(k, v)| MultiMapOp::Unbind(k, v)),
            1 => (key(), prop::collection::vec(element(), 0..3))
                .prop_map(|(k, vs)| MultiMapOp::Put(k, vs)),
            1 => key().prop_map(MultiMapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, node: ReplicaId, op: &MultiMapOp) {
        match op {
            MultiMapOp::Bind(k, v) => self.add_binding(node, k.clone(), v.clone()),
            MultiMapOp::Unbind(k, v) => self.remove_binding(node, k.clone(), v.clone()),
            MultiMapOp::Put(k, vs) => self.put(node, k.clone(), vs.iter().cloned()),
            MultiMapOp::Remove(k) => self.remove(k.clone()),
        }
    }
    fn seen(&self) -> Seen {
        Seen::Map(
            self.entries()
                .map(|(k, s)| (k.clone(), elements(s.elements())))
                .collect(),
        )
    }
}

/// Operations on a map of values of any kind. Keys are few, so different kinds meet under
/// one key (a typed update of another kind is refused; a put of another kind replaces).
#[derive(Debug, Clone)]
enum DataMapOp {
    Count(Element, u64),
    Set(Element, SetOp),
    Flag(Element),
    Register(Element, Write),
    Nested(Element, Element, CounterOp),
    Put(Element, Kind),
    Remove(Element),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(vec![
        Kind::GCounter,
        Kind::PNCounter,
        Kind::GSet,
        Kind::ORSet,
        Kind::LWWRegister,
        Kind::Flag,
        Kind::ORMap,
        Kind::LWWMap,
        Kind::PNCounterMap,
        Kind::ORMultiMap,
    ])
}

impl Model for ORMap<Data> {
    type Op = DataMapOp;
    fn op() -> BoxedStrategy<DataMapOp> {
        prop_oneof![
            2 => (key(), 0u64..5).prop_map(|(k, n)| DataMapOp::Count(k, n)),
            2 => (key(), set_op()).prop_map(|(k, op)| DataMapOp::Set(k, op)),
            1 => key().prop_map(DataMapOp::Flag),
            1 => (key(), write()).prop_map(|(k, w)| DataMapOp::Register(k, w)),
            2 => (key(), key(), counter_op()).prop_map(|(k, i, op)| DataMapOp::Nested(k, i, op)),
            1 => (key(), kind()).prop_map(|(k, kind)| DataMapOp::Put(k, kind)),
            1 => key().prop_map(DataMapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, node: ReplicaId, op: &DataMapOp) {
        // A refused update (another kind under the key) is part of what is tested.
        let _ = match op {
            DataMapOp::Count(k, n) => {
                self.update_as::<GCounter>(node, k.clone(), |c| c.increment(node, *n))
            }
            DataMapOp::Set(k, op) => {
                self.update_as::<ORSet>(node, k.clone(), |s| apply_set(s, node, op))
            }
            DataMapOp::Flag(k) => self.update_as::<Flag>(node, k.clone(), Flag::switch_on),
            DataMapOp::Register(k, (v, ts)) => {
                self.update_as::<LWWRegister>(node, k.clone(), |r| {
                    r.set(node, v.clone(), *ts);
                })
            }
            DataMapOp::Nested(k, inner, op) => {
                self.update_as::<ORMap<Data>>(node, k.clone(), |m| {
                    let _ = m.update_as::<PNCounter>(node, inner.clone(), |c| {
                        apply_counter(c, node, op)
                    });
                })
            }
            DataMapOp::Put(k, kind) => {
                self.put(node, k.clone(), Data::empty(*kind));
                Ok(())
            }
            DataMapOp::Remove(k) => {
                self.remove(k.clone());
                Ok(())
            }
        };
    }
    fn seen(&self) -> Seen {
        seen_map(self)
    }
}

fn seen_map(m: &ORMap<Data>) -> Seen {
    Seen::Map(m.iter().map(|(k, v)| (k.clone(), seen_data(v))).collect())
}

fn seen_data(d: &Data) -> Seen {
    match d {
        Data::GCounter(v) => v.seen(),
        Data::PNCounter(v) => v.seen(),
        Data::GSet(v) => v.seen(),
        Data::ORSet(v) => v.seen(),
        Data::LWWRegister(v) => v.seen(),
        Data::Flag(v) => v.seen(),
        Data::ORMap(v) => seen_map(v),
        Data::LWWMap(v) => v.seen(),
        Data::PNCounterMap(v) => v.seen(),
        Data::ORMultiMap(v) => v.seen(),
    }
}

// ---- the properties ----

macro_rules! laws {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
            #[test]
            fn $name(
                steps in history::<$ty>(),
                first in ops::<$ty>(),
                second in ops::<$ty>(),
            ) {
                check_laws::<$ty>(&steps, &first, &second)?;
            }
        }
    )*};
}

laws!(
    gcounter: GCounter,
    pncounter: PNCounter,
    gset: GSet,
    orset: ORSet,
    flag: Flag,
    lww_register: LWWRegister,
    ormap_of_data: ORMap<Data>,
    lww_map: LWWMap,
    pncounter_map: PNCounterMap,
    ormultimap: ORMultiMap,
);

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// `Data` of mixed kinds: the merge stays a lattice, and the typed view agrees.
    #[test]
    fn data_of_mixed_kinds(
        steps in history::<ORMap<Data>>(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let rs = run::<ORMap<Data>>(&steps);
        // The values under the maps' keys, and the maps themselves, as `Data`.
        let mut pool: Vec<Data> = rs.iter().map(|m| m.clone().into_data()).collect();
        for m in &rs {
            pool.extend(m.iter().map(|(_, v)| v.clone()));
        }
        let [x, y, z] = [0, 1, 2].map(|i| pool[picks[i].index(pool.len())].clone());
        prop_assert_eq!(join(&x, &y), join(&y, &x));
        prop_assert_eq!(join(&join(&x, &y), &z), join(&x, &join(&y, &z)));
        prop_assert_eq!(&join(&x, &x), &x);
        let mut tried = x.clone();
        match tried.try_merge(&y) {
            Ok(()) => prop_assert_eq!(&tried, &join(&x, &y)),
            Err(e) => {
                prop_assert_eq!((e.expected, e.found), (x.kind(), y.kind()));
                prop_assert_eq!(&tried, &x);
            }
        }
        if let Ok(map) = ORMap::<Data>::from_data_ref(&x) {
            prop_assert_eq!(&map.clone().into_data(), &x);
        }
        round_trip(&x)?;
    }

    /// Arbitrary bytes never make decoding panic, and what decodes re-encodes to a value
    /// that decodes equal.
    #[test]
    fn hostile_bytes_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        fn check<M: Crdt>(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Ok(v) = postcard::from_bytes::<M>(bytes) {
                let mut merged = v.clone();
                merged.merge(&v);
                prop_assert_eq!(&merged, &v);
                round_trip(&v)?;
                let _ = modified_by(&v);
                let _ = v.size();
            }
            Ok(())
        }
        check::<GCounter>(&bytes)?;
        check::<PNCounter>(&bytes)?;
        check::<GSet>(&bytes)?;
        check::<ORSet>(&bytes)?;
        check::<LWWRegister>(&bytes)?;
        check::<Flag>(&bytes)?;
        check::<Data>(&bytes)?;
        check::<LWWMap>(&bytes)?;
        check::<PNCounterMap>(&bytes)?;
        check::<ORMultiMap>(&bytes)?;
    }
}

#[test]
fn modified_by_names_the_writers() {
    let mut m = ORMap::<Data>::default();
    m.update_as::<GCounter>(replica(0), "a", |c| c.increment(replica(2), 1))
        .unwrap();
    assert_eq!(modified_by(&m), BTreeSet::from([replica(0), replica(2)]));
}
