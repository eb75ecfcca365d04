//! The wire form of each record a message carries: the [`Writer`] and [`Reader`] the wire
//! format ([`crate::wire`]) is written with, and one [`Encode`] / [`Decode`] pair per type.
//!
//! The bytes are postcard's, field for field (unsigned integers as LEB128 varints, `u8` and
//! byte arrays raw, `bool` and `Option` as a 0/1 byte, enum variants as a varint index,
//! strings and sequences as a varint length and their items), and a test checks them against
//! postcard itself. Written by hand so that the decoder checks each bound where it reads the
//! field and returns the core's own small error: on a microcontroller, moving a large error
//! through the `?` on every field was most of what decoding cost in code. The types keep
//! their serde derives for applications and the other crates.

use crate::address::UniqueAddress;
use crate::capacity::Capacity;
use crate::compat::Unstable;
use crate::compat::{Compat, DowningDeclaration, DowningSetting, Incompatibility, Provider};
use crate::config::{Name, MAX_COMPAT_SETTINGS};
use crate::member::{AppVersion, Member, MemberStatus, Role, RoleSet, MAX_ROLES};
use crate::reachability::ReachabilityStatus;
use crate::wire::{BufferTooSmall, Malformed, WireError};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::num::NonZeroU32;

/// A value with a wire form.
pub(crate) trait Encode {
    /// Appends the value to `w`.
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall>;
}

/// A value read back from its wire form, every field checked.
pub(crate) trait Decode: Sized {
    /// Reads one value from `r`.
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// Why a field does not decode (one message for all: the peer is wrong either way).
const BAD_FIELD: WireError = WireError::Malformed(Malformed::FieldDoesNotDecode);

/// Writes into a buffer, or with none only counts, so a message's length and its bytes come
/// from one encoder.
pub(crate) struct Writer<'a> {
    pub(crate) buf: Option<&'a mut [u8]>,
    pub(crate) pos: usize,
}

impl Writer<'_> {
    // Inlined (unlike `bytes`): out of line it saved 0.25 kB of a device's flash but made
    // encoding a 1,000-member state 1.7 times slower.
    pub(crate) fn byte(&mut self, b: u8) -> Result<(), BufferTooSmall> {
        if let Some(buf) = self.buf.as_deref_mut() {
            *buf.get_mut(self.pos).ok_or(BufferTooSmall)? = b;
        }
        self.pos += 1;
        Ok(())
    }

    // Out of line: called for every field of every message (code size on a device).
    #[inline(never)]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.pos + bytes.len();
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.get_mut(self.pos..end)
                .ok_or(BufferTooSmall)?
                .copy_from_slice(bytes);
        }
        self.pos = end;
        Ok(())
    }

    /// An unsigned integer of any width, as a LEB128 varint.
    #[inline(never)]
    pub(crate) fn varint(&mut self, mut v: u64) -> Result<(), BufferTooSmall> {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.byte(v as u8)
    }

    pub(crate) fn bool(&mut self, b: bool) -> Result<(), BufferTooSmall> {
        self.byte(u8::from(b))
    }

    /// A fixed-width little-endian `u16` (the heartbeat's fields).
    pub(crate) fn le16(&mut self, v: u16) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_le_bytes())
    }

    /// A string or a byte sequence: its length, then the bytes.
    fn str(&mut self, s: &str) -> Result<(), BufferTooSmall> {
        self.varint(s.len() as u64)?;
        self.bytes(s.as_bytes())
    }

    pub(crate) fn put<T: Encode + ?Sized>(&mut self, v: &T) -> Result<(), BufferTooSmall> {
        v.encode(self)
    }
}

