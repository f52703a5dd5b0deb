//! The storage heartbeat channel: what other hosts' readings prove about a host, and which primary
//! storage is down.
//!
//! A reading (`StorageSighting`) says: observer O read host H's record on storage S at `read_at`, and
//! the counter there has not changed since O first read it at `advanced_at`. So H wrote nothing on S
//! between `advanced_at` and `read_at`. With L = H's last sign of life on any channel (its last network
//! heartbeat, the latest `advanced_at` of any reading), a reading proves H silent on S for
//! `read_at - L`. Silence counts only when every storage H is read on proves it: a storage nobody can
//! read proves nothing (H may be writing there).

use super::{AlertKind, AlertSubject, EngineState, HostObservation, Millis, Out, StorageSighting, Timing, View};
use api::StoragePoolId;
use api::v1::AlertSeverity;
use std::collections::{BTreeMap, BTreeSet};

/// What the storage channel says about a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StorageVerdict {
    /// Some reading saw its counter advance within the storage timeout, after the network went silent.
    Alive,
    /// Every storage it is read on proves it silent for longer than the storage timeout.
    Silent,
    /// Nobody can tell (no reading, or readings too old to prove anything).
    Unknown,
}

/// The host's last sign of life on either channel.
pub(crate) fn last_sign(host: &HostObservation) -> Option<Millis> {
    let storage =
        host.storage_seen.iter().filter(|seen| seen.observer != host.id).map(|seen| seen.advanced_at_ms).max();
    match (host.last_heartbeat_ms, storage) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn readings(host: &HostObservation) -> impl Iterator<Item = &StorageSighting> {
    host.storage_seen.iter().filter(move |seen| seen.observer != host.id)
}

/// The longest silence (ms after `last`) proven on storage `storage`, if any reading is there.
fn proven_silence(host: &HostObservation, storage: StoragePoolId, last: Millis) -> Option<Millis> {
    readings(host).filter(|seen| seen.storage == storage).map(|seen| seen.read_at_ms - last).max()
}

/// What the engine knows of storage outages (see `EngineState::storage_down`, `storage_back_at`).
#[derive(Clone, Copy)]
pub(crate) struct Outages<'a> {
    pub down: &'a BTreeMap<StoragePoolId, Millis>,
    pub back_at: &'a BTreeMap<StoragePoolId, Millis>,
}

pub(crate) fn verdict(now: Millis, timing: &Timing, host: &HostObservation, outages: Outages<'_>) -> StorageVerdict {
    // Alive: a write seen after the network went silent (two intervals: a write of the host's last
    // round may be read up to an interval late), and recent.
    let after_silence = |seen: &&StorageSighting| {
        host.last_heartbeat_ms
            .is_none_or(|heartbeat| seen.advanced_at_ms > heartbeat + 2 * timing.heartbeat_interval_ms)
    };
    if readings(host).filter(after_silence).any(|seen| now - seen.advanced_at_ms <= timing.storage_timeout_ms) {
        return StorageVerdict::Alive;
    }
    let Some(last) = last_sign(host) else { return StorageVerdict::Unknown };
    let storages: BTreeSet<StoragePoolId> = readings(host).map(|seen| seen.storage).collect();
    if storages.is_empty() {
        return StorageVerdict::Unknown;
    }
    // Silence counts from the last sign of life, or from the storage's return after an outage (nobody
    // could write there meanwhile); a storage that is down proves nothing.
    let all_proven = storages.iter().all(|&storage| {
        if outages.down.contains_key(&storage) {
            return false;
        }
        let from = outages.back_at.get(&storage).map_or(last, |back| last.max(*back));
        proven_silence(host, storage, from).is_some_and(|silence| silence > timing.storage_timeout_ms)
    });
    if all_proven { StorageVerdict::Silent } else { StorageVerdict::Unknown }
}

/// Is the host's record being read by other hosts right now (a reading within the storage timeout)?
pub(crate) fn being_read(now: Millis, timing: &Timing, host: &HostObservation) -> bool {
    readings(host).any(|seen| now - seen.read_at_ms <= timing.storage_timeout_ms)
}

/// Contract rule 5(b): the host's own record, written after its last network heartbeat, says it
/// fenced itself and runs no VM. Answers the reason. The agent writes that pair only when it holds:
/// it refuses every start from the fence on, and a start already under way counts as a running VM
/// until it has returned and been stopped again (docs/agent-ha.md, "Starts racing the fence").
pub(crate) fn self_fenced_record(host: &HostObservation) -> Option<String> {
    readings(host)
        .filter(|seen| seen.self_fenced && seen.running_vms == 0)
        .filter(|seen| host.last_heartbeat_ms.is_none_or(|heartbeat| seen.advanced_at_ms >= heartbeat))
        .max_by_key(|seen| seen.advanced_at_ms)
        .map(|seen| format!("its storage record (read at {} ms) says it fenced itself and runs no VM", seen.read_at_ms))
}

