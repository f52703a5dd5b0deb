//! The HA engine on separate OS processes: `parapet demo` (the management server) as a child process,
//! which starts `parapet-sim` (every simulated host's real agent code, each host with a simulated
//! Redfish BMC on 127.0.0.1) as its own child. Through the REST API only: HA on for the zone and the
//! cluster, protected VMs deployed onto one host, that host powered off through its BMC (the OOBM
//! power API); then every protected VM must run on another host, and at every poll no VM may be
//! listed twice by the API nor held by two simulated hypervisors (`parapet-sim`'s `list`).
//!
//! Needs `parapet-sim` next to the `parapet` binary: `cargo test --workspace` builds it (the sim
//! package has integration tests), or `cargo build -p sim --bin parapet-sim`.

#[path = "support/demo_process.rs"]
mod demo_process;

use demo_process::{DemoProcess, DemoShape, sim_next_to};
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_powered_off_through_its_bmc_gets_its_protected_vms_running_on_other_processes_hosts() {
    let parapet = Path::new(env!("CARGO_BIN_EXE_parapet"));
    let shape = DemoShape { hosts_per_cluster: 4, vms: 0 };
    let mut demo = DemoProcess::start(parapet, &sim_next_to(parapet), shape).await;
    demo.enable_ha().await;
    demo.wait_all_available(60).await;

    let failed = demo.hosts[0].name.clone();
    // The demo's own HA offering (2 vCPU, 4 GB).
    let offering = demo.ha_offering("medium-ha", 4096, 2000).await;
    let vms = demo.deploy_on(&failed, &offering, 3).await;
    let before = demo.check_hypervisors(vms.len()).await;
    assert_eq!(before[&failed].vms, vms.len(), "{before:?}");

    let since = Instant::now();
    demo.power_off(&failed).await;
    let (elapsed, polls) = demo.wait_failover(&vms, &failed, since, 90).await;
    println!(
        "failover across processes: {} protected VMs of {failed} running elsewhere after {:.2} s ({polls} polls, never two copies)",
        vms.len(),
        elapsed.as_secs_f64()
    );

    // Fenced through its BMC first, and the stored transitions say so.
    let (state, body) = demo.ha_state(&failed).await;
    assert_eq!(state, "fenced", "{body}");
    assert_eq!(demo.fences(&failed).await, 1, "{body}");
    // The others were never fenced.
    for host in demo.hosts.iter().filter(|host| host.name != failed) {
        assert_eq!(demo.fences(&host.name).await, 0, "{} was fenced", host.name);
    }

    // The incident records one restart per VM and ends.
    let host_id = demo.host(&failed).id.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, incidents) = demo.call("GET", &format!("/api/v1/ha/incidents?host_id={host_id}"), None).await;
        assert_eq!(status, 200, "{incidents}");
        if let Some(id) =
            incidents.as_array().and_then(|list| list.first()).and_then(|incident| incident["id"].as_str())
        {
            let (_, detail) = demo.call("GET", &format!("/api/v1/ha/incidents/{id}"), None).await;
            let restarted = detail["events"]
                .as_array()
                .map(|events| {
                    events.iter().filter(|event| event["kind"] == api::v1::incident_event_kind::VM_RESTARTED).count()
                })
                .unwrap_or(0);
            if restarted == vms.len() && detail["incident"]["ended_at"].is_string() {
                break;
            }
            assert!(Instant::now() < deadline, "the incident did not record every restart and end: {detail:#}");
        } else {
            assert!(Instant::now() < deadline, "no incident for {failed}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still one copy each.
    demo.check_hypervisors(demo.vms().await.len()).await;
    demo.stop().await;
}
