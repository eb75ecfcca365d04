//! The rules behind `/alive` and `/ready`, kept apart from HTTP so they read as rules.
//!
//! - **Alive**: the node's driver runs (joining, member, leaving alike). A node whose driver
//!   ended (it left, was downed or removed, or aborted) is not alive: restart the process.
//! - **Ready**: alive, *and* this node's own member record is `Up` or `WeaklyUp` in its view,
//!   *and* no observer in its view flags it unreachable. Pekko's readiness check asks only
//!   the first two; the third keeps a load balancer from sending work to a node the rest of
//!   the cluster has lost sight of, as far as this node has heard. A node cut off from every
//!   other hears no such flag, so it stays ready until the split brain resolver downs it (its
//!   driver then ends and it is neither ready nor alive).

use fjell_runtime::{ClusterState, MemberStatus, Termination};

/// Why a node is not ready (the body of a 503 from `/ready`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The node's driver ended.
    #[error("the node stopped ({0:?})")]
    Stopped(Termination),
    /// The node is not a member yet (joining, or waiting to be joined).
    #[error("not a member yet")]
    NotAMember,
    /// The node is a member, with a status that takes no work.
    #[error("member status is {0:?}, not Up or WeaklyUp")]
    Status(MemberStatus),
    /// Some observer flags this node unreachable.
    #[error("flagged unreachable by another member")]
    Unreachable,
}

/// `Ok` while the node runs (see the [module docs](self)).
pub fn alive(termination: Option<Termination>) -> Result<(), NotReady> {
    match termination {
        Some(t) => Err(NotReady::Stopped(t)),
        None => Ok(()),
    }
}

/// `Ok` when the node should take work (see the [module docs](self)).
pub fn ready(state: &ClusterState, termination: Option<Termination>) -> Result<(), NotReady> {
    alive(termination)?;
    let me = state.self_member().ok_or(NotReady::NotAMember)?;
    if !matches!(me.status, MemberStatus::Up | MemberStatus::WeaklyUp) {
        return Err(NotReady::Status(me.status));
    }
    if state.unreachable.iter().any(|m| m.address == me.address) {
        return Err(NotReady::Unreachable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjell_runtime::core::{AppVersion, Member, NodeStatus, RoleSet, UniqueAddress};

    fn state(status: Option<MemberStatus>, flagged: bool) -> ClusterState {
        let me = UniqueAddress::new("127.0.0.1:7355".parse().unwrap(), 1);
        let other = Member {
            status: MemberStatus::Up,
            ..Member::joining(
                UniqueAddress::new("127.0.0.1:7356".parse().unwrap(), 2),
                RoleSet::new(),
                AppVersion::new(1, 0, 0),
            )
        };
        let mine = status.map(|s| Member {
            status: s,
            ..Member::joining(me, RoleSet::new(), AppVersion::new(1, 0, 0))
        });
        let members: Vec<Member> = mine.iter().cloned().chain([other]).collect();
        ClusterState {
            self_address: me,
            status: if mine.is_some() {
                NodeStatus::Member
            } else {
                NodeStatus::Joining
            },
            unreachable: mine.into_iter().filter(|_| flagged).collect(),
            members,
            leader: None,
            role_leaders: Vec::new(),
            converged: true,
            may_lead: true,
        }
    }

    #[test]
    fn ready_takes_up_or_weakly_up_and_reachable() {
        assert_eq!(ready(&state(Some(MemberStatus::Up), false), None), Ok(()));
        assert_eq!(
            ready(&state(Some(MemberStatus::WeaklyUp), false), None),
            Ok(())
        );
        assert_eq!(
            ready(&state(Some(MemberStatus::Up), true), None),
            Err(NotReady::Unreachable)
        );
        for s in [
            MemberStatus::Joining,
            MemberStatus::Leaving,
            MemberStatus::Exiting,
            MemberStatus::Down,
        ] {
            assert_eq!(
                ready(&state(Some(s), false), None),
                Err(NotReady::Status(s))
            );
        }
        assert_eq!(ready(&state(None, false), None), Err(NotReady::NotAMember));
    }

    #[test]
    fn a_stopped_node_is_neither_alive_nor_ready() {
        let t = Termination::Aborted;
        assert_eq!(alive(Some(t)), Err(NotReady::Stopped(t)));
        assert_eq!(
            ready(&state(Some(MemberStatus::Up), false), Some(t)),
            Err(NotReady::Stopped(t))
        );
        assert_eq!(alive(None), Ok(()));
    }
}
