//! "Pause HA while you change the pool": switching a cluster's HA off while its zone's HA is on raises
//! one `ha-paused` alert (listed with the open alerts, so it counts and is mailed like any other),
//! switching it on again clears it, and so does switching the zone's HA off. A pool operator may pause
//! and resume; a VM operator may not. On a real server over SQLite and over PostgreSQL.

use api::v1::{Alert, AlertSeverity, alert_kind};
#[path = "support/api_client.rs"]
mod api_client;

use api_client::{Browser, PostgresDatabase, TestServer};
use std::path::Path;

const ADMIN_PASSWORD: &str = "pause-admin-1";

/// A served server with one zone and two clusters in it, all with HA off.
struct PausePool {
    server: TestServer,
    zone: api::ZoneId,
    cluster: api::ClusterId,
    other: api::ClusterId,
}

impl PausePool {
    async fn start(data_dir: &Path, database_url: Option<&str>) -> PausePool {
        let server = api_client::prepare(data_dir, database_url, ADMIN_PASSWORD).await;
        let db = &server.state.db;
        let zone = db.zone_insert("zone-p", "pause-token-hash").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "cluster-p").await.unwrap();
        let other = db.cluster_insert(zone.id, "cluster-q").await.unwrap();
        PausePool { server: TestServer::serve(server), zone: zone.id, cluster: cluster.id, other: other.id }
    }

    async fn signed_in(&self, username: &str, password: &str) -> Browser {
        self.server.signed_in(username, password).await.0
    }
}

impl Browser {
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

async fn check_pause_reminder(server: &PausePool) {
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
    let pool = PausePool::start(data.path(), None).await;
    check_pause_reminder(&pool).await;
    pool.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_cluster_ha_raises_a_reminder_on_postgresql() {
    let database = PostgresDatabase::create("parapet_pause").await;
    let data = tempfile::tempdir().unwrap();
    let pool = PausePool::start(data.path(), Some(&database.url)).await;
    check_pause_reminder(&pool).await;
    pool.server.stop().await;
    database.drop().await;
}
