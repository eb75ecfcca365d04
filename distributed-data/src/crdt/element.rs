//! [`Element`]: the bytes a set holds, a map is keyed by, a register stores.

use std::fmt;

use serde::de::{DeserializeOwned, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A set element, map key or register value: a byte string, at most [`Element::MAX_LEN`]
/// bytes.
///
/// The replicator merges values without knowing the Rust types inside them, so elements are
/// bytes, compared and ordered as bytes. [`Element::encode`] and [`Element::decode`] convert
/// typed values with postcard; the `From` impls do the same for strings and integers, so
/// `Element::from("a").decode::<String>()` is `Ok("a")`.
///
/// Two encodings of equal values must be equal bytes for a set to see them as one element;
/// postcard's is (for types without maps or floats of several bit patterns).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element(Box<[u8]>);

/// Why an [`Element`] could not be built or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    /// The bytes are longer than [`Element::MAX_LEN`]: every replica would refuse them.
    #[error("an element of {len} bytes is longer than the {max} allowed")]
    TooLong {
        /// The length of the refused bytes.
        len: usize,
        /// [`Element::MAX_LEN`].
        max: usize,
    },
    /// The value could not be encoded with postcard.
    #[error("cannot encode the element")]
    Encode(#[source] postcard::Error),
    /// The bytes are not a postcard encoding of the requested type.
    #[error("cannot decode the element")]
    Decode(#[source] postcard::Error),
}

impl Element {
    /// The longest element accepted, in bytes (64 KiB). Decoding refuses longer ones, so one
    /// hostile entry cannot make a replica hold megabytes per element.
    pub const MAX_LEN: usize = 64 * 1024;

    /// Takes `bytes` as they are.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Element, ElementError> {
        check_len(bytes.len())?;
        Ok(Element(bytes.into_boxed_slice()))
    }

    /// Encodes `value` with postcard.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Element, ElementError> {
        let bytes = postcard::to_allocvec(value).map_err(ElementError::Encode)?;
        Element::from_bytes(bytes)
    }

    /// Decodes the bytes as a postcard-encoded `T`. Trailing bytes are an error: they would
    /// make two elements that decode equal compare different.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ElementError> {
        match postcard::take_from_bytes(&self.0) {
            Ok((value, [])) => Ok(value),
            Ok(_) => Err(ElementError::Decode(
                postcard::Error::DeserializeBadEncoding,
            )),
            Err(e) => Err(ElementError::Decode(e)),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty byte string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encodes a value that always encodes: postcard cannot fail on strings and integers.
    /// Over-long strings are kept as they are; [`Serialize`] refuses them (see the `From`
    /// impls).
    fn encode_infallible<T: Serialize + ?Sized>(value: &T) -> Element {
        Element(
            postcard::to_allocvec(value)
                .unwrap_or_default()
                .into_boxed_slice(),
        )
    }
}

fn check_len(len: usize) -> Result<(), ElementError> {
    if len > Element::MAX_LEN {
        return Err(ElementError::TooLong {
            len,
            max: Element::MAX_LEN,
        });
    }
    Ok(())
}

/// The postcard encoding of the string. A string longer than [`Element::MAX_LEN`] still
/// converts (`From` cannot fail) but the element cannot be serialized; use
/// [`Element::encode`] to find out early.
impl From<&str> for Element {
    fn from(s: &str) -> Element {
        Element::encode_infallible(s)
    }
}

/// As `From<&str>`.
impl From<String> for Element {
    fn from(s: String) -> Element {
        Element::encode_infallible(s.as_str())
    }
}

/// The postcard encoding (a varint).
impl From<u64> for Element {
    fn from(n: u64) -> Element {
        Element::encode_infallible(&n)
    }
}

/// The postcard encoding (a zigzag varint).
impl From<i64> for Element {
    fn from(n: i64) -> Element {
        Element::encode_infallible(&n)
    }
}

/// The postcard encoding (a varint).
impl From<u32> for Element {
    fn from(n: u32) -> Element {
        Element::encode_infallible(&n)
    }
}

// Printed as escaped ASCII: most elements are short strings, whose bytes then read as text.
impl fmt::Debug for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Element(\"{}\")", self.0.escape_ascii())
    }
}

impl Serialize for Element {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Refused here too, so an over-long element built locally fails at the writer
        // instead of at every peer.
        check_len(self.0.len()).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} bytes", Element::MAX_LEN)
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Element, E> {
        check_len(v.len()).map_err(E::custom)?;
        Ok(Element(v.into()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Element, E> {
        Element::from_bytes(v).map_err(E::custom)
    }

    // Self-describing formats without a bytes type (JSON) send a sequence of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            if bytes.len() == Element::MAX_LEN {
                return Err(A::Error::custom(ElementError::TooLong {
                    len: Element::MAX_LEN + 1,
                    max: Element::MAX_LEN,
                }));
            }
            bytes.push(b);
        }
        Ok(Element(bytes.into_boxed_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trips() {
        assert_eq!(Element::from("a").decode::<String>(), Ok("a".to_string()));
        assert_eq!(Element::from(7u64).decode::<u64>(), Ok(7));
        assert_eq!(Element::from(-7i64).decode::<i64>(), Ok(-7));
        assert_eq!(Element::from(7u32).decode::<u32>(), Ok(7));
        assert_eq!(
            Element::encode(&(1u8, "x"))
                .unwrap()
                .decode::<(u8, String)>(),
            Ok((1, "x".into()))
        );
    }

    #[test]
    fn decode_refuses_trailing_bytes() {
        let e = Element::from_bytes(vec![1, 2]).unwrap();
        assert!(e.decode::<u8>().is_err());
    }

    #[test]
    fn over_long_elements_are_refused() {
        let long = vec![0u8; Element::MAX_LEN + 1];
        assert!(matches!(
            Element::from_bytes(long.clone()),
            Err(ElementError::TooLong { .. })
        ));
        // A hand-made postcard encoding of an over-long byte string.
        let wire = postcard::to_allocvec(&serde_bytes_like(&long)).unwrap();
        assert!(postcard::from_bytes::<Element>(&wire).is_err());
        let ok = Element::from_bytes(vec![0u8; Element::MAX_LEN]).unwrap();
        let wire = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Element>(&wire).unwrap(), ok);
    }

    #[test]
    fn over_long_local_elements_do_not_serialize() {
        let e = Element::from("x".repeat(Element::MAX_LEN + 1).as_str());
        assert!(postcard::to_allocvec(&e).is_err());
    }

    fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(b)
    }
}
