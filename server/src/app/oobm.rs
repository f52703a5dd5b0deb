//! Out-of-band management rules: validating and storing a host's BMC configuration (password sealed
//! with the server's secrets key), the zone/cluster/host switches, power actions, the password
//! change that happens on the BMC and in the store or not at all, recording what each BMC call
//! found (power state, classified error, the auth-error alert at most once a day per host), and
//! [`fence_power_off`] for the HA engine.

use super::AppError;
use super::admission::AuditNote;
use super::alerts::{self, NewAlert};
use crate::db::{OobmConfig, OobmRecord, PowerReading};
use crate::events::error_chain;
use crate::oobm::{self, Bmc, BmcEndpoint, BmcPower, OobmError, PowerCommand};
use crate::secrets::Secret;
use crate::state::AppState;
use api::v1::{
    AlertSeverity, ChangeOobmPasswordRequest, Cluster, ConfigureOobmRequest, Event, HostOobm, OobmDriver,
    OobmTestResult, PowerAction, PowerActionResult, PowerState, TestOobmRequest, Zone, alert_kind,
};
use api::{ClusterId, HostId, ZoneId};
use std::time::{Duration, Instant};

/// An auth-error alert is raised at most this often per host.
pub const AUTH_ALERT_INTERVAL: chrono::Duration = chrono::Duration::days(1);

/// IPMI v2.0 limits (bytes): user names 16, passwords 20.
const IPMI_MAX_USERNAME: usize = 16;
const IPMI_MAX_PASSWORD: usize = 20;
const MAX_PASSWORD: usize = 128;

/// The context a host's BMC password is sealed with: a sealed value only opens for its own host.
pub fn password_context(host: HostId) -> String {
    format!("oobm-password:{host}")
}

/// A configuration request, checked; the password (if given) not yet sealed.
struct Checked {
    config: OobmConfig,
    password: Option<Secret>,
}

fn bad(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::bad_request(code, message)
}

fn check_password(field: &str, password: &Secret, driver: OobmDriver) -> Result<(), AppError> {
    if password.is_empty() {
        return Err(bad("invalid-password", format!("{field}: must not be empty")));
    }
    if password.expose().chars().any(char::is_control) {
        return Err(bad("invalid-password", format!("{field}: must not contain control characters")));
    }
    let limit = if driver == OobmDriver::Ipmitool { IPMI_MAX_PASSWORD } else { MAX_PASSWORD };
    if password.len() > limit {
        return Err(bad("invalid-password", format!("{field}: at most {limit} bytes for the {driver:?} driver")));
    }
    Ok(())
}

/// Validate a configuration request; every refusal names its field.
fn check(request: &ConfigureOobmRequest) -> Result<Checked, AppError> {
    let address = request.address.trim();
    let address_ok = !address.is_empty()
        && address.len() <= 253
        && !address.starts_with('-')
        && address.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_' | '[' | ']'));
    if !address_ok {
        return Err(bad(
            "invalid-address",
            "address: must be a host name or IP address (letters, digits, '.', '-', ':'; at most 253)",
        ));
    }
    let address = address.trim_start_matches('[').trim_end_matches(']').to_owned();
    if request.port == Some(0) {
        return Err(bad("invalid-port", "port: must be 1 to 65535"));
    }
    let https = request.redfish_https.unwrap_or(true);
    let port = request.port.unwrap_or_else(|| request.driver.default_port(https));
    let username = request.username.trim().to_owned();
    if username.chars().any(char::is_control) || username.len() > 64 {
        return Err(bad("invalid-username", "username: at most 64 characters, no control characters"));
    }
    match request.driver {
        OobmDriver::Ipmitool if username.len() > IPMI_MAX_USERNAME => {
            return Err(bad("invalid-username", format!("username: IPMI allows at most {IPMI_MAX_USERNAME} bytes")));
        }
        OobmDriver::Redfish if username.is_empty() => {
            return Err(bad("invalid-username", "username: required for Redfish"));
        }
        _ => {}
    }
    let suite = request.ipmi_cipher_suite.unwrap_or(3);
    if !(1..=17).contains(&suite) {
        // Suite 0 authenticates nothing: any password works, so a wrong one would go unnoticed.
        return Err(bad("invalid-cipher-suite", "ipmi_cipher_suite: must be 1 to 17 (0 has no authentication)"));
    }
    if let Some(id) = &request.redfish_system_id
        && (id.is_empty()
            || id.len() > 128
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(bad("invalid-system-id", "redfish_system_id: 1 to 128 letters, digits, '.', '-' or '_'"));
    }
    let password = request.password.clone().map(Secret::new);
    if let Some(password) = &password {
        check_password("password", password, request.driver)?;
    }
    Ok(Checked {
        config: OobmConfig {
            driver: request.driver,
            address,
            port,
            username,
            password_sealed: String::new(),
            ipmi_cipher_suite: suite,
            redfish_https: https,
            redfish_accept_self_signed: request.redfish_accept_self_signed,
            redfish_auth: request.redfish_auth,
            redfish_system_id: request.redfish_system_id.clone(),
        },
        password,
    })
}

