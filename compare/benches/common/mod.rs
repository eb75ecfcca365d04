//! The two protocols behind [`fjell_compare::net::Protocol`], and the addresses they share.

pub mod fjell;
pub mod foca;

use std::net::SocketAddr;

use fjell_compare::net::NodeId;

/// The address of node `id`: 10.x.y.z (id + 1 in the last three bytes), port 7355.
pub fn addr_of(id: NodeId) -> SocketAddr {
    let i = id as u32 + 1;
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::from(([10, a, b, c], 7355))
}

/// The node at `addr` (the inverse of [`addr_of`]).
pub fn id_of(addr: SocketAddr) -> NodeId {
    match addr {
        SocketAddr::V4(v4) => {
            let [_, a, b, c] = v4.ip().octets();
            (u32::from_be_bytes([0, a, b, c]) - 1) as NodeId
        }
        SocketAddr::V6(_) => unreachable!("nodes have IPv4 addresses"),
    }
}

/// One SplitMix64 step: a node's uid from its seed.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
