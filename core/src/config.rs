//! Settings, with their defaults and validation.
//!
//! A [`Config`] is validated when a [`crate::Node`] is built; a bad value is an error then,
//! naming the setting and the reason, and never later.

use core::fmt;
use core::time::Duration;

use crate::time::{duration_of_millis, fraction, scaled};

use crate::downing::Strategy;
pub use crate::heartbeat::MAX_MONITORED;
use crate::member::{AppVersion, Role, RoleSet};
use crate::phi::{DetectorKind, DetectorSettings};

/// Longest cluster name and compatibility-setting key, in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// Longest compatibility-setting value, in bytes.
pub const MAX_VALUE_LEN: usize = 32;
/// Most compatibility settings.
pub const MAX_COMPAT_SETTINGS: usize = 4;
/// Most per-role minimums.
pub const MAX_ROLE_MINIMUMS: usize = 4;

/// A short name (cluster name or setting key).
pub type Name = heapless::String<MAX_NAME_LEN>;
/// A compatibility-setting value.
pub type Value = heapless::String<MAX_VALUE_LEN>;

/// Node settings. Names follow Pekko's `pekko.cluster.*` keys in kebab case (see [`Config::KEYS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Nodes only join clusters with the same name (`cluster-name`, default `"fjell"`).
    pub cluster_name: Name,
    /// Roles of this node (`roles`).
    pub roles: RoleSet,
    /// Application version of this node (`app-version`).
    pub app_version: AppVersion,
    /// Whether this node may lead (`leader-eligible`, default true when fjell-core is built
    /// with its `lead` feature): act as the cluster's leader and decide for its side of a
    /// partition. A node that may not is a member like any other, but the leader and each
    /// side's downing lead are chosen among members that may; it never founds a cluster
    /// ([`crate::CommandError::CannotFound`]), takes no joiners, and stops
    /// ([`crate::StopReason::NoLeader`]) when cut off from every member that may lead for as
    /// long as a decision takes (never with manual downing). Built without `lead`, a node
    /// leaves that code out (a device's flash) and must set this to false.
    pub leader_eligible: bool,
    /// Gossip tick (`gossip-interval`, 1 s).
    pub gossip_interval: Duration,
    /// Leader tick (`leader-actions-interval`, 1 s).
    pub leader_actions_interval: Duration,
    /// Seed handshake timeout and retry period (`seed-node-timeout`, 5 s).
    pub seed_node_timeout: Duration,
    /// Retry a Join that got no Welcome (`retry-unsuccessful-join-after`, 10 s; `None` = never).
    pub retry_unsuccessful_join_after: Option<Duration>,
    /// Give up joining after this long (`shutdown-after-unsuccessful-join-seed-nodes`, off).
    pub shutdown_after_unsuccessful_join_seed_nodes: Option<Duration>,
    /// Joining → WeaklyUp after this long without convergence (`allow-weakly-up-members`, 7 s;
    /// `None` disables WeaklyUp).
    pub allow_weakly_up_members: Option<Duration>,
    /// Members needed before the leader moves anyone Up (`min-nr-of-members`, 1).
    pub min_nr_of_members: u32,
    /// Per-role minimums (`role.<name>.min-nr-of-members`).
    pub role_min_nr_of_members: heapless::Vec<(Role, u32), MAX_ROLE_MINIMUMS>,
    /// The most members this node takes part with (`max-members`, off: the node's compile-time
    /// capacity `M`, and at most `2 R`). Declared when joining: the cluster stays within the
    /// smallest member's bound and refuses joiners beyond it ([`crate::capacity`]). Use it to
    /// bound a cluster of large nodes by policy.
    pub max_members: Option<u16>,
    /// Tombstone lifetime on each node's own monotonic clock (`prune-gossip-tombstones-after`,
    /// 24 h).
    pub prune_gossip_tombstones_after: Duration,
    /// Probability of gossiping to a node that has not seen the current version
    /// (`gossip-different-view-probability`, 0.8). Pekko reads this but never uses it; fjell does.
    pub gossip_different_view_probability: f32,
    /// Cluster size above which that probability is reduced, down to a tenth at three times
    /// this size (`reduce-gossip-different-view-probability`, 400).
    pub reduce_gossip_different_view_probability: u32,
    /// Settings that must be equal on every node (`compat.<key>`): checked during the join
    /// handshake together with the cluster name and protocol version.
    pub compat_settings: heapless::Vec<(Name, Value), MAX_COMPAT_SETTINGS>,
    /// Refuse joins whose downing or `compat.<key>` settings differ from this node's
    /// (`configuration-compatibility-check.enforce-on-join`, on). See [`crate::compat`].
    ///
    /// **Unsafe off.** With it off on both the joiner and the member it asks, a node whose
    /// downing settings differ is let in, and on a network partition the two sides may decide
    /// differently and both survive. Turn it off only for a rolling change of those settings,
    /// and on again after it. The cluster name is checked either way.
    pub enforce_on_join: bool,
    /// Failure detector (`failure-detector.*`: `implementation`, `threshold` 8,
    /// `min-std-deviation` 100 ms, `acceptable-heartbeat-pause` 3 s, `heartbeat-interval` 1 s,
    /// `monitored-by-nr-of-members` 4, `expected-response-after` 1 s).
    pub failure_detector: DetectorSettings,
    /// How often failure-detector verdicts are written to the reachability table
    /// (`unreachable-nodes-reaper-interval`, 1 s).
    pub unreachable_nodes_reaper_interval: Duration,
    /// Who downs unreachable members, and when (`downing`, `split-brain-resolver.*`,
    /// `down-removal-margin`).
    pub downing: DowningSettings,
}

