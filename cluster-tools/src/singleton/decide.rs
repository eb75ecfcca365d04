//! Who hosts the singleton, and the hand-over between the old host and the new one: sans-IO.
//!
//! One [`Manager`] runs on every node that may host the singleton. It is fed this node's
//! membership snapshots ([`Manager::handle_members`]), the hand-over messages of the other
//! managers ([`Manager::handle_message`]), the end of the local instance
//! ([`Manager::handle_stopped`]) and time ([`Manager::handle_timeout`]); it answers with
//! [`Action`]s ([`Manager::poll_action`]) and the next time it wants
//! ([`Manager::poll_timeout`]). Time is the core's [`Instant`]; the manager reads no clock.
//!
//! # The rules (Pekko's, notes §1)
//!
//! - **Candidates** are the members with the role that have an age (an up-number: Joining and
//!   WeaklyUp members have none). The host is the oldest candidate that is Up or Leaving: a
//!   Leaving host keeps the singleton until it is Exiting.
//! - **A node starts the instance** only when it is Up, is the oldest live candidate, and
//!   every older candidate has handed over: an Exiting one by answering
//!   [`Message::HandOverToMe`] with [`Message::HandOverDone`]; one removed without that
//!   answer (a leaving node whose answer was lost, a crashed or downed one) once the stop
//!   timeout has passed since this node saw it removed. A removed node had already seen
//!   itself Exiting or Down, when its own manager told its instance to stop, and an instance
//!   is dropped at the latest a stop timeout after that. For a downed node fjell's leader
//!   also keeps it for the down-removal margin before removing it, time for the other side of
//!   a partition to have downed itself (`fjell_core::DowningSettings::down_removal_margin`).
//! - **A node stops the instance** when it is Exiting, Down or no longer a member, when an
//!   older live candidate appears, or when the would-be successor asks while this node is
//!   leaving. Once its instance has ended it sends [`Message::HandOverDone`] to whoever asked
//!   and to the successor, and never starts again in this incarnation (a node that left comes
//!   back as a new incarnation); only a node that gave way to an older member and promised
//!   nobody may host again later. An instance that ends on its own is not restarted.
//! - A node that hosts nothing answers [`Message::HandOverToMe`] with `HandOverDone` and from
//!   then on never starts: whoever asked sees it leaving, so it is on its way out.
//!
//! Together: an instance starts only after every older one has ended or its node is gone for
//! the margin, so two never run at once when downing is safe (a split brain resolver).

use std::net::SocketAddr;
use std::time::Duration;

use fjell_runtime::core::{Instant, Member, MemberStatus, Role, UniqueAddress};
use serde::{Deserialize, Serialize};

/// True if `m` may host: it has the role (if any) and an age.
fn candidate(m: &Member, role: Option<&Role>) -> bool {
    m.up_number.is_some() && role.is_none_or(|r| m.roles.contains(r.as_str()))
}

/// The member that hosts the singleton in a view of `members` (or is about to): the oldest
/// candidate that is Up or Leaving. What [`Manager::host`] says, for a proxy on a node
/// without a manager.
pub fn host_of<'a>(members: &'a [Member], role: Option<&Role>) -> Option<&'a Member> {
    members
        .iter()
        .filter(|m| candidate(m, role))
        .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Leaving))
        .reduce(|a, b| if b.is_older_than(a) { b } else { a })
}

/// What the managers of one singleton send each other (Pekko's hand-over messages). The
/// sender's address is the transport's certified one; the uids name incarnations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// From the would-be host to an older member that is leaving: stop your instance and
    /// tell me when it has ended. `target` is the incarnation asked.
    HandOverToMe {
        /// The uid of the incarnation asked.
        target: u64,
    },
    /// The instance is stopping; `HandOverDone` follows.
    HandOverInProgress {
        /// The sender's uid.
        from: u64,
    },
    /// The sender hosts no instance and will not start one in this incarnation.
    HandOverDone {
        /// The sender's uid.
        from: u64,
    },
}

/// What the manager asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start the instance here.
    Start,
    /// Tell the instance to stop; call [`Manager::handle_stopped`] once it has ended.
    Stop,
    /// Send `message` to the manager on `to`.
    Send {
        /// The member's address.
        to: SocketAddr,
        /// The message.
        message: Message,
    },
}

/// Where this node's manager is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not the host: another candidate is older, or this node is not Up yet.
    Younger,
    /// The oldest live candidate, waiting for older members to hand over or be removed.
    Becoming,
    /// The instance runs here.
    Running,
    /// The instance was told to stop and has not ended yet.
    Stopping,
    /// Done in this incarnation: it never starts again.
    Ended,
}

