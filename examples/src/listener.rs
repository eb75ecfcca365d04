//! Akka's *simple cluster listener*: subscribe to the cluster's events, starting from the
//! current state as events, and log the interesting ones.

use fjell_core::Event;
use fjell_runtime::Cluster;

/// The line the listener logs for `event`, if it logs it: members coming Up, found
/// unreachable, and removed.
pub fn describe(event: &Event) -> Option<String> {
    match event {
        Event::MemberUp(m) => Some(format!("Member is Up: {}", m.address.socket_addr())),
        Event::UnreachableMember(m) => Some(format!(
            "Member detected as unreachable: {}",
            m.address.socket_addr()
        )),
        Event::MemberRemoved {
            member,
            previous_status,
        } => Some(format!(
            "Member is Removed: {} after {previous_status:?}",
            member.address.socket_addr()
        )),
        _ => None,
    }
}

/// Logs `cluster`'s membership changes through `log` until the node stops.
pub async fn listen(cluster: &Cluster, mut log: impl FnMut(String)) {
    let events = cluster.subscribe_as_events().await;
    while let Some(e) = events.next().await {
        if let Some(line) = describe(&e) {
            log(line);
        }
    }
}
