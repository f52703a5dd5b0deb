//! The Redfish driver (DMTF Redfish over HTTP(S), with reqwest): `GET Systems/{id}` for STATUS,
//! `Actions/ComputerSystem.Reset` for power commands, `AccountService` for password changes. Basic
//! authentication on every request, or a `SessionService` session opened per operation and closed
//! after it. A self-signed certificate is accepted only when the endpoint says so.
//!
//! Answers are classified: 401/403 `Auth`; 501 (and 400/405 for a reset type) `Unsupported`; other
//! failures `Protocol`; no connection `Unreachable`; no answer in time `Timeout`.

use super::{Bmc, BmcEndpoint, BmcPower, OobmError, PowerCommand, scrub};
use crate::events::error_chain;
use crate::secrets::Secret;
use api::v1::RedfishAuth;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use std::time::Duration;

const SERVICE_ROOT: &str = "/redfish/v1";

pub struct RedfishBmc {
    client: reqwest::Client,
    base: String,
    endpoint: BmcEndpoint,
    timeout: Duration,
    /// The `@odata.id` of this host's ComputerSystem, found once.
    system: tokio::sync::OnceCell<String>,
}

/// How one operation's requests authenticate.
enum Login {
    Basic,
    /// A session: its token, and the URL that ends it.
    Session {
        token: Secret,
        location: Option<String>,
    },
}

