//! The console <-> server contract under `/api/v1`: inventory, accounts, live events, errors.

use crate::ids::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod email;
mod ha;
pub use email::*;
pub use ha::*;

/// Header every mutating request must carry (with any value). Together with the SameSite=Strict session
/// cookie it makes cross-site request forgery impossible: a foreign page cannot set custom headers
/// without a CORS preflight, which the server never grants.
pub const CSRF_HEADER: &str = "x-parapet-csrf";

/// Name of the HttpOnly session cookie that carries the short-lived JWT.
pub const SESSION_COOKIE: &str = "parapet_session";

/// Every error answer of the API: a stable machine code and a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    PoolAdmin,
    PoolOperator,
    VmOperator,
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PoolAdmin => "pool-admin",
            Role::PoolOperator => "pool-operator",
            Role::VmOperator => "vm-operator",
            Role::ReadOnly => "read-only",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::PoolAdmin, Role::PoolOperator, Role::VmOperator, Role::ReadOnly]
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The signed-in user, as the console sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    /// When the current session token expires; the console refreshes before that.
    pub session_expires_at: DateTime<Utc>,
    /// The console language the user chose (`PUT /account/language`); `null` when never chosen.
    #[serde(default)]
    pub language: Option<Language>,
}

/// A language of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Ko,
}

impl Language {
    /// The tag stored and sent: `en`, `ko`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ko => "ko",
        }
    }

    pub fn parse(text: &str) -> Option<Language> {
        [Language::En, Language::Ko].into_iter().find(|language| language.as_str() == text)
    }
}

/// `PUT /api/v1/account/language`: the signed-in user's console language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetLanguageRequest {
    pub language: Language,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub id: ZoneId,
    pub name: String,
    pub ha_enabled: bool,
    pub oobm_enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: ClusterId,
    pub zone_id: ZoneId,
    pub name: String,
    pub ha_enabled: bool,
    pub oobm_enabled: bool,
    /// How many host failures the operator wants this cluster to survive (XenCenter's "server
    /// failure limit"); set through `PUT /clusters/{id}/ha/failure-limit`.
    #[serde(default)]
    pub ha_failure_limit: u32,
    /// The failover plan as the server last evaluated it; `null` before the first evaluation.
    /// `GET /clusters/{id}/ha/plan` computes it live.
    #[serde(default)]
    pub ha_plan: Option<ClusterPlanSummary>,
}

/// A cluster's failover plan in brief, as last evaluated (after every inventory change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPlanSummary {
    /// `null` when not even today's protected VMs can all run.
    pub max_failure_capacity: Option<u32>,
    /// min(failure limit, capacity).
    pub plan_exists_for: u32,
    /// capacity < failure limit (or no plan at all).
    pub overcommitted: bool,
    /// How the capacity was proven: `exact`, `bound`, `trivial` or `none` (see `PlanReport::method`).
    pub method: String,
    pub evaluated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HypervisorKind {
    Kvm,
    Sim,
}

/// Whether the host's agent holds its long-lived connection to a management server right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentConnection {
    Connected,
    Disconnected,
}

/// Whether new VMs may be placed on a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostAllocation {
    Enabled,
    Disabled,
    Maintenance,
}

/// CPU and memory of a host: what it has, and what the VMs placed on it take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_cores: u32,
    /// Total MHz: cores times the speed of one core (as CloudStack counts CPU allocation).
    pub cpu_mhz: u32,
    pub memory_mb: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub id: HostId,
    pub zone_id: ZoneId,
    pub cluster_id: ClusterId,
    pub name: String,
    pub address: String,
    pub hypervisor: HypervisorKind,
    pub allocation: HostAllocation,
    pub connection: AgentConnection,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub capacity: Resources,
    /// Sum of the offerings of the VMs that live on this host (running or not).
    pub allocated: Resources,
    pub tags: Vec<String>,
    pub storage_pool_ids: Vec<StoragePoolId>,
    pub vm_count: u32,
    pub running_vm_count: u32,
    /// While entering maintenance (and after, until cancelled): how moving its VMs away goes.
    #[serde(default)]
    pub maintenance: Option<MaintenanceProgress>,
    /// OOBM is configured and on at zone, cluster and host.
    #[serde(default)]
    pub oobm_enabled_effective: bool,
    /// The power state the OOBM sync last read (`disabled` while OOBM is not in effect).
    #[serde(default)]
    pub power_state: PowerState,
}

