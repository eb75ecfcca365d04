//! Nodes on loopback: each binds a free UDP port, gets a certificate for it from one
//! throwaway development CA, and joins through the same seed list.

use std::net::{SocketAddr, UdpSocket};

use fjell_core::{Downing, Strategy};
use fjell_quic::DevCa;
use fjell_runtime::{Cluster, ClusterBuilder};

use crate::Error;

/// A set of loopback addresses with a CA that certifies them.
pub struct Loopback {
    ca: DevCa,
    sockets: Vec<Option<UdpSocket>>,
    /// The nodes' addresses, in start order.
    pub addrs: Vec<SocketAddr>,
}

impl Loopback {
    /// Binds `n` free loopback ports and creates the development CA (it logs a warning: not
    /// for production).
    pub fn new(n: usize) -> Result<Self, Error> {
        let sockets: Vec<UdpSocket> = (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let addrs = sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<Result<_, _>>()?;
        Ok(Loopback {
            ca: DevCa::new()?,
            sockets: sockets.into_iter().map(Some).collect(),
            addrs,
        })
    }

    /// The seed nodes every node is given: the first three (or fewer).
    pub fn seeds(&self) -> Vec<SocketAddr> {
        self.addrs.iter().copied().take(3).collect()
    }

    /// The development CA.
    pub fn ca(&self) -> &DevCa {
        &self.ca
    }

    /// A builder for node `i` (its socket, certificate and the seed list), with keep-majority
    /// split brain resolution; adjust it before starting.
    pub fn builder(&mut self, i: usize) -> Result<ClusterBuilder, Error> {
        let socket = self.sockets[i]
            .take()
            .ok_or_else(|| format!("node {i} was already started"))?;
        Ok(ClusterBuilder::new()
            .socket(socket)
            .credentials(self.ca.node(self.addrs[i])?)
            .seed_nodes(self.seeds())
            .downing(Downing::SplitBrainResolver(Strategy::KeepMajority {
                role: None,
            }))
            .log_info(false))
    }

    /// Starts node `i` on smol.
    pub fn start(&mut self, i: usize) -> Result<Cluster, Error> {
        Ok(self.builder(i)?.start()?)
    }
}
