//! Settings from a TOML file, with environment overrides.
//!
//! Keys are Pekko's `pekko.cluster.*` names in kebab case, exactly fjell-core's
//! [`Config::KEYS`], plus the node's own keys ([`Settings::NODE_KEYS`]) and the split brain
//! resolver's per-strategy keys ([`Settings::STRATEGY_KEYS`]). Dotted keys may be written as
//! TOML tables. Durations are strings with a unit: `"500ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`
//! (also `"us"`); optional durations also take `"off"`.
//!
//! ```toml
//! advertised-address = "10.0.0.1:7355"
//! bind = "0.0.0.0:7355"
//! seed-nodes = ["node1.example.com:7355", "10.0.0.2:7355"]
//! roles = ["backend"]
//! app-version = "1.4.0"
//! gossip-interval = "1s"
//! downing = "keep-majority"
//! # A node behind a NAT: its certificate certifies 10.0.0.3:7355, its packets come from
//! # 192.168.1.5 (any port).
//! address-map = ["10.0.0.3:7355=192.168.1.5"]
//!
//! [tls]
//! ca = "ca.pem"
//! cert = "node.pem"
//! key = "node.key"
//! # Certificates refused although the CA signed them (`fjell certs fingerprint FILE`).
//! deny = ["sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"]
//! # How often the PEM files are checked for changes (default "5s"; "off").
//! watch = "5s"
//!
//! [failure-detector]
//! threshold = 10.0
//! acceptable-heartbeat-pause = "5s"
//!
//! [split-brain-resolver]
//! stable-after = "20s"
//!
//! [compat]
//! schema = "v3"
//! ```
//!
//! `configuration-compatibility-check.enforce-on-join = "off"` (also `false`; default on)
//! lets nodes with differing downing or `compat` settings join, if the joiner has it off too.
//! **Unsafe**: with different downing settings both sides of a partition may survive. Use it
//! only for a rolling change of those settings.
//!
//! **Addresses** (`bind`, `advertised-address`, `seed-nodes`) are `IP:PORT` or `HOST:PORT`.
//! A host name is resolved once, when the settings are loaded (a changed DNS record needs a
//! restart), to its first IPv4 address, or to its first address if it has no IPv4 one:
//! `localhost` often resolves to both `::1` and `127.0.0.1` in an order that differs between
//! machines, and a node's certificate certifies one exact IP (see [`resolve_address`]). A
//! name that does not resolve is an error naming the key and the name.
//!
//! **Environment overrides** are applied after the file: `FJELL_` followed by the key in
//! upper case, `-` written `_` and `.` written `__`. `FJELL_GOSSIP_INTERVAL=2s`,
//! `FJELL_FAILURE_DETECTOR__THRESHOLD=12`, `FJELL_SEED_NODES=10.0.0.1:7355,10.0.0.2:7355`,
//! `FJELL_TLS__CA=/etc/fjell/ca.pem`. A value is read as TOML when it parses as a TOML value
//! (numbers, booleans, arrays) and as a string otherwise; lists also take comma-separated
//! strings. An unknown `FJELL_` variable is an error, like an unknown key in the file (so a
//! typo never goes unnoticed), except the management commands' own variables
//! ([`Settings::MANAGEMENT_VARIABLES`]), which are ignored so that one shell can both run a
//! node and manage it. Role names and compat keys containing `_` cannot be set this way; use
//! the file. `FJELL_TLS__DENY` and `FJELL_ADDRESS_MAP` take comma-separated lists.
//!
//! Every error names the key (and the variable, for overrides), and the core's own
//! validation ([`Config::validate`]) runs before [`Settings`] is returned, so a bad file is
//! rejected when the node starts, never later.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fjell_core::config::Name;
use fjell_core::{AppVersion, Config, DetectorKind, Downing, Role, Strategy, WhenUnstable};
use toml::Value;

use crate::cluster::{parse_roles, ClusterBuilder, DEFAULT_SHUTDOWN_TIMEOUT};
use crate::credentials::{CredentialSource, LoadCredentials};
pub use crate::error::SettingsError;

pub mod bootstrap;
pub use bootstrap::{Bootstrap, DiscoveryMethod};

/// Why [`Settings::from_file`] failed: the file could not be read at all, or a setting in it
/// (or in the environment) is invalid.
#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    /// The file could not be read (missing, not readable, not UTF-8).
    #[error("cannot read the settings file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The setting and what is wrong with it.
        source: SettingsError,
    },
}

/// The shortest `tls.watch`.
pub const MIN_TLS_WATCH: Duration = Duration::from_millis(100);

/// How often the TLS files are checked for changes when `tls.watch` is not set.
pub const DEFAULT_TLS_WATCH: Duration = Duration::from_secs(5);