/// Moving a host's running VMs away before maintenance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceProgress {
    /// Running VMs to move when maintenance began.
    pub total: u32,
    pub moved: u32,
    /// The VM being moved now.
    pub current: Option<String>,
    /// VMs that could not be moved, with why.
    pub failed: Vec<String>,
    /// Every VM has been dealt with (moved or failed).
    pub finished: bool,
}

/// Move a running VM to another host of its cluster (live; shared storage only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateVmRequest {
    pub host_id: HostId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    Stopped,
    Starting,
    Running,
    Stopping,
    /// Moving to another host: paused at the destination until the source hands it over.
    Migrating,
    /// The host's agent is not connected: the server does not know what the VM is doing.
    Unknown,
    Error,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Stopped => "stopped",
            VmState::Starting => "starting",
            VmState::Running => "running",
            VmState::Stopping => "stopping",
            VmState::Migrating => "migrating",
            VmState::Unknown => "unknown",
            VmState::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPriority {
    Restart,
    BestEffort,
    DoNotRestart,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    pub id: VmId,
    pub name: String,
    pub zone_id: ZoneId,
    pub cluster_id: Option<ClusterId>,
    pub host_id: Option<HostId>,
    pub offering_id: OfferingId,
    pub storage_pool_id: StoragePoolId,
    pub state: VmState,
    /// Why the VM is in Error, as the agent said it.
    pub state_reason: Option<String>,
    pub resources: Resources,
    /// Protected by HA (from its offering unless overridden).
    pub ha_protected: bool,
    pub restart_priority: RestartPriority,
    /// HA restart order: lower starts first; VMs of one order start together.
    pub start_order: i32,
    /// Seconds HA waits after this VM's order group before starting the next one.
    pub start_delay_seconds: u32,
    pub template_id: TemplateId,
    pub network: String,
    /// Bumped on every placement change; agents refuse commands that name an older one.
    pub generation: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageKind {
    Nfs,
    Iscsi,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageScope {
    Cluster,
    Host,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoragePool {
    pub id: StoragePoolId,
    pub zone_id: ZoneId,
    pub cluster_id: Option<ClusterId>,
    pub host_id: Option<HostId>,
    pub name: String,
    pub kind: StorageKind,
    pub scope: StorageScope,
    /// Where hosts mount it, e.g. `nfs://10.0.0.5/export/primary` or a local path.
    pub url: String,
    pub capacity_gb: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputeOffering {
    pub id: OfferingId,
    pub name: String,
    pub description: String,
    pub cpu_cores: u32,
    pub cpu_mhz: u32,
    pub memory_mb: u64,
    pub host_tags: Vec<String>,
    pub offer_ha: bool,
}

/// The whole zone > cluster > host > VM tree in one answer, for the infrastructure view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub zones: Vec<Zone>,
    pub clusters: Vec<Cluster>,
    pub hosts: Vec<Host>,
    pub vms: Vec<Vm>,
    pub storage_pools: Vec<StoragePool>,
}

/// Answer of the VM power routes: the command was handed to the host's agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmActionAccepted {
    pub vm: Vm,
    pub command_id: CommandId,
}

/// One live event on `GET /api/v1/events` (server-sent events; the SSE event name is `change`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    HostChanged {
        host: Host,
    },
    VmChanged {
        vm: Vm,
    },
    /// Something changed that the console should reload wholesale (e.g. after a reconnect).
    InventoryChanged,
    /// The HA engine recorded something: a host's HA state changed, or an incident took a step.
    Ha {
        change: HaEvent,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_their_own_names_and_nothing_else() {
        for role in [Role::PoolAdmin, Role::PoolOperator, Role::VmOperator, Role::ReadOnly] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{}\"", role.as_str()));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn languages_use_their_tags_and_me_from_an_older_server_has_none() {
        for language in [Language::En, Language::Ko] {
            assert_eq!(Language::parse(language.as_str()), Some(language));
            assert_eq!(serde_json::to_value(language).unwrap(), language.as_str());
        }
        assert_eq!(Language::parse("fr"), None);
        assert!(serde_json::from_str::<SetLanguageRequest>(r#"{"language":"fr"}"#).is_err());
        let me = serde_json::json!({"id": UserId::new_random(), "username": "u", "role": "read-only",
            "session_expires_at": "2026-11-22T00:00:00Z"});
        assert_eq!(serde_json::from_value::<Me>(me).unwrap().language, None);
    }

    #[test]
    fn events_are_tagged_by_kind() {
        let json = serde_json::to_value(Event::InventoryChanged).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "inventory-changed"}));
    }

    #[test]
    fn an_overcommit_conflict_reads_as_an_api_error_too() {
        let conflict = OvercommitConflict {
            code: "would-overcommit".into(),
            message: "starting VM \"x\" would leave c1 able to survive 0 host failure(s)".into(),
            cluster_id: ClusterId::new_random(),
            cluster_name: "c1".into(),
            action: "starting VM \"x\" on h1".into(),
            capacity_before: Some(1),
            capacity_after: Some(0),
            limit: 1,
            plan_exists_for: 1,
            lower_limit_to: Some(0),
            may_override: true,
        };
        let text = serde_json::to_string(&conflict).unwrap();
        let error: ApiError = serde_json::from_str(&text).unwrap();
        assert_eq!((error.code.as_str(), error.message), ("would-overcommit", conflict.message.clone()));
        assert_eq!(serde_json::from_str::<OvercommitConflict>(&text).unwrap(), conflict);
        assert_eq!(serde_json::to_value(OvercommitChoice::LowerLimit).unwrap(), "lower-limit");
    }

    #[test]
    fn hosts_from_an_older_server_decode_with_oobm_disabled() {
        let resources = serde_json::json!({"cpu_cores": 1, "cpu_mhz": 1000, "memory_mb": 1024});
        let json = serde_json::json!({"id": HostId::new_random(), "zone_id": ZoneId::new_random(),
            "cluster_id": ClusterId::new_random(), "name": "h", "address": "a", "hypervisor": "sim",
            "allocation": "enabled", "connection": "connected", "last_heartbeat_at": null,
            "capacity": resources, "allocated": resources, "tags": [], "storage_pool_ids": [],
            "vm_count": 0, "running_vm_count": 0});
        let host: Host = serde_json::from_value(json).unwrap();
        assert_eq!((host.oobm_enabled_effective, host.power_state), (false, PowerState::Disabled));
    }

    #[test]
    fn power_actions_read_in_either_case_and_secrets_never_print() {
        let request: PowerActionRequest = serde_json::from_str(r#"{"action":"off"}"#).unwrap();
        assert_eq!(request.action, PowerAction::Off);
        assert_eq!(serde_json::to_value(PowerAction::Cycle).unwrap(), "CYCLE");
        let change = ChangeOobmPasswordRequest { new_password: "s3cret-value".into() };
        assert!(!format!("{change:?}").contains("s3cret"));
        let configure: ConfigureOobmRequest = serde_json::from_value(serde_json::json!({"driver": "ipmitool",
            "address": "10.0.0.5", "username": "admin", "password": "s3cret-value"}))
        .unwrap();
        assert!(!format!("{configure:?}").contains("s3cret"));
    }

    #[test]
    fn clusters_from_an_older_server_still_decode() {
        let json = serde_json::json!({"id": ClusterId::new_random(), "zone_id": ZoneId::new_random(), "name": "c",
            "ha_enabled": false, "oobm_enabled": false});
        let cluster: Cluster = serde_json::from_value(json).unwrap();
        assert_eq!((cluster.ha_failure_limit, cluster.ha_plan), (0, None));
    }
}

