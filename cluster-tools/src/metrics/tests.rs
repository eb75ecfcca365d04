//! Sans-IO tests of the metrics: the moving average, the table's merge and purge rules,
//! validation, the selectors' capacities, the weights and the weighted pick, `/proc` parsing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use fjell_runtime::core::{AppVersion, Member, MemberStatus, RoleSet, UniqueAddress};

use super::*;

fn member(i: u8, status: MemberStatus) -> Member {
    let addr = SocketAddr::from(([10, 0, 0, i], 7355));
    let mut m = Member::joining(
        UniqueAddress::new(addr, u64::from(i)),
        RoleSet::new(),
        AppVersion::default(),
    );
    m.status = status;
    m
}

fn up(n: u8) -> Vec<Member> {
    (1..=n).map(|i| member(i, MemberStatus::Up)).collect()
}

const ALPHA: f64 = 0.25;

/// A table on member `me` of `members`, all eligible.
fn table(members: &[Member], me: usize) -> MetricsGossip {
    let mut g = MetricsGossip::new(members[me].address, ALPHA);
    g.update_members(members, &[]);
    g
}

fn metric(name: &str, value: f64) -> Metric {
    Metric {
        name: name.to_string(),
        value,
        average: None,
    }
}

fn node(address: UniqueAddress, timestamp_ms: u64, metrics: Vec<Metric>) -> NodeMetrics {
    NodeMetrics {
        address,
        timestamp_ms,
        metrics,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

// --- EWMA ---

#[test]
fn alpha_matches_the_half_life() {
    let a = Ewma::alpha(Duration::from_secs(3), Duration::from_secs(12));
    assert!(close(a, 1.0 - 0.5f64.powf(0.25)), "{a}");
    assert!((a - 0.1591).abs() < 1e-4);
    // After one half-life's worth of samples an old value weighs half.
    assert!(close((1.0 - a).powi(4), 0.5));
    // Interval equal to the half-life: α = ½.
    let half = Ewma::alpha(Duration::from_secs(5), Duration::from_secs(5));
    assert!(close(half, 0.5));
    // Tiny ratios stay positive (no cancellation to 0), huge ones reach 1.
    let tiny = Ewma::alpha(Duration::from_nanos(1), Duration::from_secs(1_000_000_000));
    assert!(tiny > 0.0 && tiny < 1e-15, "{tiny}");
    assert!(close(
        Ewma::alpha(Duration::from_secs(1_000), Duration::from_millis(1)),
        1.0
    ));
    assert_eq!(Ewma::alpha(Duration::from_secs(1), Duration::ZERO), 1.0);
}

#[test]
fn ewma_follows_the_closed_form() {
    // Seeded by s, then n values x: x + (s − x)(1 − α)^n.
    let (s, x, alpha) = (10.0, 2.0, 0.159);
    let mut e = Ewma::new(s, alpha);
    for n in 1..=50 {
        e = e.update(x);
        let expected = x + (s - x) * (1.0 - alpha).powi(n);
        assert!((e.value - expected).abs() < 1e-9, "step {n}");
    }
    // A varying sequence: the weighted sum of the values, by the definition.
    let xs = [0.3, 0.9, 0.1, 0.5, 0.7];
    let mut e = Ewma::new(xs[0], alpha);
    for x in &xs[1..] {
        e = e.update(*x);
    }
    let n = xs.len() - 1;
    let mut expected = xs[0] * (1.0 - alpha).powi(n as i32);
    for (k, x) in xs[1..].iter().enumerate() {
        expected += alpha * x * (1.0 - alpha).powi((n - 1 - k) as i32);
    }
    assert!((e.value - expected).abs() < 1e-12);
}

#[test]
fn record_seeds_then_smooths_and_leaves_raw_metrics_alone() {
    let ms = up(2);
    let mut g = table(&ms, 0);
    let me = ms[0].address;
    assert!(g.record(
        100,
        &[
            Reading::smoothed(names::CPU_COMBINED, 0.8),
            Reading::raw(names::PROCESSORS, 4.0),
        ]
    ));
    let first = g.get(me).unwrap().clone();
    let cpu = first.metric(names::CPU_COMBINED).unwrap();
    assert_eq!(cpu.average, Some(Ewma::new(0.8, ALPHA)));
    assert_eq!(first.metric(names::PROCESSORS).unwrap().average, None);

    g.record(200, &[Reading::smoothed(names::CPU_COMBINED, 0.4)]);
    let second = g.get(me).unwrap();
    let cpu = second.metric(names::CPU_COMBINED).unwrap();
    assert_eq!(cpu.value, 0.4);
    assert!(close(cpu.smoothed(), 0.25 * 0.4 + 0.75 * 0.8));
    // Not read this time: gone, not repeated.
    assert!(second.metric(names::PROCESSORS).is_none());
}

#[test]
fn own_timestamps_keep_increasing_when_the_clock_steps_back() {
    let ms = up(1);
    let mut g = table(&ms, 0);
    g.record(5_000, &[]);
    g.record(4_000, &[]);
    assert_eq!(g.get(ms[0].address).unwrap().timestamp_ms, 5_001);
    g.record(5_001, &[]);
    assert_eq!(g.get(ms[0].address).unwrap().timestamp_ms, 5_002);
    g.record(9_000, &[]);
    assert_eq!(g.get(ms[0].address).unwrap().timestamp_ms, 9_000);
}

// --- merge ---

#[test]
fn merge_adopts_the_newest_as_the_origin_smoothed_it() {
    let ms = up(3);
    let mut a = table(&ms, 0);
    let mut b = table(&ms, 1);
    let b_addr = ms[1].address;
    b.record(1_000, &[Reading::smoothed(names::CPU_COMBINED, 0.9)]);
    let old = b.nodes();
    b.record(2_000, &[Reading::smoothed(names::CPU_COMBINED, 0.1)]);
    b.record(3_000, &[Reading::smoothed(names::CPU_COMBINED, 0.1)]);
    let new = b.nodes();

    assert_eq!(a.merge(new.clone()), 1);
    let held = a.get(b_addr).unwrap().clone();
    // Exactly b's own entry: b's average, not one `a` computed.
    assert_eq!(&held, b.get(b_addr).unwrap());
    // The same copy again, and the older one later: nothing changes (Pekko would advance
    // its average by each).
    assert_eq!(a.merge(new.clone()), 0);
    assert_eq!(a.merge(old.clone()), 0);
    assert_eq!(a.get(b_addr), Some(&held));
    // A copy relayed by a third node is the same entry.
    let mut c = table(&ms, 2);
    c.merge(new);
    assert_eq!(a.merge(c.nodes()), 0);
    assert_eq!(a.get(b_addr), Some(&held));

    // In the other order: the old then the new, the new replaces the old wholesale.
    let mut d = table(&ms, 2);
    d.merge(old);
    assert_eq!(d.merge(b.nodes()), 1);
    assert_eq!(d.get(b_addr), b.get(b_addr));
}

#[test]
fn merge_never_takes_this_nodes_entry_or_strangers() {
    let ms = up(2);
    let mut a = table(&ms, 0);
    a.record(10, &[Reading::smoothed(names::CPU_COMBINED, 0.5)]);
    let mine = a.get(ms[0].address).unwrap().clone();
    let stranger = member(9, MemberStatus::Up).address;
    let forged = vec![
        node(
            ms[0].address,
            1_000_000,
            vec![metric(names::CPU_COMBINED, 0.0)],
        ),
        node(stranger, 1, vec![metric(names::CPU_COMBINED, 0.0)]),
    ];
    assert_eq!(a.merge(forged), 0);
    assert_eq!(a.get(ms[0].address), Some(&mine));
    assert!(a.get(stranger).is_none());
    assert_eq!(a.len(), 1);
}

// --- membership ---

#[test]
fn purges_removed_leaving_and_unreachable_members() {
    let mut ms = up(4);
    let mut a = table(&ms, 0);
    a.record(1, &[]);
    let gossip: Vec<NodeMetrics> = ms[1..]
        .iter()
        .map(|m| node(m.address, 1, vec![metric(names::PROCESSORS, 2.0)]))
        .collect();
    assert_eq!(a.merge(gossip.clone()), 3);
    assert_eq!(a.len(), 4);

    // Member 2 unreachable: purged; its gossip ignored while it is.
    let unreachable = vec![ms[1].clone()];
    assert!(a.update_members(&ms, &unreachable));
    assert!(a.get(ms[1].address).is_none());
    assert_eq!(a.merge(gossip.clone()), 0);
    // Reachable again: its metrics come back with gossip.
    assert!(!a.update_members(&ms, &[]));
    assert_eq!(a.merge(gossip.clone()), 1);

    // Member 3 leaves: purged at Leaving already.
    ms[2].status = MemberStatus::Leaving;
    assert!(a.update_members(&ms, &[]));
    assert!(a.get(ms[2].address).is_none());
    // Member 4 is removed.
    ms.remove(3);
    assert!(a.update_members(&ms, &[]));
    assert_eq!(a.len(), 2);
    assert_eq!(a.merge(gossip), 0);

    // WeaklyUp counts; Joining does not.
    let mut b = MetricsGossip::new(ms[0].address, ALPHA);
    let weak = member(7, MemberStatus::WeaklyUp);
    let joining = member(8, MemberStatus::Joining);
    b.update_members(&[ms[0].clone(), weak.clone(), joining.clone()], &[]);
    assert_eq!(
        b.merge([weak.address, joining.address].map(|a| node(a, 1, vec![]))),
        1
    );
}

#[test]
fn own_entry_only_while_this_node_is_eligible() {
    let mut ms = up(2);
    ms[0].status = MemberStatus::Joining;
    let mut a = table(&ms, 0);
    // Sampled while Joining: kept, not published.
    assert!(!a.record(1, &[Reading::smoothed(names::CPU_COMBINED, 0.4)]));
    assert!(a.nodes().is_empty());
    ms[0].status = MemberStatus::Up;
    assert!(a.update_members(&ms, &[]));
    assert_eq!(a.nodes().len(), 1);
    // The average continued across.
    a.record(2, &[Reading::smoothed(names::CPU_COMBINED, 0.8)]);
    let avg = a
        .get(ms[0].address)
        .unwrap()
        .get(names::CPU_COMBINED)
        .unwrap();
    assert!(close(avg, 0.25 * 0.8 + 0.75 * 0.4));
}

#[test]
fn gossip_targets_are_other_eligible_members() {
    let ms = up(4);
    let mut a = table(&ms, 1);
    let mut seen = std::collections::BTreeSet::new();
    let mut rng = 1u64;
    for _ in 0..200 {
        let t = a.gossip_target(splitmix(&mut rng)).unwrap();
        assert_ne!(t, ms[1].address);
        seen.insert(t);
    }
    assert_eq!(seen.len(), 3);
    assert_eq!(a.gossip_target(0), Some(ms[0].address));
    assert_eq!(a.gossip_target(u64::MAX), Some(ms[3].address));
    a.update_members(&ms[1..2], &[]);
    assert_eq!(a.gossip_target(7), None);
}

// --- validation ---

#[test]
fn invalid_values_are_dropped_never_a_panic() {
    let ms = up(2);
    let mut a = table(&ms, 0);
    let b = ms[1].address;
    let bad_average = Metric {
        name: names::MEMORY_USED.into(),
        value: 1.0,
        average: Some(Ewma {
            value: f64::NAN,
            alpha: 0.5,
        }),
    };
    let bad_alpha = Metric {
        name: "queue".into(),
        value: 1.0,
        average: Some(Ewma {
            value: 1.0,
            alpha: 0.0,
        }),
    };
    let mut metrics = vec![
        metric(names::CPU_COMBINED, f64::NAN),
        metric(names::CPU_STOLEN, 1.5),
        metric(names::SYSTEM_LOAD_AVERAGE, -1.0),
        metric(names::MEMORY_TOTAL, f64::INFINITY),
        bad_average,
        bad_alpha,
        metric("", 1.0),
        metric(&"x".repeat(MAX_METRIC_NAME_LEN + 1), 1.0),
        metric(names::PROCESSORS, 8.0),
        metric(names::PROCESSORS, 2.0),
    ];
    metrics.extend((0..40).map(|i| metric(&format!("m{i}"), 1.0)));
    assert_eq!(a.merge([node(b, 1, metrics)]), 1);
    let held = a.get(b).unwrap();
    assert_eq!(held.metrics.len(), MAX_METRICS_PER_NODE);
    // The first of a repeated name is kept.
    assert_eq!(held.get(names::PROCESSORS), Some(8.0));
    for m in &held.metrics {
        assert!(valid_value(&m.name, m.value), "{m:?}");
    }
    for name in [
        names::CPU_COMBINED,
        names::CPU_STOLEN,
        names::SYSTEM_LOAD_AVERAGE,
        names::MEMORY_TOTAL,
        names::MEMORY_USED,
        "queue",
    ] {
        assert!(held.metric(name).is_none(), "{name} kept");
    }
    // Selectors on what is left: no CPU, no load (no load average), no memory.
    for s in [
        MetricsSelector::Cpu,
        MetricsSelector::Load,
        MetricsSelector::Memory,
        MetricsSelector::Mix,
    ] {
        assert_eq!(s.capacity(held), None, "{s:?}");
    }

    // The local collector's readings are checked the same way.
    a.record(
        1,
        &[
            Reading::smoothed(names::CPU_COMBINED, -0.1),
            Reading::raw(names::SYSTEM_LOAD_AVERAGE, f64::NEG_INFINITY),
            Reading::raw(names::PROCESSORS, 4.0),
        ],
    );
    let mine = a.get(ms[0].address).unwrap();
    assert_eq!(mine.metrics.len(), 1);
    assert_eq!(mine.get(names::PROCESSORS), Some(4.0));
}

#[test]
fn node_metrics_round_trip_on_the_wire() {
    let n = NodeMetrics {
        address: up(1)[0].address,
        timestamp_ms: 1_700_000_000_123,
        metrics: vec![
            Metric {
                name: names::CPU_COMBINED.into(),
                value: 0.25,
                average: Some(Ewma::new(0.3, 0.159)),
            },
            metric(names::PROCESSORS, 4.0),
        ],
    };
    let bytes = postcard::to_allocvec(&n).unwrap();
    assert_eq!(postcard::from_bytes::<NodeMetrics>(&bytes).unwrap(), n);
    // Garbage does not decode (and does not panic).
    assert!(postcard::from_bytes::<NodeMetrics>(&bytes[..bytes.len() / 2]).is_err());
}

// --- capacities and weights ---

fn full(address: UniqueAddress, cpu: f64, stolen: f64, load: f64, used: f64) -> NodeMetrics {
    node(
        address,
        1,
        vec![
            metric(names::CPU_COMBINED, cpu),
            metric(names::CPU_STOLEN, stolen),
            metric(names::SYSTEM_LOAD_AVERAGE, load),
            metric(names::PROCESSORS, 4.0),
            metric(names::MEMORY_USED, used),
            metric(names::MEMORY_TOTAL, 1000.0),
        ],
    )
}

#[test]
fn capacities_follow_pekkos_formulas() {
    let a = up(1)[0].address;
    let n = full(a, 0.5, 0.1, 3.0, 600.0);
    let cap = |s: MetricsSelector| s.capacity(&n).unwrap();
    // 1 − (0.5 + 0.1 × 1.3)
    assert!(close(cap(MetricsSelector::Cpu), 0.37));
    // 1 − min(1, 3 / 4)
    assert!(close(cap(MetricsSelector::Load), 0.25));
    // (1000 − 600) / 1000
    assert!(close(cap(MetricsSelector::Memory), 0.4));
    assert!(close(cap(MetricsSelector::Mix), (0.37 + 0.25 + 0.4) / 3.0));
    assert_eq!(MetricsSelector::default(), MetricsSelector::Mix);

    // Saturated: all 0.
    let busy = full(a, 0.9, 0.1, 12.0, 1000.0);
    for s in [
        MetricsSelector::Cpu,
        MetricsSelector::Load,
        MetricsSelector::Memory,
        MetricsSelector::Mix,
    ] {
        assert_eq!(s.capacity(&busy), Some(0.0), "{s:?}");
    }
    // Without cpu-stolen none is stolen; mix averages only what is there.
    let cpu_only = node(a, 1, vec![metric(names::CPU_COMBINED, 0.2)]);
    assert!(close(
        MetricsSelector::Cpu.capacity(&cpu_only).unwrap(),
        0.8
    ));
    assert!(close(
        MetricsSelector::Mix.capacity(&cpu_only).unwrap(),
        0.8
    ));
    assert_eq!(MetricsSelector::Load.capacity(&cpu_only), None);
    // Used above total (a peer's odd report): 0, not negative.
    let over = node(
        a,
        1,
        vec![
            metric(names::MEMORY_USED, 2000.0),
            metric(names::MEMORY_TOTAL, 1000.0),
        ],
    );
    assert_eq!(MetricsSelector::Memory.capacity(&over), Some(0.0));
    // Zero processors or zero memory: no capacity rather than a division by zero.
    let zero = node(
        a,
        1,
        vec![
            metric(names::SYSTEM_LOAD_AVERAGE, 1.0),
            metric(names::PROCESSORS, 0.0),
            metric(names::MEMORY_USED, 0.0),
            metric(names::MEMORY_TOTAL, 0.0),
        ],
    );
    assert_eq!(MetricsSelector::Mix.capacity(&zero), None);
}

#[test]
fn selectors_use_the_smoothed_value() {
    let a = up(1)[0].address;
    let n = node(
        a,
        1,
        vec![Metric {
            name: names::CPU_COMBINED.into(),
            value: 0.9,
            average: Some(Ewma::new(0.4, 0.2)),
        }],
    );
    assert!(close(MetricsSelector::Cpu.capacity(&n).unwrap(), 0.6));
}

fn caps(values: &[f64]) -> (Vec<UniqueAddress>, BTreeMap<UniqueAddress, f64>) {
    let ms = up(values.len() as u8);
    let addrs: Vec<_> = ms.iter().map(|m| m.address).collect();
    let c = addrs.iter().copied().zip(values.iter().copied()).collect();
    (addrs, c)
}

#[test]
fn weights_are_relative_to_the_least_free() {
    let (a, c) = caps(&[0.25, 0.5, 1.0, 0.625]);
    let w = weights(&c);
    assert_eq!(
        a.iter().map(|x| w[x]).collect::<Vec<_>>(),
        [1, 2, 4, 3] // 0.625 / 0.25 = 2.5, rounded half up
    );
    // Below the 1 % floor: relative to 0.01; under 0.5 % rounds to 0.
    let (a, c) = caps(&[0.001, 0.5, 0.007]);
    let w = weights(&c);
    assert_eq!(a.iter().map(|x| w[x]).collect::<Vec<_>>(), [0, 50, 1]);
    assert!(weights(&BTreeMap::new()).is_empty());
}

#[test]
fn members_without_metrics_get_the_mean_weight() {
    let (a, c) = caps(&[0.25, 1.0]);
    let mut w = weights(&c); // 1 and 4: mean 2 (integer)
    let extra = member(9, MemberStatus::Up).address;
    let routees = [a[0], a[1], extra];
    let t = WeightedRoutees::new(&routees, &w);
    assert_eq!(t.weights(), [1, 4, 2]);
    assert_eq!(t.total(), 7);
    // No metrics at all: every routee weighs 1.
    w.clear();
    assert_eq!(WeightedRoutees::new(&routees, &w).weights(), [1, 1, 1]);
    // No routees: no pick.
    assert_eq!(WeightedRoutees::new(&[], &w).pick(5), None);
}

#[test]
fn all_zero_weights_fall_back_to_uniform() {
    let (a, c) = caps(&[0.001, 0.002, 0.0]);
    let w = weights(&c);
    assert!(w.values().all(|w| *w == 0));
    let t = WeightedRoutees::new(&a, &w);
    assert_eq!(t.weights(), [1, 1, 1]);
    let mut rng = 3u64;
    let mut seen = [0usize; 3];
    for _ in 0..3_000 {
        let p = t.pick(splitmix(&mut rng)).unwrap();
        seen[a.iter().position(|x| *x == p).unwrap()] += 1;
    }
    for s in seen {
        assert!((800..1200).contains(&s), "{seen:?}");
    }
    // Some routees at 0, one not: only that one is picked.
    let mut w = w;
    w.insert(a[1], 1);
    let t = WeightedRoutees::new(&a, &w);
    for _ in 0..100 {
        assert_eq!(t.pick(splitmix(&mut rng)), Some(a[1]));
    }
}

#[test]
fn weighted_picks_follow_the_weights() {
    let (a, c) = caps(&[0.1, 0.2, 0.7]);
    let t = WeightedRoutees::new(&a, &weights(&c));
    assert_eq!(t.weights(), [1, 2, 7]);
    // The boundaries of the draw: the first and the last routee.
    assert_eq!(t.pick(0), Some(a[0]));
    assert_eq!(t.pick(u64::MAX), Some(a[2]));
    let draws = 100_000;
    let mut rng = 42u64;
    let mut seen = [0usize; 3];
    for _ in 0..draws {
        let p = t.pick(splitmix(&mut rng)).unwrap();
        seen[a.iter().position(|x| *x == p).unwrap()] += 1;
    }
    for (i, expected) in [0.1, 0.2, 0.7].into_iter().enumerate() {
        let share = seen[i] as f64 / draws as f64;
        assert!(
            (share - expected).abs() < 0.01,
            "{i}: {share} vs {expected}"
        );
    }
}

// --- settings ---

#[test]
fn settings_are_validated_by_key() {
    let ok = MetricsSettings::default();
    assert!(ok.validate().is_ok());
    assert_eq!(ok.sample_interval, Duration::from_secs(3));
    assert_eq!(ok.gossip_interval, Duration::from_secs(3));
    assert_eq!(ok.moving_average_half_life, Duration::from_secs(12));
    for (key, s) in [
        (
            "sample-interval",
            MetricsSettings {
                sample_interval: Duration::ZERO,
                ..ok.clone()
            },
        ),
        (
            "gossip-interval",
            MetricsSettings {
                gossip_interval: Duration::ZERO,
                ..ok.clone()
            },
        ),
        (
            "moving-average-half-life",
            MetricsSettings {
                moving_average_half_life: Duration::ZERO,
                ..ok.clone()
            },
        ),
    ] {
        let e = s.validate().unwrap_err();
        assert!(
            matches!(e, StartError::Settings { key: k, .. } if k == key),
            "{e}"
        );
        assert!(e.to_string().contains(key), "{e}");
    }
}

// --- /proc ---

#[test]
fn parses_proc_stat() {
    let text = "cpu  100 10 50 800 20 5 5 10 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\nintr 1 2\n";
    let t = parse_stat(text).unwrap();
    assert_eq!(t.busy, 170);
    assert_eq!(t.steal, 10);
    assert_eq!(t.total, 1000);
    let later = parse_stat("cpu  150 10 100 1600 40 10 10 30 0 0\n").unwrap();
    let (busy, stolen) = later.shares_since(&t).unwrap();
    assert!(close(busy, 110.0 / 950.0));
    assert!(close(stolen, 20.0 / 950.0));
    assert_eq!(t.shares_since(&t), None);
    assert_eq!(t.shares_since(&later), None);
    // Old kernels without steal; malformed text.
    assert_eq!(parse_stat("cpu 1 2 3 4\n").unwrap().steal, 0);
    assert_eq!(parse_stat("cpu 1 2 x 4\n"), None);
    assert_eq!(parse_stat("cpu 1 2\n"), None);
    assert_eq!(parse_stat(""), None);
    let huge = format!("cpu {m} {m} {m} {m}\n", m = u64::MAX);
    assert!(parse_stat(&huge).is_some());
}

#[test]
fn parses_proc_loadavg_and_meminfo() {
    assert_eq!(parse_loadavg("1.55 2.10 2.44 1/116 23224\n"), Some(1.55));
    assert_eq!(parse_loadavg(""), None);
    let m = parse_meminfo(
        "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\nBuffers: 10 kB\n",
    )
    .unwrap();
    assert_eq!((m.used, m.total), (400 * 1024, 1000 * 1024));
    let old = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
        .unwrap();
    assert_eq!(old.used, 600 * 1024);
    assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    assert_eq!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
}

#[test]
fn the_system_collector_reads_this_machine() {
    let mut c = SystemCollector::new();
    let first = c.collect();
    let has = |r: &[Reading], n: &str| r.iter().any(|x| x.name == n);
    assert!(has(&first, names::PROCESSORS));
    if cfg!(target_os = "linux") {
        assert!(has(&first, names::SYSTEM_LOAD_AVERAGE));
        assert!(has(&first, names::MEMORY_USED) && has(&first, names::MEMORY_TOTAL));
        // CPU shares need time between two readings: spin until the counters move (a clock
        // tick is 10 ms), at most a few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut r = c.collect();
        while !has(&r, names::CPU_COMBINED) && std::time::Instant::now() < deadline {
            std::hint::black_box((0..100_000u64).sum::<u64>());
            r = c.collect();
        }
        assert!(has(&r, names::CPU_COMBINED) && has(&r, names::CPU_STOLEN));
        for x in &r {
            assert!(valid_value(&x.name, x.value), "{x:?}");
        }
    }
    // Every reading is valid, so none is dropped.
    let ms = up(1);
    let mut g = table(&ms, 0);
    g.record(1, &first);
    assert_eq!(g.get(ms[0].address).unwrap().metrics.len(), first.len());
}
