//! `[discovery]` and `[bootstrap]`: how `fjell run` finds the other nodes when it is given
//! no seed nodes, and when it may found a cluster (Pekko's Cluster Bootstrap; fjell-ops
//! carries it out). Only the values live here; the rules are fjell-ops'.
//!
//! ```toml
//! [management]
//! http = "0.0.0.0:8558"           # contact points are probed here
//! [discovery]
//! method = "dns-srv"              # or "dns", "file", "command"
//! name = "_management._tcp.fjell.default.svc.cluster.local"
//! [bootstrap]
//! required-contact-point-nr = 5   # the fleet's initial size
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::{addr, boolean, duration, integer, string, SettingsError};

/// Where contact points (the management HTTP addresses of the nodes) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryMethod {
    /// `method = "dns"`: the A and AAAA records of `name`, each address with `port` (the
    /// node's own `management.http` port by default).
    Dns {
        /// `discovery.name`.
        name: String,
        /// `discovery.port`.
        port: Option<u16>,
    },
    /// `method = "dns-srv"`: the SRV records of `name`, each target's addresses with the
    /// record's port (a Kubernetes headless service's named port).
    DnsSrv {
        /// `discovery.name`.
        name: String,
    },
    /// `method = "file"`: one `HOST:PORT` per line (`#` starts a comment), read again at
    /// every lookup.
    File(PathBuf),
    /// `method = "command"`: `sh -c COMMAND`, printing one `HOST:PORT` per line.
    Command(String),
}

/// `[discovery]` and `[bootstrap]` (see the [module docs](self)). Defaults are Pekko's.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// `discovery.method` with its keys.
    pub method: DiscoveryMethod,
    /// `discovery.dns-server` (`IP:PORT`): the first `nameserver` of `/etc/resolv.conf` by
    /// default.
    pub dns_server: Option<SocketAddr>,
    /// `discovery.interval` (1 s): time between lookups.
    pub interval: Duration,
    /// `discovery.resolve-timeout` (3 s): how long one lookup may take.
    pub resolve_timeout: Duration,
    /// `bootstrap.required-contact-point-nr` (2): contact points that must answer before a
    /// new cluster is formed. Set it to the fleet's initial size.
    pub required_contact_point_nr: usize,
    /// `bootstrap.stable-margin` (5 s): how long the discovered set must be unchanged.
    pub stable_margin: Duration,
    /// `bootstrap.probe-interval` (1 s): time between probes of each contact point.
    pub probe_interval: Duration,
    /// `bootstrap.probing-failure-timeout` (3 s): an answer older than this no longer
    /// counts; also the timeout of one probe.
    pub probing_failure_timeout: Duration,
    /// `bootstrap.new-cluster-enabled` (true): whether the lowest contact point may found a
    /// cluster. Turn it off once the cluster exists, so a redeploy during a partition
    /// cannot found a second one.
    pub new_cluster_enabled: bool,
    /// `bootstrap.contact-with-all-contact-points` (true): every discovered contact point
    /// must have answered before a cluster is founded.
    pub contact_with_all_contact_points: bool,
}

impl Bootstrap {
    /// Contact points from `method`, with Pekko's defaults for the rest.
    pub fn new(method: DiscoveryMethod) -> Bootstrap {
        Bootstrap {
            method,
            dns_server: None,
            interval: Duration::from_secs(1),
            resolve_timeout: Duration::from_secs(3),
            required_contact_point_nr: 2,
            stable_margin: Duration::from_secs(5),
            probe_interval: Duration::from_secs(1),
            probing_failure_timeout: Duration::from_secs(3),
            new_cluster_enabled: true,
            contact_with_all_contact_points: true,
        }
    }
}

/// The keys, gathered in any order and checked together at the end.
#[derive(Debug, Default)]
pub(super) struct Keys {
    method: Option<String>,
    name: Option<String>,
    port: Option<u16>,
    file: Option<PathBuf>,
    command: Option<String>,
    dns_server: Option<SocketAddr>,
    interval: Option<Duration>,
    resolve_timeout: Option<Duration>,
    required: Option<usize>,
    stable_margin: Option<Duration>,
    probe_interval: Option<Duration>,
    probing_failure_timeout: Option<Duration>,
    new_cluster_enabled: Option<bool>,
    contact_with_all: Option<bool>,
}

/// The keys of this module, for [`super::Settings::NODE_KEYS`].
pub(super) const KEYS: &[&str] = &[
    "discovery.method",
    "discovery.name",
    "discovery.port",
    "discovery.file",
    "discovery.command",
    "discovery.dns-server",
    "discovery.interval",
    "discovery.resolve-timeout",
    "bootstrap.required-contact-point-nr",
    "bootstrap.stable-margin",
    "bootstrap.probe-interval",
    "bootstrap.probing-failure-timeout",
    "bootstrap.new-cluster-enabled",
    "bootstrap.contact-with-all-contact-points",
];

