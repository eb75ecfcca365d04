//! The hub: one thread that owns every node's TUN descriptor and switches IP packets
//! between them by destination address, applying each directed link's [`LinkRule`].

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtOrd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::impair::{decide, LinkCounters, LinkRule, LinkStats, SplitMix64, Verdict};

/// Most packets waiting for their delay at once; beyond it packets are dropped and
/// counted, so a fault scenario cannot eat the machine's memory.
const MAX_PENDING_PACKETS: usize = 100_000;
/// Most bytes waiting at once (same reason).
const MAX_PENDING_BYTES: usize = 64 << 20;
/// Packets read from one device before the hub looks at the others, for fairness.
const READ_BURST: usize = 64;
/// Larger than any packet a TUN device with MTU 1500 hands out.
const BUF_LEN: usize = 65_536;

#[derive(Default)]
struct AtomicCounters {
    forwarded: AtomicU64,
    dropped_blocked: AtomicU64,
    dropped_loss: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    dropped_overflow: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, AtOrd::Relaxed);
}

/// State shared between the hub thread and [`Network`](super::Network).
pub(crate) struct Shared {
    n: usize,
    rules: Mutex<Vec<LinkRule>>,
    links: Vec<AtomicCounters>,
    unknown_dest: AtomicU64,
    malformed: AtomicU64,
    overflow: AtomicU64,
    write_errors: AtomicU64,
    read_errors: AtomicU64,
    stop: AtomicBool,
    wake: OwnedFd,
}

impl Shared {
    /// The rule table, `n * n` entries indexed `from * n + to`. A poisoned lock still
    /// holds a consistent table (writers only assign whole rules), so it is used as is.
    pub(crate) fn rules(&self) -> MutexGuard<'_, Vec<LinkRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stats(&self) -> LinkStats {
        let ld = |c: &AtomicU64| c.load(AtOrd::Relaxed);
        LinkStats {
            nodes: self.n,
            links: self
                .links
                .iter()
                .map(|c| LinkCounters {
                    forwarded: ld(&c.forwarded),
                    dropped_blocked: ld(&c.dropped_blocked),
                    dropped_loss: ld(&c.dropped_loss),
                    reordered: ld(&c.reordered),
                    delayed: ld(&c.delayed),
                    dropped_overflow: ld(&c.dropped_overflow),
                })
                .collect(),
            unknown_dest: ld(&self.unknown_dest),
            malformed: ld(&self.malformed),
            overflow: ld(&self.overflow),
            write_errors: ld(&self.write_errors),
            read_errors: ld(&self.read_errors),
        }
    }
}

