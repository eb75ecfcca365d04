//! One remote node: its outgoing lanes (bounded queues; the transport runs a writer task
//! for each and one that dials the peer when needed) and the single connection in use. A
//! small application message that finds its lane idle skips the queue and the writer: the
//! sender writes it into the stream itself ([`AppLane`]).
//!
//! At most one connection per pair of nodes is used. Both nodes may dial at once; each side
//! then sees two connections and keeps the same one: the connection dialed by the lower
//! advertised address. A connection from a new endpoint instance of the peer (its hello says
//! so) always wins, because the old one belongs to a process that has restarted. The other
//! connection is retired: nothing new is written to it, and it is closed with
//! [`close_code::DUPLICATE`] after [`DUPLICATE_GRACE`], so that what either side wrote to it
//! in the moment both existed still arrives (both sides keep reading it). Closing it at once
//! lost such messages: the first message between two nodes often opens both connections,
//! as when two nodes publish to each other as soon as they know of each other. A connection
//! of a restarted instance is closed at once: nobody reads it any more.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use event_listener::Event;
use quinn::{Connection, SendStream, VarInt};

use crate::close_code;
use crate::config::TransportConfig;
use crate::counters::bump;
use crate::frame::{stream_header, Frame, Lane};

/// How long a duplicate connection stays open after it is retired, for what was written to it
/// before both sides chose the other one: far longer than a round trip.
pub(crate) const DUPLICATE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection that lost to another one for the same peer, for the caller to close: at once
/// (`graceful` false: the peer's process restarted) or after [`DUPLICATE_GRACE`].
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) conn: Connection,
    pub(crate) graceful: bool,
}

impl Retired {
    /// Closes the connection as a duplicate.
    pub(crate) fn close(&self) {
        self.conn.close(
            VarInt::from_u32(close_code::DUPLICATE),
            b"duplicate connection",
        );
    }
}

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
    pub(crate) rx: Receiver<Bytes>,
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
    /// The application lane's stream, shared by its writer and idle-lane senders.
    pub(crate) app_lane: AppLane,
    pub(crate) large: Queue,
    /// Raw core heartbeat bytes waiting for a connection (or for a peer without datagrams).
    pub(crate) heartbeat: Queue,
    link: Mutex<Option<Link>>,
    has_link: AtomicBool,
    /// Notified when a link is adopted or lost (writers wait on it).
    link_event: Event,
    /// Set by senders; the dialer dials when it is set and there is no link.
    pub(crate) wanted: AtomicBool,
    /// Notified when a link is wanted or lost (the dialer waits on it).
    pub(crate) dial_event: Event,
    /// Writers holding a message while they wait for a link.
    waiting: AtomicUsize,
    /// Set (and notified) when the membership writer has ended: what was queued for this
    /// peer before its queue closed has been delivered, or could not be.
    membership_done: AtomicBool,
    membership_event: Event,
    /// Which of the peer's application streams may deliver; held while a frame is handed to
    /// the application, so two streams never interleave.
    pub(crate) app_order: Arc<async_lock::Mutex<AppOrder>>,
}

/// The order in which a peer's application streams may deliver (see [`Frame::AppStream`]):
/// each connection carries a stream with a higher number than the last, and once a stream
/// has delivered, the frames still left on older ones are dropped rather than delivered out
/// of order.
#[derive(Debug, Default)]
pub(crate) struct AppOrder {
    current: Option<(u64, u64)>,
    /// Instances that delivered before the current one: a restarted peer's old process.
    /// What is left on their streams is dropped too, so the two processes' messages never
    /// interleave. A few suffice: each restart retires one, and their streams end with
    /// their connections.
    retired: [Option<u64>; RETIRED],
    next_retired: usize,
}

const RETIRED: usize = 4;

