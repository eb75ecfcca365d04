//! Single rules of the sans-IO replicator, each driven by hand between two replicas:
//! anti-entropy statuses in parts, entries over the limits peers decode with, and time
//! arithmetic at the edges.

use std::net::SocketAddr;
use std::time::Duration;

use fjell_ddata::crdt::GSet;
use fjell_ddata::replicator::{
    Envelope, Limits, MemberView, Message, OpError, OpResult, Output, ReplicationError, Replicator,
    WriteConsistency,
};
use fjell_ddata::{Key, ReplicatorSettings};
use fjell_runtime::core::{MemberStatus, UniqueAddress};

fn id(n: u8) -> UniqueAddress {
    UniqueAddress::new(SocketAddr::from(([10, 0, 0, n], 7000)), 1)
}

fn pair(settings: ReplicatorSettings) -> (Replicator, Replicator) {
    settings.validate().expect("the test's settings are valid");
    let members: Vec<MemberView> = [id(1), id(2)]
        .into_iter()
        .map(|id| MemberView {
            id,
            status: MemberStatus::Up,
            reachable: true,
        })
        .collect();
    let mut a = Replicator::new(id(1), settings.clone(), 1, 0);
    let mut b = Replicator::new(id(2), settings, 2, 0);
    a.handle_members(0, &members);
    b.handle_members(0, &members);
    (a, b)
}

/// The messages `r` has to send, each encoded and decoded as over the network.
fn sent(r: &mut Replicator) -> Vec<Message> {
    let limits = r.settings().limits;
    let mut out = Vec::new();
    while let Some(o) = r.poll_output() {
        if let Output::Send { message, .. } = o {
            let decoded = Message::decode(&message.encode(), &limits)
                .expect("a replica sends only what its peers decode");
            out.push(decoded);
        }
    }
    out
}

fn deliver(to: &mut Replicator, from: &Replicator, messages: Vec<Message>, now: u64) {
    for m in messages {
        to.handle_message(now, from.id().socket_addr(), m);
    }
}

#[test]
fn a_status_chunk_in_parts_does_not_make_the_peer_send_the_other_parts_keys() {
    let settings = ReplicatorSettings {
        max_delta_elements: 3,
        limits: Limits {
            max_entries: 3,
            ..ReplicatorSettings::default().limits
        },
        ..ReplicatorSettings::default()
    };
    let (mut a, mut b) = pair(settings.clone());
    // Both replicas hold the same 20 keys.
    for k in 0..20 {
        let key: Key<GSet> = Key::new(format!("key-{k}"));
        a.update(0, &key, WriteConsistency::Local, |s| s.add("x"))
            .unwrap();
        let entry: Envelope = a.entry(key.id()).unwrap().clone();
        b.load(key.id(), entry).unwrap();
    }
    sent(&mut a);
    sent(&mut b);
    // A gossip tick: A sends its digests, some chunk in several parts (the premise).
    let now = settings.gossip_interval.as_millis() as u64;
    a.handle_timeout(now);
    let statuses: Vec<Message> = sent(&mut a)
        .into_iter()
        .filter(|m| matches!(m, Message::Status { .. }))
        .collect();
    let chunks: std::collections::BTreeSet<u32> = statuses
        .iter()
        .map(|m| match m {
            Message::Status { chunk, .. } => *chunk,
            _ => unreachable!(),
        })
        .collect();
    assert!(
        statuses.len() > chunks.len(),
        "premise: a chunk goes in parts ({} statuses, {} chunks)",
        statuses.len(),
        chunks.len()
    );
    deliver(&mut b, &a, statuses, now);
    let answers = sent(&mut b);
    assert!(
        answers.is_empty(),
        "B holds what A holds, yet answered {answers:?}"
    );
}

