//! The node's timers: one deadline per [`Timer`], and the extra gossip rounds of a speed-up.

use crate::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The regular gossip round (`gossip-interval`).
    Gossip = 0,
    /// An extra gossip round while the state spreads (see [`TimerTable::start_speed_up`]).
    SpeedUp = 1,
    /// Leader actions, the downing strategy's clock and the node's own departure.
    Leader = 2,
    /// The next heartbeat request or monitor update.
    Heartbeat = 3,
    /// Writing the failure detectors' verdicts into the reachability table.
    Reaper = 4,
    /// The leader's actions on a state that converged since its last tick (see
    /// `Node::act_if_converged`): due at once, but an input of its own.
    Actions = 5,
}

const TIMERS: usize = 6;

/// Extra gossip rounds after the state changed and too few have seen it: with the regular
/// round, three per gossip interval.
const SPEED_UP_ROUNDS: u8 = 2;

/// The deadline of each [`Timer`], if armed, and the speed-up rounds left. Kept as bare
/// instants and a bit mask (48 bytes rather than 80 for `[Option<Instant>; TIMERS]`): the
/// device preset lives within 16 KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimerTable {
    at: [Instant; TIMERS],
    armed: u8,
    speed_up_left: u8,
}

impl TimerTable {
    /// No timer armed.
    pub(crate) const NONE: TimerTable = TimerTable {
        at: [Instant::ZERO; TIMERS],
        armed: 0,
        speed_up_left: 0,
    };

    /// The deadline of `t`, if armed.
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        (self.armed & (1 << t as u8) != 0).then_some(self.at[t as usize])
    }

    /// Arms `t` for `at` (replacing any earlier deadline).
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.at[t as usize] = at;
        self.armed |= 1 << t as u8;
    }

    /// Disarms `t`.
    pub(crate) fn stop(&mut self, t: Timer) {
        self.armed &= !(1 << t as u8);
    }

    /// Whether `t` is armed and due at `now`.
    pub(crate) fn expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|d| d <= now)
    }

    /// The earliest armed deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        (0..TIMERS)
            .filter(|i| self.armed & (1 << i) != 0)
            .map(|i| self.at[i])
            .min()
    }

    /// Starts the extra gossip rounds, the first at `at`.
    pub(crate) fn start_speed_up(&mut self, at: Instant) {
        self.speed_up_left = SPEED_UP_ROUNDS;
        self.set(Timer::SpeedUp, at);
    }

    /// An extra gossip round ran: arms the next for `next` if any are left.
    pub(crate) fn speed_up_ran(&mut self, next: Instant) {
        self.speed_up_left = self.speed_up_left.saturating_sub(1);
        if self.speed_up_left > 0 {
            self.set(Timer::SpeedUp, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_stop_expired_and_the_next_timeout() {
        let mut t = TimerTable::NONE;
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Leader, Instant::from_millis(300));
        t.set(Timer::Gossip, Instant::from_millis(200));
        assert_eq!(t.next_timeout(), Some(Instant::from_millis(200)));
        assert!(t.expired(Timer::Gossip, Instant::from_millis(200)));
        assert!(!t.expired(Timer::Leader, Instant::from_millis(200)));
        assert!(!t.expired(Timer::Reaper, Instant::from_millis(900)));
        t.stop(Timer::Gossip);
        assert_eq!(t.get(Timer::Gossip), None);
        assert_eq!(t.next_timeout(), Some(Instant::from_millis(300)));
    }

    #[test]
    fn a_speed_up_runs_its_rounds_then_stops() {
        let mut t = TimerTable::NONE;
        t.start_speed_up(Instant::from_millis(1));
        for round in 1..=SPEED_UP_ROUNDS {
            assert!(t.expired(Timer::SpeedUp, Instant::from_millis(round.into())));
            t.stop(Timer::SpeedUp);
            t.speed_up_ran(Instant::from_millis(u64::from(round) + 1));
        }
        assert_eq!(t.get(Timer::SpeedUp), None);
    }
}
