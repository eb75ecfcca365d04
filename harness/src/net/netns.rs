//! Named network namespaces (the `ip netns` kind, bind-mounted under
//! `/var/run/netns`): creating, entering, running programs in and deleting them.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Where `ip netns` keeps the namespace bind mounts.
pub(crate) const NETNS_DIR: &str = "/var/run/netns";

pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Opens the namespace's handle (close-on-exec, so programs started later do not
/// inherit it).
pub(crate) fn open(name: &str) -> io::Result<OwnedFd> {
    let p = path(name);
    File::open(&p)
        .map(OwnedFd::from)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", p.display())))
}

/// Moves the calling thread into the namespace. Only this thread changes; sockets and
/// devices it creates afterwards belong to the namespace for their whole life.
pub(crate) fn enter(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which `fd` keeps open.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `ip` with `args`, feeding `stdin` (for `-batch -`), and turns a failure exit
/// status into an error that carries ip's own message.
pub(crate) fn ip(args: &[&str], stdin: Option<&str>) -> io::Result<()> {
    ip_output(args, stdin).map(drop)
}

/// [`ip`], returning what it printed.
pub(crate) fn ip_output(args: &[&str], stdin: Option<&str>) -> io::Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("spawn ip {}: {e}", args.join(" "))))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error shows up again as a failure status below; keep ip's message.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates the named namespace. `ip netns add` also prepares `/var/run/netns` as a
/// shared mount the first time, which is why it is used instead of raw syscalls.
pub(crate) fn add(name: &str) -> io::Result<()> {
    ip(&["netns", "add", name], None)
}

/// Deletes the named namespaces with one `ip` process; continues past failures and
/// reports the first. A namespace lives on (unnamed) while a process or socket still
/// uses it and vanishes, with its devices, when the last one goes.
pub(crate) fn delete_all(names: &[String]) -> io::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut script = String::new();
    for n in names {
        script.push_str("netns del ");
        script.push_str(n);
        script.push('\n');
    }
    ip(&["-force", "-batch", "-"], Some(&script))
}

/// Every named namespace on the machine.
pub fn list_namespaces() -> io::Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in dir {
        if let Some(name) = entry?.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// A [`Command`] whose child enters the namespace behind `fd` before `exec`.
pub(crate) fn command_in(fd: Arc<OwnedFd>, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and only makes the setns system
    // call, which is async-signal-safe; the descriptor stays open because the
    // closure owns an `Arc` of it for as long as the Command lives.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Starts a thread that runs `f` inside the namespace behind `fd`; returns once the
/// thread is in the namespace, or the error if it could not get there.
pub(crate) fn spawn_in<T, F>(fd: Arc<OwnedFd>, f: F) -> io::Result<JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("fjell-netns".into())
        .spawn(move || {
            if let Err(e) = enter(&fd) {
                let _ = tx.send(Err(e));
                // End the thread without a value; resume_unwind skips the panic hook,
                // so nothing is printed, and the caller only sees the error it was sent.
                std::panic::resume_unwind(Box::new(()));
            }
            drop(fd);
            let _ = tx.send(Ok(()));
            f()
        })?;
    match rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(io::Error::new(e.kind(), format!("setns: {e}")))
        }
        Err(_) => {
            let _ = handle.join();
            Err(io::Error::other("namespace thread ended before entering"))
        }
    }
}

/// Deletes leftover namespaces of earlier runs: names `{prefix_root}{pid}x...` (the
/// shape [`NetSpec::unique_prefix`](super::NetSpec::unique_prefix) makes) whose pid is
/// no longer alive. Best effort: a recycled pid keeps its namespaces. Returns how many
/// were deleted.
pub fn cleanup_stale(prefix_root: &str) -> io::Result<usize> {
    let own = std::process::id();
    let stale: Vec<String> = list_namespaces()?
        .into_iter()
        .filter(|name| match embedded_pid(name, prefix_root) {
            Some(pid) => pid != own && !pid_alive(pid),
            None => false,
        })
        .collect();
    // Another process may be cleaning up the same leftovers at the same moment, so a
    // failed delete is not an error; count what is gone afterwards.
    let _ = delete_all(&stale);
    Ok(stale.iter().filter(|n| !path(n).exists()).count())
}

fn embedded_pid(name: &str, prefix_root: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix_root)?;
    let (digits, _) = rest.split_once('x')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks whether the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_parsed_from_names() {
        assert_eq!(embedded_pid("fjh1234x0-5", "fjh"), Some(1234));
        assert_eq!(embedded_pid("fjh1234x", "fjh"), Some(1234));
        assert_eq!(embedded_pid("fjhx0-5", "fjh"), None);
        assert_eq!(embedded_pid("fjh12a4x0", "fjh"), None);
        assert_eq!(embedded_pid("other1234x0", "fjh"), None);
    }
}
