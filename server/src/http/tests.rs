//! Router tests without a socket: `router(state).oneshot(request)`.

use super::*;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

const PASSWORD: &str = "test-password-1";

async fn test_state() -> (AppState, tempfile::TempDir) {
    crate::state::test_state(PASSWORD).await
}

fn request(method: &str, uri: &str, cookie: Option<&str>, body: Option<serde_json::Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if method != "GET" {
        builder = builder.header(api::v1::CSRF_HEADER, "1");
    }
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    match body {
        Some(json) => {
            builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(json.to_string())).unwrap()
        }
        None => builder.body(Body::empty()).unwrap(),
    }
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let response = router(state.clone(), None).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

async fn login(state: &AppState) -> String {
    let body = serde_json::json!({"username": "admin", "password": PASSWORD});
    let (status, headers, _) = send(state, request("POST", "/api/v1/auth/login", None, Some(body))).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_me_and_sign_out_revokes_the_token() {
    let (state, _dir) = test_state().await;
    let cookie = login(&state).await;
    let (status, _, me) = send(&state, request("GET", "/api/v1/auth/me", Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "pool-admin");

    let (status, headers, _) = send(&state, request("POST", "/api/v1/auth/logout", Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
    let (status, _, _) = send(&state, request("GET", "/api/v1/auth/me", Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token must not outlive sign-out");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_strict() {
    let (state, _dir) = test_state().await;
    let body = serde_json::json!({"username": "admin", "password": PASSWORD});
    let (_, headers, _) = send(&state, request("POST", "/api/v1/auth/login", None, Some(body))).await;
    let cookie = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age=900"),
        "{cookie}"
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer() {
    let (state, _dir) = test_state().await;
    for (username, password) in [("admin", "nope"), ("ghost", PASSWORD)] {
        let body = serde_json::json!({"username": username, "password": password});
        let (status, headers, error) = send(&state, request("POST", "/api/v1/auth/login", None, Some(body))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error["message"], "wrong username or password");
        assert!(headers.get(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn bad_input_is_a_400_that_names_what_is_wrong() {
    let (state, _dir) = test_state().await;
    let (status, _, error) =
        send(&state, request("POST", "/api/v1/auth/login", None, Some(serde_json::json!({"username": "admin"})))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().contains("password"), "{error}");

    let cookie = login(&state).await;
    let (status, _, error) = send(&state, request("GET", "/api/v1/hosts/not-a-uuid", Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid-path");

    let (status, _, error) = send(&state, request("GET", "/api/v1/no-such-thing", Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error["message"].as_str().unwrap().contains("/api/v1/no-such-thing"));

    let missing = "/api/v1/vms/00000000-0000-0000-0000-000000000001";
    let (status, _, error) = send(&state, request("GET", missing, Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error["message"].as_str().unwrap().contains("00000000-0000-0000-0000-000000000001"));
}

#[tokio::test]
async fn mutations_without_the_csrf_header_are_forbidden() {
    let (state, _dir) = test_state().await;
    let cookie = login(&state).await;
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/logout")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (status, _, error) = send(&state, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "csrf-header-missing");
    let (status, _, _) = send(&state, super::tests::request("GET", "/api/v1/auth/me", Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::OK, "the refused logout must not have signed the user out");
}

#[tokio::test]
async fn probes_answer() {
    let (state, _dir) = test_state().await;
    let (status, _, body) = send(&state, request("GET", "/healthz", None, None)).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, _, body) = send(&state, request("GET", "/readyz", None, None)).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
    state.db.close().await;
    let (status, _, _) = send(&state, request("GET", "/readyz", None, None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_vm_action_on_a_disconnected_host_fails_at_once_and_clearly() {
    let (state, _dir) = test_state().await;
    let vm = state.db.vm_fetch(host_with_vm(&state).await.vm).await.unwrap().unwrap();
    let cookie = login(&state).await;
    let path = format!("/api/v1/vms/{}/start", vm.id);
    let (status, _, error) = send(&state, request("POST", &path, Some(&cookie), None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error["message"].as_str().unwrap().contains("not connected"), "{error}");
    let after = state.db.vm_fetch(vm.id).await.unwrap().unwrap();
    assert_eq!(after.state, api::v1::VmState::Stopped, "a refused command must leave the VM as it was");
}

#[tokio::test]
async fn console_deep_links_get_index_html_but_unknown_api_paths_stay_json_404s() {
    let (state, _dir) = test_state().await;
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<html>console</html>").unwrap();
    std::fs::write(web.path().join("app.js"), "// js").unwrap();
    let app = router(state, Some(web.path()));
    for path in ["/", "/hosts/00000000-0000-0000-0000-000000000001", "/login"] {
        let response = app.clone().oneshot(request("GET", path, None, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"<html>console</html>", "{path}");
    }
    let response = app.clone().oneshot(request("GET", "/app.js", None, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.oneshot(request("GET", "/api/v1/nothing-here", None, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
}

/// The statuses each role must get from each route: anonymous, read-only, vm-operator,
/// pool-operator, pool-admin. Every route of `api_routes()` must have a row; a route without one fails
/// the test, so nobody can add a route without deciding who may call it.
const MATRIX: &[(&str, [u16; 5], &str)] = &[
    ("POST /auth/login", [401, 401, 401, 401, 401], r#"{"username":"nobody","password":"wrong"}"#),
    ("POST /auth/logout", [204, 204, 204, 204, 204], ""),
    ("POST /auth/refresh", [401, 200, 200, 200, 200], ""),
    (
        "POST /auth/password",
        [401, 400, 400, 400, 400],
        r#"{"current_password":"not-it-at-all","new_password":"a-new-password-1"}"#,
    ),
    ("GET /auth/me", [401, 200, 200, 200, 200], ""),
    // Everyone signed in chooses their own console language.
    ("PUT /account/language", [401, 204, 204, 204, 204], r#"{"language":"ko"}"#),
    ("GET /users", [401, 403, 403, 403, 200], ""),
    (
        "POST /users",
        [401, 403, 403, 403, 201],
        r#"{"username":"fresh-user","password":"long-enough-pass","role":"read-only"}"#,
    ),
    ("PATCH /users/{id}", [401, 403, 403, 403, 200], r#"{"role":"vm-operator"}"#),
    ("POST /users/{id}/password", [401, 403, 403, 403, 204], r#"{"new_password":"another-pass-123"}"#),
    ("GET /audit", [401, 403, 403, 200, 200], ""),
    ("GET /inventory", [401, 200, 200, 200, 200], ""),
    ("GET /zones", [401, 200, 200, 200, 200], ""),
    ("GET /clusters", [401, 200, 200, 200, 200], ""),
    ("GET /hosts", [401, 200, 200, 200, 200], ""),
    ("GET /hosts/{id}", [401, 200, 200, 200, 200], ""),
    ("PATCH /hosts/{id}", [401, 403, 403, 200, 200], r#"{"tags":["ssd"]}"#),
    // The live plan is for everyone signed in.
    ("GET /clusters/{id}/ha/plan", [401, 200, 200, 200, 200], ""),
    // The only host is down, so the capacity is 0: a limit of 0 needs no confirmation.
    ("PUT /clusters/{id}/ha/failure-limit", [401, 403, 403, 200, 200], r#"{"limit":0}"#),
    ("GET /alerts", [401, 200, 200, 200, 200], ""),
    // VM operators and up acknowledge; once acknowledged, again is a conflict.
    ("POST /alerts/{id}/acknowledge", [401, 403, 200, 409, 409], ""),
    // The host still has a VM placed on it.
    ("DELETE /hosts/{id}", [401, 403, 403, 409, 409], ""),
    // No VM runs on the host, so maintenance begins at once; then it is already in maintenance.
    ("POST /hosts/{id}/maintenance", [401, 403, 403, 202, 409], ""),
    ("POST /hosts/{id}/cancel-maintenance", [401, 403, 403, 200, 409], ""),
    ("GET /vms", [401, 200, 200, 200, 200], ""),
    // The only host's agent is not connected, so placement finds no host.
    (
        "POST /vms",
        [401, 403, 409, 409, 409],
        r#"{"name":"new-{role}","offering_id":"{offering}","template_id":"{template}","storage_pool_id":"{storage}"}"#,
    ),
    ("GET /vms/{id}", [401, 200, 200, 200, 200], ""),
    // The host's agent must confirm the VM is gone and is not connected.
    ("DELETE /vms/{id}", [401, 403, 503, 503, 503], ""),
    ("POST /vms/{id}/restart", [401, 403, 409, 409, 409], ""),
    // The VM is not running.
    ("POST /vms/{id}/migrate", [401, 403, 403, 409, 409], r#"{"host_id":"{host}"}"#),
    ("PATCH /vms/{id}/ha", [401, 403, 403, 200, 200], r#"{"start_order":2}"#),
    // The VM's host has no agent connected: allowed roles get 503, not a hang.
    ("POST /vms/{id}/start", [401, 403, 503, 503, 503], ""),
    // The VM is stopped: allowed roles get 409.
    ("POST /vms/{id}/stop", [401, 403, 409, 409, 409], ""),
    ("GET /storage-pools", [401, 200, 200, 200, 200], ""),
    ("GET /offerings", [401, 200, 200, 200, 200], ""),
    (
        "POST /offerings",
        [401, 403, 403, 201, 201],
        r#"{"name":"o-{role}","cpu_cores":1,"cpu_mhz":1000,"memory_mb":512}"#,
    ),
    ("PATCH /offerings/{id}", [401, 403, 403, 200, 200], r#"{"description":"changed"}"#),
    // The offering is in use.
    ("DELETE /offerings/{id}", [401, 403, 403, 409, 409], ""),
    ("GET /templates", [401, 200, 200, 200, 200], ""),
    // Computing a hypothetical plan is for everyone signed in.
    (
        "POST /ha/plan/simulate",
        [401, 200, 200, 200, 200],
        r#"{"pool":{"hosts":[{"name":"h1","memory_mb":4096,"cpu_mhz":8000}],"vms":[],"failure_limit":1}}"#,
    ),
    ("GET /events", [401, 200, 200, 200, 200], ""),
    // The host has no OOBM configuration until the PUT below.
    ("GET /hosts/{id}/oobm", [401, 404, 404, 404, 404], ""),
    // Port 1 on loopback: nothing listens there, so every BMC call fails at once as unreachable.
    (
        "PUT /hosts/{id}/oobm",
        [401, 403, 403, 200, 200],
        r#"{"driver":"redfish","address":"127.0.0.1","port":1,"username":"u","password":"p","redfish_https":false}"#,
    ),
    // A test answers the classified failure with 200.
    ("POST /hosts/{id}/oobm/test", [401, 403, 403, 200, 200], ""),
    ("PUT /hosts/{id}/oobm/enabled", [401, 403, 403, 200, 200], r#"{"enabled":true}"#),
    ("PUT /zones/{id}/oobm/enabled", [401, 403, 403, 200, 200], r#"{"enabled":true}"#),
    ("PUT /clusters/{id}/oobm/enabled", [401, 403, 403, 200, 200], r#"{"enabled":true}"#),
    // In effect now; the BMC is unreachable: 502.
    ("POST /hosts/{id}/oobm/power", [401, 403, 403, 502, 502], r#"{"action":"STATUS"}"#),
    ("POST /hosts/{id}/oobm/password", [401, 403, 403, 502, 502], r#"{"new_password":"new-pass-1"}"#),
    // HA switches and timing: pool operators and up; HA states, settings and incidents: everyone.
    ("PUT /zones/{id}/ha", [401, 403, 403, 200, 200], r#"{"enabled":true}"#),
    ("PUT /clusters/{id}/ha", [401, 403, 403, 200, 200], r#"{"enabled":true,"include_hosts":true}"#),
    ("GET /clusters/{id}/ha/settings", [401, 200, 200, 200, 200], ""),
    ("PUT /clusters/{id}/ha/settings", [401, 403, 403, 200, 200], r#"{"suspect_after_ms":4000}"#),
    ("PUT /hosts/{id}/ha", [401, 403, 403, 200, 200], r#"{"enabled":true}"#),
    ("GET /hosts/{id}/ha", [401, 200, 200, 200, 200], ""),
    ("GET /ha/incidents", [401, 200, 200, 200, 200], ""),
    // The id is a VM's: no such incident.
    ("GET /ha/incidents/{id}", [401, 404, 404, 404, 404], ""),
    // SMTP is a global setting: pool admins only.
    ("GET /settings/email", [401, 403, 403, 403, 200], ""),
    (
        "PUT /settings/email",
        [401, 403, 403, 403, 200],
        r#"{"enabled":false,"host":"127.0.0.1","port":1,"security":"none","from_address":"p@example.com","recipients":["o@example.com"]}"#,
    ),
    // Port 1 on loopback: nothing listens, so the test answers "cannot connect" with 200 at once.
    ("POST /settings/email/test", [401, 403, 403, 403, 200], ""),
    ("GET /settings/email/outbox", [401, 403, 403, 403, 200], ""),
];

const ROLES: [Option<api::v1::Role>; 5] = [
    None,
    Some(api::v1::Role::ReadOnly),
    Some(api::v1::Role::VmOperator),
    Some(api::v1::Role::PoolOperator),
    Some(api::v1::Role::PoolAdmin),
];

/// A host (no agent connected) with one stopped VM, its cluster, and an open alert.
struct Fixture {
    host: api::HostId,
    vm: api::VmId,
    offering: api::OfferingId,
    storage: api::StoragePoolId,
    cluster: api::ClusterId,
    alert: api::v1::AlertId,
}

async fn host_with_vm(state: &AppState) -> Fixture {
    let pool = crate::demo::seed(&state.db, 1, 1).await.unwrap();
    let zone = state.db.zone_fetch_by_token_hash(&token_hash(&pool.join_token)).await.unwrap().unwrap();
    let registration = api::agent::HostRegistration {
        name: "h1".into(),
        address: "127.0.1.1".into(),
        cluster: "cluster-a".into(),
        hypervisor: api::v1::HypervisorKind::Sim,
        capacity: api::v1::Resources { cpu_cores: 8, cpu_mhz: 16000, memory_mb: 32768 },
        mounted_storage: vec![pool.hosts[0].storage_url.clone()],
        agent_version: "t".into(),
        peer_port: None,
    };
    let host_id = crate::app::hosts::register(state, &zone, &registration).await.unwrap();
    // Registered, then its agent went away (as when an agent's connection drops).
    crate::app::hosts::mark_disconnected(state, host_id).await;
    let vm = state
        .db
        .vm_insert(crate::db::NewVm {
            template_id: crate::db::default_template_id(),
            network: "default",
            name: "vm1",
            zone_id: pool.zone_id,
            host_id: Some(host_id),
            offering_id: pool.offerings[0].id,
            storage_pool_id: pool.storage[0].1,
            ha_protected: false,
            restart_priority: api::v1::RestartPriority::BestEffort,
        })
        .await
        .unwrap();
    let cluster = pool.storage[0].0;
    let alert = crate::app::alerts::raise(
        state,
        crate::app::alerts::NewAlert::for_cluster(
            api::v1::alert_kind::POOL_OVERCOMMITTED,
            api::v1::AlertSeverity::Warning,
            cluster,
            "test alert".into(),
        ),
    )
    .await
    .unwrap()
    .alert()
    .id;
    Fixture { host: host_id, vm: vm.id, offering: pool.offerings[0].id, storage: pool.storage[0].1, cluster, alert }
}

#[tokio::test]
async fn role_by_route_matrix() {
    let (state, _dir) = test_state().await;
    let fixture = host_with_vm(&state).await;
    let hash = crate::app::auth::hash_password("same-for-all-1").unwrap();
    let mut users = Vec::new();
    for role in ROLES.iter().flatten() {
        users.push(state.db.user_insert(&format!("as-{}", role.as_str()), &hash, *role).await.unwrap());
    }
    let target = state.db.user_insert("target", &hash, api::v1::Role::ReadOnly).await.unwrap();

    let routes = api_routes();
    for (method, path) in routes.routes() {
        let key = format!("{method} {path}");
        let (_, expected, body) = MATRIX
            .iter()
            .find(|(entry, _, _)| *entry == key)
            .unwrap_or_else(|| panic!("route {key} has no entry in the role x route matrix"));
        let id = if path.starts_with("/hosts/") {
            fixture.host.to_string()
        } else if path.starts_with("/users/") {
            target.id.to_string()
        } else if path.starts_with("/offerings/") {
            fixture.offering.to_string()
        } else if path.starts_with("/clusters/") {
            fixture.cluster.to_string()
        } else if path.starts_with("/alerts/") {
            fixture.alert.to_string()
        } else if path.starts_with("/zones/") {
            state.db.zone_list().await.unwrap()[0].id.to_string()
        } else {
            fixture.vm.to_string()
        };
        let concrete = format!("/api/v1{}", path.replace("{id}", &id));
        for (index, role) in ROLES.iter().enumerate() {
            let cookie = match role {
                None => None,
                Some(role) => {
                    let user = users.iter().find(|user| user.role == *role).unwrap();
                    let current = state.db.user_fetch(user.id).await.unwrap().unwrap();
                    let (token, _) = state.keys.issue(&current, chrono::Utc::now()).unwrap();
                    Some(format!("{}={token}", api::v1::SESSION_COOKIE))
                }
            };
            let body = body
                .replace("{role}", role.map(|role| role.as_str()).unwrap_or("anonymous"))
                .replace("{offering}", &fixture.offering.to_string())
                .replace("{host}", &fixture.host.to_string())
                .replace("{storage}", &fixture.storage.to_string())
                .replace("{template}", &crate::db::default_template_id().to_string());
            let json = (!body.is_empty()).then(|| serde_json::from_str(&body).unwrap());
            let response = router(state.clone(), None)
                .oneshot(request(method.as_str(), &concrete, cookie.as_deref(), json))
                .await
                .unwrap();
            let who = role.map(|role| role.as_str()).unwrap_or("anonymous");
            assert_eq!(response.status().as_u16(), expected[index], "{key} as {who}");
        }
    }
    for (entry, _, _) in MATRIX {
        assert!(
            routes.routes().iter().any(|(method, path)| format!("{method} {path}") == *entry),
            "the matrix names {entry}, which is not a route"
        );
    }
}

#[tokio::test]
async fn mutations_are_audited_with_actor_and_outcome_and_reads_are_not() {
    let (state, _dir) = test_state().await;
    let body = serde_json::json!({"username": "mallory", "password": "guess"});
    send(&state, request("POST", "/api/v1/auth/login", None, Some(body))).await;
    let cookie = login(&state).await;
    send(&state, request("GET", "/api/v1/zones", Some(&cookie), None)).await;
    let new_user = serde_json::json!({"username": "carol", "password": "carols-password", "role": "vm-operator"});
    let (status, _, _) = send(&state, request("POST", "/api/v1/users", Some(&cookie), Some(new_user))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, entries) = send(&state, request("GET", "/api/v1/audit", Some(&cookie), None)).await;
    let entries = entries.as_array().unwrap();
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap().into(),
                entry["action"].as_str().unwrap().into(),
                entry["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("admin".into(), "POST /api/v1/users".into(), "ok".into()),
            ("admin".into(), "POST /api/v1/auth/login".into(), "ok".into()),
            ("mallory".into(), "POST /api/v1/auth/login".into(), "refused".into()),
        ],
        "newest first; the GET is not audited"
    );
    let serialized = serde_json::to_string(entries).unwrap();
    assert!(!serialized.contains("carols-password") && !serialized.contains("guess"), "no secrets in the audit log");

    let (_, _, filtered) = send(&state, request("GET", "/api/v1/audit?actor=mallory", Some(&cookie), None)).await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let (_, _, filtered) = send(&state, request("GET", "/api/v1/audit?target=users", Some(&cookie), None)).await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let (_, _, filtered) =
        send(&state, request("GET", "/api/v1/audit?since=2999-01-01T00:00:00Z", Some(&cookie), None)).await;
    assert!(filtered.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled_with_a_clear_message() {
    let (state, _dir) = test_state().await;
    for _ in 0..5 {
        let body = serde_json::json!({"username": "admin", "password": "wrong-guess"});
        let (status, _, _) = send(&state, request("POST", "/api/v1/auth/login", None, Some(body))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let body = serde_json::json!({"username": "admin", "password": PASSWORD});
    let (status, headers, error) = send(&state, request("POST", "/api/v1/auth/login", None, Some(body))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits out the lock");
    assert!(headers.get(header::SET_COOKIE).is_none());
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("too many failed sign-ins") && message.contains("try again in"), "{message}");
}

#[tokio::test]
async fn user_management_keeps_a_pool_admin_and_revokes_what_it_should() {
    let (state, _dir) = test_state().await;
    let cookie = login(&state).await;
    let me: serde_json::Value = send(&state, request("GET", "/api/v1/auth/me", Some(&cookie), None)).await.2;
    let admin_path = format!("/api/v1/users/{}", me["id"].as_str().unwrap());

    let demote = serde_json::json!({"role": "read-only"});
    let (status, _, error) = send(&state, request("PATCH", &admin_path, Some(&cookie), Some(demote))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error["message"].as_str().unwrap().contains("last enabled pool admin"), "{error}");
    let (status, _, error) =
        send(&state, request("PATCH", &admin_path, Some(&cookie), Some(serde_json::json!({"disabled": true})))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "cannot-disable-self");

    let weak = serde_json::json!({"username": "dave", "password": "short", "role": "read-only"});
    let (status, _, error) = send(&state, request("POST", "/api/v1/users", Some(&cookie), Some(weak))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().starts_with("password"), "{error}");
    let bad_role = serde_json::json!({"username": "dave", "password": "long-enough-1", "role": "root"});
    let (status, _, error) = send(&state, request("POST", "/api/v1/users", Some(&cookie), Some(bad_role))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().contains("role"), "{error}");

    let dave = serde_json::json!({"username": "dave", "password": "long-enough-1", "role": "vm-operator"});
    let (status, _, created) = send(&state, request("POST", "/api/v1/users", Some(&cookie), Some(dave.clone()))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = send(&state, request("POST", "/api/v1/users", Some(&cookie), Some(dave))).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let dave_login = serde_json::json!({"username": "dave", "password": "long-enough-1"});
    let (_, headers, _) = send(&state, request("POST", "/api/v1/auth/login", None, Some(dave_login))).await;
    let dave_cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let dave_path = format!("/api/v1/users/{}", created["id"].as_str().unwrap());
    let (status, _, _) =
        send(&state, request("PATCH", &dave_path, Some(&cookie), Some(serde_json::json!({"disabled": true})))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&state, request("GET", "/api/v1/auth/me", Some(&dave_cookie), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "disabling a user ends their sessions");

    // Changing one's own password ends other sessions and keeps this one with a fresh token.
    let other_session = login(&state).await;
    let change = serde_json::json!({"current_password": PASSWORD, "new_password": "a-better-password"});
    let (status, headers, _) =
        send(&state, request("POST", "/api/v1/auth/password", Some(&cookie), Some(change))).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(
        send(&state, request("GET", "/api/v1/auth/me", Some(&other_session), None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&state, request("GET", "/api/v1/auth/me", Some(&fresh), None)).await.0, StatusCode::OK);
}

/// A session cookie for a fresh user of `role` (named `as-<role>`).
async fn cookie_as(state: &AppState, role: api::v1::Role) -> String {
    let name = format!("as-{}", role.as_str());
    let user = match state.db.user_fetch_by_name(&name).await.unwrap() {
        Some(user) => user,
        None => {
            let hash = crate::app::auth::hash_password("same-for-all-1").unwrap();
            state.db.user_insert(&name, &hash, role).await.unwrap();
            state.db.user_fetch_by_name(&name).await.unwrap().unwrap()
        }
    };
    let (token, _) = state.keys.issue(&user, chrono::Utc::now()).unwrap();
    format!("{}={token}", api::v1::SESSION_COOKIE)
}

/// Two 8 GB hosts of one cluster, registered (connected as far as the database knows), and an
/// offering per size asked for.
struct HaFixture {
    cluster: api::ClusterId,
    hosts: Vec<api::HostId>,
    zone: api::ZoneId,
    storage: api::StoragePoolId,
}

async fn two_hosts(state: &AppState) -> HaFixture {
    let pool = crate::demo::seed(&state.db, 1, 0).await.unwrap();
    let zone = state.db.zone_fetch_by_token_hash(&token_hash(&pool.join_token)).await.unwrap().unwrap();
    let mut hosts = Vec::new();
    for name in ["h1", "h2"] {
        let registration = api::agent::HostRegistration {
            name: name.into(),
            address: "127.0.1.1".into(),
            cluster: "cluster-a".into(),
            hypervisor: api::v1::HypervisorKind::Sim,
            capacity: api::v1::Resources { cpu_cores: 16, cpu_mhz: 32000, memory_mb: 8192 },
            mounted_storage: vec![],
            agent_version: "t".into(),
            peer_port: None,
        };
        hosts.push(crate::app::hosts::register(state, &zone, &registration).await.unwrap());
    }
    HaFixture { cluster: pool.storage[0].0, hosts, zone: pool.zone_id, storage: pool.storage[0].1 }
}

impl HaFixture {
    /// A VM of `memory_mb` running on host `host` (an index), protected or not.
    async fn running_vm(
        &self,
        state: &AppState,
        name: &str,
        host: usize,
        memory_mb: u64,
        protected: bool,
    ) -> api::VmId {
        let offering = match state.db.offering_list().await.unwrap().into_iter().find(|o| o.memory_mb == memory_mb) {
            Some(offering) => offering.id,
            None => {
                let name = format!("mem-{memory_mb}");
                let new = crate::db::NewOffering {
                    name: &name,
                    description: "",
                    cpu_cores: 1,
                    cpu_mhz: 1000,
                    memory_mb,
                    host_tags: &[],
                    offer_ha: false,
                };
                state.db.offering_insert(new).await.unwrap().id
            }
        };
        let vm = state
            .db
            .vm_insert(crate::db::NewVm {
                template_id: crate::db::default_template_id(),
                network: "default",
                name,
                zone_id: self.zone,
                host_id: Some(self.hosts[host]),
                offering_id: offering,
                storage_pool_id: self.storage,
                ha_protected: protected,
                restart_priority: if protected {
                    api::v1::RestartPriority::Restart
                } else {
                    api::v1::RestartPriority::DoNotRestart
                },
            })
            .await
            .unwrap();
        state.db.vm_set_state(vm.id, api::v1::VmState::Running, None).await.unwrap();
        vm.id
    }
}

#[tokio::test]
async fn an_action_that_would_overcommit_is_refused_with_figures_and_pool_operators_may_override_it() {
    let (state, _dir) = test_state().await;
    let fixture = two_hosts(&state).await;
    let protected = fixture.running_vm(&state, "a", 0, 4096, true).await;
    let operator = cookie_as(&state, api::v1::Role::PoolOperator).await;
    let vm_operator = cookie_as(&state, api::v1::Role::VmOperator).await;
    let h2 = format!("/api/v1/hosts/{}", fixture.hosts[1]);
    let disable = || Some(serde_json::json!({"allocation": "disabled"}));

    // With h2 disabled, nothing could take "a" when h1 fails: capacity 1 -> 0, limit 1.
    let (status, _, body) = send(&state, request("PATCH", &h2, Some(&operator), disable())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "would-overcommit");
    assert_eq!(
        (&body["capacity_before"], &body["capacity_after"], &body["limit"], &body["plan_exists_for"]),
        (&serde_json::json!(1), &serde_json::json!(0), &serde_json::json!(1), &serde_json::json!(1))
    );
    assert_eq!((&body["lower_limit_to"], &body["may_override"]), (&serde_json::json!(0), &serde_json::json!(true)));
    assert_eq!(body["cluster_id"], fixture.cluster.to_string());
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("setting host h2 to disabled") && message.contains("overcommit=proceed"), "{message}");
    let as_api_error: api::v1::ApiError = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(as_api_error.code, "would-overcommit", "the console's ApiError decode keeps working");
    let host = state.db.host_fetch(fixture.hosts[1]).await.unwrap().unwrap();
    assert_eq!(host.allocation, api::v1::HostAllocation::Enabled, "a refused action changes nothing");

    let (status, _, body) =
        send(&state, request("PATCH", &format!("{h2}?overcommit=maybe"), Some(&operator), disable())).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid-overcommit")));
    assert!(body["message"].as_str().unwrap().starts_with("overcommit:"), "{body}");

    // A vm-operator may only cancel: asking to proceed is refused, naming why.
    let start = format!("/api/v1/vms/{protected}/start?overcommit=proceed");
    let (status, _, body) = send(&state, request("POST", &start, Some(&vm_operator), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("vm-operator") && message.contains("overcommit=proceed"), "{message}");

    // A pool operator proceeds: the cluster becomes overcommitted, and the audit log says who and what.
    let (status, _, host) =
        send(&state, request("PATCH", &format!("{h2}?overcommit=proceed"), Some(&operator), disable())).await;
    assert_eq!((status, host["allocation"].as_str()), (StatusCode::OK, Some("disabled")));
    let admin = login(&state).await;
    let (_, _, entries) = send(&state, request("GET", "/api/v1/audit?target=overcommit", Some(&admin), None)).await;
    let entries = entries.as_array().unwrap();
    let proceeded = entries.iter().find(|entry| entry["status"] == 200).expect("the override is audited");
    assert_eq!(proceeded["actor"], "as-pool-operator");
    assert!(proceeded["target"].as_str().unwrap().ends_with("?overcommit=proceed"));
    let detail = proceeded["detail"].as_str().unwrap();
    assert!(detail.contains("overcommit=proceed") && detail.contains("becomes overcommitted"), "{detail}");
    let (_, _, entries) =
        send(&state, request("GET", &format!("/api/v1/audit?target={}", fixture.hosts[1]), Some(&admin), None)).await;
    let refused =
        entries.as_array().unwrap().iter().find(|entry| entry["status"] == 409).expect("the refusal is audited");
    assert!(refused["detail"].as_str().unwrap().starts_with("refused:"), "{refused}");

    // The reconciler raises the alert, and clears it once the pool is whole again.
    crate::ha::capacity::evaluate_all(&state).await.unwrap();
    let (_, _, alerts) = send(&state, request("GET", "/api/v1/alerts", Some(&vm_operator), None)).await;
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0]["kind"].as_str(), alerts[0]["severity"].as_str()),
        (Some("pool-overcommitted"), Some("warning"))
    );
    let (_, _, clusters) = send(&state, request("GET", "/api/v1/clusters", Some(&vm_operator), None)).await;
    assert_eq!(clusters[0]["ha_plan"]["overcommitted"], true);
    assert_eq!(clusters[0]["ha_plan"]["max_failure_capacity"], 0);
    let enable = Some(serde_json::json!({"allocation": "enabled"}));
    let (status, _, _) = send(&state, request("PATCH", &h2, Some(&operator), enable)).await;
    assert_eq!(status, StatusCode::OK, "more capacity is never refused");
    crate::ha::capacity::evaluate_all(&state).await.unwrap();
    let (_, _, all) = send(&state, request("GET", "/api/v1/alerts?status=all", Some(&vm_operator), None)).await;
    assert!(all[0]["cleared_at"].is_string(), "{all}");
    let acknowledge = format!("/api/v1/alerts/{}/acknowledge", all[0]["id"].as_str().unwrap());
    let (status, _, acknowledged) = send(&state, request("POST", &acknowledge, Some(&vm_operator), None)).await;
    assert_eq!((status, acknowledged["acknowledged_by"].as_str()), (StatusCode::OK, Some("as-vm-operator")));
    let (_, _, open) = send(&state, request("GET", "/api/v1/alerts", Some(&vm_operator), None)).await;
    assert_eq!(open, serde_json::json!([]));

    // Lower the limit and proceed: one transaction, limit = capacity after.
    let (status, _, _) =
        send(&state, request("PATCH", &format!("{h2}?overcommit=lower-limit"), Some(&operator), disable())).await;
    assert_eq!(status, StatusCode::OK);
    let cluster = state.db.cluster_fetch(fixture.cluster).await.unwrap().unwrap();
    assert_eq!(cluster.ha_failure_limit, 0);
    assert_eq!(
        state.db.host_fetch(fixture.hosts[1]).await.unwrap().unwrap().allocation,
        api::v1::HostAllocation::Disabled
    );
    let (_, _, entries) = send(&state, request("GET", "/api/v1/audit?target=lower-limit", Some(&admin), None)).await;
    let detail = entries[0]["detail"].as_str().unwrap();
    assert!(detail.contains("lowered from 1 to 0"), "{detail}");
}

#[tokio::test]
async fn protecting_a_vm_is_checked_and_lowering_the_limit_goes_with_the_change() {
    let (state, _dir) = test_state().await;
    let fixture = two_hosts(&state).await;
    // h1: a (1 GB, protected) and c (2 GB); h2: b (6 GB). h1 keeps 5 GB free: room for a, not for b.
    fixture.running_vm(&state, "a", 0, 1024, true).await;
    fixture.running_vm(&state, "c", 0, 2048, false).await;
    let b = fixture.running_vm(&state, "b", 1, 6144, false).await;
    let operator = cookie_as(&state, api::v1::Role::PoolOperator).await;
    let path = format!("/api/v1/vms/{b}/ha");
    let protect = || Some(serde_json::json!({"ha_protected": true, "restart_priority": "restart"}));

    let (status, _, body) = send(&state, request("PATCH", &path, Some(&operator), protect())).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("would-overcommit")), "{body}");
    assert_eq!((body["capacity_before"].as_u64(), body["capacity_after"].as_u64()), (Some(1), Some(0)));
    assert!(!state.db.vm_fetch(b).await.unwrap().unwrap().ha_protected);

    // Only the start order: nothing the plan sees changes.
    let (status, _, _) =
        send(&state, request("PATCH", &path, Some(&operator), Some(serde_json::json!({"start_order": 3})))).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, vm) =
        send(&state, request("PATCH", &format!("{path}?overcommit=lower-limit"), Some(&operator), protect())).await;
    assert_eq!(
        (status, vm["ha_protected"].as_bool(), vm["start_order"].as_i64()),
        (StatusCode::OK, Some(true), Some(3))
    );
    assert_eq!(state.db.cluster_fetch(fixture.cluster).await.unwrap().unwrap().ha_failure_limit, 0);

    // Protecting it again changes nothing the plan sees.
    let (status, _, _) = send(&state, request("PATCH", &path, Some(&operator), protect())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_failure_limit_is_checked_against_capacity_and_the_live_plan_is_served() {
    let (state, _dir) = test_state().await;
    let fixture = two_hosts(&state).await;
    fixture.running_vm(&state, "a", 0, 4096, true).await;
    let operator = cookie_as(&state, api::v1::Role::PoolOperator).await;
    let reader = cookie_as(&state, api::v1::Role::ReadOnly).await;
    let limit_path = format!("/api/v1/clusters/{}/ha/failure-limit", fixture.cluster);

    let (status, _, plan) =
        send(&state, request("GET", &format!("/api/v1/clusters/{}/ha/plan", fixture.cluster), Some(&reader), None))
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((plan["failure_limit"].as_u64(), plan["report"]["max_failure_capacity"].as_u64()), (Some(1), Some(1)));
    assert_eq!(plan["report"]["overcommitted"], false);
    assert_eq!(
        (plan["pool"]["hosts"].as_array().unwrap().len(), plan["pool"]["vms"].as_array().unwrap().len()),
        (2, 1)
    );
    assert_eq!(plan["pool"]["vms"][0]["host"], "h1");
    let missing = format!("/api/v1/clusters/{}/ha/plan", api::ClusterId::new_random());
    assert_eq!(send(&state, request("GET", &missing, Some(&reader), None)).await.0, StatusCode::NOT_FOUND);

    let (status, _, body) =
        send(&state, request("PUT", &limit_path, Some(&operator), Some(serde_json::json!({"limit": 2})))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (body["code"].as_str(), body["capacity"].as_u64(), body["limit"].as_u64()),
        (Some("limit-above-capacity"), Some(1), Some(2))
    );
    assert!(body["message"].as_str().unwrap().contains("can survive 1 host failure(s)"), "{body}");
    assert_eq!(state.db.cluster_fetch(fixture.cluster).await.unwrap().unwrap().ha_failure_limit, 1);

    let confirmed = serde_json::json!({"limit": 2, "confirm_overcommit": true});
    let (status, _, plan) = send(&state, request("PUT", &limit_path, Some(&operator), Some(confirmed))).await;
    assert_eq!((status, plan["failure_limit"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(
        (plan["report"]["overcommitted"].as_bool(), plan["report"]["plan_exists_for"].as_u64()),
        (Some(true), Some(1))
    );

    let (status, _, body) =
        send(&state, request("PUT", &limit_path, Some(&operator), Some(serde_json::json!({"limit": 5000})))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid-limit")));
    let (status, _, body) = send(
        &state,
        request("PUT", &limit_path, Some(&operator), Some(serde_json::json!({"confirm_overcommit": true}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("limit"), "{body}");
    let (status, _, _) =
        send(&state, request("PUT", &limit_path, Some(&operator), Some(serde_json::json!({"limit": 1})))).await;
    assert_eq!(status, StatusCode::OK, "a limit within capacity needs no confirmation");
    let (status, _, body) = send(&state, request("GET", "/api/v1/alerts?status=sometimes", Some(&reader), None)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid-query")));
}
