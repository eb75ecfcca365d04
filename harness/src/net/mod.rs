//! The harness network: every node in a network namespace of its own, joined by a
//! userspace L3 switch (the *hub*) that injects faults per directed link.
//!
//! # Layout
//!
//! Node `i` lives in namespace `{prefix}{i}` with loopback up and one TUN device,
//! [`TUN_NAME`], holding `10.201.0.{i+1}/24` (or `fd00:f1e1::{i+1}/64`), MTU 1500.
//! The subnet route sends every packet for another node into the TUN device, whose
//! descriptor the harness holds: the hub thread reads it, looks up the destination
//! node by address, applies the [`LinkRule`] of the link `i → j` and writes the packet
//! into node `j`'s device, now or after a delay. Packets a node sends to itself go
//! over its loopback and never meet the hub.
//!
//! # Why a userspace hub
//!
//! The machines this runs on may lack `sch_netem` and netfilter (no `tc netem`, no
//! iptables/nft), and even with netem, per-destination rules on one egress device
//! need classifier plumbing whose delay, loss and reordering semantics differ from
//! kernel to kernel. The hub gives the same semantics everywhere, per *directed*
//! link (one-way partitions are just a rule), seeded randomness, and counters that
//! prove each fault acted ([`Network::stats`]). [`netem_available`] still reports
//! what the kernel could do, for the record.
//!
//! # Use
//!
//! ```no_run
//! use std::time::Duration;
//! use fjell_harness::net::{cleanup_stale, LinkRule, NetSpec, Network, PREFIX_ROOT};
//!
//! # fn main() -> std::io::Result<()> {
//! // Leftovers of runs that were killed before their Drop ran.
//! cleanup_stale(PREFIX_ROOT)?;
//! let net = Network::create(NetSpec::new(3))?;
//! let node = net.command(0, "my-node").arg(net.addr(0).to_string()).spawn()?;
//! net.set_all(LinkRule::delayed(Duration::from_millis(20)));
//! net.partition(&[vec![0], vec![1, 2]]);
//! net.heal();
//! println!("{:?}", net.stats().total());
//! # drop(node);
//! # Ok(())
//! # }
//! ```
//!
//! # Rule changes
//!
//! A rule change applies to packets the hub reads after it. Packets already waiting
//! for their delay keep their due time (and are delivered even if the link has been
//! blocked since), just as packets already "on the wire" would be.

mod hub;
mod impair;
mod netns;
mod tun;

use std::ffi::OsStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use impair::{netem_available, Impairment, LinkCounters, LinkRule, LinkStats};
pub use netns::{cleanup_stale, list_namespaces};
pub use tun::{DeviceCounters, TUN_NAME};

/// Largest network [`Network::create`] builds; the IPv4 plan uses one /24.
pub const MAX_NODES: usize = 200;

/// What network to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    /// Namespace names are this plus the node index. Must be unique among networks
    /// alive on the machine; [`NetSpec::unique_prefix`] makes one.
    pub name_prefix: String,
    /// Number of nodes, `1..=`[`MAX_NODES`].
    pub nodes: usize,
    /// IPv6 addresses (`fd00:f1e1::{i+1}/64`) instead of IPv4 (`10.201.0.{i+1}/24`).
    pub ipv6: bool,
    /// Seed of the loss, jitter and reorder decisions.
    pub seed: u64,
}

impl NetSpec {
    /// An IPv4 network of `nodes` nodes with a fresh [unique prefix](Self::unique_prefix)
    /// and seed 0.
    pub fn new(nodes: usize) -> NetSpec {
        NetSpec {
            name_prefix: NetSpec::unique_prefix(),
            nodes,
            ipv6: false,
            seed: 0,
        }
    }

    /// A prefix no other network on the machine uses: `fjh{pid}x{counter}-`. The pid
    /// separates concurrent test processes and lets [`cleanup_stale`] recognise
    /// leftovers of dead ones; the counter separates networks within one process.
    pub fn unique_prefix() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{PREFIX_ROOT}{}x{k}-", std::process::id())
    }
}

/// The start of every namespace name [`NetSpec::unique_prefix`] makes; pass it to
/// [`cleanup_stale`].
pub const PREFIX_ROOT: &str = "fjh";

