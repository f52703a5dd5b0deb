//! The libvirt backend for real KVM hosts (cargo feature `libvirt`). Domains carry the VM's id as their
//! UUID and Parapet's generation in their metadata; domains without that metadata are not ours and are
//! left alone. libvirt calls block, so each runs on tokio's blocking pool; a poller turns domain
//! state changes (including ones made outside Parapet) into inventory ticks.
//!
//! Tested against libvirt's built-in test driver (`test:///default`), so the same code runs on KVM.

use super::{Hypervisor, HypervisorError};
use api::VmId;
use api::agent::{AgentVmState, VmReport, VmSpec};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;

const METADATA_NAMESPACE: &str = "https://parapet.invalid/xmlns/vm/1";

#[derive(Clone, Debug)]
pub struct LibvirtConfig {
    /// e.g. `qemu:///system` on a KVM host, `test:///default` in tests.
    pub uri: String,
    /// The `<domain type=...>`: `kvm` on real hosts, `test` with the test driver.
    pub domain_type: String,
    /// Where each primary storage URL is mounted on this host; a VM's disk is `<mount>/<vm id>.qcow2`.
    pub storage_mounts: Vec<(String, PathBuf)>,
    /// How often domain states are read to notice changes.
    pub poll_interval: Duration,
}

pub struct LibvirtHypervisor {
    connection: Connect,
    config: LibvirtConfig,
    changes: Arc<watch::Sender<u64>>,
    last_seen: Mutex<Vec<VmReport>>,
}

fn backend(error: virt::error::Error) -> HypervisorError {
    HypervisorError::Backend(error.message().to_owned())
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

impl LibvirtHypervisor {
    /// Open the connection and start the state poller (which ends when the hypervisor is dropped).
    pub async fn connect(config: LibvirtConfig) -> Result<Arc<Self>, HypervisorError> {
        let uri = config.uri.clone();
        let connection = tokio::task::spawn_blocking(move || Connect::open(Some(&uri)))
            .await
            .map_err(|error| HypervisorError::Backend(error.to_string()))?
            .map_err(backend)?;
        let hypervisor = Arc::new(LibvirtHypervisor {
            connection,
            config,
            changes: Arc::new(watch::channel(0).0),
            last_seen: Mutex::default(),
        });
        let weak = Arc::downgrade(&hypervisor);
        let interval = hypervisor.config.poll_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(hypervisor) = weak.upgrade() else { return };
                hypervisor.poll().await;
            }
        });
        Ok(hypervisor)
    }

    /// Read every domain; tick the change counter when anything differs from the last read.
    async fn poll(&self) {
        let now = self.list_vms().await;
        let changed = {
            let mut last = self.last_seen.lock().unwrap();
            let changed = *last != now;
            *last = now;
            changed
        };
        if changed {
            self.changes.send_modify(|counter| *counter += 1);
        }
    }

    fn domain_xml(&self, spec: &VmSpec) -> String {
        let disk = self
            .config
            .storage_mounts
            .iter()
            .find(|(url, _)| *url == spec.storage_url)
            .map(|(_, mount)| {
                let file = mount.join(format!("{}.qcow2", spec.vm_id));
                format!(
                    "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
                     <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices>",
                    xml_escape(&file.display().to_string())
                )
            })
            .unwrap_or_default();
        format!(
            "<domain type='{kind}'><name>{name}</name><uuid>{uuid}</uuid>\
             <metadata><parapet:vm xmlns:parapet='{METADATA_NAMESPACE}' generation='{generation}'/></metadata>\
             <memory unit='MiB'>{memory}</memory><vcpu>{cores}</vcpu>\
             <os><type arch='x86_64'>hvm</type></os>{disk}</domain>",
            kind = xml_escape(&self.config.domain_type),
            name = xml_escape(&spec.name),
            uuid = spec.vm_id,
            generation = spec.generation,
            memory = spec.memory_mb,
            cores = spec.cpu_cores,
        )
    }

    /// Run a blocking libvirt call on the blocking pool with a handle to the connection.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(Connect) -> Result<T, HypervisorError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let connection = self.connection.clone();
        let result = tokio::task::spawn_blocking(move || call(connection))
            .await
            .map_err(|error| HypervisorError::Backend(error.to_string()))?;
        self.poll().await;
        result
    }
}