/// An account as pool admins manage it (never with its password hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    pub role: Role,
}

/// Change a user's role and/or enable or disable the account; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A pool admin sets a new password for someone else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPasswordRequest {
    pub new_password: String,
}

/// A user changes their own password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// One mutating call, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// e.g. `POST /api/v1/vms/{id}/start`
    pub action: String,
    /// The concrete path called, naming the object.
    pub target: String,
    /// `ok`, `refused` (4xx) or `failed` (5xx).
    pub outcome: String,
    pub status: u16,
    pub client: String,
    /// What the call decided beyond its status, e.g. `overcommit=proceed: cluster-a becomes
    /// overcommitted (capacity 1 -> 0, limit 1)`.
    #[serde(default)]
    pub detail: Option<String>,
}

/// Filters of `GET /api/v1/audit`; all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: Option<String>,
    /// Matches entries whose target contains this text (an id or a path part).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A disk image VMs are deployed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: TemplateId,
    pub name: String,
    pub os: String,
    pub disk_gb: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOfferingRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cpu_cores: u32,
    /// Speed of one core in MHz.
    pub cpu_mhz: u32,
    pub memory_mb: u64,
    #[serde(default)]
    pub host_tags: Vec<String>,
    #[serde(default)]
    pub offer_ha: bool,
}

