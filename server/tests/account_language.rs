//! The console language remembered per user (`PUT /api/v1/account/language`, `Me.language`), on a real
//! server over SQLite and over PostgreSQL: never chosen is `null`; any signed-in role sets their own
//! (204), which `GET /auth/me` and the next sign-in answer; an unknown language is a 400 naming the
//! field; without a session it is a 401; every call is in the audit log.

#[path = "support/api_client.rs"]
mod api_client;

use api_client::{Browser, PostgresDatabase, TestServer};

const ADMIN_PASSWORD: &str = "language-admin-1";

impl Browser {
    async fn set_language(&self, language: &str) -> (u16, serde_json::Value) {
        self.call("PUT", "/account/language", Some(serde_json::json!({ "language": language }))).await
    }

    async fn me(&self) -> api::v1::Me {
        let (status, me) = self.call("GET", "/auth/me", None).await;
        assert_eq!(status, 200, "{me}");
        serde_json::from_value(me).unwrap()
    }
}

async fn check_language_is_remembered_per_user(server: &TestServer) {
    use api::v1::Language;

    let (admin, me) = server.signed_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(me["language"], serde_json::Value::Null, "never chosen: {me}");
    assert_eq!(admin.me().await.language, None);

    // A read-only user, to show every role sets their own (and only their own).
    let (status, user) = admin
        .call(
            "POST",
            "/users",
            Some(serde_json::json!({"username": "reader", "password": "reader-pass-1", "role": "read-only"})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let (reader, _) = server.signed_in("reader", "reader-pass-1").await;

    assert_eq!(admin.set_language("ko").await.0, 204);
    assert_eq!(admin.me().await.language, Some(Language::Ko));
    assert_eq!(reader.me().await.language, None, "another user's choice is not mine");

    assert_eq!(reader.set_language("en").await.0, 204);
    assert_eq!(reader.me().await.language, Some(Language::En));
    assert_eq!(admin.me().await.language, Some(Language::Ko));

    // It follows the user to another browser: the sign-in answer carries it.
    let (_, me) = server.signed_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(me["language"], "ko", "{me}");

    // Changing it again is fine; an unknown language is a 400 naming the field and changes nothing.
    assert_eq!(admin.set_language("en").await.0, 204);
    assert_eq!(admin.me().await.language, Some(Language::En));
    let (status, error) = admin.set_language("fr").await;
    assert_eq!(status, 400, "{error}");
    assert!(error["message"].as_str().unwrap_or_default().contains("language"), "names the field: {error}");
    let (status, error) = admin.call("PUT", "/account/language", Some(serde_json::json!({}))).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["message"].as_str().unwrap_or_default().contains("language"), "names the field: {error}");
    assert_eq!(admin.me().await.language, Some(Language::En));

    // Without a session.
    let stranger = server.browser();
    let (status, error) = stranger.set_language("ko").await;
    assert_eq!(status, 401, "{error}");

    // Audited like every mutating call, with who and how it ended.
    let (status, entries) = admin.call("GET", "/audit", None).await;
    assert_eq!(status, 200, "{entries}");
    let entries: Vec<api::v1::AuditEntry> = serde_json::from_value(entries).unwrap();
    let language_calls: Vec<(&str, u16)> = entries
        .iter()
        .filter(|entry| entry.action.ends_with("/account/language"))
        .map(|entry| (entry.actor.as_str(), entry.status))
        .collect();
    for expected in [("admin", 204), ("reader", 204), ("admin", 400), ("-", 401)] {
        assert!(language_calls.contains(&expected), "audit has {expected:?}: {language_calls:?}");
    }
    assert_eq!(language_calls.len(), 6, "{language_calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_is_remembered_per_user_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None, ADMIN_PASSWORD).await;
    check_language_is_remembered_per_user(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_is_remembered_per_user_on_postgresql() {
    let database = PostgresDatabase::create("parapet_language").await;
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), Some(&database.url), ADMIN_PASSWORD).await;
    check_language_is_remembered_per_user(&server).await;
    server.stop().await;
    database.drop().await;
}