/// Contract rule 5(c): no sign of life on either channel for longer than the self-fence timeout plus
/// the margin, proven on every storage the host mounts (a storage nobody reads could still carry
/// its heartbeat, and then the agent would not fence itself). Answers the reason. Sound because the
/// agent's own clock of contact never runs ahead of `last_sign`: it counts a server only through
/// acknowledged heartbeats, from their sending, and a storage write from its start (docs/agent-ha.md,
/// "Contact with a management server"); a one-way cut cannot keep it from fencing itself in time.
pub(crate) fn self_fence_deadline_passed(now: Millis, timing: &Timing, host: &HostObservation) -> Option<String> {
    let last = last_sign(host)?;
    let needed = timing.self_fence_timeout_ms + timing.self_fence_margin_ms;
    if now - last <= needed || host.shared_storage.is_empty() {
        return None;
    }
    let proven = host
        .shared_storage
        .iter()
        .all(|&storage| proven_silence(host, storage, last).is_some_and(|silence| silence > needed));
    proven.then(|| {
        format!(
            "no heartbeat on either channel for {} ms (self-fence timeout {} ms + margin {} ms), proven on its storage",
            now - last,
            timing.self_fence_timeout_ms,
            timing.self_fence_margin_ms
        )
    })
}

/// Is storage `storage` up as seen by the hosts that report writing there (network-alive ones)?
/// `Some(true)`: someone writes; `Some(false)`: every reporting host fails; `None`: nobody reports.
pub(crate) fn storage_up(view: &View<'_>, storage: StoragePoolId) -> Option<bool> {
    let mut any = false;
    for host in view.obs.hosts.iter().filter(|host| view.network_alive(host)) {
        let timing = view.host_timing(host);
        for write in host.storage_writes.iter().filter(|write| write.storage == storage) {
            if view.now - write.at_ms > timing.storage_timeout_ms {
                continue;
            }
            if write.ok {
                return Some(true);
            }
            any = true;
        }
    }
    any.then_some(false)
}

/// Is `host`'s own heartbeat write on `storage` failing, and failing on its own: its last report
/// failed, and no other host has written there successfully since (reports arrive a second apart, so
/// right after an outage ends the hosts that have not reported yet still show the outage).
pub(crate) fn host_write_failing(view: &View<'_>, host: &HostObservation, storage: StoragePoolId) -> bool {
    let Some(failed_at) =
        host.storage_writes.iter().filter(|write| write.storage == storage && !write.ok).map(|write| write.at_ms).max()
    else {
        return false;
    };
    let latest_ok = view
        .obs
        .hosts
        .iter()
        .flat_map(|other| other.storage_writes.iter())
        .filter(|write| write.storage == storage && write.ok)
        .map(|write| write.at_ms)
        .max();
    latest_ok.is_none_or(|ok| failed_at > ok)
}

/// Primary storage outages (raise / clear `primary-storage-down`) and hosts that cannot write their
/// storage heartbeat on a storage that is otherwise up (`storage-heartbeat-lost`).
pub(crate) fn step(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    let storages: BTreeSet<StoragePoolId> =
        view.obs.hosts.iter().flat_map(|host| host.shared_storage.iter().copied()).collect();
    let mut cluster_of: BTreeMap<StoragePoolId, api::ClusterId> = BTreeMap::new();
    for host in &view.obs.hosts {
        for storage in &host.shared_storage {
            cluster_of.entry(*storage).or_insert(host.cluster);
        }
    }
    for &storage in &storages {
        let subject =
            AlertSubject { storage: Some(storage), cluster: cluster_of.get(&storage).copied(), ..Default::default() };
        match storage_up(view, storage) {
            Some(false) if !state.storage_down.contains_key(&storage) => {
                state.storage_down.insert(storage, view.now);
                out.raise(
                        AlertKind::PrimaryStorageDown,
                        AlertSeverity::Critical,
                        subject,
                    format!(
                        "primary storage {storage} is down: no host can write its heartbeat there; its VMs are stopped and restart when it is back"
                    ),
                );
            }
            Some(true) if state.storage_down.remove(&storage).is_some() => {
                state.storage_back_at.insert(storage, view.now);
                out.clear(AlertKind::PrimaryStorageDown, subject);
            }
            _ => {}
        }
    }
    state.storage_down.retain(|storage, _| storages.contains(storage));
    state.storage_back_at.retain(|storage, _| storages.contains(storage));
    for host in view.obs.hosts.iter() {
        for &storage in &host.shared_storage {
            let subject =
                AlertSubject { cluster: Some(host.cluster), host: Some(host.id), storage: Some(storage), vm: None };
            let lost = view.network_alive(host)
                && host_write_failing(view, host, storage)
                && !state.storage_down.contains_key(&storage);
            if lost {
                out.raise(
                    AlertKind::StorageHeartbeatLost,
                    AlertSeverity::Warning,
                    subject,
                    format!("host {} cannot write its storage heartbeat on storage {storage}", host.name),
                );
            } else {
                out.clear(AlertKind::StorageHeartbeatLost, subject);
            }
        }
    }
}
