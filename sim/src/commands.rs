//! The simulator's fault commands, one per line on `parapet-sim`'s standard input: power a host off
//! (pull the plug) or on, crash a VM, list the hosts, and put faults on a host's BMC.

use crate::{BmcFault, SimPool};
use api::VmId;

/// What `parapet-sim` answers to a line it does not understand.
pub const USAGE: &str = "off NAME | on NAME | crash NAME VM_ID | list | bmc-down NAME | bmc-hang NAME | \
                         bmc-up NAME | bmc-password NAME PASSWORD";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimCommand {
    /// Pull the plug.
    PowerOff(String),
    PowerOn(String),
    CrashVm(String, VmId),
    List,
    /// Put a fault on the host's BMC (`BmcFault::None` clears it).
    BmcFault(String, BmcFault),
    /// Give the host's BMC another password (ending its sessions).
    BmcPassword(String, String),
    /// An empty line.
    Nothing,
}

/// Parse one line; the error names what is wrong.
pub fn parse(line: &str) -> Result<SimCommand, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let name = |name: &str| name.to_owned();
    Ok(match words.as_slice() {
        [] => SimCommand::Nothing,
        ["off", host] => SimCommand::PowerOff(name(host)),
        ["on", host] => SimCommand::PowerOn(name(host)),
        ["crash", host, vm] => match vm.parse() {
            Ok(vm) => SimCommand::CrashVm(name(host), vm),
            Err(_) => return Err(format!("crash: {vm:?} is not a VM id")),
        },
        ["list"] => SimCommand::List,
        ["bmc-down", host] => SimCommand::BmcFault(name(host), BmcFault::Unreachable),
        ["bmc-hang", host] => SimCommand::BmcFault(name(host), BmcFault::Hang),
        ["bmc-up", host] => SimCommand::BmcFault(name(host), BmcFault::None),
        ["bmc-password", host, password] => SimCommand::BmcPassword(name(host), (*password).to_owned()),
        _ => return Err(format!("unknown command {:?} ({USAGE})", shorten(line))),
    })
}

/// An unknown line echoed back, bounded and without what follows a `bmc-password` (a password).
fn shorten(line: &str) -> String {
    if line.trim_start().starts_with("bmc-password") {
        return "bmc-password …".to_owned();
    }
    line.chars().take(80).collect()
}

/// Carry out a command; answers what happened, one or more lines for the operator (never a password).
pub async fn execute(pool: &SimPool, command: SimCommand) -> String {
    let host = |name: &str| pool.host(name).ok_or_else(|| format!("no host named {name}"));
    let bmc = |name: &str| {
        host(name)?;
        pool.bmc(name).ok_or_else(|| format!("{name} has no BMC"))
    };
    let result = match command {
        SimCommand::Nothing => Ok(String::new()),
        SimCommand::PowerOff(name) => host(&name).map(|host| {
            host.power_off();
            format!("{name} powered off")
        }),
        SimCommand::PowerOn(name) => host(&name).map(|host| {
            host.power_on();
            format!("{name} powered on")
        }),
        SimCommand::CrashVm(name, vm) => host(&name).and_then(|host| {
            if host.hypervisor.crash(vm) {
                Ok(format!("VM {vm} crashed on {name}"))
            } else {
                Err(format!("no VM {vm} on host {name}"))
            }
        }),
        SimCommand::List => Ok(list(pool)),
        SimCommand::BmcFault(name, fault) => match bmc(&name) {
            Ok(bmc) => match bmc.set_fault(fault).await {
                Ok(()) => Ok(format!("{name}: BMC {}", fault.name())),
                Err(error) => Err(format!("{name}: the BMC cannot listen on {} again: {error}", bmc.address())),
            },
            Err(error) => Err(error),
        },
        SimCommand::BmcPassword(name, password) => bmc(&name).map(|bmc| {
            bmc.set_password(&password);
            format!("{name}: BMC password changed, its sessions ended")
        }),
    };
    result.unwrap_or_else(|error| error)
}

fn list(pool: &SimPool) -> String {
    let lines: Vec<String> = pool
        .hosts
        .iter()
        .map(|host| {
            let power = if host.is_powered_on() { "on" } else { "off" };
            let bmc = match pool.bmc(&host.spec.name) {
                Some(bmc) => format!(" bmc={} {}", bmc.address(), bmc.fault().name()),
                None => String::new(),
            };
            let vms = host.hypervisor.list_vms_now().len();
            format!("{} {} {power}{bmc} vms={vms}", host.spec.name, host.spec.cluster)
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_errors_name_the_problem() {
        assert_eq!(parse("  off kvm-a1 "), Ok(SimCommand::PowerOff("kvm-a1".into())));
        assert_eq!(parse("bmc-down kvm-a1"), Ok(SimCommand::BmcFault("kvm-a1".into(), BmcFault::Unreachable)));
        assert_eq!(parse("bmc-hang kvm-a1"), Ok(SimCommand::BmcFault("kvm-a1".into(), BmcFault::Hang)));
        assert_eq!(parse("bmc-up kvm-a1"), Ok(SimCommand::BmcFault("kvm-a1".into(), BmcFault::None)));
        assert_eq!(
            parse("bmc-password kvm-a1 n3w-secret"),
            Ok(SimCommand::BmcPassword("kvm-a1".into(), "n3w-secret".into()))
        );
        assert_eq!(parse(""), Ok(SimCommand::Nothing));
        assert!(parse("crash kvm-a1 not-an-id").unwrap_err().contains("not a VM id"));
        assert!(parse("reboot kvm-a1").unwrap_err().contains("bmc-down NAME"));
        let refused = parse("bmc-password kvm-a1 two words").unwrap_err();
        assert!(!refused.contains("words"), "a mistyped password command does not echo the password: {refused}");
    }
}