/// Who downs unreachable members (`downing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downing {
    /// Nobody: an operator or the application calls [`crate::Node::down`] (`manual`, the
    /// default). Safe, but an unreachable member blocks convergence until then.
    Manual,
    /// The split brain resolver with this strategy: the leader of each side of a partition
    /// decides, once the membership has been stable for `stable-after`, which side survives.
    SplitBrainResolver(Strategy),
    /// **Unsafe, for development only** (`auto-down-unreachable-after`): the leader downs
    /// members that have been unreachable for `after`. On a network partition both sides do
    /// so and the cluster splits into two that never merge again.
    UnsafeAutoDown {
        /// How long a member must have been unreachable.
        after: Duration,
    },
}

/// When instability makes the resolver down everything
/// (`split-brain-resolver.down-all-when-unstable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnstable {
    /// Never.
    Off,
    /// After three quarters of `stable-after`, but at least 4 s (`on`, the default).
    On,
    /// After this long.
    After(Duration),
}

/// Downing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DowningSettings {
    /// Who downs (`downing`: `manual`, `keep-majority`, `static-quorum`, `keep-oldest`,
    /// `down-all`, `lease-majority`; or `auto-down-unreachable-after`).
    pub downing: Downing,
    /// How long membership and reachability must be unchanged before the resolver decides
    /// (`split-brain-resolver.stable-after`). `None` scales with the cluster size n as
    /// 10·log10(max(n, 5)) s, in whole milliseconds rounded down (n capped at 65,535): 7 s for
    /// 5 members, 10 s for 10, 20 s for 100, 30 s for 1,000 (the sizes Pekko's documentation
    /// recommends).
    pub stable_after: Option<Duration>,
    /// When reachability keeps changing for `stable-after`, plus the resolver's confirmation
    /// wait (half of `stable-after`; with lease-majority, plus the minority's lease delay), plus
    /// this long after the first change, every node that may lead downs every member
    /// (`split-brain-resolver.down-all-when-unstable`; one that may not downs nobody, see
    /// [`Config::leader_eligible`]). The waits are added because a decision
    /// on a settled view can take that long.
    pub down_all_when_unstable: WhenUnstable,
    /// How long the leader keeps newly downed members before removing them, so the other side
    /// has stopped before anyone here acts on MemberRemoved (`down-removal-margin`). `None`:
    /// `stable-after` when a resolver is active, no margin with manual downing. Members that
    /// confirm they stopped are removed at once.
    pub down_removal_margin: Option<Duration>,
    /// How long the minority side waits before asking for the lease
    /// (`split-brain-resolver.lease-majority.acquire-lease-delay-for-minority`, 2 s).
    pub acquire_lease_delay_for_minority: Duration,
    /// How long after acting the lease is released
    /// (`split-brain-resolver.lease-majority.release-after`, 40 s).
    pub lease_release_after: Duration,
}