/// Address of node `i`.
fn node_addr(i: usize, ipv6: bool) -> IpAddr {
    // i < MAX_NODES, so i + 1 fits both a u8 and a u16.
    if ipv6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xf1e1, 0, 0, 0, 0, 0, (i + 1) as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 201, 0, (i + 1) as u8))
    }
}

/// A running network of namespaces and its hub. Dropping it stops the hub and
/// deletes every namespace.
pub struct Network {
    names: Vec<String>,
    addrs: Vec<IpAddr>,
    ns_fds: Vec<Arc<OwnedFd>>,
    ipv6: bool,
    hub: hub::Hub,
}

/// Deletes the namespaces made so far if [`Network::create`] fails half way.
struct Partial(Vec<String>);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = netns::delete_all(&self.0);
    }
}

/// Waits until the kernel delivers datagrams for the IPv6 `addr` locally in namespace
/// `name`. Even with `nodad` the address's local route is installed by a kernel work item
/// after `ip addr add` returns; a datagram arriving before it is dropped (on a busy machine
/// a test's first datagram was). IPv4 installs it at once.
fn wait_until_local(name: &str, addr: IpAddr) -> io::Result<()> {
    let addr = addr.to_string();
    let args = [
        "-n",
        name,
        "-6",
        "route",
        "show",
        "table",
        "local",
        addr.as_str(),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if !netns::ip_output(&args, None)?.trim().is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr} in {name}: no local route after 10 s"),
            ));
        }
        // Polled: the kernel tells no one when its work item has run.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

