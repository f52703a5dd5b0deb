//! Zones, clusters, hosts, primary storage, compute offerings and VMs.

use super::*;
use api::agent::HostRegistration;
use api::v1::*;
use api::*;
use std::collections::HashMap;

/// A zone as stored, including what the API never shows (the join token's hash).
#[derive(Clone, Debug)]
pub struct ZoneRecord {
    pub zone: Zone,
    pub join_token_hash: String,
}

pub struct NewStoragePool<'a> {
    pub zone_id: ZoneId,
    pub cluster_id: Option<ClusterId>,
    pub host_id: Option<HostId>,
    pub name: &'a str,
    pub kind: StorageKind,
    pub url: &'a str,
    pub capacity_gb: u64,
}

pub struct NewOffering<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub cpu_cores: u32,
    pub cpu_mhz: u32,
    pub memory_mb: u64,
    pub host_tags: &'a [String],
    pub offer_ha: bool,
}

pub struct NewVm<'a> {
    pub name: &'a str,
    pub template_id: TemplateId,
    pub network: &'a str,
    pub zone_id: ZoneId,
    pub host_id: Option<HostId>,
    pub offering_id: OfferingId,
    pub storage_pool_id: StoragePoolId,
    pub ha_protected: bool,
    pub restart_priority: RestartPriority,
}

fn zone_from_row(row: &AnyRow) -> DbResult<ZoneRecord> {
    Ok(ZoneRecord {
        zone: Zone {
            id: get_id(row, "id")?,
            name: row.try_get("name")?,
            ha_enabled: get_bool(row, "ha_enabled")?,
            oobm_enabled: get_bool(row, "oobm_enabled")?,
        },
        join_token_hash: row.try_get("join_token_hash")?,
    })
}

fn cluster_from_row(row: &AnyRow) -> DbResult<Cluster> {
    let ha_failure_limit = get_u32(row, "ha_failure_limit")?;
    let stored = StoredCapacity::from_column(row.try_get("ha_capacity")?)?;
    let evaluated_at: Option<i64> = row.try_get("ha_evaluated_at")?;
    let method: Option<String> = row.try_get("ha_plan_method")?;
    let ha_plan = match (stored, evaluated_at) {
        (StoredCapacity::Evaluated(capacity), Some(at)) => Some(ClusterPlanSummary {
            max_failure_capacity: capacity,
            plan_exists_for: capacity.map_or(0, |capacity| capacity.min(ha_failure_limit)),
            overcommitted: capacity.is_none_or(|capacity| capacity < ha_failure_limit),
            method: method.unwrap_or_default(),
            evaluated_at: ms_to_time(at),
        }),
        _ => None,
    };
    Ok(Cluster {
        id: get_id(row, "id")?,
        zone_id: get_id(row, "zone_id")?,
        name: row.try_get("name")?,
        ha_enabled: get_bool(row, "ha_enabled")?,
        oobm_enabled: get_bool(row, "oobm_enabled")?,
        ha_failure_limit,
        ha_plan,
    })
}

/// A cluster's plan as the capacity reconciler last stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPlan {
    pub capacity: StoredCapacity,
    /// The planner's `method` then (`trivial` when nothing was protected).
    pub method: Option<String>,
}

/// A cluster's max failure capacity as the capacity reconciler last stored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredCapacity {
    /// Never evaluated yet.
    Unknown,
    /// Evaluated: `None` when not even today's protected VMs could all run.
    Evaluated(Option<u32>),
}

impl StoredCapacity {
    /// The column's encoding: NULL never evaluated, -1 no plan, else the capacity.
    fn from_column(value: Option<i64>) -> DbResult<StoredCapacity> {
        match value {
            None => Ok(StoredCapacity::Unknown),
            Some(-1) => Ok(StoredCapacity::Evaluated(None)),
            Some(value) => u32::try_from(value)
                .map(|capacity| StoredCapacity::Evaluated(Some(capacity)))
                .map_err(|_| DbError::Corrupt(format!("clusters.ha_capacity = {value} is out of range"))),
        }
    }

    /// The value compared against the column in a compare-and-set (NULL compares as -2).
    fn compare_value(self) -> i64 {
        match self {
            StoredCapacity::Unknown => -2,
            StoredCapacity::Evaluated(None) => -1,
            StoredCapacity::Evaluated(Some(capacity)) => i64::from(capacity),
        }
    }
}