fn endpoint_of(config: &OobmConfig, password: Secret) -> BmcEndpoint {
    BmcEndpoint {
        driver: config.driver,
        address: config.address.clone(),
        port: config.port,
        username: config.username.clone(),
        password,
        ipmi_cipher_suite: config.ipmi_cipher_suite,
        redfish_https: config.redfish_https,
        redfish_accept_self_signed: config.redfish_accept_self_signed,
        redfish_auth: config.redfish_auth,
        redfish_system_id: config.redfish_system_id.clone(),
    }
}

fn config_of(record: &OobmRecord) -> OobmConfig {
    OobmConfig {
        driver: record.driver,
        address: record.address.clone(),
        port: record.port,
        username: record.username.clone(),
        password_sealed: record.password_sealed.clone(),
        ipmi_cipher_suite: record.ipmi_cipher_suite,
        redfish_https: record.redfish_https,
        redfish_accept_self_signed: record.redfish_accept_self_signed,
        redfish_auth: record.redfish_auth,
        redfish_system_id: record.redfish_system_id.clone(),
    }
}

/// The stored password, opened. A value that does not open (the secrets key was changed) is
/// reported as such; the sealed text never leaves the server.
fn stored_password(state: &AppState, record: &OobmRecord) -> Result<Secret, OobmError> {
    state.secrets.open(&record.password_sealed, &password_context(record.host_id)).map_err(|error| {
        OobmError::Protocol(format!("the stored BMC password cannot be used: {error}; configure it again"))
    })
}

fn stored_endpoint(state: &AppState, record: &OobmRecord) -> Result<BmcEndpoint, OobmError> {
    Ok(endpoint_of(&config_of(record), stored_password(state, record)?))
}

/// The API's view of a stored configuration (never the password).
pub fn view(record: &OobmRecord) -> HostOobm {
    HostOobm {
        host_id: record.host_id,
        driver: record.driver,
        address: record.address.clone(),
        port: record.port,
        username: record.username.clone(),
        password_set: !record.password_sealed.is_empty(),
        ipmi_cipher_suite: record.ipmi_cipher_suite,
        redfish_https: record.redfish_https,
        redfish_accept_self_signed: record.redfish_accept_self_signed,
        redfish_auth: record.redfish_auth,
        redfish_system_id: record.redfish_system_id.clone(),
        enabled: record.host_enabled,
        enabled_effective: record.effective(),
        power_state: record.shown_power_state(),
        power_state_read_at: record.power_read_at,
        last_error: record.last_error.clone(),
    }
}

/// A failed BMC call as the API answers it: 502 with `oobm-<kind>`.
pub fn bmc_error(error: &OobmError) -> AppError {
    let code = match error.kind() {
        api::v1::OobmErrorKind::Unreachable => "oobm-unreachable",
        api::v1::OobmErrorKind::Auth => "oobm-auth",
        api::v1::OobmErrorKind::Timeout => "oobm-timeout",
        api::v1::OobmErrorKind::Unsupported => "oobm-unsupported",
        api::v1::OobmErrorKind::Protocol => "oobm-protocol",
    };
    AppError::BadGateway { code, message: error.to_string() }
}

