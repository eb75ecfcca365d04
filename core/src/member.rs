//! Members, their statuses and the one table of allowed status transitions.

use core::fmt;
use core::num::NonZeroU32;
use serde::{Deserialize, Serialize};

use crate::address::{Digest, UniqueAddress};
use crate::capacity::Capacity;

/// Longest role name, in bytes.
pub const MAX_ROLE_LEN: usize = 16;
/// Most roles one member may have.
pub const MAX_ROLES: usize = 3;

/// Where a member is in its lifecycle.
///
/// `Removed` never appears in the gossip member set: removal deletes the member and leaves a
/// tombstone. It appears only in events and in [`MemberStatus::transition`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Asked to join; not yet moved up by the leader.
    Joining,
    /// Let in by the leader without convergence (during a partition); not counted for quorum.
    WeaklyUp,
    /// A full member.
    Up,
    /// Asked to leave; the leader will move it to Exiting.
    Leaving,
    /// Leaving is done; the leader will remove it.
    Exiting,
    /// Marked down by an operator or a downing strategy; the leader will remove it.
    Down,
    /// Gone. Terminal.
    Removed,
    /// Full-cluster shutdown requested; the leader will move it to ReadyForShutdown.
    PreparingForShutdown,
    /// Ready to be stopped with the rest of the cluster.
    ReadyForShutdown,
}

/// An illegal status change. Carries both ends so the caller can report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTransition {
    /// The current status.
    pub from: MemberStatus,
    /// The refused target status.
    pub to: MemberStatus,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a member cannot move from {:?} to {:?}",
            self.from, self.to
        )
    }
}

impl MemberStatus {
    /// Every status, in declaration order.
    pub const ALL: [MemberStatus; 9] = [
        MemberStatus::Joining,
        MemberStatus::WeaklyUp,
        MemberStatus::Up,
        MemberStatus::Leaving,
        MemberStatus::Exiting,
        MemberStatus::Down,
        MemberStatus::Removed,
        MemberStatus::PreparingForShutdown,
        MemberStatus::ReadyForShutdown,
    ];

    /// The allowed-transition table (Pekko `Member.allowedTransitions`). This is the only place
    /// that decides whether a status change is legal. Setting the current status is a no-op.
    pub fn transition(self, to: MemberStatus) -> Result<MemberStatus, IllegalTransition> {
        use MemberStatus::*;
        let ok = self == to
            || match self {
                Joining => matches!(to, WeaklyUp | Up | Leaving | Down | Removed),
                WeaklyUp => matches!(to, Up | Leaving | Down | Removed),
                Up => matches!(to, Leaving | Down | Removed | PreparingForShutdown),
                Leaving => matches!(to, Exiting | Down | Removed),
                Exiting => matches!(to, Down | Removed),
                Down => matches!(to, Removed),
                Removed => false,
                PreparingForShutdown => {
                    matches!(to, Leaving | Down | Removed | ReadyForShutdown)
                }
                ReadyForShutdown => matches!(to, Leaving | Down | Removed),
            };
        if ok {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// True if `to` can follow `self` through zero or more allowed transitions. A node's view
    /// of a member may skip statuses (it can hear of Up and then of Exiting), but it never moves
    /// to a status that cannot follow the current one.
    pub fn can_reach(self, to: MemberStatus) -> bool {
        let mut reached = [false; 9];
        let mut stack: heapless::Vec<MemberStatus, 9> = heapless::Vec::new();
        let _ = stack.push(self);
        while let Some(s) = stack.pop() {
            if s == to {
                return true;
            }
            for (i, next) in Self::ALL.iter().enumerate() {
                if !reached[i] && s.transition(*next).is_ok() {
                    reached[i] = true;
                    let _ = stack.push(*next);
                }
            }
        }
        false
    }

    /// Rank used when two versions of the same member meet in a merge: the more advanced status
    /// wins, so concurrent updates resolve the same way on every node.
    pub(crate) fn merge_rank(self) -> u8 {
        use MemberStatus::*;
        match self {
            Joining => 0,
            WeaklyUp => 1,
            Up => 2,
            PreparingForShutdown => 3,
            Leaving => 4,
            Exiting => 5,
            Down => 6,
            ReadyForShutdown => 7,
            Removed => 8,
        }
    }

    /// Statuses whose holders must have seen the state for convergence (notes §6, set S).
    pub(crate) fn counts_for_convergence(self) -> bool {
        use MemberStatus::*;
        matches!(self, Up | Leaving | PreparingForShutdown | ReadyForShutdown)
    }
}

/// A role name: 1 to [`MAX_ROLE_LEN`] bytes of UTF-8, without NUL.
///
/// Stored inline, zero-padded (16 bytes), so members stay small on devices.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Role([u8; MAX_ROLE_LEN]);

/// A role name that is empty, too long, or contains NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleTooLong;

impl Role {
    /// A role from a string of 1 to [`MAX_ROLE_LEN`] bytes without NUL.
    pub fn new(name: &str) -> Result<Role, RoleTooLong> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_ROLE_LEN || b.contains(&0) {
            return Err(RoleTooLong);
        }
        let mut r = [0u8; MAX_ROLE_LEN];
        r[..b.len()].copy_from_slice(b);
        Ok(Role(r))
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(MAX_ROLE_LEN);
        // Built only from valid UTF-8 without NUL, so the prefix is valid UTF-8.
        core::str::from_utf8(&self.0[..len]).unwrap_or("")
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = heapless::String::<MAX_ROLE_LEN>::deserialize(d)?;
        Role::new(&s).map_err(|_| serde::de::Error::custom("invalid role name"))
    }
}

/// A sorted, duplicate-free set of at most [`MAX_ROLES`] roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoleSet {
    roles: [Role; MAX_ROLES],
    len: u8,
}

