//! The join compatibility check (notes §8.5): what a joining node declares, and when the
//! cluster refuses it.
//!
//! A joiner sends its [`Compat`] in InitJoin and Join; the member receiving it compares it
//! with its own and refuses with the first difference, in this order:
//!
//! ```text
//! cluster name                     always
//! downing settings, as configured  the configuration compatibility check: skipped only if
//! compat.<key> settings            both sides set enforce-on-join = off (unsafe)
//! ```
//! The protocol version is checked before, from the envelope of every message.
//!
//! Downing settings must match because each side of a partition decides alone: a keep-oldest
//! node in a keep-majority cluster can keep a side alive that the others expect to down
//! itself, and then both sides survive. Pekko refuses the join for the same reason (§11.4).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::capacity::Capacity;
use crate::config::{
    Config, Downing, DowningSettings, Name, Value, WhenUnstable, MAX_COMPAT_SETTINGS,
};
use crate::downing::Strategy;
use crate::member::Role;
use crate::time::micros;

/// What a joining node declares so the cluster can refuse it early. The wire form of the
/// check, hidden: applications see its outcome as an [`Incompatibility`].
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compat {
    /// Cluster name.
    pub cluster_name: Name,
    /// Settings that must match (`compat.<key>`).
    pub settings: heapless::Vec<(Name, Value), MAX_COMPAT_SETTINGS>,
    /// The downing settings.
    pub downing: DowningDeclaration,
    /// `configuration-compatibility-check.enforce-on-join`.
    pub enforce_on_join: bool,
    /// What the node can hold ([`crate::capacity`]): checked against the cluster's size, not
    /// against the member's own declaration.
    pub capacity: Capacity,
    /// `leader-eligible`: copied into the joiner's member record, not checked.
    pub leader_eligible: bool,
}

impl Compat {
    /// The declaration of a node with `config`, without a capacity bound ([`crate::Node`]
    /// declares its own).
    pub fn of(config: &Config) -> Compat {
        Compat {
            cluster_name: config.cluster_name.clone(),
            settings: config.compat_settings.clone(),
            downing: DowningDeclaration::of(&config.downing),
            enforce_on_join: config.enforce_on_join,
            capacity: Capacity::UNBOUNDED,
            leader_eligible: config.leader_eligible,
        }
    }

    /// Checks a joiner's declaration against ours; `None` if compatible.
    pub fn check(&self, joiner: &Compat) -> Option<Incompatibility> {
        if self.cluster_name != joiner.cluster_name {
            return Some(Incompatibility::ClusterName {
                cluster: self.cluster_name.clone(),
            });
        }
        // Either side's setting suffices to refuse: in Pekko the joiner enforces its own,
        // and here the member does too, so letting a differing node in takes both.
        if !self.enforce_on_join && !joiner.enforce_on_join {
            return None;
        }
        if let Some(setting) = self.downing.first_difference(&joiner.downing) {
            return Some(Incompatibility::DowningDiffers { setting });
        }
        for (k, v) in &self.settings {
            match joiner.settings.iter().find(|(k2, _)| k2 == k) {
                None => return Some(Incompatibility::SettingMissing { key: k.clone() }),
                Some((_, v2)) if v2 != v => {
                    return Some(Incompatibility::SettingDiffers { key: k.clone() })
                }
                _ => {}
            }
        }
        joiner
            .settings
            .iter()
            .find(|(k, _)| !self.settings.iter().any(|(k2, _)| k2 == k))
            .map(|(k, _)| Incompatibility::SettingMissing { key: k.clone() })
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Incompatibility {
    /// The cluster names differ.
    ClusterName {
        /// The refusing side's name.
        cluster: Name,
    },
    /// The protocol versions differ.
    ProtocolVersion {
        /// The refusing side's version.
        cluster: u8,
        /// The joiner's version.
        joiner: u8,
    },
    /// A compatibility setting differs.
    SettingDiffers {
        /// The key.
        key: Name,
    },
    /// A compatibility setting is present on only one side.
    SettingMissing {
        /// The key.
        key: Name,
    },
    /// A downing setting differs.
    DowningDiffers {
        /// The setting ([`DowningSetting::key`] names it).
        setting: DowningSetting,
    },
    /// The joiner's incarnation was removed from the cluster (downed while it was still
    /// joining, for instance): it never comes back, and must restart with a new uid.
    Removed,
    /// The cluster cannot take the joiner: with it, the cluster would exceed what some member
    /// or the joiner itself can hold (see [`crate::capacity`]). Also the reason a joiner learns
    /// when it was let in concurrently with others and dropped to make room.
    Capacity {
        /// Members the refusing side counts (joiners included).
        members: u16,
        /// The most members every member of the cluster can hold.
        holds: u16,
        /// What the joiner declared.
        joiner: Capacity,
    },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::ClusterName { cluster } => {
                write!(f, "cluster name differs (cluster is `{cluster}`)")
            }
            Incompatibility::ProtocolVersion { cluster, joiner } => write!(
                f,
                "protocol version differs (cluster speaks {cluster}, joiner {joiner})"
            ),
            Incompatibility::SettingDiffers { key } => write!(f, "setting `{key}` differs"),
            Incompatibility::SettingMissing { key } => {
                write!(f, "setting `{key}` is set on only one side")
            }
            Incompatibility::DowningDiffers { setting } => {
                write!(f, "downing setting `{}` differs", setting.key())
            }
            Incompatibility::Removed => {
                f.write_str("this incarnation was removed from the cluster; restart to rejoin")
            }
            Incompatibility::Capacity {
                members,
                holds,
                joiner,
            } => write!(
                f,
                "the cluster is full: {members} members, every member holds {holds}, the joiner \
                 holds {}",
                joiner.holds()
            ),
        }
    }
}