/// Reads fields from the front of a message.
pub(crate) struct Reader<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Result<u8, WireError> {
        let (b, rest) = self.rest.split_first().ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(*b)
    }

    #[inline(never)]
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// A varint of an integer `bits` wide: at most as many bytes as that width needs, and the
    /// last of those within it (postcard's rule, so the two accept the same bytes).
    #[inline(never)]
    fn varint(&mut self, bits: u32) -> Result<u64, WireError> {
        let most = bits.div_ceil(7);
        let mut v = 0u64;
        for i in 0..most {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                let last_bits = bits - 7 * (most - 1);
                if i == most - 1 && u32::from(b) >> last_bits != 0 {
                    return Err(BAD_FIELD);
                }
                return Ok(v);
            }
        }
        Err(BAD_FIELD)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.varint(16).map(|v| v as u16)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.varint(32).map(|v| v as u32)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        self.varint(64)
    }

    /// A fixed-width little-endian `u16` (the heartbeat's fields).
    pub(crate) fn le16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn bool(&mut self) -> Result<bool, WireError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(BAD_FIELD),
        }
    }

    /// An enum's variant index, below `variants`.
    fn variant(&mut self, variants: usize) -> Result<usize, WireError> {
        let i = self.u32()? as usize;
        if i < variants {
            Ok(i)
        } else {
            Err(BAD_FIELD)
        }
    }

    /// A sequence's or a string's length (a host's postcard reads it as a 64-bit varint).
    fn len(&mut self) -> Result<usize, WireError> {
        usize::try_from(self.varint(64)?).map_err(|_| BAD_FIELD)
    }

    /// A string of at most `cap` bytes. Its bytes are taken before its length is checked
    /// against `cap`, as postcard does, so a short message is `Truncated` either way.
    fn str(&mut self, cap: usize) -> Result<&'a str, WireError> {
        let n = self.len()?;
        let s = core::str::from_utf8(self.bytes(n)?).map_err(|_| BAD_FIELD)?;
        if n > cap {
            return Err(BAD_FIELD);
        }
        Ok(s)
    }

    /// A sequence of at most `cap` items, each handed to `keep`. As postcard into a heapless
    /// vector: items are read until one more than `cap` has been (so a short message is
    /// `Truncated` either way), and each item takes at least one byte, so a hostile length
    /// costs no more than the bytes it came with.
    fn seq<T: Decode>(&mut self, cap: usize, mut keep: impl FnMut(T)) -> Result<(), WireError> {
        for i in 0..self.len()? {
            let item = self.take()?;
            if i == cap {
                return Err(BAD_FIELD);
            }
            keep(item);
        }
        Ok(())
    }

    pub(crate) fn take<T: Decode>(&mut self) -> Result<T, WireError> {
        T::decode(self)
    }

    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.bool(self.is_some())?;
        match self {
            Some(v) => v.encode(w),
            None => Ok(()),
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.byte()? {
            0 => Ok(None),
            1 => T::decode(r).map(Some),
            _ => Err(BAD_FIELD),
        }
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok((r.take()?, r.take()?))
    }
}

impl Encode for u64 {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.varint(*self)
    }
}

impl Decode for u64 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.u64()
    }
}

impl Encode for UniqueAddress {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        match self.ip {
            IpAddr::V4(ip) => {
                w.byte(0)?;
                w.bytes(&ip.octets())?;
            }
            IpAddr::V6(ip) => {
                w.byte(1)?;
                w.bytes(&ip.octets())?;
            }
        }
        w.varint(self.port.into())?;
        // Fixed width: uids are random, so a varint would take 10 bytes instead of 8.
        w.bytes(&self.uid.to_le_bytes())
    }
}

impl Decode for UniqueAddress {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let ip = match r.variant(2)? {
            0 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
            _ => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        };
        Ok(UniqueAddress {
            ip,
            port: r.u16()?,
            uid: u64::from_le_bytes(r.array()?),
        })
    }
}

/// Fieldless enums: the variant index, and the variants in index order to read one back.
macro_rules! fieldless {
    ($t:ty, $all:expr) => {
        impl Encode for $t {
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
                w.byte(*self as u8)
            }
        }

        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
                const ALL: &[$t] = &$all;
                Ok(ALL[r.variant(ALL.len())?])
            }
        }
    };
}

fieldless!(MemberStatus, MemberStatus::ALL);

fieldless!(
    ReachabilityStatus,
    [
        ReachabilityStatus::Reachable,
        ReachabilityStatus::Unreachable,
        ReachabilityStatus::Terminated,
    ]
);

fieldless!(
    Provider,
    [
        Provider::Manual,
        Provider::UnsafeAutoDown,
        Provider::KeepMajority,
        Provider::StaticQuorum,
        Provider::KeepOldest,
        Provider::DownAll,
        Provider::LeaseMajority,
    ]
);