fn lookup(connection: &Connect, vm: VmId) -> Option<Domain> {
    connection.lookup_domain_by_uuid_string(&vm.to_string()).ok()
}

/// The generation in our metadata element; libvirt may write the attribute with either quote.
fn metadata_generation(xml: &str) -> Option<i64> {
    let after = &xml[xml.find(METADATA_NAMESPACE)?..];
    let value = &after[after.find("generation=")? + "generation=".len()..];
    let quote = value.chars().next()?;
    value[1..].split(quote).next()?.parse().ok()
}

fn report(domain: &Domain) -> Option<VmReport> {
    let xml = domain.xml_desc(0).ok()?;
    if !xml.contains(METADATA_NAMESPACE) {
        return None;
    }
    let generation = metadata_generation(&xml)?;
    let vm_id = domain.uuid_string().ok()?.parse().ok()?;
    let state = match domain.state().ok()?.0 {
        Enum::Known(DomainState::Running | DomainState::Blocked) => AgentVmState::Running,
        // A paused domain writes nothing: as a VM waiting for a migration to finish.
        Enum::Known(DomainState::Paused) => AgentVmState::Incoming,
        Enum::Known(DomainState::Shutdown) => AgentVmState::Stopping,
        Enum::Known(DomainState::Crashed) => AgentVmState::Crashed,
        _ => AgentVmState::Stopped,
    };
    Some(VmReport { vm_id, name: domain.name().ok()?, state, generation, stop_reason: None })
}

#[async_trait]
impl Hypervisor for LibvirtHypervisor {
    async fn start_vm(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let xml = self.domain_xml(spec);
        let vm = spec.vm_id;
        self.blocking(move |connection| {
            if let Some(domain) = lookup(&connection, vm)
                && domain.is_active().map_err(backend)?
            {
                return Err(HypervisorError::WrongState(vm, "running"));
            }
            // Defining again refreshes a known domain (e.g. its generation).
            let domain = connection.define_domain_xml(&xml).map_err(backend)?;
            domain.create().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn stop_vm(&self, vm: VmId, force: bool) -> Result<(), HypervisorError> {
        self.blocking(move |connection| {
            let domain = lookup(&connection, vm).ok_or(HypervisorError::UnknownVm(vm))?;
            if !domain.is_active().map_err(backend)? {
                return Err(HypervisorError::WrongState(vm, "stopped"));
            }
            if force { domain.destroy() } else { domain.shutdown() }.map_err(backend)
        })
        .await
    }

    async fn destroy_vm(&self, vm: VmId) -> Result<(), HypervisorError> {
        self.blocking(move |connection| {
            let Some(domain) = lookup(&connection, vm) else { return Ok(()) };
            if domain.is_active().map_err(backend)? {
                return Err(HypervisorError::WrongState(vm, "running"));
            }
            domain.undefine().map_err(backend)
        })
        .await
    }

    /// With libvirt the source's peer-to-peer migration prepares the destination itself.
    async fn prepare_incoming(&self, _spec: &VmSpec) -> Result<(), HypervisorError> {
        Ok(())
    }

    async fn migrate_out(&self, vm: VmId, target_address: &str) -> Result<(), HypervisorError> {
        let destination = format!("qemu+tcp://{target_address}/system");
        self.blocking(move |connection| {
            let domain = lookup(&connection, vm).ok_or(HypervisorError::UnknownVm(vm))?;
            let flags = virt::sys::VIR_MIGRATE_LIVE
                | virt::sys::VIR_MIGRATE_PEER2PEER
                | virt::sys::VIR_MIGRATE_PERSIST_DEST
                | virt::sys::VIR_MIGRATE_UNDEFINE_SOURCE;
            domain.migrate_to_uri(&destination, flags, None, 0).map_err(backend)
        })
        .await
    }

    async fn finish_incoming(&self, vm: VmId) -> Result<(), HypervisorError> {
        self.blocking(move |connection| {
            let domain = lookup(&connection, vm).ok_or(HypervisorError::UnknownVm(vm))?;
            if domain.is_active().map_err(backend)? {
                if matches!(domain.state().map_err(backend)?.0, Enum::Known(DomainState::Paused)) {
                    domain.resume().map_err(backend)?;
                }
                Ok(())
            } else {
                Err(HypervisorError::Backend(format!("VM {vm} arrived but is not running")))
            }
        })
        .await
    }

    async fn list_vms(&self) -> Vec<VmReport> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let domains = connection.list_all_domains(0).unwrap_or_default();
            let mut reports: Vec<VmReport> = domains.iter().filter_map(report).collect();
            reports.sort_by_key(|report| report.vm_id);
            reports
        })
        .await
        .unwrap_or_default()
    }

