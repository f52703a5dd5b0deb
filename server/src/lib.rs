//! Parapet's management server as a library, so that `main.rs`, `demo`, and the integration tests
//! start exactly the same thing.

pub mod agents;
pub mod app;
pub mod config;
pub mod db;
pub mod demo;
pub mod events;
pub mod ha;
pub mod http;
pub mod mail;
pub mod oobm;
pub mod secrets;
pub mod state;

use crate::agents::AgentHub;
use crate::app::auth::{SessionKeys, bootstrap_admin};
use crate::config::{Config, DatabaseChoice};
use crate::db::Db;
use crate::events::EventBus;
use crate::state::{AppState, RuntimeSettings};
use anyhow::Context;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A server that has its database, keys and socket, ready to serve.
pub struct Server {
    pub state: AppState,
    pub local_addr: SocketAddr,
    /// The first admin's password when this start created the account (show it once).
    pub created_admin_password: Option<String>,
    listener: TcpListener,
    web_dir: Option<PathBuf>,
    shutdown_started: tokio::sync::watch::Sender<bool>,
    _data_dir_lock: Option<File>,
}

/// Take the data directory for this process alone: two servers writing one SQLite file would corrupt
/// each other's view. The lock is released when the process ends, however it ends.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("parapet.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Parapet server is already using the data directory {} (it holds {}); \
             stop it, or give this one another --data-dir",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

impl Server {
    pub async fn prepare(config: &Config, admin_password: Option<String>) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let (db, lock) = match &config.database {
            DatabaseChoice::SqliteIn(path) => {
                let lock = lock_data_dir(&config.data_dir)?;
                (Db::open_sqlite(path).await.context("cannot open the SQLite database")?, Some(lock))
            }
            DatabaseChoice::Url(url) => (Db::connect(url).await.context("cannot open the database")?, None),
        };
        let keys =
            SessionKeys::load_or_create(&config.session_key_file, chrono::Duration::minutes(config.session_minutes))
                .with_context(|| format!("cannot load the session key {}", config.session_key_file.display()))?;
        let secrets = secrets::SecretBox::load_or_create(&config.secrets_key_file)
            .with_context(|| format!("cannot load the secrets key {}", config.secrets_key_file.display()))?;
        let created_admin_password =
            bootstrap_admin(&db, admin_password).await.map_err(|error| anyhow::anyhow!("{error}"))?;
        if db.backend() == db::Backend::Sqlite {
            // Alone on this database: no agent can be connected to this new process yet.
            db.host_mark_all_disconnected().await.context("cannot reset host connection states")?;
        }
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let (shutdown_started, shutting_down) = tokio::sync::watch::channel(false);
        let state = AppState {
            db,
            hub: AgentHub::new(Duration::from_secs(60)),
            events: EventBus::new(),
            keys: Arc::new(keys),
            settings: Arc::new(RuntimeSettings {
                secure_cookies: config.secure_cookies,
                graceful_stop_timeout: Duration::from_secs(config.graceful_stop_seconds),
                ..RuntimeSettings::default()
            }),
            login_throttle: Arc::default(),
            migrations: Arc::default(),
            admission_lock: Arc::default(),
            shutting_down,
            secrets: Arc::new(secrets),
            oobm_sync: Arc::default(),
            outbox: mail::Outbox::default(),
        };
        Ok(Server {
            state,
            local_addr,
            created_admin_password,
            listener,
            web_dir: config.web_dir.clone(),
            shutdown_started,
            _data_dir_lock: lock,
        })
    }

    /// Serve until `shutdown` resolves, then finish in-flight requests and close the database.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let capacity_reconciler = tokio::spawn(ha::capacity::run(state.clone()));
        let oobm_sync = tokio::spawn(oobm::sync::run(state.clone()));
        let mail_outbox = tokio::spawn(mail::outbox::run(state.clone()));
        // The HA engine leads while it holds the lease; until its first renewal, commands carry the
        // epoch in force. At shutdown it gives the lease up so another server takes over at once.
        if let Ok((_, epoch, _)) = state.db.lease_current().await {
            state.hub.raise_epoch(epoch);
        }
        let mut ha_engine = tokio::spawn(ha::run::run(state.clone(), state.shutting_down.clone()));
        let router = http::router(self.state, self.web_dir.as_deref());
        tracing::info!(address = %self.local_addr, "listening");
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let shutdown_started = self.shutdown_started;
        let shutdown = async move {
            shutdown.await;
            // End the event streams, or graceful shutdown would wait for every open console.
            let _ = shutdown_started.send(true);
        };
        let served = axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await;
        capacity_reconciler.abort();
        oobm_sync.abort();
        mail_outbox.abort();
        if tokio::time::timeout(Duration::from_secs(2), &mut ha_engine).await.is_err() {
            ha_engine.abort();
        }
        served.context("server failed")?;
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