/// Set a cluster's failure limit together with another write, in the same transaction (admission
/// control's "lower the limit and proceed").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitChange {
    pub cluster_id: ClusterId,
    pub limit: u32,
}

async fn apply_limit_change(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    change: Option<LimitChange>,
) -> DbResult<()> {
    if let Some(change) = change {
        let result = sqlx::query("UPDATE clusters SET ha_failure_limit = $1 WHERE id = $2")
            .bind(i64::from(change.limit))
            .bind(change.cluster_id.to_string())
            .execute(&mut **tx)
            .await?;
        if result.rows_affected() != 1 {
            return Err(DbError::Refused(format!("cluster {} no longer exists", change.cluster_id)));
        }
    }
    Ok(())
}

fn storage_from_row(row: &AnyRow) -> DbResult<StoragePool> {
    Ok(StoragePool {
        id: get_id(row, "id")?,
        zone_id: get_id(row, "zone_id")?,
        cluster_id: get_opt_id(row, "cluster_id")?,
        host_id: get_opt_id(row, "host_id")?,
        name: row.try_get("name")?,
        kind: get_enum(row, "kind")?,
        scope: get_enum(row, "scope")?,
        url: row.try_get("url")?,
        capacity_gb: get_u64(row, "capacity_gb")?,
    })
}

