//! Operations for fjell nodes: what a load balancer, an orchestrator or Prometheus can use.
//!
//! - [`http`]: `/alive`, `/ready`, `/cluster/members` and `/metrics` on an address of the
//!   application's choosing (none by default: the endpoints have no authentication).
//! - [`readiness`]: the rules behind `/alive` and `/ready`.
//! - [`prometheus`]: a node's [`Metrics`](fjell_runtime::Metrics) in the Prometheus text
//!   format, with the list of every metric.
//! - [`discovery`] and [`bootstrap`]: contact points from DNS (A/AAAA or SRV), a file or a
//!   command, and Pekko's Cluster Bootstrap rules, so a fleet started at once forms one
//!   cluster without a seed-node list; [`dns`] is the small resolver it uses.
//!
//! The measurements themselves come from fjell-runtime ([`fjell_runtime::Cluster::metrics`]),
//! so an application with its own exporter needs only that.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::io::{Read, Write};
//!
//! use fjell_ops::http::Endpoints;
//! use fjell_runtime::{ClusterBuilder, MemberStatus, Smol};
//!
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let addr = socket.local_addr()?;
//! let ca = fjell_quic::DevCa::new()?;
//! let cluster = ClusterBuilder::new()
//!     .socket(socket)
//!     .credentials(ca.node(addr)?)
//!     .seed_nodes([addr])
//!     .start_on(Smol)?;
//! let endpoints = Endpoints::bind("127.0.0.1:0".parse()?, cluster.clone())?;
//! let http = endpoints.local_addr()?;
//! smol::spawn(endpoints.run(Smol)).detach();
//! smol::block_on(cluster.wait_for(|s| s.self_member().is_some_and(|m| m.status == MemberStatus::Up)));
//!
//! // What a readiness probe does.
//! let mut probe = std::net::TcpStream::connect(http)?;
//! probe.write_all(b"GET /ready HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")?;
//! let mut answer = String::new();
//! probe.read_to_string(&mut answer)?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK"));
//! assert!(answer.ends_with("ready\n"));
//! smol::block_on(cluster.shutdown());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bootstrap;
pub mod discovery;
pub mod dns;
pub mod http;
pub mod prometheus;
pub mod readiness;

pub use http::Endpoints;
