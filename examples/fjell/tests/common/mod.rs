//! Shared by the tests that run the `fjell` binary.

use std::process::Output;

/// Exit code, stdout and stderr of a finished `fjell` process, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
