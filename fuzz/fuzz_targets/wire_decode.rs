//! Any bytes into the wire decoder: never a panic; whatever decodes is a valid state and
//! survives a re-encode/decode round trip unchanged.
#![no_main]

use fjell_core::testing::gossip::Gossip;
use fjell_core::testing::wire::{self, Message, Outgoing};
use fjell_core::Instant;
use libfuzzer_sys::fuzz_target;

type G = Gossip<32, 64>;

fuzz_target!(|data: &[u8]| {
    let now = Instant::from_millis(1_000_000);
    let mut scratch = Box::new(G::new());
    let Ok(msg) = wire::decode(data, &mut scratch, now) else {
        return;
    };
    if let Message::Gossip { from, to } | Message::Welcome { from, to } = msg {
        scratch
            .check_invariants()
            .expect("decoded gossip violates invariants");
        let mut buf = vec![0u8; wire::max_message_len(32, 64)];
        let out = Outgoing::Gossip { from, to };
        let len = wire::encode(&out, &scratch, now, &mut buf).expect("re-encode fits");
        let mut again = Box::new(G::new());
        let msg2 = wire::decode(&buf[..len], &mut again, now).expect("re-decode");
        assert_eq!(msg2, Message::Gossip { from, to });
        assert_eq!(again.members(), scratch.members());
        assert_eq!(again.version(), scratch.version());
        assert_eq!(again.seen(), scratch.seen());
        assert_eq!(again.reachability(), scratch.reachability());
    }
});
