//! Akka's *worker dial-in* sample (the transformation sample): frontend nodes take text and
//! have a backend node turn it to upper case.
//!
//! - Backends register with every frontend they see come Up; a frontend takes a registration
//!   once it sees the backend as a member itself.
//! - A frontend answers "service unavailable" while it has no backend, and forgets backends
//!   that are found unreachable or removed.
//! - Start-up is gated: the cluster moves nobody Up until two backends have joined
//!   (`role.backend.min-nr-of-members = 2`), and a frontend starts serving from its
//!   on-member-up callback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjell_core::{Config, Event, MemberStatus, Role};
use fjell_runtime::Cluster;
use serde::{Deserialize, Serialize};

/// The frontend role.
pub const FRONTEND: &str = "frontend";
/// The backend role.
pub const BACKEND: &str = "backend";
/// How long a frontend waits for a backend's answer.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a frontend holds a registration from a node it does not see as a member yet.
pub const REGISTRATION_WAIT: Duration = Duration::from_secs(30);
/// The answer while no backend is registered.
pub const UNAVAILABLE: &str = "Service unavailable, try again later";

/// The messages between frontends and backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A backend offers itself to a frontend.
    BackendRegistration,
    /// Text to transform (a request).
    TransformationJob(String),
    /// The transformed text (the response).
    TransformationResult(String),
}

/// The gate every node of the sample is configured with: nobody is moved Up before two
/// backends have joined.
pub fn configure(c: &mut Config) {
    if let Ok(backend) = Role::new(BACKEND) {
        let _ = c.role_min_nr_of_members.push((backend, 2));
    }
}

/// Runs a backend on `cluster` until the node stops: registers with frontends as they come
/// Up and answers transformation jobs.
pub async fn backend(cluster: Cluster) {
    let register = {
        let cluster = cluster.clone();
        async move {
            let events = cluster.subscribe_as_events().await;
            while let Some(e) = events.next().await {
                if let Event::MemberUp(m) = e {
                    if m.has_role(FRONTEND) {
                        let _ = cluster
                            .send(m.address.socket_addr(), &Message::BackendRegistration)
                            .await;
                    }
                }
            }
        }
    };
    let serve = async {
        while let Some(msg) = cluster.recv().await {
            if let Ok(Message::TransformationJob(text)) = msg.decode::<Message>() {
                let result = Message::TransformationResult(text.to_uppercase());
                let _ = cluster.respond(&msg, &result).await;
            }
        }
    };
    futures_lite::future::zip(register, serve).await;
}

/// A frontend: the backends it knows, and the round-robin counter.
#[derive(Clone)]
pub struct Frontend {
    cluster: Cluster,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    next: Arc<AtomicUsize>,
    /// A tick for every change of `backends`, for [`Frontend::wait_for_backends`].
    changed: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
}

impl Frontend {
    /// Starts serving on `cluster` (call it once the node is Up): spawns the tasks that take
    /// registrations and drop lost backends.
    pub fn start(cluster: Cluster) -> Frontend {
        let f = Frontend {
            cluster,
            backends: Arc::new(Mutex::new(Vec::new())),
            next: Arc::new(AtomicUsize::new(0)),
            changed: smol::channel::unbounded(),
        };
        let registrations = f.clone();
        smol::spawn(async move {
            while let Some(msg) = registrations.cluster.recv().await {
                if msg.decode::<Message>() == Ok(Message::BackendRegistration) {
                    smol::spawn(registrations.clone().register(msg.from)).detach();
                }
            }
        })
        .detach();
        let departures = f.clone();
        smol::spawn(async move {
            let events = departures.cluster.subscribe().await;
            while let Some(e) = events.next().await {
                let gone = match &e {
                    Event::UnreachableMember(m) => Some(m.address.socket_addr()),
                    Event::MemberRemoved { member, .. } => Some(member.address.socket_addr()),
                    _ => None,
                };
                if let Some(a) = gone {
                    departures.backends.lock().unwrap().retain(|b| *b != a);
                    let _ = departures.changed.0.try_send(());
                }
            }
        })
        .detach();
        f
    }

    /// Takes `backend`'s registration once this node sees it as a member in contact. A
    /// backend's view can run ahead of the frontend's: it may see the frontend Up and register
    /// before the frontend has heard it joined, and a job sent to a node that is not a member
    /// is refused. Dropped if that does not happen within [`REGISTRATION_WAIT`], or if the
    /// backend is unreachable or on its way out by then.
    async fn register(self, backend: SocketAddr) {
        let wait = self.cluster.wait_for(|s| s.member(backend).is_some());
        if self
            .cluster
            .within(REGISTRATION_WAIT, wait)
            .await
            .flatten()
            .is_none()
        {
            return;
        }
        // Checked again under the list's lock: the events of any later change (unreachable,
        // removed) are queued after this state, so the departures task sees them after the
        // push and drops the backend again.
        let mut b = self.backends.lock().unwrap();
        let state = self.cluster.state();
        let in_contact = state.member(backend).is_some_and(|m| {
            !matches!(
                m.status,
                MemberStatus::Down | MemberStatus::Exiting | MemberStatus::Removed
            )
        }) && !state
            .unreachable
            .iter()
            .any(|m| m.address.same_address(backend));
        if in_contact && !b.contains(&backend) {
            b.push(backend);
            let _ = self.changed.0.try_send(());
        }
    }

    /// The backends registered now.
    pub fn backends(&self) -> Vec<SocketAddr> {
        self.backends.lock().unwrap().clone()
    }

    /// Waits until `cond` holds for the registered backends (checked now and after every
    /// change); `None` if the frontend's tasks ended first.
    pub async fn wait_for_backends(&self, cond: impl Fn(&[SocketAddr]) -> bool) -> Option<()> {
        loop {
            if cond(&self.backends.lock().unwrap()) {
                return Some(());
            }
            self.changed.1.recv().await.ok()?;
        }
    }

    /// Has a backend transform `text`; [`UNAVAILABLE`] while there is none.
    pub async fn transform(&self, text: &str) -> Result<String, String> {
        let backend = {
            let b = self.backends.lock().unwrap();
            if b.is_empty() {
                return Err(UNAVAILABLE.to_string());
            }
            b[self.next.fetch_add(1, Ordering::Relaxed) % b.len()]
        };
        let job = Message::TransformationJob(text.to_string());
        match self.cluster.request(backend, &job, JOB_TIMEOUT).await {
            Ok(Message::TransformationResult(r)) => Ok(r),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(format!("job failed: {e}")),
        }
    }
}
