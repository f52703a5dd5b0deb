//! The power-off test's verdict (pure): pass when every protected test VM runs on another host, was
//! started there once (never two copies), and within the deadline; fail naming each reason otherwise.

use crate::i18n::{t, tf};
use api::HostId;
use api::VmId;
use api::v1::VmState;

/// Seconds from the power-off by which every protected test VM must run on another host.
pub const DEADLINE_SECONDS: f64 = 180.0;

/// What the console saw of one test VM since the power-off.
#[derive(Clone, Debug, PartialEq)]
pub struct VmWatch {
    pub id: VmId,
    pub name: String,
    pub protected: bool,
    pub host: Option<HostId>,
    pub state: VmState,
    /// Seconds after the power-off when it ran on another host (the engine's restart step, else when
    /// the console first saw it running there).
    pub restarted_after: Option<f64>,
    /// How many times the engine recorded starting it elsewhere in this incident.
    pub restarts: usize,
    /// The engine's last "could not restart" message for it, if any.
    pub restart_failure: Option<String>,
    /// Seen running on the powered-off host after that host was fenced.
    pub ran_on_fenced_host: bool,
}

impl VmWatch {
    pub fn running_elsewhere(&self, test_host: HostId) -> bool {
        self.state == VmState::Running && self.host.is_some_and(|host| host != test_host)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The host has not been powered off from here yet.
    NotStarted,
    InProgress,
    Pass,
    /// Each reason in words.
    Fail(Vec<String>),
}

impl Verdict {
    /// The word for tests and the report: `not-started`, `in-progress`, `pass`, `fail`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::NotStarted => "not-started",
            Verdict::InProgress => "in-progress",
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
        }
    }
}

fn seconds_text(seconds: f64) -> String {
    format!("{seconds:.0}")
}

/// The verdict `elapsed` seconds after the power-off (`None`: not powered off yet).
pub fn verdict(test_host: HostId, vms: &[VmWatch], elapsed: Option<f64>, deadline: f64) -> Verdict {
    let Some(elapsed) = elapsed else { return Verdict::NotStarted };
    let protected: Vec<&VmWatch> = vms.iter().filter(|vm| vm.protected).collect();
    let mut reasons = Vec::new();
    if protected.is_empty() {
        reasons.push(t("No test VM is protected by HA: there was nothing to restart.").to_owned());
    }
    let limit = seconds_text(deadline);
    for vm in &protected {
        let name = vm.name.as_str();
        if vm.restarts > 1 {
            reasons.push(tf(
                "{vm} was started on another host {count} times; it must be started once.",
                &[("vm", name), ("count", &vm.restarts.to_string())],
            ));
        }
        if vm.ran_on_fenced_host {
            reasons.push(tf("{vm} was seen running on the powered-off host after it was fenced.", &[("vm", name)]));
        }
        match vm.restarted_after {
            Some(seconds) if seconds > deadline => reasons.push(tf(
                "{vm} ran again only after {seconds} s; the deadline is {deadline} s.",
                &[("vm", name), ("seconds", &seconds_text(seconds)), ("deadline", &limit)],
            )),
            None if elapsed > deadline => {
                let mut reason = tf(
                    "{vm} is not running on another host {deadline} s after the power-off.",
                    &[("vm", name), ("deadline", &limit)],
                );
                if let Some(failure) = &vm.restart_failure {
                    reason.push(' ');
                    reason.push_str(failure);
                }
                reasons.push(reason);
            }
            _ => {}
        }
    }
    if !reasons.is_empty() {
        return Verdict::Fail(reasons);
    }
    let all_moved = protected.iter().all(|vm| vm.running_elsewhere(test_host) && vm.restarted_after.is_some());
    if all_moved { Verdict::Pass } else { Verdict::InProgress }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, host: HostId, after: Option<f64>) -> VmWatch {
        VmWatch {
            id: VmId::new_random(),
            name: name.to_owned(),
            protected: true,
            host: Some(host),
            state: VmState::Running,
            restarted_after: after,
            restarts: usize::from(after.is_some()),
            restart_failure: None,
            ran_on_fenced_host: false,
        }
    }

    #[test]
    fn passes_when_every_protected_vm_runs_elsewhere_in_time() {
        let (failed, other) = (HostId::new_random(), HostId::new_random());
        let vms = [vm("HA-TEST-VM1", other, Some(30.0)), vm("HA-TEST-VM2", other, Some(41.0))];
        assert_eq!(verdict(failed, &vms, Some(45.0), DEADLINE_SECONDS), Verdict::Pass);
        assert_eq!(verdict(failed, &vms, None, DEADLINE_SECONDS), Verdict::NotStarted);
    }

    #[test]
    fn waits_until_the_deadline_then_names_the_missing_vm() {
        let (failed, other) = (HostId::new_random(), HostId::new_random());
        let mut waiting = vm("HA-TEST-VM2", failed, None);
        waiting.state = VmState::Unknown;
        waiting.restart_failure = Some("no host has room".into());
        let vms = [vm("HA-TEST-VM1", other, Some(30.0)), waiting];
        assert_eq!(verdict(failed, &vms, Some(60.0), DEADLINE_SECONDS), Verdict::InProgress);
        let Verdict::Fail(reasons) = verdict(failed, &vms, Some(181.0), DEADLINE_SECONDS) else { panic!() };
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].starts_with("HA-TEST-VM2 is not running on another host 180 s"));
        assert!(reasons[0].ends_with("no host has room"));
    }

    #[test]
    fn two_starts_or_a_late_start_fail() {
        let (failed, other) = (HostId::new_random(), HostId::new_random());
        let mut twice = vm("HA-TEST-VM1", other, Some(20.0));
        twice.restarts = 2;
        let late = vm("HA-TEST-VM2", other, Some(200.0));
        let Verdict::Fail(reasons) = verdict(failed, &[twice, late], Some(200.0), DEADLINE_SECONDS) else { panic!() };
        assert_eq!(reasons.len(), 2);
        assert!(verdict(failed, &[], Some(1.0), DEADLINE_SECONDS).word() == "fail");
    }
}
