//! Failover benchmark (issue #5's figures) on separate OS processes: each trial starts a fresh
//! `parapet demo` (the server) with its `parapet-sim` (every simulated host's real agent code and a
//! simulated Redfish BMC per host), default HA settings, and drives it through the REST API and the
//! simulator's stdin. Prints figures, asserts no times:
//! 1. failover time, from the OOBM power-off request to all the failed host's protected VMs running
//!    elsewhere (the API and the simulated hypervisors agree), over `FAILOVER_TRIALS` (default 20);
//! 2. the same with `BIG_VMS` (default 200) protected VMs on the failed host, `BIG_TRIALS` (default 3);
//! 3. a 3-second network blip of one host (`blip NAME 3`), `BLIP_TRIALS` (default 5): fences caused.
//!
//! Every poll also checks that no VM is listed twice nor held by two hypervisors (a violation panics).
//!
//! Run: `cargo build --release -p server -p sim --bins --examples` and
//! `target/release/examples/failover_bench_processes` (it uses `parapet` and `parapet-sim` from the
//! directory above its own, or `PARAPET_BIN` and `PARAPET_SIM_BIN`).

#[path = "../tests/support/bench_figures.rs"]
mod bench_figures;
#[path = "../tests/support/demo_process.rs"]
mod demo_process;

use bench_figures::{env_count, report};
use demo_process::{DemoProcess, DemoShape};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Binaries {
    parapet: PathBuf,
    sim: PathBuf,
}

impl Binaries {
    fn find() -> Binaries {
        let release = std::env::current_exe().unwrap().parent().and_then(|dir| dir.parent()).unwrap().to_owned();
        let pick =
            |variable: &str, name: &str| std::env::var_os(variable).map(PathBuf::from).unwrap_or(release.join(name));
        Binaries { parapet: pick("PARAPET_BIN", "parapet"), sim: pick("PARAPET_SIM_BIN", "parapet-sim") }
    }

    async fn demo(&self) -> DemoProcess {
        let mut demo = DemoProcess::start(&self.parapet, &self.sim, DemoShape { hosts_per_cluster: 4, vms: 0 }).await;
        demo.enable_ha().await;
        demo.wait_all_available(60).await;
        // Drain the answer of a first `list`, so the simulator is known to read its stdin.
        demo.sim_list().await;
        demo
    }
}

/// One trial: a fresh 4-host demo, `vms` protected VMs of a 1 × `mhz` MHz, `memory_mb` offering on
/// the first host; power it off through its BMC.
async fn failover_trial(binaries: &Binaries, vms: usize, memory_mb: u64, mhz: u32) -> f64 {
    let mut demo = binaries.demo().await;
    let failed = demo.hosts[0].name.clone();
    let offering = demo.ha_offering(&format!("bench-{memory_mb}-ha"), memory_mb, mhz).await;
    let ids = demo.deploy_on(&failed, &offering, vms).await;
    let since = Instant::now();
    demo.power_off(&failed).await;
    let (elapsed, _) = demo.wait_failover(&ids, &failed, since, 180).await;
    demo.stop().await;
    elapsed.as_secs_f64()
}

/// A 3-second network blip of one host (storage untouched): how many fences it caused.
async fn blip_trial(binaries: &Binaries) -> usize {
    let mut demo = binaries.demo().await;
    let target = demo.hosts[1].name.clone();
    let offering = demo.ha_offering("bench-512-ha", 512, 100).await;
    let ids = demo.deploy_on(&target, &offering, 2).await;
    demo.sim_expect(&format!("blip {target} 3"), "network down for 3.0 s").await;
    // Past every timeout a blip could trip (suspect 3 s, storage 4 s, self-fence 8 s), checking the
    // single copies all along.
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        let known = demo.vms().await.len();
        demo.check_hypervisors(known).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fences = demo.fences(&target).await;
    let suspect = demo.entered(&target, "suspect").await;
    let (state, _) = demo.ha_state(&target).await;
    let vms = demo.vms().await;
    let target_id = demo.host(&target).id.clone();
    let stayed = ids.iter().filter(|id| vms[*id]["host_id"] == target_id.as_str()).count();
    println!(
        "    {target}: entered suspect {suspect} time(s), now {state}; {stayed} of {} VMs stayed on it",
        ids.len()
    );
    demo.stop().await;
    fences
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binaries = Binaries::find();
    println!("binaries: {} and {}", binaries.parapet.display(), binaries.sim.display());
    let trials = env_count("FAILOVER_TRIALS", 20);
    let big_vms = env_count("BIG_VMS", 200);
    let big_trials = env_count("BIG_TRIALS", 3);
    let blip_trials = env_count("BLIP_TRIALS", 5);

    let mut small = Vec::new();
    for trial in 1..=trials {
        let seconds = failover_trial(&binaries, 4, 512, 100).await;
        println!("  trial {trial}/{trials}: {seconds:.2} s");
        small.push(seconds);
    }
    if !small.is_empty() {
        report("processes: failover, 4 protected VMs, default settings", small);
    }

    let mut big = Vec::new();
    for trial in 1..=big_trials {
        // 200 × (100 MHz, 256 MB) = 20 GHz, 50 GB: fits one simulated host (16 × 2.4 GHz, 64 GB).
        let seconds = failover_trial(&binaries, big_vms, 256, 100).await;
        println!("  trial {trial}/{big_trials} ({big_vms} VMs): {seconds:.2} s");
        big.push(seconds);
    }
    if !big.is_empty() {
        report(&format!("processes: failover, {big_vms} protected VMs on the failed host"), big);
    }

    let mut fences = 0;
    for trial in 1..=blip_trials {
        let count = blip_trial(&binaries).await;
        println!("  blip trial {trial}/{blip_trials}: {count} fence(s)");
        fences += count;
    }
    if blip_trials > 0 {
        println!("processes: 3-second network blip of one host: {fences} fence(s) in {blip_trials} trial(s)");
    }
}