fn offering_from_row(row: &AnyRow) -> DbResult<ComputeOffering> {
    Ok(ComputeOffering {
        id: get_id(row, "id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        cpu_cores: get_u32(row, "cpu_cores")?,
        cpu_mhz: get_u32(row, "cpu_mhz")?,
        memory_mb: get_u64(row, "memory_mb")?,
        host_tags: get_string_list(row, "host_tags")?,
        offer_ha: get_bool(row, "offer_ha")?,
    })
}

/// A VM's resources: per-core speed times cores, as CloudStack counts CPU allocation.
fn vm_resources(row: &AnyRow) -> DbResult<Resources> {
    let cpu_cores = get_u32(row, "o_cpu_cores")?;
    Ok(Resources {
        cpu_cores,
        cpu_mhz: cpu_cores.saturating_mul(get_u32(row, "o_cpu_mhz")?),
        memory_mb: get_u64(row, "o_memory_mb")?,
    })
}

fn vm_from_row(row: &AnyRow) -> DbResult<Vm> {
    Ok(Vm {
        id: get_id(row, "id")?,
        name: row.try_get("name")?,
        zone_id: get_id(row, "zone_id")?,
        cluster_id: get_opt_id(row, "h_cluster_id")?,
        host_id: get_opt_id(row, "host_id")?,
        offering_id: get_id(row, "offering_id")?,
        storage_pool_id: get_id(row, "storage_pool_id")?,
        state: get_enum(row, "state")?,
        state_reason: row.try_get("state_reason")?,
        resources: vm_resources(row)?,
        ha_protected: get_bool(row, "ha_protected")?,
        restart_priority: get_enum(row, "restart_priority")?,
        start_order: i32::try_from(row.try_get::<i64, _>("start_order")?)
            .map_err(|_| DbError::Corrupt("start_order is out of range".into()))?,
        start_delay_seconds: get_u32(row, "start_delay_seconds")?,
        template_id: get_id(row, "template_id")?,
        network: row.try_get("network")?,
        generation: row.try_get("generation")?,
        updated_at: ms_to_time(row.try_get("updated_at")?),
    })
}

/// The catalogue's Debian template (seeded by the migrations), for seeds and tests.
pub fn default_template_id() -> TemplateId {
    TemplateId(uuid::Uuid::from_u128(0x6f1c1b8e_0c1a_4f53_9d0e_000000000001))
}

const VM_SELECT: &str = "SELECT v.id, v.name, v.zone_id, v.host_id, v.offering_id, v.storage_pool_id, v.state,
        v.state_reason, v.ha_protected, v.restart_priority, v.generation, v.updated_at, v.start_order,
        v.start_delay_seconds, v.template_id, v.network,
        o.cpu_cores AS o_cpu_cores, o.cpu_mhz AS o_cpu_mhz, o.memory_mb AS o_memory_mb,
        h.cluster_id AS h_cluster_id
    FROM vms v
    JOIN compute_offerings o ON o.id = v.offering_id
    LEFT JOIN hosts h ON h.id = v.host_id";

const HOST_SELECT: &str = "SELECT id, zone_id, cluster_id, name, address, hypervisor, allocation, connected,
        last_heartbeat_at, cpu_cores, cpu_mhz, memory_mb, tags, maintenance FROM hosts";

impl Db {
    pub async fn zone_insert(&self, name: &str, join_token_hash: &str) -> DbResult<Zone> {
        let id = ZoneId::new_random();
        sqlx::query(
            "INSERT INTO zones (id, name, ha_enabled, oobm_enabled, join_token_hash, created_at)
             VALUES ($1, $2, 0, 0, $3, $4)",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(join_token_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|error| conflict_or(error, format!("zone {name:?}")))?;
        Ok(Zone { id, name: name.to_owned(), ha_enabled: false, oobm_enabled: false })
    }

    pub async fn zone_list(&self) -> DbResult<Vec<Zone>> {
        let rows = sqlx::query("SELECT * FROM zones ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|row| zone_from_row(row).map(|record| record.zone)).collect()
    }

    pub async fn zone_fetch_by_token_hash(&self, hash: &str) -> DbResult<Option<ZoneRecord>> {
        let row =
            sqlx::query("SELECT * FROM zones WHERE join_token_hash = $1").bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(zone_from_row).transpose()
    }

    pub async fn cluster_insert(&self, zone_id: ZoneId, name: &str) -> DbResult<Cluster> {
        let id = ClusterId::new_random();
        sqlx::query(
            "INSERT INTO clusters (id, zone_id, name, ha_enabled, oobm_enabled, created_at)
             VALUES ($1, $2, $3, 0, 0, $4)",
        )
        .bind(id.to_string())
        .bind(zone_id.to_string())
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|error| conflict_or(error, format!("cluster {name:?}")))?;
        self.cluster_fetch(id).await?.ok_or_else(|| DbError::Corrupt(format!("cluster {id} vanished after insert")))
    }

    pub async fn cluster_fetch(&self, id: ClusterId) -> DbResult<Option<Cluster>> {
        let row =
            sqlx::query("SELECT * FROM clusters WHERE id = $1").bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(cluster_from_row).transpose()
    }

    /// Set a cluster's host failure limit; answers the updated cluster, `None` when there is none.
    pub async fn cluster_set_failure_limit(&self, id: ClusterId, limit: u32) -> DbResult<Option<Cluster>> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("UPDATE clusters SET ha_failure_limit = $1 WHERE id = $2")
            .bind(i64::from(limit))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.cluster_fetch(id).await
    }

    /// The capacity reconciler stores what it computed, if the stored value is still `previous`
    /// (compare-and-set: of several servers evaluating at once, one sees each change). Answers
    /// whether it was stored.
    pub async fn cluster_record_plan(
        &self,
        id: ClusterId,
        previous: StoredCapacity,
        capacity: Option<u32>,
        method: &str,
    ) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE clusters SET ha_capacity = $1, ha_plan_method = $2, ha_evaluated_at = $3
             WHERE id = $4 AND COALESCE(ha_capacity, -2) = $5",
        )
        .bind(StoredCapacity::Evaluated(capacity).compare_value())
        .bind(method)
        .bind(now_ms())
        .bind(id.to_string())
        .bind(previous.compare_value())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// What the capacity reconciler last stored for a cluster; `None` when there is no such cluster.
    pub async fn cluster_stored_plan(&self, id: ClusterId) -> DbResult<Option<StoredPlan>> {
        let row = sqlx::query("SELECT ha_capacity, ha_plan_method FROM clusters WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(StoredPlan {
                capacity: StoredCapacity::from_column(row.try_get("ha_capacity")?)?,
                method: row.try_get("ha_plan_method")?,
            })
        })
        .transpose()
    }

    pub async fn cluster_list(&self) -> DbResult<Vec<Cluster>> {
        let rows = sqlx::query("SELECT * FROM clusters ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(cluster_from_row).collect()
    }

    pub async fn cluster_fetch_by_name(&self, zone_id: ZoneId, name: &str) -> DbResult<Option<Cluster>> {
        let row = sqlx::query("SELECT * FROM clusters WHERE zone_id = $1 AND name = $2")
            .bind(zone_id.to_string())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cluster_from_row).transpose()
    }

    pub async fn storage_pool_insert(&self, new: NewStoragePool<'_>) -> DbResult<StoragePool> {
        let id = StoragePoolId::new_random();
        let scope = if new.host_id.is_some() { StorageScope::Host } else { StorageScope::Cluster };
        sqlx::query(
            "INSERT INTO storage_pools (id, zone_id, cluster_id, host_id, name, kind, scope, url, capacity_gb, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.to_string())
        .bind(new.zone_id.to_string())
        .bind(new.cluster_id.map(|id| id.to_string()))
        .bind(new.host_id.map(|id| id.to_string()))
        .bind(new.name)
        .bind(enum_text(&new.kind))
        .bind(enum_text(&scope))
        .bind(new.url)
        .bind(new.capacity_gb as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|error| conflict_or(error, format!("storage pool {:?}", new.name)))?;
        Ok(StoragePool {
            id,
            zone_id: new.zone_id,
            cluster_id: new.cluster_id,
            host_id: new.host_id,
            name: new.name.to_owned(),
            kind: new.kind,
            scope,
            url: new.url.to_owned(),
            capacity_gb: new.capacity_gb,
        })
    }

    pub async fn storage_pool_list(&self) -> DbResult<Vec<StoragePool>> {
        let rows = sqlx::query("SELECT * FROM storage_pools ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(storage_from_row).collect()
    }

    pub async fn storage_pool_fetch(&self, id: StoragePoolId) -> DbResult<Option<StoragePool>> {
        let row = sqlx::query("SELECT * FROM storage_pools WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(storage_from_row).transpose()
    }

    pub async fn offering_insert(&self, new: NewOffering<'_>) -> DbResult<ComputeOffering> {
        let id = OfferingId::new_random();
        sqlx::query(
            "INSERT INTO compute_offerings (id, name, description, cpu_cores, cpu_mhz, memory_mb, host_tags, offer_ha, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.to_string())
        .bind(new.name)
        .bind(new.description)
        .bind(i64::from(new.cpu_cores))
        .bind(i64::from(new.cpu_mhz))
        .bind(new.memory_mb as i64)
        .bind(string_list(new.host_tags))
        .bind(flag(new.offer_ha))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|error| conflict_or(error, format!("compute offering {:?}", new.name)))?;
        Ok(ComputeOffering {
            id,
            name: new.name.to_owned(),
            description: new.description.to_owned(),
            cpu_cores: new.cpu_cores,
            cpu_mhz: new.cpu_mhz,
            memory_mb: new.memory_mb,
            host_tags: new.host_tags.to_vec(),
            offer_ha: new.offer_ha,
        })
    }

    pub async fn offering_list(&self) -> DbResult<Vec<ComputeOffering>> {
        let rows = sqlx::query("SELECT * FROM compute_offerings ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(offering_from_row).collect()
    }

    pub async fn offering_fetch(&self, id: OfferingId) -> DbResult<Option<ComputeOffering>> {
        let row = sqlx::query("SELECT * FROM compute_offerings WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(offering_from_row).transpose()
    }

    /// Record an agent's registration: the host is found by (zone, name) or created, its facts
    /// replaced, its mounted storage matched to known pools by URL. One transaction.
    pub async fn host_register(
        &self,
        zone_id: ZoneId,
        cluster_id: ClusterId,
        registration: &HostRegistration,
    ) -> DbResult<HostId> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT id FROM hosts WHERE zone_id = $1 AND name = $2")
            .bind(zone_id.to_string())
            .bind(&registration.name)
            .fetch_optional(&mut *tx)
            .await?;
        let now = now_ms();
        let host_id = match existing {
            Some(row) => {
                let host_id: HostId = get_id(&row, "id")?;
                sqlx::query(
                    "UPDATE hosts SET cluster_id = $1, address = $2, hypervisor = $3, connected = 1,
                        last_heartbeat_at = $4, cpu_cores = $5, cpu_mhz = $6, memory_mb = $7, agent_version = $8
                     WHERE id = $9",
                )
                .bind(cluster_id.to_string())
                .bind(&registration.address)
                .bind(enum_text(&registration.hypervisor))
                .bind(now)
                .bind(i64::from(registration.capacity.cpu_cores))
                .bind(i64::from(registration.capacity.cpu_mhz))
                .bind(registration.capacity.memory_mb as i64)
                .bind(&registration.agent_version)
                .bind(host_id.to_string())
                .execute(&mut *tx)
                .await?;
                host_id
            }
            None => {
                let host_id = HostId::new_random();
                sqlx::query(
                    "INSERT INTO hosts (id, zone_id, cluster_id, name, address, hypervisor, allocation, connected,
                        last_heartbeat_at, cpu_cores, cpu_mhz, memory_mb, tags, agent_version, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'enabled', 1, $7, $8, $9, $10, '[]', $11, $12)",
                )
                .bind(host_id.to_string())
                .bind(zone_id.to_string())
                .bind(cluster_id.to_string())
                .bind(&registration.name)
                .bind(&registration.address)
                .bind(enum_text(&registration.hypervisor))
                .bind(now)
                .bind(i64::from(registration.capacity.cpu_cores))
                .bind(i64::from(registration.capacity.cpu_mhz))
                .bind(registration.capacity.memory_mb as i64)
                .bind(&registration.agent_version)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                host_id
            }
        };
        sqlx::query("DELETE FROM host_storage WHERE host_id = $1").bind(host_id.to_string()).execute(&mut *tx).await?;
        for url in &registration.mounted_storage {
            let pool = sqlx::query("SELECT id FROM storage_pools WHERE zone_id = $1 AND url = $2")
                .bind(zone_id.to_string())
                .bind(url)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(pool) = pool {
                let pool_id: String = pool.try_get("id")?;
                sqlx::query("INSERT INTO host_storage (host_id, storage_pool_id) VALUES ($1, $2)")
                    .bind(host_id.to_string())
                    .bind(pool_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(host_id)
    }

    pub async fn host_set_connected(&self, id: HostId, connected: bool) -> DbResult<()> {
        sqlx::query("UPDATE hosts SET connected = $1 WHERE id = $2")
            .bind(flag(connected))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a network heartbeat received at `at_ms`. Only ever moves forward: a late write from an
    /// older connection must not move the HA engine's "last heard" back in time.
    pub async fn host_record_heartbeat(&self, id: HostId, at_ms: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE hosts SET last_heartbeat_at = $1 WHERE id = $2 AND (last_heartbeat_at IS NULL OR last_heartbeat_at < $1)",
        )
            .bind(at_ms)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Hosts with their allocation and VM counts computed from the VMs placed on them.
    pub async fn host_list(&self) -> DbResult<Vec<Host>> {
        self.hosts_where(None).await
    }

    pub async fn host_fetch(&self, id: HostId) -> DbResult<Option<Host>> {
        Ok(self.hosts_where(Some(id)).await?.into_iter().next())
    }

    async fn hosts_where(&self, only: Option<HostId>) -> DbResult<Vec<Host>> {
        let only_text = only.map(|id| id.to_string());
        let host_rows = match &only_text {
            Some(id) => {
                let sql = format!("{HOST_SELECT} WHERE id = $1");
                sqlx::query(&sql).bind(id).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!("{HOST_SELECT} ORDER BY name");
                sqlx::query(&sql).fetch_all(&self.pool).await?
            }
        };
        let vms = match only {
            Some(id) => self.vm_list_by_host(id).await?,
            None => self.vm_list().await?,
        };
        let storage_rows = match &only_text {
            Some(id) => {
                sqlx::query("SELECT host_id, storage_pool_id FROM host_storage WHERE host_id = $1")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT host_id, storage_pool_id FROM host_storage").fetch_all(&self.pool).await?,
        };
        let power = self.oobm_power_views(only).await?;
        let mut storage: HashMap<HostId, Vec<StoragePoolId>> = HashMap::new();
        for row in &storage_rows {
            storage.entry(get_id(row, "host_id")?).or_default().push(get_id(row, "storage_pool_id")?);
        }
        let mut hosts = Vec::with_capacity(host_rows.len());
        for row in &host_rows {
            let id: HostId = get_id(row, "id")?;
            let mut allocated = Resources { cpu_cores: 0, cpu_mhz: 0, memory_mb: 0 };
            let (mut vm_count, mut running_vm_count) = (0u32, 0u32);
            for vm in vms.iter().filter(|vm| vm.host_id == Some(id)) {
                allocated.cpu_cores += vm.resources.cpu_cores;
                allocated.cpu_mhz += vm.resources.cpu_mhz;
                allocated.memory_mb += vm.resources.memory_mb;
                vm_count += 1;
                if vm.state == VmState::Running {
                    running_vm_count += 1;
                }
            }
            let mut storage_pool_ids = storage.remove(&id).unwrap_or_default();
            storage_pool_ids.sort();
            let connected = get_bool(row, "connected")?;
            hosts.push(Host {
                id,
                zone_id: get_id(row, "zone_id")?,
                cluster_id: get_id(row, "cluster_id")?,
                name: row.try_get("name")?,
                address: row.try_get("address")?,
                hypervisor: get_enum(row, "hypervisor")?,
                allocation: get_enum(row, "allocation")?,
                connection: if connected { AgentConnection::Connected } else { AgentConnection::Disconnected },
                last_heartbeat_at: row.try_get::<Option<i64>, _>("last_heartbeat_at")?.map(ms_to_time),
                capacity: Resources {
                    cpu_cores: get_u32(row, "cpu_cores")?,
                    cpu_mhz: get_u32(row, "cpu_mhz")?,
                    memory_mb: get_u64(row, "memory_mb")?,
                },
                allocated,
                tags: get_string_list(row, "tags")?,
                storage_pool_ids,
                vm_count,
                running_vm_count,
                maintenance: row
                    .try_get::<Option<String>, _>("maintenance")?
                    .map(|text| serde_json::from_str(&text))
                    .transpose()
                    .map_err(|_| DbError::Corrupt("hosts.maintenance is not valid progress JSON".into()))?,
                oobm_enabled_effective: power.get(&id).is_some_and(|view| view.effective),
                power_state: power.get(&id).map_or(PowerState::Disabled, |view| view.power_state),
            });
        }
        Ok(hosts)
    }

    pub async fn vm_insert(&self, new: NewVm<'_>) -> DbResult<Vm> {
        let id = VmId::new_random();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO vms (id, name, zone_id, host_id, offering_id, storage_pool_id, state, state_reason,
                ha_protected, restart_priority, generation, updated_at, created_at, template_id, network)
             VALUES ($1, $2, $3, $4, $5, $6, 'stopped', NULL, $7, $8, 1, $9, $10, $11, $12)",
        )
        .bind(id.to_string())
        .bind(new.name)
        .bind(new.zone_id.to_string())
        .bind(new.host_id.map(|id| id.to_string()))
        .bind(new.offering_id.to_string())
        .bind(new.storage_pool_id.to_string())
        .bind(flag(new.ha_protected))
        .bind(enum_text(&new.restart_priority))
        .bind(now)
        .bind(now)
        .bind(new.template_id.to_string())
        .bind(new.network)
        .execute(&self.pool)
        .await
        .map_err(|error| conflict_or(error, format!("VM {:?}", new.name)))?;
        self.vm_fetch(id).await?.ok_or_else(|| DbError::Corrupt(format!("VM {id} vanished after insert")))
    }

    pub async fn vm_list(&self) -> DbResult<Vec<Vm>> {
        let sql = format!("{VM_SELECT} ORDER BY v.name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(vm_from_row).collect()
    }

    pub async fn vm_list_by_host(&self, host_id: HostId) -> DbResult<Vec<Vm>> {
        let sql = format!("{VM_SELECT} WHERE v.host_id = $1 ORDER BY v.name");
        let rows = sqlx::query(&sql).bind(host_id.to_string()).fetch_all(&self.pool).await?;
        rows.iter().map(vm_from_row).collect()
    }

    pub async fn vm_fetch(&self, id: VmId) -> DbResult<Option<Vm>> {
        let sql = format!("{VM_SELECT} WHERE v.id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(vm_from_row).transpose()
    }

    /// Set a VM's state; answers the updated VM only when something actually changed, so callers
    /// announce real changes and nothing else.
    pub async fn vm_set_state(&self, id: VmId, state: VmState, reason: Option<&str>) -> DbResult<Option<Vm>> {
        let result = sqlx::query(
            "UPDATE vms SET state = $1, state_reason = $2, updated_at = $3
             WHERE id = $4 AND (state <> $1 OR COALESCE(state_reason, '') <> COALESCE($2, ''))",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.vm_fetch(id).await
    }

    pub async fn inventory(&self) -> DbResult<Inventory> {
        Ok(Inventory {
            zones: self.zone_list().await?,
            clusters: self.cluster_list().await?,
            hosts: self.host_list().await?,
            vms: self.vm_list().await?,
            storage_pools: self.storage_pool_list().await?,
        })
    }
}

fn conflict_or(error: sqlx::Error, what: String) -> DbError {
    if is_unique_violation(&error) { DbError::Conflict(what) } else { DbError::Query(error) }
}

impl Db {
    /// After a lone server starts, no agent is connected to it yet; VMs of those hosts are unknown
    /// until their agents report again.
    pub async fn host_mark_all_disconnected(&self) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE hosts SET connected = 0").execute(&mut *tx).await?;
        sqlx::query(
            "UPDATE vms SET state = 'unknown', state_reason = 'the host''s agent is not connected', updated_at = $1
             WHERE host_id IS NOT NULL AND state <> 'unknown'",
        )
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn template_from_row(row: &AnyRow) -> DbResult<Template> {
    Ok(Template {
        id: get_id(row, "id")?,
        name: row.try_get("name")?,
        os: row.try_get("os")?,
        disk_gb: get_u64(row, "disk_gb")?,
    })
}

/// What an offering update may change; `None` keeps the stored value.
pub struct OfferingChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub cpu_cores: Option<u32>,
    pub cpu_mhz: Option<u32>,
    pub memory_mb: Option<u64>,
    pub host_tags: Option<&'a [String]>,
    pub offer_ha: Option<bool>,
}

impl Db {
    pub async fn template_list(&self) -> DbResult<Vec<Template>> {
        let rows = sqlx::query("SELECT * FROM templates ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(template_from_row).collect()
    }

    pub async fn template_fetch(&self, id: TemplateId) -> DbResult<Option<Template>> {
        let row = sqlx::query("SELECT * FROM templates WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    /// Apply changes in one transaction; CPU or memory changes are refused while a VM uses the
    /// offering (running VMs would no longer match what they were placed with).
    pub async fn offering_update(
        &self,
        id: OfferingId,
        changes: OfferingChanges<'_>,
    ) -> DbResult<Option<ComputeOffering>> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT * FROM compute_offerings WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let current = offering_from_row(&row)?;
        let resources_change = changes.cpu_cores.is_some_and(|v| v != current.cpu_cores)
            || changes.cpu_mhz.is_some_and(|v| v != current.cpu_mhz)
            || changes.memory_mb.is_some_and(|v| v != current.memory_mb);
        if resources_change {
            let used = vms_referencing(&mut tx, "offering_id", &id.to_string()).await?;
            if used > 0 {
                return Err(DbError::Refused(format!(
                    "compute offering {:?} is used by {used} VM(s); its CPU and memory cannot change",
                    current.name
                )));
            }
        }
        let name = changes.name.unwrap_or(&current.name);
        sqlx::query(
            "UPDATE compute_offerings SET name = $1, description = $2, cpu_cores = $3, cpu_mhz = $4, memory_mb = $5,
                host_tags = $6, offer_ha = $7 WHERE id = $8",
        )
        .bind(name)
        .bind(changes.description.unwrap_or(&current.description))
        .bind(i64::from(changes.cpu_cores.unwrap_or(current.cpu_cores)))
        .bind(i64::from(changes.cpu_mhz.unwrap_or(current.cpu_mhz)))
        .bind(changes.memory_mb.unwrap_or(current.memory_mb) as i64)
        .bind(string_list(changes.host_tags.unwrap_or(&current.host_tags)))
        .bind(flag(changes.offer_ha.unwrap_or(current.offer_ha)))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|error| conflict_or(error, format!("compute offering {name:?}")))?;
        tx.commit().await?;
        self.offering_fetch(id).await
    }

    /// Delete an offering no VM uses; answers false when there was none.
    pub async fn offering_delete(&self, id: OfferingId) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let used = vms_referencing(&mut tx, "offering_id", &id.to_string()).await?;
        if used > 0 {
            return Err(DbError::Refused(format!(
                "the compute offering is used by {used} VM(s); delete or change them first"
            )));
        }
        let result =
            sqlx::query("DELETE FROM compute_offerings WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// Change a VM's HA settings (absent ones stay) and, with `limit`, a cluster's failure limit, in
    /// one transaction.
    pub async fn vm_update_ha(
        &self,
        id: VmId,
        changes: &UpdateVmHaRequest,
        limit: Option<LimitChange>,
    ) -> DbResult<Option<Vm>> {
        let mut tx = self.begin_write().await?;
        let sql = format!("{VM_SELECT} WHERE v.id = $1");
        let Some(row) = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let current = vm_from_row(&row)?;
        sqlx::query(
            "UPDATE vms SET ha_protected = $1, ha_overridden = $2, restart_priority = $3, start_order = $4,
                start_delay_seconds = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(flag(changes.ha_protected.unwrap_or(current.ha_protected)))
        .bind(flag(changes.ha_protected.is_some()))
        .bind(enum_text(&changes.restart_priority.unwrap_or(current.restart_priority)))
        .bind(i64::from(changes.start_order.unwrap_or(current.start_order)))
        .bind(i64::from(changes.start_delay_seconds.unwrap_or(current.start_delay_seconds)))
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        apply_limit_change(&mut tx, limit).await?;
        tx.commit().await?;
        self.vm_fetch(id).await
    }

    pub async fn vm_delete(&self, id: VmId) -> DbResult<bool> {
        let result = sqlx::query("DELETE FROM vms WHERE id = $1").bind(id.to_string()).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Change a host's allocation and/or tags (absent ones stay) and, with `limit`, a cluster's
    /// failure limit, in one transaction.
    pub async fn host_update(
        &self,
        id: HostId,
        allocation: Option<HostAllocation>,
        tags: Option<&[String]>,
        limit: Option<LimitChange>,
    ) -> DbResult<Option<Host>> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT allocation, tags FROM hosts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let current_allocation: HostAllocation = get_enum(&row, "allocation")?;
        let current_tags = get_string_list(&row, "tags")?;
        sqlx::query("UPDATE hosts SET allocation = $1, tags = $2 WHERE id = $3")
            .bind(enum_text(&allocation.unwrap_or(current_allocation)))
            .bind(string_list(tags.unwrap_or(&current_tags)))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        apply_limit_change(&mut tx, limit).await?;
        tx.commit().await?;
        self.host_fetch(id).await
    }

    /// Remove a host no VM is placed on, with its storage mounts, and with `limit` set a cluster's
    /// failure limit, in one transaction.
    pub async fn host_delete(&self, id: HostId, limit: Option<LimitChange>) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let placed = vms_referencing(&mut tx, "host_id", &id.to_string()).await?;
        if placed > 0 {
            return Err(DbError::Refused(format!("{placed} VM(s) are placed on the host; move or destroy them first")));
        }
        sqlx::query("DELETE FROM host_storage WHERE host_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        let result = sqlx::query("DELETE FROM hosts WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        if result.rows_affected() != 1 {
            // Nothing removed: leave the limit alone too.
            return Ok(false);
        }
        apply_limit_change(&mut tx, limit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// How many VMs name `id` in `column` (a fixed column name of `vms`), inside a transaction.
async fn vms_referencing(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    column: &'static str,
    id: &str,
) -> DbResult<i64> {
    let sql = format!("SELECT COUNT(*) AS n FROM vms WHERE {column} = $1");
    let row = sqlx::query(&sql).bind(id).fetch_one(&mut **tx).await?;
    Ok(row.try_get("n")?)
}

impl Db {
    /// Record a completed hand-over: the VM now lives on `host` with the next generation.
    pub async fn vm_move(&self, id: VmId, host: HostId, generation: i64) -> DbResult<()> {
        sqlx::query("UPDATE vms SET host_id = $1, generation = $2, updated_at = $3 WHERE id = $4")
            .bind(host.to_string())
            .bind(generation)
            .bind(now_ms())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Set (or, with `None`, clear) a host's maintenance progress.
    pub async fn host_set_maintenance(&self, id: HostId, progress: Option<&MaintenanceProgress>) -> DbResult<()> {
        let text = progress.map(|progress| serde_json::to_string(progress).unwrap_or_default());
        sqlx::query("UPDATE hosts SET maintenance = $1 WHERE id = $2")
            .bind(text)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
