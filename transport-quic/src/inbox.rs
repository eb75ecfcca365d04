//! The queue received application messages wait in for [`Transport::recv`]: bounded, with
//! any number of readers, filled a batch at a time. A stream reader hands over everything one
//! read produced under one lock and wakes a reader once, instead of paying a channel send and
//! a wake-up for each message.
//!
//! [`Transport::recv`]: crate::Transport::recv

use std::collections::VecDeque;
use std::sync::Mutex;

use event_listener::Event;

pub(crate) struct Inbox<T> {
    state: Mutex<State<T>>,
    cap: usize,
    /// Notified when items arrive or the inbox closes.
    readable: Event,
    /// Notified when the inbox has drained to half its capacity, or closes.
    writable: Event,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Tasks waiting on `readable` and on `writable`: an event is notified only when someone
    /// waits (notifying takes the event's own lock, which cost more than the queue itself).
    readers: usize,
    writers: usize,
}

/// Counts a task as waiting while it lives (however the wait ends, cancellation included).
struct Waiting<'a, T> {
    inbox: &'a Inbox<T>,
    writer: bool,
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        let mut s = self.inbox.state.lock().unwrap();
        if self.writer {
            s.writers -= 1;
        } else {
            s.readers -= 1;
        }
    }
}

impl<T> Inbox<T> {
    /// An empty inbox holding at most `cap` items (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Inbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                readers: 0,
                writers: 0,
            }),
            cap: cap.max(1),
            readable: Event::new(),
            writable: Event::new(),
        }
    }

    /// Moves every item of `batch` in, in order, waiting for room as needed. False once the
    /// inbox is closed (what was not moved in is dropped).
    pub(crate) async fn push_all(&self, batch: &mut Vec<T>) -> bool {
        let mut waiting = None;
        loop {
            let (listener, wake) = {
                let mut s = self.state.lock().unwrap();
                if s.closed {
                    batch.clear();
                    return false;
                }
                let n = self.cap.saturating_sub(s.items.len()).min(batch.len());
                s.items.extend(batch.drain(..n));
                let wake = if n > 0 { s.readers.min(n) } else { 0 };
                if batch.is_empty() {
                    drop(s);
                    if wake > 0 {
                        self.readable.notify(wake);
                    }
                    return true;
                }
                if waiting.is_none() {
                    s.writers += 1;
                    waiting = Some(Waiting {
                        inbox: self,
                        writer: true,
                    });
                }
                // Registered under the lock, before the next pop can look: no wake-up is
                // missed.
                (self.writable.listen(), wake)
            };
            if wake > 0 {
                self.readable.notify(wake);
            }
            listener.await;
        }
    }

    /// The next item if one is waiting.
    pub(crate) fn try_pop(&self) -> Option<T> {
        let mut s = self.state.lock().unwrap();
        let item = s.items.pop_front()?;
        self.popped(s);
        Some(item)
    }

    /// Moves up to `max` waiting items into `into`; how many.
    pub(crate) fn try_pop_many(&self, into: &mut Vec<T>, max: usize) -> usize {
        let mut s = self.state.lock().unwrap();
        let n = max.min(s.items.len());
        if n > 0 {
            into.extend(s.items.drain(..n));
            self.popped(s);
        }
        n
    }

    /// Wakes whom the items just taken (under `s`) concern.
    fn popped(&self, s: std::sync::MutexGuard<'_, State<T>>) {
        let left = s.items.len();
        // Another reader may be waiting while this one stops reading; a writer is woken only
        // once there is room for a good batch, not for every item.
        let (reader, writer) = (
            left > 0 && s.readers > 0,
            left <= self.cap / 2 && s.writers > 0,
        );
        drop(s);
        if reader {
            self.readable.notify(1);
        }
        if writer {
            self.writable.notify(1);
        }
    }

    /// The next item; `None` once the inbox is closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        if let Some(item) = self.try_pop() {
            return Some(item);
        }
        let mut item = None;
        self.wait_for(|| {
            item = self.try_pop();
            item.is_some()
        })
        .await;
        item
    }

    /// Waits for items and moves up to `max` (at least one) into `into`; how many, 0 once
    /// the inbox is closed and empty.
    pub(crate) async fn pop_many(&self, into: &mut Vec<T>, max: usize) -> usize {
        let max = max.max(1);
        let n = self.try_pop_many(into, max);
        if n > 0 {
            return n;
        }
        let mut n = 0;
        self.wait_for(|| {
            n = self.try_pop_many(into, max);
            n > 0
        })
        .await;
        n
    }

    /// Waits until `take` succeeds (it is tried whenever items are there) or the inbox is
    /// closed and empty.
    async fn wait_for(&self, mut take: impl FnMut() -> bool) {
        let mut waiting = None;
        loop {
            let listener = {
                let mut s = self.state.lock().unwrap();
                if !s.items.is_empty() {
                    drop(s);
                    if take() {
                        return;
                    }
                    continue;
                }
                if s.closed {
                    return;
                }
                if waiting.is_none() {
                    s.readers += 1;
                    waiting = Some(Waiting {
                        inbox: self,
                        writer: false,
                    });
                }
                // Registered under the lock, before the next push can look.
                self.readable.listen()
            };
            listener.await;
        }
    }

    /// Refuses further items and wakes everyone waiting; what is queued can still be read.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.readable.notify(usize::MAX);
        self.writable.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::Inbox;
    use std::sync::Arc;

    #[test]
    fn a_batch_larger_than_the_inbox_arrives_whole_and_in_order() {
        let inbox = Arc::new(Inbox::new(4));
        let writer = inbox.clone();
        let t = std::thread::spawn(move || {
            futures_lite::future::block_on(async {
                let mut batch: Vec<u32> = (0..10).collect();
                assert!(writer.push_all(&mut batch).await);
                let mut more = vec![10, 11];
                assert!(writer.push_all(&mut more).await);
            })
        });
        let got: Vec<u32> = futures_lite::future::block_on(async {
            let mut got = Vec::new();
            while got.len() < 12 {
                got.push(inbox.pop().await.unwrap());
            }
            got
        });
        t.join().unwrap();
        assert_eq!(got, (0..12).collect::<Vec<_>>());
        assert_eq!(inbox.try_pop(), None);
    }

    #[test]
    fn many_are_taken_at_once_up_to_the_limit() {
        let inbox = Inbox::new(8);
        futures_lite::future::block_on(async {
            assert!(inbox.push_all(&mut (0..5).collect()).await);
            let mut got = vec![];
            assert_eq!(inbox.pop_many(&mut got, 3).await, 3);
            assert_eq!(inbox.pop_many(&mut got, 0).await, 1, "at least one");
            assert_eq!(inbox.pop_many(&mut got, 9).await, 1);
            assert_eq!(got, [0, 1, 2, 3, 4]);
            inbox.close();
            assert_eq!(inbox.pop_many(&mut got, 9).await, 0);
        });
    }

    #[test]
    fn closing_refuses_writers_and_lets_readers_drain() {
        let inbox = Inbox::new(2);
        futures_lite::future::block_on(async {
            assert!(inbox.push_all(&mut vec![1, 2]).await);
            inbox.close();
            assert!(!inbox.push_all(&mut vec![3]).await);
            assert_eq!(inbox.pop().await, Some(1));
            assert_eq!(inbox.pop().await, Some(2));
            assert_eq!(inbox.pop().await, None);
        });
    }
}
