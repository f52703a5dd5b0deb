//! Router tests without a socket: `router(state).oneshot(request)`.

use super::*;
use crate::agents::AgentHub;
use crate::app::auth::{SessionKeys, bootstrap_admin};
use crate::db::Db;
use crate::events::EventBus;
use crate::state::{AppState, RuntimeSettings};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const PASSWORD: &str = "test-password-1";

async fn test_state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    bootstrap_admin(&db, Some(PASSWORD.into())).await.unwrap();
    let state = AppState {
        db,
        hub: AgentHub::new(Duration::from_secs(5)),
        events: EventBus::new(),
        keys: Arc::new(SessionKeys::from_secret(&[1u8; 32], chrono::Duration::minutes(15))),
        settings: Arc::new(RuntimeSettings::default()),
    };
    (state, dir)
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

/// Every `/api/v1` route, as (method, path with sample ids). Keep in step with `api_routes`.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/inventory"),
    ("GET", "/api/v1/zones"),
    ("GET", "/api/v1/clusters"),
    ("GET", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/00000000-0000-0000-0000-000000000001"),
    ("GET", "/api/v1/vms"),
    ("GET", "/api/v1/vms/00000000-0000-0000-0000-000000000001"),
    ("POST", "/api/v1/vms/00000000-0000-0000-0000-000000000001/start"),
    ("POST", "/api/v1/vms/00000000-0000-0000-0000-000000000001/stop"),
    ("GET", "/api/v1/storage-pools"),
    ("GET", "/api/v1/offerings"),
    ("GET", "/api/v1/events"),
];

#[tokio::test]
async fn every_route_but_login_and_logout_refuses_anonymous_callers() {
    let (state, _dir) = test_state().await;
    for (method, path) in ROUTES {
        let (status, _, body) = send(&state, request(method, path, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(body["code"], "unauthorized", "{method} {path}");
    }
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
    };
    let host_id = crate::app::hosts::register(&state, &zone, &registration).await.unwrap();
    let vm = state
        .db
        .vm_insert(crate::db::NewVm {
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