impl AppOrder {
    /// Whether a frame of the stream `number` of the peer's endpoint `instance` may be
    /// delivered: not once a later stream of the same instance has delivered, and not
    /// once another instance (the peer restarted) has delivered after this one.
    pub(crate) fn admit(&mut self, instance: u64, number: u64) -> bool {
        if self.retired.contains(&Some(instance)) {
            return false;
        }
        match self.current {
            Some((i, n)) if i == instance && n > number => false,
            Some((i, _)) if i != instance => {
                self.retired[self.next_retired] = Some(i);
                self.next_retired = (self.next_retired + 1) % RETIRED;
                self.current = Some((instance, number));
                true
            }
            _ => {
                self.current = Some((instance, number));
                true
            }
        }
    }
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
pub(crate) const BATCH: usize = 64;

impl Peer {
    /// A peer with empty queues and no connection; the transport starts its tasks.
    /// `instance` is this endpoint's (it numbers the application streams).
    pub(crate) fn new(addr: SocketAddr, cfg: &TransportConfig, instance: u64) -> Peer {
        Peer {
            addr,
            membership: Queue::new(cfg.membership_queue),
            app: Queue::new(cfg.app_queue),
            app_lane: AppLane::new(instance),
            large: Queue::new(cfg.large_queue),
            heartbeat: Queue::new(HEARTBEAT_QUEUE),
            link: Mutex::new(None),
            has_link: AtomicBool::new(false),
            link_event: Event::new(),
            wanted: AtomicBool::new(false),
            dial_event: Event::new(),
            waiting: AtomicUsize::new(0),
            membership_done: AtomicBool::new(false),
            membership_event: Event::new(),
            app_order: Arc::new(async_lock::Mutex::new(AppOrder::default())),
        }
    }

    /// Marks the membership writer ended (see [`Peer::membership_flushed`]).
    pub(crate) fn membership_ended(&self) {
        self.membership_done.store(true, Ordering::Release);
        self.membership_event.notify(usize::MAX);
    }

    /// Completes once the membership writer has ended: after [`Queue::close`] on the
    /// membership queue, once everything queued before has been written and read by the
    /// peer (or the connection failed).
    pub(crate) async fn membership_flushed(&self) {
        loop {
            if self.membership_done.load(Ordering::Acquire) {
                return;
            }
            let listener = self.membership_event.listen();
            if self.membership_done.load(Ordering::Acquire) {
                return;
            }
            listener.await;
        }
    }

    /// The connection in use, if any.
    pub(crate) fn link(&self) -> Option<Link> {
        self.link.lock().unwrap().clone()
    }

    /// The connection in use if there is one and it is open.
    pub(crate) fn open_link(&self) -> Option<Link> {
        if !self.has_link.load(Ordering::Acquire) {
            return None;
        }
        self.link().filter(|l| l.conn.close_reason().is_none())
    }

    /// Something is waiting to be sent: make sure a connection is (or will be) there.
    pub(crate) fn want(&self) {
        if !self.has_link.load(Ordering::Acquire) && !self.wanted.swap(true, Ordering::AcqRel) {
            self.dial_event.notify(usize::MAX);
        }
    }

    /// Nothing queued and no writer holding a message: no reason to dial.
    pub(crate) fn idle(&self) -> bool {
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
        self.app_lane.work.notify(usize::MAX);
        self.link_event.notify(usize::MAX);
        self.dial_event.notify(usize::MAX);
    }

