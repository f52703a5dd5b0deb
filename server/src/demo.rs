//! `parapet demo`: a server on a fresh data directory with a seeded pool whose hosts are simulated by
//! `parapet-sim` (a separate process running real agent code), so anyone gets a working pool in one
//! command. The seed goes through the same paths as production: agents register over the network, and
//! the demo VMs are started by commands to those agents.

use crate::app::AppError;
use crate::db::{Db, NewOffering, NewStoragePool, NewVm};
use crate::http;
use crate::state::AppState;
use api::v1::{ComputeOffering, RestartPriority, StorageKind, VmState};
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