impl Keys {
    /// Takes `key` if it is one of this module's: `None` if it is not.
    pub(super) fn apply(&mut self, key: &str, v: &Value) -> Option<Result<(), String>> {
        let positive = |d: Duration| {
            if d.is_zero() {
                Err("must be more than zero".to_string())
            } else {
                Ok(d)
            }
        };
        let r = (|| {
            match key {
                "discovery.method" => self.method = Some(string(v)?),
                "discovery.name" => self.name = Some(string(v)?),
                "discovery.port" => self.port = Some(integer(v)?),
                "discovery.file" => self.file = Some(string(v)?.into()),
                "discovery.command" => self.command = Some(string(v)?),
                "discovery.dns-server" => self.dns_server = Some(addr(v)?),
                "discovery.interval" => self.interval = Some(positive(duration(v)?)?),
                "discovery.resolve-timeout" => self.resolve_timeout = Some(positive(duration(v)?)?),
                "bootstrap.required-contact-point-nr" => {
                    let n: usize = integer(v)?;
                    if n == 0 {
                        return Err("must be at least 1".into());
                    }
                    self.required = Some(n)
                }
                "bootstrap.stable-margin" => self.stable_margin = Some(duration(v)?),
                "bootstrap.probe-interval" => self.probe_interval = Some(positive(duration(v)?)?),
                "bootstrap.probing-failure-timeout" => {
                    self.probing_failure_timeout = Some(positive(duration(v)?)?)
                }
                "bootstrap.new-cluster-enabled" => self.new_cluster_enabled = Some(boolean(v)?),
                "bootstrap.contact-with-all-contact-points" => {
                    self.contact_with_all = Some(boolean(v)?)
                }
                _ => return Ok(false),
            }
            Ok(true)
        })();
        match r {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        }
    }

    /// The settings, or `None` without `discovery.method`; `seed_nodes` and `http` are the
    /// node's, which bootstrap needs empty and set.
    pub(super) fn resolve(
        self,
        seed_nodes: &[SocketAddr],
        http: Option<SocketAddr>,
    ) -> Result<Option<Bootstrap>, SettingsError> {
        let err = |key: &str, reason: &str| SettingsError::new(key, reason);
        let Some(method) = self.method else {
            let stray = [
                self.name.is_some(),
                self.file.is_some(),
                self.command.is_some(),
                self.required.is_some(),
            ];
            if stray.contains(&true) {
                return Err(err(
                    "discovery.method",
                    "missing: discovery and bootstrap keys are set, but no method",
                ));
            }
            return Ok(None);
        };
        let need = |v: Option<String>, key: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| err(key, &format!("missing: method {method:?} needs it")))
        };
        let m = match method.as_str() {
            "dns" => DiscoveryMethod::Dns {
                name: need(self.name, "discovery.name")?,
                port: self.port,
            },
            "dns-srv" => DiscoveryMethod::DnsSrv {
                name: need(self.name, "discovery.name")?,
            },
            "file" => DiscoveryMethod::File(
                need(
                    self.file.map(|p| p.to_string_lossy().into_owned()),
                    "discovery.file",
                )?
                .into(),
            ),
            "command" => DiscoveryMethod::Command(need(self.command, "discovery.command")?),
            other => {
                return Err(err(
                    "discovery.method",
                    &format!("{other:?} is not one of \"dns\", \"dns-srv\", \"file\", \"command\""),
                ))
            }
        };
        if !seed_nodes.is_empty() {
            return Err(err(
                "discovery.method",
                "seed-nodes is set too: a node either joins its seed nodes or bootstraps by discovery",
            ));
        }
        if http.is_none() {
            return Err(err(
                "discovery.method",
                "management.http is not set: contact points are probed over the HTTP endpoints",
            ));
        }
        let d = Bootstrap::new(m);
        Ok(Some(Bootstrap {
            dns_server: self.dns_server,
            interval: self.interval.unwrap_or(d.interval),
            resolve_timeout: self.resolve_timeout.unwrap_or(d.resolve_timeout),
            required_contact_point_nr: self.required.unwrap_or(d.required_contact_point_nr),
            stable_margin: self.stable_margin.unwrap_or(d.stable_margin),
            probe_interval: self.probe_interval.unwrap_or(d.probe_interval),
            probing_failure_timeout: self
                .probing_failure_timeout
                .unwrap_or(d.probing_failure_timeout),
            new_cluster_enabled: self.new_cluster_enabled.unwrap_or(d.new_cluster_enabled),
            contact_with_all_contact_points: self
                .contact_with_all
                .unwrap_or(d.contact_with_all_contact_points),
            ..d
        }))
    }
}
