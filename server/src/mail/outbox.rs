//! The outbox reconciler: delivers queued alert mail. A reconciler in Oxide's sense: no input but the
//! database, idempotent, run once at start, whenever poked (`Outbox::poke`: mail queued, settings
//! saved), when the next retry falls due, and every `period` (mail queued through other servers).
//!
//! Each pass, while mail is enabled: queue the mail of recent alerts that have none (an alert raised
//! just before a server stopped), then claim each due mail with a conditional UPDATE (so of several
//! servers exactly one sends it), send it, and record the outcome: sent with the server's reply, or
//! pending again after an exponential back-off, or failed for good after `max_attempts`, with the
//! last error kept for the console.

use super::{OutgoingMail, SmtpAnswer};
use crate::app::{AppError, email};
use crate::events::error_chain;
use crate::state::AppState;
use std::time::Duration;

/// Due mails handled per pass (the next pass follows at once when there were this many).
const BATCH: u32 = 20;
/// Alerts checked for a missing mail per pass.
const CATCH_UP_BATCH: u32 = 200;
/// The shortest wait between passes, so that a clock step or a lapsed claim cannot spin the loop.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Mails of alerts that had none, queued by this pass.
    pub caught_up: usize,
    pub sent: usize,
    /// Attempts that failed and will be retried.
    pub retrying: usize,
    /// Mails given up for good by this pass.
    pub failed: usize,
    /// When the next mail falls due (`None`: nothing waiting).
    pub next_due: Option<chrono::DateTime<chrono::Utc>>,
}

/// Runs until the task is aborted.
pub async fn run(state: AppState) {
    let mut poked = state.outbox.subscribe();
    loop {
        let period = state.outbox.timing.period;
        let wait = match pass(&state).await {
            Ok(report) if report.sent + report.retrying + report.failed >= BATCH as usize => Duration::ZERO,
            Ok(report) => match report.next_due {
                Some(due) => (due - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO).min(period),
                None => period,
            },
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "mail outbox pass failed; trying again later");
                period
            }
        };
        let poke = async {
            if poked.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = poke => {}
            () = tokio::time::sleep(wait.max(MIN_WAIT)) => {}
        }
    }
}

/// One pass over the outbox (see the module documentation).
pub async fn pass(state: &AppState) -> Result<PassReport, AppError> {
    let mut report = PassReport::default();
    let Some(settings) = state.db.email_settings_fetch().await? else {
        return Ok(report);
    };
    if !settings.enabled {
        // Queued mail waits until mail is enabled again.
        return Ok(report);
    }
    let timing = state.outbox.timing;
    let window = chrono::Duration::from_std(timing.catch_up).unwrap_or(chrono::Duration::hours(1));
    let since = settings.enabled_at.map_or(chrono::Utc::now() - window, |at| at.max(chrono::Utc::now() - window));
    for alert_id in state.db.mail_alerts_without_mail(since, CATCH_UP_BATCH).await? {
        if let Some(alert) = state.db.alert_fetch(alert_id).await?
            && email::queue_for_alert(state, &settings, &alert).await?
        {
            report.caught_up += 1;
        }
    }
    let server = email::stored_server(state, &settings);
    let claimer = state.outbox.instance.as_str();
    for id in state.db.mail_due(BATCH).await? {
        let lease_until = chrono::Utc::now()
            + chrono::Duration::from_std(timing.claim_lease()).unwrap_or(chrono::Duration::minutes(5));
        let Some(claimed) = state.db.mail_claim(id, claimer, lease_until).await? else {
            continue; // another server took it, or it is no longer due
        };
        let answer = match &server {
            Ok(server) => {
                let mail = OutgoingMail {
                    from: settings.from_address.clone(),
                    to: claimed.recipients.clone(),
                    subject: claimed.subject.clone(),
                    body: claimed.body.clone(),
                    message_id: email::message_id(claimed.alert_id),
                };
                super::send(server, &mail).await
            }
            Err(problem) => SmtpAnswer {
                outcome: api::v1::SmtpOutcome::Failed,
                code: None,
                reply: problem.clone(),
                elapsed: Duration::ZERO,
            },
        };
        if answer.accepted() {
            if state.db.mail_mark_sent(id, claimer, &answer.summary()).await? {
                report.sent += 1;
                tracing::info!(mail = %id, alert = %claimed.alert_id, attempt = claimed.attempts,
                    elapsed_ms = answer.elapsed.as_millis() as u64, "alert mail sent: {}", answer.summary());
            }
            continue;
        }
        let retry_at = (claimed.attempts < timing.max_attempts).then(|| {
            chrono::Utc::now()
                + chrono::Duration::from_std(timing.backoff(claimed.attempts)).unwrap_or(chrono::Duration::minutes(10))
        });
        if state.db.mail_mark_attempt_failed(id, claimer, &answer.summary(), retry_at).await? {
            match retry_at {
                Some(at) => {
                    report.retrying += 1;
                    tracing::warn!(mail = %id, alert = %claimed.alert_id, attempt = claimed.attempts,
                        retry_at = %at.to_rfc3339(), "alert mail not sent: {}", answer.summary());
                }
                None => {
                    report.failed += 1;
                    tracing::error!(mail = %id, alert = %claimed.alert_id, attempts = claimed.attempts,
                        "alert mail given up: {}", answer.summary());
                }
            }
        }
    }
    report.next_due = state.db.mail_next_due().await?;
    Ok(report)
}
