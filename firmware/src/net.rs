//! An in-memory network between the nodes of one firmware: every datagram arrives after a
//! fixed latency, in the order sent; datagrams to a stopped node are lost.

use core::time::Duration;
use fjell_core::{DeviceNode, Instant};

/// The largest datagram a `DeviceNode` sends or accepts.
pub const MTU: usize = DeviceNode::MAX_MESSAGE_LEN;

/// Datagrams in flight at most; more is a test failure, not a silent drop.
pub const IN_FLIGHT: usize = 128;

/// One datagram on its way.
pub struct Datagram {
    /// When it arrives.
    pub at: Instant,
    /// Index of the sending node.
    pub from: usize,
    /// Index of the receiving node.
    pub to: usize,
    /// Its bytes.
    pub bytes: heapless::Vec<u8, MTU>,
}

/// The network was full: a datagram could not be queued.
#[derive(Debug)]
pub struct Full;

/// Datagrams in flight, oldest first.
pub struct Network {
    latency: Duration,
    queue: heapless::Deque<Datagram, IN_FLIGHT>,
    /// Datagrams sent so far.
    pub sent: u32,
    /// Bytes sent so far.
    pub bytes: u64,
}

impl Network {
    /// An empty network with this one-way latency.
    pub const fn new(latency: Duration) -> Self {
        Network {
            latency,
            queue: heapless::Deque::new(),
            sent: 0,
            bytes: 0,
        }
    }

    /// Queues `bytes` from node `from` to node `to`, sent at `now`.
    pub fn send(&mut self, now: Instant, from: usize, to: usize, bytes: &[u8]) -> Result<(), Full> {
        let len = bytes.len() as u64;
        let d = Datagram {
            at: now + self.latency,
            from,
            to,
            bytes: heapless::Vec::from_slice(bytes).map_err(|_| Full)?,
        };
        self.queue.push_back(d).map_err(|_| Full)?;
        self.sent += 1;
        self.bytes += len;
        Ok(())
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.front().map(|d| d.at)
    }

    /// The next datagram that has arrived by `now`.
    pub fn receive(&mut self, now: Instant) -> Option<Datagram> {
        if self.next_arrival()? <= now {
            self.queue.pop_front()
        } else {
            None
        }
    }
}