/// PEM files of a node's TLS credentials (`tls.ca`, `tls.cert`, `tls.key`), the deny list
/// and the reload interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate(s).
    pub ca: PathBuf,
    /// This node's certificate chain, leaf first.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
    /// `tls.deny`: fingerprints of certificates refused even though the CA signed them.
    pub deny: Vec<fjell_quic::tls::Fingerprint>,
    /// `tls.watch`: how often the PEM files are checked for changes and reloaded (default
    /// 5 s; `"off"` reloads only when asked).
    pub watch: Option<Duration>,
}

impl Default for TlsFiles {
    /// No files, no deny list, and the default watch interval ([`DEFAULT_TLS_WATCH`]).
    fn default() -> Self {
        TlsFiles {
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            deny: Vec::new(),
            watch: Some(DEFAULT_TLS_WATCH),
        }
    }
}

/// Everything a settings file can say about a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The core's settings (validated).
    pub config: Config,
    /// `bind`: the local address to bind (a host name in the file is resolved).
    pub bind: Option<SocketAddr>,
    /// `advertised-address`: the address others reach this node at (resolved).
    pub advertised_address: Option<SocketAddr>,
    /// `seed-nodes` (resolved).
    pub seed_nodes: Vec<SocketAddr>,
    /// `tls.ca`, `tls.cert`, `tls.key`, `tls.deny`, `tls.watch`.
    pub tls: Option<TlsFiles>,
    /// `address-map`: declared differences between a node's certified address and the
    /// source address its connections come from (see [`fjell_quic::config::AddressMapping`]).
    pub address_map: Vec<fjell_quic::config::AddressMapping>,
    /// The file these settings were read from ([`Settings::from_file`]): read again when the
    /// credentials are reloaded, for the deny list.
    pub source: Option<PathBuf>,
    /// `log-info`: membership changes at info level (default true).
    pub log_info: bool,
    /// `log-info-verbose`: the cluster state, convergence and heartbeat starts and stops at
    /// info level too (default false; [`crate::cluster_log`]).
    pub log_info_verbose: bool,
    /// `log-json`: `fjell run` writes its log as JSON lines (default false).
    pub log_json: bool,
    /// `shutdown-timeout` (default 20 s).
    pub shutdown_timeout: Duration,
    /// `event-log`: a file to append every membership event to, one JSON line each
    /// ([`crate::event_log`]); none by default.
    pub event_log: Option<PathBuf>,
    /// `management.http`: where `fjell run` serves the HTTP endpoints (`/alive`, `/ready`,
    /// `/cluster/members`, `/metrics`; fjell-ops). None by default: the endpoints have no
    /// authentication, so the operator chooses who can reach them.
    pub http: Option<SocketAddr>,
    /// `[discovery]` and `[bootstrap]`: contact points and the rules for founding a cluster,
    /// for a node without seed nodes ([`bootstrap`]). None without `discovery.method`.
    pub bootstrap: Option<Bootstrap>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: Config::default(),
            bind: None,
            advertised_address: None,
            seed_nodes: Vec::new(),
            tls: None,
            address_map: Vec::new(),
            source: None,
            log_info: true,
            log_info_verbose: false,
            log_json: false,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            event_log: None,
            http: None,
            bootstrap: None,
        }
    }
}

/// Settings gathered from several keys, resolved at the end (keys come in any order, and
/// overrides may change the strategy after its parameters were read): the downing strategy
/// and the bootstrap's discovery.
#[derive(Default)]
struct Gathered {
    bootstrap: bootstrap::Keys,
    strategy: Option<String>,
    auto_down_after: Option<Duration>,
    quorum_size: Option<u32>,
    down_if_alone: Option<bool>,
    roles: [Option<Role>; 4],
}

const STRATEGIES: [&str; 4] = [
    "keep-majority",
    "static-quorum",
    "keep-oldest",
    "lease-majority",
];

