//! Live heap bytes owned by the protocol nodes.
//!
//! [`CountingAlloc`] wraps the system allocator and counts the bytes allocated minus the bytes
//! freed while the simulator is inside a protocol call ([`attributed`]), except where the call
//! hands something to the network model ([`unattributed`]: queued messages and timers, recorded
//! observations). A node's own vectors are allocated and freed inside its calls, so the count
//! is the heap the nodes hold. It counts only in a program that installs the allocator:
//!
//! ```
//! use fjell_compare::heap::{self, CountingAlloc};
//!
//! #[global_allocator]
//! static ALLOC: CountingAlloc = CountingAlloc;
//!
//! fn main() {
//!     let before = heap::live();
//!     let v = heap::attributed(|| vec![7u8; 1_000]);
//!     let w = vec![7u8; 500]; // not attributed: not counted
//!     assert_eq!(heap::live() - before, 1_000);
//!     heap::attributed(|| drop(v));
//!     assert_eq!(heap::live(), before);
//!     drop(w);
//! }
//! ```
//!
//! The simulator runs on one thread; the count is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

static ATTRIBUTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting the protocol nodes' live heap bytes (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to `System`; the counters do not touch memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && ATTRIBUTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && ATTRIBUTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ATTRIBUTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Relaxed);
        }
        // SAFETY: the caller's contract is passed on to `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && ATTRIBUTING.load(Relaxed) {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        p
    }
}

/// Runs `f` counting its allocations as the protocol's.
pub fn attributed<R>(f: impl FnOnce() -> R) -> R {
    let before = ATTRIBUTING.swap(true, Relaxed);
    let r = f();
    ATTRIBUTING.store(before, Relaxed);
    r
}

/// Runs `f` without counting its allocations (the network model's, inside a protocol call).
pub fn unattributed<R>(f: impl FnOnce() -> R) -> R {
    let before = ATTRIBUTING.swap(false, Relaxed);
    let r = f();
    ATTRIBUTING.store(before, Relaxed);
    r
}

/// Protocol heap bytes live now, counted since the process started (subtract an earlier
/// reading to measure one simulation: nodes dropped outside their calls are not subtracted).
pub fn live() -> i64 {
    LIVE.load(Relaxed)
}
