//! One remote node: its outgoing lanes (bounded queues, one writer task each), the single
//! connection in use, and the task that dials it when needed.
//!
//! At most one connection per pair of nodes is used. Both nodes may dial at once; each side
//! then sees two connections and keeps the same one: the connection dialed by the lower
//! advertised address. A connection from a new endpoint instance of the peer (its hello says
//! so) always wins, because the old one belongs to a process that has restarted. The other
//! connection is closed with [`close_code::DUPLICATE`]; messages written to it in the
//! moment both existed may be lost, which the core tolerates (it resends gossip and retries
//! joins) and application senders must, as with any connection loss.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use event_listener::Event;
use quinn::{Connection, SendStream, VarInt};

use crate::close_code;
use crate::counters::bump;
use crate::frame::{stream_header, CoreClass, Frame, Lane};
use crate::rt;
use crate::transport::Inner;

/// A connection adopted for a peer.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub(crate) conn: Connection,
    /// Who dialed it.
    pub(crate) dialer: SocketAddr,
    /// The peer's endpoint instance, from its hello.
    pub(crate) instance: u64,
}

/// A bounded queue of encoded frames for one lane.
pub(crate) struct Queue {
    pub(crate) tx: Sender<Bytes>,
    rx: Receiver<Bytes>,
}

impl Queue {
    fn new(cap: usize) -> Self {
        let (tx, rx) = async_channel::bounded(cap);
        Queue { tx, rx }
    }
}

pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) membership: Queue,
    pub(crate) app: Queue,
    pub(crate) large: Queue,
    /// Raw core heartbeat bytes waiting for a connection (or for a peer without datagrams).
    pub(crate) heartbeat: Queue,
    link: Mutex<Option<Link>>,
    has_link: AtomicBool,
    /// Notified when a link is adopted or lost (writers wait on it).
    link_event: Event,
    /// Set by senders; the dialer dials when it is set and there is no link.
    wanted: AtomicBool,
    /// Notified when a link is wanted or lost (the dialer waits on it).
    dial_event: Event,
    /// Writers holding a message while they wait for a link.
    waiting: AtomicUsize,
}

/// Stream priorities: heartbeats (when they cannot be datagrams) before membership traffic
/// before application messages, large ones last.
fn priority(lane: Lane) -> i32 {
    match lane {
        Lane::Heartbeat => 3,
        Lane::Membership => 2,
        Lane::App => 1,
        Lane::LargeApp => 0,
    }
}

/// Frames written in one call: enough to amortise the per-write cost, few enough that one
/// batch never holds a connection's writer for long.
const BATCH: usize = 64;

impl Peer {
    /// Creates the peer and starts its writer and dialer tasks.
    pub(crate) fn start(inner: &Arc<Inner>, addr: SocketAddr) -> Arc<Peer> {
        let cfg = &inner.cfg;
        let peer = Arc::new(Peer {
            addr,
            membership: Queue::new(cfg.membership_queue),
            app: Queue::new(cfg.app_queue),
            large: Queue::new(cfg.large_queue),
            heartbeat: Queue::new(HEARTBEAT_QUEUE),
            link: Mutex::new(None),
            has_link: AtomicBool::new(false),
            link_event: Event::new(),
            wanted: AtomicBool::new(false),
            dial_event: Event::new(),
            waiting: AtomicUsize::new(0),
        });
        for lane in [Lane::Membership, Lane::App, Lane::LargeApp] {
            rt::spawn(write_lane(inner.clone(), peer.clone(), lane));
        }
        rt::spawn(write_heartbeats(inner.clone(), peer.clone()));
        rt::spawn(dial_loop(inner.clone(), peer.clone()));
        peer
    }

    /// The connection in use, if any.
    pub(crate) fn link(&self) -> Option<Link> {
        self.link.lock().unwrap().clone()
    }

    /// Something is waiting to be sent: make sure a connection is (or will be) there.
    pub(crate) fn want(&self) {
        if !self.has_link.load(Ordering::Acquire) && !self.wanted.swap(true, Ordering::AcqRel) {
            self.dial_event.notify(usize::MAX);
        }
    }

    /// Nothing queued and no writer holding a message: no reason to dial.
    fn idle(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
            && [&self.membership, &self.app, &self.large, &self.heartbeat]
                .iter()
                .all(|q| q.rx.is_empty())
    }

    /// Stops the peer's tasks (the transport is closing).
    pub(crate) fn shutdown(&self) {
        for q in [&self.membership, &self.app, &self.large, &self.heartbeat] {
            q.tx.close();
        }
        self.link_event.notify(usize::MAX);
        self.dial_event.notify(usize::MAX);
    }

    /// A hello arrived on `new`: use it unless the connection in use should be kept (see the
    /// module docs); close the one not kept.
    pub(crate) fn adopt(&self, inner: &Inner, new: Link) {
        let mut cur = self.link.lock().unwrap();
        let keep_new = match cur.as_ref() {
            None => true,
            Some(old) if old.conn.stable_id() == new.conn.stable_id() => return,
            Some(old) if old.conn.close_reason().is_some() => true,
            // The peer restarted: its old connection is dead even if QUIC has not noticed.
            Some(old) if old.instance != new.instance => true,
            Some(old) => {
                let preferred = inner.me.min(self.addr);
                !(old.dialer == preferred && new.dialer != preferred)
            }
        };
        let loser = if keep_new {
            cur.replace(new)
        } else {
            Some(new)
        };
        self.has_link.store(cur.is_some(), Ordering::Release);
        drop(cur);
        if let Some(l) = loser {
            if l.conn.close_reason().is_none() {
                bump(&inner.counters.duplicates_closed);
                l.conn.close(
                    VarInt::from_u32(close_code::DUPLICATE),
                    b"duplicate connection",
                );
            }
        }
        self.link_event.notify(usize::MAX);
    }

