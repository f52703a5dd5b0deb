//! The HA engine live, on real processes where users have them: a real server on a loopback port with
//! simulated hosts running the real agent code and simulated Redfish BMCs (configured through the app
//! layer). Powering a host off through its BMC must get its protected VMs running on other hosts,
//! with no VM ever running on two hosts at any poll; the incident, transitions and alerts must say so.
//! And two `parapet serve` processes on one PostgreSQL database: only one leads; killing it lets the
//! other take over with a higher epoch.

#[path = "support/api_client.rs"]
mod api_client;
#[path = "support/ha_pool.rs"]
mod ha_pool;

use api::v1::{HostHaState, incident_event_kind};
use ha_pool::HaPool;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_powered_off_through_its_bmc_gets_its_protected_vms_restarted_elsewhere() {
    let pool = HaPool::start(4).await;
    pool.wait_all_available(60).await;
    let failed = pool.seeded.hosts[0].name.clone();
    let vms = pool.protected_vms(&failed, 4, 512).await;

    let since = Instant::now();
    pool.power_off_through_bmc(&failed).await;
    let (elapsed, polls) = pool.wait_failover(&vms, &failed, since, 60).await;
    println!(
        "failover: {} protected VMs of {failed} running elsewhere after {:.2} s ({polls} polls, never two copies)",
        vms.len(),
        elapsed.as_secs_f64()
    );

    // The host went through Fencing to Fenced, and every transition is stored with its reason.
    let (state, body) = pool.ha_state(&failed).await;
    assert_eq!(state, HostHaState::Fenced, "{body}");
    let transitions = body["transitions"].as_array().unwrap();
    let reached = |name: &str| transitions.iter().any(|transition| transition["to"] == name);
    assert!(reached("suspect") && reached("fencing") && reached("fenced"), "{transitions:#?}");
    assert!(transitions.iter().all(|transition| !transition["reason"].as_str().unwrap_or("").is_empty()));

    // The incident's timeline has the fence and one restart per VM, with seconds and both hosts; the
    // engine records a restart at its next step after seeing the VM run, and closes the incident.
    let host_id = pool.host_id(&failed).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (incident, events) = loop {
        let (status, incidents) = pool.call("GET", &format!("/api/v1/ha/incidents?host_id={host_id}"), None).await;
        assert_eq!(status, 200, "{incidents}");
        let incident = incidents.as_array().unwrap()[0].clone();
        let path = format!("/api/v1/ha/incidents/{}", incident["id"].as_str().unwrap());
        let (_, detail) = pool.call("GET", &path, None).await;
        let events = detail["events"].as_array().unwrap().clone();
        let restarted = events.iter().filter(|event| event["kind"] == incident_event_kind::VM_RESTARTED).count();
        if restarted == vms.len() && detail["incident"]["ended_at"].is_string() {
            break (detail["incident"].clone(), events);
        }
        assert!(Instant::now() < deadline, "the incident did not record every restart and end: {detail:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("incident: {:.2} s, verdict {}", incident["duration_seconds"].as_f64().unwrap(), incident["verdict"]);
    let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&incident_event_kind::DETECTED) && kinds.contains(&incident_event_kind::FENCED),
        "{kinds:?}"
    );
    let restarts: Vec<_> = events.iter().filter(|event| event["kind"] == incident_event_kind::VM_RESTARTED).collect();
    for restart in restarts {
        assert_eq!(restart["from_host_id"], host_id.to_string());
        assert_ne!(restart["to_host_id"], host_id.to_string());
        assert!(restart["seconds"].as_f64().is_some_and(|seconds| seconds > 0.0), "{restart}");
    }

    // Operators were told.
    let (_, alerts) = pool.call("GET", "/api/v1/alerts?status=all", None).await;
    let alert_kinds: Vec<&str> = alerts.as_array().unwrap().iter().filter_map(|alert| alert["kind"].as_str()).collect();
    assert!(alert_kinds.contains(&"host-fenced") && alert_kinds.contains(&"vm-restarted"), "{alert_kinds:?}");

    // The VMs' records moved with a newer generation; the fenced host is in maintenance.
    for vm in &vms {
        let record = pool.state.db.vm_fetch(*vm).await.unwrap().unwrap();
        assert!(record.generation > 1 && record.host_id != Some(host_id), "{record:?}");
    }
    let host = pool.state.db.host_fetch(host_id).await.unwrap().unwrap();
    assert_eq!(host.allocation, api::v1::HostAllocation::Maintenance);

    // Powered on again, the host comes back empty and stays out of service (Ineligible: maintenance)
    // until an operator takes it out of maintenance; then it is Available again.
    let (status, body) = pool
        .call("POST", &format!("/api/v1/hosts/{host_id}/oobm/power"), Some(serde_json::json!({"action": "ON"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (state, body) = pool.ha_state(&failed).await;
        if state == HostHaState::Ineligible && pool.state.hub.is_connected(host_id) {
            assert!(body["reason"].as_str().unwrap_or("").contains("maintenance"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the returned host is not Ineligible: {body}");
        pool.watch_single_copies(Duration::from_millis(100)).await;
    }
    let (status, body) = pool.call("POST", &format!("/api/v1/hosts/{host_id}/cancel-maintenance"), None).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.ha_state(&failed).await.0 != HostHaState::Available {
        assert!(Instant::now() < deadline, "not Available after maintenance: {}", pool.ha_state(&failed).await.1);
        pool.watch_single_copies(Duration::from_millis(100)).await;
    }
    for (vm, hosts) in pool.poll().running_on.iter().filter(|(vm, _)| vms.contains(vm)) {
        assert!(!hosts.contains(&failed), "VM {vm} came back on the fenced host: {hosts:?}");
    }
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_second_network_blip_fences_nothing_and_moves_nothing() {
    let pool = HaPool::start(3).await;
    // What `parapet demo` does: the whole zone on (already on through the API here: nothing changes).
    let covered = server::app::ha::enable_zone_entirely(&pool.state, pool.seeded.zone_id).await.unwrap();
    assert_eq!(covered, 3);
    assert!(pool.state.db.host_ha_list().await.unwrap().iter().all(|host| host.effective()));
    pool.wait_all_available(60).await;
    let target = pool.seeded.hosts[1].name.clone();
    let vms = pool.protected_vms(&target, 2, 512).await;
    pool.pool.host(&target).unwrap().blip(Duration::from_secs(3));
    // Past every timeout a blip could trip: suspect (3 s), storage (4 s), self-fence (8 s).
    pool.watch_single_copies(Duration::from_secs(12)).await;
    assert_eq!(pool.fences(&target).await, 0, "a 3 s blip must never fence");
    let poll = pool.poll();
    for vm in &vms {
        assert_eq!(poll.running_on.get(vm), Some(&vec![target.clone()]), "the VMs stay where they ran");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.ha_state(&target).await.0 != HostHaState::Available {
        assert!(Instant::now() < deadline, "the host is not Available again: {}", pool.ha_state(&target).await.1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.stop().await;
}

/// A `parapet serve` process on a shared PostgreSQL database; killed (SIGKILL) when dropped.
struct ServeProcess {
    child: std::process::Child,
    _data_dir: tempfile::TempDir,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_on(url: &str) -> ServeProcess {
    let data_dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--database-url", url])
        .arg("--data-dir")
        .arg(data_dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(data_dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    ServeProcess { child, _data_dir: data_dir }
}

/// The lease's holder names its process id (`<host>-<pid>-<unique>`).
fn holder_pid(holder: &str) -> Option<u32> {
    holder.rsplit('-').nth(1)?.parse().ok()
}

#[tokio::test]
async fn two_servers_on_one_database_have_one_leader_and_the_other_takes_over_when_it_is_killed() {
    let database = api_client::PostgresDatabase::create("parapet_lease").await;
    let url = database.url.clone();
    // Migrate first, so the two servers do not race to create the schema.
    let db = server::db::Db::connect(&url).await.unwrap();

    // The second starts once the first has created the first admin (two first starts at the same
    // instant race to create it, and the loser exits).
    let mut servers = vec![serve_on(&url)];
    let leader = |deadline: u64| {
        let db = db.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(deadline);
            loop {
                let (holder, epoch, expires_at) = db.lease_current().await.unwrap();
                if expires_at > chrono::Utc::now().timestamp_millis() && !holder.is_empty() {
                    return (holder, epoch);
                }
                assert!(Instant::now() < until, "no server took the lease within {deadline} s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (first, epoch) = leader(60).await;
    servers.push(serve_on(&url));
    let pids: Vec<u32> = servers.iter().map(|server| server.child.id()).collect();
    let first_pid = holder_pid(&first).unwrap();
    assert!(pids.contains(&first_pid), "{first} is not one of {pids:?}");
    // For 4 s (sixteen renewals, the second server up and trying every 250 ms after its start), the
    // same server leads in the same epoch: the other one never took it.
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let (holder, now_epoch, _) = db.lease_current().await.unwrap();
        assert_eq!((holder.as_str(), now_epoch), (first.as_str(), epoch), "the lease changed hands while held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for server in &mut servers {
        assert!(server.child.try_wait().unwrap().is_none(), "both servers keep running");
    }
    // Kill the leader without a chance to release the lease: the other takes over after expiry.
    let killed_at = Instant::now();
    let index = pids.iter().position(|pid| *pid == first_pid).unwrap();
    drop(servers.remove(index));
    let until = Instant::now() + Duration::from_secs(15);
    let (second, second_epoch) = loop {
        let (holder, now_epoch, expires_at) = db.lease_current().await.unwrap();
        if holder != first && expires_at > chrono::Utc::now().timestamp_millis() {
            break (holder, now_epoch);
        }
        if Instant::now() > until {
            let log = std::fs::read_to_string(servers[0]._data_dir.path().join("stderr.log")).unwrap_or_default();
            panic!("nobody took over from the killed leader; the other server said:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("lease takeover after the leader was killed: {:.2} s", killed_at.elapsed().as_secs_f64());
    assert_eq!(holder_pid(&second), Some(servers[0].child.id()));
    assert_eq!(second_epoch, epoch + 1, "a takeover raises the epoch");

    drop(servers);
    db.close().await;
    database.drop().await;
}
