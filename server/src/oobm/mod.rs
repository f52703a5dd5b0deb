//! Out-of-band management: talking to a host's BMC, independent of the host's OS. This is what makes
//! fencing safe: a host confirmed off by its BMC runs no VM.
//!
//! [`Bmc`] is the one driver trait (`redfish.rs`: reqwest; `ipmi_native.rs`: IPMI v2.0 RMCP+ in Rust;
//! `ipmitool.rs`: Debian's `ipmitool`); [`connect`] picks the driver for an endpoint. The driver
//! named `ipmitool` (IPMI v2.0 lanplus) is the native client first: a call it does not understand
//! (a cipher suite other than 1 to 3, an answer it cannot read) is done again through the `ipmitool`
//! program when that is installed, and logged; an auth error, an unreachable or silent BMC, or the
//! BMC's own refusal never falls back. [`perform`] carries out an API power action on any
//! driver, with the rules that are the same for all: OFF is a hard power-off (never a graceful
//! shutdown), CYCLE on a BMC that lacks it is OFF, wait until Off, ON, and every call has a timeout.
//! `sync.rs` polls the power state of every enabled host in the background.
//!
//! Secrets: the password travels as a [`Secret`] (prints as `••••`), and every message built from a
//! BMC's or a tool's words goes through [`scrub`] first, so no password reaches a log, an error or an
//! API answer.

pub mod ipmi_native;
pub mod ipmitool;
pub mod redfish;
pub mod sync;

use crate::secrets::{MASK, Secret};
use api::v1::{OobmDriver, OobmErrorKind, OobmFailure, PowerAction, PowerState, RedfishAuth};
use std::future::Future;
use std::time::{Duration, Instant};

/// Where a host's BMC is and how to log in to it.
#[derive(Clone, Debug)]
pub struct BmcEndpoint {
    pub driver: OobmDriver,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    pub ipmi_cipher_suite: u8,
    pub redfish_https: bool,
    pub redfish_accept_self_signed: bool,
    pub redfish_auth: RedfishAuth,
    pub redfish_system_id: Option<String>,
}

impl BmcEndpoint {
    /// `address` as it goes into a URL (IPv6 literals in brackets).
    pub fn url_host(&self) -> String {
        if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        }
    }
}

/// Power as a BMC reports it. Transitional states (Redfish `PoweringOn`/`PoweringOff`) count as On:
/// only a BMC that says Off has confirmed that the host runs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BmcPower {
    On,
    Off,
}

impl From<BmcPower> for PowerState {
    fn from(power: BmcPower) -> Self {
        match power {
            BmcPower::On => PowerState::On,
            BmcPower::Off => PowerState::Off,
        }
    }
}

/// What a driver sends to a BMC. API actions map onto these in [`perform`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerCommand {
    On,
    /// Hard power-off: Redfish `ForceOff`, IPMI `chassis power off`.
    ForceOff,
    /// Ask the OS to shut down: Redfish `GracefulShutdown`, IPMI `chassis power soft`.
    GracefulShutdown,
    /// Hard reset: Redfish `ForceRestart`, IPMI `chassis power reset`.
    ForceRestart,
    /// Off then on by the BMC itself: Redfish `PowerCycle`, IPMI `chassis power cycle`.
    PowerCycle,
}

/// A failed BMC call, classified. Messages never hold a password (see [`scrub`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OobmError {
    #[error("the BMC is unreachable: {0}")]
    Unreachable(String),
    #[error("the BMC refused the credentials: {0}")]
    Auth(String),
    #[error("the BMC did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the BMC does not support this: {0}")]
    Unsupported(String),
    #[error("unexpected answer from the BMC: {0}")]
    Protocol(String),
}

impl OobmError {
    pub fn kind(&self) -> OobmErrorKind {
        match self {
            OobmError::Unreachable(_) => OobmErrorKind::Unreachable,
            OobmError::Auth(_) => OobmErrorKind::Auth,
            OobmError::Timeout(_) => OobmErrorKind::Timeout,
            OobmError::Unsupported(_) => OobmErrorKind::Unsupported,
            OobmError::Protocol(_) => OobmErrorKind::Protocol,
        }
    }

    /// The API's view of the failure.
    pub fn failure(&self) -> OobmFailure {
        OobmFailure { kind: self.kind(), message: self.to_string() }
    }
}

/// One host's BMC, reached through one driver.
#[async_trait::async_trait]
pub trait Bmc: Send + Sync {
    /// STATUS: the chassis power as the BMC reports it.
    async fn power_state(&self) -> Result<BmcPower, OobmError>;
    /// Send a power command; `Unsupported` when the BMC says it lacks it.
    async fn send(&self, command: PowerCommand) -> Result<(), OobmError>;
    /// Set a new password for the configured user on the BMC (Redfish AccountService, IPMI
    /// `user set password`).
    async fn change_password(&self, new_password: &Secret) -> Result<(), OobmError>;
}

