//! Shared by the examples: nodes on loopback, each on a thread of its own, joined into one
//! cluster through the first (so the first is the oldest), with a throwaway CA.

use std::net::{SocketAddr, UdpSocket};

use fjell_quic::DevCa;
use fjell_runtime::core::MemberStatus;
use fjell_runtime::{Cluster, ClusterBuilder};

/// `n` nodes, every one Up in every node's view.
pub async fn loopback_cluster(n: usize) -> Result<Vec<Cluster>, Box<dyn std::error::Error>> {
    let ca = DevCa::new()?;
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let cluster = ClusterBuilder::new()
            .socket(socket)
            .credentials(ca.node(addrs[i])?)
            .seed_nodes([addrs[0]])
            .start()?;
        // One after another, so the nodes' ages follow their order.
        cluster
            .wait_for(|s| {
                s.self_member()
                    .is_some_and(|m| m.status == MemberStatus::Up)
            })
            .await;
        nodes.push(cluster);
    }
    for c in &nodes {
        c.wait_for(|s| {
            s.members.len() == n && s.members.iter().all(|m| m.status == MemberStatus::Up)
        })
        .await;
    }
    Ok(nodes)
}