/// Absent fields stay as they are. CPU and memory can change only while no VM uses the offering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOfferingRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cpu_cores: Option<u32>,
    #[serde(default)]
    pub cpu_mhz: Option<u32>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub host_tags: Option<Vec<String>>,
    #[serde(default)]
    pub offer_ha: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployVmRequest {
    pub name: String,
    pub offering_id: OfferingId,
    pub template_id: TemplateId,
    #[serde(default = "default_network")]
    pub network: String,
    pub storage_pool_id: StoragePoolId,
    /// A chosen host (pool operator and up); without it placement picks the least loaded host that fits.
    #[serde(default)]
    pub host_id: Option<HostId>,
    /// Start the VM once placed [default: true].
    #[serde(default = "default_true")]
    pub start: bool,
}

fn default_network() -> String {
    "default".to_owned()
}

fn default_true() -> bool {
    true
}

/// Answer of a deploy: the VM and, when it is being started, the command that starts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmDeployed {
    pub vm: Vm,
    pub command_id: Option<CommandId>,
}

/// A VM's HA settings; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateVmHaRequest {
    #[serde(default)]
    pub ha_protected: Option<bool>,
    #[serde(default)]
    pub restart_priority: Option<RestartPriority>,
    #[serde(default)]
    pub start_order: Option<i32>,
    #[serde(default)]
    pub start_delay_seconds: Option<u32>,
}