/// More roles than [`MAX_ROLES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRoles;

impl RoleSet {
    /// The empty set.
    pub const fn new() -> Self {
        RoleSet {
            roles: [Role([0; MAX_ROLE_LEN]); MAX_ROLES],
            len: 0,
        }
    }

    fn as_slice(&self) -> &[Role] {
        &self.roles[..self.len as usize]
    }

    /// Adds a role (no-op if present).
    pub fn insert(&mut self, role: Role) -> Result<(), TooManyRoles> {
        let len = self.len as usize;
        match self.as_slice().binary_search(&role) {
            Ok(_) => Ok(()),
            Err(_) if len == MAX_ROLES => Err(TooManyRoles),
            Err(i) => {
                self.roles.copy_within(i..len, i + 1);
                self.roles[i] = role;
                self.len += 1;
                Ok(())
            }
        }
    }

    /// True if the set holds `role`.
    pub fn contains(&self, role: &str) -> bool {
        self.as_slice().iter().any(|r| r.as_str() == role)
    }

    /// The roles in order.
    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.as_slice().iter()
    }

    /// Number of roles.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True if there are no roles.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Serialize for RoleSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Normalise whatever a peer sends so that equal sets compare equal.
        let raw = heapless::Vec::<Role, MAX_ROLES>::deserialize(d)?;
        let mut set = RoleSet::new();
        for r in raw {
            set.insert(r)
                .map_err(|_| serde::de::Error::custom("too many roles"))?;
        }
        Ok(set)
    }
}

/// The application version a node runs, compared numerically (`1.10.0 > 1.9.3`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct AppVersion {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Patch version.
    pub patch: u16,
}