fieldless!(
    DowningSetting,
    [
        DowningSetting::Downing,
        DowningSetting::AutoDownUnreachableAfter,
        DowningSetting::QuorumSize,
        DowningSetting::DownIfAlone,
        DowningSetting::KeepMajorityRole,
        DowningSetting::StaticQuorumRole,
        DowningSetting::KeepOldestRole,
        DowningSetting::LeaseMajorityRole,
        DowningSetting::StableAfter,
        DowningSetting::DownAllWhenUnstable,
        DowningSetting::DownRemovalMargin,
        DowningSetting::AcquireLeaseDelayForMinority,
        DowningSetting::LeaseReleaseAfter,
    ]
);

impl Encode for Role {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.str(self.as_str())
    }
}

impl Decode for Role {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let s = r.str(crate::member::MAX_ROLE_LEN)?;
        Role::new(s).map_err(|_| WireError::Malformed(Malformed::InvalidRole))
    }
}

impl Encode for RoleSet {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.varint(self.len() as u64)?;
        self.iter().try_for_each(|role| role.encode(w))
    }
}

impl Decode for RoleSet {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        // Normalised, whatever order a peer sends, so that equal sets compare equal.
        let mut set = RoleSet::new();
        // Fits: at most `MAX_ROLES` are kept.
        r.seq(MAX_ROLES, |role| {
            let _ = set.insert(role);
        })?;
        Ok(set)
    }
}

impl Encode for AppVersion {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.varint(self.major.into())?;
        w.varint(self.minor.into())?;
        w.varint(self.patch.into())
    }
}

impl Decode for AppVersion {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(AppVersion::new(r.u16()?, r.u16()?, r.u16()?))
    }
}

impl Encode for Capacity {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.varint(self.members.into())?;
        w.varint(self.records.into())
    }
}

impl Decode for Capacity {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Capacity {
            members: r.u16()?,
            records: r.u16()?,
        })
    }
}

/// How the wire says "not up yet": the up-number was a plain `u32` with this value for none
/// before it became an `Option`, and the bytes stayed the same.
const NOT_UP: u32 = u32::MAX;

impl Encode for Member {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        self.address.encode(w)?;
        self.status.encode(w)?;
        w.varint(self.up_number.map_or(NOT_UP, NonZeroU32::get).into())?;
        self.roles.encode(w)?;
        self.app_version.encode(w)?;
        self.capacity.encode(w)?;
        w.bool(self.leader_eligible)
    }
}

impl Decode for Member {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let address = r.take()?;
        let status = r.take()?;
        let up_number = match r.u32()? {
            NOT_UP => None,
            n => Some(NonZeroU32::new(n).ok_or(WireError::Malformed(Malformed::UpNumberZero))?),
        };
        Ok(Member {
            address,
            status,
            up_number,
            roles: r.take()?,
            app_version: r.take()?,
            capacity: r.take()?,
            leader_eligible: r.bool()?,
        })
    }
}

impl<const N: usize> Encode for heapless::String<N> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.str(self)
    }
}

impl<const N: usize> Decode for heapless::String<N> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let s = r.str(N)?;
        heapless::String::try_from(s).map_err(|_| BAD_FIELD)
    }
}

impl Encode for Unstable {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        match self {
            Unstable::Off => w.byte(0),
            Unstable::On => w.byte(1),
            Unstable::AfterMicros(t) => {
                w.byte(2)?;
                w.varint(*t)
            }
        }
    }
}

impl Decode for Unstable {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.variant(3)? {
            0 => Unstable::Off,
            1 => Unstable::On,
            _ => Unstable::AfterMicros(r.u64()?),
        })
    }
}

impl Encode for DowningDeclaration {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        self.provider.encode(w)?;
        w.varint(self.auto_down_after)?;
        w.varint(self.quorum_size.into())?;
        w.bool(self.down_if_alone)?;
        self.role.encode(w)?;
        self.stable_after.encode(w)?;
        self.down_all_when_unstable.encode(w)?;
        self.down_removal_margin.encode(w)?;
        w.varint(self.acquire_lease_delay_for_minority)?;
        w.varint(self.lease_release_after)
    }
}

