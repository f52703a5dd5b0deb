//! The IPMI driver through Debian's `ipmitool`: IPMI v2.0 over LAN (`-I lanplus`) with the configured
//! cipher suite, one try per call (`-N 1 -R 1`, so a dead BMC fails in about 2 s instead of 20), and
//! administrator privilege (chassis control needs more than the default user level on many BMCs).
//!
//! The password never appears on a command line (where `ps` shows it): it goes to ipmitool in its
//! environment (`-E` reads `IPMI_PASSWORD`), and a new password for `user set password` goes through
//! a pipe (`exec /dev/stdin`). The child is killed when the call's timeout drops it.
//!
//! ipmitool's exit status says only "failed"; with `-v` its error lines tell an authentication
//! failure (RAKP 2 errors) from a BMC that does not answer, which is how errors are classified.

use super::{Bmc, BmcEndpoint, BmcPower, OobmError, PowerCommand, scrub};
use crate::secrets::Secret;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The Debian package that provides the program, for error messages.
pub const PACKAGE: &str = "ipmitool";

pub struct IpmitoolBmc {
    program: PathBuf,
    endpoint: BmcEndpoint,
}

/// What one ipmitool run printed.
struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

impl IpmitoolBmc {
    pub fn new(endpoint: BmcEndpoint, program: PathBuf) -> IpmitoolBmc {
        IpmitoolBmc { program, endpoint }
    }

    /// The arguments that select the BMC and the session; never the password.
    fn session_args(&self) -> Vec<String> {
        let mut args = vec![
            "-I".to_owned(),
            "lanplus".to_owned(),
            "-H".to_owned(),
            self.endpoint.address.clone(),
            "-p".to_owned(),
            self.endpoint.port.to_string(),
            "-C".to_owned(),
            self.endpoint.ipmi_cipher_suite.to_string(),
            "-N".to_owned(),
            "1".to_owned(),
            "-R".to_owned(),
            "1".to_owned(),
            "-L".to_owned(),
            "ADMINISTRATOR".to_owned(),
            "-E".to_owned(),
            "-v".to_owned(),
        ];
        if !self.endpoint.username.is_empty() {
            args.push("-U".to_owned());
            args.push(self.endpoint.username.clone());
        }
        args
    }

    async fn run(&self, command: &[&str], input: Option<&Secret>) -> Result<Output, OobmError> {
        let mut child = Command::new(&self.program)
            .args(self.session_args())
            .args(command)
            .env("IPMI_PASSWORD", self.endpoint.password.expose())
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A call that times out drops this future: the child must not outlive it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound => OobmError::Unsupported(format!(
                    "the ipmitool driver needs the program {} (Debian package {PACKAGE})",
                    self.program.display()
                )),
                _ => OobmError::Protocol(format!("cannot run {}: {error}", self.program.display())),
            })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.expose().as_bytes())
                .await
                .map_err(|error| OobmError::Protocol(format!("cannot talk to ipmitool: {error}")))?;
            // Closing stdin ends `exec /dev/stdin`.
            drop(stdin);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|error| OobmError::Protocol(format!("ipmitool did not finish: {error}")))?;
        let secrets: Vec<&Secret> = std::iter::once(&self.endpoint.password).chain(input).collect();
        Ok(Output {
            success: output.status.success(),
            stdout: scrub(&String::from_utf8_lossy(&output.stdout), &secrets),
            stderr: scrub(&denoise(&String::from_utf8_lossy(&output.stderr)), &secrets),
        })
    }

    /// Run a command that must succeed; a failure is classified from ipmitool's error lines.
    async fn run_ok(&self, command: &[&str], input: Option<&Secret>) -> Result<Output, OobmError> {
        let output = self.run(command, input).await?;
        if output.success { Ok(output) } else { Err(classify(&output.stderr)) }
    }

    /// The IPMI user id of the configured username (from `user list`).
    async fn user_id(&self) -> Result<u8, OobmError> {
        let output = self.run_ok(&["user", "list"], None).await?;
        parse_user_id(&output.stdout, &self.endpoint.username).ok_or_else(|| {
            OobmError::Protocol(format!("the BMC has no user named {:?} on this channel", self.endpoint.username))
        })
    }
}

