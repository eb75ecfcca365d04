//! Reading the local node's metrics: the [`Collector`] trait and the operating system's
//! collector, [`SystemCollector`].

use std::time::{Duration, Instant};

use super::model::{names, Reading};

/// The shortest time the CPU shares are measured over: over a shorter window the counters
/// (in ticks of 10 ms per processor) are too coarse, and one reading would seed the moving
/// average with noise.
pub const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// Reads this node's metrics, once per sample interval (Pekko's `MetricsCollector`). Return
/// what can be read now; a metric that cannot be read is left out (never an error). Invalid
/// values are dropped by the table ([`valid_value`](super::valid_value)).
///
/// [`SystemCollector`] is the default; a closure `FnMut() -> Vec<Reading>` is a collector too,
/// for metrics of the application's own (queue lengths, say) or for tests. It is called on
/// the metrics task: it should return quickly (reading a few files is fine; a network call is
/// not).
pub trait Collector: Send + 'static {
    /// This node's metrics now.
    fn collect(&mut self) -> Vec<Reading>;
}

impl<F: FnMut() -> Vec<Reading> + Send + 'static> Collector for F {
    fn collect(&mut self) -> Vec<Reading> {
        self()
    }
}

/// The operating system's metrics, without native libraries (Pekko needed Sigar for CPU).
///
/// On Linux, from `/proc`: [`CPU_COMBINED`](names::CPU_COMBINED) and
/// [`CPU_STOLEN`](names::CPU_STOLEN) from `/proc/stat` (the share of CPU time since the
/// previous collection: busy is user, nice, system, irq and softirq; I/O wait counts as idle),
/// [`SYSTEM_LOAD_AVERAGE`](names::SYSTEM_LOAD_AVERAGE) from `/proc/loadavg`, and
/// [`MEMORY_USED`](names::MEMORY_USED) and [`MEMORY_TOTAL`](names::MEMORY_TOTAL) from
/// `/proc/meminfo` (used is `MemTotal − MemAvailable`). Everywhere,
/// [`PROCESSORS`](names::PROCESSORS) from [`std::thread::available_parallelism`] (which
/// honours CPU affinity and cgroup quotas). What cannot be read is left out: elsewhere than
/// Linux only the processors are reported.
///
/// The CPU shares need two readings at least [`MIN_CPU_WINDOW`] apart: the first collection
/// after [`SystemCollector::new`] covers the time since then, and a collection sooner than
/// that after the previous one has no CPU metrics.
#[derive(Debug, Clone, Default)]
pub struct SystemCollector {
    previous: Option<(CpuTimes, Instant)>,
}

impl SystemCollector {
    /// A collector; reads the CPU counters once, to measure from.
    pub fn new() -> SystemCollector {
        SystemCollector {
            previous: read_cpu().map(|c| (c, Instant::now())),
        }
    }
}

fn read_cpu() -> Option<CpuTimes> {
    read("/proc/stat").and_then(|s| parse_stat(&s))
}

impl Collector for SystemCollector {
    fn collect(&mut self) -> Vec<Reading> {
        let mut out = Vec::with_capacity(6);
        let too_soon = self
            .previous
            .is_some_and(|(_, at)| at.elapsed() < MIN_CPU_WINDOW);
        if let Some(now) = read_cpu().filter(|_| !too_soon) {
            let shares = self.previous.and_then(|(p, _)| now.shares_since(&p));
            if let Some((combined, stolen)) = shares {
                out.push(Reading::smoothed(names::CPU_COMBINED, combined));
                out.push(Reading::smoothed(names::CPU_STOLEN, stolen));
            }
            self.previous = Some((now, Instant::now()));
        }
        if let Some(load) = read("/proc/loadavg").and_then(|s| parse_loadavg(&s)) {
            out.push(Reading::raw(names::SYSTEM_LOAD_AVERAGE, load));
        }
        if let Ok(n) = std::thread::available_parallelism() {
            out.push(Reading::raw(names::PROCESSORS, n.get() as f64));
        }
        if let Some(m) = read("/proc/meminfo").and_then(|s| parse_meminfo(&s)) {
            out.push(Reading::smoothed(names::MEMORY_USED, m.used as f64));
            out.push(Reading::raw(names::MEMORY_TOTAL, m.total as f64));
        }
        out
    }
}

fn read(path: &str) -> Option<String> {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string(path).ok()
    } else {
        None
    }
}

/// The aggregate CPU counters of `/proc/stat` (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is part of user already).
    pub busy: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
    /// Everything: busy, idle, iowait and steal.
    pub total: u64,
}

impl CpuTimes {
    /// The busy and stolen shares of the time between `earlier` and these counters; `None`
    /// if no time passed (or the counters went back).
    pub fn shares_since(&self, earlier: &CpuTimes) -> Option<(f64, f64)> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)? as f64;
        let busy = self.busy.saturating_sub(earlier.busy) as f64;
        let steal = self.steal.saturating_sub(earlier.steal) as f64;
        Some(((busy / total).min(1.0), (steal / total).min(1.0)))
    }
}

/// The aggregate `cpu` line of `/proc/stat`'s text; `None` if it is missing or malformed.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: kernels before
    // 2.6.11 had no steal column, and count as none stolen.
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    if fields.len() < 4 {
        return None;
    }
    let sum = |idx: &[usize]| idx.iter().fold(0u64, |s, i| s.saturating_add(at(*i)));
    let busy = sum(&[0, 1, 2, 5, 6]);
    let steal = at(7);
    Some(CpuTimes {
        busy,
        steal,
        total: busy.saturating_add(sum(&[3, 4])).saturating_add(steal),
    })
}

/// The one-minute load average of `/proc/loadavg`'s text.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// System memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// In use: total less available.
    pub used: u64,
    /// Installed (usable by the kernel).
    pub total: u64,
}

/// Memory from `/proc/meminfo`'s text: used is `MemTotal − MemAvailable`, or, on kernels
/// before 3.14 without `MemAvailable`, `MemTotal − MemFree − Buffers − Cached`.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    };
    let total = field("MemTotal").filter(|t| *t > 0)?;
    let available = field("MemAvailable").or_else(|| {
        let free = field("MemFree")?;
        Some(
            free.saturating_add(field("Buffers").unwrap_or(0))
                .saturating_add(field("Cached").unwrap_or(0)),
        )
    })?;
    Some(Memory {
        used: total.saturating_sub(available),
        total,
    })
}
