//! The Redfish service of a simulated BMC: the subset of DMTF Redfish that real BMCs and sushy-tools'
//! emulator serve for power control. Service root (no authentication, as the standard requires),
//! one ComputerSystem with `PowerState` and the `ComputerSystem.Reset` action (204 on success, 400 with
//! a Base-registry message for a missing or unknown `ResetType`), sessions (`X-Auth-Token`, `Location`)
//! and basic auth (401 otherwise), and an AccountService whose one account's password can be changed.

use super::accounts::{
    ACCOUNT_ID, Accounts, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Principal, Session, SessionRefused,
    validate_password,
};
use crate::{GracefulOutcome, SimHost};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REGISTRY: &str = "Base.1.11";
const SESSIONS_PATH: &str = "/redfish/v1/SessionService/Sessions";
const ACCOUNTS_PATH: &str = "/redfish/v1/AccountService/Accounts";

/// What the handlers of one BMC share.
#[derive(Clone)]
pub(super) struct BmcContext {
    pub host: Arc<SimHost>,
    /// The ComputerSystem's id: the host's name.
    pub system_id: String,
    pub system_uuid: String,
    pub service_uuid: String,
    pub accounts: Arc<Mutex<Accounts>>,
    pub graceful_shutdown_timeout: Duration,
}

impl BmcContext {
    fn system_path(&self) -> String {
        format!("/redfish/v1/Systems/{}", self.system_id)
    }

    fn check_system(&self, id: &str) -> Result<(), RedfishError> {
        if id == self.system_id { Ok(()) } else { Err(RedfishError::not_found("ComputerSystem", id)) }
    }
}

/// The routes of one BMC.
pub(super) fn router(context: BmcContext) -> Router {
    Router::new()
        .route("/redfish", get(redfish_versions))
        .route("/redfish/v1", get(service_root))
        .route("/redfish/v1/Systems", get(systems))
        .route("/redfish/v1/Systems/{id}", get(system))
        .route("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset", post(reset))
        .route("/redfish/v1/SessionService", get(session_service))
        .route(SESSIONS_PATH, get(sessions).post(create_session))
        .route("/redfish/v1/SessionService/Sessions/{id}", get(session).delete(delete_session))
        .route("/redfish/v1/AccountService", get(account_service))
        .route(ACCOUNTS_PATH, get(accounts))
        .route("/redfish/v1/AccountService/Accounts/{id}", get(account).patch(patch_account))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("odata-version"),
            HeaderValue::from_static("4.0"),
        ))
        .with_state(context)
}

/// A Redfish error answer: the status and a Base-registry message in the standard `error` body.
#[derive(Debug)]
pub(super) struct RedfishError {
    status: StatusCode,
    message_id: &'static str,
    message: String,
    resolution: String,
}

impl RedfishError {
    fn new(status: StatusCode, message_id: &'static str, message: String, resolution: &str) -> Self {
        RedfishError { status, message_id, message, resolution: resolution.to_owned() }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "There is no valid session established with the implementation.".into(),
            "Establish a session with valid credentials, or send valid basic-auth credentials.",
        )
    }

    fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The requested resource of type {kind} named '{}' was not found.", shorten(id)),
            "Provide a valid resource identifier and resubmit the request.",
        )
    }

    fn malformed_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.".into(),
            "Ensure that the request body is valid JSON and resubmit the request.",
        )
    }

    fn property_missing(property: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            format!("The property {property} is a required property and must be included in the request."),
            "Ensure that the property is in the request body and has a valid value and resubmit the request.",
        )
    }

    fn property_type(property: &str) -> Self {
        // The value is not repeated: it may be a password.
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueTypeError",
            format!("The value for the property {property} is of a different type than the property can accept."),
            "Correct the value for the property in the request body and resubmit the request.",
        )
    }
}

impl IntoResponse for RedfishError {
    fn into_response(self) -> Response {
        let message_id = format!("{REGISTRY}.{}", self.message_id);
        let body = json!({
            "error": {
                "code": message_id,
                "message": self.message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": message_id,
                    "Message": self.message,
                    "Severity": "Warning",
                    "Resolution": self.resolution,
                }],
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Parapet simulated BMC\""));
        }
        response
    }
}

/// A client-supplied value as it may appear in an error message: bounded in length.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 64;
    if text.chars().count() <= LIMIT { text.to_owned() } else { text.chars().take(LIMIT).collect::<String>() + "…" }
}

/// The caller, authenticated by `X-Auth-Token` (when present) or by HTTP basic auth.
pub(super) struct Authenticated(pub Principal);

impl FromRequestParts<BmcContext> for Authenticated {
    type Rejection = RedfishError;

