//! The storage heartbeat channel: on every shared primary storage it mounts, the agent rewrites
//! `<mount>/.parapet-hb/<host name>.json` (an [`api::agent::StorageRecord`]) every heartbeat interval and
//! reads the other hosts' records beside it. A host whose network is cut but whose storage works is
//! isolated, not dead; the engine tells the two apart through these records, as the other hosts report
//! them in their heartbeats.
//!
//! File IO runs on tokio's blocking pool under a timeout: a hung NFS mount blocks one blocking thread, never
//! the agent. While a write is still hung, the next beats do not queue more threads behind it; they count
//! as failed writes until it returns.

use crate::faults::NetworkFaults;
use crate::health::Health;
use crate::hypervisor::Hypervisor;
use api::agent::{AgentVmState, StorageRecord};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The directory holding the records, under each storage's mount point.
pub const RECORD_DIR: &str = ".parapet-hb";

/// A shared primary storage as this host mounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageMount {
    /// The storage's URL, as registered (`HostRegistration::mounted_storage`).
    pub name: String,
    /// Where it is mounted here: the records go under `<dir>/.parapet-hb/`.
    pub dir: PathBuf,
}

/// The record's file name for `host`: the name itself when it is a plain file name, with any other
/// character replaced by `_` (a host name never escapes the record directory).
pub fn record_file_name(host: &str) -> String {
    let mut name: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    format!("{name}.json")
}

/// Write the own record durably: a temp file, fsync, rename over the record, fsync of the directory. A
/// reader sees the old record or the new one, never half of one.
pub fn write_record(dir: &Path, record: &StorageRecord) -> io::Result<()> {
    let records = dir.join(RECORD_DIR);
    fs::create_dir_all(&records)?;
    let file_name = record_file_name(&record.host);
    let temp = records.join(format!(".{file_name}.tmp"));
    let mut file = File::create(&temp)?;
    file.write_all(&serde_json::to_vec(record).map_err(io::Error::other)?)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, records.join(&file_name))?;
    File::open(&records)?.sync_all()
}

/// Read every other host's record in the storage's record directory (sorted by host). Temp files, the own
/// record and files that do not parse (a foreign file, a torn write by an old writer) are skipped.
pub fn read_records(dir: &Path, own_host: &str) -> io::Result<Vec<StorageRecord>> {
    let own_file = record_file_name(own_host);
    let mut records = Vec::new();
    let entries = match fs::read_dir(dir.join(RECORD_DIR)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(records),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        if file_name.starts_with('.') || !file_name.ends_with(".json") || file_name == own_file {
            continue;
        }
        let bytes = match fs::read(entry.path()) {
            Ok(bytes) => bytes,
            // Renamed away between listing and reading.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        match serde_json::from_slice::<StorageRecord>(&bytes) {
            Ok(record) if record.host != own_host => records.push(record),
            Ok(_) => {}
            Err(error) => tracing::debug!(file = file_name, "skipping an unreadable heartbeat record: {error}"),
        }
    }
    records.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(records)
}

/// The writer and reader of one host's storage heartbeats.
pub struct StorageHeartbeat {
    host: String,
    mounts: Vec<(StorageMount, Arc<AtomicBool>)>,
    health: Arc<Health>,
    hypervisor: Arc<dyn Hypervisor>,
    faults: Option<Arc<NetworkFaults>>,
}

impl StorageHeartbeat {
    pub fn new(
        host: String,
        mounts: Vec<StorageMount>,
        health: Arc<Health>,
        hypervisor: Arc<dyn Hypervisor>,
        faults: Option<Arc<NetworkFaults>>,
    ) -> Self {
        let mounts = mounts.into_iter().map(|mount| (mount, Arc::new(AtomicBool::new(false)))).collect();
        StorageHeartbeat { host, mounts, health, hypervisor, faults }
    }

