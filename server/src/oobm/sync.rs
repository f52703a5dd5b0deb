//! The power-state sync: a reconciler that reads the power state of every host whose OOBM is in
//! effect, every `sync_interval` and when poked (`AppState::oobm_sync`, after a configuration or a
//! switch changed). It talks to at most `sync_concurrency` BMCs at once and each call ends within
//! `call_timeout`, so one dead BMC delays nobody else and a pass over n hosts takes at most
//! ceil(n / concurrency) timeouts. What it reads is stored and announced (`Event::HostChanged`) by
//! `app::oobm::refresh`, which also raises the auth-error alert.
//!
//! Several servers on one PostgreSQL database each poll every host; the readings agree, and the
//! alert claim in the database keeps the auth alert to one a day.

use crate::app;
use crate::events::error_chain;
use crate::state::AppState;
use futures::StreamExt;

/// Run until the task is aborted.
pub async fn run(state: AppState) {
    loop {
        sync_once(&state).await;
        let interval = state.settings.oobm.sync_interval;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.oobm_sync.notified() => {}
        }
    }
}

/// One pass over every host whose OOBM is in effect; answers how many were read successfully.
pub async fn sync_once(state: &AppState) -> usize {
    let records = match state.db.oobm_list_effective().await {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "OOBM sync cannot list the hosts");
            return 0;
        }
    };
    let concurrency = state.settings.oobm.sync_concurrency.max(1);
    futures::stream::iter(records)
        .map(|record| async move {
            match app::oobm::refresh(state, &record).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::debug!(host = %record.host_name, error = %error, "OOBM power state read failed");
                    false
                }
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}