/// Timing of BMC calls, the sync and waits for a power state.
#[derive(Clone, Debug)]
pub struct OobmSettings {
    /// Every single BMC call (one STATUS, one command) ends within this, answered or not.
    pub call_timeout: Duration,
    /// How often the background sync reads every enabled host's power state.
    pub sync_interval: Duration,
    /// How many BMCs the sync talks to at once.
    pub sync_concurrency: usize,
    /// How often STATUS is read while waiting for a power state (CYCLE's fallback, fencing).
    pub poll_interval: Duration,
    /// How long CYCLE's fallback waits for Off before it turns the host on again.
    pub cycle_off_deadline: Duration,
    /// How long fencing waits for a confirmed Off.
    pub fence_deadline: Duration,
    /// The `ipmitool` program to run.
    pub ipmitool_program: std::path::PathBuf,
}

impl Default for OobmSettings {
    fn default() -> Self {
        OobmSettings {
            call_timeout: Duration::from_secs(5),
            sync_interval: Duration::from_secs(5),
            sync_concurrency: 16,
            poll_interval: Duration::from_millis(250),
            cycle_off_deadline: Duration::from_secs(60),
            fence_deadline: Duration::from_secs(60),
            ipmitool_program: std::path::PathBuf::from("ipmitool"),
        }
    }
}

/// The driver for `endpoint`.
pub fn connect(endpoint: BmcEndpoint, settings: &OobmSettings) -> Result<Box<dyn Bmc>, OobmError> {
    Ok(match endpoint.driver {
        OobmDriver::Redfish => Box::new(redfish::RedfishBmc::new(endpoint, settings.call_timeout)?),
        OobmDriver::Ipmitool => Box::new(ipmi_native::IpmiBmc::new(endpoint, settings)),
    })
}

/// Run one BMC call with the call timeout: a BMC that never answers gives `Timeout`, never a hang.
pub async fn bounded<T>(timeout: Duration, call: impl Future<Output = Result<T, OobmError>>) -> Result<T, OobmError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(OobmError::Timeout(timeout)),
    }
}

/// STATUS with the call timeout.
pub async fn read_power(bmc: &dyn Bmc, settings: &OobmSettings) -> Result<BmcPower, OobmError> {
    bounded(settings.call_timeout, bmc.power_state()).await
}

/// What [`perform`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Performed {
    /// The power state read right after (STATUS: the state); `None` when that read failed.
    pub power: Option<BmcPower>,
    /// How the action was carried out when not directly.
    pub note: Option<String>,
}

/// Carry out an API power action. OFF is always `ForceOff`; CYCLE falls back to OFF, wait for Off,
/// ON when the BMC says it lacks power cycling.
pub async fn perform(bmc: &dyn Bmc, action: PowerAction, settings: &OobmSettings) -> Result<Performed, OobmError> {
    let timeout = settings.call_timeout;
    let mut note = None;
    let command = match action {
        PowerAction::Status => {
            let power = read_power(bmc, settings).await?;
            return Ok(Performed { power: Some(power), note: None });
        }
        PowerAction::On => PowerCommand::On,
        PowerAction::Off => PowerCommand::ForceOff,
        PowerAction::Soft => PowerCommand::GracefulShutdown,
        PowerAction::Reset => PowerCommand::ForceRestart,
        PowerAction::Cycle => PowerCommand::PowerCycle,
    };
    match bounded(timeout, bmc.send(command)).await {
        Ok(()) => {}
        Err(OobmError::Unsupported(why)) if command == PowerCommand::PowerCycle => {
            tracing::info!(reason = %why, "the BMC lacks power cycling: doing OFF, wait for Off, ON");
            bounded(timeout, bmc.send(PowerCommand::ForceOff)).await?;
            wait_for_power(bmc, BmcPower::Off, settings.cycle_off_deadline, settings).await.map_err(|failure| {
                match failure {
                    WaitFailure::Bmc(error) => error,
                    WaitFailure::Deadline { last } => OobmError::Protocol(format!(
                        "CYCLE as OFF then ON: the host did not report Off within {} s after OFF (last: {})",
                        settings.cycle_off_deadline.as_secs(),
                        last.map_or_else(|| "no answer".to_owned(), |power| format!("{power:?}"))
                    )),
                }
            })?;
            bounded(timeout, bmc.send(PowerCommand::On)).await?;
            note = Some("the BMC lacks power cycling: done as OFF, wait for Off, then ON".to_owned());
        }
        Err(error) => return Err(error),
    }
    let power = read_power(bmc, settings).await.ok();
    Ok(Performed { power, note })
}

/// Why a wait for a power state ended without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFailure {
    /// The deadline passed; `last` is the last state read (None: no read succeeded).
    Deadline { last: Option<BmcPower> },
    /// The BMC refused us: waiting longer will not help.
    Bmc(OobmError),
}