impl Decode for DowningDeclaration {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(DowningDeclaration {
            provider: r.take()?,
            auto_down_after: r.u64()?,
            quorum_size: r.u32()?,
            down_if_alone: r.bool()?,
            role: r.take()?,
            stable_after: r.take()?,
            down_all_when_unstable: r.take()?,
            down_removal_margin: r.take()?,
            acquire_lease_delay_for_minority: r.u64()?,
            lease_release_after: r.u64()?,
        })
    }
}

impl Encode for Compat {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        self.cluster_name.encode(w)?;
        w.varint(self.settings.len() as u64)?;
        for (k, v) in &self.settings {
            k.encode(w)?;
            v.encode(w)?;
        }
        self.downing.encode(w)?;
        w.bool(self.enforce_on_join)?;
        self.capacity.encode(w)?;
        w.bool(self.leader_eligible)
    }
}

impl Decode for Compat {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let cluster_name = r.take()?;
        let mut settings = heapless::Vec::new();
        // Fits: at most the capacity is kept.
        r.seq(MAX_COMPAT_SETTINGS, |pair| {
            let _ = settings.push(pair);
        })?;
        Ok(Compat {
            cluster_name,
            settings,
            downing: r.take()?,
            enforce_on_join: r.bool()?,
            capacity: r.take()?,
            leader_eligible: r.bool()?,
        })
    }
}

impl Encode for Incompatibility {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        match self {
            Incompatibility::ClusterName { cluster } => {
                w.byte(0)?;
                cluster.encode(w)
            }
            Incompatibility::ProtocolVersion { cluster, joiner } => {
                w.bytes(&[1, *cluster, *joiner])
            }
            Incompatibility::SettingDiffers { key } => {
                w.byte(2)?;
                key.encode(w)
            }
            Incompatibility::SettingMissing { key } => {
                w.byte(3)?;
                key.encode(w)
            }
            Incompatibility::DowningDiffers { setting } => {
                w.byte(4)?;
                setting.encode(w)
            }
            Incompatibility::Removed => w.byte(5),
            Incompatibility::Capacity {
                members,
                holds,
                joiner,
            } => {
                w.byte(6)?;
                w.varint((*members).into())?;
                w.varint((*holds).into())?;
                joiner.encode(w)
            }
        }
    }
}

impl Decode for Incompatibility {
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.variant(7)? {
            0 => Incompatibility::ClusterName {
                cluster: r.take::<Name>()?,
            },
            1 => Incompatibility::ProtocolVersion {
                cluster: r.byte()?,
                joiner: r.byte()?,
            },
            2 => Incompatibility::SettingDiffers { key: r.take()? },
            3 => Incompatibility::SettingMissing { key: r.take()? },
            4 => Incompatibility::DowningDiffers { setting: r.take()? },
            5 => Incompatibility::Removed,
            _ => Incompatibility::Capacity {
                members: r.u16()?,
                holds: r.u16()?,
                joiner: r.take()?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    //! Checked against postcard with serde's derives (the wire form before this codec, and the
    //! definition of it): the same bytes for every value, and for any bytes, the same value or
    //! an error from both.
    use super::*;
    use crate::config::{Value, MAX_NAME_LEN};
    use core::fmt::Debug;
    use proptest::prelude::*;
    use serde::{de::DeserializeOwned, Serialize};
    use std::vec::Vec;

    fn address() -> impl Strategy<Value = UniqueAddress> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(|o| IpAddr::V4(o.into())),
            any::<[u8; 16]>().prop_map(|o| IpAddr::V6(o.into())),
        ];
        (ip, any::<u16>(), any::<u64>()).prop_map(|(ip, port, uid)| UniqueAddress { ip, port, uid })
    }

    fn role() -> impl Strategy<Value = Role> {
        "[a-zé]{1,8}".prop_map(|s| Role::new(&s).unwrap())
    }

    fn member() -> impl Strategy<Value = Member> {
        let status = (0usize..9).prop_map(|i| {
            let mut r = Reader { rest: &[i as u8] };
            MemberStatus::decode(&mut r).unwrap()
        });
        let roles = proptest::collection::vec(role(), 0..=MAX_ROLES).prop_map(|rs| {
            let mut set = RoleSet::new();
            rs.into_iter().for_each(|r| set.insert(r).unwrap());
            set
        });
        let capacity = (any::<u16>(), any::<u16>())
            .prop_map(|(members, records)| Capacity { members, records });
        (
            address(),
            status,
            proptest::option::of(1..=crate::member::MAX_UP_NUMBER),
            roles,
            any::<(u16, u16, u16)>(),
            (capacity, any::<bool>()),
        )
            .prop_map(
                |(address, status, up, roles, (a, b, c), (capacity, leader_eligible))| Member {
                    address,
                    status,
                    up_number: up.and_then(NonZeroU32::new),
                    roles,
                    app_version: AppVersion::new(a, b, c),
                    capacity,
                    leader_eligible,
                },
            )
    }

