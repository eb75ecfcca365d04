//! One reader of the node's application messages, shared by the tools and the application.
//!
//! A node has one stream of application messages ([`Cluster::recv`]). The [`Hub`] reads it
//! and hands each tool the messages on its channel; everything else goes to the application
//! ([`Hub::recv`]). Tool messages travel in an envelope that starts with a magic number,
//! so an application message sent with [`Hub::send`] is never taken for a tool's. A message
//! for a channel nobody listens on (a tool not started on that node) is counted as a dead
//! letter ([`Hub::dead_letters`], and a warning in the log at the first, second, fourth…
//! of them) and dropped, as is one for a channel or application queue that is full; a
//! request among them is answered with an error by its sender's timeout, never left to hang
//! forever.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use fjell_runtime::quic::{AppMessage, RequestError, SendError};
use fjell_runtime::{Cluster, Runtime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first bytes of every envelope ("fjell tools", version 1).
const MAGIC: u32 = 0x666a_7401;

/// A tool's message on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<'a> {
    magic: u32,
    channel: &'a str,
    #[serde(with = "serde_bytes_compat")]
    payload: &'a [u8],
}

mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&[u8]>::deserialize(d)
    }
}

/// The channel application messages sent with [`Hub::send`] travel on.
const APP_CHANNEL: &str = "";

/// A message for a tool, as its channel hands it over.
#[derive(Debug)]
pub struct Incoming {
    /// The sender's certified address.
    pub from: SocketAddr,
    /// The tool's bytes.
    pub payload: Vec<u8>,
    /// The transport's message, to answer a request with.
    pub(crate) message: AppMessage,
}

impl Incoming {
    /// True if the sender waits for an answer.
    pub fn is_request(&self) -> bool {
        self.message.is_request()
    }
}

/// A channel's messages were refused: that channel has a listener already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {0:?} has a listener already")]
pub struct ChannelTaken(pub String);

/// The hub of one node (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.inner.cluster.self_address())
            .finish_non_exhaustive()
    }
}

struct Inner {
    cluster: Cluster,
    runtime: Arc<dyn Runtime>,
    channels: Mutex<HashMap<String, Sender<Incoming>>>,
    app: Receiver<AppMessage>,
    dead_letters: AtomicU64,
}

/// Messages a channel holds before further ones are dropped as dead letters.
const CHANNEL_CAPACITY: usize = 1024;
/// Application messages held before further ones are dropped as dead letters.
const APP_CAPACITY: usize = 4096;

impl Hub {
    /// Starts reading `cluster`'s application messages on `runtime`. Start one hub per node,
    /// before any tool, and receive the application's own messages with [`Hub::recv`] from
    /// then on (not with `Cluster::recv`).
    pub fn start(cluster: &Cluster, runtime: impl Runtime) -> Hub {
        let (app_tx, app_rx) = async_channel::bounded(APP_CAPACITY);
        let hub = Hub {
            inner: Arc::new(Inner {
                cluster: cluster.clone(),
                runtime: Arc::new(runtime),
                channels: Mutex::new(HashMap::new()),
                app: app_rx,
                dead_letters: AtomicU64::new(0),
            }),
        };
        // The reader holds the hub weakly, so dropping every handle stops routing.
        let weak = Arc::downgrade(&hub.inner);
        let cluster = cluster.clone();
        hub.inner.runtime.spawn(Box::pin(async move {
            while let Some(m) = cluster.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                inner.route(m, &app_tx);
            }
        }));
        hub
    }

    /// The node's cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The runtime the hub and the tools run on.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.inner.runtime.clone()
    }

    /// The next application message (one not for a tool); `None` once the node has stopped.
    pub async fn recv(&self) -> Option<AppMessage> {
        self.inner.app.recv().await.ok()
    }

    /// Sends an application message to a member; it arrives through the member's
    /// [`Hub::recv`].
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        message: &T,
    ) -> Result<(), SendError> {
        let bytes =
            postcard::to_allocvec(message).map_err(|e| SendError::Serialize(e.to_string()))?;
        self.send_on(to, APP_CHANNEL, &bytes).await
    }

    /// Messages dropped because no tool listens on their channel, or its queue was full.
    pub fn dead_letters(&self) -> u64 {
        self.inner.dead_letters.load(Ordering::Relaxed)
    }

    /// Listens on `channel` (a tool's name): every message sent to it on this node, by
    /// [`Hub::send_on`] or [`Hub::request_on`] anywhere in the cluster, arrives here. Tools
    /// built outside this crate (such as fjell-ddata's replicator) use this too.
    pub fn listen(&self, channel: &str) -> Result<Receiver<Incoming>, ChannelTaken> {
        let mut channels = self.inner.channels.lock().unwrap();
        if channels.get(channel).is_some_and(|s| !s.is_closed()) {
            return Err(ChannelTaken(channel.to_string()));
        }
        let (tx, rx) = async_channel::bounded(CHANNEL_CAPACITY);
        channels.insert(channel.to_string(), tx);
        Ok(rx)
    }

    /// Sends `payload` to `channel` on member `to`.
    pub async fn send_on(
        &self,
        to: SocketAddr,
        channel: &str,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.inner.cluster.send(to, &wrap(channel, payload)).await
    }

    /// Sends `payload` to `channel` on member `to` as a request, and waits at most `timeout`
    /// for the answer's bytes.
    pub async fn request_on(
        &self,
        to: SocketAddr,
        channel: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, RequestError> {
        self.inner
            .cluster
            .request(to, &wrap(channel, payload), timeout)
            .await
    }

    /// Answers a request received on a channel.
    pub async fn respond(&self, to: &Incoming, payload: &[u8]) -> Result<(), SendError> {
        self.inner.cluster.respond(&to.message, &payload).await
    }
}

/// Decodes a tool's bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

fn wrap<'a>(channel: &'a str, payload: &'a [u8]) -> Envelope<'a> {
    Envelope {
        magic: MAGIC,
        channel,
        payload,
    }
}

impl Inner {
    fn route(&self, m: AppMessage, app: &Sender<AppMessage>) {
        let envelope = postcard::from_bytes::<Envelope<'_>>(&m.payload)
            .ok()
            .filter(|e| e.magic == MAGIC);
        let Some(e) = envelope else {
            // Not the hub's: an application message sent with `Cluster::send`.
            return self.to_app(app, m);
        };
        if e.channel == APP_CHANNEL {
            let mut unwrapped = m.clone();
            unwrapped.payload = e.payload.to_vec().into();
            return self.to_app(app, unwrapped);
        }
        let incoming = Incoming {
            from: m.from,
            payload: e.payload.to_vec(),
            message: m.clone(),
        };
        let sender = self.channels.lock().unwrap().get(e.channel).cloned();
        let why = match sender {
            Some(tx) => match tx.try_send(incoming) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => "its queue is full",
                Err(TrySendError::Closed(_)) => "no tool listens on it",
            },
            None => "no tool listens on it",
        };
        self.dead_letter(e.channel, m.from, why);
    }

    fn to_app(&self, app: &Sender<AppMessage>, m: AppMessage) {
        let from = m.from;
        if app.try_send(m).is_err() {
            self.dead_letter("application", from, "the application's queue is full");
        }
    }

    /// Counts a dropped message and says so in the log: the first, second, fourth, eighth…
    /// of them, so a flood is visible without flooding the log.
    fn dead_letter(&self, channel: &str, from: SocketAddr, why: &str) {
        let n = self.dead_letters.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                channel,
                %from,
                dead_letters = n,
                "fjell-tools: a message was dropped: {why}"
            );
        }
    }
}