impl RedfishBmc {
    pub fn new(endpoint: BmcEndpoint, timeout: Duration) -> Result<RedfishBmc, OobmError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .danger_accept_invalid_certs(endpoint.redfish_https && endpoint.redfish_accept_self_signed)
            // A BMC never redirects a client somewhere it should send credentials to.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| OobmError::Protocol(format!("cannot set up an HTTP client: {}", error_chain(&error))))?;
        let scheme = if endpoint.redfish_https { "https" } else { "http" };
        let base = format!("{scheme}://{}:{}", endpoint.url_host(), endpoint.port);
        Ok(RedfishBmc { client, base, endpoint, timeout, system: tokio::sync::OnceCell::new() })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn request(&self, method: Method, path: &str, login: &Login) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path)).header("Accept", "application/json");
        match login {
            Login::Basic => builder.basic_auth(&self.endpoint.username, Some(self.endpoint.password.expose())),
            Login::Session { token, .. } => builder.header("X-Auth-Token", token.expose()),
        }
    }

    async fn login(&self) -> Result<Login, OobmError> {
        if self.endpoint.redfish_auth == RedfishAuth::Basic {
            return Ok(Login::Basic);
        }
        let body = serde_json::json!({
            "UserName": self.endpoint.username,
            "Password": self.endpoint.password.expose(),
        });
        let response = self
            .client
            .post(self.url(&format!("{SERVICE_ROOT}/SessionService/Sessions")))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            return Err(OobmError::Unsupported(format!(
                "the BMC has no Redfish SessionService (HTTP {status}); use basic authentication"
            )));
        }
        let response = self.check(response, "opening a session").await?;
        let token = response
            .headers()
            .get("X-Auth-Token")
            .and_then(|value| value.to_str().ok())
            .map(Secret::new)
            .ok_or_else(|| OobmError::Protocol("the BMC opened a session without an X-Auth-Token".into()))?;
        let location =
            response.headers().get("Location").and_then(|value| value.to_str().ok()).map(|text| text.to_owned());
        Ok(Login::Session { token, location })
    }

    /// End a session (best effort: BMCs expire idle sessions anyway, and the operation's outcome
    /// does not depend on it).
    async fn logout(&self, login: Login) {
        if let Login::Session { location: Some(location), .. } = &login {
            match self.request(Method::DELETE, location, &login).send().await {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => tracing::debug!(status = %response.status(), "the BMC did not close the session"),
                Err(error) => tracing::debug!(error = %self.transport_error(&error), "cannot close a BMC session"),
            }
        }
    }

    /// Run `operation` within one login.
    async fn with_login<T>(&self, operation: impl AsyncFnOnce(&Login) -> Result<T, OobmError>) -> Result<T, OobmError> {
        let login = self.login().await?;
        let result = operation(&login).await;
        self.logout(login).await;
        result
    }

    /// A reqwest failure (no answer at all), classified.
    fn transport_error(&self, error: &reqwest::Error) -> OobmError {
        let chain = scrub(&error_chain(error), &[&self.endpoint.password]);
        if error.is_timeout() {
            return OobmError::Timeout(self.timeout);
        }
        let lower = chain.to_lowercase();
        if lower.contains("certificate") || lower.contains("invalidcertificate") || lower.contains("unknownissuer") {
            return OobmError::Protocol(format!(
                "the BMC's TLS certificate is not trusted ({chain}); if it is self-signed, set \
                 redfish_accept_self_signed"
            ));
        }
        if error.is_connect() || error.is_request() {
            return OobmError::Unreachable(chain);
        }
        OobmError::Protocol(chain)
    }

    /// A response's error status, classified with the BMC's own message; a success passes through.
    async fn check(&self, response: Response, doing: &str) -> Result<Response, OobmError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let detail = scrub(&redfish_message(&body).unwrap_or_default(), &[&self.endpoint.password]);
        let text = if detail.is_empty() {
            format!("{doing}: HTTP {status}")
        } else {
            format!("{doing}: HTTP {status}: {detail}")
        };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => OobmError::Auth(text),
            StatusCode::NOT_IMPLEMENTED => OobmError::Unsupported(text),
            _ => OobmError::Protocol(text),
        })
    }

    async fn get_json(&self, path: &str, login: &Login, doing: &str) -> Result<(Value, Option<String>), OobmError> {
        let response =
            self.request(Method::GET, path, login).send().await.map_err(|error| self.transport_error(&error))?;
        let response = self.check(response, doing).await?;
        let etag = response.headers().get("ETag").and_then(|value| value.to_str().ok()).map(|text| text.to_owned());
        let value = response
            .json::<Value>()
            .await
            .map_err(|error| OobmError::Protocol(format!("{doing}: the answer is not JSON ({error})")))?;
        Ok((value, etag))
    }

    /// The ComputerSystem's path: the configured member, or the only one.
    async fn system_path(&self, login: &Login) -> Result<String, OobmError> {
        if let Some(path) = self.system.get() {
            return Ok(path.clone());
        }
        let path = match &self.endpoint.redfish_system_id {
            Some(id) => format!("{SERVICE_ROOT}/Systems/{id}"),
            None => {
                let (systems, _) =
                    self.get_json(&format!("{SERVICE_ROOT}/Systems"), login, "listing the systems").await?;
                let members = member_paths(&systems);
                match members.as_slice() {
                    [only] => only.clone(),
                    [] => return Err(OobmError::Protocol("the BMC lists no system under /redfish/v1/Systems".into())),
                    several => {
                        return Err(OobmError::Protocol(format!(
                            "the BMC lists {} systems ({}); set redfish_system_id to the host's one",
                            several.len(),
                            several.join(", ")
                        )));
                    }
                }
            }
        };
        let _ = self.system.set(path.clone());
        Ok(path)
    }

    async fn read_power(&self, login: &Login) -> Result<BmcPower, OobmError> {
        let path = self.system_path(login).await?;
        let (system, _) = self.get_json(&path, login, "reading the power state").await?;
        parse_power_state(&system)
    }

    async fn reset(&self, login: &Login, command: PowerCommand) -> Result<(), OobmError> {
        let reset_type = match command {
            PowerCommand::On => "On",
            PowerCommand::ForceOff => "ForceOff",
            PowerCommand::GracefulShutdown => "GracefulShutdown",
            PowerCommand::ForceRestart => "ForceRestart",
            PowerCommand::PowerCycle => "PowerCycle",
        };
        let path = self.system_path(login).await?;
        let target = format!("{path}/Actions/ComputerSystem.Reset");
        let response = self
            .request(Method::POST, &target, login)
            .json(&serde_json::json!({ "ResetType": reset_type }))
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        match self.check(response, &format!("reset {reset_type}")).await {
            Ok(_) => Ok(()),
            // A BMC that does not know a reset type answers 400 (invalid value) or 405 as often as 501.
            Err(OobmError::Protocol(text))
                if matches!(status, StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED) =>
            {
                Err(OobmError::Unsupported(text))
            }
            Err(error) => Err(error),
        }
    }

    async fn set_password(&self, login: &Login, new_password: &Secret) -> Result<(), OobmError> {
        let scrub_both = |text: String| scrub(&text, &[&self.endpoint.password, new_password]);
        let accounts_path = format!("{SERVICE_ROOT}/AccountService/Accounts");
        let (accounts, _) = match self.get_json(&accounts_path, login, "listing the BMC accounts").await {
            Err(OobmError::Protocol(text)) if text.contains("404") => {
                return Err(OobmError::Unsupported("the BMC has no Redfish AccountService".into()));
            }
            other => other?,
        };
        for member in member_paths(&accounts) {
            let (account, etag) = self.get_json(&member, login, "reading a BMC account").await?;
            if account.get("UserName").and_then(Value::as_str) != Some(self.endpoint.username.as_str()) {
                continue;
            }
            let mut request = self
                .request(Method::PATCH, &member, login)
                .json(&serde_json::json!({ "Password": new_password.expose() }));
            if let Some(etag) = etag {
                request = request.header("If-Match", etag);
            }
            let response = request.send().await.map_err(|error| self.transport_error(&error))?;
            return match self.check(response, "setting the new password").await {
                Ok(_) => Ok(()),
                Err(OobmError::Protocol(text)) => {
                    Err(OobmError::Protocol(scrub_both(format!("the BMC refused the new password: {text}"))))
                }
                Err(error) => Err(error),
            };
        }
        Err(OobmError::Protocol(format!(
            "the BMC has no account named {:?} under {accounts_path}",
            self.endpoint.username
        )))
    }
}