async fn require_host(state: &AppState, host: HostId) -> Result<api::v1::Host, AppError> {
    state.db.host_fetch(host).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {host}")))
}

/// The host's stored configuration: 404 for an unknown host or one without OOBM configured.
async fn require_record(state: &AppState, host: HostId) -> Result<OobmRecord, AppError> {
    let found = require_host(state, host).await?;
    state.db.oobm_fetch(host).await?.ok_or_else(|| {
        AppError::NotFound(format!(
            "host {} has no OOBM configuration; PUT /api/v1/hosts/{host}/oobm first",
            found.name
        ))
    })
}

/// Why OOBM is not in effect for a host, naming each switch that is off; `None` when it is.
fn why_not_effective(record: &OobmRecord) -> Option<String> {
    let off: Vec<&str> = [
        (!record.zone_enabled).then_some("its zone"),
        (!record.cluster_enabled).then_some("its cluster"),
        (!record.host_enabled).then_some("the host"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!off.is_empty()).then(|| format!("OOBM is disabled for host {}: off for {}", record.host_name, off.join(", ")))
}

/// `GET /hosts/{id}/oobm`.
pub async fn show(state: &AppState, host: HostId) -> Result<HostOobm, AppError> {
    Ok(view(&require_record(state, host).await?))
}

/// `PUT /hosts/{id}/oobm`: store the configuration (a password left out keeps the stored one).
pub async fn configure(state: &AppState, host: HostId, request: ConfigureOobmRequest) -> Result<HostOobm, AppError> {
    let mut checked = check(&request)?;
    require_host(state, host).await?;
    let existing = state.db.oobm_fetch(host).await?;
    checked.config.password_sealed = match (&checked.password, &existing) {
        (Some(password), _) => state.secrets.seal(password, &password_context(host)).map_err(AppError::internal)?,
        (None, Some(existing)) => {
            if existing.driver != checked.config.driver && checked.config.driver == OobmDriver::Ipmitool {
                // The kept password must fit the new driver's limit.
                let password = stored_password(state, existing).map_err(|error| bmc_error(&error))?;
                check_password("password", &password, checked.config.driver)?;
            }
            existing.password_sealed.clone()
        }
        (None, None) => return Err(bad("missing-password", "password: required when OOBM is first configured")),
    };
    if !state.db.oobm_configure(host, &checked.config).await? {
        return Err(AppError::NotFound(format!("no host with id {host}")));
    }
    state.oobm_sync.notify_one();
    state.events.announce_host(&state.db, host).await;
    show(state, host).await
}

/// `POST /hosts/{id}/oobm/test`: read the power state with the given settings (a missing password:
/// the stored one) or the stored configuration. Answers the state or the classified failure; only
/// a test of the stored configuration is recorded (and may raise the auth-error alert).
pub async fn test(state: &AppState, host: HostId, request: TestOobmRequest) -> Result<OobmTestResult, AppError> {
    require_host(state, host).await?;
    let existing = state.db.oobm_fetch(host).await?;
    let (endpoint, stored) = match request.settings {
        Some(settings) => {
            let checked = check(&settings)?;
            let password = match (checked.password, &existing) {
                (Some(password), _) => password,
                (None, Some(existing)) => match stored_password(state, existing) {
                    Ok(password) => password,
                    Err(error) => return Ok(test_result(Err(error), Duration::ZERO)),
                },
                (None, None) => return Err(bad("missing-password", "settings.password: nothing is stored yet")),
            };
            (Ok(endpoint_of(&checked.config, password)), None)
        }
        None => {
            let record = require_record(state, host).await?;
            (stored_endpoint(state, &record), Some(record))
        }
    };
    let started = Instant::now();
    let result = match endpoint {
        Ok(endpoint) => match oobm::connect(endpoint, &state.settings.oobm) {
            Ok(bmc) => oobm::read_power(bmc.as_ref(), &state.settings.oobm).await,
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let elapsed = started.elapsed();
    if let Some(record) = stored {
        record_reading(state, &record, result.as_ref().map(|power| *power)).await;
    }
    Ok(test_result(result, elapsed))
}

fn test_result(result: Result<BmcPower, OobmError>, elapsed: Duration) -> OobmTestResult {
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(power) => OobmTestResult { ok: true, power_state: power.into(), error: None, elapsed_ms },
        Err(error) => {
            OobmTestResult { ok: false, power_state: PowerState::Unknown, error: Some(error.failure()), elapsed_ms }
        }
    }
}

/// `POST /hosts/{id}/oobm/power`: carry out a power action on a host whose OOBM is in effect.
pub async fn power(
    state: &AppState,
    host: HostId,
    action: PowerAction,
    note: &AuditNote,
) -> Result<PowerActionResult, AppError> {
    let record = require_record(state, host).await?;
    if let Some(why) = why_not_effective(&record) {
        return Err(AppError::conflict("oobm-disabled", why));
    }
    let started = Instant::now();
    let outcome =
        match stored_endpoint(state, &record).and_then(|endpoint| oobm::connect(endpoint, &state.settings.oobm)) {
            Ok(bmc) => oobm::perform(bmc.as_ref(), action, &state.settings.oobm).await,
            Err(error) => Err(error),
        };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(performed) => {
            if let Some(power) = performed.power {
                record_reading(state, &record, Ok(power)).await;
            }
            note.set(format!("{} on host {}: done", action.as_str(), record.host_name));
            tracing::info!(host = %record.host_name, action = action.as_str(), elapsed_ms, "OOBM power action done");
            Ok(PowerActionResult {
                action,
                power_state: performed.power.map_or(PowerState::Unknown, PowerState::from),
                note: performed.note,
                elapsed_ms,
            })
        }
        Err(error) => {
            note.set(format!("{} on host {}: failed ({:?})", action.as_str(), record.host_name, error.kind()));
            record_reading(state, &record, Err(&error)).await;
            Err(bmc_error(&error))
        }
    }
}

/// `PUT /hosts/{id}/oobm/enabled`: the host's switch (409 while nothing is configured).
pub async fn set_host_enabled(state: &AppState, host: HostId, enabled: bool) -> Result<HostOobm, AppError> {
    let found = require_host(state, host).await?;
    if !state.db.oobm_set_host_enabled(host, enabled).await? {
        return Err(AppError::conflict(
            "oobm-not-configured",
            format!("host {} has no OOBM configuration to enable; configure it first", found.name),
        ));
    }
    state.oobm_sync.notify_one();
    state.events.announce_host(&state.db, host).await;
    show(state, host).await
}

/// `PUT /zones/{id}/oobm/enabled`.
pub async fn set_zone_enabled(state: &AppState, zone: ZoneId, enabled: bool) -> Result<Zone, AppError> {
    let zone = state
        .db
        .zone_set_oobm_enabled(zone, enabled)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no zone with id {zone}")))?;
    state.oobm_sync.notify_one();
    state.events.announce(Event::InventoryChanged);
    Ok(zone)
}

/// `PUT /clusters/{id}/oobm/enabled`.
pub async fn set_cluster_enabled(state: &AppState, cluster: ClusterId, enabled: bool) -> Result<Cluster, AppError> {
    let cluster = state
        .db
        .cluster_set_oobm_enabled(cluster, enabled)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no cluster with id {cluster}")))?;
    state.oobm_sync.notify_one();
    state.events.announce(Event::InventoryChanged);
    Ok(cluster)
}

/// `POST /hosts/{id}/oobm/password`: set a new password for the configured user on the BMC and in
/// the store, in one transaction that is rolled back when the BMC refuses.
pub async fn change_password(
    state: &AppState,
    host: HostId,
    request: ChangeOobmPasswordRequest,
) -> Result<HostOobm, AppError> {
    let record = require_record(state, host).await?;
    let new_password = Secret::new(request.new_password);
    check_password("new_password", &new_password, record.driver)?;
    let endpoint = stored_endpoint(state, &record).map_err(|error| bmc_error(&error))?;
    let bmc = oobm::connect(endpoint, &state.settings.oobm).map_err(|error| bmc_error(&error))?;
    let new_sealed = state.secrets.seal(&new_password, &password_context(host)).map_err(AppError::internal)?;
    // Finding the account and setting its password take two BMC round trips.
    let timeout = state.settings.oobm.call_timeout * 2;
    let on_bmc = oobm::bounded(timeout, bmc.change_password(&new_password));
    match state.db.oobm_replace_password(host, &record.password_sealed, &new_sealed, on_bmc).await? {
        Ok(()) => {
            tracing::info!(host = %record.host_name, "BMC password changed on the BMC and in the store");
            state.oobm_sync.notify_one();
            show(state, host).await
        }
        Err(error) => {
            if matches!(error, OobmError::Auth(_)) {
                record_reading(state, &record, Err(&error)).await;
            }
            Err(bmc_error(&error))
        }
    }
}

/// Read one host's power state and record it (the background sync's step for each host).
pub async fn refresh(state: &AppState, record: &OobmRecord) -> Result<BmcPower, OobmError> {
    let result = match stored_endpoint(state, record).and_then(|endpoint| oobm::connect(endpoint, &state.settings.oobm))
    {
        Ok(bmc) => oobm::read_power(bmc.as_ref(), &state.settings.oobm).await,
        Err(error) => Err(error),
    };
    record_reading(state, record, result.as_ref().map(|power| *power)).await;
    result
}

/// Store what a BMC call found about the power state, tell consoles when it changed, and handle
/// authentication: a refusal raises the auth-error alert (at most once a day per host, whichever
/// server sees it), a success after one clears its condition.
async fn record_reading(state: &AppState, record: &OobmRecord, result: Result<BmcPower, &OobmError>) {
    let reading = match result {
        Ok(power) => PowerReading::Read(power.into()),
        Err(error) => PowerReading::Failed(error.failure()),
    };
    match state.db.oobm_record_power(record.host_id, &reading).await {
        Ok(true) => state.events.announce_host(&state.db, record.host_id).await,
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(host = %record.host_name, error = %error_chain(&error), "cannot record a power state")
        }
    }
    let key = alerts::dedupe_key(alert_kind::OOBM_AUTH_ERROR, record.host_id);
    match result {
        Err(error @ OobmError::Auth(_)) => raise_auth_alert(state, record, error).await,
        Ok(_) if record.last_error.as_ref().is_some_and(|last| last.kind == api::v1::OobmErrorKind::Auth) => {
            if let Err(error) = alerts::clear(state, &key).await {
                tracing::warn!(host = %record.host_name, error = %error_chain(&error), "cannot clear an alert");
            }
        }
        _ => {}
    }
}

