//! The console's one typed client of the management server's `/api/v1`: every HTTP call goes through here.
//!
//! Requests are same-origin, so the browser attaches the HttpOnly session cookie by itself; the console
//! never sees the token. Every mutating request carries [`api::v1::CSRF_HEADER`], without which the server
//! answers 403. Every failure becomes a [`ClientError`] whose `Display` is the text a person should read:
//! for an error answer of the server, its `ApiError.message` in the console's language
//! ([`crate::i18n::server_text`]; English as the server wrote it).
//!
//! The calls that admission control checks (deploy, start, migrate, VM HA settings, host changes,
//! maintenance, removal) take an `Option<OvercommitChoice>`: `None` first; when the server answers
//! 409 `would-overcommit` ([`ClientError::WouldOvercommit`]), the same call again with the person's
//! choice (see `crate::components::admission`).

use crate::i18n::{server_text, tf};
use api::v1::{
    Alert, AlertId, AlertQuery, ApiError, AuditEntry, AuditQuery, ChangePasswordRequest, Cluster, ClusterHaPlan,
    ComputeOffering, CreateOfferingRequest, CreateUserRequest, DeployVmRequest, Host, Inventory, LoginRequest, Me,
    MigrateVmRequest, OVERCOMMIT_PARAM, OvercommitChoice, OvercommitConflict, PlanSimulateRequest,
    PlanSimulateResponse, ResetPasswordRequest, SetFailureLimitRequest, StoragePool, Template, UpdateHostRequest,
    UpdateOfferingRequest, UpdateUserRequest, UpdateVmHaRequest, User, Vm, VmActionAccepted, VmDeployed, Zone,
};
use api::{ClusterId, HostId, OfferingId, UserId, VmId};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// Where the server publishes live changes as server-sent events (event name `change`).
pub const EVENTS_URL: &str = "/api/v1/events";

/// Why a call to the server failed, in words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an error status; `error.message` is its explanation.
    Api { status: u16, error: ApiError },
    /// 409 `would-overcommit`: the action would break its cluster's failover plan. The same call with
    /// an [`OvercommitChoice`] may go ahead (pool operators and up).
    WouldOvercommit(Box<OvercommitConflict>),
    /// No answer arrived: the server is down, unreachable, or the network failed.
    Network(String),
    /// An answer arrived but was not what this console version understands.
    Decode(String),
    /// The console refused to send the request, e.g. a malformed id in the address bar.
    Invalid(String),
}

impl ClientError {
    /// The session is missing or expired: the person has to sign in (again).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ClientError::Api { status: 401, .. })
    }

    /// The server's machine code of an error answer, e.g. `limit-above-capacity`.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            ClientError::WouldOvercommit(conflict) => Some(&conflict.code),
            ClientError::Network(_) | ClientError::Decode(_) | ClientError::Invalid(_) => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The server's explanation, in the console's language when the catalog knows it.
            ClientError::Api { error, .. } => f.write_str(&server_text(&error.message)),
            ClientError::WouldOvercommit(conflict) => f.write_str(&server_text(&conflict.message)),
            ClientError::Network(detail) => {
                f.write_str(&tf("Cannot reach the management server ({detail}).", &[("detail", detail)]))
            }
            ClientError::Decode(detail) => {
                f.write_str(&tf("The server's answer could not be read ({detail}).", &[("detail", detail)]))
            }
            ClientError::Invalid(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for ClientError {}

pub type ClientResult<T> = Result<T, ClientError>;

fn network_error(error: gloo_net::Error) -> ClientError {
    ClientError::Network(error.to_string())
}

/// Adds the anti-CSRF header that every mutating route requires.
fn mutating(builder: RequestBuilder) -> RequestBuilder {
    builder.header(api::v1::CSRF_HEADER, "1")
}

/// The code of the 409 answer whose body is an [`OvercommitConflict`].
const WOULD_OVERCOMMIT: &str = "would-overcommit";

/// Turns an error status into a [`ClientError::Api`], keeping the server's `ApiError` when it sent one
/// (a proxy in front of the server may answer with plain text or HTML instead), or into
/// [`ClientError::WouldOvercommit`] for admission control's conflict.
async fn error_of(response: &Response) -> ClientError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status == 409
        && let Ok(conflict) = serde_json::from_str::<OvercommitConflict>(&body)
        && conflict.code == WOULD_OVERCOMMIT
    {
        return ClientError::WouldOvercommit(Box::new(conflict));
    }
    let error = serde_json::from_str::<ApiError>(&body).unwrap_or_else(|_| ApiError {
        code: format!("http-{status}"),
        message: tf(
            "The server answered {status} {reason}.",
            &[("status", &status.to_string()), ("reason", &response.status_text())],
        ),
    });
    ClientError::Api { status, error }
}

