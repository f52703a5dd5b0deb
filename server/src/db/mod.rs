//! The only code that runs SQL. One `Db` over sqlx's `Any` driver serves SQLite (embedded default) and
//! PostgreSQL (several management servers) with one schema history in `migrations/`.
//!
//! Queries are written in the common subset of both dialects and use `$N` placeholders, which both
//! sqlx drivers accept. Times are unix milliseconds (BIGINT), ids are UUID text, flags BIGINT 0/1, short lists JSON text.

mod alerts;
mod audit;
mod email;
mod ha;
mod inventory;
mod oobm;
mod settings;
mod users;

pub use alerts::*;
pub use audit::*;
pub use email::*;
pub use ha::*;
pub use inventory::*;
pub use oobm::*;
pub use settings::*;
pub use users::*;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    #[error("a stored value is not valid: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
    /// The change would break a rule the data must keep; the message says which.
    #[error("{0}")]
    Refused(String),
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).finish()
    }
}

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

impl Db {
    /// The embedded default: a SQLite file in WAL mode.
    pub async fn open_sqlite(path: &Path) -> DbResult<Db> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connect to `sqlite://...` or `postgres://...` and bring the schema up to date.
    pub async fn connect(url: &str) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options.max_connections(8).after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Per connection: wait for the writer instead of failing, and enforce references.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(16);
        }
        let pool = options.connect(url).await.map_err(DbError::Connect)?;
        if backend == Backend::Sqlite {
            // WAL is a property of the file: set once, kept across opens.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        MIGRATOR.run(&pool).await.map_err(DbError::Migrate)?;
        Ok(Db { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For `/readyz`: the database answers a trivial query.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so
    /// concurrent writers wait for each other through the busy timeout instead of failing when a read
    /// transaction cannot be upgraded.
    pub(crate) async fn begin_write(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::UNIX_EPOCH)
}

pub(crate) fn get_id<T: FromStr>(row: &AnyRow, column: &str) -> DbResult<T> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| DbError::Corrupt(format!("{column} = {text:?} is not a UUID")))
}

pub(crate) fn get_opt_id<T: FromStr>(row: &AnyRow, column: &str) -> DbResult<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| text.parse().map_err(|_| DbError::Corrupt(format!("{column} = {text:?} is not a UUID"))))
        .transpose()
}

pub(crate) fn get_u32(row: &AnyRow, column: &str) -> DbResult<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| DbError::Corrupt(format!("{column} = {value} is out of range")))
}

pub(crate) fn get_u64(row: &AnyRow, column: &str) -> DbResult<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| DbError::Corrupt(format!("{column} = {value} is out of range")))
}

/// Flags are BIGINT 0/1: the one boolean representation both backends read through `Any`.
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> DbResult<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}

pub(crate) fn get_string_list(row: &AnyRow, column: &str) -> DbResult<Vec<String>> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|_| DbError::Corrupt(format!("{column} is not a JSON list")))
}

pub(crate) fn string_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

/// Parse a kebab-case enum stored as text through its serde name.
pub(crate) fn get_enum<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> DbResult<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| DbError::Corrupt(format!("{column} = {text:?} is not a known value")))
}

/// The text form of a kebab-case enum, as stored.
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation() || db.message().contains("UNIQUE constraint failed"),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod testdb;

#[cfg(test)]
mod tests;