    async fn vms_on_storage(&self, storage_url: &str) -> Vec<VmId> {
        let Some(mount) = self.config.storage_mounts.iter().find(|(url, _)| url == storage_url).map(|(_, m)| m.clone())
        else {
            return Vec::new();
        };
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let domains = connection.list_all_domains(0).unwrap_or_default();
            domains
                .iter()
                .filter(|domain| domain.is_active().unwrap_or(true))
                .filter_map(|domain| {
                    let xml = domain.xml_desc(0).ok()?;
                    if !xml.contains(METADATA_NAMESPACE) || !has_disk_under(&xml, &mount) {
                        return None;
                    }
                    domain.uuid_string().ok()?.parse().ok()
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Whether a domain's XML has a disk (`<source file=...>`) under `mount`.
fn has_disk_under(xml: &str, mount: &std::path::Path) -> bool {
    let mut rest = xml;
    while let Some(at) = rest.find("<source file=") {
        let value = &rest[at + "<source file=".len()..];
        let Some(quote) = value.chars().next() else { return false };
        let path = value[1..].split(quote).next().unwrap_or_default();
        let path = path.replace("&apos;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">");
        if std::path::Path::new(&path.replace("&amp;", "&")).starts_with(mount) {
            return true;
        }
        rest = &value[1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, generation: i64) -> VmSpec {
        VmSpec {
            vm_id: VmId::new_random(),
            name: name.into(),
            generation,
            cpu_cores: 2,
            cpu_mhz: 2000,
            memory_mb: 512,
            storage_url: "nfs://storage/primary".into(),
        }
    }

    async fn test_driver() -> Arc<LibvirtHypervisor> {
        LibvirtHypervisor::connect(LibvirtConfig {
            uri: "test:///default".into(),
            domain_type: "test".into(),
            storage_mounts: vec![("nfs://storage/primary".into(), PathBuf::from("/mnt/primary"))],
            poll_interval: Duration::from_millis(100),
        })
        .await
        .expect("libvirt's test driver must open")
    }

    async fn state_of(hypervisor: &LibvirtHypervisor, vm: VmId) -> Option<AgentVmState> {
        hypervisor.list_vms().await.into_iter().find(|report| report.vm_id == vm).map(|report| report.state)
    }

    #[tokio::test]
    async fn domains_are_defined_started_stopped_and_undefined_for_real() {
        let hypervisor = test_driver().await;
        let mut changes = hypervisor.changes();
        let vm = spec("lv-one", 3);
        hypervisor.start_vm(&vm).await.unwrap();
        let reports = hypervisor.list_vms().await;
        let report = reports.iter().find(|report| report.vm_id == vm.vm_id).expect("the domain exists");
        assert_eq!((report.state, report.generation, report.name.as_str()), (AgentVmState::Running, 3, "lv-one"));
        assert!(changes.has_changed().unwrap(), "starting a domain ticks the inventory");
        changes.mark_unchanged();

        assert_eq!(hypervisor.start_vm(&vm).await, Err(HypervisorError::WrongState(vm.vm_id, "running")));
        hypervisor.stop_vm(vm.vm_id, false).await.unwrap();
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, Some(AgentVmState::Stopped));
        assert_eq!(hypervisor.stop_vm(vm.vm_id, true).await, Err(HypervisorError::WrongState(vm.vm_id, "stopped")));

        hypervisor.start_vm(&spec_with_id(&vm, 4)).await.unwrap();
        assert_eq!(hypervisor.list_vms().await.iter().find(|r| r.vm_id == vm.vm_id).unwrap().generation, 4);
        assert_eq!(hypervisor.destroy_vm(vm.vm_id).await, Err(HypervisorError::WrongState(vm.vm_id, "running")));
        hypervisor.stop_vm(vm.vm_id, true).await.unwrap();
        hypervisor.destroy_vm(vm.vm_id).await.unwrap();
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, None);
        hypervisor.destroy_vm(vm.vm_id).await.expect("destroying what is gone succeeds");
    }

    fn spec_with_id(vm: &VmSpec, generation: i64) -> VmSpec {
        VmSpec { generation, ..vm.clone() }
    }

    #[tokio::test]
    async fn domains_that_are_not_ours_are_left_out() {
        let hypervisor = test_driver().await;
        // The test driver starts with its own domain named "test"; it carries no Parapet metadata.
        let names: Vec<String> = hypervisor.list_vms().await.into_iter().map(|report| report.name).collect();
        assert!(!names.contains(&"test".to_owned()), "{names:?}");
    }

    #[tokio::test]
    async fn the_domain_xml_names_the_disk_on_the_mounted_storage() {
        let hypervisor = test_driver().await;
        let vm = spec("disk<&>", 1);
        let xml = hypervisor.domain_xml(&vm);
        assert!(xml.contains(&format!("/mnt/primary/{}.qcow2", vm.vm_id)), "{xml}");
        assert!(xml.contains("disk&lt;&amp;&gt;"), "names are escaped: {xml}");
    }

    #[test]
    fn disks_are_found_under_their_mount_only() {
        let xml = "<domain><devices><disk type='file'><source file='/mnt/primary/a&amp;b.qcow2'/></disk>\
                   <disk><source file=\"/mnt/other/c.qcow2\"/></disk></devices></domain>";
        assert!(has_disk_under(xml, std::path::Path::new("/mnt/primary")));
        assert!(has_disk_under(xml, std::path::Path::new("/mnt/other")));
        assert!(!has_disk_under(xml, std::path::Path::new("/mnt/prim")), "a path prefix is not a directory");
        assert!(!has_disk_under("<domain/>", std::path::Path::new("/mnt/primary")));
    }

    #[tokio::test]
    async fn lost_storage_names_the_running_domains_with_disks_on_it() {
        let hypervisor = test_driver().await;
        let vm = spec("lv-storage", 1);
        hypervisor.start_vm(&vm).await.unwrap();
        // The test driver's state is shared by the tests running at once: look for this VM only.
        assert!(hypervisor.vms_on_storage("nfs://storage/primary").await.contains(&vm.vm_id));
        assert!(hypervisor.vms_on_storage("nfs://elsewhere").await.is_empty());
        hypervisor.stop_vm(vm.vm_id, true).await.unwrap();
        let listed = hypervisor.vms_on_storage("nfs://storage/primary").await;
        assert!(!listed.contains(&vm.vm_id), "stopped VMs are not listed");
        hypervisor.destroy_vm(vm.vm_id).await.unwrap();
    }

    #[tokio::test]
    async fn migration_errors_are_reported_not_hidden() {
        let hypervisor = test_driver().await;
        let vm = spec("lv-mig", 1);
        hypervisor.start_vm(&vm).await.unwrap();
        match hypervisor.migrate_out(vm.vm_id, "127.0.0.1").await {
            Err(HypervisorError::Backend(message)) => assert!(!message.is_empty()),
            other => panic!("the test driver cannot migrate; expected its error, got {other:?}"),
        }
        assert_eq!(
            state_of(&hypervisor, vm.vm_id).await,
            Some(AgentVmState::Running),
            "a failed migration leaves the VM"
        );
        hypervisor.stop_vm(vm.vm_id, true).await.unwrap();
        hypervisor.destroy_vm(vm.vm_id).await.unwrap();
    }
}