/// The manager of one singleton on one node (see the module docs).
#[derive(Debug)]
pub struct Manager {
    me: UniqueAddress,
    role: Option<Role>,
    retry: Duration,
    phase: Phase,
    /// The latest snapshot's members.
    members: Vec<Member>,
    /// Older members that answered `HandOverDone`.
    done: Vec<UniqueAddress>,
    /// Older candidates removed without answering, and until when their instance may live.
    removed: Vec<(UniqueAddress, Instant)>,
    /// How long an instance may take to stop ([`Manager::new`]).
    stop_timeout: Duration,
    /// Who asked for the hand-over while the instance was stopping.
    requesters: Vec<UniqueAddress>,
    next_retry: Option<Instant>,
    actions: std::collections::VecDeque<Action>,
}

impl Manager {
    /// A manager for node `me`, hosting only on members with `role` (`None`: any member),
    /// asking leaving members to hand over every `retry` (Pekko: 1 s); an instance takes at
    /// most `stop_timeout` to stop (the same on every node).
    pub fn new(
        me: UniqueAddress,
        role: Option<Role>,
        retry: Duration,
        stop_timeout: Duration,
    ) -> Self {
        Manager {
            me,
            role,
            retry,
            phase: Phase::Younger,
            members: Vec::new(),
            done: Vec::new(),
            removed: Vec::new(),
            stop_timeout,
            requesters: Vec::new(),
            next_retry: None,
            actions: Default::default(),
        }
    }

    /// Where this manager is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The member this node believes hosts the singleton (or is about to): the oldest
    /// candidate that is Up or Leaving. Proxies send there.
    pub fn host(&self) -> Option<UniqueAddress> {
        self.oldest_live().map(|m| m.address)
    }

    /// This node's membership snapshot changed (`ClusterState::members`).
    pub fn handle_members(&mut self, now: Instant, members: &[Member]) {
        // Candidates that are gone without handing over: their instance may still be
        // stopping, for at most a stop timeout.
        let until = now + self.stop_timeout;
        for m in &self.members {
            let gone = !members.iter().any(|n| n.address == m.address);
            if gone && m.address != self.me && self.candidate(m) && !self.done.contains(&m.address)
            {
                self.removed.push((m.address, until));
            }
        }
        self.members.clear();
        self.members.extend_from_slice(members);
        // Forget hand-overs from incarnations that are gone.
        let present = |a: &UniqueAddress| members.iter().any(|m| m.address == *a);
        self.done.retain(present);
        self.evaluate(now);
    }

    /// A message from the manager on `from`.
    pub fn handle_message(&mut self, now: Instant, from: SocketAddr, message: Message) {
        match message {
            Message::HandOverToMe { target } => {
                let requester = self.member_at(from).map(|m| m.address);
                if target != self.me.uid() {
                    // Meant for an earlier incarnation on this address, which is gone with
                    // its instance.
                    self.reply_done_as(from, target);
                    return;
                }
                match self.phase {
                    Phase::Running if self.leaving() || !self.is_oldest() => {
                        self.stop();
                        self.remember(requester);
                        self.send(
                            from,
                            Message::HandOverInProgress {
                                from: self.me.uid(),
                            },
                        );
                    }
                    // The asker is wrong about us (a stale view); it will ask again.
                    Phase::Running => {}
                    Phase::Stopping => {
                        self.remember(requester);
                        self.send(
                            from,
                            Message::HandOverInProgress {
                                from: self.me.uid(),
                            },
                        );
                    }
                    Phase::Younger | Phase::Becoming | Phase::Ended => {
                        self.phase = Phase::Ended;
                        self.next_retry = None;
                        self.send(
                            from,
                            Message::HandOverDone {
                                from: self.me.uid(),
                            },
                        );
                    }
                }
            }
            Message::HandOverDone { from: uid } => {
                let who = UniqueAddress::new(from, uid);
                if self.members.iter().any(|m| m.address == who) && !self.done.contains(&who) {
                    self.done.push(who);
                }
                self.removed.retain(|(a, _)| *a != who);
                self.evaluate(now);
            }
            // Nothing to do but wait for `HandOverDone`; the retries continue meanwhile.
            Message::HandOverInProgress { .. } => {}
        }
    }