/// A downing setting, named in a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DowningSetting {
    /// Who downs, and the split brain resolver strategy.
    Downing,
    /// Auto-down's delay.
    AutoDownUnreachableAfter,
    /// Static quorum's size.
    QuorumSize,
    /// Keep-oldest's down-if-alone.
    DownIfAlone,
    /// Keep-majority's role.
    KeepMajorityRole,
    /// Static quorum's role.
    StaticQuorumRole,
    /// Keep-oldest's role.
    KeepOldestRole,
    /// Lease-majority's role.
    LeaseMajorityRole,
    /// The resolver's stable-after.
    StableAfter,
    /// The resolver's down-all-when-unstable.
    DownAllWhenUnstable,
    /// The down-removal margin.
    DownRemovalMargin,
    /// Lease-majority's delay for the minority.
    AcquireLeaseDelayForMinority,
    /// Lease-majority's release delay.
    LeaseReleaseAfter,
}

impl DowningSetting {
    /// The setting's key, as in [`Config::KEYS`] or the runtime's settings file.
    pub fn key(self) -> &'static str {
        match self {
            DowningSetting::Downing => "downing",
            DowningSetting::AutoDownUnreachableAfter => "auto-down-unreachable-after",
            DowningSetting::QuorumSize => "split-brain-resolver.static-quorum.quorum-size",
            DowningSetting::DownIfAlone => "split-brain-resolver.keep-oldest.down-if-alone",
            DowningSetting::KeepMajorityRole => "split-brain-resolver.keep-majority.role",
            DowningSetting::StaticQuorumRole => "split-brain-resolver.static-quorum.role",
            DowningSetting::KeepOldestRole => "split-brain-resolver.keep-oldest.role",
            DowningSetting::LeaseMajorityRole => "split-brain-resolver.lease-majority.role",
            DowningSetting::StableAfter => "split-brain-resolver.stable-after",
            DowningSetting::DownAllWhenUnstable => "split-brain-resolver.down-all-when-unstable",
            DowningSetting::DownRemovalMargin => "down-removal-margin",
            DowningSetting::AcquireLeaseDelayForMinority => {
                "split-brain-resolver.lease-majority.acquire-lease-delay-for-minority"
            }
            DowningSetting::LeaseReleaseAfter => {
                "split-brain-resolver.lease-majority.release-after"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Provider {
    Manual,
    UnsafeAutoDown,
    KeepMajority,
    StaticQuorum,
    KeepOldest,
    DownAll,
    LeaseMajority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Unstable {
    Off,
    On,
    AfterMicros(u64),
}

#[doc(hidden)]
/// The downing settings as configured, in a fixed small form (at most about 70 bytes on the
/// wire). Durations are in microseconds; `stable-after` is kept as configured, so "scales
/// with the cluster size" differs from any fixed value even where they happen to agree.
///
/// Settings that the configured downing never reads are left out (kept at a fixed value), so
/// two keep-majority nodes are not refused for a lease-majority setting neither uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DowningDeclaration {
    pub(crate) provider: Provider,
    pub(crate) auto_down_after: u64,
    pub(crate) quorum_size: u32,
    pub(crate) down_if_alone: bool,
    pub(crate) role: Option<Role>,
    pub(crate) stable_after: Option<u64>,
    pub(crate) down_all_when_unstable: Unstable,
    pub(crate) down_removal_margin: Option<u64>,
    pub(crate) acquire_lease_delay_for_minority: u64,
    pub(crate) lease_release_after: u64,
}

impl DowningDeclaration {
    /// The declaration of `s`.
    pub fn of(s: &DowningSettings) -> Self {
        let mut d = DowningDeclaration {
            provider: Provider::Manual,
            auto_down_after: 0,
            quorum_size: 0,
            down_if_alone: false,
            role: None,
            stable_after: None,
            down_all_when_unstable: Unstable::Off,
            // Read by every provider: it also delays removing members an operator downed.
            down_removal_margin: s.down_removal_margin.map(micros),
            acquire_lease_delay_for_minority: 0,
            lease_release_after: 0,
        };
        let strategy = match s.downing {
            Downing::Manual => return d,
            Downing::UnsafeAutoDown { after } => {
                d.provider = Provider::UnsafeAutoDown;
                d.auto_down_after = micros(after);
                return d;
            }
            Downing::SplitBrainResolver(strategy) => strategy,
        };
        d.stable_after = s.stable_after.map(micros);
        d.down_all_when_unstable = match s.down_all_when_unstable {
            WhenUnstable::Off => Unstable::Off,
            WhenUnstable::On => Unstable::On,
            WhenUnstable::After(t) => Unstable::AfterMicros(micros(t)),
        };
        match strategy {
            Strategy::KeepMajority { role } => {
                d.provider = Provider::KeepMajority;
                d.role = role;
            }
            Strategy::StaticQuorum { size, role } => {
                d.provider = Provider::StaticQuorum;
                d.quorum_size = size;
                d.role = role;
            }
            Strategy::KeepOldest {
                down_if_alone,
                role,
            } => {
                d.provider = Provider::KeepOldest;
                d.down_if_alone = down_if_alone;
                d.role = role;
            }
            Strategy::DownAll => d.provider = Provider::DownAll,
            Strategy::LeaseMajority { role } => {
                d.provider = Provider::LeaseMajority;
                d.role = role;
                d.acquire_lease_delay_for_minority = micros(s.acquire_lease_delay_for_minority);
                d.lease_release_after = micros(s.lease_release_after);
            }
        }
        d
    }

    /// The first setting in which `other` differs from `self`, if any.
    pub fn first_difference(&self, other: &DowningDeclaration) -> Option<DowningSetting> {
        use DowningSetting as S;
        let role = match self.provider {
            Provider::StaticQuorum => S::StaticQuorumRole,
            Provider::KeepOldest => S::KeepOldestRole,
            Provider::LeaseMajority => S::LeaseMajorityRole,
            _ => S::KeepMajorityRole,
        };
        let (a, b) = (self, other);
        [
            (S::Downing, a.provider == b.provider),
            (
                S::AutoDownUnreachableAfter,
                a.auto_down_after == b.auto_down_after,
            ),
            (S::QuorumSize, a.quorum_size == b.quorum_size),
            (S::DownIfAlone, a.down_if_alone == b.down_if_alone),
            (role, a.role == b.role),
            (S::StableAfter, a.stable_after == b.stable_after),
            (
                S::DownAllWhenUnstable,
                a.down_all_when_unstable == b.down_all_when_unstable,
            ),
            (
                S::DownRemovalMargin,
                a.down_removal_margin == b.down_removal_margin,
            ),
            (
                S::AcquireLeaseDelayForMinority,
                a.acquire_lease_delay_for_minority == b.acquire_lease_delay_for_minority,
            ),
            (
                S::LeaseReleaseAfter,
                a.lease_release_after == b.lease_release_after,
            ),
        ]
        .into_iter()
        .find(|(_, same)| !same)
        .map(|(setting, _)| setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PROTOCOL_VERSION;
    use core::time::Duration;

    fn with(downing: Downing) -> Compat {
        let mut c = Config::default();
        c.downing.downing = downing;
        Compat::of(&c)
    }

    fn sbr(s: Strategy) -> Compat {
        with(Downing::SplitBrainResolver(s))
    }

    const KEEP_MAJORITY: Strategy = Strategy::KeepMajority { role: None };

    /// The setting key a copy of `a` with `change` applied is refused for, if any.
    fn changed_key(a: &Config, change: fn(&mut DowningSettings)) -> Option<&'static str> {
        let mut b = a.clone();
        change(&mut b.downing);
        differs(&Compat::of(a), &Compat::of(&b))
    }

    fn differs(a: &Compat, b: &Compat) -> Option<&'static str> {
        match a.check(b) {
            Some(Incompatibility::DowningDiffers { setting }) => Some(setting.key()),
            None => None,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_check_reports_the_key() {
        let mut ours = Compat::of(&Config::default());
        ours.cluster_name = Name::try_from("prod").unwrap();
        ours.settings
            .push((
                Name::try_from("sbr").unwrap(),
                Value::try_from("keep-majority").unwrap(),
            ))
            .unwrap();
        let mut theirs = ours.clone();
        assert_eq!(ours.check(&theirs), None);
        theirs.settings[0].1 = Value::try_from("keep-oldest").unwrap();
        assert_eq!(
            ours.check(&theirs),
            Some(Incompatibility::SettingDiffers {
                key: Name::try_from("sbr").unwrap()
            })
        );
        theirs.settings.clear();
        assert!(matches!(
            ours.check(&theirs),
            Some(Incompatibility::SettingMissing { .. })
        ));
        theirs.cluster_name = Name::try_from("dev").unwrap();
        assert!(matches!(
            ours.check(&theirs),
            Some(Incompatibility::ClusterName { .. })
        ));
    }

    #[test]
    fn the_provider_and_strategy_must_match() {
        let keep_oldest = sbr(Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        });
        let manual = with(Downing::Manual);
        let auto = with(Downing::UnsafeAutoDown {
            after: Duration::from_secs(10),
        });
        for (a, b) in [
            (&sbr(KEEP_MAJORITY), &keep_oldest),
            (&manual, &sbr(KEEP_MAJORITY)),
            (&manual, &auto),
            (&sbr(Strategy::DownAll), &sbr(KEEP_MAJORITY)),
        ] {
            assert_eq!(differs(a, b), Some("downing"));
            assert_eq!(differs(b, a), Some("downing"));
        }
        assert_eq!(differs(&keep_oldest, &keep_oldest.clone()), None);
        assert_eq!(differs(&manual, &with(Downing::Manual)), None);
    }

    #[test]
    fn strategy_parameters_must_match() {
        let quorum = |size| sbr(Strategy::StaticQuorum { size, role: None });
        assert_eq!(
            differs(&quorum(3), &quorum(4)),
            Some("split-brain-resolver.static-quorum.quorum-size")
        );
        let oldest = |down_if_alone| {
            sbr(Strategy::KeepOldest {
                down_if_alone,
                role: None,
            })
        };
        assert_eq!(
            differs(&oldest(true), &oldest(false)),
            Some("split-brain-resolver.keep-oldest.down-if-alone")
        );
        let backend = Some(Role::new("backend").unwrap());
        assert_eq!(
            differs(
                &sbr(KEEP_MAJORITY),
                &sbr(Strategy::KeepMajority { role: backend })
            ),
            Some("split-brain-resolver.keep-majority.role")
        );
        assert_eq!(
            differs(
                &sbr(Strategy::LeaseMajority { role: None }),
                &sbr(Strategy::LeaseMajority { role: backend })
            ),
            Some("split-brain-resolver.lease-majority.role")
        );
        let auto = |s| {
            with(Downing::UnsafeAutoDown {
                after: Duration::from_secs(s),
            })
        };
        assert_eq!(
            differs(&auto(5), &auto(6)),
            Some("auto-down-unreachable-after")
        );
    }

    #[test]
    fn timing_settings_must_match_as_configured() {
        let mut a = Config::default();
        a.downing.downing = Downing::SplitBrainResolver(KEEP_MAJORITY);
        let key = |change| changed_key(&a, change);
        // Scaling with the cluster size is not the same setting as any fixed value, even the
        // one it yields for today's size.
        assert_eq!(
            key(|d| d.stable_after = Some(Duration::from_secs(7))),
            Some("split-brain-resolver.stable-after")
        );
        assert_eq!(
            key(|d| d.down_all_when_unstable = WhenUnstable::Off),
            Some("split-brain-resolver.down-all-when-unstable")
        );
        assert_eq!(
            key(|d| d.down_removal_margin = Some(Duration::from_secs(1))),
            Some("down-removal-margin")
        );
        // Lease settings matter to lease-majority only.
        assert_eq!(
            key(|d| d.lease_release_after = Duration::from_secs(1)),
            None
        );
        a.downing.downing = Downing::SplitBrainResolver(Strategy::LeaseMajority { role: None });
        let key = |change| changed_key(&a, change);
        assert_eq!(
            key(|d| d.acquire_lease_delay_for_minority = Duration::from_secs(1)),
            Some("split-brain-resolver.lease-majority.acquire-lease-delay-for-minority")
        );
        assert_eq!(
            key(|d| d.lease_release_after = Duration::from_secs(1)),
            Some("split-brain-resolver.lease-majority.release-after")
        );
        // With manual downing only the removal margin is read.
        let mut m = Config::default();
        let manual = Compat::of(&m);
        m.downing.stable_after = Some(Duration::from_secs(3));
        assert_eq!(differs(&manual, &Compat::of(&m)), None);
        m.downing.down_removal_margin = Some(Duration::from_secs(3));
        assert_eq!(
            differs(&manual, &Compat::of(&m)),
            Some("down-removal-margin")
        );
    }

    #[test]
    fn the_check_is_skipped_only_when_both_sides_turn_it_off() {
        let mut ours = sbr(KEEP_MAJORITY);
        let mut theirs = sbr(Strategy::DownAll);
        ours.enforce_on_join = false;
        assert!(ours.check(&theirs).is_some(), "the joiner insists");
        theirs.enforce_on_join = false;
        assert_eq!(ours.check(&theirs), None);
        theirs.cluster_name = Name::try_from("dev").unwrap();
        assert!(
            matches!(
                ours.check(&theirs),
                Some(Incompatibility::ClusterName { .. })
            ),
            "the cluster name is always checked"
        );
        ours.enforce_on_join = true;
        theirs.cluster_name = ours.cluster_name.clone();
        assert!(ours.check(&theirs).is_some(), "the cluster insists");
    }

    #[test]
    fn a_refusal_names_the_key() {
        let r = Incompatibility::DowningDiffers {
            setting: DowningSetting::StableAfter,
        };
        assert_eq!(
            std::format!("{r}"),
            "downing setting `split-brain-resolver.stable-after` differs"
        );
        let r = Incompatibility::ProtocolVersion {
            cluster: PROTOCOL_VERSION,
            joiner: 9,
        };
        assert_eq!(
            std::format!("{r}"),
            std::format!("protocol version differs (cluster speaks {PROTOCOL_VERSION}, joiner 9)")
        );
    }
}
