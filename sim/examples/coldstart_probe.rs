use fjell_core::Config;
use fjell_sim::{NodeId, Sim};
use std::time::Duration;
fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(300);
    let mut sim: Sim<1024, 1024> = Sim::new(42);
    sim.record_events(false);
    sim.set_check_interval(Duration::from_millis(10));
    let ids: Vec<NodeId> = (0..n).map(|_| sim.add_node(Config::default())).collect();
    for &i in &ids { sim.join_seed_nodes(i, &ids[..3]); }
    let t0 = std::time::Instant::now();
    let took = sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids) && s.converged(&ids)).unwrap();
    eprintln!("{n} nodes: {took:?} virtual, {:?} wall, traffic {:?}", t0.elapsed(), sim.traffic());
}