impl Settings {
    /// The node's own keys (not the core's).
    pub const NODE_KEYS: &'static [&'static str] = &[
        "bind",
        "advertised-address",
        "seed-nodes",
        "tls.ca",
        "tls.cert",
        "tls.key",
        "tls.deny",
        "tls.watch",
        "address-map",
        "log-info",
        "log-info-verbose",
        "log-json",
        "shutdown-timeout",
        "event-log",
        "management.http",
    ];

    /// The `[discovery]` and `[bootstrap]` keys ([`bootstrap`]).
    pub const BOOTSTRAP_KEYS: &'static [&'static str] = bootstrap::KEYS;

    /// The management commands' environment variables (`fjell members --node` and the
    /// others read them). Loading settings ignores them rather than refusing them as unknown
    /// `FJELL_` keys: an operator who exported them to manage a node can still start one
    /// from the same shell.
    pub const MANAGEMENT_VARIABLES: &'static [&'static str] = &[
        "FJELL_NODE",
        "FJELL_ADMIN_CA",
        "FJELL_ADMIN_CERT",
        "FJELL_ADMIN_KEY",
    ];

    /// The split brain resolver's per-strategy keys (Pekko's names), beyond
    /// [`Config::KEYS`].
    pub const STRATEGY_KEYS: &'static [&'static str] = &[
        "split-brain-resolver.keep-majority.role",
        "split-brain-resolver.static-quorum.role",
        "split-brain-resolver.keep-oldest.role",
        "split-brain-resolver.keep-oldest.down-if-alone",
        "split-brain-resolver.lease-majority.role",
    ];

    /// Reads a settings file and applies the process's `FJELL_*` environment overrides.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, SettingsFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SettingsFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut s =
            Self::load(&text, std::env::vars()).map_err(|source| SettingsFileError::Invalid {
                path: path.to_path_buf(),
                source,
            })?;
        s.source = Some(path.to_path_buf());
        Ok(s)
    }

    /// The `[tls]` section of a settings file, with its `FJELL_TLS__*` overrides: what a
    /// running node reads again to reload its credentials and deny list. Nothing else is
    /// read, so nothing is resolved (no DNS lookups on the node's driver) and an edit
    /// elsewhere in the file cannot stop a reload.
    pub fn tls_from_file(path: impl AsRef<std::path::Path>) -> Result<TlsFiles, SettingsFileError> {
        let path = path.as_ref();
        let invalid = |source| SettingsFileError::Invalid {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|source| SettingsFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut s = Settings::default();
        s.apply_text(&mut Gathered::default(), &text, std::env::vars(), |k| {
            k.starts_with("tls.")
        })
        .map_err(invalid)?;
        s.tls.ok_or_else(|| {
            invalid(SettingsError::new(
                "tls",
                "missing: the file no longer has a [tls] section",
            ))
        })
    }

    /// Applies the keys of TOML `text`, then the `FJELL_*` overrides among `env` (not
    /// [`Settings::MANAGEMENT_VARIABLES`]), both only where `keep` accepts the key.
    fn apply_text(
        &mut self,
        d: &mut Gathered,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(), SettingsError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| SettingsError::new("(syntax)", e.to_string().trim_end().to_string()))?;
        let mut flat = Vec::new();
        flatten("", Value::Table(table), &mut flat);
        for (key, value) in flat.into_iter().filter(|(k, _)| keep(k)) {
            self.apply(d, &key, value)
                .map_err(|reason| SettingsError::new(key, reason))?;
        }
        let mut env: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("FJELL_") && !Self::MANAGEMENT_VARIABLES.contains(&k.as_str())
            })
            .collect();
        env.sort();
        for (var, raw) in env {
            let key = var["FJELL_".len()..]
                .to_lowercase()
                .replace("__", ".")
                .replace('_', "-");
            if keep(&key) {
                self.apply(d, &key, env_value(&raw))
                    .map_err(|reason| SettingsError::new(format!("{key} (from {var})"), reason))?;
            }
        }
        Ok(())
    }

    /// Reads settings from TOML text, without environment overrides.
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        Self::load(text, std::iter::empty())
    }

    /// Reads settings from TOML text, then applies the overrides among `env` (name, value)
    /// pairs whose name starts with `FJELL_`; other pairs, and
    /// [`Settings::MANAGEMENT_VARIABLES`], are ignored.
    pub fn load(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut s = Settings::default();
        let mut d = Gathered::default();
        s.apply_text(&mut d, text, env, |_| true)?;
        if let Some(t) = &s.tls {
            for (key, path) in [
                ("tls.ca", &t.ca),
                ("tls.cert", &t.cert),
                ("tls.key", &t.key),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(SettingsError::new(
                        key,
                        "missing: tls needs ca, cert and key together",
                    ));
                }
            }
        }
        s.config.downing.downing = d.resolve()?;
        s.bootstrap = std::mem::take(&mut d.bootstrap).resolve(&s.seed_nodes, s.http)?;
        s.config
            .validate()
            .map_err(|e| SettingsError::new(e.key, e.reason))?;
        Ok(s)
    }

    /// A builder with these settings: TLS from the PEM files, if given, with the deny list
    /// and the address map. The credentials and the deny list are reloaded without a restart
    /// ([`crate::credentials`]) when asked, and every `tls.watch` when one of the PEM files
    /// or (for settings read by [`Settings::from_file`]) the settings file changes; the
    /// settings file is then read again for the new deny list and file names.
    pub fn builder(self) -> ClusterBuilder {
        let mut b = ClusterBuilder::new()
            .config(self.config)
            .seed_nodes(self.seed_nodes)
            .log_info(self.log_info)
            .log_info_verbose(self.log_info_verbose)
            .shutdown_timeout(self.shutdown_timeout)
            .address_map(self.address_map);
        if let Some(a) = self.bind {
            b = b.bind(a);
        }
        if let Some(path) = self.event_log {
            b = b.event_log(path);
        }
        if let Some(a) = self.advertised_address {
            b = b.advertised_address(a);
        }
        if let Some(t) = self.tls {
            let source = credential_source(&t, self.source);
            b = b
                .pem_files(t.ca, t.cert, t.key)
                .deny(t.deny)
                .credential_source(source);
        }
        b
    }

    fn apply(&mut self, d: &mut Gathered, key: &str, v: Value) -> Result<(), String> {
        if let Some(r) = d.bootstrap.apply(key, &v) {
            return r;
        }
        let c = &mut self.config;
        let fd = &mut c.failure_detector;
        let sbr = &mut c.downing;
        match key {
            "bind" => self.bind = Some(addr(&v)?),
            "advertised-address" => self.advertised_address = Some(addr(&v)?),
            "seed-nodes" => {
                self.seed_nodes = list(&v)?
                    .iter()
                    .map(|s| resolve_address(s))
                    .collect::<Result<_, _>>()?
            }
            "address-map" => {
                self.address_map = list(&v)?
                    .iter()
                    .map(|s| s.parse().map_err(|e| format!("{s:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "tls.ca" => self.tls.get_or_insert_with(TlsFiles::default).ca = string(&v)?.into(),
            "tls.cert" => self.tls.get_or_insert_with(TlsFiles::default).cert = string(&v)?.into(),
            "tls.key" => self.tls.get_or_insert_with(TlsFiles::default).key = string(&v)?.into(),
            "tls.deny" => {
                self.tls.get_or_insert_with(TlsFiles::default).deny = list(&v)?
                    .iter()
                    .map(|s| s.parse().map_err(|e| format!("{s:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "tls.watch" => {
                let watch = optional(&v)?;
                // A tiny interval would check the files in a busy loop.
                if watch.is_some_and(|w| w < MIN_TLS_WATCH) {
                    return Err("must be at least 100ms, or \"off\"".into());
                }
                self.tls.get_or_insert_with(TlsFiles::default).watch = watch;
            }
            "log-info" => self.log_info = boolean(&v)?,
            "log-info-verbose" => self.log_info_verbose = boolean(&v)?,
            "log-json" => self.log_json = boolean(&v)?,
            "shutdown-timeout" => self.shutdown_timeout = duration(&v)?,
            "event-log" => self.event_log = Some(string(&v)?.into()),
            "management.http" => self.http = Some(addr(&v)?),
            "cluster-name" => c.cluster_name = name(&v)?,
            "roles" => c.roles = parse_roles(list(&v)?).map_err(|e| e.reason)?,
            "app-version" => {
                c.app_version =
                    AppVersion::parse(&string(&v)?).ok_or("must be numeric major.minor.patch")?
            }
            "leader-eligible" => c.leader_eligible = boolean(&v)?,
            "gossip-interval" => c.gossip_interval = duration(&v)?,
            "leader-actions-interval" => c.leader_actions_interval = duration(&v)?,
            "seed-node-timeout" => c.seed_node_timeout = duration(&v)?,
            "retry-unsuccessful-join-after" => c.retry_unsuccessful_join_after = optional(&v)?,
            "shutdown-after-unsuccessful-join-seed-nodes" => {
                c.shutdown_after_unsuccessful_join_seed_nodes = optional(&v)?
            }
            "allow-weakly-up-members" => c.allow_weakly_up_members = optional(&v)?,
            "min-nr-of-members" => c.min_nr_of_members = integer(&v)?,
            "max-members" => c.max_members = Some(integer(&v)?),
            "prune-gossip-tombstones-after" => c.prune_gossip_tombstones_after = duration(&v)?,
            "gossip-different-view-probability" => {
                c.gossip_different_view_probability = float(&v)? as f32
            }
            "reduce-gossip-different-view-probability" => {
                c.reduce_gossip_different_view_probability = integer(&v)?
            }
            "failure-detector.implementation" => {
                fd.kind = match string(&v)?.as_str() {
                    "phi" | "phi-accrual" => DetectorKind::Phi,
                    "deadline" => DetectorKind::Deadline,
                    _ => return Err("must be \"phi\" or \"deadline\"".into()),
                }
            }
            "failure-detector.threshold" => fd.threshold = float(&v)?,
            "failure-detector.min-std-deviation" => fd.min_std_deviation = duration(&v)?,
            "failure-detector.acceptable-heartbeat-pause" => {
                fd.acceptable_heartbeat_pause = duration(&v)?
            }
            "failure-detector.heartbeat-interval" => fd.heartbeat_interval = duration(&v)?,
            "failure-detector.monitored-by-nr-of-members" => {
                c.failure_detector.monitored_by_nr_of_members = integer(&v)?
            }
            "failure-detector.expected-response-after" => {
                c.failure_detector.expected_response_after = duration(&v)?
            }
            "configuration-compatibility-check.enforce-on-join" => {
                c.enforce_on_join = match &v {
                    Value::String(s) if s == "on" => true,
                    Value::String(s) if s == "off" => false,
                    _ => boolean(&v).map_err(|_| "must be \"on\", \"off\", true or false")?,
                }
            }
            "unreachable-nodes-reaper-interval" => {
                c.unreachable_nodes_reaper_interval = duration(&v)?
            }
            "downing" => {
                let s = string(&v)?;
                if s != "manual" && s != "down-all" && !STRATEGIES.contains(&s.as_str()) {
                    return Err("must be one of manual, keep-majority, static-quorum, \
                                keep-oldest, down-all, lease-majority"
                        .into());
                }
                d.strategy = Some(s);
            }
            "auto-down-unreachable-after" => d.auto_down_after = optional(&v)?,
            "down-removal-margin" => sbr.down_removal_margin = optional(&v)?,
            "split-brain-resolver.stable-after" => sbr.stable_after = Some(duration(&v)?),
            "split-brain-resolver.down-all-when-unstable" => {
                sbr.down_all_when_unstable = match &v {
                    Value::Boolean(true) => WhenUnstable::On,
                    Value::Boolean(false) => WhenUnstable::Off,
                    Value::String(s) if s == "on" => WhenUnstable::On,
                    Value::String(s) if s == "off" => WhenUnstable::Off,
                    _ => WhenUnstable::After(duration(&v).map_err(|_| {
                        "must be \"on\", \"off\" or a duration such as \"10s\"".to_string()
                    })?),
                }
            }
            "split-brain-resolver.static-quorum.quorum-size" => d.quorum_size = Some(integer(&v)?),
            "split-brain-resolver.keep-oldest.down-if-alone" => {
                d.down_if_alone = Some(boolean(&v)?)
            }
            "split-brain-resolver.lease-majority.acquire-lease-delay-for-minority" => {
                sbr.acquire_lease_delay_for_minority = duration(&v)?
            }
            "split-brain-resolver.lease-majority.release-after" => {
                sbr.lease_release_after = duration(&v)?
            }
            _ => {
                if let Some(i) = STRATEGIES.iter().position(|s| {
                    key.strip_prefix("split-brain-resolver.")
                        .and_then(|k| k.strip_prefix(s))
                        == Some(".role")
                }) {
                    d.roles[i] = Some(role(&v)?);
                } else if let Some(k) = key.strip_prefix("compat.") {
                    let mut value = fjell_core::config::Value::new();
                    value
                        .push_str(&string(&v)?)
                        .map_err(|_| "values are at most 32 bytes")?;
                    let k = short_name(k)?;
                    c.compat_settings.retain(|(old, _)| *old != k);
                    c.compat_settings
                        .push((k, value))
                        .map_err(|_| "at most 4 compat settings")?;
                } else if let Some(r) = key.strip_prefix("role-min-nr-of-members.") {
                    let r = Role::new(r).map_err(|_| "role names are at most 16 bytes")?;
                    let n = integer(&v)?;
                    c.role_min_nr_of_members.retain(|(old, _)| *old != r);
                    c.role_min_nr_of_members
                        .push((r, n))
                        .map_err(|_| "at most 4 per-role minimums")?;
                } else {
                    return Err("unknown key".into());
                }
            }
        }
        Ok(())
    }
}

impl Gathered {
    fn resolve(&self) -> Result<Downing, SettingsError> {
        let role = |i: usize| self.roles[i];
        let strategy = match self.strategy.as_deref() {
            None | Some("manual") => None,
            Some("keep-majority") => Some(Strategy::KeepMajority { role: role(0) }),
            Some("static-quorum") => Some(Strategy::StaticQuorum {
                size: self.quorum_size.ok_or_else(|| {
                    SettingsError::new(
                        "split-brain-resolver.static-quorum.quorum-size",
                        "required by downing = \"static-quorum\"",
                    )
                })?,
                role: role(1),
            }),
            Some("keep-oldest") => Some(Strategy::KeepOldest {
                down_if_alone: self.down_if_alone.unwrap_or(true),
                role: role(2),
            }),
            Some("lease-majority") => Some(Strategy::LeaseMajority { role: role(3) }),
            Some(_) => Some(Strategy::DownAll),
        };
        match (strategy, self.auto_down_after) {
            (Some(_), Some(_)) => Err(SettingsError::new(
                "auto-down-unreachable-after",
                "cannot be combined with a split brain resolver strategy in `downing`",
            )),
            (Some(s), None) => Ok(Downing::SplitBrainResolver(s)),
            (None, Some(after)) => Ok(Downing::UnsafeAutoDown { after }),
            (None, None) => Ok(Downing::Manual),
        }
    }
}

/// Dotted keys and their values, for every leaf of `v`.
fn flatten(prefix: &str, v: Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        v => out.push((prefix.to_string(), v)),
    }
}

/// An environment value: TOML if it parses as a TOML value, a string otherwise.
fn env_value(raw: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| "must be a string".into())
}

fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| "must be true or false".into())
}

fn integer<T: TryFrom<i64>>(v: &Value) -> Result<T, String> {
    v.as_integer()
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| "must be a non-negative integer in range".into())
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Integer(i) => Ok(*i as f64),
        _ => Err("must be a number".into()),
    }
}

