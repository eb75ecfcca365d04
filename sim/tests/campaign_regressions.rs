//! Shrunk schedules the adversarial campaign found against the core before the fixes of the
//! split brain resolver issue, one per bug. Each fails on that core and must pass once the
//! fixes are in: they are ignored until then (`cargo test -p fjell-sim --test
//! campaign_regressions -- --ignored`). Found by `cargo bench -p fjell-sim --bench split_brain
//! -- 20000` (the seed is in each name).

/// Bug 1 (moving partition, one setting; the idle extra node never joins).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_simsplitbrain_seed_145() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 145,
        params: Params {
            nodes: 3,
            sbr: Sbr::KeepMajority,
            down_all_when_unstable: false,
            stable_after_ms: None,
            profile: Profile::Jittery,
            extras: vec![Extra::Joiner(Sbr::DownAll)],
        },
        steps: vec![
            Step {
                wait: Wait::Ms(8967),
                fault: Fault::Split(vec![vec![2], vec![0, 1, 3]]),
            },
            Step {
                wait: Wait::Ms(5762),
                fault: Fault::Split(vec![vec![1, 2], vec![0, 3]]),
            },
        ],
        tail_ms: 16718,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 1 (moving partition, one setting).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_simsplitbrain_seed_155() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 155,
        params: Params {
            nodes: 10,
            sbr: Sbr::KeepMajority,
            down_all_when_unstable: false,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![],
        },
        steps: vec![
            Step {
                wait: Wait::Unreachable(0),
                fault: Fault::Split(vec![vec![0, 1, 2], vec![3, 4, 5, 6, 7, 8, 9]]),
            },
            Step {
                wait: Wait::Ms(13117),
                fault: Fault::Split(vec![vec![0, 1, 2, 9], vec![3, 4, 5, 6, 7, 8]]),
            },
        ],
        tail_ms: 17829,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 3 (a graceful leave during a partition restarts stable-after).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_latedecision_seed_246() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 246,
        params: Params {
            nodes: 2,
            sbr: Sbr::KeepOldest {
                down_if_alone: false,
            },
            down_all_when_unstable: false,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![],
        },
        steps: vec![
            Step {
                wait: Wait::Ms(0),
                fault: Fault::Split(vec![vec![1], vec![0]]),
            },
            Step {
                wait: Wait::Ms(9019),
                fault: Fault::Leave(1),
            },
        ],
        tail_ms: 17134,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 4 (a node isolated from 9 others never decides, down-all-when-unstable off).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_undecided_seed_124() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 124,
        params: Params {
            nodes: 10,
            sbr: Sbr::KeepOldest {
                down_if_alone: false,
            },
            down_all_when_unstable: false,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![],
        },
        steps: vec![Step {
            wait: Wait::Ms(0),
            fault: Fault::Split(vec![vec![6], vec![0, 1, 2, 3, 4, 5, 7, 8, 9]]),
        }],
        tail_ms: 45993,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 4 (a node isolated from 6 others decides only as unstable).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_unstabledecision_seed_74() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 74,
        params: Params {
            nodes: 7,
            sbr: Sbr::KeepMajority,
            down_all_when_unstable: true,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![],
        },
        steps: vec![Step {
            wait: Wait::Ms(0),
            fault: Fault::Split(vec![vec![0], vec![1, 2, 3, 4, 5, 6]]),
        }],
        tail_ms: 29764,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 6 (a protocol-version refusal is silent on the refusing side).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_silentrefusal_seed_5() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 5,
        params: Params {
            nodes: 2,
            sbr: Sbr::StaticQuorum(5),
            down_all_when_unstable: false,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![Extra::OtherVersion(2)],
        },
        steps: vec![Step {
            wait: Wait::Ms(0),
            fault: Fault::Join(2, vec![0, 1]),
        }],
        tail_ms: 2,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 7 (one refusal, from a stranger listed first among the seeds, ends the join).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_joinstuck_seed_26() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 26,
        params: Params {
            nodes: 2,
            sbr: Sbr::KeepMajority,
            down_all_when_unstable: true,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![Extra::Joiner(Sbr::KeepMajority), Extra::Stranger],
        },
        steps: vec![Step {
            wait: Wait::Ms(0),
            fault: Fault::Join(2, vec![3, 0, 1]),
        }],
        tail_ms: 0,
        settle_ms: 60000,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Bug 2 (a member restarts with lease-majority in a keep-oldest cluster; on a partition both
/// sides survive).
#[test]
#[ignore = "fails until the split brain resolver fixes are merged"]
fn campaign_simsplitbrain_seed_253() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 253,
        params: Params {
            nodes: 2,
            sbr: Sbr::KeepOldest {
                down_if_alone: true,
            },
            down_all_when_unstable: false,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![],
        },
        steps: vec![
            Step {
                wait: Wait::Ms(0),
                fault: Fault::Reconfigure(0, Sbr::LeaseMajority, vec![0, 1]),
            },
            Step {
                wait: Wait::Ms(10028),
                fault: Fault::Split(vec![vec![0], vec![1]]),
            },
        ],
        tail_ms: 17951,
        settle_ms: 0,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}

/// Not among the bugs, cause not analysed: with crashes and restarts only, a restarted
/// node stays Joining for good although a seed node serves (4 runs in 80,000: seeds 5423,
/// 58387, 59249, 68219; in 5423 the restarted node's join attempts keep the only member on its
/// side from ever deciding).
#[test]
#[ignore = "a liveness problem the campaign found that the issue does not list"]
fn campaign_joinstuck_seed_68219() {
    use fjell_sim::campaign::*;
    let schedule = Schedule {
        seed: 68219,
        params: Params {
            nodes: 3,
            sbr: Sbr::LeaseMajority,
            down_all_when_unstable: true,
            stable_after_ms: None,
            profile: Profile::Clean,
            extras: vec![],
        },
        steps: vec![
            Step {
                wait: Wait::Ms(0),
                fault: Fault::Restart(1, vec![0, 1, 2]),
            },
            Step {
                wait: Wait::Ms(10044),
                fault: Fault::Crash(0),
            },
            Step {
                wait: Wait::Unreachable(0),
                fault: Fault::Restart(0, vec![0, 1, 2]),
            },
        ],
        tail_ms: 0,
        settle_ms: 60000,
    };
    if let Err(f) = replay(&schedule) {
        panic!("{f}");
    }
}
