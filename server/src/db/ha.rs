//! The HA engine's tables: the zone/cluster/host HA switches and provider, per-cluster timing
//! settings, each host's HA state with its transitions, incidents and their timelines, the leader
//! lease (compare-and-set, epoch bumped on takeover), and the engine state a new leader resumes from.
//!
//! Everything the engine writes after a decision step goes through [`Db::ha_commit_step`], one
//! transaction that first re-checks the caller's lease: a deposed leader writes nothing.

use super::*;
use api::v1::{
    HaIncident, HaIncidentDetail, HaIncidentEvent, HaProvider, HaTimingSettings, HaTransition, HostHaState,
    HypervisorKind, IncidentId, Zone,
};
use api::{ClusterId, HostId, VmId, ZoneId};
use std::collections::HashMap;

/// A host's HA switches, provider and recorded state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostHaRecord {
    pub host_id: HostId,
    pub host_name: String,
    pub zone_id: ZoneId,
    pub cluster_id: ClusterId,
    pub hypervisor: HypervisorKind,
    pub host_enabled: bool,
    pub cluster_enabled: bool,
    pub zone_enabled: bool,
    pub provider: HaProvider,
    pub state: HostHaState,
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

impl HostHaRecord {
    /// HA is in effect only when zone, cluster and host are all on.
    pub fn effective(&self) -> bool {
        self.zone_enabled && self.cluster_enabled && self.host_enabled
    }
}

/// The term of a lease this server holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTerm {
    pub holder: String,
    pub epoch: i64,
    pub expires_at_ms: i64,
}

/// A host of a cluster as its peers reach it: its agent's address and peer-heartbeat port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    pub host_id: HostId,
    pub name: String,
    pub address: String,
    pub peer_port: Option<u16>,
}

/// A host's OOBM as the engine needs it: configured, in effect, and the power state last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OobmBrief {
    pub configured: bool,
    pub effective: bool,
    pub power_state: Option<api::v1::PowerState>,
    pub power_read_at_ms: Option<i64>,
}

/// What an attempt to acquire or renew the lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseView {
    /// This server leads (renewed, or took over with `epoch` one higher than before).
    Leading(LeaseTerm),
    /// Someone else holds an unexpired lease.
    Following { holder: String, epoch: i64, expires_at_ms: i64 },
}

impl LeaseView {
    /// The epoch in force, whoever holds it.
    pub fn epoch(&self) -> i64 {
        match self {
            LeaseView::Leading(term) => term.epoch,
            LeaseView::Following { epoch, .. } => *epoch,
        }
    }
}

/// A transition to record (and to make the host's current HA state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransition {
    pub host_id: HostId,
    pub from: HostHaState,
    pub to: HostHaState,
    pub event: String,
    pub reason: String,
    pub at_ms: i64,
}

/// One step of an incident to record. Incidents are found by host: each host has at most one open.
#[derive(Clone, Debug, PartialEq)]
pub enum IncidentWrite {
    /// Open the host's incident (nothing happens when one is open already).
    Open { host_id: HostId, at_ms: i64 },
    /// Add a step to the host's open incident (opened first when there is none, so nothing is lost).
    Event { host_id: HostId, event: NewIncidentEvent },
    /// Close the host's open incident with a verdict (nothing happens when none is open).
    Close { host_id: HostId, at_ms: i64, verdict: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewIncidentEvent {
    pub at_ms: i64,
    pub kind: String,
    pub vm_id: Option<VmId>,
    pub vm_name: Option<String>,
    pub from_host_id: Option<HostId>,
    pub to_host_id: Option<HostId>,
    pub duration_ms: Option<i64>,
    pub message: String,
}

/// Move a VM to `host` under `generation` for an HA restart (state `starting`), before the start
/// command is sent, so the old host's agent refuses anything older.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmMove {
    pub vm: VmId,
    pub host: HostId,
    pub generation: i64,
}

/// Record a VM as stopped under `generation` (its host is confirmed not to run it; it will not restart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmStop {
    pub vm: VmId,
    pub generation: i64,
    pub reason: String,
}

/// Everything one decision step writes, in one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepWrites {
    pub transitions: Vec<NewTransition>,
    pub incidents: Vec<IncidentWrite>,
    pub vm_moves: Vec<VmMove>,
    pub vm_stops: Vec<VmStop>,
    /// Hosts to put in maintenance (allocation), e.g. after being fenced.
    pub maintenance: Vec<HostId>,
}

/// What a committed step wrote, for announcing it and sending commands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepWritten {
    /// Incidents that were opened, extended or closed.
    pub incidents: Vec<IncidentId>,
    /// Per entry of `vm_moves`: whether the VM is now on that host under that generation (moved now,
    /// or already by an earlier attempt); false when it moved elsewhere or on meanwhile.
    pub moved: Vec<bool>,
    /// VMs whose record changed (moved or stopped).
    pub vms_changed: Vec<VmId>,
}

const HOST_HA_SELECT: &str = "SELECT h.id, h.name, h.zone_id, h.cluster_id, h.hypervisor, h.ha_enabled AS host_enabled,
        c.ha_enabled AS cluster_enabled, z.ha_enabled AS zone_enabled, h.ha_provider, h.ha_state, h.ha_reason,
        h.ha_since
    FROM hosts h
    JOIN clusters c ON c.id = h.cluster_id
    JOIN zones z ON z.id = h.zone_id";