    async fn from_request_parts(parts: &mut Parts, context: &BmcContext) -> Result<Self, RedfishError> {
        let mut accounts = context.accounts.lock().unwrap();
        if let Some(token) = parts.headers.get("x-auth-token") {
            let token = token.to_str().map_err(|_| RedfishError::unauthorized())?;
            return accounts
                .authenticate_token(token, Instant::now())
                .map(Authenticated)
                .ok_or_else(RedfishError::unauthorized);
        }
        let (username, password) = basic_credentials(&parts.headers).ok_or_else(RedfishError::unauthorized)?;
        accounts.authenticate_password(&username, &password).map(Authenticated).ok_or_else(RedfishError::unauthorized)
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

/// The request body as a JSON object.
fn json_object(body: &Bytes) -> Result<Map<String, Value>, RedfishError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(RedfishError::malformed_json()),
    }
}

/// A string property of a request body.
fn string_property<'a>(object: &'a Map<String, Value>, property: &str) -> Result<&'a str, RedfishError> {
    match object.get(property) {
        None => Err(RedfishError::property_missing(property)),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(RedfishError::property_type(property)),
    }
}

fn link(path: &str) -> Value {
    json!({ "@odata.id": path })
}

fn collection(odata_type: &str, name: &str, path: &str, members: &[String]) -> Json<Value> {
    Json(json!({
        "@odata.type": odata_type,
        "@odata.id": path,
        "Name": name,
        "Members": members.iter().map(|member| link(member)).collect::<Vec<_>>(),
        "Members@odata.count": members.len(),
    }))
}

async fn redfish_versions() -> Json<Value> {
    Json(json!({ "v1": "/redfish/v1/" }))
}

async fn service_root(State(context): State<BmcContext>) -> Json<Value> {
    Json(json!({
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "@odata.id": "/redfish/v1",
        "Id": "RootService",
        "Name": "Root Service",
        "RedfishVersion": "1.11.0",
        "UUID": context.service_uuid,
        "Vendor": "Parapet",
        "Product": "Parapet simulated BMC",
        "Systems": link("/redfish/v1/Systems"),
        "SessionService": link("/redfish/v1/SessionService"),
        "AccountService": link("/redfish/v1/AccountService"),
        "Links": { "Sessions": link(SESSIONS_PATH) },
    }))
}

async fn systems(_: Authenticated, State(context): State<BmcContext>) -> Json<Value> {
    collection(
        "#ComputerSystemCollection.ComputerSystemCollection",
        "Computer System Collection",
        "/redfish/v1/Systems",
        &[context.system_path()],
    )
}

async fn system(
    _: Authenticated,
    State(context): State<BmcContext>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RedfishError> {
    context.check_system(&id)?;
    let host = &context.host;
    let power_state = if host.is_powered_on() { "On" } else { "Off" };
    let path = context.system_path();
    Ok(Json(json!({
        "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
        "@odata.id": path,
        "Id": context.system_id,
        "Name": context.system_id,
        "HostName": host.spec.name,
        "UUID": context.system_uuid,
        "Manufacturer": "Parapet",
        "Model": "Simulated host",
        "SystemType": "Physical",
        "PowerState": power_state,
        "Status": { "State": "Enabled", "Health": "OK" },
        "ProcessorSummary": { "LogicalProcessorCount": host.spec.capacity.cpu_cores },
        "MemorySummary": { "TotalSystemMemoryGiB": host.spec.capacity.memory_mb / 1024 },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{path}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": ResetType::ALL.iter().map(|reset| reset.name()).collect::<Vec<_>>(),
            }
        },
    })))
}

/// The reset types this BMC carries out. (Nmi is not among them: a simulated host has no kernel to
/// interrupt, so it is refused like any other unsupported value.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    PowerCycle,
}

impl ResetType {
    const ALL: [ResetType; 6] = [
        ResetType::On,
        ResetType::ForceOff,
        ResetType::GracefulShutdown,
        ResetType::GracefulRestart,
        ResetType::ForceRestart,
        ResetType::PowerCycle,
    ];

    fn name(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::PowerCycle => "PowerCycle",
        }
    }

    fn parse(text: &str) -> Option<ResetType> {
        Self::ALL.into_iter().find(|reset| reset.name() == text)
    }
}

