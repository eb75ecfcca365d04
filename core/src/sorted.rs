//! Set operations on sorted fixed-capacity vectors, in place, in linear time; and the one sort
//! the core uses.
//!
//! Merging two gossip states must not need a third state-sized buffer (on a device that buffer
//! is a third of the memory), so every sorted component is merged into the receiving vector
//! from the back.

use crate::buf::Buf;
use core::cmp::Ordering;

/// The union would exceed the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// `dst := dst ∪ src`, both sorted and unique by `key`; equal keys become `both(dst, src)`.
/// On overflow `dst` is left unchanged.
#[cfg(test)]
pub fn union_into<T: Clone, K: Ord, const N: usize>(
    dst: &mut Buf<T, N>,
    src: &[T],
    key: impl Fn(&T) -> K,
    both: impl Fn(&T, &T) -> T,
) -> Result<(), Overflow> {
    union_into_mapped(dst, src, |_| true, T::clone, key, both)
}

/// `dst := dst ∪ {map(x) | x ∈ src, take(x)}`, `dst` and the mapped `src` sorted and unique by
/// `key` (`map` must keep `src` in order); equal keys become `both(dst, mapped src)`. On overflow
/// `dst` is left unchanged.
pub fn union_into_mapped<S, T: Clone, K: Ord, const N: usize>(
    dst: &mut Buf<T, N>,
    src: &[S],
    take: impl Fn(&S) -> bool,
    map: impl Fn(&S) -> T,
    key: impl Fn(&T) -> K,
    both: impl Fn(&T, &T) -> T,
) -> Result<(), Overflow> {
    let src_key = |j: usize| key(&map(&src[j]));
    // Skipping is done by index: `src` elements not taken are simply passed over.
    let next = |mut j: usize| {
        while j < src.len() && !take(&src[j]) {
            j += 1;
        }
        j
    };
    let prev = |mut j: usize| {
        while j > 0 && !take(&src[j - 1]) {
            j -= 1;
        }
        j
    };
    // Pass 1: size of the union.
    let (mut i, mut j, mut n) = (0, next(0), 0);
    let mut first_taken = None;
    while i < dst.len() || j < src.len() {
        if j < src.len() && first_taken.is_none() {
            first_taken = Some(j);
        }
        match (i < dst.len(), j < src.len()) {
            (true, true) => match key(&dst[i]).cmp(&src_key(j)) {
                Ordering::Less => i += 1,
                Ordering::Greater => j = next(j + 1),
                Ordering::Equal => {
                    i += 1;
                    j = next(j + 1);
                }
            },
            (true, false) => i += 1,
            (false, _) => j = next(j + 1),
        }
        n += 1;
    }
    if n > N {
        return Err(Overflow);
    }
    let old = dst.len();
    if let Some(f) = first_taken {
        while dst.len() < n {
            // Placeholders, overwritten below.
            let _ = dst.push(map(&src[f]));
        }
    }
    // Pass 2: fill from the back; the write index never passes an unread `dst` element.
    let (mut i, mut j, mut k) = (old, prev(src.len()), n);
    while j > 0 {
        k -= 1;
        let take_dst = i > 0 && key(&dst[i - 1]) >= src_key(j - 1);
        if take_dst {
            if key(&dst[i - 1]) == src_key(j - 1) {
                dst[k] = both(&dst[i - 1], &map(&src[j - 1]));
                j = prev(j - 1);
            } else {
                dst[k] = dst[i - 1].clone();
            }
            i -= 1;
        } else {
            dst[k] = map(&src[j - 1]);
            j = prev(j - 1);
        }
    }
    Ok(())
}

/// The size of `dst ∪ {x ∈ src | take(x)}`, both sorted and unique by `key`.
#[cfg(test)]
pub fn union_len_where<T, K: Ord>(
    dst: &[T],
    src: &[T],
    take: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> K,
) -> usize {
    union_len_of_keys(
        dst.iter().map(&key),
        src.iter().filter(|x| take(x)).map(&key),
    )
}

/// The size of `dst ∪ {map(x) | x ∈ src, take(x)}` (see [`union_into_mapped`]).
pub fn union_len_mapped<S, T, K: Ord>(
    dst: &[T],
    src: &[S],
    take: impl Fn(&S) -> bool,
    map: impl Fn(&S) -> T,
    key: impl Fn(&T) -> K,
) -> usize {
    union_len_of_keys(
        dst.iter().map(&key),
        src.iter().filter(|x| take(x)).map(|x| key(&map(x))),
    )
}

/// The size of the union of two sorted, unique key sequences.
fn union_len_of_keys<K: Ord>(dst: impl Iterator<Item = K>, src: impl Iterator<Item = K>) -> usize {
    let mut src = src.peekable();
    let mut n = 0;
    for d in dst {
        while src.next_if(|s| *s < d).is_some() {
            n += 1;
        }
        src.next_if(|s| *s == d);
        n += 1;
    }
    n + src.count()
}

