//! Per-link impairment rules, the decision the hub makes for each packet, and the
//! detection of the kernel's own impairment facility (`tc netem`).

use std::fmt;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use super::netns;

/// What the network does to packets on one directed link (`from` → `to`).
///
/// The default is a perfect link: not blocked, no delay, no loss, no reordering.
/// Probabilities outside `0.0..=1.0` are clamped when used; NaN counts as `0.0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkRule {
    /// Drop every packet on the link.
    pub blocked: bool,
    /// Base one-way delay added to every packet.
    pub delay: Duration,
    /// Each packet's delay is `delay` plus a uniform offset in `-jitter..=+jitter`,
    /// never below zero. Packets with different delays can overtake each other.
    pub jitter: Duration,
    /// Probability that a packet is dropped.
    pub loss: f64,
    /// Probability that a packet skips the delay and is sent at once, overtaking
    /// packets still waiting (the semantics of netem's `reorder`). No effect when the
    /// packet would not have been delayed.
    pub reorder: f64,
}

impl LinkRule {
    /// A rule that drops everything.
    pub fn blocked() -> LinkRule {
        LinkRule {
            blocked: true,
            ..LinkRule::default()
        }
    }

    /// A rule that only delays, by exactly `delay`.
    pub fn delayed(delay: Duration) -> LinkRule {
        LinkRule {
            delay,
            ..LinkRule::default()
        }
    }

    /// A rule that only loses packets, each with probability `loss`.
    pub fn lossy(loss: f64) -> LinkRule {
        LinkRule {
            loss,
            ..LinkRule::default()
        }
    }
}

/// Counters of one directed link, as seen by the hub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets written to the destination's TUN device (after any delay).
    pub forwarded: u64,
    /// Packets dropped because the link was blocked.
    pub dropped_blocked: u64,
    /// Packets dropped by random loss.
    pub dropped_loss: u64,
    /// Packets sent at once instead of being delayed (the `reorder` probability hit).
    pub reordered: u64,
    /// Packets queued with a delay above zero.
    pub delayed: u64,
    /// Packets dropped because the hub's pending queue was full.
    pub dropped_overflow: u64,
}

impl LinkCounters {
    /// Every packet the hub took off the wire for this link and did not forward
    /// (packets still queued are neither forwarded nor dropped).
    pub fn dropped(&self) -> u64 {
        self.dropped_blocked + self.dropped_loss + self.dropped_overflow
    }

    fn add(&mut self, other: &LinkCounters) {
        self.forwarded += other.forwarded;
        self.dropped_blocked += other.dropped_blocked;
        self.dropped_loss += other.dropped_loss;
        self.reordered += other.reordered;
        self.delayed += other.delayed;
        self.dropped_overflow += other.dropped_overflow;
    }
}

/// A snapshot of the hub's counters: one [`LinkCounters`] per directed link plus
/// counters of packets that belong to no link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub(crate) nodes: usize,
    pub(crate) links: Vec<LinkCounters>,
    /// Packets whose destination is no node of the network (for example IPv6
    /// multicast the kernel sends on its own) or is the sender itself.
    pub unknown_dest: u64,
    /// Packets too short for their IP header or of an IP version other than 4 and 6.
    pub malformed: u64,
    /// Packets dropped because the pending queue was full (sum over all links).
    pub overflow: u64,
    /// Writes to a TUN device that failed; the packet is lost.
    pub write_errors: u64,
    /// Reads from a TUN device that failed with something other than "try again".
    pub read_errors: u64,
}

impl LinkStats {
    /// Number of nodes the snapshot covers.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Counters of the directed link `from` → `to`.
    ///
    /// # Panics
    /// If `from` or `to` is not below [`LinkStats::nodes`].
    pub fn link(&self, from: usize, to: usize) -> LinkCounters {
        assert!(
            from < self.nodes && to < self.nodes,
            "node index out of range"
        );
        self.links[from * self.nodes + to]
    }

    /// The sum over every link.
    pub fn total(&self) -> LinkCounters {
        let mut sum = LinkCounters::default();
        for l in &self.links {
            sum.add(l);
        }
        sum
    }
}

/// A small seeded generator (SplitMix64): enough for loss and jitter decisions, and
/// it keeps the harness free of a random-number dependency.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// What happens to one packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    Blocked,
    Lost,
    /// Write at once; `reordered` when the packet skipped a delay.
    Now {
        reordered: bool,
    },
    /// Write after this delay (always above zero).
    Later(Duration),
}