async fn reset(
    Authenticated(principal): Authenticated,
    State(context): State<BmcContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, RedfishError> {
    context.check_system(&id)?;
    let action = "ComputerSystem.Reset";
    let body = json_object(&body)?;
    let allowable = ResetType::ALL.map(ResetType::name).join(", ");
    let reset = match body.get("ResetType") {
        None => {
            return Err(RedfishError::new(
                StatusCode::BAD_REQUEST,
                "ActionParameterMissing",
                format!("The action {action} requires the parameter ResetType to be present in the request body."),
                &format!("Supply ResetType (one of {allowable}) and resubmit the request."),
            ));
        }
        Some(Value::String(text)) => ResetType::parse(text).ok_or_else(|| {
            RedfishError::new(
                StatusCode::BAD_REQUEST,
                "ActionParameterValueNotInList",
                format!(
                    "The value '{}' for the parameter ResetType in the action {action} is not in the list of acceptable values.",
                    shorten(text)
                ),
                &format!("Choose ResetType from: {allowable}."),
            )
        })?,
        Some(other) => {
            return Err(RedfishError::new(
                StatusCode::BAD_REQUEST,
                "ActionParameterValueTypeError",
                format!(
                    "The value '{}' for the parameter ResetType in the action {action} is of a different type than the parameter can accept.",
                    shorten(&other.to_string())
                ),
                &format!("ResetType is a string, one of {allowable}."),
            ));
        }
    };
    tracing::info!(
        host = %context.host.spec.name,
        user = %principal.username,
        reset = reset.name(),
        "simulated BMC: reset"
    );
    let host = context.host.clone();
    let timeout = context.graceful_shutdown_timeout;
    match reset {
        ResetType::On => host.power_on(),
        ResetType::ForceOff => host.power_off(),
        // A simulated host has no power supply to drain: a power cycle is a forced restart.
        ResetType::ForceRestart | ResetType::PowerCycle => {
            host.power_off();
            host.power_on();
        }
        // Like pressing the power button: the request is accepted at once and the OS shuts down after.
        ResetType::GracefulShutdown => {
            tokio::spawn(async move { host.graceful_shutdown(timeout).await });
        }
        ResetType::GracefulRestart => {
            tokio::spawn(async move {
                if host.graceful_shutdown(timeout).await != GracefulOutcome::Superseded {
                    host.power_on();
                }
            });
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn session_service(_: Authenticated, State(context): State<BmcContext>) -> Json<Value> {
    let timeout = context.accounts.lock().unwrap().session_timeout();
    Json(json!({
        "@odata.type": "#SessionService.v1_1_8.SessionService",
        "@odata.id": "/redfish/v1/SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": timeout.as_secs(),
        "Sessions": link(SESSIONS_PATH),
    }))
}

fn session_resource(session: &Session) -> Value {
    json!({
        "@odata.type": "#Session.v1_3_0.Session",
        "@odata.id": format!("{SESSIONS_PATH}/{}", session.id),
        "Id": session.id,
        "Name": "User Session",
        "UserName": session.username,
    })
}

async fn sessions(_: Authenticated, State(context): State<BmcContext>) -> Json<Value> {
    let sessions = context.accounts.lock().unwrap().sessions(Instant::now());
    let members: Vec<String> = sessions.iter().map(|session| format!("{SESSIONS_PATH}/{}", session.id)).collect();
    collection("#SessionCollection.SessionCollection", "Session Collection", SESSIONS_PATH, &members)
}

/// Log in (no authentication needed): 201 with the token in `X-Auth-Token` and the session in
/// `Location`.
async fn create_session(State(context): State<BmcContext>, body: Bytes) -> Result<Response, RedfishError> {
    let body = json_object(&body)?;
    let username = string_property(&body, "UserName")?;
    let password = string_property(&body, "Password")?;
    let created = context.accounts.lock().unwrap().create_session(username, password, Instant::now());
    let (session, token) = match created {
        Ok(created) => created,
        Err(SessionRefused::BadCredentials) => return Err(RedfishError::unauthorized()),
        Err(SessionRefused::LimitReached) => {
            return Err(RedfishError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.".into(),
                "Reduce the number of other sessions (log out of unused ones) before trying to establish the session.",
            ));
        }
    };
    let location = format!("{SESSIONS_PATH}/{}", session.id);
    let mut response = (StatusCode::CREATED, Json(session_resource(&session))).into_response();
    let headers = response.headers_mut();
    // Both are made of letters, digits and slashes, always valid header values.
    if let (Ok(token), Ok(location)) = (HeaderValue::from_str(&token), HeaderValue::from_str(&location)) {
        headers.insert("x-auth-token", token);
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn session(
    _: Authenticated,
    State(context): State<BmcContext>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RedfishError> {
    let session = context.accounts.lock().unwrap().session(&id, Instant::now());
    session.map(|session| Json(session_resource(&session))).ok_or_else(|| RedfishError::not_found("Session", &id))
}

/// Log out.
async fn delete_session(
    _: Authenticated,
    State(context): State<BmcContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, RedfishError> {
    if context.accounts.lock().unwrap().delete_session(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(RedfishError::not_found("Session", &id))
    }
}

async fn account_service(_: Authenticated) -> Json<Value> {
    Json(json!({
        "@odata.type": "#AccountService.v1_5_0.AccountService",
        "@odata.id": "/redfish/v1/AccountService",
        "Id": "AccountService",
        "Name": "Account Service",
        "ServiceEnabled": true,
        "MinPasswordLength": MIN_PASSWORD_LENGTH,
        "MaxPasswordLength": MAX_PASSWORD_LENGTH,
        "Accounts": link(ACCOUNTS_PATH),
    }))
}

async fn accounts(_: Authenticated) -> Json<Value> {
    collection(
        "#ManagerAccountCollection.ManagerAccountCollection",
        "Accounts Collection",
        ACCOUNTS_PATH,
        &[format!("{ACCOUNTS_PATH}/{ACCOUNT_ID}")],
    )
}

fn account_resource(username: &str) -> Value {
    json!({
        "@odata.type": "#ManagerAccount.v1_4_0.ManagerAccount",
        "@odata.id": format!("{ACCOUNTS_PATH}/{ACCOUNT_ID}"),
        "Id": ACCOUNT_ID,
        "Name": "User Account",
        "UserName": username,
        // Redfish: the password always reads as null.
        "Password": null,
        "RoleId": "Administrator",
        "Enabled": true,
        "Locked": false,
    })
}

async fn account(
    _: Authenticated,
    State(context): State<BmcContext>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RedfishError> {
    if id != ACCOUNT_ID {
        return Err(RedfishError::not_found("ManagerAccount", &id));
    }
    let username = context.accounts.lock().unwrap().username().to_owned();
    Ok(Json(account_resource(&username)))
}

/// Change the account's password (`{"Password": "…"}`); open sessions stay valid.
async fn patch_account(
    Authenticated(principal): Authenticated,
    State(context): State<BmcContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, RedfishError> {
    if id != ACCOUNT_ID {
        return Err(RedfishError::not_found("ManagerAccount", &id));
    }
    let body = json_object(&body)?;
    for property in body.keys() {
        // Annotations such as @odata.etag are not properties.
        if property == "Password" || property.starts_with('@') {
            continue;
        }
        let known = ["Id", "Name", "UserName", "RoleId", "Enabled", "Locked"].contains(&property.as_str());
        return Err(if known {
            RedfishError::new(
                StatusCode::BAD_REQUEST,
                "PropertyNotWritable",
                format!("The property {property} is a read only property and cannot be assigned a value."),
                "Remove the property from the request body and resubmit the request.",
            )
        } else {
            RedfishError::new(
                StatusCode::BAD_REQUEST,
                "PropertyUnknown",
                format!("The property {} is not in the list of valid properties for the resource.", shorten(property)),
                "Remove the unknown property from the request body and resubmit the request.",
            )
        });
    }
    let password = string_property(&body, "Password")?;
    validate_password(password).map_err(|reason| {
        RedfishError::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueFormatError",
            format!("The value for the property Password is of a different format than the property can accept: it {reason}."),
            "Correct the value for the property in the request body and resubmit the request.",
        )
    })?;
    let mut accounts = context.accounts.lock().unwrap();
    accounts.set_password(password);
    tracing::info!(
        host = %context.host.spec.name,
        user = %principal.username,
        "simulated BMC: account password changed"
    );
    Ok(Json(account_resource(accounts.username())))
}

async fn not_found(uri: axum::http::Uri) -> RedfishError {
    RedfishError::new(
        StatusCode::NOT_FOUND,
        "ResourceMissingAtURI",
        format!("The resource at the URI '{}' was not found.", shorten(uri.path())),
        "Place a valid resource at the URI or correct the URI and resubmit the request.",
    )
}

async fn method_not_allowed() -> RedfishError {
    RedfishError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "OperationNotAllowed",
        "The HTTP method is not allowed on this resource.".into(),
        "Use an HTTP method the resource supports and resubmit the request.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_and_other_schemes_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YWRtaW46cGE6c3M="));
        assert_eq!(basic_credentials(&headers), Some(("admin".into(), "pa:ss".into())));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer YWRtaW46cGFzcw=="));
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn reset_types_round_trip_and_nmi_is_not_offered() {
        for reset in ResetType::ALL {
            assert_eq!(ResetType::parse(reset.name()), Some(reset));
        }
        assert_eq!(ResetType::parse("Nmi"), None);
        assert_eq!(ResetType::parse("forceoff"), None, "Redfish enumerations are case-sensitive");
    }
}