    /// A hello arrived on `new`: use it unless the connection in use should be kept (see the
    /// module docs). Returns the one not kept, if it is still open, for the caller to close
    /// (counted in `duplicates_closed`). `me` is this node's address.
    #[must_use]
    pub(crate) fn adopt(
        &self,
        me: SocketAddr,
        duplicates_closed: &AtomicU64,
        new: Link,
    ) -> Option<Retired> {
        let mut cur = self.link.lock().unwrap();
        let mut graceful = true;
        let keep_new = match cur.as_ref() {
            None => true,
            Some(old) if old.conn.stable_id() == new.conn.stable_id() => return None,
            Some(old) if old.conn.close_reason().is_some() => true,
            // The peer restarted: its old connection is dead even if QUIC has not noticed.
            Some(old) if old.instance != new.instance => {
                graceful = false;
                true
            }
            Some(old) => {
                let preferred = me.min(self.addr);
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
        self.link_event.notify(usize::MAX);
        let l = loser.filter(|l| l.conn.close_reason().is_none())?;
        bump(duplicates_closed);
        Some(Retired {
            conn: l.conn,
            graceful,
        })
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

    /// Waits for a usable connection; `None` once `closing` is set (the transport closes;
    /// [`Peer::shutdown`] wakes the waiters).
    pub(crate) async fn wait_link(&self, closing: &AtomicBool) -> Option<Link> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let link = self.wait_link_counted(closing).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        link
    }

    async fn wait_link_counted(&self, closing: &AtomicBool) -> Option<Link> {
        loop {
            if closing.load(Ordering::Acquire) {
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
pub(crate) async fn open(conn: &Connection, lane: Lane) -> Option<SendStream> {
    let mut s = conn.open_uni().await.ok()?;
    let _ = s.set_priority(priority(lane));
    s.write_all(&stream_header(lane)).await.ok()?;
    Some(s)
}

/// A stream kept open for a lane, reopened when the connection changes.
pub(crate) struct LaneStream {
    lane: Lane,
    open: Option<(usize, SendStream)>,
    /// This endpoint's instance and the number of the next application stream (see
    /// [`Frame::AppStream`]).
    instance: u64,
    next_number: u64,
}

impl LaneStream {
    /// A lane's stream, opened on first write; `instance` is this endpoint's.
    pub(crate) fn new(lane: Lane, instance: u64) -> Self {
        LaneStream {
            lane,
            open: None,
            instance,
            next_number: 0,
        }
    }

    /// Opens the lane's stream on `conn`; an application stream starts with its number.
    async fn open(&mut self, conn: &Connection) -> Option<SendStream> {
        let mut s = open(conn, self.lane).await?;
        if self.lane == Lane::App {
            let mut framed = Vec::with_capacity(32);
            Frame::AppStream {
                instance: self.instance,
                number: self.next_number,
            }
            .encode_framed(&mut framed);
            self.next_number += 1;
            s.write_all(&framed).await.ok()?;
        }
        Some(s)
    }

    /// Writes `frames` on the lane's stream over `link`. On failure the frames are lost (as
    /// on any broken connection) and the stream is reopened for the next batch.
    pub(crate) async fn write(&mut self, link: &Link, frames: &mut [Bytes]) {
        let id = link.conn.stable_id();
        if self.open.as_ref().map(|o| o.0) != Some(id) {
            self.open = self.open(&link.conn).await.map(|s| (id, s));
        }
        if let Some((_, s)) = self.open.as_mut() {
            if s.write_all_chunks(frames).await.is_err() {
                self.open = None;
            }
        }
    }

    /// The connection the lane's stream is open on, if it is.
    pub(crate) fn open_on(&self) -> Option<usize> {
        self.open.as_ref().map(|o| o.0)
    }

    /// Writes as much of `frame` as the stream takes without waiting, if the stream is open
    /// on the connection `conn` (its stable id).
    fn write_now(&mut self, conn: usize, frame: Bytes) -> Now {
        let Some((id, s)) = self.open.as_mut() else {
            return Now::Not(frame);
        };
        if *id != conn {
            return Now::Not(frame);
        }
        let mut bufs = [frame];
        // `write_chunks` is cancel-safe: when it is not ready, nothing was written. No task
        // waits for this write, hence the waker that does nothing.
        let polled = pin!(s.write_chunks(&mut bufs))
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        let [frame] = bufs;
        match polled {
            Poll::Ready(Ok(_)) if frame.is_empty() => Now::Written,
            Poll::Ready(Ok(_)) => Now::Partly(frame),
            Poll::Ready(Err(_)) => {
                // Broken: the writer reopens it (or the connection is gone, and the frame
                // with it).
                self.open = None;
                Now::Not(frame)
            }
            Poll::Pending => Now::Not(frame),
        }
    }

    /// Ends the lane's stream and waits until the peer has read all of it (or the
    /// connection is gone): what was written is then delivered, not just buffered.
    pub(crate) async fn finish(&mut self) {
        if let Some((_, mut s)) = self.open.take() {
            if s.finish().is_ok() {
                let _ = s.stopped().await;
            }
        }
    }
}

/// What [`LaneStream::write_now`] did with a frame.
enum Now {
    Written,
    /// The start went into the stream; the rest must follow before anything else.
    Partly(Bytes),
    /// Nothing was written.
    Not(Bytes),
}

/// The application lane's stream, shared between the lane's writer task and senders: a
/// sender that finds the lane idle (nothing queued, the writer not writing) writes its frame
/// into the stream itself. Each small message then goes from the sender to QUIC without the
/// writer's wake-up in between, which was a good part of a request's latency.
///
/// Order is kept because the writer takes the stream before it takes frames from the queue,
/// and puts it back only once they are written: a sender finds it only when everything
/// queued before is in the stream.
pub(crate) struct AppLane {
    state: Mutex<AppLaneState>,
    /// Notified when frames are queued or a frame's tail is left (the writer waits on it).
    pub(crate) work: Event,
}

struct AppLaneState {
    /// `None` while the writer has taken it.
    stream: Option<LaneStream>,
    /// The rest of a frame a sender could only partly write, and the connection it is on:
    /// written before anything else.
    tail: Option<(usize, Bytes)>,
}

impl AppLane {
    fn new(instance: u64) -> Self {
        AppLane {
            state: Mutex::new(AppLaneState {
                stream: Some(LaneStream::new(Lane::App, instance)),
                tail: None,
            }),
            work: Event::new(),
        }
    }

    /// Writes `frame` on `conn` now if the lane is idle (its writer notified for whatever
    /// part the stream could not take); gives it back otherwise, for the queue.
    pub(crate) fn try_write(
        &self,
        queue: &Queue,
        conn: &Connection,
        frame: Bytes,
    ) -> Result<(), Bytes> {
        let mut st = self.state.lock().unwrap();
        if st.tail.is_some() || !queue.rx.is_empty() {
            return Err(frame);
        }
        let Some(stream) = st.stream.as_mut() else {
            return Err(frame);
        };
        let id = conn.stable_id();
        match stream.write_now(id, frame) {
            Now::Written => Ok(()),
            Now::Partly(rest) => {
                st.tail = Some((id, rest));
                drop(st);
                self.work.notify(1);
                Ok(())
            }
            Now::Not(frame) => Err(frame),
        }
    }

    /// Whether a frame's tail waits to be written.
    pub(crate) fn has_tail(&self) -> bool {
        self.state.lock().unwrap().tail.is_some()
    }

    /// Takes the stream (senders queue until [`AppLane::put_back`]) and the tail left by a
    /// sender, if any.
    pub(crate) fn take(&self) -> (LaneStream, Option<(usize, Bytes)>) {
        let mut st = self.state.lock().unwrap();
        let stream = st.stream.take().expect("one writer per lane");
        (stream, st.tail.take())
    }

    /// Returns the stream taken with [`AppLane::take`].
    pub(crate) fn put_back(&self, stream: LaneStream) {
        self.state.lock().unwrap().stream = Some(stream);
    }
}

/// Sends `frame` as a datagram if the peer takes datagrams of its size.
pub(crate) fn send_datagram(conn: &Connection, frame: &Frame) -> bool {
    let dg = frame.encode_datagram();
    conn.max_datagram_size().is_some_and(|max| dg.len() <= max)
        && conn.send_datagram(Bytes::from(dg)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::AppOrder;

    #[test]
    fn an_older_application_stream_never_delivers_after_a_newer_one() {
        let mut o = AppOrder::default();
        assert!(o.admit(7, 0));
        assert!(o.admit(7, 0));
        assert!(o.admit(7, 2)); // a connection whose stream 1 never arrived
        assert!(!o.admit(7, 1), "stream 1 after stream 2");
        assert!(!o.admit(7, 0));
        assert!(o.admit(7, 2));
        // The peer restarted: a new instance numbers from 0, and what is left of the old
        // process's streams is dropped from then on.
        assert!(o.admit(9, 0));
        assert!(o.admit(9, 1));
        assert!(!o.admit(7, 2));
        assert!(!o.admit(7, 3));
        assert!(o.admit(9, 1));
    }
}
