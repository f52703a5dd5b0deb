//! HA engine rules at the API: the zone/cluster/host HA switches (cluster HA may include all its
//! hosts in one transaction), the host's HA provider, per-cluster timing settings and their
//! validation (a 400 that names the field), and reading host HA states, transitions and incidents.
//! Cluster HA switched off while its zone's is on raises the `ha-paused` reminder (cleared when it is
//! on again or the zone's HA is off). The engine itself (`ha::run`) picks every change up on its next step.

use super::AppError;
use super::alerts::{self, NewAlert};
use crate::db::HostHaRecord;
use crate::state::AppState;
use api::agent::{Peer, ServerMessage};
use api::v1::{
    AlertSeverity, ClusterHaSettings, ClusterHaSwitched, Event, HaIncident, HaIncidentDetail, HaIncidentQuery,
    HaProvider, HaTimingSettings, HostHa, HostHaState, HypervisorKind, IncidentId, SetClusterHaRequest,
    SetHaEnabledRequest, UpdateHaTimingRequest, Zone, alert_kind,
};
use api::{ClusterId, HostId, ZoneId};

/// Transitions shown with a host.
const TRANSITIONS_SHOWN: u32 = 100;
/// The longest timeout accepted: an hour is already far beyond any sane failover setting.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Heartbeats more often than this would only load the servers.
const MIN_HEARTBEAT_MS: u64 = 100;
const MAX_HEARTBEAT_MS: u64 = 60_000;

fn bad(field: &str, message: impl std::fmt::Display) -> AppError {
    AppError::bad_request("invalid-ha-timing", format!("{field}: {message}"))
}

/// The contract's rules for timing settings: every timeout exceeds the heartbeat interval, the
/// self-fence timeout exceeds the storage timeout (an agent must have lost its storage before it
/// fences itself), back-offs are positive and ordered, nothing absurdly long.
pub fn check_timing(timing: &HaTimingSettings) -> Result<(), AppError> {
    let heartbeat = timing.heartbeat_interval_ms;
    if !(MIN_HEARTBEAT_MS..=MAX_HEARTBEAT_MS).contains(&heartbeat) {
        return Err(bad("heartbeat_interval_ms", format!("must be {MIN_HEARTBEAT_MS} to {MAX_HEARTBEAT_MS} ms")));
    }
    for (field, value) in [
        ("suspect_after_ms", timing.suspect_after_ms),
        ("storage_timeout_ms", timing.storage_timeout_ms),
        ("self_fence_timeout_ms", timing.self_fence_timeout_ms),
    ] {
        if value <= heartbeat {
            return Err(bad(field, format!("{value} ms must exceed the heartbeat interval ({heartbeat} ms)")));
        }
        if value > MAX_TIMEOUT_MS {
            return Err(bad(field, format!("must be at most {MAX_TIMEOUT_MS} ms")));
        }
    }
    if timing.self_fence_timeout_ms <= timing.storage_timeout_ms {
        return Err(bad(
            "self_fence_timeout_ms",
            format!(
                "{} ms must exceed the storage timeout ({} ms)",
                timing.self_fence_timeout_ms, timing.storage_timeout_ms
            ),
        ));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&timing.fence_backoff_initial_ms) {
        return Err(bad("fence_backoff_initial_ms", format!("must be 1 to {MAX_TIMEOUT_MS} ms")));
    }
    if timing.fence_backoff_max_ms < timing.fence_backoff_initial_ms || timing.fence_backoff_max_ms > MAX_TIMEOUT_MS {
        return Err(bad(
            "fence_backoff_max_ms",
            format!(
                "must be at least fence_backoff_initial_ms ({} ms) and at most {MAX_TIMEOUT_MS} ms",
                timing.fence_backoff_initial_ms
            ),
        ));
    }
    Ok(())
}