/// Reads a successful JSON answer, or the error the server explained.
async fn json_answer<T: DeserializeOwned>(response: Response) -> ClientResult<T> {
    if !response.ok() {
        return Err(error_of(&response).await);
    }
    let body = response.text().await.map_err(network_error)?;
    serde_json::from_str(&body).map_err(|error| ClientError::Decode(error.to_string()))
}

/// Accepts any successful answer and ignores its body (e.g. 204 No Content).
async fn empty_answer(response: Response) -> ClientResult<()> {
    if response.ok() { Ok(()) } else { Err(error_of(&response).await) }
}

async fn get_json<T: DeserializeOwned>(url: &str) -> ClientResult<T> {
    let response = Request::get(url).send().await.map_err(network_error)?;
    json_answer(response).await
}

async fn post_json<T: DeserializeOwned>(url: &str) -> ClientResult<T> {
    let response = mutating(Request::post(url)).send().await.map_err(network_error)?;
    json_answer(response).await
}

/// Sends `body` as JSON with a mutating method and hands back the raw answer.
async fn send_body(builder: RequestBuilder, body: &impl Serialize) -> ClientResult<Response> {
    let request = mutating(builder).json(body).map_err(|error| ClientError::Invalid(error.to_string()))?;
    request.send().await.map_err(network_error)
}

async fn post_body<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> ClientResult<T> {
    json_answer(send_body(Request::post(url), body).await?).await
}

async fn patch_body<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> ClientResult<T> {
    json_answer(send_body(Request::patch(url), body).await?).await
}

async fn put_body<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> ClientResult<T> {
    json_answer(send_body(Request::put(url), body).await?).await
}

async fn delete(url: &str) -> ClientResult<()> {
    let response = mutating(Request::delete(url)).send().await.map_err(network_error)?;
    empty_answer(response).await
}

/// `url` with the person's answer to an overcommit warning, when there is one.
fn admitted(url: String, choice: Option<OvercommitChoice>) -> String {
    match choice {
        Some(choice) => format!("{url}?{OVERCOMMIT_PARAM}={}", choice.as_str()),
        None => url,
    }
}

// ---- session -----------------------------------------------------------------------------------------

/// Who is signed in; 401 when nobody is.
pub async fn me() -> ClientResult<Me> {
    get_json("/api/v1/auth/me").await
}

/// Signs in; the server sets the session cookie on success.
pub async fn login(credentials: &LoginRequest) -> ClientResult<Me> {
    post_body("/api/v1/auth/login", credentials).await
}

/// Changes the signed-in user's own password. Every other session of the user ends; this one gets a
/// fresh cookie.
pub async fn change_password(request: &ChangePasswordRequest) -> ClientResult<Me> {
    post_body("/api/v1/auth/password", request).await
}

/// Ends the session; the server clears the cookie.
pub async fn logout() -> ClientResult<()> {
    let response = mutating(Request::post("/api/v1/auth/logout")).send().await.map_err(network_error)?;
    empty_answer(response).await
}