    /// The local instance has ended (after [`Action::Stop`], or on its own).
    pub fn handle_stopped(&mut self, now: Instant) {
        let asked = match self.phase {
            Phase::Stopping => true,
            Phase::Running => false,
            _ => return,
        };
        let promised = !self.requesters.is_empty();
        for r in core::mem::take(&mut self.requesters) {
            self.send(
                r.socket_addr(),
                Message::HandOverDone {
                    from: self.me.uid(),
                },
            );
        }
        // An instance that ended on its own is not restarted in this incarnation (restarting
        // is the task's business, as in Pekko); nor is one stopped because this node leaves
        // or that promised a successor it is done. Only one that gave way to an older member
        // may host again, should that member leave.
        if !asked || promised || self.leaving() {
            self.phase = Phase::Ended;
            // Tell the successor at once rather than wait for its next request.
            if let Some(next) = self.oldest_live().map(|m| m.address) {
                if next != self.me {
                    self.send(
                        next.socket_addr(),
                        Message::HandOverDone {
                            from: self.me.uid(),
                        },
                    );
                }
            }
        } else {
            self.phase = Phase::Younger;
        }
        self.evaluate(now);
    }

    /// Time passed: resend hand-over requests that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_retry.is_some_and(|t| t <= now) {
            self.next_retry = None;
            self.evaluate(now);
        }
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Manager::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_retry
    }

    // ----- rules -------------------------------------------------------------------------

    fn evaluate(&mut self, now: Instant) {
        match self.phase {
            Phase::Younger | Phase::Becoming => self.try_start(now),
            Phase::Running => {
                if self.leaving_for_good() || !self.is_oldest() {
                    self.stop();
                }
            }
            Phase::Stopping | Phase::Ended => {}
        }
    }

    fn try_start(&mut self, now: Instant) {
        let me = self.member(self.me);
        let eligible = me.is_some_and(|m| m.status == MemberStatus::Up && self.candidate(m));
        if !eligible || !self.is_oldest() {
            self.phase = Phase::Younger;
            self.next_retry = None;
            return;
        }
        // Older candidates still listed: Exiting ones must hand over; Down ones be removed.
        let me = me.expect("eligible").clone();
        let blockers: Vec<Member> = self
            .members
            .iter()
            .filter(|m| self.candidate(m) && m.is_older_than(&me))
            .filter(|m| !self.done.contains(&m.address))
            .cloned()
            .collect();
        self.removed.retain(|(_, until)| *until > now);
        if blockers.is_empty() && self.removed.is_empty() {
            self.phase = Phase::Running;
            self.next_retry = None;
            self.actions.push_back(Action::Start);
            return;
        }
        self.phase = Phase::Becoming;
        // Wake when the first removed member's instance must have ended.
        let expiry = self.removed.iter().map(|(_, t)| *t).min();
        if self.next_retry.is_none() || expiry.is_some_and(|t| Some(t) < self.next_retry) {
            for b in blockers
                .iter()
                .filter(|b| b.status == MemberStatus::Exiting)
            {
                self.send(
                    b.address.socket_addr(),
                    Message::HandOverToMe {
                        target: b.address.uid(),
                    },
                );
            }
            let retry = now + self.retry;
            self.next_retry = Some(expiry.map_or(retry, |t| t.min(retry)));
        }
    }

    fn stop(&mut self) {
        self.phase = Phase::Stopping;
        self.actions.push_back(Action::Stop);
    }

    fn candidate(&self, m: &Member) -> bool {
        candidate(m, self.role.as_ref())
    }

    fn oldest_live(&self) -> Option<&Member> {
        host_of(&self.members, self.role.as_ref())
    }

    fn is_oldest(&self) -> bool {
        self.oldest_live().is_some_and(|m| m.address == self.me)
    }

    /// This node is leaving (or worse) in its own view.
    fn leaving(&self) -> bool {
        self.member(self.me).is_none_or(|m| {
            matches!(
                m.status,
                MemberStatus::Leaving | MemberStatus::Exiting | MemberStatus::Down
            )
        })
    }

    /// This node must not host any longer: Exiting, Down, or no longer a member.
    fn leaving_for_good(&self) -> bool {
        self.member(self.me)
            .is_none_or(|m| matches!(m.status, MemberStatus::Exiting | MemberStatus::Down))
    }

    fn member(&self, a: UniqueAddress) -> Option<&Member> {
        self.members.iter().find(|m| m.address == a)
    }

    fn member_at(&self, addr: SocketAddr) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.address.socket_addr() == addr)
    }

    fn remember(&mut self, requester: Option<UniqueAddress>) {
        if let Some(r) = requester {
            if !self.requesters.contains(&r) {
                self.requesters.push(r);
            }
        }
    }

    fn reply_done_as(&mut self, to: SocketAddr, uid: u64) {
        self.send(to, Message::HandOverDone { from: uid });
    }

    fn send(&mut self, to: SocketAddr, message: Message) {
        self.actions.push_back(Action::Send { to, message });
    }
}
