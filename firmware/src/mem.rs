//! Size-first memory routines (`memcpy`, `memmove`, `memset`, `memcmp` and their ARM EABI
//! forms), as newlib-nano has them for small devices. compiler-builtins' versions are written
//! for speed: word-at-a-time copies for every alignment case, about 3.1 kB of flash on
//! thumbv7em. These copy a byte at a time in a loop of a few instructions: under 0.1 kB.
//! A byte loop is several times slower per byte (not measured: QEMU is not cycle accurate);
//! what reaches it is moved values such as member records, since messages are encoded
//! straight into the caller's buffer. A device that needs the speed drops this module.
//!
//! The loops are assembly: in Rust, LLVM recognises a byte-copy loop and replaces it with a
//! call to `memcpy`, which here would call itself. Thumb-1 instructions on the low
//! registers only, so one text serves ARMv6-M and ARMv7E-M.
//!
//! compiler-builtins defines the same symbols weakly; these strong definitions replace them.

use core::arch::asm;

/// Sets `n` bytes at `dest` to `c`, from the last byte down.
#[inline(always)]
unsafe fn fill(dest: *mut u8, c: u8, n: usize) {
    if n == 0 {
        return;
    }
    // SAFETY: the caller's contract: `n` bytes writable at `dest`.
    unsafe {
        asm!(
            "2:",
            "subs r2, #1",
            "strb r1, [r0, r2]",
            "bne 2b",
            inout("r0") dest => _,
            inout("r1") c as u32 => _,
            inout("r2") n => _,
            options(nostack),
        );
    }
}

/// Copies `n` bytes from `src` to `dest`, byte by byte, in the direction that keeps
/// overlapping ranges correct: downwards (from the last byte) when `dest` lies inside
/// `src..src + n`, upwards otherwise.
unsafe fn copy(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract: `n` bytes readable at `src` and writable at `dest`. The
    // flags `subs` sets survive `ldrb` and `strb`.
    unsafe {
        asm!(
            "subs r3, r0, r1",
            "cmp r3, r2",
            "bhs 3f",
            // Downwards; `n` is not 0 here, since `dest - src < n`.
            "2:",
            "subs r2, #1",
            "ldrb r3, [r1, r2]",
            "strb r3, [r0, r2]",
            "bne 2b",
            "b 5f",
            // Upwards.
            "3:",
            "cmp r2, #0",
            "beq 5f",
            "4:",
            "ldrb r3, [r1]",
            "strb r3, [r0]",
            "adds r0, #1",
            "adds r1, #1",
            "subs r2, #1",
            "bne 4b",
            "5:",
            inout("r0") dest => _,
            inout("r1") src => _,
            inout("r2") n => _,
            out("r3") _,
            options(nostack),
        );
    }
}

/// C `memmove`.
///
/// # Safety
/// `n` bytes readable at `src` and writable at `dest`.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// C `memcpy` (the same routine as `memmove`: overlap costs nothing here).
///
/// # Safety
/// `n` bytes readable at `src` and writable at `dest`.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// C `memset`.
///
/// # Safety
/// `n` bytes writable at `dest`.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, c as u8, n) };
    dest
}

/// C `memcmp`: the difference of the first differing bytes, 0 when equal.
///
/// # Safety
/// `n` bytes readable at `a` and at `b`.
// Out of line: inlined, its loop was copied into every comparison of addresses (0.36 kB at
// opt-level "s").
#[inline(never)]
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let diff: i32;
    // SAFETY: the caller's contract.
    unsafe {
        asm!(
            "movs r3, #0",
            "2:",
            "cmp r2, #0",
            "beq 3f",
            "ldrb r3, [r0]",
            "ldrb r4, [r1]",
            "subs r3, r3, r4",
            "bne 3f",
            "adds r0, #1",
            "adds r1, #1",
            "subs r2, #1",
            "b 2b",
            "3:",
            inout("r0") a => _,
            inout("r1") b => _,
            inout("r2") n => _,
            out("r3") diff,
            out("r4") _,
            options(nostack, readonly),
        );
    }
    diff
}

/// C `bcmp`: zero when equal.
///
/// # Safety
/// `n` bytes readable at `a` and at `b`.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { memcmp(a, b, n) }
}

// The ARM run-time ABI's forms, which LLVM calls for Cortex-M. The numbered ones promise an
// aligned address, which a byte loop does not need; memset's take the length before the value.

