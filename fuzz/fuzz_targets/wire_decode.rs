//! Any bytes into the wire decoder: never a panic; whatever decodes is a valid state, and
//! every kind survives a re-encode/decode round trip unchanged (message and gossip).
#![no_main]

use fjell_core::testing::gossip::Gossip;
use fjell_core::testing::wire::{self, Message};
use fjell_core::Instant;
use libfuzzer_sys::fuzz_target;

type G = Gossip<32, 64>;

fuzz_target!(|data: &[u8]| {
    let now = Instant::from_millis(1_000_000);
    let mut scratch = Box::new(G::new());
    let Ok(msg) = Message::parse(data, &mut scratch, now) else {
        return;
    };
    let carries_gossip = matches!(
        msg,
        Message::Gossip { .. } | Message::Welcome { .. } | Message::GossipDelta { .. }
    );
    if carries_gossip {
        scratch
            .check_invariants()
            .expect("decoded gossip violates invariants");
    }
    let out = msg.clone().with_gossip(&*scratch);
    let mut buf = vec![0u8; wire::max_message_len(32, 64)];
    let len = out.emit(now, &mut buf).expect("re-encode fits");
    assert_eq!(len, out.buffer_len(now));
    let mut again = Box::new(G::new());
    let msg2 = Message::parse(&buf[..len], &mut again, now).expect("re-decode");
    assert_eq!(msg2, msg);
    if carries_gossip {
        // Tombstone instants too: ages are whole milliseconds, and so is `now`.
        assert_eq!(again, scratch);
    }
});