/// Trades the current (still valid) session for a fresh one with a new expiry.
pub async fn refresh() -> ClientResult<Me> {
    post_json("/api/v1/auth/refresh").await
}

/// Remembers the console language on the signed-in user's account (204).
pub async fn set_language(language: api::v1::Language) -> ClientResult<()> {
    let request = api::v1::SetLanguageRequest { language };
    empty_answer(send_body(Request::put("/api/v1/account/language"), &request).await?).await
}

// ---- inventory ---------------------------------------------------------------------------------------

/// The whole zone > cluster > host > VM tree plus storage pools, in one answer.
pub async fn inventory() -> ClientResult<Inventory> {
    get_json("/api/v1/inventory").await
}

pub async fn zones() -> ClientResult<Vec<Zone>> {
    get_json("/api/v1/zones").await
}

pub async fn clusters() -> ClientResult<Vec<Cluster>> {
    get_json("/api/v1/clusters").await
}

pub async fn hosts() -> ClientResult<Vec<Host>> {
    get_json("/api/v1/hosts").await
}

pub async fn host(id: HostId) -> ClientResult<Host> {
    get_json(&format!("/api/v1/hosts/{id}")).await
}

pub async fn vms() -> ClientResult<Vec<Vm>> {
    get_json("/api/v1/vms").await
}

pub async fn vm(id: VmId) -> ClientResult<Vm> {
    get_json(&format!("/api/v1/vms/{id}")).await
}

pub async fn storage_pools() -> ClientResult<Vec<StoragePool>> {
    get_json("/api/v1/storage-pools").await
}

pub async fn offerings() -> ClientResult<Vec<ComputeOffering>> {
    get_json("/api/v1/offerings").await
}

// ---- VM power ----------------------------------------------------------------------------------------

/// Asks the VM's host to start it; the VM goes Starting now and Running later (announced by events).
/// Checked by admission control.
pub async fn start_vm(id: VmId, choice: Option<OvercommitChoice>) -> ClientResult<VmActionAccepted> {
    post_json(&admitted(format!("/api/v1/vms/{id}/start"), choice)).await
}

/// Asks the VM's host to stop it; the VM goes Stopping now and Stopped later (announced by events).
pub async fn stop_vm(id: VmId) -> ClientResult<VmActionAccepted> {
    post_json(&format!("/api/v1/vms/{id}/stop")).await
}

/// Asks the VM's guest to shut down, or with `force` pulls the plug at once.
pub async fn stop_vm_with(id: VmId, force: bool) -> ClientResult<VmActionAccepted> {
    post_json(&format!("/api/v1/vms/{id}/stop?force={force}")).await
}

pub async fn restart_vm(id: VmId) -> ClientResult<VmActionAccepted> {
    post_json(&format!("/api/v1/vms/{id}/restart")).await
}

// ---- VM lifecycle ------------------------------------------------------------------------------------

pub async fn templates() -> ClientResult<Vec<Template>> {
    get_json("/api/v1/templates").await
}

/// Creates a VM; placement picks its host unless `request.host_id` names one (pool operators and up).
/// Checked by admission control when it starts the VM.
pub async fn deploy_vm(request: &DeployVmRequest, choice: Option<OvercommitChoice>) -> ClientResult<VmDeployed> {
    post_body(&admitted("/api/v1/vms".to_owned(), choice), request).await
}

/// Removes a stopped VM for good.
pub async fn destroy_vm(id: VmId) -> ClientResult<()> {
    delete(&format!("/api/v1/vms/{id}")).await
}

/// Starts a live migration; the VM shows `migrating` until events say where it ended up. Checked by
/// admission control.
pub async fn migrate_vm(id: VmId, host_id: HostId, choice: Option<OvercommitChoice>) -> ClientResult<Vm> {
    post_body(&admitted(format!("/api/v1/vms/{id}/migrate"), choice), &MigrateVmRequest { host_id }).await
}