impl Default for DowningSettings {
    fn default() -> Self {
        DowningSettings {
            downing: Downing::Manual,
            stable_after: None,
            down_all_when_unstable: WhenUnstable::On,
            down_removal_margin: None,
            acquire_lease_delay_for_minority: Duration::from_secs(2),
            lease_release_after: Duration::from_secs(40),
        }
    }
}

/// ⌊10,000 · log10(n)⌋ for `n` ≥ 1, exact for every `u16` (a test checks each), in integers:
/// a device without a floating-point unit would otherwise link a software `log10f`.
/// log2 by repeated squaring of the mantissa, then scaled by log10(2).
fn log10_ten_thousandths(n: u16) -> u32 {
    let n = u64::from(n.max(1));
    // ⌊log2 n⌋, below 16.
    let int = 63 - u64::from(n.leading_zeros());
    // The mantissa n / 2^int, in [1, 2) as Q31. Squaring it moves log2 one bit left: the
    // integer part that appears is the next fractional bit.
    let mut m = n << (31 - int);
    let mut frac = 0u64; // log2's fractional part, Q32
    for _ in 0..32 {
        m = (m * m) >> 31;
        frac <<= 1;
        if m >= 1 << 32 {
            m >>= 1;
            frac |= 1;
        }
    }
    // 10,000 · log10(2) = 3010.29995663981195..., its fraction in Q32.
    const C_INT: u64 = 3010;
    const C_FRAC: u64 = 1_288_303_958;
    const C: u64 = (C_INT << 32) | C_FRAC;
    // log2 · C in Q32, in parts that fit a u64.
    let v = int * C + frac * C_INT + ((frac * C_FRAC) >> 32);
    // Truncation leaves v below the true value (Q32 units): by up to 2,469 at an exact power
    // of ten, which then lands just short of its integer. The slack lifts those back; every
    // other u16 lands at least 4,191 below the next integer (n = 45,196 comes closest). The
    // test checks every u16.
    const SLACK: u64 = 3_330;
    ((v + SLACK) >> 32) as u32
}

impl DowningSettings {
    /// `stable-after` for a cluster of `members` (see [`DowningSettings::stable_after`]).
    pub fn stable_after_for(&self, members: usize) -> Duration {
        if let Downing::UnsafeAutoDown { after } = self.downing {
            return after;
        }
        self.stable_after.unwrap_or_else(|| {
            let n = u16::try_from(members.max(5)).unwrap_or(u16::MAX);
            duration_of_millis(u64::from(log10_ten_thousandths(n)))
        })
    }

    /// How long the split brain resolver's confirmation round waits for every ally to see the
    /// new version before those that have not count as the other side: half of
    /// `stable-after`, time for many gossip rounds. Down-all-when-unstable waits this much
    /// longer too, so it stays a fallback for reachability that keeps changing.
    pub fn confirm_wait_for(&self, members: usize) -> Duration {
        fraction(self.stable_after_for(members), 2)
    }

    /// The down-all-when-unstable delay for a cluster of `members`, if enabled (never with
    /// manual downing or auto-down).
    pub fn unstable_after_for(&self, members: usize) -> Option<Duration> {
        if !matches!(self.downing, Downing::SplitBrainResolver(_)) {
            return None;
        }
        match self.down_all_when_unstable {
            WhenUnstable::Off => None,
            WhenUnstable::On => {
                let three_quarters = fraction(scaled(self.stable_after_for(members), 3), 4);
                Some(three_quarters.max(Duration::from_secs(4)))
            }
            WhenUnstable::After(d) => Some(d),
        }
    }

