//! The node processes: their certificates and settings files, starting and signalling
//! them inside their namespaces, and asking them management questions.
//!
//! Every process is killed when the fleet is dropped (also when a check fails or the
//! harness panics), and gets `PR_SET_PDEATHSIG` so that it dies with the harness even when
//! the harness itself is killed.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};

use std::time::Duration;

use fjell_quic::DevCa;
use serde::de::DeserializeOwned;

use crate::net::Network;
use crate::observe::{EventLog, Tail};
use crate::scenario::{BuiltIn, Program, Scenario};

/// The port every node listens on (each has an address of its own).
pub const PORT: u16 = 7355;
/// The HTTP endpoints' port of every node, in bootstrap scenarios ([settings.discovery]).
pub const HTTP_PORT: u16 = 8558;

/// One node: where its files are and its process, if one runs.
#[derive(Debug)]
pub struct NodeProc {
    /// Its number.
    pub index: usize,
    /// The address it advertises (and its certificate certifies).
    pub addr: SocketAddr,
    /// Its directory: settings, certificate, logs.
    pub dir: PathBuf,
    /// Its settings file.
    pub config: PathBuf,
    /// Its event log.
    pub events: EventLog,
    /// Its application log (program `harness-node`).
    pub app: Tail,
    child: Option<Child>,
    /// Stopped with SIGSTOP and not resumed yet.
    pub paused: bool,
}

impl NodeProc {
    /// Whether its process runs (paused or not).
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The nodes of one run.
pub struct Fleet<'n> {
    net: &'n Network,
    fjell: PathBuf,
    me: PathBuf,
    pki: PathBuf,
    program: Program,
    /// The nodes, by number.
    pub nodes: Vec<NodeProc>,
}