    /// Beat every heartbeat interval until dropped. The counter starts at 1 and advances on every beat.
    pub async fn run(self) {
        if self.mounts.is_empty() {
            return;
        }
        let mut counter = 0u64;
        let mut running_vms = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            let interval = self.health.settings().heartbeat_interval;
            counter += 1;
            if let Ok(vms) = tokio::time::timeout(interval, self.hypervisor.list_vms()).await {
                running_vms =
                    vms.iter().filter(|vm| !matches!(vm.state, AgentVmState::Stopped | AgentVmState::Crashed)).count()
                        as u32;
            }
            let record = StorageRecord {
                host: self.host.clone(),
                counter,
                written_at_ms: chrono::Utc::now().timestamp_millis(),
                self_fenced: self.health.fenced().is_some(),
                running_vms,
            };
            futures::future::join_all(
                self.mounts.iter().map(|(mount, in_flight)| self.beat(mount, in_flight, &record, interval)),
            )
            .await;
            tokio::time::sleep_until(started + interval).await;
        }
    }

    async fn beat(&self, mount: &StorageMount, in_flight: &Arc<AtomicBool>, record: &StorageRecord, limit: Duration) {
        if let Some(faults) = &self.faults
            && !faults.storage_ok(&self.host)
        {
            self.health.storage_beat(&mount.name, Err("storage unreachable (simulated fault)".into()), None);
            return;
        }
        if in_flight.swap(true, Ordering::SeqCst) {
            let error = "the previous heartbeat write has not returned (storage hung?)".to_owned();
            self.health.storage_beat(&mount.name, Err(error), None);
            return;
        }
        let dir = mount.dir.clone();
        let own = record.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            let written = write_record(&dir, &own);
            let read = read_records(&dir, &own.host);
            (written, read)
        });
        match tokio::time::timeout(limit, &mut job).await {
            Ok(Ok((written, read))) => {
                in_flight.store(false, Ordering::SeqCst);
                let written = written.map_err(|error| format!("cannot write the heartbeat record: {error}"));
                if let Err(error) = &written {
                    tracing::warn!(storage = %mount.name, "{error}");
                }
                self.health.storage_beat(&mount.name, written, read.ok());
            }
            Ok(Err(panic)) => {
                in_flight.store(false, Ordering::SeqCst);
                self.health.storage_beat(&mount.name, Err(format!("the heartbeat write failed: {panic}")), None);
            }
            Err(_) => {
                let error = format!("the heartbeat write did not return within {} ms", limit.as_millis());
                tracing::warn!(storage = %mount.name, "{error}");
                self.health.storage_beat(&mount.name, Err(error), None);
                // The blocking thread cannot be cancelled; the flag clears once it returns at last.
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    let _ = job.await;
                    in_flight.store(false, Ordering::SeqCst);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, counter: u64) -> StorageRecord {
        StorageRecord {
            host: host.into(),
            counter,
            written_at_ms: 1_700_000_000_000,
            self_fenced: false,
            running_vms: 2,
        }
    }

    #[test]
    fn records_are_replaced_whole_and_peers_read_back() {
        let dir = tempfile::tempdir().unwrap();
        write_record(dir.path(), &record("kvm-a1", 1)).unwrap();
        write_record(dir.path(), &record("kvm-a1", 2)).unwrap();
        write_record(dir.path(), &record("kvm-a2", 7)).unwrap();
        let text = fs::read_to_string(dir.path().join(".parapet-hb/kvm-a1.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["counter"], 2);
        assert_eq!(json["host"], "kvm-a1");
        assert_eq!(json["running_vms"], 2);
        assert_eq!(json["self_fenced"], false);
        assert!(json["written_at_ms"].is_i64());
        let names: Vec<_> =
            fs::read_dir(dir.path().join(RECORD_DIR)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temp files left behind: {names:?}");
        assert_eq!(read_records(dir.path(), "kvm-a1").unwrap(), vec![record("kvm-a2", 7)]);
        assert_eq!(read_records(dir.path(), "kvm-a2").unwrap(), vec![record("kvm-a1", 2)]);
    }

    #[test]
    fn foreign_and_torn_files_are_skipped_and_a_missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_records(dir.path(), "h").unwrap().is_empty());
        write_record(dir.path(), &record("other", 3)).unwrap();
        fs::write(dir.path().join(".parapet-hb/torn.json"), b"{\"host\": \"torn\", \"coun").unwrap();
        fs::write(dir.path().join(".parapet-hb/.x.json.tmp"), b"{}").unwrap();
        fs::write(dir.path().join(".parapet-hb/notes.txt"), b"hello").unwrap();
        assert_eq!(read_records(dir.path(), "h").unwrap(), vec![record("other", 3)]);
    }

    #[test]
    fn host_names_stay_inside_the_record_directory() {
        assert_eq!(record_file_name("kvm-a1"), "kvm-a1.json");
        assert_eq!(record_file_name("../etc/passwd"), "_.._etc_passwd.json");
        assert_eq!(record_file_name(".hidden"), "_.hidden.json");
        assert_eq!(record_file_name(""), "_.json");
    }

    #[test]
    fn a_write_to_a_storage_that_is_gone_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        fs::write(&file, b"x").unwrap();
        assert!(write_record(&file, &record("h", 1)).is_err());
    }
}