    /// The down-removal margin for a cluster of `members`.
    pub fn removal_margin_for(&self, members: usize) -> Duration {
        match (self.down_removal_margin, self.downing) {
            (Some(d), _) => d,
            (None, Downing::Manual) => Duration::ZERO,
            (None, _) => self.stable_after_for(members),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self.downing {
            Downing::Manual => {}
            Downing::UnsafeAutoDown { after } => positive("auto-down-unreachable-after", after)?,
            Downing::SplitBrainResolver(Strategy::StaticQuorum { size, .. }) => {
                if size == 0 || size > u16::MAX as u32 {
                    return Err(ConfigError {
                        key: "split-brain-resolver.static-quorum.quorum-size",
                        reason: "must be between 1 and 65,535",
                    });
                }
            }
            Downing::SplitBrainResolver(_) => {}
        }
        if let Some(d) = self.stable_after {
            positive("split-brain-resolver.stable-after", d)?;
        }
        if let WhenUnstable::After(d) = self.down_all_when_unstable {
            positive("split-brain-resolver.down-all-when-unstable", d)?;
        }
        if let Some(d) = self.down_removal_margin {
            if d > MAX_DURATION {
                return Err(ConfigError {
                    key: "down-removal-margin",
                    reason: "must be at most 7 days",
                });
            }
        }
        if self.acquire_lease_delay_for_minority > MAX_DURATION {
            return Err(ConfigError {
                key: "split-brain-resolver.lease-majority.acquire-lease-delay-for-minority",
                reason: "must be at most 7 days",
            });
        }
        positive(
            "split-brain-resolver.lease-majority.release-after",
            self.lease_release_after,
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut cluster_name = Name::new();
        let _ = cluster_name.push_str("fjell");
        Config {
            cluster_name,
            roles: RoleSet::new(),
            app_version: AppVersion::default(),
            leader_eligible: cfg!(feature = "lead"),
            gossip_interval: Duration::from_secs(1),
            leader_actions_interval: Duration::from_secs(1),
            seed_node_timeout: Duration::from_secs(5),
            retry_unsuccessful_join_after: Some(Duration::from_secs(10)),
            shutdown_after_unsuccessful_join_seed_nodes: None,
            allow_weakly_up_members: Some(Duration::from_secs(7)),
            min_nr_of_members: 1,
            role_min_nr_of_members: heapless::Vec::new(),
            max_members: None,
            prune_gossip_tombstones_after: Duration::from_secs(24 * 3600),
            gossip_different_view_probability: 0.8,
            reduce_gossip_different_view_probability: 400,
            compat_settings: heapless::Vec::new(),
            enforce_on_join: true,
            failure_detector: DetectorSettings::default(),
            unreachable_nodes_reaper_interval: Duration::from_secs(1),
            downing: DowningSettings::default(),
        }
    }
}

/// A setting with a bad value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's key, as in [`Config::KEYS`].
    pub key: &'static str,
    /// Why the value is refused.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: {}", self.key, self.reason)
    }
}

/// Longest interval or timeout accepted: longer values are certainly mistakes, and the bound
/// keeps every time computation far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

fn positive(key: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError {
            key,
            reason: "must be greater than zero",
        });
    }
    if d > MAX_DURATION {
        return Err(ConfigError {
            key,
            reason: "must be at most 7 days",
        });
    }
    Ok(())
}

