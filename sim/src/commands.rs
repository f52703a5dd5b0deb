//! The simulator's fault commands, one per line on `parapet-sim`'s standard input: power a host off
//! (pull the plug) or on, crash a VM, list the hosts, put faults on a host's BMC, and cut the network and
//! storage: a host from the servers (`net-cut`), the pool in two (`split A,B|C`), a host's storage
//! heartbeat (`storage-cut`), a short blip of a host's network, and the agent alone (`agent-crash`).

use crate::{BmcFault, SimPool};
use api::VmId;
use std::time::Duration;

/// What `parapet-sim` answers to a line it does not understand.
pub const USAGE: &str = "off NAME | on NAME | crash NAME VM_ID | list | bmc-down NAME | bmc-hang NAME | \
                         bmc-up NAME | bmc-password NAME PASSWORD | net-cut NAME | net-heal NAME | \
                         split NAME,NAME|NAME,NAME | unsplit | storage-cut NAME | storage-heal NAME | \
                         agent-crash NAME | agent-start NAME | blip NAME SECONDS";

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
    /// Cut (`true`) or heal the host's network to the management servers.
    NetCut(String, bool),
    /// Split the network between two groups of hosts (the servers stay with the first).
    Split(Vec<String>, Vec<String>),
    Unsplit,
    /// Cut (`true`) or heal the host's storage heartbeat.
    StorageCut(String, bool),
    /// The host's agent dies; its VMs keep running.
    AgentCrash(String),
    /// Start a crashed agent again.
    AgentStart(String),
    /// Cut the host from the servers and its peers for a while.
    Blip(String, Duration),
    /// An empty line.
    Nothing,
}

/// `A,B|C` (spaces allowed around the names) as its two groups, each non-empty.
fn parse_split(text: &str) -> Result<SimCommand, String> {
    let Some((first, second)) = text.split_once('|') else {
        return Err(format!("split: expected two groups as NAME,NAME|NAME, got {text:?}"));
    };
    let group = |text: &str| -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace()).filter(|name| !name.is_empty()).map(str::to_owned).collect()
    };
    let (first, second) = (group(first), group(second));
    if first.is_empty() || second.is_empty() {
        return Err("split: each side needs at least one host".to_owned());
    }
    if let Some(both) = first.iter().find(|name| second.contains(name)) {
        return Err(format!("split: {both} cannot be on both sides"));
    }
    Ok(SimCommand::Split(first, second))
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
        ["net-cut", host] => SimCommand::NetCut(name(host), true),
        ["net-heal", host] => SimCommand::NetCut(name(host), false),
        ["split", ..] => return parse_split(line.trim_start().trim_start_matches("split")),
        ["unsplit"] => SimCommand::Unsplit,
        ["storage-cut", host] => SimCommand::StorageCut(name(host), true),
        ["storage-heal", host] => SimCommand::StorageCut(name(host), false),
        ["agent-crash", host] => SimCommand::AgentCrash(name(host)),
        ["agent-start", host] => SimCommand::AgentStart(name(host)),
        ["blip", host, seconds] => match seconds.parse::<f64>() {
            Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => {
                SimCommand::Blip(name(host), Duration::from_secs_f64(seconds))
            }
            _ => return Err(format!("blip: {seconds:?} is not a number of seconds (0 to 3600)")),
        },
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
        SimCommand::NetCut(name, cut) => host(&name).map(|host| {
            host.set_net_cut(cut);
            if cut {
                format!("{name} cut from the management servers")
            } else {
                format!("{name} reaches the servers again")
            }
        }),
        SimCommand::Split(first, second) => {
            fn names(group: &[String]) -> Vec<&str> {
                group.iter().map(String::as_str).collect()
            }
            pool.split(&names(&first), &names(&second)).map(|()| {
                format!("split {}|{}; the servers stay with the first group", first.join(","), second.join(","))
            })
        }
        SimCommand::Unsplit => {
            pool.unsplit();
            Ok("the split is over".to_owned())
        }
        SimCommand::StorageCut(name, cut) => host(&name).map(|host| {
            host.set_storage_cut(cut);
            if cut { format!("{name}: storage heartbeat writes fail") } else { format!("{name}: storage back") }
        }),
        SimCommand::AgentCrash(name) => host(&name).and_then(|host| {
            if host.crash_agent() {
                Ok(format!("{name}: agent crashed; its VMs keep running"))
            } else {
                Err(format!("{name}: no agent running"))
            }
        }),
        SimCommand::AgentStart(name) => host(&name).and_then(|host| {
            if host.start_crashed_agent() {
                Ok(format!("{name}: agent started"))
            } else {
                Err(format!("{name}: off, or its agent already runs"))
            }
        }),
        SimCommand::Blip(name, duration) => host(&name).map(|host| {
            host.blip(duration);
            format!("{name}: network down for {:.1} s", duration.as_secs_f64())
        }),
    };
    result.unwrap_or_else(|error| error)
}

fn list(pool: &SimPool) -> String {
    let mut lines: Vec<String> = pool
        .hosts
        .iter()
        .map(|host| {
            let power = match (host.is_powered_on(), host.is_agent_running()) {
                (false, _) => "off",
                (true, true) => "on",
                (true, false) => "on (agent crashed)",
            };
            let bmc = match pool.bmc(&host.spec.name) {
                Some(bmc) => format!(" bmc={} {}", bmc.address(), bmc.fault().name()),
                None => String::new(),
            };
            let vms = host.hypervisor.list_vms_now().len();
            format!("{} {} {power}{bmc} vms={vms}", host.spec.name, host.spec.cluster)
        })
        .collect();
    lines.extend(pool.world.faults.describe());
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

    #[test]
    fn network_and_storage_fault_commands_parse() {
        let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse("net-cut a1"), Ok(SimCommand::NetCut("a1".into(), true)));
        assert_eq!(parse("net-heal a1"), Ok(SimCommand::NetCut("a1".into(), false)));
        assert_eq!(parse("split a1,a2|a3"), Ok(SimCommand::Split(names(&["a1", "a2"]), names(&["a3"]))));
        assert_eq!(parse("split a1, a2 | a3 a4"), Ok(SimCommand::Split(names(&["a1", "a2"]), names(&["a3", "a4"]))));
        assert!(parse("split a1,a2").unwrap_err().contains("two groups"));
        assert!(parse("split a1|").unwrap_err().contains("at least one host"));
        assert!(parse("split a1|a1").unwrap_err().contains("both sides"));
        assert_eq!(parse("unsplit"), Ok(SimCommand::Unsplit));
        assert_eq!(parse("storage-cut a1"), Ok(SimCommand::StorageCut("a1".into(), true)));
        assert_eq!(parse("storage-heal a1"), Ok(SimCommand::StorageCut("a1".into(), false)));
        assert_eq!(parse("agent-crash a1"), Ok(SimCommand::AgentCrash("a1".into())));
        assert_eq!(parse("agent-start a1"), Ok(SimCommand::AgentStart("a1".into())));
        assert_eq!(parse("blip a1 3"), Ok(SimCommand::Blip("a1".into(), Duration::from_secs(3))));
        assert_eq!(parse("blip a1 0.5"), Ok(SimCommand::Blip("a1".into(), Duration::from_millis(500))));
        assert!(parse("blip a1 soon").unwrap_err().contains("seconds"));
        assert!(parse("blip a1 -1").is_err());
    }
}