/// Apply an update to the stored settings (absent fields keep their value).
pub fn updated_timing(current: HaTimingSettings, request: &UpdateHaTimingRequest) -> HaTimingSettings {
    HaTimingSettings {
        heartbeat_interval_ms: request.heartbeat_interval_ms.unwrap_or(current.heartbeat_interval_ms),
        suspect_after_ms: request.suspect_after_ms.unwrap_or(current.suspect_after_ms),
        storage_timeout_ms: request.storage_timeout_ms.unwrap_or(current.storage_timeout_ms),
        self_fence_timeout_ms: request.self_fence_timeout_ms.unwrap_or(current.self_fence_timeout_ms),
        fence_backoff_initial_ms: request.fence_backoff_initial_ms.unwrap_or(current.fence_backoff_initial_ms),
        fence_backoff_max_ms: request.fence_backoff_max_ms.unwrap_or(current.fence_backoff_max_ms),
    }
}

/// The provider a host gets: the one asked for, else the one its hypervisor needs. A simulated host
/// takes `sim` and a real one `kvm`; anything else is refused naming the field.
pub fn provider_for(hypervisor: HypervisorKind, asked: Option<HaProvider>) -> Result<HaProvider, AppError> {
    let needed = match hypervisor {
        HypervisorKind::Sim => HaProvider::Sim,
        HypervisorKind::Kvm => HaProvider::Kvm,
    };
    match asked {
        Some(provider) if provider != needed => Err(AppError::bad_request(
            "invalid-ha-provider",
            format!(
                "provider: a {} host takes the {} provider, not {}",
                if hypervisor == HypervisorKind::Sim { "simulated" } else { "KVM" },
                needed.as_str(),
                provider.as_str()
            ),
        )),
        _ => Ok(needed),
    }
}