/// Change whether new VMs may go to a host, and its tags; absent fields stay as they are.
/// Maintenance has its own routes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateHostRequest {
    #[serde(default)]
    pub allocation: Option<HostAllocation>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A pool as the failover planner sees it (`parapet plan FILE.json`, `POST /api/v1/ha/plan/simulate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPool {
    pub hosts: Vec<PlanHost>,
    pub vms: Vec<PlanVm>,
    /// How many host failures the operator wants to survive.
    pub failure_limit: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanHost {
    pub name: String,
    pub memory_mb: u64,
    pub cpu_mhz: u64,
    /// A host that is down already counts as failed.
    #[serde(default = "default_true")]
    pub live: bool,
    /// Carries the `ha.tag`: takes only VMs restarted by HA.
    #[serde(default)]
    pub ha_dedicated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanVm {
    pub name: String,
    pub memory_mb: u64,
    pub cpu_mhz: u64,
    /// The host it runs on; `null` when not running.
    pub host: Option<String>,
    pub priority: RestartPriority,
    /// All its disks are on shared storage (otherwise it cannot restart elsewhere).
    #[serde(default = "default_true")]
    pub shared_storage: bool,
}

/// Where one VM goes after a set of failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPlacement {
    pub vm: String,
    /// The host it restarts on, or `null` when it does not restart.
    pub host: Option<String>,
    /// Why it does not restart (when `host` is null).
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFailure {
    /// The hosts that fail, in order.
    pub failed: Vec<String>,
    /// Every protected or best-effort VM of those hosts, and where it goes.
    pub placements: Vec<PlanPlacement>,
    /// All protected VMs found a host.
    pub protected_all_restart: bool,
}

/// The planner's verdict on a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReport {
    /// The largest k such that every set of k failing hosts, in any order, leaves room for every
    /// protected VM; `null` when even now not every protected VM can run.
    pub max_failure_capacity: Option<u32>,
    pub failure_limit: u32,
    /// min(limit, capacity): the failures the plan covers; 0 when there is no plan.
    pub plan_exists_for: u32,
    pub overcommitted: bool,
    /// `exact`: no larger k holds (one failure order refutes k + 1, or every host was counted);
    /// `bound`: k is proven (slot bound, then exhaustive search as far as affordable), a larger k may
    /// hold; `trivial`: nothing to protect; `none`: no plan.
    pub method: String,
    /// Protected VMs with local disks: they are lost with their host, and not counted.
    pub unprotectable: Vec<String>,
    /// Why there is no plan at all (when capacity is null).
    pub reason: Option<String>,
}

/// `POST /api/v1/ha/plan/simulate`: a pool, and optionally a failure set or a VM start to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSimulateRequest {
    pub pool: PlanPool,
    /// Hosts that fail, in order: answers where each VM would go.
    #[serde(default)]
    pub fail: Option<Vec<String>>,
    /// A VM to start (on `on`, or where placement puts it): answers whether it is admitted.
    #[serde(default)]
    pub admit_start: Option<String>,
    #[serde(default)]
    pub on: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanAdmission {
    pub vm: String,
    pub host: Option<String>,
    pub admitted: bool,
    pub capacity_before: Option<u32>,
    pub capacity_after: Option<u32>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSimulateResponse {
    pub report: PlanReport,
    /// Each single-host failure (when no failure set was asked for), or the asked one.
    pub failures: Vec<PlanFailure>,
    pub admission: Option<PlanAdmission>,
}

/// `PUT /api/v1/clusters/{id}/ha/failure-limit`: how many host failures the cluster should survive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetFailureLimitRequest {
    pub limit: u32,
    /// Set a limit above the current capacity anyway: the cluster becomes overcommitted. Without
    /// it such a limit is refused with 409 `limit-above-capacity`.
    #[serde(default)]
    pub confirm_overcommit: bool,
}

/// `GET /api/v1/clusters/{id}/ha/plan`: the cluster's failover plan computed now from the inventory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterHaPlan {
    pub cluster_id: ClusterId,
    pub cluster_name: String,
    pub failure_limit: u32,
    /// The `ha.tag` setting: hosts carrying it count as dedicated HA hosts. `null` when not set.
    pub ha_tag: Option<String>,
    pub report: PlanReport,
    /// The pool the report was computed from (the planner's input), for what-if questions through
    /// `POST /api/v1/ha/plan/simulate`. VMs that are not running are left out: HA protects a VM
    /// while it runs.
    pub pool: PlanPool,
}

/// Name of the query parameter that carries an [`OvercommitChoice`] on the routes that admission
/// control checks: `POST /vms`, `POST /vms/{id}/start`, `POST /vms/{id}/migrate`,
/// `PATCH /vms/{id}/ha`, `PATCH /hosts/{id}`, `POST /hosts/{id}/maintenance`, `DELETE /hosts/{id}`.
pub const OVERCOMMIT_PARAM: &str = "overcommit";

/// What to do when an action would break a cluster's failover plan (pool operators and up only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OvercommitChoice {
    /// Go ahead: the cluster becomes overcommitted.
    Proceed,
    /// Lower the cluster's failure limit to the capacity after the action, then go ahead.
    LowerLimit,
}

impl OvercommitChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            OvercommitChoice::Proceed => "proceed",
            OvercommitChoice::LowerLimit => "lower-limit",
        }
    }
}

/// The 409 answer (code `would-overcommit`) of an action that would break the failover plan. A
/// superset of [`ApiError`]: clients that only know `ApiError` read its `code` and `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvercommitConflict {
    pub code: String,
    pub message: String,
    pub cluster_id: ClusterId,
    pub cluster_name: String,
    /// What was refused, e.g. `start VM "web-01" on kvm-a1`.
    pub action: String,
    /// Max failure capacity now and after the action (`null`: not even today's protected VMs fit).
    pub capacity_before: Option<u32>,
    pub capacity_after: Option<u32>,
    /// The cluster's host failure limit.
    pub limit: u32,
    /// min(limit, capacity before): what the plan covers now and the action would break.
    pub plan_exists_for: u32,
    /// `?overcommit=lower-limit` sets the limit to this; `null` when no limit keeps a plan.
    pub lower_limit_to: Option<u32>,
    /// Whether the caller's role may proceed or lower the limit (pool operator and up).
    pub may_override: bool,
}

/// The 409 answer (code `limit-above-capacity`) of a failure limit above the cluster's capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitAboveCapacity {
    pub code: String,
    pub message: String,
    pub cluster_id: ClusterId,
    pub limit: u32,
    /// The cluster's max failure capacity now (`null`: not even today's protected VMs fit).
    pub capacity: Option<u32>,
}

/// An alert's identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub uuid::Uuid);

impl AlertId {
    pub fn new_random() -> Self {
        AlertId(uuid::Uuid::new_v4())
    }
}