impl<'n> Fleet<'n> {
    /// Prepares the nodes of `scenario` on `net` under `dir`: a cluster CA, a certificate
    /// per node and one for the administrator, and a settings file per node. Nothing runs
    /// yet.
    pub fn prepare(
        scenario: &Scenario,
        net: &'n Network,
        fjell: &Path,
        dir: &Path,
    ) -> Result<Fleet<'n>, String> {
        let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let pki = dir.join("pki");
        fs::create_dir_all(&pki).map_err(|e| format!("{}: {e}", pki.display()))?;
        // A throwaway cluster CA for the run, as `fjell certs` would make: the harness is a
        // test tool, and needs no `fjell` binary for it.
        // Valid for a year: longer than any soak.
        let year = Duration::from_secs(365 * 86_400);
        let ca = DevCa::for_cluster("harness", year)
            .map_err(|e| format!("cannot make the cluster CA: {e}"))?
            .with_leaf_validity(year);
        let write = |name: &str, text: &str| -> Result<(), String> {
            let path = pki.join(name);
            fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        write("ca.pem", &ca.ca_pem())?;
        let (cert, key) = ca.admin_pem("harness").map_err(|e| e.to_string())?;
        write("admin.pem", &cert)?;
        write("admin.key", &key)?;
        let p = pki.to_string_lossy().into_owned();
        let ca_cert = format!("{p}/ca.pem");
        let addrs: Vec<SocketAddr> = (0..scenario.nodes)
            .map(|i| SocketAddr::new(net.addr(i), PORT))
            .collect();
        let seeds: Vec<String> = scenario
            .seed_nodes()
            .iter()
            .map(|&i| addrs[i].to_string())
            .collect();
        // Bootstrap scenarios ([settings.discovery], no seeds): every node serves its HTTP
        // endpoints on its own address, and a `file` discovery lists them all.
        let bootstrap = scenario.settings.contains_key("discovery");
        let contact_points = dir.join("contact-points");
        if bootstrap {
            let list: String = addrs
                .iter()
                .map(|a| format!("{}\n", SocketAddr::new(a.ip(), HTTP_PORT)))
                .collect();
            fs::write(&contact_points, list)
                .map_err(|e| format!("{}: {e}", contact_points.display()))?;
        }
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let name = format!("node{i}");
            let (cert, key) = ca.node_pem(*addr).map_err(|e| e.to_string())?;
            write(&format!("{name}.pem"), &cert)?;
            write(&format!("{name}.key"), &key)?;
            let ndir = dir.join(&name);
            fs::create_dir_all(&ndir).map_err(|e| format!("{}: {e}", ndir.display()))?;
            let events = ndir.join("events.jsonl");
            let mut table = scenario.settings.clone();
            if let Some(extra) = scenario.node_settings.get(&i.to_string()) {
                for (k, v) in extra {
                    table.insert(k.clone(), v.clone());
                }
            }
            let s = |v: &dyn ToString| toml::Value::String(v.to_string());
            table.insert("bind".into(), s(addr));
            table.insert("advertised-address".into(), s(addr));
            table.insert(
                "seed-nodes".into(),
                toml::Value::Array(seeds.iter().map(|a| s(a)).collect()),
            );
            table.insert("event-log".into(), s(&events.display()));
            if bootstrap {
                let mut management = toml::Table::new();
                management.insert("http".into(), s(&SocketAddr::new(addr.ip(), HTTP_PORT)));
                table.insert("management".into(), toml::Value::Table(management));
                if let Some(toml::Value::Table(d)) = table.get_mut("discovery") {
                    if d.get("method").and_then(|m| m.as_str()) == Some("file") {
                        d.entry("file")
                            .or_insert_with(|| s(&contact_points.display()));
                    }
                }
            }
            let mut tls = toml::Table::new();
            tls.insert("ca".into(), s(&ca_cert));
            tls.insert("cert".into(), s(&format!("{p}/{name}.pem")));
            tls.insert("key".into(), s(&format!("{p}/{name}.key")));
            table.insert("tls".into(), toml::Value::Table(tls));
            let config = ndir.join("node.toml");
            let text = toml::to_string(&table).map_err(|e| format!("node {i} settings: {e}"))?;
            fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
            nodes.push(NodeProc {
                index: i,
                addr: *addr,
                app: Tail::new(ndir.join("app.jsonl")),
                events: EventLog::new(events),
                dir: ndir,
                config,
                child: None,
                paused: false,
            });
        }
        Ok(Fleet {
            net,
            fjell: fjell.to_path_buf(),
            me,
            pki,
            program: scenario.program.clone(),
            nodes,
        })
    }

    /// Starts node `i` (a new incarnation on its address).
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        let n = &mut self.nodes[i];
        if n.child.is_some() {
            return Err(format!("node {i} still runs"));
        }
        let config = n.config.to_string_lossy().into_owned();
        let dir = n.dir.to_string_lossy().into_owned();
        let app_log = n.dir.join("app.jsonl").to_string_lossy().into_owned();
        let line: Vec<String> = match &self.program {
            Program::Default | Program::Named(BuiltIn::Fjell) => vec![
                self.fjell.to_string_lossy().into_owned(),
                "run".into(),
                "--config".into(),
                config,
            ],
            Program::Named(BuiltIn::HarnessNode) => vec![
                self.me.to_string_lossy().into_owned(),
                "node".into(),
                "--config".into(),
                config,
                "--app-log".into(),
                app_log,
            ],
            Program::Command(c) => c
                .iter()
                .map(|a| {
                    a.replace("{config}", &config)
                        .replace("{dir}", &dir)
                        .replace("{index}", &i.to_string())
                })
                .collect(),
        };
        let output = fs::File::options()
            .create(true)
            .append(true)
            .open(n.dir.join("output.log"))
            .map_err(|e| format!("node {i} output log: {e}"))?;
        let mut cmd = self.net.command(i, &line[0]);
        cmd.args(&line[1..])
            .stdin(Stdio::null())
            .stdout(output.try_clone().map_err(|e| e.to_string())?)
            .stderr(output);
        // `fjell run` refuses FJELL_ variables it does not know; the harness's own
        // environment is not the node's.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FJELL_") {
                cmd.env_remove(k);
            }
        }
        // A process group of its own: signals reach a wrapper's children too (a program
        // should still `exec` the node), and the harness's Ctrl-C does not reach the nodes.
        cmd.process_group(0);
        // SAFETY: getpid is async-signal-safe and runs in the parent.
        let parent = unsafe { libc::getpid() };
        // SAFETY: prctl and getppid are async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The harness died before the prctl took effect: do not outlive it.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        n.events.mark_start();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start node {i} ({}): {e}", line[0]))?;
        n.child = Some(child);
        n.paused = false;
        Ok(())
    }

    /// Sends `signal` to node `i`'s process.
    pub fn signal(&mut self, i: usize, signal: libc::c_int) -> Result<(), String> {
        let n = &mut self.nodes[i];
        let Some(pid) = n.pid() else {
            return Err(format!("node {i} does not run"));
        };
        // To the node's process group (its pid: see `start`). SAFETY: plain syscall; the
        // child is not reaped yet, so the group is still ours.
        if unsafe { libc::kill(-(pid as libc::pid_t), signal) } != 0 {
            return Err(format!(
                "signal {signal} to node {i}: {}",
                std::io::Error::last_os_error()
            ));
        }
        match signal {
            libc::SIGSTOP => n.paused = true,
            libc::SIGCONT => n.paused = false,
            _ => {}
        }
        Ok(())
    }

    /// SIGKILLs node `i` and reaps it.
    pub fn kill(&mut self, i: usize) -> Result<(), String> {
        self.signal(i, libc::SIGKILL)?;
        let n = &mut self.nodes[i];
        if let Some(mut c) = n.child.take() {
            let _ = c.wait();
        }
        n.paused = false;
        Ok(())
    }

    /// Notices processes that ended; returns the nodes whose process ended since the last
    /// call, with how.
    pub fn reap(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut ended = Vec::new();
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                if let Ok(Some(status)) = c.try_wait() {
                    n.child = None;
                    n.paused = false;
                    ended.push((n.index, status));
                }
            }
        }
        ended
    }

    /// Asks node `i` a management question (`fjell <what> --json`) from inside its
    /// namespace, waiting at most `timeout_s` seconds.
    pub fn manage<T: DeserializeOwned>(
        &self,
        i: usize,
        what: &str,
        timeout_s: u32,
    ) -> Result<T, String> {
        let p = &self.pki;
        let out = self
            .net
            .command(i, &self.fjell)
            .arg(what)
            .arg("--node")
            .arg(self.nodes[i].addr.to_string())
            .arg("--ca")
            .arg(p.join("ca.pem"))
            .arg("--cert")
            .arg(p.join("admin.pem"))
            .arg("--key")
            .arg(p.join("admin.key"))
            .arg("--json")
            .arg("--timeout")
            .arg(timeout_s.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("fjell {what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "fjell {what} --node {}: {}",
                self.nodes[i].addr,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "fjell {what}: {e}: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            )
        })
    }

    /// Kills every process still running (each node's whole process group).
    pub fn stop_all(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                // SAFETY: plain syscall on the group of a child not reaped yet.
                unsafe { libc::kill(-(c.id() as libc::pid_t), libc::SIGKILL) };
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        self.stop_all();
    }
}