fn probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Applies `rule` to one packet. Every random draw is taken unconditionally once the
/// rule is known, so the per-link sequence of decisions depends only on the seed and
/// the number of packets, not on which branch earlier packets took.
pub(crate) fn decide(rule: &LinkRule, rng: &mut SplitMix64) -> Verdict {
    if rule.blocked {
        return Verdict::Blocked;
    }
    let loss_draw = rng.next_f64();
    let jitter_draw = rng.next_f64();
    let reorder_draw = rng.next_f64();
    if loss_draw < probability(rule.loss) {
        return Verdict::Lost;
    }
    let mut delay = rule.delay;
    if !rule.jitter.is_zero() {
        // Offset in -jitter..=+jitter; clamp at zero rather than going negative.
        let offset = (jitter_draw * 2.0 - 1.0) * rule.jitter.as_secs_f64();
        let secs = (rule.delay.as_secs_f64() + offset).max(0.0);
        delay = Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO);
    }
    if delay.is_zero() {
        return Verdict::Now { reordered: false };
    }
    if reorder_draw < probability(rule.reorder) {
        return Verdict::Now { reordered: true };
    }
    Verdict::Later(delay)
}

/// How faults are injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impairment {
    /// Every packet between nodes passes a userspace hub over TUN devices, which
    /// applies the [`LinkRule`] of its directed link.
    Userspace,
}

impl Impairment {
    /// One line for reports, naming the backend and whether `tc netem` exists on this
    /// kernel (detected once per process with [`netem_available`]).
    pub fn description(&self) -> String {
        let netem = if netem_available() {
            "available but unused (the hub keeps per-directed-link semantics uniform)"
        } else {
            "not available in this kernel"
        };
        match self {
            Impairment::Userspace => format!("userspace (TUN hub); tc netem: {netem}"),
        }
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// Whether the kernel accepts a `netem` qdisc. Tried once per process, in a scratch
/// namespace (so no real interface is touched) that is deleted afterwards; any
/// failure, including a missing `tc`, counts as "not available".
pub fn netem_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(probe_netem)
}

fn probe_netem() -> bool {
    let name = format!("{}netem", super::NetSpec::unique_prefix());
    if netns::add(&name).is_err() {
        return false;
    }
    let ok = (|| -> std::io::Result<bool> {
        let fd = std::sync::Arc::new(netns::open(&name)?);
        let mut cmd = netns::command_in(fd, "tc");
        cmd.args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(cmd.status()?.success())
    })()
    .unwrap_or(false);
    let _ = netns::delete_all(&[name]);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_link_sends_now() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..100 {
            assert_eq!(
                decide(&LinkRule::default(), &mut rng),
                Verdict::Now { reordered: false }
            );
        }
    }

    #[test]
    fn loss_rate_follows_probability() {
        let mut rng = SplitMix64::new(7);
        let rule = LinkRule::lossy(0.3);
        let lost = (0..100_000)
            .filter(|_| decide(&rule, &mut rng) == Verdict::Lost)
            .count();
        assert!((28_000..32_000).contains(&lost), "lost {lost}");
    }

    #[test]
    fn jitter_never_negative_and_bounded() {
        let mut rng = SplitMix64::new(3);
        let rule = LinkRule {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
            ..LinkRule::default()
        };
        let mut now = 0;
        for _ in 0..10_000 {
            match decide(&rule, &mut rng) {
                Verdict::Later(d) => assert!(d <= Duration::from_millis(15)),
                Verdict::Now { reordered: false } => now += 1,
                v => panic!("unexpected {v:?}"),
            }
        }
        // About a quarter of the offsets fall below -5 ms and clamp to zero.
        assert!(now > 1_500 && now < 3_500, "now {now}");
    }

    #[test]
    fn reorder_needs_a_delay() {
        let mut rng = SplitMix64::new(5);
        let rule = LinkRule {
            reorder: 1.0,
            ..LinkRule::default()
        };
        assert_eq!(decide(&rule, &mut rng), Verdict::Now { reordered: false });
        let rule = LinkRule {
            reorder: 1.0,
            delay: Duration::from_millis(1),
            ..LinkRule::default()
        };
        assert_eq!(decide(&rule, &mut rng), Verdict::Now { reordered: true });
    }

    #[test]
    fn odd_probabilities_are_clamped() {
        let mut rng = SplitMix64::new(9);
        assert_eq!(decide(&LinkRule::lossy(2.0), &mut rng), Verdict::Lost);
        assert_eq!(
            decide(&LinkRule::lossy(f64::NAN), &mut rng),
            Verdict::Now { reordered: false }
        );
    }
}
