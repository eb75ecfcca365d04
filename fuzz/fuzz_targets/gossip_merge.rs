//! Three arbitrary valid gossip states: the merge must be commutative, associative and
//! idempotent, and keep every invariant.
#![no_main]

use fjell_sim::gen::{self, SPEC_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|specs: [[u8; SPEC_LEN]; 3]| {
    let [a, b, c] = specs.map(|s| gen::gossip::<8, 32>(&s));
    gen::check_laws(&a, &b, &c);
});
