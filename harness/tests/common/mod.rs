//! What the harness's integration tests share.

use std::path::Path;

/// Whether this machine can run the harness: root and /dev/net/tun. Says why not.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the harness needs root");
        return false;
    }
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: /dev/net/tun is missing");
        return false;
    }
    true
}