/// Sorts `v` by `key` in place (not stable): heapsort, O(n log n) comparisons and no buffer.
/// Used instead of `sort_unstable`, whose code is kilobytes per element type on a device; the
/// core sorts only small tables, on state changes.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n, &key);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &key);
    }
}

/// Restores the max-heap below `root` within `v[..end]`.
fn sift_down<T, K: Ord>(v: &mut [T], mut root: usize, end: usize, key: &impl Fn(&T) -> K) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && key(&v[child]) < key(&v[child + 1]) {
            child += 1;
        }
        if key(&v[root]) >= key(&v[child]) {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sort_by_key_sorts_like_the_standard_sort(
            mut v in proptest::collection::vec((0u8..8, any::<u16>()), 0..200),
        ) {
            let mut expected = v.clone();
            expected.sort_by_key(|x| x.0);
            sort_by_key(&mut v, |x| x.0);
            // Not stable: compare the keys in order and the elements as multisets.
            let keys = |v: &[(u8, u16)]| v.iter().map(|x| x.0).collect::<std::vec::Vec<_>>();
            prop_assert_eq!(keys(&v), keys(&expected));
            v.sort();
            expected.sort();
            prop_assert_eq!(v, expected);
        }
    }

    fn v(x: &[(u8, u8)]) -> crate::buf::Buf<(u8, u8), 8> {
        x.iter().copied().collect()
    }

    #[test]
    fn union_in_place_matches_a_naive_union() {
        type Case<'a> = (&'a [(u8, u8)], &'a [(u8, u8)]);
        let cases: [Case; 6] = [
            (&[], &[]),
            (&[], &[(1, 1), (3, 1)]),
            (&[(2, 2)], &[]),
            (&[(1, 5), (4, 1)], &[(1, 7), (2, 1), (5, 1)]),
            (&[(5, 1), (6, 1)], &[(1, 1), (2, 1)]),
            (&[(1, 1), (2, 1)], &[(5, 1), (6, 1)]),
        ];
        for (a, b) in cases {
            let mut dst = v(a);
            union_into(&mut dst, b, |x| x.0, |x, y| (x.0, x.1.max(y.1))).unwrap();
            let mut naive: std::vec::Vec<(u8, u8)> = a.to_vec();
            for y in b {
                match naive.iter_mut().find(|x| x.0 == y.0) {
                    Some(x) => x.1 = x.1.max(y.1),
                    None => naive.push(*y),
                }
            }
            naive.sort();
            assert_eq!(&dst[..], &naive[..], "{a:?} ∪ {b:?}");
        }
    }

    #[test]
    fn filtered_union_skips_rejected_elements() {
        let mut dst = v(&[(2, 1), (6, 1)]);
        let src = [(1, 1), (2, 9), (3, 1), (4, 1), (7, 1)];
        union_into_mapped(
            &mut dst,
            &src,
            |x| x.0 % 2 == 0 || x.0 == 7,
            |x| *x,
            |x| x.0,
            |x, y| (x.0, x.1.max(y.1)),
        )
        .unwrap();
        assert_eq!(&dst[..], &[(2, 9), (4, 1), (6, 1), (7, 1)]);
        let dst = v(&[(2, 1), (6, 1)]);
        assert_eq!(
            union_len_where(&dst, &src, |x| x.0 % 2 == 0 || x.0 == 7, |x| x.0),
            4
        );
    }

    #[test]
    fn a_mapped_union_renumbers_what_it_takes() {
        // `src` in another numbering: x ↦ 2x keeps it sorted.
        let mut dst = v(&[(2, 1), (6, 1)]);
        let src = [(1u8, 5u8), (2, 1), (3, 1), (5, 1)];
        let take = |x: &(u8, u8)| x.0 != 5;
        let map = |x: &(u8, u8)| (2 * x.0, x.1);
        assert_eq!(union_len_mapped(&dst, &src, take, map, |x| x.0), 3);
        union_into_mapped(
            &mut dst,
            &src,
            take,
            map,
            |x| x.0,
            |x, y| (x.0, x.1.max(y.1)),
        )
        .unwrap();
        assert_eq!(&dst[..], &[(2, 5), (4, 1), (6, 1)]);
    }

    #[test]
    fn overflow_leaves_the_destination_unchanged() {
        let mut dst: crate::buf::Buf<(u8, u8), 2> = [(1, 1), (2, 1)].into_iter().collect();
        assert_eq!(
            union_into(&mut dst, &[(3, 1)], |x| x.0, |x, _| *x),
            Err(Overflow)
        );
        assert_eq!(&dst[..], &[(1, 1), (2, 1)]);
    }
}
