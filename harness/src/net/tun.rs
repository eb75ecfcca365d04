//! TUN devices: one per node, created inside the node's namespace while the harness
//! keeps the descriptor, so every IP packet a node sends to another node comes out
//! of that descriptor and every packet written into it arrives at the node.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use super::netns;

/// Name of the TUN device in every node's namespace (each namespace has its own
/// interface table, so the names never clash).
pub const TUN_NAME: &str = "fjh0";

/// Creates the TUN device (`IFF_TUN | IFF_NO_PI`: raw IP packets, no extra header)
/// inside the namespace behind `ns` and returns its non-blocking descriptor.
///
/// A device is created in the namespace of the thread that issues `TUNSETIFF`, so a
/// short-lived thread enters the namespace for just that; the descriptor keeps working
/// from any thread afterwards.
pub(crate) fn open_in(ns: Arc<OwnedFd>) -> io::Result<OwnedFd> {
    let handle = netns::spawn_in(ns, open_here)?;
    handle
        .join()
        .map_err(|_| io::Error::other("TUN thread panicked"))?
}

fn open_here() -> io::Result<OwnedFd> {
    // SAFETY: a plain open of a constant, NUL-terminated path.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")));
    }
    // SAFETY: `raw` is a freshly opened descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(TUN_NAME.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TUNSETIFF {TUN_NAME}: {e}"),
        ));
    }
    Ok(fd)
}

/// Kernel counters of a node's TUN device. `tx_dropped` counts packets the node sent
/// that the device queue had no room for because the hub did not read them fast
/// enough: losses the hub's own [`LinkStats`](super::LinkStats) cannot see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Packets the hub delivered to the node.
    pub rx_packets: u64,
    /// Delivered packets the node's kernel dropped on receipt.
    pub rx_dropped: u64,
    /// Packets the node sent into the device (towards the hub).
    pub tx_packets: u64,
    /// Packets the node sent that were dropped before the hub could read them.
    pub tx_dropped: u64,
}

/// Reads the device's line of `/proc/thread-self/net/dev`, which shows the network
/// namespace of the calling thread (so call it from a thread inside the namespace).
pub(crate) fn counters_here() -> io::Result<DeviceCounters> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    parse_net_dev(&text, TUN_NAME)
        .ok_or_else(|| io::Error::other(format!("{TUN_NAME} missing from /proc/net/dev")))
}

/// Parses `/proc/net/dev`: after `name:` come 8 receive fields (bytes, packets, errs,
/// drop, fifo, frame, compressed, multicast) and 8 transmit fields (bytes, packets,
/// errs, drop, ...).
fn parse_net_dev(text: &str, name: &str) -> Option<DeviceCounters> {
    for line in text.lines() {
        let Some((dev, rest)) = line.split_once(':') else {
            continue;
        };
        if dev.trim() != name {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        if f.len() < 12 {
            return None;
        }
        return Some(DeviceCounters {
            rx_packets: f[1],
            rx_dropped: f[3],
            tx_packets: f[9],
            tx_dropped: f[11],
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_line_is_parsed() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
fjh0:  480000     400    0    2    0     0          0         0  1200000    1000    0   30    0     0       0          0\n";
        assert_eq!(
            parse_net_dev(text, "fjh0"),
            Some(DeviceCounters {
                rx_packets: 400,
                rx_dropped: 2,
                tx_packets: 1000,
                tx_dropped: 30
            })
        );
        assert_eq!(parse_net_dev(text, "eth0"), None);
    }
}
