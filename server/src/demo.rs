//! `parapet demo`: a server on a fresh data directory with a seeded pool whose hosts are simulated by
//! `parapet-sim` (a separate process running real agent code), so anyone gets a working pool in one
//! command. The seed goes through the same paths as production: agents register over the network, the
//! demo VMs are started by commands to those agents, and each host's out-of-band management is
//! configured from the simulated BMC `parapet-sim` describes (through the app layer, so the BMC
//! passwords are sealed like any other) and switched on at zone, cluster and host.

use crate::app::AppError;
use crate::db::{Db, NewOffering, NewStoragePool, NewVm};
use crate::http;
use crate::state::AppState;
use api::v1::{ComputeOffering, ConfigureOobmRequest, OobmDriver, RedfishAuth, RestartPriority, StorageKind, VmState};
use api::{ClusterId, StoragePoolId, ZoneId};
use rand::Rng;
use std::time::{Duration, Instant};

/// One simulated host for `parapet-sim --host NAME:CLUSTER:STORAGE_URL`.
#[derive(Clone, Debug)]
pub struct DemoHost {
    pub name: String,
    pub cluster: String,
    pub storage_url: String,
}

pub struct DemoPool {
    pub join_token: String,
    pub hosts: Vec<DemoHost>,
    pub offerings: Vec<ComputeOffering>,
    pub storage: Vec<(ClusterId, StoragePoolId)>,
    pub zone_id: ZoneId,
}

pub fn random_token() -> String {
    let bytes: [u8; 24] = rand::thread_rng().r#gen();
    hex::encode(bytes)
}

/// Zone, clusters, NFS primary storage per cluster and compute offerings.
pub async fn seed(db: &Db, clusters: usize, hosts_per_cluster: usize) -> Result<DemoPool, AppError> {
    let join_token = random_token();
    let zone = db.zone_insert("zone-1", &http::token_hash(&join_token)).await?;
    let mut hosts = Vec::new();
    let mut storage = Vec::new();
    for index in 0..clusters {
        let letter = (b'a' + index as u8) as char;
        let cluster = db.cluster_insert(zone.id, &format!("cluster-{letter}")).await?;
        let url = format!("nfs://storage-{letter}.demo/export/primary");
        let pool = db
            .storage_pool_insert(NewStoragePool {
                zone_id: zone.id,
                cluster_id: Some(cluster.id),
                host_id: None,
                name: &format!("primary-{letter}"),
                kind: StorageKind::Nfs,
                url: &url,
                capacity_gb: 4096,
            })
            .await?;
        storage.push((cluster.id, pool.id));
        for number in 1..=hosts_per_cluster {
            hosts.push(DemoHost {
                name: format!("kvm-{letter}{number}"),
                cluster: cluster.name.clone(),
                storage_url: url.clone(),
            });
        }
    }
    let mut offerings = Vec::new();
    for (name, description, cores, mhz, memory, ha) in [
        ("small", "1 vCPU, 1 GB", 1, 1000, 1024, false),
        ("medium-ha", "2 vCPU, 4 GB, HA", 2, 2000, 4096, true),
        ("large-ha", "4 vCPU, 8 GB, HA", 4, 2000, 8192, true),
    ] {
        offerings.push(
            db.offering_insert(NewOffering {
                name,
                description,
                cpu_cores: cores,
                cpu_mhz: mhz,
                memory_mb: memory,
                host_tags: &[],
                offer_ha: ha,
            })
            .await?,
        );
    }
    Ok(DemoPool { join_token, hosts, offerings, storage, zone_id: zone.id })
}

