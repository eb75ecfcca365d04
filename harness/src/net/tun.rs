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
