//! The storage heartbeat channel: on every shared primary storage it mounts, the agent rewrites
//! `<mount>/.parapet-hb/<host name>.json` (an [`api::agent::StorageRecord`]) every heartbeat interval and
//! reads the other hosts' records beside it. A host whose network is cut but whose storage works is
//! isolated, not dead; the engine tells the two apart through these records, as the other hosts report
//! them in their heartbeats.
//!
//! File IO runs on tokio's blocking pool, never in the agent's loops: a hung NFS mount blocks one blocking
//! thread, never the agent. While a write has not returned, the next beats do not queue more threads behind
//! it; after one interval they report it as failing, and the storage counts as lost once no write has
//! succeeded for the storage timeout.

use crate::faults::NetworkFaults;
use crate::health::Health;
use crate::hypervisor::Hypervisor;
use api::agent::{AgentVmState, StorageRecord};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

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
    /// Each mount with the start of its write in flight, if one is.
    mounts: Vec<(StorageMount, Arc<Mutex<Option<Instant>>>)>,
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
        let mounts = mounts.into_iter().map(|mount| (mount, Arc::new(Mutex::new(None)))).collect();
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
            let started = Instant::now();
            let interval = self.health.settings().heartbeat_interval;
            counter += 1;
            let record = self.record(counter, interval, running_vms).await;
            running_vms = record.running_vms;
            for (mount, in_flight) in &self.mounts {
                self.beat(mount, in_flight, &record, interval);
            }
            tokio::time::sleep_until(started + interval).await;
        }
    }

    /// This beat's record. The engine takes a record saying `self_fenced` with `running_vms: 0` as proof
    /// that the host runs nothing (contract rule 5(b)), so that pair is written only when it is true:
    /// the start gate is looked at BEFORE the VMs are listed, and both fields come from that one look.
    /// Fenced with no start in flight, no VM can start until a new welcome, so the listing that follows
    /// is complete; a start still in flight (its VM perhaps not listed yet) counts as running. A listing
    /// that does not answer within `interval` keeps the previous count, and never says "none" for a
    /// fenced agent.
    pub async fn record(&self, counter: u64, interval: Duration, previous_running: u32) -> StorageRecord {
        let gate = self.health.start_gate();
        let listed = tokio::time::timeout(interval, self.hypervisor.list_vms()).await.ok().map(|vms| {
            vms.iter().filter(|vm| !matches!(vm.state, AgentVmState::Stopped | AgentVmState::Crashed)).count() as u32
        });
        let running_vms = match listed {
            Some(running) => running + gate.starts_in_flight,
            None if gate.fenced => previous_running.max(1),
            None => previous_running,
        };
        StorageRecord {
            host: self.host.clone(),
            counter,
            written_at_ms: chrono::Utc::now().timestamp_millis(),
            self_fenced: gate.fenced,
            running_vms,
        }
    }

    /// Start one write (and the read after it) on the blocking pool; its outcome reaches [`Health`] when it
    /// returns. A slow write that succeeds still counts, from when it began (see [`Health::storage_beat`]);
    /// the storage counts as lost only when no write has succeeded for the storage timeout.
    fn beat(
        &self,
        mount: &StorageMount,
        in_flight: &Arc<Mutex<Option<Instant>>>,
        record: &StorageRecord,
        interval: Duration,
    ) {
        if let Some(faults) = &self.faults
            && !faults.storage_ok(&self.host)
        {
            self.health.storage_beat(&mount.name, Err("storage unreachable (simulated fault)".into()), None);
            return;
        }
        {
            let mut pending = in_flight.lock().unwrap();
            if let Some(since) = *pending {
                if since.elapsed() > interval {
                    let error = format!(
                        "the heartbeat write has not returned for {} ms (storage hung?)",
                        since.elapsed().as_millis()
                    );
                    self.health.storage_beat(&mount.name, Err(error), None);
                }
                return;
            }
            *pending = Some(Instant::now());
        }
        let began = Instant::now();
        let dir = mount.dir.clone();
        let own = record.clone();
        let job = tokio::task::spawn_blocking(move || {
            let written = write_record(&dir, &own);
            let read = read_records(&dir, &own.host);
            (written, read)
        });
        let (name, health, in_flight) = (mount.name.clone(), self.health.clone(), in_flight.clone());
        tokio::spawn(async move {
            let outcome = job.await;
            *in_flight.lock().unwrap() = None;
            match outcome {
                Ok((written, read)) => {
                    let written =
                        written.map(|()| began).map_err(|error| format!("cannot write the heartbeat record: {error}"));
                    if let Err(error) = &written {
                        tracing::warn!(storage = %name, "{error}");
                    }
                    health.storage_beat(&name, written, read.ok());
                }
                Err(panic) => health.storage_beat(&name, Err(format!("the heartbeat write failed: {panic}")), None),
            }
        });
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

    /// A FIFO in place of the temp file makes the write block in `open` until someone reads it: a hung
    /// NFS server, as the agent sees one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_storage_neither_blocks_the_heartbeat_nor_the_other_storages() {
        use crate::health::HaSettings;
        use crate::hypervisor::memory::MemoryHypervisor;
        let hung = tempfile::tempdir().unwrap();
        let fine = tempfile::tempdir().unwrap();
        fs::create_dir(hung.path().join(RECORD_DIR)).unwrap();
        let fifo = hung.path().join(RECORD_DIR).join(".h.json.tmp");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let health = Arc::new(Health::new(["nfs://hung".to_owned(), "nfs://fine".to_owned()]));
        let settings = HaSettings { heartbeat_interval: Duration::from_millis(50), ..HaSettings::default() };
        health.welcomed(api::HostId::new_random(), settings, Vec::new(), Instant::now());
        let hypervisor = MemoryHypervisor::new(
            api::v1::Resources { cpu_cores: 1, cpu_mhz: 1000, memory_mb: 1024 },
            Duration::from_millis(10),
            Duration::from_millis(10),
        );
        let mounts = vec![
            StorageMount { name: "nfs://hung".into(), dir: hung.path().to_owned() },
            StorageMount { name: "nfs://fine".into(), dir: fine.path().to_owned() },
        ];
        let beating =
            tokio::spawn(StorageHeartbeat::new("h".into(), mounts, health.clone(), Arc::new(hypervisor), None).run());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // A storage shows in the views once its first write was tried.
        let view = |name: &str| health.storage_views().into_iter().find(|view| view.name == name);
        loop {
            let fine_counter = read_records(fine.path(), "other").unwrap().first().map(|record| record.counter);
            let hung_view = view("nfs://hung");
            let reported = hung_view
                .as_ref()
                .and_then(|view| view.last_error.as_deref())
                .is_some_and(|error| error.contains("has not returned"));
            if reported && fine_counter.is_some_and(|counter| counter >= 10) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{hung_view:?}, fine counter {fine_counter:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!view("nfs://hung").unwrap().write_ok && view("nfs://fine").unwrap().write_ok);
        // The storage answers again: the hung write completes and the next ones succeed.
        // Reading unblocks the stuck `open`; the FIFO's name goes at once, so the next write makes a file.
        // (Its fsync fails on a FIFO: the stuck write itself ends in an error, as a late NFS reply may.)
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut file = File::open(&fifo)?;
            fs::remove_file(&fifo)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok::<_, io::Error>(bytes)
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !view("nfs://hung").is_some_and(|view| view.write_ok) {
            assert!(std::time::Instant::now() < deadline, "{:?}", view("nfs://hung"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        beating.abort();
        let written = reader.join().unwrap().unwrap();
        assert!(serde_json::from_slice::<StorageRecord>(&written).is_ok(), "the stuck write was a whole record");
    }

    #[test]
    fn a_write_to_a_storage_that_is_gone_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        fs::write(&file, b"x").unwrap();
        assert!(write_record(&file, &record("h", 1)).is_err());
    }
}