/// Checked by admission control.
pub async fn update_vm_ha(id: VmId, request: &UpdateVmHaRequest, choice: Option<OvercommitChoice>) -> ClientResult<Vm> {
    patch_body(&admitted(format!("/api/v1/vms/{id}/ha"), choice), request).await
}

// ---- hosts -------------------------------------------------------------------------------------------

/// Enables or disables a host for new VMs and/or replaces its tags. Checked by admission control.
pub async fn update_host(
    id: HostId,
    request: &UpdateHostRequest,
    choice: Option<OvercommitChoice>,
) -> ClientResult<Host> {
    patch_body(&admitted(format!("/api/v1/hosts/{id}"), choice), request).await
}

/// Puts a host into maintenance: its running VMs are migrated away first (progress in `Host::maintenance`).
/// Checked by admission control.
pub async fn enter_maintenance(id: HostId, choice: Option<OvercommitChoice>) -> ClientResult<Host> {
    post_json(&admitted(format!("/api/v1/hosts/{id}/maintenance"), choice)).await
}

pub async fn cancel_maintenance(id: HostId) -> ClientResult<Host> {
    post_json(&format!("/api/v1/hosts/{id}/cancel-maintenance")).await
}

/// Removes an empty host from the inventory. Checked by admission control.
pub async fn remove_host(id: HostId, choice: Option<OvercommitChoice>) -> ClientResult<()> {
    delete(&admitted(format!("/api/v1/hosts/{id}"), choice)).await
}

// ---- failover plan and alerts ------------------------------------------------------------------------

/// The cluster's failover plan computed now, with the planner input it was computed from.
pub async fn cluster_ha_plan(id: ClusterId) -> ClientResult<ClusterHaPlan> {
    get_json(&format!("/api/v1/clusters/{id}/ha/plan")).await
}

/// Sets the cluster's host failure limit; a limit above its capacity needs `confirm_overcommit`
/// (else 409 `limit-above-capacity`).
pub async fn set_failure_limit(id: ClusterId, request: &SetFailureLimitRequest) -> ClientResult<ClusterHaPlan> {
    put_body(&format!("/api/v1/clusters/{id}/ha/failure-limit"), request).await
}

/// The planner on a described pool: capacity, and where VMs go after failures (changes nothing).
pub async fn simulate_plan(request: &PlanSimulateRequest) -> ClientResult<PlanSimulateResponse> {
    post_body("/api/v1/ha/plan/simulate", request).await
}

/// Alerts, newest first: open ones (not acknowledged) or all.
pub async fn alerts(query: &AlertQuery) -> ClientResult<Vec<Alert>> {
    let query = serde_urlencoded::to_string(query).map_err(|error| ClientError::Invalid(error.to_string()))?;
    get_json(&format!("/api/v1/alerts?{query}")).await
}

/// Acknowledges an open alert as the signed-in user; 409 when someone already did.
pub async fn acknowledge_alert(id: AlertId) -> ClientResult<Alert> {
    post_json(&format!("/api/v1/alerts/{id}/acknowledge")).await
}

// ---- offerings ---------------------------------------------------------------------------------------

pub async fn create_offering(request: &CreateOfferingRequest) -> ClientResult<ComputeOffering> {
    post_body("/api/v1/offerings", request).await
}

pub async fn update_offering(id: OfferingId, request: &UpdateOfferingRequest) -> ClientResult<ComputeOffering> {
    patch_body(&format!("/api/v1/offerings/{id}"), request).await
}

/// Deletes an offering; refused (409) while VMs use it.
pub async fn delete_offering(id: OfferingId) -> ClientResult<()> {
    delete(&format!("/api/v1/offerings/{id}")).await
}

// ---- users and audit (pool admins) -------------------------------------------------------------------

pub async fn users() -> ClientResult<Vec<User>> {
    get_json("/api/v1/users").await
}

pub async fn create_user(request: &CreateUserRequest) -> ClientResult<User> {
    post_body("/api/v1/users", request).await
}