/// Poll until every host of the pool has a connected agent.
pub async fn wait_for_hosts(state: &AppState, expected: usize, deadline: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let connected = state.hub.connected_hosts().len();
        if connected >= expected {
            return Ok(());
        }
        if started.elapsed() > deadline {
            anyhow::bail!("only {connected} of {expected} simulated hosts registered within {} s", deadline.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Create `count` VMs spread over the hosts and start them through their agents; wait until they run.
pub async fn deploy_vms(state: &AppState, pool: &DemoPool, count: usize, deadline: Duration) -> anyhow::Result<()> {
    let hosts = state.db.host_list().await?;
    anyhow::ensure!(!hosts.is_empty(), "no hosts to deploy the demo VMs on");
    let names = ["web", "db", "cache", "app", "mail", "dns"];
    let mut ids = Vec::new();
    for index in 0..count {
        let host = &hosts[index % hosts.len()];
        let offering = &pool.offerings[index % pool.offerings.len()];
        let storage_pool_id = pool
            .storage
            .iter()
            .find(|(cluster, _)| *cluster == host.cluster_id)
            .map(|(_, pool)| *pool)
            .ok_or_else(|| anyhow::anyhow!("cluster of {} has no primary storage", host.name))?;
        let vm = state
            .db
            .vm_insert(NewVm {
                template_id: crate::db::default_template_id(),
                network: "default",
                name: &format!("{}-{:02}", names[index % names.len()], index + 1),
                zone_id: pool.zone_id,
                host_id: Some(host.id),
                offering_id: offering.id,
                storage_pool_id,
                ha_protected: offering.offer_ha,
                restart_priority: if offering.offer_ha {
                    RestartPriority::Restart
                } else {
                    RestartPriority::DoNotRestart
                },
            })
            .await?;
        // Seeding: the demo's VMs start as placed; the capacity reconciler then judges the plan.
        crate::app::vms::start_without_admission(state, vm.id)
            .await
            .map_err(|error| anyhow::anyhow!("starting {}: {error}", vm.name))?;
        ids.push(vm.id);
    }
    let started = Instant::now();
    loop {
        let vms = state.db.vm_list().await?;
        let running = vms.iter().filter(|vm| ids.contains(&vm.id) && vm.state == VmState::Running).count();
        if running == ids.len() {
            return Ok(());
        }
        if started.elapsed() > deadline {
            anyhow::bail!("only {running} of {} demo VMs were running after {} s", ids.len(), deadline.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One simulated host's BMC as `parapet-sim` describes it: one JSON line on its standard output (the
/// simulator's `BmcInfo`). The password goes only to the app layer, which seals it; `Debug` masks it.
#[derive(Clone, serde::Deserialize)]
pub struct DemoBmc {
    pub host: String,
    pub driver: String,
    /// `http` or `https`.
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub username: String,
    password: String,
    /// The Redfish ComputerSystem id (the simulator uses the host's name).
    #[serde(default)]
    pub system_id: Option<String>,
}

impl std::fmt::Debug for DemoBmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBmc")
            .field("host", &self.host)
            .field("driver", &self.driver)
            .field("protocol", &self.protocol)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"••••")
            .field("system_id", &self.system_id)
            .finish()
    }
}

/// Why a line of the simulator's output is not a BMC description. Never carries the line itself,
/// which may hold a password.
#[derive(Debug, thiserror::Error)]
#[error("the simulator printed an unreadable BMC line ({category} error at column {column})")]
pub struct BmcLineError {
    category: &'static str,
    column: usize,
}

impl DemoBmc {
    /// Reads one line of `parapet-sim`'s standard output: `Ok(None)` for a line of another kind
    /// (`"type"` other than `"bmc"`), an error for one that is not a BMC description.
    pub fn parse_line(line: &str) -> Result<Option<DemoBmc>, BmcLineError> {
        let unreadable = |error: serde_json::Error| BmcLineError {
            category: match error.classify() {
                serde_json::error::Category::Io => "read",
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "syntax",
                serde_json::error::Category::Data => "field",
            },
            column: error.column(),
        };
        let value: serde_json::Value = serde_json::from_str(line).map_err(unreadable)?;
        if value.get("type").and_then(serde_json::Value::as_str) != Some("bmc") {
            return Ok(None);
        }
        serde_json::from_value(value).map(Some).map_err(unreadable)
    }

    /// The configuration request for this BMC (Redfish only: what the simulator speaks).
    fn request(&self) -> anyhow::Result<ConfigureOobmRequest> {
        anyhow::ensure!(
            self.driver == "redfish",
            "the simulated BMC of {} speaks {:?}; the demo configures Redfish only",
            self.host,
            self.driver
        );
        let https = match self.protocol.as_str() {
            "http" => false,
            "https" => true,
            other => anyhow::bail!("the simulated BMC of {} uses protocol {other:?}", self.host),
        };
        Ok(ConfigureOobmRequest {
            driver: OobmDriver::Redfish,
            address: self.address.clone(),
            port: Some(self.port),
            username: self.username.clone(),
            password: Some(self.password.clone()),
            ipmi_cipher_suite: None,
            redfish_https: Some(https),
            redfish_accept_self_signed: false,
            redfish_auth: RedfishAuth::Basic,
            redfish_system_id: self.system_id.clone(),
        })
    }
}

/// Configure every demo host's out-of-band management from its simulated BMC and switch it on for
/// the zone, the hosts' clusters and the hosts, through the same app-layer rules as the API (the
/// password is sealed with the server's secrets key; the power-state sync is woken). Answers how
/// many hosts were configured.
pub async fn configure_oobm(state: &AppState, zone: ZoneId, bmcs: &[DemoBmc]) -> anyhow::Result<usize> {
    use crate::app::oobm;
    let hosts = state.db.host_list().await?;
    let mut clusters = Vec::new();
    for bmc in bmcs {
        let host = hosts
            .iter()
            .find(|host| host.name == bmc.host)
            .ok_or_else(|| anyhow::anyhow!("no registered host {} for its simulated BMC", bmc.host))?;
        oobm::configure(state, host.id, bmc.request()?)
            .await
            .map_err(|error| anyhow::anyhow!("configuring the BMC of {}: {error}", host.name))?;
        oobm::set_host_enabled(state, host.id, true)
            .await
            .map_err(|error| anyhow::anyhow!("enabling OOBM for {}: {error}", host.name))?;
        if !clusters.contains(&host.cluster_id) {
            clusters.push(host.cluster_id);
        }
    }
    for cluster in clusters {
        oobm::set_cluster_enabled(state, cluster, true)
            .await
            .map_err(|error| anyhow::anyhow!("enabling OOBM for cluster {cluster}: {error}"))?;
    }
    oobm::set_zone_enabled(state, zone, true)
        .await
        .map_err(|error| anyhow::anyhow!("enabling OOBM for the zone: {error}"))?;
    Ok(bmcs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_lines_are_read_without_ever_showing_the_password() {
        let line = r#"{"type":"bmc","host":"kvm-a1","driver":"redfish","protocol":"http","address":"127.0.0.1","port":40123,"username":"admin","password":"pw-Secret-123","system_id":"kvm-a1"}"#;
        let bmc = DemoBmc::parse_line(line).unwrap().unwrap();
        assert_eq!((bmc.host.as_str(), bmc.port), ("kvm-a1", 40123));
        assert!(!format!("{bmc:?}").contains("pw-Secret-123"));
        let request = bmc.request().unwrap();
        assert_eq!((request.redfish_https, request.port), (Some(false), Some(40123)));
        assert_eq!(request.redfish_system_id.as_deref(), Some("kvm-a1"));
        assert!(!format!("{request:?}").contains("pw-Secret-123"));

        assert!(DemoBmc::parse_line(r#"{"type":"other","host":"x"}"#).unwrap().is_none());
        let broken = r#"{"type":"bmc","host":"kvm-a1","password":"pw-Secret-123","port":"x"}"#;
        let error = DemoBmc::parse_line(broken).unwrap_err().to_string();
        assert!(!error.contains("pw-Secret-123"), "{error}");
        assert!(DemoBmc::parse_line("not json pw-Secret-123").unwrap_err().to_string().contains("syntax"));
    }
}
