//! Fills a Parapet database with a large inventory, for measuring the API under load.
//!
//! `cargo run --release -p server --example seed_vms -- --database URL --vms 5000 --hosts 50`
//!
//! URL is `sqlite:///path/parapet.db?mode=rwc` (a data directory's file) or `postgres://...`; the schema is
//! migrated first. It writes one zone, two clusters with shared NFS storage, `--hosts` hosts and `--vms`
//! VMs spread over them (every fifth one stopped and unplaced), through the same database functions the
//! server uses. `cargo xtask bench-api` runs it, then the server, then wrk against `GET /api/v1/vms`.

use anyhow::{Context, ensure};
use api::agent::HostRegistration;
use api::v1::{HypervisorKind, Resources, RestartPriority, StorageKind};
use clap::Parser;
use server::db::{Db, NewOffering, NewStoragePool, NewVm};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Database URL (sqlite://FILE?mode=rwc or postgres://...).
    #[arg(long)]
    database: String,
    #[arg(long, default_value_t = 5000)]
    vms: usize,
    #[arg(long, default_value_t = 50)]
    hosts: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.hosts >= 2, "--hosts must be at least 2 (one per cluster)");
    let started = Instant::now();
    let db = Db::connect(&args.database).await.with_context(|| format!("cannot open {}", args.database))?;
    let zone = db.zone_insert("bench-zone", &server::demo::random_token()).await?;
    let template = db.template_list().await?.into_iter().next().context("the migrations seed no template")?;
    let offering = db
        .offering_insert(NewOffering {
            name: "bench-small",
            description: "1 vCPU, 512 MB",
            cpu_cores: 1,
            cpu_mhz: 500,
            memory_mb: 512,
            host_tags: &[],
            offer_ha: true,
        })
        .await?;
    let mut placements = Vec::new();
    for (index, letter) in ['a', 'b'].into_iter().enumerate() {
        let cluster = db.cluster_insert(zone.id, &format!("bench-{letter}")).await?;
        let url = format!("nfs://bench-{letter}/export");
        let pool = db
            .storage_pool_insert(NewStoragePool {
                zone_id: zone.id,
                cluster_id: Some(cluster.id),
                host_id: None,
                name: &format!("primary-{letter}"),
                kind: StorageKind::Nfs,
                url: &url,
                capacity_gb: 100_000,
            })
            .await?;
        for number in (index..args.hosts).step_by(2) {
            let registration = HostRegistration {
                name: format!("bench-host-{number:03}"),
                address: format!("10.99.{}.{}", number / 250, number % 250 + 1),
                cluster: cluster.name.clone(),
                hypervisor: HypervisorKind::Kvm,
                capacity: Resources { cpu_cores: 64, cpu_mhz: 64 * 2600, memory_mb: 1024 * 1024 },
                mounted_storage: vec![url.clone()],
                agent_version: "bench".to_owned(),
                peer_port: None,
            };
            let host = db.host_register(zone.id, cluster.id, &registration).await?;
            placements.push((host, pool.id));
        }
    }
    for index in 0..args.vms {
        let (host, pool) = placements[index % placements.len()];
        let name = format!("bench-vm-{index:05}");
        db.vm_insert(NewVm {
            name: &name,
            template_id: template.id,
            network: "default",
            zone_id: zone.id,
            host_id: (index % 5 != 0).then_some(host),
            offering_id: offering.id,
            storage_pool_id: pool,
            ha_protected: index % 3 == 0,
            restart_priority: if index % 3 == 0 { RestartPriority::Restart } else { RestartPriority::BestEffort },
        })
        .await?;
    }
    let count = db.vm_list().await?.len();
    println!("seeded {count} VMs on {} hosts in {:.1} s", placements.len(), started.elapsed().as_secs_f64());
    db.close().await;
    Ok(())
}