impl Config {
    /// The setting keys, as used in configuration files and error messages.
    pub const KEYS: &'static [&'static str] = &[
        "cluster-name",
        "roles",
        "app-version",
        "leader-eligible",
        "gossip-interval",
        "leader-actions-interval",
        "seed-node-timeout",
        "retry-unsuccessful-join-after",
        "shutdown-after-unsuccessful-join-seed-nodes",
        "allow-weakly-up-members",
        "min-nr-of-members",
        "role-min-nr-of-members",
        "max-members",
        "prune-gossip-tombstones-after",
        "gossip-different-view-probability",
        "reduce-gossip-different-view-probability",
        "compat",
        "configuration-compatibility-check.enforce-on-join",
        "failure-detector.implementation",
        "failure-detector.threshold",
        "failure-detector.min-std-deviation",
        "failure-detector.acceptable-heartbeat-pause",
        "failure-detector.heartbeat-interval",
        "failure-detector.monitored-by-nr-of-members",
        "failure-detector.expected-response-after",
        "unreachable-nodes-reaper-interval",
        "downing",
        "auto-down-unreachable-after",
        "down-removal-margin",
        "split-brain-resolver.stable-after",
        "split-brain-resolver.down-all-when-unstable",
        "split-brain-resolver.static-quorum.quorum-size",
        "split-brain-resolver.lease-majority.acquire-lease-delay-for-minority",
        "split-brain-resolver.lease-majority.release-after",
    ];

    /// Checks every value; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster_name.is_empty() {
            return Err(ConfigError {
                key: "cluster-name",
                reason: "must not be empty",
            });
        }
        if self.leader_eligible && !cfg!(feature = "lead") {
            return Err(ConfigError {
                key: "leader-eligible",
                reason: "fjell-core is built without its `lead` feature",
            });
        }
        positive("gossip-interval", self.gossip_interval)?;
        if self.max_members == Some(0) {
            return Err(ConfigError {
                key: "max-members",
                reason: "must be at least 1",
            });
        }
        positive("leader-actions-interval", self.leader_actions_interval)?;
        positive("seed-node-timeout", self.seed_node_timeout)?;
        if let Some(d) = self.retry_unsuccessful_join_after {
            positive("retry-unsuccessful-join-after", d)?;
        }
        if let Some(d) = self.shutdown_after_unsuccessful_join_seed_nodes {
            positive("shutdown-after-unsuccessful-join-seed-nodes", d)?;
        }
        if let Some(d) = self.allow_weakly_up_members {
            positive("allow-weakly-up-members", d)?;
        }
        if self.min_nr_of_members == 0 {
            return Err(ConfigError {
                key: "min-nr-of-members",
                reason: "must be at least 1",
            });
        }
        if self.role_min_nr_of_members.iter().any(|(_, n)| *n == 0) {
            return Err(ConfigError {
                key: "role-min-nr-of-members",
                reason: "each minimum must be at least 1",
            });
        }
        if self.prune_gossip_tombstones_after > Duration::from_secs(365 * 24 * 3600) {
            return Err(ConfigError {
                key: "prune-gossip-tombstones-after",
                reason: "must be at most a year",
            });
        }
        if self.prune_gossip_tombstones_after < scaled(self.gossip_interval, 10) {
            return Err(ConfigError {
                key: "prune-gossip-tombstones-after",
                reason: "must be at least ten gossip intervals, or removed nodes come back",
            });
        }
        let p = self.gossip_different_view_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(ConfigError {
                key: "gossip-different-view-probability",
                reason: "must be between 0 and 1",
            });
        }
        if self.reduce_gossip_different_view_probability == 0 {
            return Err(ConfigError {
                key: "reduce-gossip-different-view-probability",
                reason: "must be at least 1",
            });
        }
        let fd = &self.failure_detector;
        if !(fd.threshold.is_finite() && fd.threshold > 0.0) {
            return Err(ConfigError {
                key: "failure-detector.threshold",
                reason: "must be a positive number",
            });
        }
        positive("failure-detector.heartbeat-interval", fd.heartbeat_interval)?;
        if fd.kind == DetectorKind::Phi {
            if cfg!(not(feature = "phi")) {
                return Err(ConfigError {
                    key: "failure-detector.implementation",
                    reason: "phi accrual is not compiled in (fjell-core's `phi` feature); \
                             use the deadline detector",
                });
            }
            positive("failure-detector.min-std-deviation", fd.min_std_deviation)?;
        }
        if fd.acceptable_heartbeat_pause > Duration::from_secs(3600) {
            return Err(ConfigError {
                key: "failure-detector.acceptable-heartbeat-pause",
                reason: "must be at most one hour",
            });
        }
        // Half on each side of the heartbeat ring, and room for a flagged member besides.
        let k = fd.monitored_by_nr_of_members;
        if k < 2 || k % 2 != 0 || k >= MAX_MONITORED {
            return Err(ConfigError {
                key: "failure-detector.monitored-by-nr-of-members",
                reason: "must be even (half on each side of the heartbeat ring), from 2 to 6",
            });
        }
        positive(
            "failure-detector.expected-response-after",
            fd.expected_response_after,
        )?;
        positive(
            "unreachable-nodes-reaper-interval",
            self.unreachable_nodes_reaper_interval,
        )?;
        for (i, (k, _)) in self.compat_settings.iter().enumerate() {
            if k.is_empty() || self.compat_settings[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(ConfigError {
                    key: "compat",
                    reason: "keys must be non-empty and unique",
                });
            }
        }
        self.downing.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Without the `phi` feature the defaults are refused: `firmware/` checks that (a test here
    // would always run with the feature, which fjell-sim, a dev-dependency, turns on).
    #[cfg(feature = "phi")]
    #[test]
    fn defaults_are_valid_and_match_pekko() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.gossip_interval, Duration::from_secs(1));
        assert_eq!(c.seed_node_timeout, Duration::from_secs(5));
        assert_eq!(c.allow_weakly_up_members, Some(Duration::from_secs(7)));
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = Config {
            gossip_interval: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "gossip-interval");
        let c = Config {
            gossip_different_view_probability: f32::NAN,
            ..Config::default()
        };
        assert_eq!(
            c.validate().unwrap_err().key,
            "gossip-different-view-probability"
        );
        let c = Config {
            min_nr_of_members: 0,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "min-nr-of-members");
        assert!(Config::KEYS.contains(&e.key));
        let mut c = Config::default();
        c.failure_detector.threshold = f64::INFINITY;
        assert_eq!(c.validate().unwrap_err().key, "failure-detector.threshold");
        let mut c = Config::default();
        for k in [0, 1, 3, 5, 8] {
            c.failure_detector.monitored_by_nr_of_members = k;
            assert_eq!(
                c.validate().unwrap_err().key,
                "failure-detector.monitored-by-nr-of-members",
                "{k}"
            );
        }
        for k in [2, 4, 6] {
            c.failure_detector.monitored_by_nr_of_members = k;
            assert!(c.validate().is_ok(), "{k}");
        }
        let mut c = Config::default();
        c.downing.downing = Downing::SplitBrainResolver(Strategy::StaticQuorum {
            size: 0,
            role: None,
        });
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "split-brain-resolver.static-quorum.quorum-size");
        assert!(Config::KEYS.contains(&e.key));
    }

    #[test]
    fn the_integer_log_is_exact_for_every_u16() {
        for n in 1..=u16::MAX {
            let want = (libm::log10(f64::from(n)) * 10_000.0).floor() as u32;
            assert_eq!(log10_ten_thousandths(n), want, "n = {n}");
        }
        // The same milliseconds as the single-precision log10 it replaced, below 1,024
        // members (above, that one was off by 1 ms now and then).
        for n in 5..1024u16 {
            let f32_ms = (libm::log10f(f32::from(n)) * 10_000.0) as u32;
            assert_eq!(log10_ten_thousandths(n), f32_ms, "n = {n}");
        }
    }

    #[test]
    fn stable_after_scales_with_size_as_pekko_recommends() {
        let mut d = DowningSettings {
            downing: Downing::SplitBrainResolver(Strategy::DownAll),
            ..DowningSettings::default()
        };
        let secs = |n| d.stable_after_for(n).as_secs_f32().round() as u32;
        // Pekko's table: 5→7 s, 10→10 s, 20→13 s, 50→17 s, 100→20 s, 1000→30 s.
        for (n, want) in [
            (2, 7),
            (5, 7),
            (10, 10),
            (20, 13),
            (50, 17),
            (100, 20),
            (1000, 30),
        ] {
            assert_eq!(secs(n), want, "{n} members");
        }
        assert_eq!(d.unstable_after_for(100), Some(Duration::from_secs(15)));
        assert_eq!(d.removal_margin_for(100), Duration::from_secs(20));
        d.downing = Downing::Manual;
        assert_eq!(d.removal_margin_for(100), Duration::ZERO);
        assert_eq!(d.unstable_after_for(100), None);
    }
}
