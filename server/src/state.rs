//! What every request handler and background task shares.

use crate::agents::AgentHub;
use crate::app::auth::SessionKeys;
use crate::app::throttle::LoginThrottle;
use crate::db::Db;
use crate::events::EventBus;
use crate::oobm::OobmSettings;
use crate::secrets::SecretBox;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub hub: AgentHub,
    pub events: EventBus,
    pub keys: Arc<SessionKeys>,
    pub settings: Arc<RuntimeSettings>,
    pub login_throttle: Arc<LoginThrottle>,
    /// VMs being live-migrated by this server right now: agents' reports about them are in flux
    /// and are not applied until the hand-over is done.
    pub migrations: Arc<std::sync::Mutex<std::collections::HashSet<api::VmId>>>,
    /// Serializes admission-control decisions with the writes they admit (see `app::admission`).
    pub admission_lock: Arc<tokio::sync::Mutex<()>>,
    /// Turns true when the server begins to shut down: long-lived responses (event streams) end then,
    /// so graceful shutdown does not wait for browsers to close them.
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
    /// Seals and opens stored credentials (BMC passwords) with the server's secrets key.
    pub secrets: Arc<SecretBox>,
    /// Wakes the OOBM power-state sync (`oobm::sync`) after a configuration or switch changed.
    pub oobm_sync: Arc<tokio::sync::Notify>,
    /// Wakes the mail outbox reconciler (`mail::outbox`) and carries its timings.
    pub outbox: crate::mail::Outbox,
}

/// Settings the running server consults (as opposed to start-up configuration).
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    /// Mark the session cookie `Secure` (set when the console is served over HTTPS, e.g. behind a proxy).
    pub secure_cookies: bool,
    /// How often agents send heartbeats (told to them in `Welcome`).
    pub heartbeat_interval: Duration,
    /// A session that sends nothing for this long is considered dead and closed.
    pub agent_silence_timeout: Duration,
    /// A graceful VM stop that has not finished after this long is forced.
    pub graceful_stop_timeout: Duration,
    /// BMC call timeout, power-state sync interval and concurrency, fencing deadline.
    pub oobm: OobmSettings,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            secure_cookies: false,
            heartbeat_interval: Duration::from_secs(1),
            agent_silence_timeout: Duration::from_secs(10),
            graceful_stop_timeout: Duration::from_secs(60),
            oobm: OobmSettings::default(),
        }
    }
}

/// A state over a fresh SQLite database in a temporary directory (kept while the `TempDir` lives), with
/// the first admin's password `admin_password`, for unit tests.
#[cfg(test)]
pub(crate) async fn test_state(admin_password: &str) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    crate::app::auth::bootstrap_admin(&db, Some(admin_password.into())).await.unwrap();
    let state = AppState {
        db,
        hub: AgentHub::new(Duration::from_secs(5)),
        events: EventBus::new(),
        keys: Arc::new(SessionKeys::from_secret(&[1u8; 32], chrono::Duration::minutes(15))),
        settings: Arc::new(RuntimeSettings::default()),
        login_throttle: Arc::default(),
        migrations: Arc::default(),
        admission_lock: Arc::default(),
        shutting_down: tokio::sync::watch::channel(false).1,
        secrets: Arc::new(SecretBox::from_key(&[2u8; 32])),
        oobm_sync: Arc::default(),
        outbox: Default::default(),
    };
    (state, dir)
}