fn host_ha_from_row(row: &AnyRow) -> DbResult<HostHaRecord> {
    let state: String = row.try_get("ha_state")?;
    Ok(HostHaRecord {
        host_id: get_id(row, "id")?,
        host_name: row.try_get("name")?,
        zone_id: get_id(row, "zone_id")?,
        cluster_id: get_id(row, "cluster_id")?,
        hypervisor: get_enum(row, "hypervisor")?,
        host_enabled: get_bool(row, "host_enabled")?,
        cluster_enabled: get_bool(row, "cluster_enabled")?,
        zone_enabled: get_bool(row, "zone_enabled")?,
        provider: get_enum(row, "ha_provider")?,
        state: HostHaState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("hosts.ha_state = {state:?} is not a known value")))?,
        reason: row.try_get("ha_reason")?,
        since: row.try_get::<Option<i64>, _>("ha_since")?.map(ms_to_time),
    })
}

const TIMING_COLUMNS: &str = "id, ha_heartbeat_interval_ms, ha_suspect_after_ms, ha_storage_timeout_ms,
    ha_self_fence_timeout_ms, ha_fence_backoff_initial_ms, ha_fence_backoff_max_ms";

fn timing_from_row(row: &AnyRow) -> DbResult<HaTimingSettings> {
    Ok(HaTimingSettings {
        heartbeat_interval_ms: get_u64(row, "ha_heartbeat_interval_ms")?,
        suspect_after_ms: get_u64(row, "ha_suspect_after_ms")?,
        storage_timeout_ms: get_u64(row, "ha_storage_timeout_ms")?,
        self_fence_timeout_ms: get_u64(row, "ha_self_fence_timeout_ms")?,
        fence_backoff_initial_ms: get_u64(row, "ha_fence_backoff_initial_ms")?,
        fence_backoff_max_ms: get_u64(row, "ha_fence_backoff_max_ms")?,
    })
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn transition_from_row(row: &AnyRow) -> DbResult<HaTransition> {
    let state = |column: &str| -> DbResult<HostHaState> {
        let text: String = row.try_get(column)?;
        HostHaState::parse(&text)
            .ok_or_else(|| DbError::Corrupt(format!("ha_transitions.{column} = {text:?} is not a known value")))
    };
    Ok(HaTransition {
        host_id: get_id(row, "host_id")?,
        from: state("from_state")?,
        to: state("to_state")?,
        event: row.try_get("event")?,
        reason: row.try_get("reason")?,
        at: ms_to_time(row.try_get("at")?),
    })
}

const INCIDENT_COLUMNS: &str = "id, host_id, host_name, cluster_id, started_at, ended_at, verdict";

fn incident_from_row(row: &AnyRow, now_ms: i64) -> DbResult<HaIncident> {
    let id: String = row.try_get("id")?;
    let started: i64 = row.try_get("started_at")?;
    let ended: Option<i64> = row.try_get("ended_at")?;
    Ok(HaIncident {
        id: id.parse().map_err(|_| DbError::Corrupt(format!("ha_incidents.id = {id:?} is not a UUID")))?,
        host_id: get_id(row, "host_id")?,
        host_name: row.try_get("host_name")?,
        cluster_id: get_opt_id(row, "cluster_id")?,
        started_at: ms_to_time(started),
        ended_at: ended.map(ms_to_time),
        verdict: row.try_get("verdict")?,
        duration_seconds: (ended.unwrap_or(now_ms) - started).max(0) as f64 / 1000.0,
    })
}

fn incident_event_from_row(row: &AnyRow) -> DbResult<HaIncidentEvent> {
    Ok(HaIncidentEvent {
        at: ms_to_time(row.try_get("at")?),
        kind: row.try_get("kind")?,
        vm_id: get_opt_id(row, "vm_id")?,
        vm_name: row.try_get("vm_name")?,
        from_host_id: get_opt_id(row, "from_host_id")?,
        to_host_id: get_opt_id(row, "to_host_id")?,
        seconds: row.try_get::<Option<i64>, _>("duration_ms")?.map(|ms| ms as f64 / 1000.0),
        message: row.try_get("message")?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Inside a write transaction: does `term` still hold the lease at `now_ms`? The no-op update takes
/// the row's lock (PostgreSQL) or is covered by the write lock (SQLite), so a takeover cannot slip
/// in before this transaction commits.
async fn lease_still_held(tx: &mut Tx, term: &LeaseTerm, now_ms: i64) -> DbResult<bool> {
    let result = sqlx::query(
        "UPDATE ha_leader SET holder = holder WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > $3",
    )
    .bind(&term.holder)
    .bind(term.epoch)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

async fn open_incident_id(tx: &mut Tx, host: HostId) -> DbResult<Option<String>> {
    let row = sqlx::query("SELECT id FROM ha_incidents WHERE host_id = $1 AND ended_at IS NULL")
        .bind(host.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|row| row.try_get("id")).transpose()?)
}

/// The host's open incident, opened at `at_ms` when there is none.
async fn ensure_incident(tx: &mut Tx, host: HostId, at_ms: i64) -> DbResult<String> {
    if let Some(id) = open_incident_id(tx, host).await? {
        return Ok(id);
    }
    let row = sqlx::query("SELECT name, cluster_id FROM hosts WHERE id = $1")
        .bind(host.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let (name, cluster): (String, Option<String>) = match row {
        Some(row) => (row.try_get("name")?, Some(row.try_get("cluster_id")?)),
        None => (host.to_string(), None),
    };
    let id = IncidentId::new_random().to_string();
    sqlx::query(
        "INSERT INTO ha_incidents (id, host_id, host_name, cluster_id, started_at, ended_at, verdict)
         VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
    )
    .bind(&id)
    .bind(host.to_string())
    .bind(name)
    .bind(cluster)
    .bind(at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

async fn add_incident_event(tx: &mut Tx, incident: &str, event: &NewIncidentEvent) -> DbResult<()> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM ha_incident_events WHERE incident_id = $1")
        .bind(incident)
        .fetch_one(&mut **tx)
        .await?;
    let seq: i64 = row.try_get("seq")?;
    sqlx::query(
        "INSERT INTO ha_incident_events (id, incident_id, seq, at, kind, vm_id, vm_name, from_host_id, to_host_id,
            duration_ms, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(incident)
    .bind(seq + 1)
    .bind(event.at_ms)
    .bind(&event.kind)
    .bind(event.vm_id.map(|id| id.to_string()))
    .bind(event.vm_name.clone())
    .bind(event.from_host_id.map(|id| id.to_string()))
    .bind(event.to_host_id.map(|id| id.to_string()))
    .bind(event.duration_ms)
    .bind(&event.message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    // ---- switches and provider ----

    pub async fn zone_set_ha_enabled(&self, zone: ZoneId, enabled: bool) -> DbResult<Option<Zone>> {
        let result = sqlx::query("UPDATE zones SET ha_enabled = $1 WHERE id = $2")
            .bind(flag(enabled))
            .bind(zone.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(self.zone_list().await?.into_iter().find(|candidate| candidate.id == zone))
    }

    /// Set a cluster's HA switch and, with `include_hosts`, every one of its hosts' switches, in one
    /// transaction. Answers the hosts whose switch was set (`None`: no such cluster).
    pub async fn cluster_set_ha_enabled(
        &self,
        cluster: ClusterId,
        enabled: bool,
        include_hosts: bool,
    ) -> DbResult<Option<Vec<HostId>>> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("UPDATE clusters SET ha_enabled = $1 WHERE id = $2")
            .bind(flag(enabled))
            .bind(cluster.to_string())
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() != 1 {
            return Ok(None);
        }
        let mut hosts = Vec::new();
        if include_hosts {
            let rows = sqlx::query("SELECT id FROM hosts WHERE cluster_id = $1 ORDER BY name")
                .bind(cluster.to_string())
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                hosts.push(get_id(row, "id")?);
            }
            // A simulated host's provider follows its hypervisor; a real host keeps the one it has.
            sqlx::query(
                "UPDATE hosts SET ha_enabled = $1,
                    ha_provider = CASE WHEN hypervisor = 'sim' THEN 'sim' ELSE ha_provider END
                 WHERE cluster_id = $2",
            )
            .bind(flag(enabled))
            .bind(cluster.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(hosts))
    }

    /// Set a host's HA switch and provider; false when the host does not exist.
    pub async fn host_set_ha(&self, host: HostId, enabled: bool, provider: HaProvider) -> DbResult<bool> {
        let result = sqlx::query("UPDATE hosts SET ha_enabled = $1, ha_provider = $2 WHERE id = $3")
            .bind(flag(enabled))
            .bind(provider.as_str())
            .bind(host.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn host_ha_fetch(&self, host: HostId) -> DbResult<Option<HostHaRecord>> {
        let sql = format!("{HOST_HA_SELECT} WHERE h.id = $1");
        let row = sqlx::query(&sql).bind(host.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(host_ha_from_row).transpose()
    }

    /// Every host's HA switches and state, by name.
    pub async fn host_ha_list(&self) -> DbResult<Vec<HostHaRecord>> {
        let sql = format!("{HOST_HA_SELECT} ORDER BY h.name");
        sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(host_ha_from_row).collect()
    }

    /// Remember the port a host's agent receives peer heartbeats on (from its registration).
    pub async fn host_set_peer_port(&self, host: HostId, port: Option<u16>) -> DbResult<()> {
        sqlx::query("UPDATE hosts SET ha_peer_port = $1 WHERE id = $2")
            .bind(port.map(i64::from))
            .bind(host.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every host of `cluster`, with where its peers reach it.
    pub async fn cluster_peer_addresses(&self, cluster: ClusterId) -> DbResult<Vec<PeerAddress>> {
        let rows = sqlx::query("SELECT id, name, address, ha_peer_port FROM hosts WHERE cluster_id = $1 ORDER BY name")
            .bind(cluster.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let port: Option<i64> = row.try_get("ha_peer_port")?;
                Ok(PeerAddress {
                    host_id: get_id(row, "id")?,
                    name: row.try_get("name")?,
                    address: row.try_get("address")?,
                    peer_port: port.and_then(|port| u16::try_from(port).ok()),
                })
            })
            .collect()
    }

    /// Every host's OOBM in brief (hosts without a configuration are absent).
    pub async fn oobm_briefs(&self) -> DbResult<HashMap<HostId, OobmBrief>> {
        let rows = sqlx::query(
            "SELECT o.host_id, o.enabled AS host_enabled, c.oobm_enabled AS cluster_enabled,
                z.oobm_enabled AS zone_enabled, o.power_state, o.power_read_at
             FROM host_oobm o
             JOIN hosts h ON h.id = o.host_id
             JOIN clusters c ON c.id = h.cluster_id
             JOIN zones z ON z.id = h.zone_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut briefs = HashMap::with_capacity(rows.len());
        for row in &rows {
            let power: Option<String> = row.try_get("power_state")?;
            briefs.insert(
                get_id(row, "host_id")?,
                OobmBrief {
                    configured: true,
                    effective: get_bool(row, "host_enabled")?
                        && get_bool(row, "cluster_enabled")?
                        && get_bool(row, "zone_enabled")?,
                    power_state: power.and_then(|text| serde_json::from_value(serde_json::Value::String(text)).ok()),
                    power_read_at_ms: row.try_get("power_read_at")?,
                },
            );
        }
        Ok(briefs)
    }

    // ---- timing settings ----

    pub async fn cluster_ha_timing(&self, cluster: ClusterId) -> DbResult<Option<HaTimingSettings>> {
        let sql = format!("SELECT {TIMING_COLUMNS} FROM clusters WHERE id = $1");
        let row = sqlx::query(&sql).bind(cluster.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(timing_from_row).transpose()
    }

    /// Every cluster's timing settings.
    pub async fn cluster_ha_timing_all(&self) -> DbResult<HashMap<ClusterId, HaTimingSettings>> {
        let sql = format!("SELECT {TIMING_COLUMNS} FROM clusters");
        let mut all = HashMap::new();
        for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
            all.insert(get_id(&row, "id")?, timing_from_row(&row)?);
        }
        Ok(all)
    }

    /// Store a cluster's timing settings (validated by the caller); false when there is no such cluster.
    pub async fn cluster_set_ha_timing(&self, cluster: ClusterId, timing: &HaTimingSettings) -> DbResult<bool> {
        let result = sqlx::query(
            "UPDATE clusters SET ha_heartbeat_interval_ms = $1, ha_suspect_after_ms = $2, ha_storage_timeout_ms = $3,
                ha_self_fence_timeout_ms = $4, ha_fence_backoff_initial_ms = $5, ha_fence_backoff_max_ms = $6
             WHERE id = $7",
        )
        .bind(ms(timing.heartbeat_interval_ms))
        .bind(ms(timing.suspect_after_ms))
        .bind(ms(timing.storage_timeout_ms))
        .bind(ms(timing.self_fence_timeout_ms))
        .bind(ms(timing.fence_backoff_initial_ms))
        .bind(ms(timing.fence_backoff_max_ms))
        .bind(cluster.to_string())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    // ---- transitions and incidents (reading) ----

    /// A host's transitions, newest first (in the order they were recorded, also within one instant).
    pub async fn ha_transitions(&self, host: HostId, limit: u32) -> DbResult<Vec<HaTransition>> {
        let rows = sqlx::query(
            "SELECT host_id, from_state, to_state, event, reason, at FROM ha_transitions
             WHERE host_id = $1 ORDER BY seq DESC, at DESC LIMIT $2",
        )
        .bind(host.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(transition_from_row).collect()
    }

    /// Incidents, newest first; `host` narrows to one host's.
    pub async fn ha_incident_list(&self, host: Option<HostId>, limit: u32) -> DbResult<Vec<HaIncident>> {
        let now = now_ms();
        let rows = match host {
            Some(host) => {
                let sql = format!(
                    "SELECT {INCIDENT_COLUMNS} FROM ha_incidents WHERE host_id = $1 ORDER BY started_at DESC LIMIT $2"
                );
                sqlx::query(&sql).bind(host.to_string()).bind(i64::from(limit)).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!("SELECT {INCIDENT_COLUMNS} FROM ha_incidents ORDER BY started_at DESC LIMIT $1");
                sqlx::query(&sql).bind(i64::from(limit)).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(|row| incident_from_row(row, now)).collect()
    }

    /// An incident with its timeline, oldest step first.
    pub async fn ha_incident_fetch(&self, id: IncidentId) -> DbResult<Option<HaIncidentDetail>> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM ha_incidents WHERE id = $1");
        let Some(row) = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let incident = incident_from_row(&row, now_ms())?;
        let rows = sqlx::query(
            "SELECT at, kind, vm_id, vm_name, from_host_id, to_host_id, duration_ms, message
             FROM ha_incident_events WHERE incident_id = $1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let events = rows.iter().map(incident_event_from_row).collect::<DbResult<_>>()?;
        Ok(Some(HaIncidentDetail { incident, events }))
    }

    /// The open incident of a host, if any.
    pub async fn ha_incident_open_for(&self, host: HostId) -> DbResult<Option<IncidentId>> {
        let row = sqlx::query("SELECT id FROM ha_incidents WHERE host_id = $1 AND ended_at IS NULL")
            .bind(host.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| get_id(&row, "id")).transpose()
    }

    /// An HA restart was answered "not started": record the VM stopped with `reason`, if it is still
    /// placed on `host` under `generation` and not running. Answers whether it was recorded.
    pub async fn ha_vm_start_failed(&self, vm: VmId, host: HostId, generation: i64, reason: &str) -> DbResult<bool> {
        let result = sqlx::query(
            "UPDATE vms SET state = 'stopped', state_reason = $1, updated_at = $2
             WHERE id = $3 AND host_id = $4 AND generation = $5 AND state IN ('starting', 'stopped', 'error')",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(vm.to_string())
        .bind(host.to_string())
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    // ---- the leader lease ----

    /// Renew the lease if `holder` has it, else take it over if it has expired (epoch + 1), else
    /// report who holds it. `ttl_ms` from `now_ms` is the new expiry. One transaction.
    pub async fn lease_acquire(&self, holder: &str, now_ms: i64, ttl_ms: i64) -> DbResult<LeaseView> {
        let mut tx = self.begin_write().await?;
        let expires = now_ms + ttl_ms;
        let renewed =
            sqlx::query("UPDATE ha_leader SET expires_at = $1 WHERE id = 1 AND holder = $2 AND expires_at > $3")
                .bind(expires)
                .bind(holder)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if !renewed {
            sqlx::query(
                "UPDATE ha_leader SET holder = $1, epoch = epoch + 1, expires_at = $2 WHERE id = 1 AND expires_at <= $3",
            )
            .bind(holder)
            .bind(expires)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        let row =
            sqlx::query("SELECT holder, epoch, expires_at FROM ha_leader WHERE id = 1").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        let (current, epoch, expires_at_ms): (String, i64, i64) =
            (row.try_get("holder")?, row.try_get("epoch")?, row.try_get("expires_at")?);
        Ok(if current == holder && expires_at_ms > now_ms {
            LeaseView::Leading(LeaseTerm { holder: current, epoch, expires_at_ms })
        } else {
            LeaseView::Following { holder: current, epoch, expires_at_ms }
        })
    }

    /// Give the lease up (at shutdown), so another server takes over at once; only `term`'s holder can.
    pub async fn lease_release(&self, term: &LeaseTerm) -> DbResult<bool> {
        let result = sqlx::query("UPDATE ha_leader SET expires_at = 0 WHERE id = 1 AND holder = $1 AND epoch = $2")
            .bind(&term.holder)
            .bind(term.epoch)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The lease row as it is: (holder, epoch, expires_at).
    pub async fn lease_current(&self) -> DbResult<(String, i64, i64)> {
        let row =
            sqlx::query("SELECT holder, epoch, expires_at FROM ha_leader WHERE id = 1").fetch_one(&self.pool).await?;
        Ok((row.try_get("holder")?, row.try_get("epoch")?, row.try_get("expires_at")?))
    }

    // ---- the engine's state and a step's records ----

    /// The engine state the last leader stored (JSON), with its epoch.
    pub async fn ha_engine_state_load(&self) -> DbResult<Option<(i64, String)>> {
        let row =
            sqlx::query("SELECT epoch, state FROM ha_engine_state WHERE id = 1").fetch_optional(&self.pool).await?;
        row.map(|row| Ok((row.try_get("epoch")?, row.try_get("state")?))).transpose()
    }

    /// Write one decision step: its transitions (each also the host's current HA state), incident
    /// steps, VM moves and stops, hosts put in maintenance, and the engine state after it, in one
    /// transaction that first re-checks that `term` still holds the lease. Answers `None` (writing
    /// nothing) when it does not.
    pub async fn ha_commit_step(
        &self,
        term: &LeaseTerm,
        now_ms: i64,
        writes: &StepWrites,
        state_json: &str,
    ) -> DbResult<Option<StepWritten>> {
        let mut tx = self.begin_write().await?;
        if !lease_still_held(&mut tx, term, now_ms).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        for transition in &writes.transitions {
            sqlx::query(
                "INSERT INTO ha_transitions (id, host_id, from_state, to_state, event, reason, at, epoch, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM ha_transitions WHERE host_id = $2))",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(transition.host_id.to_string())
            .bind(transition.from.as_str())
            .bind(transition.to.as_str())
            .bind(&transition.event)
            .bind(&transition.reason)
            .bind(transition.at_ms)
            .bind(term.epoch)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE hosts SET ha_state = $1, ha_reason = $2, ha_since = $3 WHERE id = $4")
                .bind(transition.to.as_str())
                .bind((!transition.reason.is_empty()).then(|| transition.reason.clone()))
                .bind(transition.at_ms)
                .bind(transition.host_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let mut written = StepWritten::default();
        let mut touched = |id: &str| {
            if let Ok(id) = id.parse::<IncidentId>()
                && !written.incidents.contains(&id)
            {
                written.incidents.push(id);
            }
        };
        for write in &writes.incidents {
            match write {
                IncidentWrite::Open { host_id, at_ms } => {
                    let id = ensure_incident(&mut tx, *host_id, *at_ms).await?;
                    touched(&id);
                }
                IncidentWrite::Event { host_id, event } => {
                    let id = ensure_incident(&mut tx, *host_id, event.at_ms).await?;
                    add_incident_event(&mut tx, &id, event).await?;
                    touched(&id);
                }
                IncidentWrite::Close { host_id, at_ms, verdict } => {
                    if let Some(id) = open_incident_id(&mut tx, *host_id).await? {
                        sqlx::query("UPDATE ha_incidents SET ended_at = $1, verdict = $2 WHERE id = $3")
                            .bind(*at_ms)
                            .bind(verdict)
                            .bind(&id)
                            .execute(&mut *tx)
                            .await?;
                        touched(&id);
                    }
                }
            }
        }
        for change in &writes.vm_moves {
            let result = sqlx::query(
                "UPDATE vms SET host_id = $1, generation = $2, state = 'starting', state_reason = NULL, updated_at = $3
                 WHERE id = $4 AND generation < $2",
            )
            .bind(change.host.to_string())
            .bind(change.generation)
            .bind(now_ms)
            .bind(change.vm.to_string())
            .execute(&mut *tx)
            .await?;
            let moved = if result.rows_affected() == 1 {
                written.vms_changed.push(change.vm);
                true
            } else {
                // Moved by an earlier attempt of the same restart (a resumed step): still fine to send.
                let row = sqlx::query("SELECT host_id, generation FROM vms WHERE id = $1")
                    .bind(change.vm.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                match row {
                    Some(row) => {
                        get_opt_id::<HostId>(&row, "host_id")? == Some(change.host)
                            && row.try_get::<i64, _>("generation")? == change.generation
                    }
                    None => false,
                }
            };
            written.moved.push(moved);
        }
        for stop in &writes.vm_stops {
            let result = sqlx::query(
                "UPDATE vms SET state = 'stopped', state_reason = $1, generation = $2, updated_at = $3
                 WHERE id = $4 AND generation <= $2",
            )
            .bind(&stop.reason)
            .bind(stop.generation)
            .bind(now_ms)
            .bind(stop.vm.to_string())
            .execute(&mut *tx)
            .await?;
            if result.rows_affected() == 1 {
                written.vms_changed.push(stop.vm);
            }
        }
        for host in &writes.maintenance {
            sqlx::query("UPDATE hosts SET allocation = 'maintenance' WHERE id = $1")
                .bind(host.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO ha_engine_state (id, epoch, state, updated_at) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, state = excluded.state,
                updated_at = excluded.updated_at",
        )
        .bind(term.epoch)
        .bind(state_json)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(written))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdb::on_each_backend;
    use super::*;
    use api::agent::HostRegistration;
    use api::v1::Resources;

    async fn cluster_with_hosts(db: &Db, names: &[&str]) -> (ZoneId, ClusterId, Vec<HostId>) {
        let zone = db.zone_insert("z", "hash").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "c").await.unwrap();
        let mut hosts = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let registration = HostRegistration {
                name: (*name).into(),
                address: format!("127.0.1.{}", index + 1),
                cluster: "c".into(),
                hypervisor: if index == 0 { HypervisorKind::Kvm } else { HypervisorKind::Sim },
                capacity: Resources { cpu_cores: 4, cpu_mhz: 8000, memory_mb: 8192 },
                mounted_storage: vec![],
                agent_version: "t".into(),
                peer_port: None,
            };
            hosts.push(db.host_register(zone.id, cluster.id, &registration).await.unwrap());
        }
        (zone.id, cluster.id, hosts)
    }

    #[tokio::test]
    async fn ha_is_in_effect_only_with_all_three_switches_and_include_hosts_sets_every_host() {
        on_each_backend(|db| async move {
            let (zone, cluster, hosts) = cluster_with_hosts(&db, &["kvm-1", "sim-2"]).await;
            let record = db.host_ha_fetch(hosts[0]).await.unwrap().unwrap();
            assert_eq!(
                (record.effective(), record.state, record.provider),
                (false, HostHaState::Disabled, HaProvider::Kvm)
            );

            assert_eq!(db.cluster_set_ha_enabled(cluster, true, true).await.unwrap(), Some(hosts.clone()));
            let all = db.host_ha_list().await.unwrap();
            assert!(all.iter().all(|host| host.host_enabled && host.cluster_enabled && !host.zone_enabled));
            assert_eq!(all[1].provider, HaProvider::Sim, "a simulated host gets the sim provider");
            assert!(db.zone_set_ha_enabled(zone, true).await.unwrap().unwrap().ha_enabled);
            assert!(db.host_ha_list().await.unwrap().iter().all(HostHaRecord::effective));

            // Without include_hosts only the cluster changes.
            assert_eq!(db.cluster_set_ha_enabled(cluster, false, false).await.unwrap(), Some(vec![]));
            let all = db.host_ha_list().await.unwrap();
            assert!(all.iter().all(|host| host.host_enabled && !host.effective()));
            assert!(db.host_set_ha(hosts[0], false, HaProvider::Kvm).await.unwrap());
            assert!(!db.host_ha_fetch(hosts[0]).await.unwrap().unwrap().host_enabled);
            assert!(!db.host_set_ha(HostId::new_random(), true, HaProvider::Kvm).await.unwrap());
            assert_eq!(db.cluster_set_ha_enabled(ClusterId::new_random(), true, true).await.unwrap(), None);
            assert!(db.zone_set_ha_enabled(ZoneId::new_random(), true).await.unwrap().is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn timing_settings_default_to_the_contract_and_are_stored_per_cluster() {
        on_each_backend(|db| async move {
            let (_, cluster, _) = cluster_with_hosts(&db, &[]).await;
            assert_eq!(db.cluster_ha_timing(cluster).await.unwrap(), Some(HaTimingSettings::default()));
            let slower =
                HaTimingSettings { suspect_after_ms: 5000, self_fence_timeout_ms: 12_000, ..Default::default() };
            assert!(db.cluster_set_ha_timing(cluster, &slower).await.unwrap());
            assert_eq!(db.cluster_ha_timing(cluster).await.unwrap(), Some(slower));
            assert_eq!(db.cluster_ha_timing_all().await.unwrap().get(&cluster), Some(&slower));
            assert!(!db.cluster_set_ha_timing(ClusterId::new_random(), &slower).await.unwrap());
            assert_eq!(db.cluster_ha_timing(ClusterId::new_random()).await.unwrap(), None);
        })
        .await;
    }

    #[tokio::test]
    async fn only_one_holder_leads_and_a_takeover_after_expiry_raises_the_epoch() {
        on_each_backend(|db| async move {
            let a = db.lease_acquire("a", 1_000, 3_000).await.unwrap();
            let LeaseView::Leading(term_a) = a else { panic!("the first server must lead: {a:?}") };
            assert_eq!((term_a.epoch, term_a.expires_at_ms), (1, 4_000));
            let b = db.lease_acquire("b", 2_000, 3_000).await.unwrap();
            assert_eq!(b, LeaseView::Following { holder: "a".into(), epoch: 1, expires_at_ms: 4_000 });
            // Renewal keeps the epoch.
            let LeaseView::Leading(renewed) = db.lease_acquire("a", 3_000, 3_000).await.unwrap() else { panic!() };
            assert_eq!((renewed.epoch, renewed.expires_at_ms), (1, 6_000));
            // a falls silent; after expiry b takes over with a higher epoch, and a follows.
            let LeaseView::Leading(term_b) = db.lease_acquire("b", 6_001, 3_000).await.unwrap() else { panic!() };
            assert_eq!(term_b.epoch, 2);
            assert_eq!(db.lease_acquire("a", 6_100, 3_000).await.unwrap().epoch(), 2);
            assert!(matches!(db.lease_acquire("a", 6_100, 3_000).await.unwrap(), LeaseView::Following { .. }));
            // A deposed leader's step writes nothing.
            let written = db.ha_commit_step(&renewed, 6_200, &StepWrites::default(), "{}").await.unwrap();
            assert_eq!(written, None);
            assert_eq!(db.ha_engine_state_load().await.unwrap(), None);
            // Releasing hands over at once.
            assert!(!db.lease_release(&renewed).await.unwrap(), "a no longer holds it");
            assert!(db.lease_release(&term_b).await.unwrap());
            let LeaseView::Leading(term_a2) = db.lease_acquire("a", 6_300, 3_000).await.unwrap() else { panic!() };
            assert_eq!(term_a2.epoch, 3);
        })
        .await;
    }

    #[tokio::test]
    async fn a_step_records_transitions_incidents_and_state_together() {
        on_each_backend(|db| async move {
            let (_, _, hosts) = cluster_with_hosts(&db, &["h1", "h2"]).await;
            let LeaseView::Leading(term) = db.lease_acquire("me", now_ms(), 60_000).await.unwrap() else { panic!() };
            let now = now_ms();
            let transition = |from, to, at_ms| NewTransition {
                host_id: hosts[0],
                from,
                to,
                event: "network-heartbeat-missed".into(),
                reason: "no heartbeat for 3 s".into(),
                at_ms,
            };
            let restart = NewIncidentEvent {
                at_ms: now + 10,
                kind: api::v1::incident_event_kind::VM_RESTARTED.into(),
                vm_id: Some(VmId::new_random()),
                vm_name: Some("web".into()),
                from_host_id: Some(hosts[0]),
                to_host_id: Some(hosts[1]),
                duration_ms: Some(7_250),
                message: "web restarted on h2".into(),
            };
            let written = db
                .ha_commit_step(
                    &term,
                    now,
                    &StepWrites {
                        // One instant, as in a real step: the order recorded is the order shown.
                        transitions: vec![
                            transition(HostHaState::Available, HostHaState::Suspect, now),
                            transition(HostHaState::Suspect, HostHaState::Checking, now),
                            transition(HostHaState::Checking, HostHaState::Fencing, now),
                        ],
                        incidents: vec![
                            IncidentWrite::Open { host_id: hosts[0], at_ms: now },
                            IncidentWrite::Event { host_id: hosts[0], event: restart.clone() },
                        ],
                        ..Default::default()
                    },
                    r#"{"step":1}"#,
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(written.incidents.len(), 1);
            let record = db.host_ha_fetch(hosts[0]).await.unwrap().unwrap();
            assert_eq!((record.state, record.reason.as_deref()), (HostHaState::Fencing, Some("no heartbeat for 3 s")));
            let transitions = db.ha_transitions(hosts[0], 10).await.unwrap();
            assert_eq!(
                transitions.iter().map(|t| (t.from, t.to)).collect::<Vec<_>>(),
                vec![
                    (HostHaState::Checking, HostHaState::Fencing),
                    (HostHaState::Suspect, HostHaState::Checking),
                    (HostHaState::Available, HostHaState::Suspect)
                ],
                "newest first, in the order recorded"
            );
            assert_eq!(db.ha_engine_state_load().await.unwrap(), Some((term.epoch, r#"{"step":1}"#.to_owned())));

            // Opening again is a no-op; closing ends it; a later event opens a new incident.
            let close = IncidentWrite::Close { host_id: hosts[0], at_ms: now + 8_000, verdict: "all restarted".into() };
            let incidents = vec![IncidentWrite::Open { host_id: hosts[0], at_ms: now + 1 }, close];
            db.ha_commit_step(&term, now, &StepWrites { incidents, ..Default::default() }, "{}")
                .await
                .unwrap()
                .unwrap();
            let incidents = db.ha_incident_list(None, 10).await.unwrap();
            assert_eq!(incidents.len(), 1);
            assert_eq!((incidents[0].duration_seconds, incidents[0].verdict.as_deref()), (8.0, Some("all restarted")));
            let detail = db.ha_incident_fetch(incidents[0].id).await.unwrap().unwrap();
            assert_eq!(detail.events.len(), 1);
            assert_eq!((detail.events[0].seconds, detail.events[0].to_host_id), (Some(7.25), Some(hosts[1])));
            assert_eq!(db.ha_incident_open_for(hosts[0]).await.unwrap(), None);
            let incidents = vec![IncidentWrite::Event { host_id: hosts[0], event: restart }];
            db.ha_commit_step(&term, now, &StepWrites { incidents, ..Default::default() }, "{}")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(db.ha_incident_list(Some(hosts[0]), 10).await.unwrap().len(), 2);
            assert!(db.ha_incident_list(Some(hosts[1]), 10).await.unwrap().is_empty());
            assert!(db.ha_incident_fetch(IncidentId::new_random()).await.unwrap().is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn a_step_moves_and_stops_vms_only_for_the_lease_holder() {
        on_each_backend(|db| async move {
            let (zone, cluster, hosts) = cluster_with_hosts(&db, &["h1", "h2"]).await;
            let storage = db
                .storage_pool_insert(NewStoragePool {
                    zone_id: zone,
                    cluster_id: Some(cluster),
                    host_id: None,
                    name: "nfs",
                    kind: api::v1::StorageKind::Nfs,
                    url: "nfs://x/y",
                    capacity_gb: 100,
                })
                .await
                .unwrap();
            let offering = db
                .offering_insert(NewOffering {
                    name: "o",
                    description: "",
                    cpu_cores: 1,
                    cpu_mhz: 1000,
                    memory_mb: 512,
                    host_tags: &[],
                    offer_ha: true,
                })
                .await
                .unwrap();
            let vm = db
                .vm_insert(NewVm {
                    template_id: default_template_id(),
                    network: "default",
                    name: "vm",
                    zone_id: zone,
                    host_id: Some(hosts[0]),
                    offering_id: offering.id,
                    storage_pool_id: storage.id,
                    ha_protected: true,
                    restart_priority: api::v1::RestartPriority::Restart,
                })
                .await
                .unwrap();
            let LeaseView::Leading(term) = db.lease_acquire("me", now_ms(), 60_000).await.unwrap() else { panic!() };
            let step = |host: HostId, generation: i64| StepWrites {
                vm_moves: vec![VmMove { vm: vm.id, host, generation }],
                maintenance: vec![hosts[0]],
                ..Default::default()
            };
            let written = db.ha_commit_step(&term, now_ms(), &step(hosts[1], 2), "{}").await.unwrap().unwrap();
            assert_eq!((written.moved, written.vms_changed), (vec![true], vec![vm.id]));
            let after = db.vm_fetch(vm.id).await.unwrap().unwrap();
            assert_eq!((after.host_id, after.generation, after.state), (Some(hosts[1]), 2, api::v1::VmState::Starting));
            let h1 = db.host_fetch(hosts[0]).await.unwrap().unwrap();
            assert_eq!(h1.allocation, api::v1::HostAllocation::Maintenance);
            // The same move again (a resumed step) is fine; a move back under the same generation is not.
            let again = db.ha_commit_step(&term, now_ms(), &step(hosts[1], 2), "{}").await.unwrap().unwrap();
            assert_eq!((again.moved, again.vms_changed), (vec![true], vec![]));
            let back = db.ha_commit_step(&term, now_ms(), &step(hosts[0], 2), "{}").await.unwrap().unwrap();
            assert_eq!(back.moved, vec![false]);
            // "Not started" is recorded only for the placement and generation it was about.
            assert!(!db.ha_vm_start_failed(vm.id, hosts[0], 2, "no room").await.unwrap());
            assert!(db.ha_vm_start_failed(vm.id, hosts[1], 2, "no room").await.unwrap());
            assert_eq!(db.vm_fetch(vm.id).await.unwrap().unwrap().state, api::v1::VmState::Stopped);
            // A deposed leader moves nothing.
            let stale = LeaseTerm { epoch: term.epoch - 1, ..term.clone() };
            assert_eq!(db.ha_commit_step(&stale, now_ms(), &step(hosts[0], 3), "{}").await.unwrap(), None);
            assert_eq!(db.vm_fetch(vm.id).await.unwrap().unwrap().host_id, Some(hosts[1]));
            // Marking it stopped takes the new generation.
            let stop = StepWrites {
                vm_stops: vec![VmStop { vm: vm.id, generation: 3, reason: "no host has room".into() }],
                ..Default::default()
            };
            assert_eq!(
                db.ha_commit_step(&term, now_ms(), &stop, "{}").await.unwrap().unwrap().vms_changed,
                vec![vm.id]
            );
            let stopped = db.vm_fetch(vm.id).await.unwrap().unwrap();
            assert_eq!(
                (stopped.state, stopped.generation, stopped.state_reason.as_deref()),
                (api::v1::VmState::Stopped, 3, Some("no host has room"))
            );
        })
        .await;
    }
}
