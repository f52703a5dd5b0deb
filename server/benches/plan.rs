//! Planner benchmark: prints how long the capacity computation takes on generated pools (figures,
//! never assertions). Run: `cargo bench -p server --bench plan`.

use api::v1::{PlanHost, PlanPool, PlanVm, RestartPriority};
use server::ha::plan::{DEFAULT_SEARCH_BUDGET, Model};
use std::time::Instant;

/// `hosts` hosts of 256 GB / 64 GHz with `vms` VMs spread evenly, sizes 1-8 GB, 70 % protected.
fn pool(hosts: usize, vms: usize, limit: u32) -> PlanPool {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    PlanPool {
        hosts: (0..hosts)
            .map(|h| PlanHost {
                name: format!("h{h}"),
                memory_mb: 262_144,
                cpu_mhz: 64_000,
                live: true,
                ha_dedicated: false,
            })
            .collect(),
        vms: (0..vms)
            .map(|v| PlanVm {
                name: format!("v{v}"),
                memory_mb: 1024 * (1 + next() % 8),
                cpu_mhz: 500 * (1 + next() % 4),
                host: Some(format!("h{}", v % hosts)),
                priority: if next() % 10 < 7 { RestartPriority::Restart } else { RestartPriority::BestEffort },
                shared_storage: true,
            })
            .collect(),
        failure_limit: limit,
    }
}

fn measure(label: &str, pool: &PlanPool, budget: u64, runs: u32) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let model = Model::new(pool).unwrap();
        last = Some(model.report(budget));
        times.push(started.elapsed());
    }
    times.sort();
    let report = last.unwrap();
    println!(
        "{label:<34} median {:>9.2} ms  max {:>9.2} ms  capacity {:?} ({})",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        report.max_failure_capacity,
        report.method
    );
}

fn main() {
    println!("failover planner: capacity computation (budget {DEFAULT_SEARCH_BUDGET} host-checks per k)");
    measure("16 hosts x 400 VMs", &pool(16, 400, 2), DEFAULT_SEARCH_BUDGET, 21);
    measure("1000 hosts x 20000 VMs", &pool(1000, 20_000, 3), DEFAULT_SEARCH_BUDGET, 5);
    println!();
    println!("exact search cost as hosts grow (small VMs so the bound stops early; unlimited budget):");
    for hosts in [3usize, 4, 5, 6, 7, 8] {
        let mut small = pool(hosts, hosts * 6, 2);
        for vm in &mut small.vms {
            vm.memory_mb *= 4;
        }
        measure(&format!("{hosts} hosts x {} VMs, exact", hosts * 6), &small, u64::MAX, 3);
        measure(&format!("{hosts} hosts x {} VMs, bound only", hosts * 6), &small, 0, 3);
    }
}
