//! A pool for HA tests and the failover benchmark: a real server on a loopback port (fresh SQLite
//! data directory), simulated hosts running the real agent code, each with a simulated Redfish BMC
//! configured through the app layer, and HA switched on through the API. It can power a host off
//! through its BMC and watch the failover, checking at every poll that no VM runs on two hosts.
//!
//! Shared by `tests/ha_live.rs` and `examples/failover_bench.rs` (`#[path]`-included).

#![allow(dead_code)]

use api::VmId;
use api::v1::{HostHaState, VmState};
use server::config::ServerArgs;
use server::state::AppState;
use server::{Server, demo};
use sim::{BmcSettings, SimHostSpec, SimPool};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "ha-integration-pass-1";

pub struct HaPool {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: SimPool,
    pub state: AppState,
    pub seeded: demo::DemoPool,
    _data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How a VM looked at one poll: where the hypervisors really run it, and where the server says.
#[derive(Clone, Debug, Default)]
pub struct Poll {
    /// Per VM, the hosts whose hypervisor has it starting, running or stopping.
    pub running_on: HashMap<VmId, Vec<String>>,
}

impl HaPool {
    /// `hosts` simulated hosts in one cluster, all with BMCs, OOBM and HA on.
    pub async fn start(hosts: usize) -> HaPool {
        let data_dir = tempfile::tempdir().unwrap();
        let args = ServerArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.path().to_owned()),
            ..Default::default()
        };
        let server = Server::prepare(&args.resolve().unwrap(), Some(PASSWORD.into())).await.unwrap();
        let state = server.state.clone();
        let seeded = demo::seed(&state.db, 1, hosts).await.unwrap();
        let base = format!("http://{}", server.local_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        let specs = seeded
            .hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                let mut spec = SimHostSpec::standard(&host.name, &host.cluster, &host.storage_url, index);
                spec.boot_delay = Duration::from_millis(300);
                spec.shutdown_delay = Duration::from_millis(200);
                spec
            })
            .collect();
        let pool = SimPool::start_with_bmcs(&base, &seeded.join_token, specs, &BmcSettings::default()).unwrap();
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let context = HaPool { base, client, pool, state, seeded, _data_dir: data_dir, stop: Some(stop) };
        let response = context
            .call("POST", "/api/v1/auth/login", Some(serde_json::json!({"username": "admin", "password": PASSWORD})))
            .await;
        assert_eq!(response.0, 200, "sign-in: {}", response.1);
        demo::wait_for_hosts(&context.state, hosts, Duration::from_secs(30)).await.unwrap();
        let bmcs: Vec<demo::DemoBmc> = context
            .pool
            .bmcs
            .iter()
            .map(|bmc| {
                let line = serde_json::to_string(&bmc.info()).unwrap();
                demo::DemoBmc::parse_line(&line).unwrap().unwrap()
            })
            .collect();
        demo::configure_oobm(&context.state, context.seeded.zone_id, &bmcs).await.unwrap();
        context.enable_ha().await;
        context
    }

    pub fn cluster(&self) -> api::ClusterId {
        self.seeded.storage[0].0
    }

    /// HA on for the zone and the cluster with all its hosts, through the API.
    pub async fn enable_ha(&self) {
        let zone = format!("/api/v1/zones/{}/ha", self.seeded.zone_id);
        let (status, body) = self.call("PUT", &zone, Some(serde_json::json!({"enabled": true}))).await;
        assert_eq!(status, 200, "{body}");
        let cluster = format!("/api/v1/clusters/{}/ha", self.cluster());
        let request = serde_json::json!({"enabled": true, "include_hosts": true});
        let (status, body) = self.call("PUT", &cluster, Some(request)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// One API call: status and JSON body (Null when none).
    pub async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base)).header(api::v1::CSRF_HEADER, "1");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    pub async fn host_id(&self, name: &str) -> api::HostId {
        self.state.db.host_list().await.unwrap().into_iter().find(|host| host.name == name).unwrap().id
    }

    /// The host's HA state as the API shows it.
    pub async fn ha_state(&self, name: &str) -> (HostHaState, serde_json::Value) {
        let id = self.host_id(name).await;
        let (status, body) = self.call("GET", &format!("/api/v1/hosts/{id}/ha"), None).await;
        assert_eq!(status, 200, "{body}");
        (serde_json::from_value(body["state"].clone()).unwrap(), body)
    }

    /// Wait until every host is Available (HA in effect, heartbeats arriving).
    pub async fn wait_all_available(&self, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let mut waiting = Vec::new();
            for host in &self.seeded.hosts {
                let (state, body) = self.ha_state(&host.name).await;
                if state != HostHaState::Available {
                    waiting.push(format!("{}: {:?} ({})", host.name, state, body["reason"]));
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "hosts not Available after {seconds} s: {waiting:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Create `count` HA-protected VMs on `host` with an offering of `memory_mb` and 100 MHz, start
    /// them through their agent, and wait until they run.
    pub async fn protected_vms(&self, host: &str, count: usize, memory_mb: u64) -> Vec<VmId> {
        let db = &self.state.db;
        let name = format!("ha-{memory_mb}");
        let offering = match db.offering_list().await.unwrap().into_iter().find(|offering| offering.name == name) {
            Some(offering) => offering,
            None => db
                .offering_insert(server::db::NewOffering {
                    name: &name,
                    description: "HA test",
                    cpu_cores: 1,
                    cpu_mhz: 100,
                    memory_mb,
                    host_tags: &[],
                    offer_ha: true,
                })
                .await
                .unwrap(),
        };
        let host_id = self.host_id(host).await;
        let mut ids = Vec::new();
        for index in 0..count {
            let vm = db
                .vm_insert(server::db::NewVm {
                    template_id: server::db::default_template_id(),
                    network: "default",
                    name: &format!("{host}-vm-{index:03}"),
                    zone_id: self.seeded.zone_id,
                    host_id: Some(host_id),
                    offering_id: offering.id,
                    storage_pool_id: self.seeded.storage[0].1,
                    ha_protected: true,
                    restart_priority: api::v1::RestartPriority::Restart,
                })
                .await
                .unwrap();
            let (status, body) = self.call("POST", &format!("/api/v1/vms/{}/start", vm.id), None).await;
            assert_eq!(status, 202, "starting {}: {body}", vm.name);
            ids.push(vm.id);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The engine watches these starts too: it must never take one for a crash and run a copy.
            for (vm, hosts) in &self.poll().running_on {
                assert!(hosts.len() <= 1, "VM {vm} runs on two hosts at once: {hosts:?}");
            }
            let vms = db.vm_list_by_host(host_id).await.unwrap();
            let running = vms.iter().filter(|vm| ids.contains(&vm.id) && vm.state == VmState::Running).count();
            if running == ids.len() {
                return ids;
            }
            assert!(Instant::now() < deadline, "only {running} of {count} VMs running on {host}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where the simulated hypervisors really run each VM right now.
    pub fn poll(&self) -> Poll {
        let mut running_on: HashMap<VmId, Vec<String>> = HashMap::new();
        for host in &self.pool.hosts {
            for (vm, state) in host.hypervisor.list_vms_now() {
                if matches!(state, "starting" | "running" | "stopping" | "migrating out") {
                    running_on.entry(vm).or_default().push(host.spec.name.clone());
                }
            }
        }
        Poll { running_on }
    }

    /// Power `host` off through its BMC (the API's OOBM power action: a hard ForceOff).
    pub async fn power_off_through_bmc(&self, host: &str) {
        let id = self.host_id(host).await;
        let (status, body) = self
            .call("POST", &format!("/api/v1/hosts/{id}/oobm/power"), Some(serde_json::json!({"action": "OFF"})))
            .await;
        assert_eq!(status, 200, "power off {host}: {body}");
    }

    /// Poll until every VM of `vms` runs on a host other than `failed` (the hypervisors' truth and
    /// the server's record agree), failing after `seconds`. At every poll, no VM may run on two
    /// hosts. Answers the time from `since` and how many polls were checked.
    pub async fn wait_failover(&self, vms: &[VmId], failed: &str, since: Instant, seconds: u64) -> (Duration, usize) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut polls = 0;
        loop {
            let poll = self.poll();
            polls += 1;
            for (vm, hosts) in &poll.running_on {
                assert!(hosts.len() <= 1, "VM {vm} runs on two hosts at once: {hosts:?}");
            }
            let elsewhere = vms
                .iter()
                .filter(|vm| poll.running_on.get(vm).is_some_and(|hosts| hosts.iter().all(|host| host != failed)))
                .count();
            if elsewhere == vms.len() {
                let records = self.state.db.vm_list().await.unwrap();
                let recorded = records
                    .iter()
                    .filter(|vm| vms.contains(&vm.id) && vm.state == VmState::Running)
                    .all(|vm| poll.running_on.get(&vm.id).is_some_and(|hosts| hosts.len() == 1));
                let running = records.iter().filter(|vm| vms.contains(&vm.id) && vm.state == VmState::Running).count();
                if recorded && running == vms.len() {
                    return (since.elapsed(), polls);
                }
            }
            assert!(
                Instant::now() < deadline,
                "after {seconds} s only {elsewhere} of {} VMs run away from {failed}",
                vms.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many times `host` entered Fencing (OOBM power OFF decided), from its stored transitions.
    pub async fn fences(&self, host: &str) -> usize {
        let (_, body) = self.ha_state(host).await;
        body["transitions"]
            .as_array()
            .map(|transitions| transitions.iter().filter(|transition| transition["to"] == "fencing").count())
            .unwrap_or(0)
    }

    /// Fail if any VM runs on two hosts, polling for `duration`.
    pub async fn watch_single_copies(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            for (vm, hosts) in &self.poll().running_on {
                assert!(hosts.len() <= 1, "VM {vm} runs on two hosts at once: {hosts:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        self.pool.shutdown().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