/// Changes a user's role and/or disables or enables the account.
pub async fn update_user(id: UserId, request: &UpdateUserRequest) -> ClientResult<User> {
    patch_body(&format!("/api/v1/users/{id}"), request).await
}

pub async fn reset_password(id: UserId, new_password: String) -> ClientResult<()> {
    let response =
        send_body(Request::post(&format!("/api/v1/users/{id}/password")), &ResetPasswordRequest { new_password })
            .await?;
    empty_answer(response).await
}

/// The audit log, newest first, filtered by `query`.
pub async fn audit(query: &AuditQuery) -> ClientResult<Vec<AuditEntry>> {
    let query = serde_urlencoded::to_string(query).map_err(|error| ClientError::Invalid(error.to_string()))?;
    get_json(&format!("/api/v1/audit?{query}")).await
}

// ---- out-of-band management (BMC configuration, switches, power) -------------------------------------

/// The host's BMC configuration (the password only as `password_set`); 404 while none is configured.
pub async fn host_oobm(id: HostId) -> ClientResult<api::v1::HostOobm> {
    get_json(&format!("/api/v1/hosts/{id}/oobm")).await
}

/// Stores the host's BMC configuration; a `password` of `None` keeps the stored one.
pub async fn configure_oobm(id: HostId, request: &api::v1::ConfigureOobmRequest) -> ClientResult<api::v1::HostOobm> {
    put_body(&format!("/api/v1/hosts/{id}/oobm"), request).await
}

/// Reads the power state with `request.settings` (not saved) or, without settings, the stored
/// configuration. A BMC that fails answers 200 with the classified error in the result.
pub async fn test_oobm(id: HostId, request: &api::v1::TestOobmRequest) -> ClientResult<api::v1::OobmTestResult> {
    post_body(&format!("/api/v1/hosts/{id}/oobm/test"), request).await
}

/// A power action on the host's BMC (OOBM must be in effect: 409 `oobm-disabled` otherwise; a BMC
/// failure is 502 `oobm-<kind>`).
pub async fn oobm_power(id: HostId, action: api::v1::PowerAction) -> ClientResult<api::v1::PowerActionResult> {
    post_body(&format!("/api/v1/hosts/{id}/oobm/power"), &api::v1::PowerActionRequest { action }).await
}

/// The host's own OOBM switch (409 `oobm-not-configured` while nothing is configured).
pub async fn set_host_oobm_enabled(id: HostId, enabled: bool) -> ClientResult<api::v1::HostOobm> {
    put_body(&format!("/api/v1/hosts/{id}/oobm/enabled"), &api::v1::SetOobmEnabledRequest { enabled }).await
}

pub async fn set_zone_oobm_enabled(id: api::ZoneId, enabled: bool) -> ClientResult<Zone> {
    put_body(&format!("/api/v1/zones/{id}/oobm/enabled"), &api::v1::SetOobmEnabledRequest { enabled }).await
}

pub async fn set_cluster_oobm_enabled(id: ClusterId, enabled: bool) -> ClientResult<Cluster> {
    put_body(&format!("/api/v1/clusters/{id}/oobm/enabled"), &api::v1::SetOobmEnabledRequest { enabled }).await
}

/// Sets a new password for the configured BMC user, on the BMC and in the server's store, or neither.
pub async fn change_oobm_password(id: HostId, new_password: String) -> ClientResult<api::v1::HostOobm> {
    post_body(&format!("/api/v1/hosts/{id}/oobm/password"), &api::v1::ChangeOobmPasswordRequest { new_password }).await
}

// ---- email (pool admins) -----------------------------------------------------------------------------

/// The SMTP settings (the password only as `password_set`).
pub async fn email_settings() -> ClientResult<api::v1::EmailSettings> {
    get_json("/api/v1/settings/email").await
}