macro_rules! aeabi_copy {
    ($($name:ident),*) => {$(
        /// ARM EABI copy (see the module documentation).
        ///
        /// # Safety
        /// `n` bytes readable at `src` and writable at `dest`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, src: *const u8, n: usize) {
            // SAFETY: the caller's contract.
            unsafe { copy(dest, src, n) }
        }
    )*};
}
aeabi_copy!(
    __aeabi_memcpy,
    __aeabi_memcpy4,
    __aeabi_memcpy8,
    __aeabi_memmove,
    __aeabi_memmove4,
    __aeabi_memmove8
);

macro_rules! aeabi_set {
    ($($name:ident),*) => {$(
        /// ARM EABI fill (see the module documentation).
        ///
        /// # Safety
        /// `n` bytes writable at `dest`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, n: usize, c: i32) {
            // SAFETY: the caller's contract.
            unsafe { fill(dest, c as u8, n) }
        }
    )*};
}
aeabi_set!(__aeabi_memset, __aeabi_memset4, __aeabi_memset8);

macro_rules! aeabi_clear {
    ($($name:ident),*) => {$(
        /// ARM EABI zeroing (see the module documentation).
        ///
        /// # Safety
        /// `n` bytes writable at `dest`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, n: usize) {
            // SAFETY: the caller's contract.
            unsafe { fill(dest, 0, n) }
        }
    )*};
}
aeabi_clear!(__aeabi_memclr, __aeabi_memclr4, __aeabi_memclr8);

/// Checks the routines above against byte-by-byte volatile reads: copies up and down over
/// overlapping ranges, fills and comparisons, at lengths around the edge cases. The cluster
/// firmware runs it first under QEMU, on both targets. Returns what went wrong.
pub fn self_check() -> Result<(), &'static str> {
    use core::hint::black_box;
    use core::ptr;

    const LEN: usize = 40;
    fn pattern(b: &mut [u8; LEN]) {
        for (i, x) in b.iter_mut().enumerate() {
            // SAFETY: `x` is a valid `u8` place.
            unsafe { ptr::write_volatile(x, (i as u8).wrapping_mul(37).wrapping_add(1)) };
        }
    }
    fn at(b: &[u8; LEN], i: usize) -> u8 {
        // SAFETY: `i < LEN` at every call.
        unsafe { ptr::read_volatile(&b[i]) }
    }

    for n in [0usize, 1, 2, 3, 7, 16, 31] {
        for (from, to) in [(0usize, 5usize), (5, 0), (3, 4), (4, 3), (0, 0), (1, 9)] {
            let mut b = [0u8; LEN];
            pattern(&mut b);
            let before = b;
            let p = black_box(b.as_mut_ptr());
            // SAFETY: `from + n` and `to + n` are within the buffer.
            unsafe { ptr::copy(p.add(black_box(from)), p.add(black_box(to)), black_box(n)) };
            for i in 0..LEN {
                let want = if (to..to + n).contains(&i) {
                    at(&before, from + i - to)
                } else {
                    at(&before, i)
                };
                if at(&b, i) != want {
                    return Err("memmove");
                }
            }
            let mut c = [0u8; LEN];
            // SAFETY: two distinct buffers, `n` bytes within each.
            unsafe { ptr::copy_nonoverlapping(black_box(before.as_ptr()), c.as_mut_ptr(), n) };
            if (0..LEN).any(|i| at(&c, i) != if i < n { at(&before, i) } else { 0 }) {
                return Err("memcpy");
            }
            let mut d = before;
            // SAFETY: `to + n` is within the buffer.
            unsafe { ptr::write_bytes(black_box(d.as_mut_ptr()).add(to), 0xa5, black_box(n)) };
            for i in 0..LEN {
                let want = if (to..to + n).contains(&i) {
                    0xa5
                } else {
                    at(&before, i)
                };
                if at(&d, i) != want {
                    return Err("memset");
                }
            }
        }
        let (a, mut b) = ([7u8; LEN], [7u8; LEN]);
        if black_box(&a[..n]) != black_box(&b[..n]) {
            return Err("memcmp: equal ranges differ");
        }
        if n > 0 {
            b[n - 1] = 8;
            if black_box(&a[..n]) == black_box(&b[..n]) || black_box(&a[..n]) >= black_box(&b[..n])
            {
                return Err("memcmp: a later byte is missed or misordered");
            }
        }
    }
    Ok(())
}