    fn name() -> impl Strategy<Value = Name> {
        "[a-z.-]{0,32}".prop_map(|s| Name::try_from(s.as_str()).unwrap())
    }

    fn compat() -> impl Strategy<Value = Compat> {
        let value = "[a-z0-9]{0,32}".prop_map(|s| Value::try_from(s.as_str()).unwrap());
        let settings = proptest::collection::vec((name(), value), 0..=MAX_COMPAT_SETTINGS)
            .prop_map(|v| v.into_iter().collect());
        let downing = (
            (0usize..7, any::<u64>(), any::<u32>(), any::<bool>()),
            proptest::option::of(role()),
            proptest::option::of(any::<u64>()),
            prop_oneof![
                Just(Unstable::Off),
                Just(Unstable::On),
                any::<u64>().prop_map(Unstable::AfterMicros)
            ],
            proptest::option::of(any::<u64>()),
            any::<(u64, u64)>(),
        )
            .prop_map(
                |((p, auto, q, alone), role, stable, unstable, margin, (acq, rel))| {
                    DowningDeclaration {
                        provider: Provider::decode(&mut Reader { rest: &[p as u8] }).unwrap(),
                        auto_down_after: auto,
                        quorum_size: q,
                        down_if_alone: alone,
                        role,
                        stable_after: stable,
                        down_all_when_unstable: unstable,
                        down_removal_margin: margin,
                        acquire_lease_delay_for_minority: acq,
                        lease_release_after: rel,
                    }
                },
            );
        (
            name(),
            settings,
            downing,
            any::<bool>(),
            any::<(u16, u16, bool)>(),
        )
            .prop_map(
                |(cluster_name, settings, downing, enforce_on_join, (members, records, lead))| {
                    Compat {
                        cluster_name,
                        settings,
                        downing,
                        enforce_on_join,
                        capacity: Capacity { members, records },
                        leader_eligible: lead,
                    }
                },
            )
    }

    fn incompatibility() -> impl Strategy<Value = Incompatibility> {
        prop_oneof![
            name().prop_map(|cluster| Incompatibility::ClusterName { cluster }),
            any::<(u8, u8)>()
                .prop_map(|(cluster, joiner)| Incompatibility::ProtocolVersion { cluster, joiner }),
            name().prop_map(|key| Incompatibility::SettingDiffers { key }),
            name().prop_map(|key| Incompatibility::SettingMissing { key }),
            (0u8..13).prop_map(|i| Incompatibility::DowningDiffers {
                setting: DowningSetting::decode(&mut Reader { rest: &[i] }).unwrap()
            }),
            Just(Incompatibility::Removed),
            any::<(u16, u16, u16, u16)>().prop_map(|(members, holds, m, r)| {
                Incompatibility::Capacity {
                    members,
                    holds,
                    joiner: Capacity {
                        members: m,
                        records: r,
                    },
                }
            }),
        ]
    }