    /// `conn` has closed: forget it if it was the one in use, and redial if something waits.
    pub(crate) fn lost(&self, conn: &Connection) {
        let mut cur = self.link.lock().unwrap();
        if cur
            .as_ref()
            .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
        {
            *cur = None;
            self.has_link.store(false, Ordering::Release);
            drop(cur);
            if !self.idle() {
                self.wanted.store(true, Ordering::Release);
            }
            self.link_event.notify(usize::MAX);
            self.dial_event.notify(usize::MAX);
        }
    }

    /// Waits for a usable connection; `None` once the transport closes.
    async fn wait_link(&self, inner: &Inner) -> Option<Link> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let link = self.wait_link_counted(inner).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        link
    }

    async fn wait_link_counted(&self, inner: &Inner) -> Option<Link> {
        loop {
            if inner.is_closing() {
                return None;
            }
            let listener = self.link_event.listen();
            if let Some(l) = self.link() {
                if l.conn.close_reason().is_none() {
                    return Some(l);
                }
            }
            self.want();
            listener.await;
        }
    }
}

/// Heartbeats held while there is no connection: a few, since stale ones are worthless.
const HEARTBEAT_QUEUE: usize = 8;

/// Opens a stream of `lane` on `conn` and writes its header.
async fn open(conn: &Connection, lane: Lane) -> Option<SendStream> {
    let mut s = conn.open_uni().await.ok()?;
    let _ = s.set_priority(priority(lane));
    s.write_all(&stream_header(lane)).await.ok()?;
    Some(s)
}

/// A stream kept open for a lane, reopened when the connection changes.
struct LaneStream {
    lane: Lane,
    open: Option<(usize, SendStream)>,
}

impl LaneStream {
    /// Writes `frames` on the lane's stream over `link`. On failure the frames are lost (as
    /// on any broken connection) and the stream is reopened for the next batch.
    async fn write(&mut self, link: &Link, frames: &mut [Bytes]) {
        let id = link.conn.stable_id();
        if self.open.as_ref().map(|o| o.0) != Some(id) {
            self.open = open(&link.conn, self.lane).await.map(|s| (id, s));
        }
        if let Some((_, s)) = self.open.as_mut() {
            if s.write_all_chunks(frames).await.is_err() {
                self.open = None;
            }
        }
    }
}

async fn write_lane(inner: Arc<Inner>, peer: Arc<Peer>, lane: Lane) {
    let rx = match lane {
        Lane::Membership => peer.membership.rx.clone(),
        Lane::App => peer.app.rx.clone(),
        _ => peer.large.rx.clone(),
    };
    let mut stream = LaneStream { lane, open: None };
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv().await {
        batch.push(first);
        let Some(link) = peer.wait_link(&inner).await else {
            return;
        };
        if lane == Lane::LargeApp {
            // A stream of its own, finished after the message.
            if let Some(mut s) = open(&link.conn, lane).await {
                if s.write_all_chunks(&mut batch).await.is_ok() {
                    let _ = s.finish();
                }
            }
        } else {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(b) => batch.push(b),
                    Err(_) => break,
                }
            }
            stream.write(&link, &mut batch).await;
        }
        batch.clear();
    }
}

/// Sends queued heartbeats once a connection exists: as datagrams, or on the heartbeat
/// stream when the peer cannot take datagrams.
async fn write_heartbeats(inner: Arc<Inner>, peer: Arc<Peer>) {
    let rx = peer.heartbeat.rx.clone();
    let mut stream = LaneStream {
        lane: Lane::Heartbeat,
        open: None,
    };
    while let Ok(bytes) = rx.recv().await {
        let Some(link) = peer.wait_link(&inner).await else {
            return;
        };
        let frame = Frame::Core {
            class: CoreClass::Heartbeat,
            bytes,
        };
        if !send_datagram(&link.conn, &frame) {
            let mut framed = Vec::with_capacity(frame.body_len() + 4);
            frame.encode_framed(&mut framed);
            stream.write(&link, &mut [Bytes::from(framed)]).await;
        }
    }
}

/// Sends `frame` as a datagram if the peer takes datagrams of its size.
pub(crate) fn send_datagram(conn: &Connection, frame: &Frame) -> bool {
    let dg = frame.encode_datagram();
    conn.max_datagram_size().is_some_and(|max| dg.len() <= max)
        && conn.send_datagram(Bytes::from(dg)).is_ok()
}

/// Dials the peer whenever there is no connection and something waits to be sent, with
/// exponential backoff between failed attempts.
async fn dial_loop(inner: Arc<Inner>, peer: Arc<Peer>) {
    let mut backoff = inner.cfg.reconnect_min;
    loop {
        loop {
            if inner.is_closing() {
                return;
            }
            let listener = peer.dial_event.listen();
            if peer.link().is_none() && peer.wanted.swap(false, Ordering::AcqRel) {
                break;
            }
            listener.await;
        }
        match inner.dial(peer.addr).await {
            Some(conn) => {
                backoff = inner.cfg.reconnect_min;
                let closed = conn.clone();
                rt::spawn(inner.clone().run_connection(peer.addr, conn, inner.me));
                closed.closed().await;
            }
            None => {
                // Sleep out the backoff, unless the transport closes meanwhile (a task
                // asleep here would keep the endpoint, and its port, for seconds).
                let shutdown = inner.shutdown.listen();
                if inner.is_closing() {
                    return;
                }
                futures_lite::future::or(rt::sleep(backoff), shutdown).await;
                backoff = (backoff * 2).min(inner.cfg.reconnect_max);
                if !peer.idle() {
                    peer.wanted.store(true, Ordering::Release);
                }
            }
        }
    }
}
