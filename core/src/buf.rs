//! Where a node's per-member state lives: [`Buf<T, N>`], a vector of at most `N` elements.
//!
//! Without the `alloc` feature it is a [`heapless::Vec`]: the elements are inside the node,
//! whose size is then fixed by its capacities (what a device wants: the whole state in a
//! `static`, no allocator). With `alloc` it is a heap vector that grows with the cluster and
//! never beyond `N`: the node itself is a few kilobytes however large its capacities, is
//! built on the stack like any value, and holds memory for the members it has rather than for
//! the members it could have (what a server wants).
//!
//! Both have the same methods with the same meaning, so every rule is written once: a push
//! beyond `N` is refused and hands the element back, which is how the protocol reaches its
//! limits. With `alloc`, an allocation that fails is refused the same way.

#[cfg(not(feature = "alloc"))]
pub(crate) type Buf<T, const N: usize> = heapless::Vec<T, N>;

#[cfg(feature = "alloc")]
pub(crate) use heap::Buf;

#[cfg(feature = "alloc")]
mod heap {
    use alloc::vec::Vec;
    use core::fmt;
    use core::ops::{Deref, DerefMut};
    #[cfg(test)]
    use heapless::CapacityError;

    /// A heap vector of at most `N` elements with [`heapless::Vec`]'s methods.
    pub(crate) struct Buf<T, const N: usize>(Vec<T>);

    impl<T, const N: usize> Buf<T, N> {
        /// An empty vector; allocates nothing.
        pub(crate) const fn new() -> Self {
            Buf(Vec::new())
        }

        /// Makes room for `extra` more elements, within `N`; false if that exceeds `N` or the
        /// allocation fails. Grows by doubling (at least 4), capped at `N`.
        fn room(&mut self, extra: usize) -> bool {
            let len = self.0.len();
            let Some(want) = len.checked_add(extra).filter(|w| *w <= N) else {
                return false;
            };
            if want <= self.0.capacity() {
                return true;
            }
            let target = want.max(self.0.capacity().saturating_mul(2)).max(4).min(N);
            self.0.try_reserve_exact(target - len).is_ok()
        }

        pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
            if self.room(1) {
                self.0.push(item);
                Ok(())
            } else {
                Err(item)
            }
        }

