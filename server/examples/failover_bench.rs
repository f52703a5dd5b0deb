//! Failover benchmark (issue #5's figures), on real processes: a real server on loopback, simulated
//! hosts running the real agent code, simulated Redfish BMCs, default HA settings. Prints figures,
//! asserts no times:
//! 1. failover time, from powering a host off through its BMC to all its protected VMs running
//!    elsewhere, over `FAILOVER_TRIALS` (default 20) fresh pools: p50 and max;
//! 2. the same with `BIG_VMS` (default 200) protected VMs on the failed host, `BIG_TRIALS` (default 3);
//! 3. a 3-second network blip of one host (`BLIP_TRIALS`, default 5): how many fences it caused.
//!
//! Every poll also checks that no VM runs on two hosts (a violation panics).
//!
//! Run: `cargo run --release -p server --example failover_bench`

#[path = "../tests/support/bench_figures.rs"]
mod bench_figures;
#[path = "../tests/support/ha_pool.rs"]
mod ha_pool;

use bench_figures::{env_count, report};
use ha_pool::HaPool;
use std::time::{Duration, Instant};

/// One trial: a fresh 4-host pool, `vms` protected VMs on the first host, power it off through its BMC.
async fn failover_trial(vms: usize, memory_mb: u64) -> f64 {
    let pool = HaPool::start(4).await;
    pool.wait_all_available(60).await;
    let failed = pool.seeded.hosts[0].name.clone();
    let ids = pool.protected_vms(&failed, vms, memory_mb).await;
    let since = Instant::now();
    pool.power_off_through_bmc(&failed).await;
    let (elapsed, _) = pool.wait_failover(&ids, &failed, since, 120).await;
    pool.stop().await;
    elapsed.as_secs_f64()
}

/// A 3-second network blip of one host (its storage stays): how many fences it caused.
async fn blip_trial() -> usize {
    let pool = HaPool::start(4).await;
    pool.wait_all_available(60).await;
    let target = pool.seeded.hosts[1].name.clone();
    pool.protected_vms(&target, 2, 512).await;
    pool.pool.host(&target).unwrap().blip(Duration::from_secs(3));
    // Past every timeout a blip could trip: suspect (3 s), storage (4 s), self-fence (8 s).
    pool.watch_single_copies(Duration::from_secs(15)).await;
    let fences = pool.fences(&target).await;
    pool.stop().await;
    fences
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into())).init();
    let trials = env_count("FAILOVER_TRIALS", 20);
    let big_vms = env_count("BIG_VMS", 200);
    let big_trials = env_count("BIG_TRIALS", 3);
    let blip_trials = env_count("BLIP_TRIALS", 5);

    let mut small = Vec::new();
    for trial in 1..=trials {
        let seconds = failover_trial(4, 512).await;
        println!("  trial {trial}/{trials}: {seconds:.2} s");
        small.push(seconds);
    }
    report("failover, 4 protected VMs, default settings", small);

    let mut big = Vec::new();
    for trial in 1..=big_trials {
        let seconds = failover_trial(big_vms, 256).await;
        println!("  trial {trial}/{big_trials} ({big_vms} VMs): {seconds:.2} s");
        big.push(seconds);
    }
    report(&format!("failover, {big_vms} protected VMs on the failed host"), big);
    let mut fences = 0;
    for trial in 1..=blip_trials {
        let count = blip_trial().await;
        println!("  blip trial {trial}/{blip_trials}: {count} fence(s)");
        fences += count;
    }
    println!("3-second network blip of one host: {fences} fence(s) in {blip_trials} trial(s)");
}