/// Why HA is not in effect for a host, naming each switch that is off; `None` when it is.
pub fn why_disabled(record: &HostHaRecord) -> Option<String> {
    let off: Vec<&str> = [
        (!record.zone_enabled).then_some("its zone"),
        (!record.cluster_enabled).then_some("its cluster"),
        (!record.host_enabled).then_some("the host"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!off.is_empty()).then(|| format!("HA is off for {}", off.join(", ")))
}

/// `PUT /zones/{id}/ha`.
pub async fn set_zone_enabled(state: &AppState, zone: ZoneId, request: SetHaEnabledRequest) -> Result<Zone, AppError> {
    if request.provider.is_some() {
        return Err(AppError::bad_request("invalid-ha-provider", "provider: only a host has an HA provider"));
    }
    let zone = state
        .db
        .zone_set_ha_enabled(zone, request.enabled)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no zone with id {zone}")))?;
    tracing::info!(zone = %zone.name, enabled = request.enabled, "zone HA switched");
    if !zone.ha_enabled {
        // With the zone off no cluster of it is "paused": its reminders end.
        for cluster in state.db.cluster_list().await?.into_iter().filter(|cluster| cluster.zone_id == zone.id) {
            alerts::clear(state, &alerts::dedupe_key(alert_kind::HA_PAUSED, cluster.id)).await?;
        }
    }
    state.events.publish(Event::InventoryChanged);
    Ok(zone)
}

/// The reminder while a cluster's HA is paused: its zone's HA is on but the cluster's is off, so
/// nothing in it is watched, fenced or restarted.
pub fn paused_message(cluster: &str, zone: &str) -> String {
    format!(
        "HA is paused for cluster {cluster} while zone {zone} has HA on: its hosts are not watched and its VMs are not restarted after a host failure. Turn cluster HA back on when the change is done"
    )
}

/// Raise or clear the `ha-paused` alert after the cluster switch: raised when the cluster's HA is
/// switched off while its zone's is on, cleared when it is switched on.
async fn remind_paused(state: &AppState, cluster: ClusterId, enabled: bool) -> Result<(), AppError> {
    let key = alerts::dedupe_key(alert_kind::HA_PAUSED, cluster);
    if enabled {
        alerts::clear(state, &key).await?;
        return Ok(());
    }
    let Some(found) = state.db.cluster_fetch(cluster).await? else {
        return Ok(());
    };
    match state.db.zone_list().await?.into_iter().find(|zone| zone.id == found.zone_id) {
        Some(zone) if zone.ha_enabled => {
            let message = paused_message(&found.name, &zone.name);
            alerts::raise(
                state,
                NewAlert::for_cluster(alert_kind::HA_PAUSED, AlertSeverity::Warning, cluster, message),
            )
            .await?;
        }
        _ => {
            alerts::clear(state, &key).await?;
        }
    }
    Ok(())
}

/// `PUT /clusters/{id}/ha`: with `include_hosts`, every host of the cluster too, in one transaction.
pub async fn set_cluster_enabled(
    state: &AppState,
    cluster: ClusterId,
    request: SetClusterHaRequest,
) -> Result<ClusterHaSwitched, AppError> {
    let hosts = state
        .db
        .cluster_set_ha_enabled(cluster, request.enabled, request.include_hosts)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no cluster with id {cluster}")))?;
    tracing::info!(%cluster, enabled = request.enabled, hosts = hosts.len(), "cluster HA switched");
    remind_paused(state, cluster, request.enabled).await?;
    state.events.publish(Event::InventoryChanged);
    Ok(ClusterHaSwitched { cluster_id: cluster, ha_enabled: request.enabled, hosts_changed: hosts })
}

/// `PUT /hosts/{id}/ha`: the host's switch and provider.
pub async fn set_host_enabled(
    state: &AppState,
    host: HostId,
    request: SetHaEnabledRequest,
) -> Result<HostHa, AppError> {
    let record = require(state, host).await?;
    let provider = provider_for(record.hypervisor, request.provider)?;
    if !state.db.host_set_ha(host, request.enabled, provider).await? {
        return Err(AppError::NotFound(format!("no host with id {host}")));
    }
    tracing::info!(host = %record.host_name, enabled = request.enabled, provider = provider.as_str(), "host HA switched");
    state.events.publish_host(&state.db, host).await;
    show_host(state, host).await
}

/// Switch HA on for a zone and every cluster and host in it, through the same rules as the API
/// (`parapet demo` protects its pool this way). Answers how many hosts it covers.
pub async fn enable_zone_entirely(state: &AppState, zone: ZoneId) -> Result<usize, AppError> {
    set_zone_enabled(state, zone, SetHaEnabledRequest { enabled: true, provider: None }).await?;
    let mut hosts = 0;
    for cluster in state.db.cluster_list().await?.into_iter().filter(|cluster| cluster.zone_id == zone) {
        let request = SetClusterHaRequest { enabled: true, include_hosts: true };
        hosts += set_cluster_enabled(state, cluster.id, request).await?.hosts_changed.len();
    }
    Ok(hosts)
}

async fn require(state: &AppState, host: HostId) -> Result<HostHaRecord, AppError> {
    state.db.host_ha_fetch(host).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {host}")))
}

/// `GET /hosts/{id}/ha`: switches, provider, state (with why) and the latest transitions.
pub async fn show_host(state: &AppState, host: HostId) -> Result<HostHa, AppError> {
    let record = require(state, host).await?;
    let transitions = state.db.ha_transitions(host, TRANSITIONS_SHOWN).await?;
    // The stored state is the engine's; while HA is off, say so at once (the engine records the
    // Disabled transition on its next step).
    let (shown_state, reason) = match why_disabled(&record) {
        Some(why) => (HostHaState::Disabled, Some(why)),
        None => (record.state, record.reason.clone()),
    };
    Ok(HostHa {
        host_id: record.host_id,
        host_name: record.host_name.clone(),
        cluster_id: record.cluster_id,
        enabled: record.host_enabled,
        enabled_effective: record.effective(),
        provider: record.provider,
        state: shown_state,
        reason,
        since: record.since,
        transitions,
    })
}

/// `GET /clusters/{id}/ha/settings`.
pub async fn cluster_settings(state: &AppState, cluster: ClusterId) -> Result<ClusterHaSettings, AppError> {
    let found = state
        .db
        .cluster_fetch(cluster)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no cluster with id {cluster}")))?;
    let timing = state.db.cluster_ha_timing(cluster).await?.unwrap_or_default();
    Ok(ClusterHaSettings { cluster_id: cluster, ha_enabled: found.ha_enabled, timing })
}

/// `PUT /clusters/{id}/ha/settings`: absent fields keep their value; the whole is validated.
/// Agents learn a new self-fence timeout when they next connect (it travels in `Welcome`).
pub async fn update_cluster_settings(
    state: &AppState,
    cluster: ClusterId,
    request: UpdateHaTimingRequest,
) -> Result<ClusterHaSettings, AppError> {
    let current = cluster_settings(state, cluster).await?;
    let timing = updated_timing(current.timing, &request);
    check_timing(&timing)?;
    // The engine's own rules must agree (they cover the timings it derives from these).
    crate::ha::run::check_with_core(&timing)
        .map_err(|error| AppError::bad_request("invalid-ha-timing", error.to_string()))?;
    if !state.db.cluster_set_ha_timing(cluster, &timing).await? {
        return Err(AppError::NotFound(format!("no cluster with id {cluster}")));
    }
    tracing::info!(%cluster, ?timing, "cluster HA timing changed");
    Ok(ClusterHaSettings { timing, ..current })
}

/// `GET /ha/incidents`.
pub async fn incidents(state: &AppState, query: &HaIncidentQuery) -> Result<Vec<HaIncident>, AppError> {
    if query.limit.is_some_and(|limit| !(1..=1000).contains(&limit)) {
        return Err(AppError::bad_request("invalid-limit", "limit: must be 1 to 1000"));
    }
    Ok(state.db.ha_incident_list(query.host_id, query.limit.unwrap_or(100)).await?)
}

/// `GET /ha/incidents/{id}`.
pub async fn incident(state: &AppState, id: IncidentId) -> Result<HaIncidentDetail, AppError> {
    state.db.ha_incident_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no incident with id {id}")))
}

/// Where a peer receives heartbeat datagrams: `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT`.
fn peer_address(address: &str, port: u16) -> String {
    match address.parse::<std::net::Ipv6Addr>() {
        Ok(ip) => format!("[{ip}]:{port}"),
        Err(_) => format!("{address}:{port}"),
    }
}

/// The other hosts of `cluster` as `host`'s agent reaches them. A host whose agent runs no peer
/// heartbeat is listed with its bare address (no port: nobody can send to it) because it still
/// counts toward the cluster's size when an agent judges which side of a partition it is on.
pub async fn cluster_peers(state: &AppState, cluster: ClusterId, host: Option<HostId>) -> Result<Vec<Peer>, AppError> {
    Ok(state
        .db
        .cluster_peer_addresses(cluster)
        .await?
        .into_iter()
        .filter(|peer| Some(peer.host_id) != host)
        .map(|peer| Peer {
            host_id: peer.host_id,
            name: peer.name,
            address: match peer.peer_port {
                Some(port) => peer_address(&peer.address, port),
                None => peer.address,
            },
        })
        .collect())
}

/// What a newly connected agent needs for HA: its cluster's peers and timing. Also remembers the
/// agent's peer port and tells the cluster's other connected agents the new peer list.
pub async fn welcome_agent(
    state: &AppState,
    host: HostId,
    peer_port: Option<u16>,
) -> Result<(Vec<Peer>, HaTimingSettings), AppError> {
    state.db.host_set_peer_port(host, peer_port).await?;
    let record = require(state, host).await?;
    let timing = state.db.cluster_ha_timing(record.cluster_id).await?.unwrap_or_default();
    let peers = cluster_peers(state, record.cluster_id, Some(host)).await?;
    for peer in &peers {
        let theirs = cluster_peers(state, record.cluster_id, Some(peer.host_id)).await?;
        state.hub.notify(peer.host_id, ServerMessage::Peers { peers: theirs });
    }
    Ok((peers, timing))
}

/// A host's BMC for the HA engine, from its stored OOBM configuration: refused (as `Unsupported`)
/// when OOBM is not configured or not in effect, so the engine fences only through a BMC an
/// operator has switched on.
pub async fn engine_bmc(
    state: &AppState,
    host: HostId,
) -> Result<(crate::db::OobmRecord, Box<dyn crate::oobm::Bmc>), crate::oobm::OobmError> {
    use crate::oobm::{self, BmcEndpoint, OobmError};
    let record = match state.db.oobm_fetch(host).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(OobmError::Unsupported(format!("host {host} has no OOBM configuration"))),
        Err(error) => {
            return Err(OobmError::Protocol(format!(
                "cannot read the OOBM configuration: {}",
                crate::events::error_chain(&error)
            )));
        }
    };
    if !record.effective() {
        return Err(OobmError::Unsupported(format!("OOBM is not enabled for host {}", record.host_name)));
    }
    let password = state
        .secrets
        .open(&record.password_sealed, &super::oobm::password_context(host))
        .map_err(|error| OobmError::Protocol(format!("the stored BMC password cannot be used: {error}")))?;
    let endpoint = BmcEndpoint {
        driver: record.driver,
        address: record.address.clone(),
        port: record.port,
        username: record.username.clone(),
        password,
        ipmi_cipher_suite: record.ipmi_cipher_suite,
        redfish_https: record.redfish_https,
        redfish_accept_self_signed: record.redfish_accept_self_signed,
        redfish_auth: record.redfish_auth,
        redfish_system_id: record.redfish_system_id.clone(),
    };
    let bmc = oobm::connect(endpoint, &state.settings.oobm)?;
    Ok((record, bmc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(timing: HaTimingSettings) -> String {
        match check_timing(&timing) {
            Err(AppError::BadRequest { message, .. }) => message,
            Err(other) => panic!("not a 400: {other:?}"),
            Ok(()) => panic!("accepted: {timing:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid_and_every_bad_timeout_is_refused_by_name() {
        check_timing(&HaTimingSettings::default()).unwrap();
        let base = HaTimingSettings::default();
        let message = refusal(HaTimingSettings { suspect_after_ms: 1000, ..base });
        assert!(message.starts_with("suspect_after_ms:") && message.contains("heartbeat interval"), "{message}");
        assert!(refusal(HaTimingSettings { storage_timeout_ms: 500, ..base }).starts_with("storage_timeout_ms:"));
        assert!(
            refusal(HaTimingSettings { heartbeat_interval_ms: 9000, ..base }).starts_with("suspect_after_ms:"),
            "a longer heartbeat makes the first timeout too short"
        );
        let message = refusal(HaTimingSettings { self_fence_timeout_ms: 4000, ..base });
        assert!(message.starts_with("self_fence_timeout_ms:") && message.contains("storage timeout"), "{message}");
        assert!(refusal(HaTimingSettings { heartbeat_interval_ms: 0, ..base }).starts_with("heartbeat_interval_ms:"));
        assert!(refusal(HaTimingSettings { fence_backoff_max_ms: 500, ..base }).starts_with("fence_backoff_max_ms:"));
        assert!(
            refusal(HaTimingSettings { fence_backoff_initial_ms: 0, ..base }).starts_with("fence_backoff_initial_ms:")
        );
        assert!(refusal(HaTimingSettings { self_fence_timeout_ms: 99_999_999, ..base }).starts_with("self_fence"));
    }

    #[test]
    fn updates_keep_absent_fields() {
        let request = UpdateHaTimingRequest { suspect_after_ms: Some(5000), ..Default::default() };
        let updated = updated_timing(HaTimingSettings::default(), &request);
        assert_eq!(updated, HaTimingSettings { suspect_after_ms: 5000, ..Default::default() });
    }

    #[test]
    fn peer_addresses_put_ipv6_in_brackets() {
        assert_eq!(peer_address("127.0.1.2", 7000), "127.0.1.2:7000");
        assert_eq!(peer_address("fd00::5", 7000), "[fd00::5]:7000");
        assert_eq!(peer_address("kvm-a1.example", 7000), "kvm-a1.example:7000");
    }

    #[test]
    fn the_provider_follows_the_hypervisor() {
        assert_eq!(provider_for(HypervisorKind::Sim, None).unwrap(), HaProvider::Sim);
        assert_eq!(provider_for(HypervisorKind::Kvm, Some(HaProvider::Kvm)).unwrap(), HaProvider::Kvm);
        match provider_for(HypervisorKind::Kvm, Some(HaProvider::Sim)) {
            Err(AppError::BadRequest { message, .. }) => assert!(message.starts_with("provider:"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
