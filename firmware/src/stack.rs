//! Stack painting: fill the stack below the caller with a pattern, run a step, and see how far
//! down the pattern was overwritten. What a step touched is what it needs, including the frame
//! of the closure that makes the call.

use core::ptr;

/// What is painted. Any value works; this one rarely occurs in real data.
const PAINT: u32 = 0xC0FF_EE55;

/// How far below the caller a step may go and still be measured.
pub const WINDOW: usize = 48 * 1024;

/// The deepest use seen by [`measure`] for one kind of step, in bytes.
#[derive(Clone, Copy, Default)]
pub struct Depth {
    /// Deepest stack use so far.
    pub max: usize,
    /// Calls measured.
    pub calls: u32,
}

/// A step went deeper than [`WINDOW`]: its depth is unknown.
#[derive(Debug)]
pub struct TooDeep;

/// Runs `step` and records how deep below the caller's stack pointer it went. The depth
/// includes the frame of a call shim and may include a few dozen bytes of `paint`'s frame: an
/// over-estimate, never an under-estimate.
///
/// It writes below the stack pointer, into stack that no frame owns yet: the window lies
/// inside RAM and above every static because `memory.x` gives 4 MiB of RAM with the statics at
/// the bottom and the stack at the top, and the callers here are shallow.
pub fn measure<R>(depth: &mut Depth, step: impl FnOnce() -> R) -> Result<R, TooDeep> {
    let top = cortex_m::register::msp::read() as usize;
    let bottom = top - WINDOW;
    paint(bottom);
    let r = call(step);
    let used = top - untouched_up_to(bottom, top);
    if used >= WINDOW {
        return Err(TooDeep);
    }
    depth.max = depth.max.max(used);
    depth.calls += 1;
    Ok(r)
}

/// Runs `step` in a frame of its own, below the stack pointer `measure` read: were the step
/// inlined into `measure` or its caller, its locals would sit in a frame above that pointer and
/// go unmeasured.
#[inline(never)]
fn call<R>(step: impl FnOnce() -> R) -> R {
    step()
}

/// Paints from `bottom` up to just below this function's own frame.
#[inline(never)]
fn paint(bottom: usize) {
    // The loop below calls nothing, so the words under our own stack pointer stay ours to write.
    let end = cortex_m::register::msp::read() as usize - 16;
    let mut p = bottom;
    while p < end {
        // SAFETY: [bottom, end) is unused stack inside RAM (see `measure`).
        unsafe { ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The lowest address at or above `bottom` whose word is no longer the paint.
fn untouched_up_to(bottom: usize, top: usize) -> usize {
    let mut p = bottom;
    while p < top {
        // SAFETY: as in `paint`; reading stack memory is always allowed.
        if unsafe { ptr::read_volatile(p as *const u32) } != PAINT {
            return p;
        }
        p += 4;
    }
    top
}