/// Saves the SMTP settings; a refusal names the field ("recipients[1]: …").
pub async fn update_email_settings(
    request: &api::v1::UpdateEmailSettingsRequest,
) -> ClientResult<api::v1::EmailSettings> {
    put_body("/api/v1/settings/email", request).await
}

/// Sends a test mail (with the settings in `request`, or the stored ones) and answers what the SMTP
/// server said.
pub async fn test_email(request: &api::v1::TestEmailRequest) -> ClientResult<api::v1::TestEmailResult> {
    post_body("/api/v1/settings/email/test", request).await
}

/// Recent alert mail, newest first.
pub async fn mail_outbox(limit: u32) -> ClientResult<Vec<api::v1::OutboxMail>> {
    get_json(&format!("/api/v1/settings/email/outbox?limit={limit}")).await
}

// ---- HA engine (switches, host HA states, incidents) -------------------------------------------------

/// A host's HA switches, provider, state (with why) and latest transitions.
pub async fn host_ha(id: HostId) -> ClientResult<api::v1::HostHa> {
    get_json(&format!("/api/v1/hosts/{id}/ha")).await
}

pub async fn set_zone_ha(id: api::ZoneId, enabled: bool) -> ClientResult<Zone> {
    put_body(&format!("/api/v1/zones/{id}/ha"), &api::v1::SetHaEnabledRequest { enabled, provider: None }).await
}

/// The cluster's switch; with `include_hosts`, every host of the cluster in the same transaction.
pub async fn set_cluster_ha(
    id: ClusterId,
    enabled: bool,
    include_hosts: bool,
) -> ClientResult<api::v1::ClusterHaSwitched> {
    put_body(&format!("/api/v1/clusters/{id}/ha"), &api::v1::SetClusterHaRequest { enabled, include_hosts }).await
}

/// The cluster's HA switch and timing settings.
pub async fn cluster_ha_settings(id: ClusterId) -> ClientResult<api::v1::ClusterHaSettings> {
    get_json(&format!("/api/v1/clusters/{id}/ha/settings")).await
}

/// Changes the cluster's HA timing settings (absent fields keep their value); a 400
/// `invalid-ha-timing` names the field ("suspect_after_ms: …").
pub async fn update_cluster_ha_settings(
    id: ClusterId,
    request: &api::v1::UpdateHaTimingRequest,
) -> ClientResult<api::v1::ClusterHaSettings> {
    put_body(&format!("/api/v1/clusters/{id}/ha/settings"), request).await
}

/// The host's own switch (the provider follows its hypervisor).
pub async fn set_host_ha(id: HostId, enabled: bool) -> ClientResult<api::v1::HostHa> {
    put_body(&format!("/api/v1/hosts/{id}/ha"), &api::v1::SetHaEnabledRequest { enabled, provider: None }).await
}

/// HA incidents, newest first.
pub async fn ha_incidents(query: &api::v1::HaIncidentQuery) -> ClientResult<Vec<api::v1::HaIncident>> {
    let query = serde_urlencoded::to_string(query).map_err(|error| ClientError::Invalid(error.to_string()))?;
    get_json(&format!("/api/v1/ha/incidents?{query}")).await
}

