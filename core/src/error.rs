//! Every error type of the crate implements [`core::error::Error`], so `?` works in an
//! application's own error handling without `map_err`. The small marker errors get their
//! messages here; the others are described where they are defined.

use core::error::Error;
use core::fmt;

use crate::capacity::OverCapacity;
use crate::config::ConfigError;
use crate::gossip::{CapacityError, UpdateError};
use crate::member::{IllegalTransition, RoleTooLong, TooManyRoles};
use crate::node::{CommandError, InputError};
use crate::reachability::ReachabilityFull;
use crate::wire::{BufferTooSmall, WireError};

macro_rules! message {
    ($($ty:ty => $text:literal),* $(,)?) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($text)
            }
        }
    )*};
}

message! {
    OverCapacity => "the cluster would exceed what one of its members can hold",
    ReachabilityFull => "the reachability table is full",
    BufferTooSmall => "the buffer is too small for the message",
    RoleTooLong => "a role name is 1 to 16 bytes of UTF-8 without NUL",
    TooManyRoles => "more roles than a node may declare",
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapacityError::Members => "more members or clock entries than the member capacity",
            CapacityError::Reachability => "more reachability records than the record capacity",
        })
    }
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::UnknownMember => f.write_str("no such member"),
            UpdateError::Illegal(e) => e.fmt(f),
        }
    }
}

impl Error for InputError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            InputError::Decode(e) => Some(e),
            InputError::SenderMismatch => None,
        }
    }
}

impl Error for UpdateError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            UpdateError::Illegal(e) => Some(e),
            UpdateError::UnknownMember => None,
        }
    }
}

impl Error for OverCapacity {}
impl Error for ReachabilityFull {}
impl Error for BufferTooSmall {}
impl Error for RoleTooLong {}
impl Error for TooManyRoles {}
impl Error for CapacityError {}
impl Error for ConfigError {}
impl Error for CommandError {}
impl Error for WireError {}
impl Error for IllegalTransition {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Usable as `dyn Error`, with a message of its own.
    fn boxed<E: Error + 'static>(e: E) {
        let e: &dyn Error = &e;
        assert!(!alloc_free_message(e).is_empty());
    }

    fn alloc_free_message(e: &dyn Error) -> heapless::String<160> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        let _ = write!(s, "{e}");
        s
    }

    #[test]
    fn every_error_is_a_core_error_with_a_message() {
        boxed(OverCapacity);
        boxed(ReachabilityFull);
        boxed(BufferTooSmall);
        boxed(RoleTooLong);
        boxed(TooManyRoles);
        boxed(CapacityError::Members);
        boxed(UpdateError::UnknownMember);
        boxed(CommandError::TooManySeeds { given: 9, max: 8 });
        let input = InputError::Decode(WireError::Truncated);
        assert!(input.source().is_some());
        assert_eq!(
            alloc_free_message(input.source().unwrap()),
            alloc_free_message(&WireError::Truncated)
        );
    }
}