impl AppVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        AppVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `"1"`, `"1.2"` or `"1.2.3"`; missing parts are zero.
    pub fn parse(s: &str) -> Option<AppVersion> {
        let mut parts = [0u16; 3];
        for (n, p) in s.split('.').enumerate() {
            *parts.get_mut(n)? = p.parse().ok()?;
        }
        Some(AppVersion::new(parts[0], parts[1], parts[2]))
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The highest up-number the leader hands out: `u32::MAX` is how the wire says "not up yet".
pub(crate) const MAX_UP_NUMBER: u32 = u32::MAX - 1;

/// The wire form of [`Member::up_number`], byte for byte what it was when the field was a
/// plain `u32` with `u32::MAX` for "not up yet": that value is `None`, and 0, which no leader
/// hands out, is refused.
mod up_number_wire {
    use core::num::NonZeroU32;
    use serde::{de, Deserialize, Deserializer, Serializer};

    const UNSET: u32 = u32::MAX;

    pub(super) fn serialize<S: Serializer>(
        n: &Option<NonZeroU32>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u32(n.map_or(UNSET, NonZeroU32::get))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<NonZeroU32>, D::Error> {
        match u32::deserialize(d)? {
            UNSET => Ok(None),
            n => NonZeroU32::new(n)
                .map(Some)
                .ok_or_else(|| de::Error::custom("up-number 0")),
        }
    }
}

/// One member of the cluster as the gossip describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Identity of this incarnation.
    pub address: UniqueAddress,
    /// Lifecycle status.
    pub status: MemberStatus,
    /// Age: assigned in order by the leader when the member becomes Up; lower is older.
    /// `None` until then: such a member is younger than every member with a number.
    #[serde(with = "up_number_wire")]
    pub up_number: Option<NonZeroU32>,
    /// Roles the node declared when joining.
    pub roles: RoleSet,
    /// Application version the node declared when joining.
    pub app_version: AppVersion,
    /// What the node can hold, declared when joining (see [`crate::capacity`]).
    pub capacity: Capacity,
    /// Whether the member may lead, declared when joining: the leader and the side's downing
    /// lead are chosen among members that may (see [`crate::Config::leader_eligible`]).
    pub leader_eligible: bool,
}

impl Member {
    /// A new Joining member, declaring no capacity bound (set [`Member::capacity`] for one)
    /// and eligible to lead.
    pub fn joining(address: UniqueAddress, roles: RoleSet, app_version: AppVersion) -> Member {
        Member {
            address,
            status: MemberStatus::Joining,
            up_number: None,
            roles,
            app_version,
            capacity: Capacity::UNBOUNDED,
            leader_eligible: true,
        }
    }

    /// True if `self` is older: lower up-number, ties by lower address. Members without an
    /// up-number are the youngest.
    pub fn is_older_than(&self, other: &Member) -> bool {
        self.age() < other.age()
    }

    /// Sort key by age, oldest first: the up-number (members without one last), then the
    /// address.
    pub(crate) fn age(&self) -> (u32, UniqueAddress) {
        (self.up_rank(), self.address)
    }

    /// The up-number as a rank, `u32::MAX` for none: no number sorts after every number.
    fn up_rank(&self) -> u32 {
        self.up_number.map_or(u32::MAX, NonZeroU32::get)
    }

    /// A stable 64-bit hash of the whole record, identical on every node and platform: a
    /// gossip delta names the receiver's state by it (see [`crate::delta`]).
    pub(crate) fn record_hash(&self) -> u64 {
        let mut h = Digest::new();
        h.write_u64(self.address.stable_hash());
        let a = self.app_version;
        h.write_u64(
            u64::from(self.status as u8)
                | u64::from(self.up_rank()) << 8
                | u64::from(self.roles.len) << 40,
        );
        h.write_u64(
            u64::from(a.major)
                | u64::from(a.minor) << 16
                | u64::from(a.patch) << 32
                | u64::from(self.capacity.members) << 48,
        );
        h.write_u64(u64::from(self.capacity.records));
        for role in self.roles.as_slice() {
            for chunk in role.0.chunks(8) {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                h.write_u64(u64::from_le_bytes(b));
            }
        }
        h.finish()
    }

    /// True if the member has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The version of the same member that wins a merge: the more advanced status; on equal
    /// status the older copy.
    pub(crate) fn merge_winner<'a>(a: &'a Member, b: &'a Member) -> &'a Member {
        let (ra, rb) = (a.status.merge_rank(), b.status.merge_rank());
        if ra != rb {
            return if ra > rb { a } else { b };
        }
        // Equal status: the older copy (lower up-number). Break remaining ties on the
        // remaining fields so the choice never depends on argument order.
        let ka = (
            a.up_rank(),
            a.app_version,
            a.roles.as_slice(),
            a.capacity.members,
        );
        let kb = (
            b.up_rank(),
            b.app_version,
            b.roles.as_slice(),
            b.capacity.members,
        );
        let (ka, kb) = ((ka, a.capacity.records), (kb, b.capacity.records));
        if ka <= kb {
            a
        } else {
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MemberStatus::*;
    use super::*;

    const ALL: [MemberStatus; 9] = MemberStatus::ALL;

    /// The member record as it was encoded when `up_number` was a `u32` with `u32::MAX` for
    /// "not up yet".
    #[derive(Serialize)]
    struct OldMember {
        address: UniqueAddress,
        status: MemberStatus,
        up_number: u32,
        roles: RoleSet,
        app_version: AppVersion,
        capacity: Capacity,
        leader_eligible: bool,
    }

    fn old(m: &Member, up_number: u32) -> OldMember {
        OldMember {
            address: m.address,
            status: m.status,
            up_number,
            roles: m.roles,
            app_version: m.app_version,
            capacity: m.capacity,
            leader_eligible: m.leader_eligible,
        }
    }

    #[test]
    fn up_numbers_encode_as_before_and_zero_is_refused() {
        let a = UniqueAddress::new(core::net::SocketAddr::from(([10, 0, 0, 1], 7355)), 9);
        let mut m = Member::joining(a, RoleSet::new(), AppVersion::new(1, 2, 3));
        let (mut new_buf, mut old_buf) = ([0u8; 64], [0u8; 64]);
        for (n, wire) in [
            (None, u32::MAX),
            (NonZeroU32::new(1), 1),
            (NonZeroU32::new(MAX_UP_NUMBER), MAX_UP_NUMBER),
        ] {
            m.up_number = n;
            let new = postcard::to_slice(&m, &mut new_buf).unwrap();
            let old = postcard::to_slice(&old(&m, wire), &mut old_buf).unwrap();
            assert_eq!(new, old, "{n:?}");
            assert_eq!(postcard::from_bytes::<Member>(new).unwrap(), m);
        }
        let zero = postcard::to_slice(&old(&m, 0), &mut old_buf).unwrap();
        assert!(postcard::from_bytes::<Member>(zero).is_err());
    }

    #[test]
    fn transition_table_matches_pekko() {
        // Rows: from; columns: to, in ALL order. Written out independently of `transition`.
        let table: [[u8; 9]; 9] = [
            // Jn WU Up Lv Ex Dn Rm PS RS
            [1, 1, 1, 1, 0, 1, 1, 0, 0], // Joining
            [0, 1, 1, 1, 0, 1, 1, 0, 0], // WeaklyUp
            [0, 0, 1, 1, 0, 1, 1, 1, 0], // Up
            [0, 0, 0, 1, 1, 1, 1, 0, 0], // Leaving
            [0, 0, 0, 0, 1, 1, 1, 0, 0], // Exiting
            [0, 0, 0, 0, 0, 1, 1, 0, 0], // Down
            [0, 0, 0, 0, 0, 0, 1, 0, 0], // Removed
            [0, 0, 0, 1, 0, 1, 1, 1, 1], // PreparingForShutdown
            [0, 0, 0, 1, 0, 1, 1, 0, 1], // ReadyForShutdown
        ];
        for (i, from) in ALL.iter().enumerate() {
            for (j, to) in ALL.iter().enumerate() {
                let allowed = from.transition(*to).is_ok();
                assert_eq!(allowed, table[i][j] == 1, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn reachability_through_transitions() {
        assert!(Up.can_reach(Exiting), "through Leaving");
        assert!(
            Joining.can_reach(ReadyForShutdown),
            "through Up and Preparing"
        );
        assert!(Up.can_reach(Up));
        assert!(!Exiting.can_reach(Up));
        assert!(!Down.can_reach(Exiting));
        assert!(!Removed.can_reach(Down));
        assert!(!Leaving.can_reach(PreparingForShutdown));
    }

    #[test]
    fn merge_winner_is_symmetric() {
        let a = UniqueAddress::new("1.1.1.1:1".parse().unwrap(), 1);
        let mut m1 = Member::joining(a, RoleSet::new(), AppVersion::default());
        let mut m2 = m1.clone();
        m1.status = Up;
        m1.up_number = NonZeroU32::new(3);
        m2.status = Leaving;
        assert_eq!(Member::merge_winner(&m1, &m2), &m2);
        assert_eq!(Member::merge_winner(&m2, &m1), &m2);
        m2.status = Up;
        m2.up_number = NonZeroU32::new(2);
        assert_eq!(Member::merge_winner(&m1, &m2).up_number, NonZeroU32::new(2));
        assert_eq!(Member::merge_winner(&m2, &m1).up_number, NonZeroU32::new(2));
    }

    #[test]
    fn roles_are_sorted_and_bounded() {
        let mut s = RoleSet::new();
        for r in ["b", "a", "b", "c"] {
            s.insert(Role::new(r).unwrap()).unwrap();
        }
        assert_eq!(
            s.iter()
                .map(|r| r.as_str())
                .collect::<heapless::Vec<_, 8>>(),
            ["a", "b", "c"]
        );
        assert_eq!(s.insert(Role::new("d").unwrap()), Err(TooManyRoles));
        assert_eq!(Role::new("a-role-name-that-is-too-long"), Err(RoleTooLong));
        assert_eq!(Role::new(""), Err(RoleTooLong));
        assert_eq!(Role::new("a\0b"), Err(RoleTooLong));
        assert_eq!(
            Role::new("sixteen-bytes-ok").unwrap().as_str(),
            "sixteen-bytes-ok"
        );
    }

    #[test]
    fn app_version_parses_and_orders_numerically() {
        assert_eq!(AppVersion::parse("1.10"), Some(AppVersion::new(1, 10, 0)));
        assert!(AppVersion::parse("1.10.0").unwrap() > AppVersion::parse("1.9.3").unwrap());
        assert_eq!(AppVersion::parse("1.2.3.4"), None);
        assert_eq!(AppVersion::parse("x"), None);
    }
}