#[async_trait::async_trait]
impl Bmc for IpmitoolBmc {
    async fn power_state(&self) -> Result<BmcPower, OobmError> {
        let output = self.run_ok(&["chassis", "power", "status"], None).await?;
        parse_power_status(&output.stdout)
    }

    async fn send(&self, command: PowerCommand) -> Result<(), OobmError> {
        let word = match command {
            PowerCommand::On => "on",
            PowerCommand::ForceOff => "off",
            PowerCommand::GracefulShutdown => "soft",
            PowerCommand::ForceRestart => "reset",
            PowerCommand::PowerCycle => "cycle",
        };
        self.run_ok(&["chassis", "power", word], None).await.map(|_| ())
    }

    async fn change_password(&self, new_password: &Secret) -> Result<(), OobmError> {
        if new_password.len() > 20 || new_password.expose().contains(['\n', '\r']) {
            return Err(OobmError::Protocol("an IPMI password is at most 20 bytes on one line".into()));
        }
        let id = self.user_id().await?;
        // One ipmitool command read from the pipe: the new password never is an argument. The
        // trailing 20 stores it as an IPMI v2.0 (20-byte) password.
        let script = Secret::new(format!("user set password {id} {} 20\n", new_password.expose()));
        let output = self.run(&["exec", "/dev/stdin"], Some(&script)).await?;
        let secrets = [&self.endpoint.password, new_password, &script];
        if output.success && output.stdout.contains("command successful") {
            return Ok(());
        }
        if !output.success && matches!(classify(&output.stderr), OobmError::Auth(_) | OobmError::Unreachable(_)) {
            return Err(classify(&output.stderr));
        }
        let said = scrub(&last_lines(&format!("{}\n{}", output.stdout, output.stderr)), &secrets);
        Err(OobmError::Protocol(format!("the BMC refused the new password: {said}")))
    }
}

/// `Chassis Power is on|off`.
fn parse_power_status(stdout: &str) -> Result<BmcPower, OobmError> {
    let lower = stdout.to_lowercase();
    if lower.contains("chassis power is on") {
        Ok(BmcPower::On)
    } else if lower.contains("chassis power is off") {
        Ok(BmcPower::Off)
    } else {
        Err(OobmError::Protocol(format!("ipmitool printed no power state: {}", last_lines(stdout))))
    }
}

/// Classify a failed run from its error lines (printed with `-v`).
fn classify(stderr: &str) -> OobmError {
    let lower = stderr.to_lowercase();
    let said = last_lines(stderr);
    if lower.contains("rakp 2 hmac is invalid")
        || lower.contains("unauthorized name")
        || lower.contains("rakp 2 message indicates an error")
        || lower.contains("rakp 4")
        || lower.contains("invalid user name")
        || lower.contains("password is invalid")
    {
        OobmError::Auth(said)
    } else if lower.contains("insufficient privilege") || lower.contains("requested privilege level exceeds") {
        OobmError::Auth(format!("the BMC user lacks the privilege for this: {said}"))
    } else if lower.contains("not supported in present state")
        || lower.contains("command not supported")
        || lower.contains("invalid command")
    {
        OobmError::Unsupported(said)
    } else if lower.contains("get auth capabilities error")
        || lower.contains("unable to establish")
        || lower.contains("no response")
        || lower.contains("connection refused")
        || lower.contains("address lookup")
        || lower.contains("unable to set up")
    {
        OobmError::Unreachable(said)
    } else {
        OobmError::Protocol(said)
    }
}