async fn raise_auth_alert(state: &AppState, record: &OobmRecord, error: &OobmError) {
    match state.db.oobm_claim_auth_alert(record.host_id, chrono::Utc::now(), AUTH_ALERT_INTERVAL).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(host = %record.host_name, error = %error_chain(&error), "cannot claim the auth alert");
            return;
        }
    }
    let message = format!(
        "OOBM authentication failed for host {}: its BMC at {}:{} ({:?}) refused user {:?}: {error}",
        record.host_name, record.address, record.port, record.driver, record.username
    );
    let alert = NewAlert::for_host(
        alert_kind::OOBM_AUTH_ERROR,
        AlertSeverity::Warning,
        record.cluster_id,
        record.host_id,
        message,
    );
    if let Err(error) = alerts::raise(state, alert).await {
        tracing::warn!(host = %record.host_name, error = %error_chain(&error), "cannot raise the OOBM auth alert");
    }
}

/// A host confirmed powered off by its BMC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceConfirmed {
    pub host: HostId,
    /// From the OFF command to the BMC's Off.
    pub elapsed: Duration,
    /// The BMC refused the OFF command (some do for a host that is already off) but reported Off.
    pub off_command_failed: Option<api::v1::OobmFailure>,
}

/// Why a fence could not be confirmed: the host may still run its VMs.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("host {0} has no OOBM configuration")]
    NotConfigured(HostId),
    #[error("{0}")]
    NotEnabled(String),
    #[error("the BMC of host {host} cannot be used: {error}")]
    Bmc { host: String, error: OobmError },
    #[error(
        "host {host} was not confirmed off within {} s (last power state read: {}; OFF command: {})",
        waited.as_secs(),
        last.map_or("none".to_owned(), |power| format!("{power:?}")),
        off_error.as_ref().map_or("accepted".to_owned(), |error| error.to_string())
    )]
    NotConfirmed { host: String, waited: Duration, last: Option<BmcPower>, off_error: Option<OobmError> },
    #[error("cannot read the host's OOBM configuration")]
    Store(#[source] AppError),
}

