//! A real server on a loopback port for API tests, and a cookie-keeping client that calls it the way the
//! console does (CSRF header, JSON bodies, session cookie). Over SQLite in a data directory, or over a
//! fresh PostgreSQL database ([`PostgresDatabase`]).
//!
//! Shared by `tests/account_language.rs`, `tests/ha_pause.rs`, `tests/email.rs` (its [`Browser`]) and
//! `tests/ha_live.rs` (its [`PostgresDatabase`]), `#[path]`-included. A test that needs
//! rows of its own seeds `server.state.db` between [`prepare`] and [`TestServer::serve`]; a test's own
//! calls are further `impl Browser` blocks in the test file.

#![allow(dead_code)]

use serde_json::Value;
use server::config::ServerArgs;
use std::path::Path;

/// A server on a loopback port over `data_dir` (its SQLite database, unless `database_url`), with
/// `admin_password` for the first admin, not yet serving: seed its state, then [`TestServer::serve`].
pub async fn prepare(data_dir: &Path, database_url: Option<&str>, admin_password: &str) -> server::Server {
    let args = ServerArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.to_owned()),
        database_url: database_url.map(str::to_owned),
        ..Default::default()
    };
    server::Server::prepare(&args.resolve().unwrap(), Some(admin_password.into())).await.unwrap()
}

pub struct TestServer {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// [`prepare`] and [`TestServer::serve`] in one, for a test that seeds nothing.
    pub async fn start(data_dir: &Path, database_url: Option<&str>, admin_password: &str) -> TestServer {
        TestServer::serve(prepare(data_dir, database_url, admin_password).await)
    }

    /// Serves `server` until [`TestServer::stop`].
    pub fn serve(server: server::Server) -> TestServer {
        let base = format!("http://{}", server.local_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        TestServer { base, stop: Some(stop), task: Some(task) }
    }

    /// A browser of its own (cookie jar), not signed in.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A browser of its own, signed in as `username`, and the sign-in answer (`Me`).
    pub async fn signed_in(&self, username: &str, password: &str) -> (Browser, Value) {
        let browser = self.browser();
        let (status, me) = browser
            .call("POST", "/auth/login", Some(serde_json::json!({"username": username, "password": password})))
            .await;
        assert_eq!(status, 200, "sign-in as {username}: {me}");
        (browser, me)
    }

    /// Stops serving and waits for the server to finish cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub struct Browser {
    base: String,
    client: reqwest::Client,
}

impl Browser {
    /// A browser of its own (cookie jar) for the server at `base`, not signed in.
    pub fn new(base: &str) -> Browser {
        Browser { base: base.to_owned(), client: reqwest::Client::builder().cookie_store(true).build().unwrap() }
    }

    /// `method` `/api/v1{path}` with an optional JSON body: the status and the JSON answer (`null` when
    /// the answer is empty or not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// [`Browser::call`], answering the answer's text as it came.
    pub async fn call_text(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.client.request(method.parse().unwrap(), url).header(api::v1::CSRF_HEADER, "1");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// A fresh database `{prefix}_{uuid}` on the PostgreSQL at `PARAPET_TEST_POSTGRES_URL` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`), dropped by [`PostgresDatabase::drop`].
pub struct PostgresDatabase {
    admin: sqlx::AnyPool,
    name: String,
    pub url: String,
}

impl PostgresDatabase {
    pub async fn create(prefix: &str) -> PostgresDatabase {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("PARAPET_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin = sqlx::AnyPool::connect(&admin_url).await.expect("PostgreSQL is required for this test");
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        PostgresDatabase { admin, name, url }
    }

    pub async fn drop(self) {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&self.admin).await.unwrap();
        self.admin.close().await;
    }
}