impl Network {
    /// Builds the namespaces, their TUN devices and addresses, and starts the hub.
    /// Needs root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), `/dev/net/tun` and `ip`.
    /// On failure nothing is left behind.
    pub fn create(spec: NetSpec) -> io::Result<Network> {
        if spec.nodes == 0 || spec.nodes > MAX_NODES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("nodes must be 1..={MAX_NODES}, got {}", spec.nodes),
            ));
        }
        let mut partial = Partial(Vec::with_capacity(spec.nodes));
        let mut ns_fds = Vec::with_capacity(spec.nodes);
        let mut tuns = Vec::with_capacity(spec.nodes);
        let mut addrs = Vec::with_capacity(spec.nodes);
        for i in 0..spec.nodes {
            let name = format!("{}{i}", spec.name_prefix);
            netns::add(&name)?;
            partial.0.push(name.clone());
            let fd = Arc::new(netns::open(&name)?);
            tuns.push(tun::open_in(fd.clone())?);
            let addr = node_addr(i, spec.ipv6);
            // One `ip` process per node. txqueuelen above the default 500 so bursts
            // wait in the device queue for the hub instead of being dropped there;
            // addrgenmode none: no IPv6 link-local address, hence no router
            // solicitations or MLD reports for the hub to discard.
            let script = if spec.ipv6 {
                // nodad: usable at once instead of "tentative" for a second or two.
                format!(
                    "link set dev lo up\n\
                     link set dev {TUN_NAME} addrgenmode none\n\
                     link set dev {TUN_NAME} mtu 1500 txqueuelen 4096 up\n\
                     addr add {addr}/64 dev {TUN_NAME} nodad\n"
                )
            } else {
                format!(
                    "link set dev lo up\n\
                     link set dev {TUN_NAME} addrgenmode none\n\
                     link set dev {TUN_NAME} mtu 1500 txqueuelen 4096 up\n\
                     addr add {addr}/24 dev {TUN_NAME}\n"
                )
            };
            netns::ip(&["-n", &name, "-batch", "-"], Some(&script))?;
            ns_fds.push(fd);
            addrs.push(addr);
        }
        if spec.ipv6 {
            for (name, addr) in partial.0.iter().zip(&addrs) {
                wait_until_local(name, *addr)?;
            }
        }
        let hub = hub::Hub::start(tuns, &addrs, spec.seed)?;
        Ok(Network {
            names: std::mem::take(&mut partial.0),
            addrs,
            ns_fds,
            ipv6: spec.ipv6,
            hub,
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: a network has at least one node.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether nodes have IPv6 addresses.
    pub fn ipv6(&self) -> bool {
        self.ipv6
    }

    /// Address of node `i` on its TUN device.
    ///
    /// # Panics
    /// If `i >= self.len()` (as for every method taking a node index).
    pub fn addr(&self, i: usize) -> IpAddr {
        self.addrs[i]
    }

    /// Name of node `i`'s namespace (for `ip netns exec` and the like).
    pub fn namespace(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// How faults are injected.
    pub fn impairment(&self) -> Impairment {
        Impairment::Userspace
    }

    fn link_index(&self, from: usize, to: usize) -> usize {
        let n = self.len();
        assert!(
            from < n && to < n,
            "node index out of range ({from}, {to}) for {n} nodes"
        );
        from * n + to
    }

    /// Sets the rule of the directed link `from → to`.
    pub fn set_link(&self, from: usize, to: usize, rule: LinkRule) {
        let k = self.link_index(from, to);
        self.hub.shared().rules()[k] = rule;
    }

    /// The current rule of the directed link `from → to`.
    pub fn link(&self, from: usize, to: usize) -> LinkRule {
        let k = self.link_index(from, to);
        self.hub.shared().rules()[k]
    }

    /// Sets the rule of every directed link between two different nodes.
    pub fn set_all(&self, rule: LinkRule) {
        let n = self.len();
        let mut rules = self.hub.shared().rules();
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    rules[from * n + to] = rule;
                }
            }
        }
    }

    /// Blocks, in both directions, every link between nodes of different `sides`.
    /// Links within a side and links of nodes in no side keep their rules. A blocked
    /// link keeps its other settings, which apply again once it is unblocked.
    pub fn partition(&self, sides: &[Vec<usize>]) {
        let n = self.len();
        for &i in sides.iter().flatten() {
            assert!(i < n, "node index {i} out of range for {n} nodes");
        }
        let mut rules = self.hub.shared().rules();
        for (s, side) in sides.iter().enumerate() {
            for other in &sides[s + 1..] {
                for &a in side {
                    for &b in other {
                        if a != b {
                            rules[a * n + b].blocked = true;
                            rules[b * n + a].blocked = true;
                        }
                    }
                }
            }
        }
    }

    /// Blocks the link `from → to` only; `to → from` keeps its rule.
    pub fn block_one_way(&self, from: usize, to: usize) {
        let k = self.link_index(from, to);
        self.hub.shared().rules()[k].blocked = true;
    }

    /// Makes every link perfect again ([`LinkRule::default`]).
    pub fn heal(&self) {
        for r in self.hub.shared().rules().iter_mut() {
            *r = LinkRule::default();
        }
    }

    /// A snapshot of the hub's counters.
    pub fn stats(&self) -> LinkStats {
        self.hub.shared().stats()
    }

    /// Kernel counters of node `i`'s TUN device, read from inside its namespace.
    /// Nonzero `tx_dropped` means the node sent faster than the hub read, so packets
    /// were lost outside the fault rules.
    pub fn device_counters(&self, i: usize) -> io::Result<DeviceCounters> {
        self.run_in(i, tun::counters_here)?
    }

    /// A [`Command`] for `program` that runs inside node `i`'s namespace. The
    /// namespace is entered between fork and exec with a descriptor opened when the
    /// network was built, so this cannot fail here; spawning reports any error.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        netns::command_in(self.ns_fds[i].clone(), program)
    }

    /// Runs `program args...` in node `i`'s namespace to completion and returns its
    /// exit status and captured output (stdin is empty).
    pub fn output<I, S>(&self, i: usize, program: impl AsRef<OsStr>, args: I) -> io::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(i, program)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Starts a thread inside node `i`'s namespace running `f`, and returns once the
    /// thread is there. Sockets `f` creates belong to the namespace for good and can be
    /// handed to other threads.
    pub fn spawn_in<T, F>(&self, i: usize, f: F) -> io::Result<JoinHandle<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        netns::spawn_in(self.ns_fds[i].clone(), f)
    }

    /// Runs `f` to completion on a thread inside node `i`'s namespace, e.g. to bind a
    /// socket there. A panic in `f` is passed on to the caller.
    pub fn run_in<T, F>(&self, i: usize, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self.spawn_in(i, f)?.join() {
            Ok(v) => Ok(v),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The hub holds the TUN descriptors; they must be closed first, or the devices
        // (and their sockets' references) would keep the namespaces alive.
        self.hub.stop();
        if let Err(e) = netns::delete_all(&self.names) {
            use std::io::Write;
            let _ = writeln!(io::stderr(), "fjell-harness: deleting namespaces: {e}");
        }
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("namespaces", &self.names)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}