/// One incident with its timeline, oldest first.
pub async fn ha_incident(id: api::v1::IncidentId) -> ClientResult<api::v1::HaIncidentDetail> {
    get_json(&format!("/api/v1/ha/incidents/{id}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sentences as the server writes them (same `format!` strings, real-looking figures).
    const SERVER_SENTENCES: &[&str] = &[
        "host kvm-a1 failure detected: no network heartbeat for 5012 ms and its storage heartbeat is silent on every \
         storage read",
        "Suspect → Checking: no network heartbeat for 3001 ms",
        "OOBM power OFF sent to kvm-a1 (attempt 1)",
        "fencing attempt 2 not confirmed: OFF failed: BMC unreachable: connection refused",
        "VM web-1 restarted on kvm-a2 (9.8 s after detection)",
        "VM db-1 cannot be restarted: its disks are not all on shared storage",
        "host fenced; 3 VM(s) restarted elsewhere",
        "host kvm-a1 failed: no network heartbeat for 5012 ms; no host can read its storage heartbeat; fencing it",
        "host kvm-a1 is fenced (the BMC reports the host Off after OFF); its VMs restart elsewhere; it stays in \
         maintenance",
        "fencing host kvm-a1 failed (OFF failed: BMC timed out: no answer); retrying in 5 s. Its VMs are not \
         restarted until it is confirmed off or its self-fence deadline has passed",
        "VM web-1 restarted on kvm-a2 (from kvm-a1) 9.8 s after the failure was detected",
        "cluster cluster-a is overcommitted: it can survive 0 host failure(s), its host failure limit is 1",
        "failover capacity of cluster cluster-a dropped from 1 to no plan host failure(s) (host failure limit 1)",
        "primary storage nfs-1 is down: no host can write its heartbeat there; its VMs are stopped and restart when \
         it is back",
        "no live host in cluster cluster-a or its zone carrying tags ssd mounts its storage and accepts VMs",
        "protected VM \"db\" cannot run anywhere even with no failure: no host has 4096 MB memory and 2000 MHz CPU \
         free",
        "OOBM authentication failed for host kvm-a1: its BMC at 10.0.0.5:623 (Ipmi) refused user \"admin\": the BMC \
         refused the credentials: bad password",
        "the BMC is unreachable: connection refused",
        "host kvm-a1 has no OOBM configuration to enable; configure it first",
        "OOBM is disabled for host kvm-a1: off for its zone, its cluster",
        "HA is off for its cluster, the host",
        "limit: must be 0 to 1000",
        "tags: \"fast disk\" must be 1 to 64 characters without spaces",
        "your role (read-only) may not change HA settings",
        "VM \"web-1\" is running; only a stopped VM can be started",
        "kvm-a1 cannot enter maintenance; these VMs have nowhere to go: web-1; db-1",
        "no cluster with id 3f2a",
        "the alert was already acknowledged by admin at 2026-11-22T10:00:00+00:00",
    ];

    /// Whether `message` fits `template`: its literal parts in order, each `{placeholder}` some
    /// non-empty text (how `i18n::server_text` reads the catalog).
    fn fits(template: &str, message: &str) -> bool {
        let mut literals = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("closed placeholder");
            literals.push(&rest[..open]);
            rest = &rest[close + 1..];
        }
        let last = rest;
        let Some(mut message) = message.strip_prefix(literals.first().copied().unwrap_or(last)) else {
            return false;
        };
        if literals.is_empty() {
            return message.is_empty();
        }
        for literal in literals.iter().skip(1).chain([&last]) {
            if literal.is_empty() {
                return !message.is_empty();
            }
            match message.get(1..).and_then(|after| after.find(literal)) {
                Some(at) => message = &message[1 + at + literal.len()..],
                None => return false,
            }
        }
        message.is_empty()
    }

    #[test]
    fn real_server_sentences_have_korean_templates() {
        let catalog: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(include_str!("../locales/ko/server.json")).expect("ko/server.json is JSON");
        let unmatched: Vec<&str> = SERVER_SENTENCES
            .iter()
            .copied()
            .filter(|message| !catalog.keys().any(|template| fits(template, message)))
            .collect();
        assert!(unmatched.is_empty(), "no template in ko/server.json fits:\n{}", unmatched.join("\n"));
    }

    #[test]
    fn english_errors_read_as_the_server_wrote_them() {
        let error = ClientError::Api {
            status: 409,
            error: ApiError { code: "conflict".into(), message: "kvm-a1 is already in maintenance".into() },
        };
        assert_eq!(error.to_string(), "kvm-a1 is already in maintenance");
        assert_eq!(
            ClientError::Network("timed out".into()).to_string(),
            "Cannot reach the management server (timed out)."
        );
    }
}
