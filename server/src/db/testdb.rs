//! Fresh databases for tests: a SQLite file in a temporary directory, and a PostgreSQL database made
//! for the test and dropped after it. PostgreSQL is found through `PARAPET_TEST_POSTGRES_URL` (the test
//! command sets it, starting a throwaway server when none is running), else 127.0.0.1:5432.

use super::Db;
use api::agent::HostRegistration;
use api::v1::{HypervisorKind, Resources};
use std::future::Future;

/// A simulated host's `Hello` (16 cores, 64 GiB) for `cluster`, with `mounts` mounted.
pub fn registration(name: &str, cluster: &str, mounts: &[&str]) -> HostRegistration {
    HostRegistration {
        name: name.into(),
        address: "127.0.1.1".into(),
        cluster: cluster.into(),
        hypervisor: HypervisorKind::Sim,
        capacity: Resources { cpu_cores: 16, cpu_mhz: 38400, memory_mb: 65536 },
        mounted_storage: mounts.iter().map(|url| url.to_string()).collect(),
        agent_version: "test".into(),
        peer_port: None,
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("PARAPET_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Run `body` once against a fresh SQLite database and once against a fresh PostgreSQL database.
pub async fn on_each_backend<F, Fut>(body: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::open_sqlite(&dir.path().join("test.db")).await.unwrap();
    body(sqlite.clone()).await;
    sqlite.close().await;

    let (postgres, name) = fresh_postgres().await;
    body(postgres.clone()).await;
    postgres.close().await;
    drop_postgres(&name).await;
}

async fn fresh_postgres() -> (Db, String) {
    sqlx::any::install_default_drivers();
    let admin_url = postgres_admin_url();
    let admin = sqlx::AnyPool::connect(&admin_url)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL is required for the database tests (tried {admin_url}): {error}"));
    let name = format!("parapet_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("cannot derive a database URL from {admin_url}"),
    };
    (Db::connect(&url).await.unwrap(), name)
}

async fn drop_postgres(name: &str) {
    let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await.unwrap();
    admin.close().await;
}
