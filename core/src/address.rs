//! Node identity: a socket address plus a per-process random uid.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The identity of one incarnation of a node: where it listens and a 64-bit uid drawn at each
/// process start.
///
/// Ordering is numeric: IPv4 before IPv6, then the address as a number, then the port, then the
/// uid. Pekko compares hosts as strings (`"10.0.0.10" < "10.0.0.9"`), which makes the leader and
/// every "lowest address" tie-break surprising to operators; fjell does not.
#[derive(Debug, Clone, Copy, Eq)]
pub struct UniqueAddress {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) uid: u64,
}

impl UniqueAddress {
    /// The incarnation `uid` of the node listening on `addr`.
    ///
    /// IPv6 flow information and scope ids are not part of the identity.
    pub const fn new(addr: SocketAddr, uid: u64) -> Self {
        UniqueAddress {
            ip: addr.ip(),
            port: addr.port(),
            uid,
        }
    }

    /// The socket address the node is reached at.
    // Out of line, like the other small helpers called from dozens of places: each inlined
    // copy costs code size on a device (BENCHMARKS.md, "fjell-core on microcontrollers").
    #[inline(never)]
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The per-process uid.
    pub const fn uid(&self) -> u64 {
        self.uid
    }

    /// True if both name the same socket address (any incarnation).
    pub fn same_address(&self, addr: SocketAddr) -> bool {
        self.ip == addr.ip() && self.port == addr.port()
    }

    /// Orders this identity's socket address against `addr`, as [`Ord`] orders identities
    /// (IP, then port): every incarnation at `addr` compares `Equal`.
    pub fn cmp_socket(&self, addr: SocketAddr) -> Ordering {
        (ip_key(self.ip), self.port).cmp(&(ip_key(addr.ip()), addr.port()))
    }

    /// A stable 64-bit hash of the full identity, identical on every node and platform.
    ///
    /// Used for digests and the heartbeat ring; never for identity checks.
    pub fn stable_hash(&self) -> u64 {
        let ip = match self.ip {
            IpAddr::V4(ip) => u128::from(u32::from(ip)),
            IpAddr::V6(ip) => u128::from(ip) ^ (1 << 127),
        };
        let mut h = Digest::new();
        h.write_u64(ip as u64);
        h.write_u64((ip >> 64) as u64);
        h.write_u64(u64::from(self.port));
        h.write_u64(self.uid);
        h.finish()
    }
}

/// The IP address as a number, IPv4 first: the order of [`IpAddr`]'s own `Ord`, without its
/// byte-by-byte comparison. Identities are compared for every message a node receives.
fn ip_key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

// Not derived: the derived comparison, inlined at every one of the many places identities are
// compared, is kilobytes of code on a 32-bit device. One out-of-line copy costs a call.
impl PartialEq for UniqueAddress {
    #[inline(never)]
    fn eq(&self, other: &Self) -> bool {
        self.uid == other.uid && self.port == other.port && self.ip == other.ip
    }
}

// By hand because `PartialEq` is: the same fields, in the order a derive would hash them.
impl Hash for UniqueAddress {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.ip.hash(h);
        self.port.hash(h);
        self.uid.hash(h);
    }
}

impl Ord for UniqueAddress {
    fn cmp(&self, other: &Self) -> Ordering {
        (ip_key(self.ip), self.port, self.uid).cmp(&(ip_key(other.ip), other.port, other.uid))
    }
}

impl PartialOrd for UniqueAddress {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for UniqueAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:016x}", self.socket_addr(), self.uid)
    }
}

/// A fast, deterministic 64-bit digest of a sequence of words (each word mixed with the
/// SplitMix64 finaliser). Not cryptographic: it detects differences between honest states.
#[derive(Clone, Copy)]
pub(crate) struct Digest(u64);

impl Digest {
    pub(crate) const fn new() -> Self {
        Digest(0x243F_6A88_85A3_08D3)
    }