/// A list: a TOML array of strings, or one comma-separated string.
fn list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(a) => a.iter().map(string).collect(),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()),
        _ => Err("must be a list of strings".into()),
    }
}

/// Resolves `IP:PORT` or `HOST:PORT` to one socket address: an IP as written, a host name
/// to the first IPv4 address it resolves to, or to its first address if it has no IPv4 one.
///
/// IPv4 first because a node's certificate certifies one exact IP and `localhost` (like
/// many dual-stack names) resolves to `::1` and `127.0.0.1` in an order that differs
/// between machines: the settings, `fjell certs node --addr` and the management commands
/// should all pick the same address for the same name. Resolve once, at start: the
/// certified address does not follow later DNS changes.
///
/// The error names the text: ``cannot resolve `nohost.invalid:7355`: ...``.
pub fn resolve_address(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if s.rsplit_once(':').is_none_or(|(host, port)| {
        host.is_empty() || port.is_empty() || port.parse::<u16>().is_err()
    }) {
        return Err(format!(
            "{s:?} is not an address: write IP:PORT or HOST:PORT, like \"10.0.0.1:7355\""
        ));
    }
    let all: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{s}`: {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve `{s}`: the name has no addresses"))
}

fn addr(v: &Value) -> Result<SocketAddr, String> {
    resolve_address(&string(v)?)
}

fn short_name(s: &str) -> Result<Name, String> {
    let mut n = Name::new();
    n.push_str(s).map_err(|_| "names are at most 32 bytes")?;
    Ok(n)
}

fn name(v: &Value) -> Result<Name, String> {
    short_name(&string(v)?)
}

fn role(v: &Value) -> Result<Role, String> {
    Role::new(&string(v)?).map_err(|_| "role names are at most 16 bytes".into())
}

/// A duration with a unit: `"500ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`, `"100us"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit_secs = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(n * unit_secs).ok()
}