/// ipmitool's `-v` chatter that says nothing about the command: the IANA registry load and the
/// vendor capability probe (whose "Invalid command" answer is normal on most BMCs).
fn denoise(stderr: &str) -> String {
    let mut kept = Vec::new();
    let mut after_probe = false;
    for line in stderr.lines() {
        let trimmed = line.trim();
        let noise = trimmed.starts_with("Loading IANA")
            || trimmed.starts_with("Running Get VSO")
            || trimmed.starts_with("Discovered IPMB")
            || (after_probe && trimmed.starts_with("Invalid completion code received"));
        after_probe = trimmed.starts_with("Running Get VSO");
        if !noise {
            kept.push(line);
        }
    }
    kept.join("\n")
}

/// The meaningful end of what a tool printed: its last few non-noise lines, on one line.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let joined = lines[start..].join("; ");
    if joined.is_empty() { "ipmitool failed without a message".to_owned() } else { joined }
}

/// The id of `username` in `ipmitool user list` output. Its columns have fixed widths (ID 4, Name
/// 17), so an unnamed user (whose Name column is blank) is never taken for a user named "true".
fn parse_user_id(stdout: &str, username: &str) -> Option<u8> {
    stdout.lines().skip(1).find_map(|line| {
        let id = line.get(..4)?.trim().parse::<u8>().ok()?;
        let name = line.get(4..line.len().min(21))?.trim();
        (!name.is_empty() && name == username).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipmitool_output_is_read_and_classified() {
        assert_eq!(parse_power_status("Chassis Power is on\n").unwrap(), BmcPower::On);
        assert_eq!(parse_power_status("Chassis Power is off\n").unwrap(), BmcPower::Off);
        assert!(parse_power_status("").is_err());
        let wrong_password = "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session";
        assert!(matches!(classify(wrong_password), OobmError::Auth(_)));
        let wrong_user = "RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2";
        assert!(matches!(classify(wrong_user), OobmError::Auth(_)));
        let dead = "Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\n\
                    Error: Unable to establish IPMI v2 / RMCP+ session";
        assert!(matches!(classify(dead), OobmError::Unreachable(_)));
        let no_cycle = "Set Chassis Power Control to Cycle failed: Command not supported in present state";
        assert!(matches!(classify(no_cycle), OobmError::Unsupported(_)));
        assert!(matches!(classify("something else"), OobmError::Protocol(_)));
        let chatter = "Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\n\
                       Invalid completion code received: Invalid command\nDiscovered IPMB address 0x0\nboom";
        assert_eq!(denoise(chatter), "boom");
    }

    #[test]
    fn the_user_id_comes_from_the_user_list() {
        let list = "ID  Name\t     Callin  Link Auth\tIPMI Msg   Channel Priv Limit\n\
                    1                    true    false      false      USER\n\
                    2   admin            true    false      true       ADMINISTRATOR\n\
                    3   operator         true    false      true       OPERATOR\n";
        assert_eq!(parse_user_id(list, "admin"), Some(2));
        assert_eq!(parse_user_id(list, "operator"), Some(3));
        assert_eq!(parse_user_id(list, "true"), None);
        assert_eq!(parse_user_id(list, "ghost"), None);
    }

    #[test]
    fn the_password_is_never_an_argument() {
        let bmc = IpmitoolBmc::new(
            BmcEndpoint {
                driver: api::v1::OobmDriver::Ipmitool,
                address: "127.0.0.1".into(),
                port: 623,
                username: "admin".into(),
                password: Secret::new("do-not-show"),
                ipmi_cipher_suite: 3,
                redfish_https: true,
                redfish_accept_self_signed: false,
                redfish_auth: api::v1::RedfishAuth::Basic,
                redfish_system_id: None,
            },
            PathBuf::from("ipmitool"),
        );
        let args = bmc.session_args().join(" ");
        assert!(!args.contains("do-not-show") && args.contains("-E") && args.contains("-C 3"), "{args}");
    }
}