/// Fence a host for the HA engine: hard power-off (ForceOff / chassis power off, never graceful),
/// then STATUS polled until the BMC reports Off, within `settings.oobm.fence_deadline`. A BMC that
/// refuses OFF for a host that is already off (or has lost power) still confirms by reporting
/// Off; an OFF that failed is re-sent while the host reads On. Answers a confirmed result or why
/// it could not confirm; only a confirmed result allows restarting the host's VMs elsewhere.
pub async fn fence_power_off(state: &AppState, host: HostId) -> Result<FenceConfirmed, FenceError> {
    let record = match state.db.oobm_fetch(host).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(FenceError::NotConfigured(host)),
        Err(error) => return Err(FenceError::Store(error.into())),
    };
    if let Some(why) = why_not_effective(&record) {
        return Err(FenceError::NotEnabled(why));
    }
    let settings = &state.settings.oobm;
    let bmc = stored_endpoint(state, &record)
        .and_then(|endpoint| oobm::connect(endpoint, settings))
        .map_err(|error| FenceError::Bmc { host: record.host_name.clone(), error })?;
    let started = Instant::now();
    let outcome = fence_with(bmc.as_ref(), settings, started).await;
    match &outcome {
        Ok(_) => record_reading(state, &record, Ok(BmcPower::Off)).await,
        Err((_, Some(error))) if matches!(error, OobmError::Auth(_)) => {
            record_reading(state, &record, Err(error)).await
        }
        Err(_) => {}
    }
    match outcome {
        Ok(off_error) => {
            tracing::warn!(host = %record.host_name, elapsed_ms = started.elapsed().as_millis(), "host fenced: BMC reports Off");
            Ok(FenceConfirmed { host, elapsed: started.elapsed(), off_command_failed: off_error.map(|e| e.failure()) })
        }
        Err((last, Some(error @ OobmError::Auth(_)))) if last.is_none() => {
            Err(FenceError::Bmc { host: record.host_name, error })
        }
        Err((last, off_error)) => {
            Err(FenceError::NotConfirmed { host: record.host_name, waited: started.elapsed(), last, off_error })
        }
    }
}