    // Out of line: called for every word of every digest (code size on a device).
    #[inline(never)]
    pub(crate) fn write_u64(&mut self, v: u64) {
        let mut z = (self.0 ^ v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

#[derive(Serialize, Deserialize)]
enum IpWire {
    V4([u8; 4]),
    V6([u8; 16]),
}

#[derive(Serialize, Deserialize)]
struct AddressWire {
    ip: IpWire,
    pub(crate) port: u16,
    // Fixed width: uids are random, so a varint would take 10 bytes instead of 8.
    uid: [u8; 8],
}

impl Serialize for UniqueAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ip = match self.ip {
            IpAddr::V4(ip) => IpWire::V4(ip.octets()),
            IpAddr::V6(ip) => IpWire::V6(ip.octets()),
        };
        AddressWire {
            ip,
            port: self.port,
            uid: self.uid.to_le_bytes(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for UniqueAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = AddressWire::deserialize(d)?;
        let ip = match w.ip {
            IpWire::V4(o) => IpAddr::V4(Ipv4Addr::from(o)),
            IpWire::V6(o) => IpAddr::V6(Ipv6Addr::from(o)),
        };
        Ok(UniqueAddress {
            ip,
            port: w.port,
            uid: u64::from_le_bytes(w.uid),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(s: &str, uid: u64) -> UniqueAddress {
        UniqueAddress::new(s.parse().unwrap(), uid)
    }

    #[test]
    fn ordering_is_numeric_not_lexicographic() {
        assert!(ua("10.0.0.9:1", 0) < ua("10.0.0.10:1", 0));
        assert!(ua("10.0.0.9:2", 0) < ua("10.0.0.9:10", 0));
        assert!(ua("10.0.0.9:2", 1) < ua("10.0.0.9:2", 2));
        assert!(ua("255.255.255.255:65535", u64::MAX) < ua("[::1]:1", 0));
    }

    #[test]
    fn the_order_is_that_of_ip_then_port_then_uid() {
        // The hand-written order must be the one a derive over (ip, port, uid) gives.
        let ips = [
            "0.0.0.0",
            "10.0.0.9",
            "10.0.0.10",
            "9.255.255.255",
            "255.255.255.255",
        ];
        let ips6 = ["::", "::1", "fe80::1", "2001:db8::7", "ffff::"];
        let mut all = std::vec::Vec::new();
        for ip in ips
            .iter()
            .map(|s| s.parse::<IpAddr>().unwrap())
            .chain(ips6.iter().map(|s| s.parse::<IpAddr>().unwrap()))
        {
            for port in [0u16, 1, 7355, 65535] {
                for uid in [0u64, 1, u64::MAX] {
                    all.push(UniqueAddress::new(SocketAddr::new(ip, port), uid));
                }
            }
        }
        for a in &all {
            for b in &all {
                let derived = (a.ip, a.port, a.uid).cmp(&(b.ip, b.port, b.uid));
                assert_eq!(a.cmp(b), derived, "{a} vs {b}");
                let socket = (a.ip, a.port).cmp(&(b.ip, b.port));
                assert_eq!(a.cmp_socket(b.socket_addr()), socket, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn identity_ignores_ipv6_flow_and_scope() {
        let a: SocketAddr = "[fe80::1%3]:7000".parse().unwrap();
        let b: SocketAddr = "[fe80::1]:7000".parse().unwrap();
        assert_eq!(UniqueAddress::new(a, 1), UniqueAddress::new(b, 1));
    }

    #[test]
    fn wire_round_trip() {
        for a in [ua("192.168.1.2:7355", 42), ua("[2001:db8::7]:1", u64::MAX)] {
            let mut buf = [0u8; 64];
            let bytes = postcard::to_slice(&a, &mut buf).unwrap();
            assert_eq!(postcard::from_bytes::<UniqueAddress>(bytes).unwrap(), a);
        }
    }

    #[test]
    fn stable_hash_differs_by_uid() {
        assert_ne!(
            ua("1.2.3.4:5", 1).stable_hash(),
            ua("1.2.3.4:5", 2).stable_hash()
        );
        assert_eq!(
            ua("1.2.3.4:5", 1).stable_hash(),
            ua("1.2.3.4:5", 1).stable_hash()
        );
    }
}