/// The running hub; stopping it (explicitly or by drop) closes every TUN descriptor.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Starts the hub thread over `tuns` (node `i` behind `tuns[i]`, reachable at
    /// `addrs[i]`).
    pub(crate) fn start(tuns: Vec<OwnedFd>, addrs: &[IpAddr], seed: u64) -> io::Result<Hub> {
        let n = tuns.len();
        // SAFETY: eventfd has no memory arguments.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nothing else.
        let wake = unsafe { OwnedFd::from_raw_fd(raw) };
        let shared = Arc::new(Shared {
            n,
            rules: Mutex::new(vec![LinkRule::default(); n * n]),
            links: (0..n * n).map(|_| AtomicCounters::default()).collect(),
            unknown_dest: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            wake,
        });
        let worker = Worker {
            shared: shared.clone(),
            addrs: addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            rngs: (0..n * n)
                .map(|l| {
                    // Mix the link index into the seed so links draw independent streams.
                    let mut s =
                        SplitMix64::new(seed ^ (l as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                    SplitMix64::new(s.next_u64())
                })
                .collect(),
            tuns,
            pending: BinaryHeap::new(),
            pending_bytes: 0,
            seq: 0,
        };
        let thread = std::thread::Builder::new()
            .name("fjell-net-hub".into())
            .spawn(move || worker.run())?;
        Ok(Hub {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the thread and waits for it; idempotent.
    pub(crate) fn stop(&mut self) {
        self.shared.stop.store(true, AtOrd::SeqCst);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to the eventfd.
        unsafe {
            libc::write(self.shared.wake.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A packet waiting for its due time.
struct Pending {
    due: Instant,
    seq: u64,
    from: usize,
    to: usize,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed so the max-heap pops the earliest due time first; the sequence number
    /// keeps packets with equal due times in arrival order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

struct Worker {
    shared: Arc<Shared>,
    addrs: HashMap<IpAddr, usize>,
    rngs: Vec<SplitMix64>,
    tuns: Vec<OwnedFd>,
    pending: BinaryHeap<Pending>,
    pending_bytes: usize,
    seq: u64,
}

/// Closes the TUN descriptors on parallel threads: each close waits for an RCU grace
/// period in the kernel (`tun_detach` → `synchronize_net`), tens of milliseconds, so
/// closing 200 one after the other takes seconds while concurrent closes share periods.
fn close_all(tuns: Vec<OwnedFd>) {
    const THREADS: usize = 32;
    let mut groups: Vec<Vec<OwnedFd>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (k, fd) in tuns.into_iter().enumerate() {
        groups[k % THREADS].push(fd);
    }
    let handles: Vec<_> = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        // If a thread cannot start, its closure (and the descriptors) drop here instead.
        .filter_map(|g| std::thread::Builder::new().spawn(move || drop(g)).ok())
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

/// Destination address of an IP packet; `Err(())` when it is no well-formed IPv4 or
/// IPv6 header.
fn destination(pkt: &[u8]) -> Result<IpAddr, ()> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => {
            let b: [u8; 4] = pkt[16..20].try_into().map_err(|_| ())?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        Some(6) if pkt.len() >= 40 => {
            let b: [u8; 16] = pkt[24..40].try_into().map_err(|_| ())?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => Err(()),
    }
}

impl Worker {
    fn run(mut self) {
        self.serve();
        close_all(std::mem::take(&mut self.tuns));
    }

    fn serve(&mut self) {
        let n = self.tuns.len();
        let mut pfds: Vec<libc::pollfd> = self
            .tuns
            .iter()
            .map(|t| t.as_raw_fd())
            .chain(std::iter::once(self.shared.wake.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut buf = vec![0u8; BUF_LEN];
        while !self.shared.stop.load(AtOrd::SeqCst) {
            let now = Instant::now();
            self.flush_due(now);
            let timeout = self.pending.peek().map(|p| {
                let d = p.due.saturating_duration_since(now);
                libc::timespec {
                    tv_sec: d.as_secs() as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                }
            });
            let ts_ptr = timeout
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `pfds` is a live array of `pfds.len()` pollfds; the timeout is
            // null or points at a live timespec; no signal mask is changed.
            let r = unsafe {
                libc::ppoll(
                    pfds.as_mut_ptr(),
                    pfds.len() as libc::nfds_t,
                    ts_ptr,
                    std::ptr::null(),
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    // Should not happen; back off instead of spinning.
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            if pfds[n].revents != 0 {
                let mut v: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 (draining the eventfd).
                unsafe {
                    libc::read(pfds[n].fd, (&mut v as *mut u64).cast(), 8);
                }
            }
            for (i, pfd) in pfds.iter_mut().enumerate().take(n) {
                if pfd.revents & libc::POLLIN != 0 {
                    if !self.read_from(i, &mut buf) {
                        // A device that fails for real would wake poll forever; stop
                        // listening to it (its node is then cut off, visibly counted).
                        pfd.fd = -1;
                    }
                } else if pfd.revents & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0 {
                    bump(&self.shared.read_errors);
                    pfd.fd = -1;
                }
            }
        }
    }

    /// Reads a burst of packets from node `from`. Returns false if the device failed.
    fn read_from(&mut self, from: usize, buf: &mut [u8]) -> bool {
        let fd = self.tuns[from].as_raw_fd();
        for _ in 0..READ_BURST {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => true,
                    _ => {
                        bump(&self.shared.read_errors);
                        false
                    }
                };
            }
            self.route(from, &buf[..r as usize]);
        }
        true
    }

    fn route(&mut self, from: usize, pkt: &[u8]) {
        let to = match destination(pkt) {
            Ok(addr) => match self.addrs.get(&addr) {
                Some(&to) if to != from => to,
                _ => {
                    bump(&self.shared.unknown_dest);
                    return;
                }
            },
            Err(()) => {
                bump(&self.shared.malformed);
                return;
            }
        };
        let link = from * self.shared.n + to;
        let rule = self.shared.rules()[link];
        let counters = &self.shared.links[link];
        match decide(&rule, &mut self.rngs[link]) {
            Verdict::Blocked => bump(&counters.dropped_blocked),
            Verdict::Lost => bump(&counters.dropped_loss),
            Verdict::Now { reordered } => {
                if reordered {
                    bump(&counters.reordered);
                }
                self.write(from, to, pkt);
            }
            Verdict::Later(delay) => {
                if self.pending.len() >= MAX_PENDING_PACKETS
                    || self.pending_bytes + pkt.len() > MAX_PENDING_BYTES
                {
                    bump(&counters.dropped_overflow);
                    bump(&self.shared.overflow);
                    return;
                }
                bump(&counters.delayed);
                self.seq += 1;
                self.pending_bytes += pkt.len();
                self.pending.push(Pending {
                    due: Instant::now() + delay,
                    seq: self.seq,
                    from,
                    to,
                    data: pkt.to_vec(),
                });
            }
        }
    }

    fn flush_due(&mut self, now: Instant) {
        while self.pending.peek().is_some_and(|p| p.due <= now) {
            if let Some(p) = self.pending.pop() {
                self.pending_bytes -= p.data.len();
                self.write(p.from, p.to, &p.data);
            }
        }
    }

    fn write(&self, from: usize, to: usize, pkt: &[u8]) {
        let fd: RawFd = self.tuns[to].as_raw_fd();
        // Counted before the write: the receiver may already hold the packet when
        // write returns, and whoever then reads the stats must see it counted.
        let forwarded = &self.shared.links[from * self.shared.n + to].forwarded;
        bump(forwarded);
        // SAFETY: writes `pkt.len()` bytes from `pkt`. A TUN write injects the packet
        // into the destination namespace's stack at once; it does not block.
        let r = unsafe { libc::write(fd, pkt.as_ptr().cast(), pkt.len()) };
        if r < 0 {
            forwarded.fetch_sub(1, AtOrd::Relaxed);
            bump(&self.shared.write_errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_parses_both_versions() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[10, 201, 0, 2]);
        assert_eq!(destination(&v4), Ok("10.201.0.2".parse().unwrap()));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[24..40].copy_from_slice(&"fd00:f1e1::3".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(destination(&v6), Ok("fd00:f1e1::3".parse().unwrap()));
        assert_eq!(destination(&v4[..19]), Err(()));
        assert_eq!(destination(&[0x75; 60]), Err(()));
        assert_eq!(destination(&[]), Err(()));
    }

    #[test]
    fn heap_pops_earliest_then_by_sequence() {
        let t = Instant::now();
        let mk = |ms, seq| Pending {
            due: t + Duration::from_millis(ms),
            seq,
            from: 0,
            to: 1,
            data: Vec::new(),
        };
        let mut h = BinaryHeap::new();
        h.push(mk(5, 1));
        h.push(mk(1, 3));
        h.push(mk(1, 2));
        h.push(mk(3, 4));
        let order: Vec<u64> = std::iter::from_fn(|| h.pop().map(|p| p.seq)).collect();
        assert_eq!(order, vec![2, 3, 4, 1]);
    }
}