fn duration(v: &Value) -> Result<Duration, String> {
    let s = v
        .as_str()
        .ok_or("must be a duration string with a unit, like \"5s\" or \"500ms\"")?;
    parse_duration(s).ok_or_else(|| {
        format!("{s:?} is not a duration: use a number and a unit (us, ms, s, m, h, d)")
    })
}

fn optional(v: &Value) -> Result<Option<Duration>, String> {
    match v.as_str() {
        Some("off") => Ok(None),
        _ => duration(v)
            .map(Some)
            .map_err(|e| format!("{e}, or \"off\"")),
    }
}

/// Where a node started from these settings reloads its credentials: the settings file
/// (for the deny list and the PEM file names, environment overrides applied again) when
/// there is one, else the PEM files with the deny list as it is.
fn credential_source(tls: &TlsFiles, settings_file: Option<PathBuf>) -> CredentialSource {
    let pem = [tls.ca.clone(), tls.cert.clone(), tls.key.clone()];
    let mut paths = pem.to_vec();
    let load: LoadCredentials = match settings_file {
        Some(file) => {
            paths.push(file.clone());
            Arc::new(move || {
                let t = Settings::tls_from_file(&file).map_err(|e| e.to_string())?;
                let c = fjell_quic::Credentials::from_pem_files(&t.ca, &t.cert, &t.key)
                    .map_err(|e| e.to_string())?;
                Ok((c, t.deny))
            })
        }
        None => {
            let deny = tls.deny.clone();
            Arc::new(move || {
                let [ca, cert, key] = &pem;
                let c = fjell_quic::Credentials::from_pem_files(ca, cert, key)
                    .map_err(|e| e.to_string())?;
                Ok((c, deny.clone()))
            })
        }
    };
    CredentialSource {
        paths,
        load,
        watch: tls.watch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_for(key: &str) -> &'static str {
        match key {
            "cluster-name" | "compat" | "tls.ca" | "tls.cert" | "tls.key" => "\"x\"",
            "discovery.method" => "\"dns\"",
            "discovery.name" | "discovery.file" | "discovery.command" => "\"x\"",
            "discovery.port" | "bootstrap.required-contact-point-nr" => "5",
            "bootstrap.new-cluster-enabled" | "bootstrap.contact-with-all-contact-points" => "true",
            "discovery.dns-server" => "\"127.0.0.1:53\"",
            "roles" | "seed-nodes" | "tls.deny" | "address-map" => "[]",
            "app-version" => "\"1.2.3\"",
            "min-nr-of-members"
            | "max-members"
            | "reduce-gossip-different-view-probability"
            | "role-min-nr-of-members.backend" => "2",
            "failure-detector.monitored-by-nr-of-members" => "2",
            "split-brain-resolver.static-quorum.quorum-size" => "2",
            "gossip-different-view-probability" | "failure-detector.threshold" => "0.5",
            "failure-detector.implementation" => "\"deadline\"",
            "downing" => "\"keep-majority\"",
            "log-info"
            | "log-info-verbose"
            | "log-json"
            | "split-brain-resolver.keep-oldest.down-if-alone"
            | "leader-eligible"
            | "configuration-compatibility-check.enforce-on-join" => "false",
            "bind" | "advertised-address" | "management.http" => "\"127.0.0.1:1\"",
            k if k.ends_with(".role") => "\"r\"",
            "split-brain-resolver.down-all-when-unstable" => "\"off\"",
            _ => "\"3s\"",
        }
    }

    #[test]
    fn every_core_key_is_accepted() {
        for key in Config::KEYS
            .iter()
            .chain(Settings::NODE_KEYS)
            .chain(Settings::BOOTSTRAP_KEYS)
            .chain(Settings::STRATEGY_KEYS)
        {
            // Free-form tables: their entries are keys of their own.
            let key = match *key {
                "compat" => "compat.schema",
                "role-min-nr-of-members" => "role-min-nr-of-members.backend",
                "auto-down-unreachable-after" => continue, // needs downing = manual: below
                k => k,
            };
            let text = format!("\"{key}\" = {}", value_for(key));
            // Quoted dotted keys are one key in TOML; write them as tables instead.
            let text = match key.rsplit_once('.') {
                Some((table, leaf)) => format!("[{table}]\n{leaf} = {}", value_for(key)),
                None => text,
            };
            let mut d = Gathered::default();
            let mut flat = Vec::new();
            flatten("", Value::Table(toml::from_str(&text).unwrap()), &mut flat);
            for (k, v) in flat {
                Settings::default()
                    .apply(&mut d, &k, v)
                    .unwrap_or_else(|e| panic!("{key}: {e}"));
            }
        }
        let s = Settings::from_toml("auto-down-unreachable-after = \"10s\"").unwrap();
        assert_eq!(
            s.config.downing.downing,
            Downing::UnsafeAutoDown {
                after: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn bootstrap_needs_a_method_its_keys_the_endpoints_and_no_seed_nodes() {
        let s = Settings::from_toml(
            "[management]\nhttp = \"127.0.0.1:8558\"\n\
             [discovery]\nmethod = \"dns-srv\"\nname = \"_m._tcp.fjell.test\"\n\
             [bootstrap]\nrequired-contact-point-nr = 5\nstable-margin = \"2s\"\n",
        )
        .unwrap();
        let b = s.bootstrap.unwrap();
        assert_eq!(
            b.method,
            DiscoveryMethod::DnsSrv {
                name: "_m._tcp.fjell.test".into()
            }
        );
        assert_eq!(b.required_contact_point_nr, 5);
        assert_eq!(b.stable_margin, Duration::from_secs(2));
        assert_eq!(b.probe_interval, Duration::from_secs(1), "Pekko's default");
        assert_eq!(Settings::from_toml("").unwrap().bootstrap, None);
        let key = |text: &str| Settings::from_toml(text).unwrap_err().key;
        let http = "[management]\nhttp = \"127.0.0.1:8558\"\n";
        assert_eq!(
            key(&format!("{http}[discovery]\nmethod = \"dns\"")),
            "discovery.name"
        );
        assert_eq!(
            key(&format!("{http}[discovery]\nmethod = \"mdns\"")),
            "discovery.method"
        );
        assert_eq!(
            key("[discovery]\nmethod = \"file\"\nfile = \"x\""),
            "discovery.method"
        );
        assert_eq!(
            key(&format!(
                "seed-nodes = [\"127.0.0.1:1\"]\n{http}[discovery]\nmethod = \"command\"\ncommand = \"x\""
            )),
            "discovery.method"
        );
        assert_eq!(key("[discovery]\nname = \"x\""), "discovery.method");
        assert_eq!(
            key("[bootstrap]\nrequired-contact-point-nr = 0"),
            "bootstrap.required-contact-point-nr"
        );
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5 s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("s"), None);
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_management_commands_variables_are_not_settings() {
        let mut vars: Vec<_> = Settings::MANAGEMENT_VARIABLES
            .iter()
            .map(|v| (*v, "anything"))
            .collect();
        let s = Settings::load("", env(&vars)).unwrap();
        assert_eq!(s, Settings::default());
        // Any other unknown FJELL_ variable is still a typo to report.
        vars.push(("FJELL_NODES", "10.0.0.1:7355"));
        let e = Settings::load("", env(&vars)).unwrap_err();
        assert_eq!(e.key, "nodes (from FJELL_NODES)");
        assert_eq!(e.reason, "unknown key");
    }

    #[test]
    fn a_missing_file_is_not_a_bad_setting() {
        let path = std::env::temp_dir().join("fjell-no-such-settings-file.toml");
        let e = Settings::from_file(&path).unwrap_err();
        assert!(matches!(e, SettingsFileError::Read { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read the settings file {}: No such file or directory (os error 2)",
                path.display()
            )
        );
    }

    #[test]
    fn addresses_may_be_host_names() {
        let s = Settings::from_toml(
            "bind = \"localhost:7355\"\nadvertised-address = \"127.0.0.1:7355\"\n\
             seed-nodes = [\"localhost:7356\", \"[::1]:7357\"]",
        )
        .unwrap();
        // IPv4 first, whatever order the resolver returns `localhost` in.
        assert_eq!(s.bind, Some("127.0.0.1:7355".parse().unwrap()));
        assert_eq!(
            s.seed_nodes,
            [
                "127.0.0.1:7356".parse::<SocketAddr>().unwrap(),
                "[::1]:7357".parse().unwrap()
            ]
        );
        let e = Settings::from_toml("seed-nodes = [\"nohost.invalid:7355\"]").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "invalid setting `seed-nodes`: cannot resolve `nohost.invalid:7355`: "
            ),
            "{e}"
        );
        let e = Settings::load("", env(&[("FJELL_BIND", "nohost.invalid:1")])).unwrap_err();
        assert_eq!(e.key, "bind (from FJELL_BIND)");
        assert!(e.reason.contains("`nohost.invalid:1`"), "{e}");
        let e = Settings::from_toml("advertised-address = \"localhost\"").unwrap_err();
        assert_eq!(e.key, "advertised-address");
        assert!(e.reason.contains("IP:PORT or HOST:PORT"), "{e}");
    }

    const FP: &str = "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const TLS: &str = "[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n";

    #[test]
    fn the_deny_list_holds_fingerprints() {
        let s = Settings::from_toml(&format!("{TLS}deny = [\"{FP}\"]")).unwrap();
        assert_eq!(s.tls.unwrap().deny, [FP.parse().unwrap()]);
        let other = FP.replace("0f1e", "aaaa");
        let s = Settings::load(TLS, env(&[("FJELL_TLS__DENY", &format!("{FP},{other}"))])).unwrap();
        assert_eq!(
            s.tls.unwrap().deny,
            [FP.parse().unwrap(), other.parse().unwrap()]
        );
        let e = Settings::from_toml(&format!("{TLS}deny = [\"{FP}\", \"sha1:abcd\"]")).unwrap_err();
        assert_eq!(e.key, "tls.deny");
        assert_eq!(
            e.reason,
            "\"sha1:abcd\": a certificate fingerprint is `sha256:` followed by 64 hex digits"
        );
    }

    #[test]
    fn the_tls_files_are_watched_every_5_s_unless_set() {
        let watch = |extra: &str| {
            Settings::from_toml(&format!("{TLS}{extra}"))
                .map(|s| s.tls.unwrap().watch)
                .map_err(|e| e.key)
        };
        assert_eq!(watch(""), Ok(Some(Duration::from_secs(5))));
        assert_eq!(watch("watch = \"1m\""), Ok(Some(Duration::from_secs(60))));
        assert_eq!(watch("watch = \"off\""), Ok(None));
        assert_eq!(watch("watch = \"0s\""), Err("tls.watch".to_string()));
        assert_eq!(watch("watch = \"50ms\""), Err("tls.watch".to_string()));
        assert_eq!(watch("watch = 5"), Err("tls.watch".to_string()));
        assert_eq!(Settings::from_toml("").unwrap().tls, None);
    }

    #[test]
    fn address_mappings_are_certified_equals_observed() {
        let s = Settings::from_toml(
            "address-map = [\"10.0.0.3:7355=192.168.1.5\", \"10.0.0.4:7355=192.168.1.6:4000\"]",
        )
        .unwrap();
        assert_eq!(
            s.address_map,
            [
                "10.0.0.3:7355=192.168.1.5".parse().unwrap(),
                "10.0.0.4:7355=192.168.1.6:4000".parse().unwrap()
            ]
        );
        let s = Settings::load(
            "",
            env(&[(
                "FJELL_ADDRESS_MAP",
                "10.0.0.3:7355=192.168.1.5,10.0.0.4:1=10.1.1.1",
            )]),
        )
        .unwrap();
        assert_eq!(s.address_map.len(), 2);
        let e = Settings::from_toml("address-map = [\"10.0.0.3:7355\"]").unwrap_err();
        assert_eq!(e.key, "address-map");
        assert_eq!(
            e.reason,
            "\"10.0.0.3:7355\": an address mapping is CERTIFIED=OBSERVED: IP:PORT=IP:PORT or IP:PORT=IP"
        );
    }

    #[test]
    fn a_reload_reads_the_tls_section_alone() {
        let dir = std::env::temp_dir().join(format!("fjell-tls-only-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        let fp = "sha256:".to_string() + &"ab".repeat(32);
        // A seed that does not resolve, and a key no version knows: only a full load fails.
        std::fs::write(
            &path,
            format!(
                "seed-nodes = [\"nohost.invalid:7355\"]\nno-such-key = 1\n\
                 [tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\ndeny = [\"{fp}\"]\n"
            ),
        )
        .unwrap();
        assert!(Settings::from_file(&path).is_err());
        let tls = Settings::tls_from_file(&path).unwrap();
        assert_eq!(tls.cert, PathBuf::from("n.pem"));
        assert_eq!(tls.deny, vec![fp.parse().unwrap()]);
        std::fs::write(&path, "bind = \"127.0.0.1:1\"\n").unwrap();
        let gone = Settings::tls_from_file(&path).unwrap_err().to_string();
        assert!(gone.contains("no longer has a [tls] section"), "{gone}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