/// The fencing loop: OFF, then STATUS until Off (re-sending OFF while it failed and the host reads
/// On). Ok carries the OFF command's error when it failed but the host is off all the same; Err the
/// last state read and the last error.
async fn fence_with(
    bmc: &dyn Bmc,
    settings: &oobm::OobmSettings,
    started: Instant,
) -> Result<Option<OobmError>, (Option<BmcPower>, Option<OobmError>)> {
    let deadline = settings.fence_deadline;
    let remaining = || deadline.saturating_sub(started.elapsed());
    let mut off_error =
        oobm::bounded(settings.call_timeout.min(remaining()), bmc.send(PowerCommand::ForceOff)).await.err();
    let mut last_send = Instant::now();
    let mut last = None;
    loop {
        if remaining().is_zero() {
            return Err((last, off_error));
        }
        match oobm::bounded(settings.call_timeout.min(remaining()), bmc.power_state()).await {
            Ok(BmcPower::Off) => return Ok(off_error),
            Ok(BmcPower::On) => {
                last = Some(BmcPower::On);
                if off_error.is_some() && last_send.elapsed() >= Duration::from_secs(1) && !remaining().is_zero() {
                    off_error = oobm::bounded(settings.call_timeout.min(remaining()), bmc.send(PowerCommand::ForceOff))
                        .await
                        .err();
                    last_send = Instant::now();
                }
            }
            Err(error @ OobmError::Auth(_)) => return Err((last, Some(error))),
            Err(error) => {
                tracing::debug!(error = %error, "power state read failed while fencing; retrying");
            }
        }
        tokio::time::sleep(settings.poll_interval.min(remaining())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(driver: OobmDriver) -> ConfigureOobmRequest {
        ConfigureOobmRequest {
            driver,
            address: "10.0.0.5".into(),
            port: None,
            username: "admin".into(),
            password: Some("pw".into()),
            ipmi_cipher_suite: None,
            redfish_https: None,
            redfish_accept_self_signed: false,
            redfish_auth: Default::default(),
            redfish_system_id: None,
        }
    }

    fn refusal(request: ConfigureOobmRequest) -> String {
        match check(&request) {
            Err(AppError::BadRequest { message, .. }) => message,
            Err(other) => panic!("not a 400: {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn defaults_fill_port_and_cipher_suite() {
        let checked = check(&request(OobmDriver::Ipmitool)).unwrap();
        assert_eq!((checked.config.port, checked.config.ipmi_cipher_suite), (623, 3));
        let checked = check(&request(OobmDriver::Redfish)).unwrap();
        assert_eq!((checked.config.port, checked.config.redfish_https), (443, true));
        let mut plain = request(OobmDriver::Redfish);
        plain.redfish_https = Some(false);
        assert_eq!(check(&plain).unwrap().config.port, 80);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let mut bad = request(OobmDriver::Ipmitool);
        bad.address = "-oProxyCommand=x".into();
        assert!(refusal(bad).starts_with("address"));
        let mut bad = request(OobmDriver::Ipmitool);
        bad.port = Some(0);
        assert!(refusal(bad).starts_with("port"));
        let mut bad = request(OobmDriver::Ipmitool);
        bad.ipmi_cipher_suite = Some(0);
        assert!(refusal(bad).starts_with("ipmi_cipher_suite"));
        let mut bad = request(OobmDriver::Ipmitool);
        bad.password = Some("x".repeat(21));
        let message = refusal(bad);
        assert!(message.starts_with("password") && !message.contains("xxxx"), "{message}");
        let mut bad = request(OobmDriver::Redfish);
        bad.username = String::new();
        assert!(refusal(bad).starts_with("username"));
        let mut bad = request(OobmDriver::Redfish);
        bad.redfish_system_id = Some("../../x".into());
        assert!(refusal(bad).starts_with("redfish_system_id"));
    }

    #[test]
    fn the_reason_oobm_is_off_names_each_switch() {
        let record = OobmRecord {
            host_id: HostId::new_random(),
            host_name: "h1".into(),
            cluster_id: ClusterId::new_random(),
            driver: OobmDriver::Redfish,
            address: "a".into(),
            port: 443,
            username: "u".into(),
            password_sealed: "v1:00".into(),
            ipmi_cipher_suite: 3,
            redfish_https: true,
            redfish_accept_self_signed: false,
            redfish_auth: Default::default(),
            redfish_system_id: None,
            host_enabled: true,
            cluster_enabled: false,
            zone_enabled: false,
            power_state: Some(PowerState::On),
            power_read_at: None,
            last_error: None,
            last_auth_alert_at: None,
        };
        assert_eq!(why_not_effective(&record).unwrap(), "OOBM is disabled for host h1: off for its zone, its cluster");
        assert_eq!(record.shown_power_state(), PowerState::Disabled);
        let on = OobmRecord { cluster_enabled: true, zone_enabled: true, ..record };
        assert_eq!((why_not_effective(&on), on.shown_power_state()), (None, PowerState::On));
        assert!(view(&on).password_set);
    }
}