        /// Inserts at `index`; panics if `index > len`, as [`heapless::Vec::insert`] does.
        pub(crate) fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
            assert!(index <= self.0.len(), "insertion index out of bounds");
            if self.room(1) {
                self.0.insert(index, item);
                Ok(())
            } else {
                Err(item)
            }
        }

        pub(crate) fn remove(&mut self, index: usize) -> T {
            self.0.remove(index)
        }

        pub(crate) fn truncate(&mut self, len: usize) {
            self.0.truncate(len)
        }

        pub(crate) fn clear(&mut self) {
            self.0.clear()
        }

        pub(crate) fn retain(&mut self, f: impl FnMut(&T) -> bool) {
            self.0.retain(f)
        }

        pub(crate) fn retain_mut(&mut self, f: impl FnMut(&mut T) -> bool) {
            self.0.retain_mut(f)
        }

        pub(crate) fn is_full(&self) -> bool {
            self.0.len() == N
        }

        #[cfg(test)]
        pub(crate) fn as_slice(&self) -> &[T] {
            &self.0
        }

        #[cfg(test)]
        /// Bytes allocated for elements (what this vector adds to a node's size).
        pub(crate) fn heap_bytes(&self) -> usize {
            self.0.capacity() * core::mem::size_of::<T>()
        }

        /// Appends `iter`; panics beyond `N`, as [`heapless::Vec::extend`] does.
        pub(crate) fn extend(&mut self, iter: impl IntoIterator<Item = T>) {
            for item in iter {
                if self.push(item).is_err() {
                    panic!("Buf::extend beyond its capacity");
                }
            }
        }
    }

    impl<T: Clone, const N: usize> Buf<T, N> {
        #[cfg(test)]
        pub(crate) fn extend_from_slice(&mut self, other: &[T]) -> Result<(), CapacityError> {
            if !self.room(other.len()) {
                return Err(CapacityError::default());
            }
            self.0.extend_from_slice(other);
            Ok(())
        }
    }

    impl<T, const N: usize> Default for Buf<T, N> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T, const N: usize> Deref for Buf<T, N> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            &self.0
        }
    }

    impl<T, const N: usize> DerefMut for Buf<T, N> {
        fn deref_mut(&mut self) -> &mut [T] {
            &mut self.0
        }
    }

    impl<T: Clone, const N: usize> Clone for Buf<T, N> {
        fn clone(&self) -> Self {
            Buf(self.0.clone())
        }

        fn clone_from(&mut self, source: &Self) {
            self.0.clone_from(&source.0)
        }
    }

    impl<T: PartialEq, const N: usize> PartialEq for Buf<T, N> {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    impl<T: Eq, const N: usize> Eq for Buf<T, N> {}

    impl<T: PartialEq, const N: usize, const K: usize> PartialEq<[T; K]> for Buf<T, N> {
        fn eq(&self, other: &[T; K]) -> bool {
            self.0[..] == other[..]
        }
    }

    impl<T: PartialEq, const N: usize> PartialEq<&[T]> for Buf<T, N> {
        fn eq(&self, other: &&[T]) -> bool {
            self.0[..] == other[..]
        }
    }

    impl<T: core::hash::Hash, const N: usize> core::hash::Hash for Buf<T, N> {
        fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state)
        }
    }

    impl<T: fmt::Debug, const N: usize> fmt::Debug for Buf<T, N> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    impl<'a, T, const N: usize> IntoIterator for &'a Buf<T, N> {
        type Item = &'a T;
        type IntoIter = core::slice::Iter<'a, T>;
        fn into_iter(self) -> Self::IntoIter {
            self.0.iter()
        }
    }

    impl<'a, T, const N: usize> IntoIterator for &'a mut Buf<T, N> {
        type Item = &'a mut T;
        type IntoIter = core::slice::IterMut<'a, T>;
        fn into_iter(self) -> Self::IntoIter {
            self.0.iter_mut()
        }
    }

    impl<T, const N: usize> IntoIterator for Buf<T, N> {
        type Item = T;
        type IntoIter = alloc::vec::IntoIter<T>;
        fn into_iter(self) -> Self::IntoIter {
            self.0.into_iter()
        }
    }

    /// Collects at most `N` elements; panics beyond, as [`heapless::Vec`] does.
    impl<T, const N: usize> FromIterator<T> for Buf<T, N> {
        fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
            let mut v = Self::new();
            v.extend(iter);
            v
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::Buf;

    #[test]
    fn a_push_beyond_the_capacity_is_refused_and_hands_the_element_back() {
        let mut v: Buf<u32, 5> = Buf::new();
        for i in 0..5 {
            assert_eq!(v.push(i), Ok(()));
        }
        assert!(v.is_full());
        assert_eq!(v.push(9), Err(9));
        assert_eq!(v.insert(0, 9), Err(9));
        assert!(v.extend_from_slice(&[1]).is_err());
        assert_eq!(v.as_slice(), &[0, 1, 2, 3, 4]);
        // Growth is capped at the capacity: never more allocated than N elements.
        assert_eq!(v.heap_bytes(), 5 * 4);
    }

    #[test]
    fn it_allocates_nothing_until_used_and_grows_with_its_elements() {
        let mut v: Buf<u64, 4096> = Buf::new();
        assert_eq!(v.heap_bytes(), 0);
        for i in 0..100 {
            v.push(i).unwrap();
        }
        assert!(v.heap_bytes() >= 100 * 8 && v.heap_bytes() <= 200 * 8);
        assert!(v.extend_from_slice(&[0; 3996]).is_ok());
        assert_eq!(v.heap_bytes(), 4096 * 8);
        assert_eq!(v.push(1), Err(1));
    }
}
