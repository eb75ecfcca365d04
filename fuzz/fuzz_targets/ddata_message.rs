//! fjell-ddata's replicator messages from a hostile peer: decoding never panics and either
//! refuses the bytes or yields a message within the limits that re-encodes to itself, and a
//! replicator handling it (holding entries of every kind under the message's keys) neither
//! panics nor leaves an entry over the size limit.
#![no_main]

use std::net::SocketAddr;

use fjell_core::{MemberStatus, UniqueAddress};
use fjell_ddata::crdt::{Data, Kind};
use fjell_ddata::replicator::{Envelope, Limits, MemberView, Message, Replicator};
use fjell_ddata::ReplicatorSettings;
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_entries: 64,
    max_entry_size: 4096,
    max_message_bytes: 1 << 20,
};

fuzz_target!(|bytes: &[u8]| {
    let Ok(message) = Message::decode(bytes, &LIMITS) else {
        return;
    };
    let again = Message::decode(&message.encode(), &LIMITS).expect("a decoded message re-encodes");
    assert_eq!(again, message);

    let peer = SocketAddr::from(([127, 0, 0, 2], 7000));
    let me = UniqueAddress::new(SocketAddr::from(([127, 0, 0, 1], 7000)), 1);
    let members = [me, UniqueAddress::new(peer, 1)].map(|id| MemberView {
        id,
        status: MemberStatus::Up,
        reachable: true,
    });
    let settings = ReplicatorSettings {
        limits: LIMITS,
        max_delta_elements: 64,
        ..ReplicatorSettings::default()
    };
    let mut r = Replicator::new(me, settings, 1, 0);
    r.handle_members(0, &members);
    // Entries of some kind under the message's keys, so merges meet existing values.
    let keys: Vec<String> = match &message {
        Message::Write { key, .. } | Message::Read { key, .. } => vec![key.clone()],
        Message::Deltas { entries } | Message::Gossip { entries, .. } => {
            entries.iter().map(|(k, _)| k.clone()).collect()
        }
        Message::Status { digests, .. } => digests.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    let kinds = [
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
    ];
    for (i, key) in keys.iter().enumerate() {
        let kind = kinds[(bytes.len() + i) % kinds.len()];
        let _ = r.load(key, Envelope::new(Data::empty(kind)));
    }
    r.handle_message(1, peer, message);
    r.handle_timeout(10_000);
    while r.poll_output().is_some() {}
});