#[test]
fn an_entry_over_the_message_bytes_is_refused_kept_locally_and_never_sent() {
    let settings = ReplicatorSettings {
        limits: Limits {
            max_message_bytes: 64 * 1024,
            ..ReplicatorSettings::default().limits
        },
        ..ReplicatorSettings::default()
    };
    let (mut a, mut b) = pair(settings.clone());
    let big: Key<GSet> = Key::new("big");
    let small: Key<GSet> = Key::new("small");
    a.watch("big");
    a.update(0, &small, WriteConsistency::Local, |s| s.add("s"))
        .unwrap();
    a.update(0, &big, WriteConsistency::Local, |s| {
        s.add("a".repeat(40_000))
    })
    .unwrap();
    sent(&mut a);
    let err = a
        .update(0, &big, WriteConsistency::Local, |s| {
            s.add("b".repeat(40_000))
        })
        .unwrap_err();
    assert!(
        matches!(err, OpError::TooManyBytes { bytes, limit } if bytes > limit),
        "{err:?}"
    );
    // Applied and reported locally all the same, never sent.
    assert_eq!(a.local(&big).unwrap().unwrap().len(), 2);
    let mut changed = false;
    while let Some(o) = a.poll_output() {
        match o {
            Output::Changed { key } => changed |= key == "big",
            Output::Send { .. } => panic!("an oversized update was sent"),
            _ => {}
        }
    }
    assert!(changed, "the local change was not reported");
    // B asks for everything: it gets the small key in messages it decodes, not the big
    // one, and A counts what it left out.
    let now = settings.gossip_interval.as_millis() as u64;
    b.handle_timeout(now);
    let asks = sent(&mut b);
    deliver(&mut a, &b, asks, now);
    let answers = sent(&mut a);
    assert!(!answers.is_empty());
    deliver(&mut b, &a, answers, now);
    assert!(b.local(&small).unwrap().is_some());
    assert!(b.local(&big).unwrap().is_none());
    assert!(a.oversized_entries_skipped() > 0);
}

#[test]
fn huge_timeouts_and_clock_values_do_not_overflow() {
    let (mut a, _b) = pair(ReplicatorSettings::default());
    let key: Key<GSet> = Key::new("k");
    let level = WriteConsistency::All {
        timeout: Duration::MAX,
    };
    let far = u64::MAX - 10;
    a.update(far, &key, level, |s| s.add("x")).unwrap();
    a.handle_timeout(u64::MAX - 1);
    a.handle_timeout(u64::MAX);
    let mut timed_out = false;
    while let Some(o) = a.poll_output() {
        if let Output::Done { result, .. } = o {
            timed_out |= matches!(
                result,
                OpResult::Write(Err(ReplicationError::Timeout { .. }))
            );
        }
    }
    assert!(timed_out, "the write never timed out");
}

#[test]
fn key_ids_are_checked_and_a_trailing_star_is_a_pattern_not_a_key() {
    let (mut a, _b) = pair(ReplicatorSettings::default());
    for bad in [String::new(), "x".repeat(1025), "cart-*".to_string()] {
        let key: Key<GSet> = Key::new(bad.clone());
        let got = a.update(0, &key, WriteConsistency::Local, |s| s.add("x"));
        assert_eq!(got, Err(OpError::BadKey), "{bad:?}");
    }
    let fine: Key<GSet> = Key::new("cart-*x");
    assert!(a
        .update(0, &fine, WriteConsistency::Local, |s| s.add("x"))
        .is_ok());
}

#[test]
fn a_pruning_marker_for_the_receiving_replica_itself_is_dropped() {
    use fjell_ddata::crdt::{GCounter, ReplicatedData};
    use fjell_ddata::replicator::Pruning;
    let (mut a, b) = pair(ReplicatorSettings::default());
    let key: Key<GCounter> = Key::new("c");
    let me = a.id();
    a.update(0, &key, WriteConsistency::Local, |c| c.increment(me, 5))
        .unwrap();
    // A peer claims A was pruned: merged as is, every merge would strip A's own count.
    let mut hostile = Envelope::new(GCounter::default().into_data());
    hostile.pruning.insert(
        me,
        Pruning::Performed {
            obsolete_at: u64::MAX,
            renamed: Vec::new(),
        },
    );
    let to_uid = me.uid();
    a.handle_message(
        1,
        b.id().socket_addr(),
        Message::Gossip {
            entries: vec![("c".into(), hostile)],
            send_back: false,
            to_uid,
        },
    );
    assert_eq!(a.local(&key).unwrap().unwrap().value(), 5);
    assert!(a.entry("c").unwrap().pruning.is_empty());
}