    /// The same bytes as postcard, which reads them back to the value; and the codec reads
    /// them back too.
    fn same_bytes<T>(v: &T) -> Result<(), TestCaseError>
    where
        T: Encode + Decode + Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let mut ours = [0u8; 512];
        let mut w = Writer {
            buf: Some(&mut ours),
            pos: 0,
        };
        v.encode(&mut w).unwrap();
        let len = w.pos;
        let mut theirs = [0u8; 512];
        let theirs = postcard::to_slice(v, &mut theirs).unwrap();
        prop_assert_eq!(&ours[..len], &*theirs);
        let mut counted = Writer { buf: None, pos: 0 };
        v.encode(&mut counted).unwrap();
        prop_assert_eq!(counted.pos, len);
        let mut r = Reader { rest: &ours[..len] };
        prop_assert_eq!(&T::decode(&mut r).unwrap(), v);
        prop_assert!(r.rest.is_empty());
        Ok(())
    }

    /// For any bytes, both decoders give the same value and leave the same rest, or both
    /// refuse.
    fn same_reading<T>(bytes: &[u8]) -> Result<(), TestCaseError>
    where
        T: Decode + DeserializeOwned + PartialEq + Debug,
    {
        let mut r = Reader { rest: bytes };
        let ours = T::decode(&mut r).map(|v| (v, r.rest.len()));
        let theirs = postcard::take_from_bytes::<T>(bytes).map(|(v, rest)| (v, rest.len()));
        match (ours, theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            // Refused by both, and for running out of bytes by both or by neither.
            (Err(a), Err(b)) => prop_assert_eq!(
                a == WireError::Truncated,
                b == postcard::Error::DeserializeUnexpectedEnd,
                "codec {:?}, postcard {:?} for {:02x?}",
                a,
                b,
                bytes
            ),
            (a, b) => prop_assert!(false, "codec {a:?}, postcard {b:?} for {bytes:02x?}"),
        }
        Ok(())
    }

    /// A valid encoding of `v` with bytes overwritten at `edits` and cut to `cut`: near-valid
    /// input, where decoders disagree if they ever do.
    fn mangled<T: Serialize>(v: &T, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let mut bytes = postcard::to_slice(v, &mut buf).unwrap().to_vec();
        for (at, b) in edits {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = *b;
            }
        }
        bytes.truncate(cut.max(bytes.len() / 2));
        bytes
    }

    fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, usize)> {
        (
            proptest::collection::vec(any::<(usize, u8)>(), 0..4),
            0usize..600,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn members_are_written_as_postcard_writes_them(m in member()) {
            same_bytes(&m)?;
        }

        #[test]
        fn declarations_are_written_as_postcard_writes_them(c in compat()) {
            same_bytes(&c)?;
        }

        #[test]
        fn refusals_are_written_as_postcard_writes_them(i in incompatibility()) {
            same_bytes(&i)?;
        }

        #[test]
        fn near_valid_members_read_as_postcard_reads_them(m in member(), (e, cut) in edits()) {
            same_reading::<Member>(&mangled(&m, &e, cut))?;
            same_reading::<UniqueAddress>(&mangled(&m.address, &e, cut))?;
        }

        #[test]
        fn near_valid_declarations_read_as_postcard_reads_them(
            c in compat(),
            (e, cut) in edits(),
        ) {
            same_reading::<Compat>(&mangled(&c, &e, cut))?;
        }

        #[test]
        fn near_valid_refusals_read_as_postcard_reads_them(
            i in incompatibility(),
            (e, cut) in edits(),
        ) {
            same_reading::<Incompatibility>(&mangled(&i, &e, cut))?;
        }

        #[test]
        fn any_bytes_read_as_postcard_reads_them(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            same_reading::<Member>(&bytes)?;
            same_reading::<Compat>(&bytes)?;
            same_reading::<Incompatibility>(&bytes)?;
            same_reading::<u64>(&bytes)?;
            same_reading::<Option<u64>>(&bytes)?;
        }
    }

    #[test]
    fn varints_at_the_edges_of_each_width() {
        // u16 in three bytes, the last within two bits; u32 in five, within four; u64 in ten,
        // within one. One past each is refused.
        let cases: &[(&[u8], u32, Option<u64>)] = &[
            (&[0xFF, 0xFF, 0x03], 16, Some(0xFFFF)),
            (&[0xFF, 0xFF, 0x04], 16, None),
            (&[0x80, 0x80, 0x80, 0x00], 16, None),
            (&[0x80, 0x00], 16, Some(0)),
            (&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F], 32, Some(0xFFFF_FFFF)),
            (&[0xFF, 0xFF, 0xFF, 0xFF, 0x10], 32, None),
            (&[0xFF; 9], 64, None),
            (
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                64,
                Some(u64::MAX),
            ),
            (
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
                64,
                None,
            ),
        ];
        for (bytes, bits, want) in cases {
            let got = Reader { rest: bytes }.varint(*bits).ok();
            assert_eq!(got, *want, "{bytes:02x?} as {bits} bits");
        }
        assert_eq!(MAX_NAME_LEN, 32, "the name strategy above assumes it");
    }
}
