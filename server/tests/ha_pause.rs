//! "Pause HA while you change the pool": switching a cluster's HA off while its zone's HA is on raises
//! one `ha-paused` alert (listed with the open alerts, so it counts and is mailed like any other),
//! switching it on again clears it, and so does switching the zone's HA off. A pool operator may pause
//! and resume; a VM operator may not. On a real server over SQLite and over PostgreSQL.

use api::v1::{Alert, AlertSeverity, alert_kind};
use server::config::ServerArgs;
use std::path::Path;

const ADMIN_PASSWORD: &str = "pause-admin-1";

struct TestServer {
    base: String,
    zone: api::ZoneId,
    cluster: api::ClusterId,
    other: api::ClusterId,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    async fn start(data_dir: &Path, database_url: Option<&str>) -> TestServer {
        let args = ServerArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.to_owned()),
            database_url: database_url.map(str::to_owned),
            ..Default::default()
        };
        let server = server::Server::prepare(&args.resolve().unwrap(), Some(ADMIN_PASSWORD.into())).await.unwrap();
        let db = &server.state.db;
        let zone = db.zone_insert("zone-p", "pause-token-hash").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "cluster-p").await.unwrap();
        let other = db.cluster_insert(zone.id, "cluster-q").await.unwrap();
        let base = format!("http://{}", server.local_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        TestServer { base, zone: zone.id, cluster: cluster.id, other: other.id, stop: Some(stop), task: Some(task) }
    }

    async fn signed_in(&self, username: &str, password: &str) -> Browser {
        let browser =
            Browser { base: self.base.clone(), client: reqwest::Client::builder().cookie_store(true).build().unwrap() };
        let (status, me) = browser
            .call("POST", "/auth/login", Some(serde_json::json!({"username": username, "password": password})))
            .await;
        assert_eq!(status, 200, "sign-in as {username}: {me}");
        browser
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

struct Browser {
    base: String,
    client: reqwest::Client,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.client.request(method.parse().unwrap(), url).header(api::v1::CSRF_HEADER, "1");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    async fn switch(&self, path: String, enabled: bool) -> u16 {
        let (status, body) = self.call("PUT", &path, Some(serde_json::json!({ "enabled": enabled }))).await;
        assert!(status == 200 || status == 403, "{path}: {status} {body}");
        status
    }

    /// Every `ha-paused` alert, newest first.
    async fn paused_alerts(&self) -> Vec<Alert> {
        let (status, alerts) = self.call("GET", "/alerts?status=all", None).await;
        assert_eq!(status, 200, "{alerts}");
        let alerts: Vec<Alert> = serde_json::from_value(alerts).unwrap();
        alerts.into_iter().filter(|alert| alert.kind == alert_kind::HA_PAUSED).collect()
    }

    async fn open_alert_count(&self) -> usize {
        let (status, alerts) = self.call("GET", "/alerts", None).await;
        assert_eq!(status, 200, "{alerts}");
        alerts.as_array().map_or(0, Vec::len)
    }
}

async fn check_pause_reminder(server: &TestServer) {
    let admin = server.signed_in("admin", ADMIN_PASSWORD).await;
    for (name, role) in [("operator", "pool-operator"), ("vmop", "vm-operator")] {
        let body = serde_json::json!({"username": name, "password": "pause-pass-1", "role": role});
        let (status, user) = admin.call("POST", "/users", Some(body)).await;
        assert_eq!(status, 201, "{user}");
    }
    let operator = server.signed_in("operator", "pause-pass-1").await;
    let vm_operator = server.signed_in("vmop", "pause-pass-1").await;
    let (zone, cluster, other) = (server.zone, server.cluster, server.other);
    let cluster_ha = |id: api::ClusterId| format!("/clusters/{id}/ha");

    // Cluster HA off while the zone's is off: nothing is paused.
    assert_eq!(operator.switch(cluster_ha(cluster), false).await, 200);
    assert!(admin.paused_alerts().await.is_empty());

    // Zone on, cluster on, then paused by a pool operator: one warning naming both.
    assert_eq!(operator.switch(format!("/zones/{zone}/ha"), true).await, 200);
    assert_eq!(operator.switch(cluster_ha(cluster), true).await, 200);
    assert_eq!(operator.switch(cluster_ha(other), true).await, 200);
    assert!(admin.paused_alerts().await.is_empty(), "switching on raises nothing");
    let open_before = admin.open_alert_count().await;
    assert_eq!(vm_operator.switch(cluster_ha(cluster), false).await, 403, "a VM operator may not pause HA");
    assert!(admin.paused_alerts().await.is_empty());
    assert_eq!(operator.switch(cluster_ha(cluster), false).await, 200);
    let paused = admin.paused_alerts().await;
    assert_eq!(paused.len(), 1, "{paused:?}");
    let alert = &paused[0];
    assert_eq!(alert.severity, AlertSeverity::Warning);
    assert_eq!(alert.cluster_id, Some(cluster));
    assert_eq!(alert.cleared_at, None);
    assert_eq!(
        alert.message,
        "HA is paused for cluster cluster-p while zone zone-p has HA on: its hosts are not watched and its VMs are \
         not restarted after a host failure. Turn cluster HA back on when the change is done"
    );
    assert_eq!(admin.open_alert_count().await, open_before + 1, "counted with the open alerts");

    // Switching it off again is the same condition: still one alert.
    assert_eq!(operator.switch(cluster_ha(cluster), false).await, 200);
    assert_eq!(admin.paused_alerts().await.len(), 1);

    // Back on: cleared (still open until acknowledged, like every alert).
    assert_eq!(operator.switch(cluster_ha(cluster), true).await, 200);
    let paused = admin.paused_alerts().await;
    assert_eq!(paused.len(), 1);
    assert!(paused[0].cleared_at.is_some(), "{paused:?}");

    // Paused again: a new alert; then the zone's HA off clears it too.
    assert_eq!(operator.switch(cluster_ha(cluster), false).await, 200);
    let paused = admin.paused_alerts().await;
    assert_eq!(paused.len(), 2, "{paused:?}");
    assert_eq!(paused.iter().filter(|alert| alert.cleared_at.is_none()).count(), 1);
    assert_eq!(operator.switch(format!("/zones/{zone}/ha"), false).await, 200);
    let paused = admin.paused_alerts().await;
    assert!(paused.iter().all(|alert| alert.cleared_at.is_some()), "{paused:?}");
    // The other cluster was never paused.
    assert!(paused.iter().all(|alert| alert.cluster_id == Some(cluster)), "{paused:?}");

    // Acknowledged like any alert.
    let id = paused[0].id;
    let (status, body) = operator.call("POST", &format!("/alerts/{id}/acknowledge"), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_cluster_ha_raises_a_reminder_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None).await;
    check_pause_reminder(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_cluster_ha_raises_a_reminder_on_postgresql() {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("PARAPET_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = sqlx::AnyPool::connect(&admin_url).await.expect("PostgreSQL is required for this test");
    let name = format!("parapet_pause_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);

    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), Some(&url)).await;
    check_pause_reminder(&server).await;
    server.stop().await;

    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await.unwrap();
    admin.close().await;
}