#[async_trait::async_trait]
impl Bmc for RedfishBmc {
    async fn power_state(&self) -> Result<BmcPower, OobmError> {
        self.with_login(async |login| self.read_power(login).await).await
    }

    async fn send(&self, command: PowerCommand) -> Result<(), OobmError> {
        self.with_login(async |login| self.reset(login, command).await).await
    }

    async fn change_password(&self, new_password: &Secret) -> Result<(), OobmError> {
        self.with_login(async |login| self.set_password(login, new_password).await).await
    }
}

/// The `@odata.id` of each member of a Redfish collection.
fn member_paths(collection: &Value) -> Vec<String> {
    collection
        .get("Members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|member| member.get("@odata.id").and_then(Value::as_str).map(|path| path.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_power_state(system: &Value) -> Result<BmcPower, OobmError> {
    match system.get("PowerState").and_then(Value::as_str) {
        Some("Off") => Ok(BmcPower::Off),
        Some("On" | "PoweringOn" | "PoweringOff" | "Paused") => Ok(BmcPower::On),
        Some(other) => Err(OobmError::Protocol(format!("the BMC reports an unknown PowerState {other:?}"))),
        None => Err(OobmError::Protocol("the BMC's system has no PowerState".into())),
    }
}

/// The message of a Redfish error body (`{"error": {"message": ..., "@Message.ExtendedInfo": [...]}}`).
fn redfish_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    let extended = error
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .and_then(|infos| infos.iter().find_map(|info| info.get("Message").and_then(Value::as_str)));
    extended.or_else(|| error.get("message").and_then(Value::as_str)).map(|text| text.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    //! The driver against a small Redfish service in-process, for what the sushy-tools emulator lacks
    //! (SessionService, AccountService). The emulator covers the rest in `tests/oobm.rs`.
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Service {
        password: Mutex<String>,
        power: Mutex<String>,
        sessions_opened: Mutex<u32>,
        sessions_closed: Mutex<u32>,
        refuse_passwords_shorter_than: usize,
    }

    fn token_ok(service: &Service, headers: &HeaderMap) -> bool {
        headers.get("X-Auth-Token").and_then(|value| value.to_str().ok()) == Some("token-1")
            && *service.sessions_opened.lock().unwrap() > *service.sessions_closed.lock().unwrap()
    }

    async fn start(service: Arc<Service>) -> String {
        let app = Router::new()
            .route(
                "/redfish/v1/SessionService/Sessions",
                post(|State(service): State<Arc<Service>>, Json(body): Json<Value>| async move {
                    if body["Password"].as_str() != Some(service.password.lock().unwrap().as_str()) {
                        return (AxumStatus::UNAUTHORIZED, HeaderMap::new(), "{}".to_owned());
                    }
                    *service.sessions_opened.lock().unwrap() += 1;
                    let mut headers = HeaderMap::new();
                    headers.insert("X-Auth-Token", "token-1".parse().unwrap());
                    headers.insert("Location", "/redfish/v1/SessionService/Sessions/1".parse().unwrap());
                    (AxumStatus::CREATED, headers, "{}".to_owned())
                }),
            )
            .route(
                "/redfish/v1/SessionService/Sessions/1",
                axum::routing::delete(|State(service): State<Arc<Service>>| async move {
                    *service.sessions_closed.lock().unwrap() += 1;
                    AxumStatus::NO_CONTENT
                }),
            )
            .route(
                "/redfish/v1/Systems",
                get(|| async { Json(serde_json::json!({"Members": [{"@odata.id": "/redfish/v1/Systems/node"}]})) }),
            )
            .route(
                "/redfish/v1/Systems/node",
                get(|State(service): State<Arc<Service>>, headers: HeaderMap| async move {
                    if !token_ok(&service, &headers) {
                        return Err(AxumStatus::UNAUTHORIZED);
                    }
                    Ok(Json(serde_json::json!({"PowerState": *service.power.lock().unwrap()})))
                }),
            )
            .route(
                "/redfish/v1/Systems/node/Actions/ComputerSystem.Reset",
                post(|State(service): State<Arc<Service>>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    if !token_ok(&service, &headers) {
                        return AxumStatus::UNAUTHORIZED;
                    }
                    match body["ResetType"].as_str() {
                        Some("ForceOff") => *service.power.lock().unwrap() = "Off".into(),
                        Some("On") => *service.power.lock().unwrap() = "On".into(),
                        _ => return AxumStatus::BAD_REQUEST,
                    }
                    AxumStatus::NO_CONTENT
                }),
            )
            .route(
                "/redfish/v1/AccountService/Accounts",
                get(|| async {
                    Json(serde_json::json!({"Members": [
                        {"@odata.id": "/redfish/v1/AccountService/Accounts/1"},
                        {"@odata.id": "/redfish/v1/AccountService/Accounts/2"}]}))
                }),
            )
            .route(
                "/redfish/v1/AccountService/Accounts/{id}",
                get(|axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    let name = if id == 1 { "operator" } else { "admin" };
                    ([("ETag", "\"e1\"")], Json(serde_json::json!({"UserName": name})))
                })
                .patch(
                    |State(service): State<Arc<Service>>,
                     axum::extract::Path(id): axum::extract::Path<u32>,
                     headers: HeaderMap,
                     Json(body): Json<Value>| async move {
                        if !token_ok(&service, &headers) || id != 2 {
                            return (AxumStatus::UNAUTHORIZED, Json(serde_json::json!({})));
                        }
                        let new = body["Password"].as_str().unwrap_or_default().to_owned();
                        if new.len() < service.refuse_passwords_shorter_than {
                            let error = serde_json::json!({"error": {"message":
                                format!("password {new} does not meet the policy")}});
                            return (AxumStatus::BAD_REQUEST, Json(error));
                        }
                        assert_eq!(headers.get("If-Match").unwrap(), "\"e1\"");
                        *service.password.lock().unwrap() = new;
                        (AxumStatus::OK, Json(serde_json::json!({})))
                    },
                ),
            )
            .with_state(service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("{port}")
    }

    fn endpoint(port: &str, password: &str) -> BmcEndpoint {
        BmcEndpoint {
            driver: api::v1::OobmDriver::Redfish,
            address: "127.0.0.1".into(),
            port: port.parse().unwrap(),
            username: "admin".into(),
            password: Secret::new(password),
            ipmi_cipher_suite: 3,
            redfish_https: false,
            redfish_accept_self_signed: false,
            redfish_auth: RedfishAuth::Session,
            redfish_system_id: None,
        }
    }

    #[tokio::test]
    async fn session_auth_opens_uses_and_closes_a_session() {
        let service = Arc::new(Service {
            password: Mutex::new("s3cret".into()),
            power: Mutex::new("On".into()),
            ..Service::default()
        });
        let port = start(service.clone()).await;
        let bmc = RedfishBmc::new(endpoint(&port, "s3cret"), Duration::from_secs(5)).unwrap();
        assert_eq!(bmc.power_state().await.unwrap(), BmcPower::On);
        bmc.send(PowerCommand::ForceOff).await.unwrap();
        assert_eq!(bmc.power_state().await.unwrap(), BmcPower::Off);
        assert_eq!(*service.sessions_opened.lock().unwrap(), 3);
        assert_eq!(*service.sessions_closed.lock().unwrap(), 3, "every session is closed after its operation");
        let error = bmc.send(PowerCommand::PowerCycle).await.unwrap_err();
        assert!(matches!(error, OobmError::Unsupported(_)), "{error:?}");

        let wrong = RedfishBmc::new(endpoint(&port, "guess"), Duration::from_secs(5)).unwrap();
        let error = wrong.power_state().await.unwrap_err();
        assert!(matches!(error, OobmError::Auth(_)), "{error:?}");
        assert!(!error.to_string().contains("guess"));
    }

    #[tokio::test]
    async fn a_password_change_patches_the_configured_account_and_never_echoes_it() {
        let service = Arc::new(Service {
            password: Mutex::new("s3cret".into()),
            power: Mutex::new("On".into()),
            refuse_passwords_shorter_than: 8,
            ..Service::default()
        });
        let port = start(service.clone()).await;
        let bmc = RedfishBmc::new(endpoint(&port, "s3cret"), Duration::from_secs(5)).unwrap();
        let error = bmc.change_password(&Secret::new("short")).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, OobmError::Protocol(_)) && text.contains("policy"), "{text}");
        assert!(!text.contains("short") && !text.contains("s3cret"), "no password in {text}");
        bmc.change_password(&Secret::new("long-enough-1")).await.unwrap();
        assert_eq!(*service.password.lock().unwrap(), "long-enough-1");
    }

    #[test]
    fn power_states_and_error_messages_parse() {
        assert_eq!(parse_power_state(&serde_json::json!({"PowerState": "Off"})).unwrap(), BmcPower::Off);
        assert_eq!(parse_power_state(&serde_json::json!({"PowerState": "PoweringOff"})).unwrap(), BmcPower::On);
        assert!(parse_power_state(&serde_json::json!({})).is_err());
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"general",
            "@Message.ExtendedInfo":[{"Message":"The action is not supported"}]}}"#;
        assert_eq!(redfish_message(body).as_deref(), Some("The action is not supported"));
        assert_eq!(redfish_message("not json"), None);
    }
}