impl std::fmt::Display for AlertId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for AlertId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(AlertId)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        }
    }
}

/// Alert kinds the server raises. A string, not an enum, so that new kinds (HA engine, OOBM) reach
/// older consoles as text instead of failing to decode.
pub mod alert_kind {
    /// A cluster's max failure capacity fell below its failure limit.
    pub const POOL_OVERCOMMITTED: &str = "pool-overcommitted";
    /// A cluster's max failure capacity fell.
    pub const CAPACITY_DROPPED: &str = "capacity-dropped";
    /// `ha.tag` is set but no host of a cluster carries it.
    pub const NO_HA_TAG_HOST: &str = "no-ha-tag-host";
    /// A host's BMC refused the configured username or password (raised at most once a day per host).
    pub const OOBM_AUTH_ERROR: &str = "oobm-auth-error";
    /// A cluster's HA was switched off while its zone's HA is on (paused for changes): raised by the
    /// cluster switch, cleared when cluster HA is on again or the zone's HA is off.
    pub const HA_PAUSED: &str = "ha-paused";
}

/// Something an operator must see. Open until acknowledged; `cleared_at` says when its condition ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    /// See [`alert_kind`].
    pub kind: String,
    pub severity: AlertSeverity,
    pub cluster_id: Option<ClusterId>,
    pub host_id: Option<HostId>,
    pub vm_id: Option<VmId>,
    pub message: String,
    pub raised_at: DateTime<Utc>,
    /// Last time the condition was raised again with a new message or severity.
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The user name of who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When its condition ended (the alert stays open until acknowledged).
    pub cleared_at: Option<DateTime<Utc>>,
}

/// Which alerts `GET /api/v1/alerts` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertStatusFilter {
    /// Not acknowledged yet (the default).
    #[default]
    Open,
    All,
}

/// Query of `GET /api/v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertQuery {
    #[serde(default)]
    pub status: AlertStatusFilter,
    /// At most this many, newest first [default 200, at most 1000].
    #[serde(default)]
    pub limit: Option<u32>,
}

// ---- Out-of-band management (OOBM): BMC configuration, power actions, power state ----

/// How the server talks to a host's BMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OobmDriver {
    /// IPMI v2.0 over LAN ("lanplus"), through Debian's `ipmitool`.
    Ipmitool,
    /// DMTF Redfish over HTTP(S).
    Redfish,
}

impl OobmDriver {
    /// The port a BMC listens on when none is given (Redfish: HTTPS 443, HTTP 80).
    pub fn default_port(self, https: bool) -> u16 {
        match self {
            OobmDriver::Ipmitool => 623,
            OobmDriver::Redfish if https => 443,
            OobmDriver::Redfish => 80,
        }
    }
}

/// How the Redfish driver authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedfishAuth {
    /// HTTP basic authentication on every request.
    #[default]
    Basic,
    /// A session from `SessionService` (`X-Auth-Token`), opened per operation and closed after it.
    Session,
}

/// A host's power as its BMC reports it. `disabled`: OOBM is off for the host (at zone, cluster or
/// host); `unknown`: the BMC did not answer, refused us, or said something unclear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerState {
    On,
    Off,
    Unknown,
    #[default]
    Disabled,
}

/// A power action on a host's BMC (CloudStack's names). OFF is always a hard power-off (Redfish
/// ForceOff, IPMI chassis power off), SOFT the graceful shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PowerAction {
    #[serde(alias = "on")]
    On,
    #[serde(alias = "off")]
    Off,
    #[serde(alias = "cycle")]
    Cycle,
    #[serde(alias = "reset")]
    Reset,
    #[serde(alias = "soft")]
    Soft,
    #[serde(alias = "status")]
    Status,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "ON",
            PowerAction::Off => "OFF",
            PowerAction::Cycle => "CYCLE",
            PowerAction::Reset => "RESET",
            PowerAction::Soft => "SOFT",
            PowerAction::Status => "STATUS",
        }
    }
}

/// Why a BMC call failed, told apart so that operators know what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OobmErrorKind {
    /// Nothing answered at the address (refused, no route, no IPMI session).
    Unreachable,
    /// The BMC answered but refused the username or password (or the user lacks the privilege).
    Auth,
    /// The call did not finish within its timeout.
    Timeout,
    /// The BMC does not support the action.
    Unsupported,
    /// The BMC answered something we could not use (a bad certificate, an unexpected reply).
    Protocol,
}