/// Poll STATUS until it reports `want` or `deadline` passes. Unreachable and timeout answers are
/// retried until the deadline (a BMC may drop a packet); an auth error ends the wait at once.
pub async fn wait_for_power(
    bmc: &dyn Bmc,
    want: BmcPower,
    deadline: Duration,
    settings: &OobmSettings,
) -> Result<Duration, WaitFailure> {
    let started = Instant::now();
    let mut last = None;
    loop {
        let remaining = deadline.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(WaitFailure::Deadline { last });
        }
        match bounded(settings.call_timeout.min(remaining), bmc.power_state()).await {
            Ok(power) if power == want => return Ok(started.elapsed()),
            Ok(power) => last = Some(power),
            Err(error @ (OobmError::Auth(_) | OobmError::Unsupported(_))) => return Err(WaitFailure::Bmc(error)),
            Err(error) => tracing::debug!(error = %error, "power state read failed while waiting; retrying"),
        }
        let pause = settings.poll_interval.min(deadline.saturating_sub(started.elapsed()));
        tokio::time::sleep(pause).await;
    }
}

/// `text` with every occurrence of each secret replaced by `••••`: for messages built from what a
/// BMC or a tool said, which might echo what it was given.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            text = text.replace(secret.expose(), MASK);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A BMC in memory: lacks power cycling, applies OFF after `off_after` reads.
    struct FakeBmc {
        power: Mutex<BmcPower>,
        sent: Mutex<Vec<PowerCommand>>,
        reads_until_off: Mutex<Option<u32>>,
        off_after: u32,
    }

    impl FakeBmc {
        fn new(power: BmcPower, off_after: u32) -> FakeBmc {
            FakeBmc { power: Mutex::new(power), sent: Mutex::default(), reads_until_off: Mutex::new(None), off_after }
        }
    }

    #[async_trait::async_trait]
    impl Bmc for FakeBmc {
        async fn power_state(&self) -> Result<BmcPower, OobmError> {
            let mut pending = self.reads_until_off.lock().unwrap();
            if let Some(reads) = pending.as_mut() {
                if *reads == 0 {
                    *self.power.lock().unwrap() = BmcPower::Off;
                    *pending = None;
                } else {
                    *reads -= 1;
                }
            }
            Ok(*self.power.lock().unwrap())
        }

        async fn send(&self, command: PowerCommand) -> Result<(), OobmError> {
            self.sent.lock().unwrap().push(command);
            match command {
                PowerCommand::PowerCycle => Err(OobmError::Unsupported("501 Not Implemented".into())),
                PowerCommand::ForceOff => {
                    *self.reads_until_off.lock().unwrap() = Some(self.off_after);
                    Ok(())
                }
                PowerCommand::On => {
                    *self.power.lock().unwrap() = BmcPower::On;
                    Ok(())
                }
                _ => Ok(()),
            }
        }

        async fn change_password(&self, _: &Secret) -> Result<(), OobmError> {
            Ok(())
        }
    }

    fn quick() -> OobmSettings {
        OobmSettings { poll_interval: Duration::from_millis(1), ..OobmSettings::default() }
    }

    #[tokio::test]
    async fn off_is_always_a_hard_power_off() {
        let bmc = FakeBmc::new(BmcPower::On, 0);
        perform(&bmc, PowerAction::Off, &quick()).await.unwrap();
        perform(&bmc, PowerAction::Soft, &quick()).await.unwrap();
        perform(&bmc, PowerAction::Reset, &quick()).await.unwrap();
        assert_eq!(
            *bmc.sent.lock().unwrap(),
            vec![PowerCommand::ForceOff, PowerCommand::GracefulShutdown, PowerCommand::ForceRestart]
        );
    }

    #[tokio::test]
    async fn cycle_without_power_cycling_is_off_wait_on() {
        let bmc = FakeBmc::new(BmcPower::On, 3);
        let done = perform(&bmc, PowerAction::Cycle, &quick()).await.unwrap();
        assert_eq!(
            *bmc.sent.lock().unwrap(),
            vec![PowerCommand::PowerCycle, PowerCommand::ForceOff, PowerCommand::On],
            "ON only after the BMC reported Off"
        );
        assert_eq!(done.power, Some(BmcPower::On));
        assert!(done.note.unwrap().contains("OFF"));
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_deadline_with_the_last_state() {
        let bmc = FakeBmc::new(BmcPower::On, 0);
        let settings = OobmSettings { poll_interval: Duration::from_millis(5), ..OobmSettings::default() };
        let started = Instant::now();
        let result = wait_for_power(&bmc, BmcPower::Off, Duration::from_millis(50), &settings).await;
        assert_eq!(result, Err(WaitFailure::Deadline { last: Some(BmcPower::On) }));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_call_that_never_answers_times_out() {
        let never = std::future::pending::<Result<(), OobmError>>();
        let result = bounded(Duration::from_millis(20), never).await;
        assert_eq!(result, Err(OobmError::Timeout(Duration::from_millis(20))));
        assert_eq!(result.unwrap_err().kind(), OobmErrorKind::Timeout);
    }

    #[test]
    fn scrub_masks_every_secret() {
        let old = Secret::new("old-pass");
        let new = Secret::new("new-pass");
        let text = scrub("user set password 2 new-pass (was old-pass)", &[&old, &new]);
        assert_eq!(text, "user set password 2 •••• (was ••••)");
        assert_eq!(scrub("nothing", &[&Secret::new("")]), "nothing");
    }
}
