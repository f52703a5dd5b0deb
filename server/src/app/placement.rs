//! Where a new VM goes: a pure choice over the hosts as the inventory shows them. The least loaded
//! host (by memory after placement) that is enabled, connected, in the right cluster, carries the
//! offering's tags and has the CPU and memory free. When none fits, the answer says why.

use api::v1::{AgentConnection, Host, HostAllocation, Resources};
use api::{ClusterId, HostId};

/// What a host must offer to take the VM.
pub struct Demand<'a> {
    pub cluster: ClusterId,
    pub resources: Resources,
    pub host_tags: &'a [String],
}

fn free(host: &Host) -> (u64, u64) {
    (
        host.capacity.memory_mb.saturating_sub(host.allocated.memory_mb),
        u64::from(host.capacity.cpu_mhz.saturating_sub(host.allocated.cpu_mhz)),
    )
}

/// Why `host` cannot take the VM, or `None` when it can.
pub fn unfit_reason(host: &Host, demand: &Demand<'_>) -> Option<String> {
    if host.cluster_id != demand.cluster {
        return Some(format!("{} is not in the VM's cluster", host.name));
    }
    if host.allocation != HostAllocation::Enabled {
        return Some(format!("{} is not enabled for new VMs", host.name));
    }
    if host.connection != AgentConnection::Connected {
        return Some(format!("{}'s agent is not connected", host.name));
    }
    if let Some(tag) = demand.host_tags.iter().find(|tag| !host.tags.contains(tag)) {
        return Some(format!("{} lacks the host tag {tag:?}", host.name));
    }
    let (memory_free, mhz_free) = free(host);
    if demand.resources.memory_mb > memory_free {
        return Some(format!(
            "{} has {memory_free} MB memory free, the VM needs {}",
            host.name, demand.resources.memory_mb
        ));
    }
    if u64::from(demand.resources.cpu_mhz) > mhz_free {
        return Some(format!("{} has {mhz_free} MHz CPU free, the VM needs {}", host.name, demand.resources.cpu_mhz));
    }
    None
}

/// The host to place on, or a message naming why no host fits.
pub fn choose_host(hosts: &[Host], demand: &Demand<'_>) -> Result<HostId, String> {
    let fitting = hosts.iter().filter(|host| unfit_reason(host, demand).is_none());
    let load_after = |host: &Host| {
        (host.allocated.memory_mb + demand.resources.memory_mb) as f64 / host.capacity.memory_mb.max(1) as f64
    };
    let best = fitting.min_by(|a, b| load_after(a).total_cmp(&load_after(b)).then_with(|| a.name.cmp(&b.name)));
    match best {
        Some(host) => Ok(host.id),
        None => {
            let in_cluster: Vec<_> = hosts.iter().filter(|host| host.cluster_id == demand.cluster).collect();
            if in_cluster.is_empty() {
                return Err("the VM's cluster has no hosts".to_owned());
            }
            let reasons: Vec<String> = in_cluster.iter().filter_map(|host| unfit_reason(host, demand)).collect();
            Err(format!("no host can take the VM: {}", reasons.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::ZoneId;

    fn host(name: &str, cluster: ClusterId, memory_used: u64, tags: &[&str]) -> Host {
        Host {
            id: HostId::new_random(),
            zone_id: ZoneId::new_random(),
            cluster_id: cluster,
            name: name.into(),
            address: "127.0.1.1".into(),
            hypervisor: api::v1::HypervisorKind::Sim,
            allocation: HostAllocation::Enabled,
            connection: AgentConnection::Connected,
            last_heartbeat_at: None,
            capacity: Resources { cpu_cores: 16, cpu_mhz: 32000, memory_mb: 16384 },
            allocated: Resources { cpu_cores: 0, cpu_mhz: 0, memory_mb: memory_used },
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            storage_pool_ids: vec![],
            vm_count: 0,
            running_vm_count: 0,
            maintenance: None,
            oobm_enabled_effective: false,
            power_state: api::v1::PowerState::Disabled,
        }
    }

    fn demand(cluster: ClusterId, memory_mb: u64, tags: &[String]) -> Demand<'_> {
        Demand { cluster, resources: Resources { cpu_cores: 2, cpu_mhz: 4000, memory_mb }, host_tags: tags }
    }

    #[test]
    fn the_least_loaded_fitting_host_in_the_cluster_wins() {
        let cluster = ClusterId::new_random();
        let other = ClusterId::new_random();
        let hosts = vec![
            host("busy", cluster, 12000, &[]),
            host("idle-elsewhere", other, 0, &[]),
            host("quiet", cluster, 2000, &[]),
        ];
        assert_eq!(choose_host(&hosts, &demand(cluster, 4096, &[])).unwrap(), hosts[2].id);
    }

    #[test]
    fn tags_state_and_capacity_exclude_hosts_and_the_refusal_says_why() {
        let cluster = ClusterId::new_random();
        let mut disabled = host("off", cluster, 0, &["ssd"]);
        disabled.allocation = HostAllocation::Disabled;
        let mut gone = host("gone", cluster, 0, &["ssd"]);
        gone.connection = AgentConnection::Disconnected;
        let hosts = vec![disabled, gone, host("plain", cluster, 0, &[]), host("full", cluster, 15000, &["ssd"])];
        let tags = vec!["ssd".to_owned()];
        let error = choose_host(&hosts, &demand(cluster, 4096, &tags)).unwrap_err();
        for expected in [
            "off is not enabled",
            "gone's agent is not connected",
            "plain lacks the host tag \"ssd\"",
            "full has 1384 MB",
        ] {
            assert!(error.contains(expected), "{expected:?} missing from {error}");
        }
        let roomy = host("roomy", cluster, 0, &["ssd", "gpu"]);
        let mut hosts = hosts;
        hosts.push(roomy);
        assert_eq!(choose_host(&hosts, &demand(cluster, 4096, &tags)).unwrap(), hosts[4].id);
    }

    #[test]
    fn cpu_is_checked_too() {
        let cluster = ClusterId::new_random();
        let mut cpu_bound = host("cpu", cluster, 0, &[]);
        cpu_bound.allocated.cpu_mhz = 30000;
        let error = choose_host(&[cpu_bound], &demand(cluster, 1024, &[])).unwrap_err();
        assert!(error.contains("2000 MHz CPU free"), "{error}");
    }
}