/// A failed BMC call: its kind and a message (never with a password in it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OobmFailure {
    pub kind: OobmErrorKind,
    pub message: String,
}

/// A host's OOBM configuration as the API shows it: the password only as `password_set`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostOobm {
    pub host_id: HostId,
    pub driver: OobmDriver,
    pub address: String,
    pub port: u16,
    pub username: String,
    /// A password is stored (encrypted); it is never shown.
    pub password_set: bool,
    /// IPMI cipher suite (3 = HMAC-SHA1 / AES-CBC-128, what ipmitool uses by default).
    pub ipmi_cipher_suite: u8,
    /// Redfish over HTTPS (else plain HTTP).
    pub redfish_https: bool,
    /// Redfish: accept a self-signed (untrusted) certificate.
    pub redfish_accept_self_signed: bool,
    pub redfish_auth: RedfishAuth,
    /// Redfish: which `Systems` member is this host; `null` takes the only one.
    pub redfish_system_id: Option<String>,
    /// The host's own switch; OOBM is in effect only when zone, cluster and host are all on.
    pub enabled: bool,
    pub enabled_effective: bool,
    pub power_state: PowerState,
    /// When the power state was last read from the BMC.
    pub power_state_read_at: Option<DateTime<Utc>>,
    /// The last failed BMC call, until a call succeeds.
    pub last_error: Option<OobmFailure>,
}

/// `PUT /hosts/{id}/oobm`: configure a host's BMC. `password` may be left out to keep the stored
/// one (required the first time); the other optional fields take the defaults shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigureOobmRequest {
    pub driver: OobmDriver,
    pub address: String,
    /// [default: 623 for IPMI, 443 for Redfish over HTTPS, 80 over HTTP]
    #[serde(default)]
    pub port: Option<u16>,
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    /// [default: 3]
    #[serde(default)]
    pub ipmi_cipher_suite: Option<u8>,
    /// [default: true]
    #[serde(default)]
    pub redfish_https: Option<bool>,
    #[serde(default)]
    pub redfish_accept_self_signed: bool,
    #[serde(default)]
    pub redfish_auth: RedfishAuth,
    #[serde(default)]
    pub redfish_system_id: Option<String>,
}

impl std::fmt::Debug for ConfigureOobmRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigureOobmRequest")
            .field("driver", &self.driver)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "••••"))
            .field("ipmi_cipher_suite", &self.ipmi_cipher_suite)
            .field("redfish_https", &self.redfish_https)
            .field("redfish_accept_self_signed", &self.redfish_accept_self_signed)
            .field("redfish_auth", &self.redfish_auth)
            .field("redfish_system_id", &self.redfish_system_id)
            .finish()
    }
}

/// `POST /hosts/{id}/oobm/test`: try STATUS with these settings (a missing password: the stored
/// one), or with the stored configuration when the body is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOobmRequest {
    #[serde(default)]
    pub settings: Option<ConfigureOobmRequest>,
}

/// Answer of the test: the power state read, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OobmTestResult {
    pub ok: bool,
    pub power_state: PowerState,
    pub error: Option<OobmFailure>,
    pub elapsed_ms: u64,
}

/// `POST /hosts/{id}/oobm/power`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerActionRequest {
    pub action: PowerAction,
}

/// Answer of a power action the BMC accepted. A BMC applies most changes after it answers, so
/// `power_state` is what it reported right after (STATUS: the state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerActionResult {
    pub action: PowerAction,
    pub power_state: PowerState,
    /// How the action was carried out when not directly, e.g. CYCLE as OFF then ON.
    pub note: Option<String>,
    pub elapsed_ms: u64,
}

/// `PUT /zones/{id}/oobm/enabled`, `/clusters/{id}/oobm/enabled`, `/hosts/{id}/oobm/enabled`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOobmEnabledRequest {
    pub enabled: bool,
}

/// `POST /hosts/{id}/oobm/password`: set a new password for the configured user on the BMC and in
/// the server's store, both or neither.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOobmPasswordRequest {
    pub new_password: String,
}

impl std::fmt::Debug for ChangeOobmPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeOobmPasswordRequest { new_password: •••• }")
    }
}
