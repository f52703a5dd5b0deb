//! Alert mail: the SMTP settings row and the mail outbox (queue idempotently per alert, claim with a
//! conditional UPDATE so that of several servers exactly one sends a mail, record each attempt).

use super::*;
use api::v1::{AlertId, AlertSeverity, MailStatus, OutboxMail, SmtpSecurity};

/// The stored SMTP settings (password still sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEmailSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    /// Sealed with the secrets key; empty when there is no password.
    pub password_sealed: String,
    pub from_address: String,
    pub recipients: Vec<String>,
    pub alert_kinds: Vec<String>,
    pub all_alert_kinds: bool,
    /// When mail was last switched on; alerts raised earlier are never mailed.
    pub enabled_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl StoredEmailSettings {
    /// Whether an alert of `kind` raised at `raised_at` is to be mailed under these settings.
    pub fn mails(&self, kind: &str, raised_at: DateTime<Utc>) -> bool {
        self.enabled
            && self.enabled_at.is_some_and(|since| raised_at >= since)
            && (self.all_alert_kinds || self.alert_kinds.iter().any(|chosen| chosen == kind))
    }
}

/// Settings to store (validated and the password sealed by `app::email`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailSettingsWrite {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password_sealed: String,
    pub from_address: String,
    pub recipients: Vec<String>,
    pub alert_kinds: Vec<String>,
    pub all_alert_kinds: bool,
    pub updated_by: String,
}

/// A mail to queue for an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMail {
    pub alert_id: AlertId,
    pub alert_kind: String,
    pub alert_severity: AlertSeverity,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// A mail this server claimed and must now send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedMail {
    pub id: uuid::Uuid,
    pub alert_id: AlertId,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Counting this attempt.
    pub attempts: u32,
}

const SETTINGS_COLUMNS: &str = "enabled, host, port, security, username, password_sealed, from_address, recipients,
    alert_kinds, all_alert_kinds, enabled_at, updated_at, updated_by";

const MAIL_COLUMNS: &str = "id, alert_id, alert_kind, alert_severity, recipients, subject, status, attempts,
    next_attempt_at, last_error, smtp_reply, created_at, sent_at";

fn settings_from_row(row: &AnyRow) -> DbResult<StoredEmailSettings> {
    let port = get_u32(row, "port")?;
    Ok(StoredEmailSettings {
        enabled: get_bool(row, "enabled")?,
        host: row.try_get("host")?,
        port: u16::try_from(port).map_err(|_| DbError::Corrupt(format!("email_settings.port = {port}")))?,
        security: get_enum(row, "security")?,
        username: row.try_get("username")?,
        password_sealed: row.try_get("password_sealed")?,
        from_address: row.try_get("from_address")?,
        recipients: get_string_list(row, "recipients")?,
        alert_kinds: get_string_list(row, "alert_kinds")?,
        all_alert_kinds: get_bool(row, "all_alert_kinds")?,
        enabled_at: row.try_get::<Option<i64>, _>("enabled_at")?.map(ms_to_time),
        updated_at: ms_to_time(row.try_get("updated_at")?),
        updated_by: row.try_get("updated_by")?,
    })
}

fn get_uuid(row: &AnyRow, column: &str) -> DbResult<uuid::Uuid> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| DbError::Corrupt(format!("{column} = {text:?} is not a UUID")))
}

fn mail_from_row(row: &AnyRow) -> DbResult<OutboxMail> {
    let status: MailStatus = get_enum(row, "status")?;
    Ok(OutboxMail {
        id: get_uuid(row, "id")?,
        alert_id: get_uuid(row, "alert_id").map(AlertId)?,
        alert_kind: row.try_get("alert_kind")?,
        alert_severity: get_enum(row, "alert_severity")?,
        subject: row.try_get("subject")?,
        recipients: get_string_list(row, "recipients")?,
        status,
        attempts: get_u32(row, "attempts")?,
        created_at: ms_to_time(row.try_get("created_at")?),
        next_attempt_at: (status == MailStatus::Pending)
            .then(|| row.try_get("next_attempt_at").map(ms_to_time))
            .transpose()?,
        sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(ms_to_time),
        last_error: row.try_get("last_error")?,
        smtp_reply: row.try_get("smtp_reply")?,
    })
}

impl Db {
    /// The stored settings; `None` until an admin saved them once.
    pub async fn email_settings_fetch(&self) -> DbResult<Option<StoredEmailSettings>> {
        let sql = format!("SELECT {SETTINGS_COLUMNS} FROM email_settings WHERE id = 1");
        let row = sqlx::query(&sql).fetch_optional(&self.pool).await?;
        row.as_ref().map(settings_from_row).transpose()
    }

    /// Store the settings (insert or replace the one row, in one statement so that two admins saving
    /// the first settings at once cannot collide). `enabled_at` becomes now when mail is switched on,
    /// stays while it stays on, and is cleared when it is switched off.
    pub async fn email_settings_store(&self, write: &EmailSettingsWrite) -> DbResult<StoredEmailSettings> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO email_settings (id, enabled, host, port, security, username, password_sealed, from_address,
                recipients, alert_kinds, all_alert_kinds, enabled_at, updated_at, updated_by)
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, host = excluded.host,
                port = excluded.port, security = excluded.security, username = excluded.username,
                password_sealed = excluded.password_sealed, from_address = excluded.from_address,
                recipients = excluded.recipients, alert_kinds = excluded.alert_kinds,
                all_alert_kinds = excluded.all_alert_kinds,
                enabled_at = CASE
                    WHEN excluded.enabled = 0 THEN NULL
                    WHEN email_settings.enabled = 1 AND email_settings.enabled_at IS NOT NULL
                        THEN email_settings.enabled_at
                    ELSE excluded.enabled_at END,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(flag(write.enabled))
        .bind(&write.host)
        .bind(i64::from(write.port))
        .bind(write.security.as_str())
        .bind(&write.username)
        .bind(&write.password_sealed)
        .bind(&write.from_address)
        .bind(string_list(&write.recipients))
        .bind(string_list(&write.alert_kinds))
        .bind(flag(write.all_alert_kinds))
        .bind(write.enabled.then_some(now))
        .bind(now)
        .bind(&write.updated_by)
        .execute(&mut *tx)
        .await?;
        let sql = format!("SELECT {SETTINGS_COLUMNS} FROM email_settings WHERE id = 1");
        let row = sqlx::query(&sql).fetch_one(&mut *tx).await?;
        let stored = settings_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Queue `mail` unless its alert already has one (by anyone, ever). Answers whether it was queued.
    pub async fn mail_enqueue(&self, mail: &NewMail) -> DbResult<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "INSERT INTO mail_outbox (id, alert_id, alert_kind, alert_severity, recipients, subject, body, status,
                attempts, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8)
             ON CONFLICT (alert_id) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(mail.alert_id.to_string())
        .bind(&mail.alert_kind)
        .bind(mail.alert_severity.as_str())
        .bind(string_list(&mail.recipients))
        .bind(&mail.subject)
        .bind(&mail.body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// Alerts raised at or after `since` that have no mail yet, oldest first (at most `limit`): what
    /// the outbox reconciler checks, so an alert whose mail was not queued when it was raised (the
    /// server stopped in between) still gets one.
    pub async fn mail_alerts_without_mail(&self, since: DateTime<Utc>, limit: u32) -> DbResult<Vec<AlertId>> {
        let rows = sqlx::query(
            "SELECT a.id FROM alerts a WHERE a.raised_at >= $1
                AND NOT EXISTS (SELECT 1 FROM mail_outbox m WHERE m.alert_id = a.id)
             ORDER BY a.raised_at, a.id LIMIT $2",
        )
        .bind(since.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| get_uuid(row, "id").map(AlertId)).collect()
    }

    /// Mails that may be claimed now: pending and due, or claimed by a sender whose claim lapsed.
    pub async fn mail_due(&self, limit: u32) -> DbResult<Vec<uuid::Uuid>> {
        let rows = sqlx::query(
            "SELECT id FROM mail_outbox
             WHERE (status = 'pending' AND next_attempt_at <= $1) OR (status = 'sending' AND claim_expires_at < $1)
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| get_uuid(row, "id")).collect()
    }

    /// When the next pending mail falls due (`None`: nothing pending).
    pub async fn mail_next_due(&self) -> DbResult<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE claim_expires_at END) AS due
             FROM mail_outbox WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?.map(ms_to_time))
    }

    /// Claim mail `id` for `claimer` until `lease_until`, counting an attempt. A conditional UPDATE:
    /// among servers trying at once exactly one succeeds; the others get `None`, as does anyone when
    /// the mail is not due (sent, failed, waiting, or validly claimed).
    pub async fn mail_claim(
        &self,
        id: uuid::Uuid,
        claimer: &str,
        lease_until: DateTime<Utc>,
    ) -> DbResult<Option<ClaimedMail>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE mail_outbox SET status = 'sending', attempts = attempts + 1, claimed_by = $1,
                claim_expires_at = $2, updated_at = $3
             WHERE id = $4 AND ((status = 'pending' AND next_attempt_at <= $3)
                OR (status = 'sending' AND claim_expires_at < $3))",
        )
        .bind(claimer)
        .bind(lease_until.timestamp_millis())
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT alert_id, recipients, subject, body, attempts FROM mail_outbox WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let mail = ClaimedMail {
            id,
            alert_id: AlertId(get_uuid(&row, "alert_id")?),
            recipients: get_string_list(&row, "recipients")?,
            subject: row.try_get("subject")?,
            body: row.try_get("body")?,
            attempts: get_u32(&row, "attempts")?,
        };
        tx.commit().await?;
        Ok(Some(mail))
    }

    /// The claimed mail was accepted by the SMTP server. Answers false when the claim was no longer
    /// `claimer`'s (it lapsed and another server took the mail over).
    pub async fn mail_mark_sent(&self, id: uuid::Uuid, claimer: &str, reply: &str) -> DbResult<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE mail_outbox SET status = 'sent', sent_at = $1, smtp_reply = $2, last_error = NULL,
                claimed_by = NULL, claim_expires_at = NULL, updated_at = $1
             WHERE id = $3 AND status = 'sending' AND claimed_by = $4",
        )
        .bind(now)
        .bind(reply)
        .bind(id.to_string())
        .bind(claimer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// The claimed mail's attempt failed with `error`: pending again from `retry_at`, or, with
    /// `None`, given up for good.
    pub async fn mail_mark_attempt_failed(
        &self,
        id: uuid::Uuid,
        claimer: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> DbResult<bool> {
        let now = now_ms();
        let status = if retry_at.is_some() { "pending" } else { "failed" };
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE mail_outbox SET status = $1, next_attempt_at = $2, last_error = $3, claimed_by = NULL,
                claim_expires_at = NULL, updated_at = $4
             WHERE id = $5 AND status = 'sending' AND claimed_by = $6",
        )
        .bind(status)
        .bind(retry_at.map_or(now, |at| at.timestamp_millis()))
        .bind(error)
        .bind(now)
        .bind(id.to_string())
        .bind(claimer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn mail_fetch(&self, id: uuid::Uuid) -> DbResult<Option<OutboxMail>> {
        let sql = format!("SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(mail_from_row).transpose()
    }

    /// The mail of an alert, if one was queued.
    pub async fn mail_fetch_by_alert(&self, alert: AlertId) -> DbResult<Option<OutboxMail>> {
        let sql = format!("SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE alert_id = $1");
        let row = sqlx::query(&sql).bind(alert.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(mail_from_row).transpose()
    }

    /// Newest first, at most `limit` (1 to 500).
    pub async fn mail_list(&self, limit: u32) -> DbResult<Vec<OutboxMail>> {
        let sql = format!("SELECT {MAIL_COLUMNS} FROM mail_outbox ORDER BY created_at DESC, id DESC LIMIT $1");
        let rows = sqlx::query(&sql).bind(i64::from(limit.clamp(1, 500))).fetch_all(&self.pool).await?;
        rows.iter().map(mail_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testdb::on_each_backend;

    fn write(enabled: bool) -> EmailSettingsWrite {
        EmailSettingsWrite {
            enabled,
            host: "smtp.example.com".into(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: "u".into(),
            password_sealed: "v1:sealed".into(),
            from_address: "p@example.com".into(),
            recipients: vec!["a@example.com".into(), "b@example.com".into()],
            alert_kinds: vec!["pool-overcommitted".into()],
            all_alert_kinds: false,
            updated_by: "admin".into(),
        }
    }

    async fn an_alert(db: &Db, key: &str) -> AlertId {
        let alert = NewAlert {
            kind: "pool-overcommitted".into(),
            severity: AlertSeverity::Warning,
            cluster_id: None,
            host_id: None,
            vm_id: None,
            message: "m".into(),
            dedupe_key: key.into(),
        };
        db.alert_raise(&alert).await.unwrap().alert().id
    }

    fn mail(alert: AlertId) -> NewMail {
        NewMail {
            alert_id: alert,
            alert_kind: "pool-overcommitted".into(),
            alert_severity: AlertSeverity::Warning,
            recipients: vec!["a@example.com".into()],
            subject: "s".into(),
            body: "b".into(),
        }
    }

    #[tokio::test]
    async fn settings_are_one_row_and_enabled_at_follows_the_switch() {
        on_each_backend(|db| async move {
            assert!(db.email_settings_fetch().await.unwrap().is_none());
            let first = db.email_settings_store(&write(true)).await.unwrap();
            assert_eq!(first.recipients, ["a@example.com", "b@example.com"]);
            assert_eq!(
                (first.port, first.security, first.password_sealed.as_str()),
                (587, SmtpSecurity::Starttls, "v1:sealed")
            );
            let since = first.enabled_at.expect("switched on now");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let again =
                db.email_settings_store(&EmailSettingsWrite { host: "other".into(), ..write(true) }).await.unwrap();
            assert_eq!((again.host.as_str(), again.enabled_at), ("other", Some(since)), "staying on keeps the time");
            let off = db.email_settings_store(&write(false)).await.unwrap();
            assert_eq!(off.enabled_at, None);
            let on = db.email_settings_store(&write(true)).await.unwrap();
            assert!(on.enabled_at.unwrap() > since, "switched on again: a new time");
            assert_eq!(db.email_settings_fetch().await.unwrap().unwrap(), on);
            assert!(on.mails("pool-overcommitted", Utc::now()));
            assert!(!on.mails("capacity-dropped", Utc::now()), "kind not chosen");
            assert!(!on.mails("pool-overcommitted", since), "raised before mail was switched on");
        })
        .await;
    }

    #[tokio::test]
    async fn an_alert_is_queued_once_whoever_queues_it() {
        on_each_backend(|db| async move {
            let alert = an_alert(&db, "k1").await;
            let other = an_alert(&db, "k2").await;
            assert_eq!(db.mail_alerts_without_mail(ms_to_time(0), 10).await.unwrap().len(), 2);
            assert!(db.mail_enqueue(&mail(alert)).await.unwrap());
            assert!(!db.mail_enqueue(&mail(alert)).await.unwrap(), "a repeat changes nothing");
            // Two handles at once (two servers): still one row.
            let (first, second) = (mail(other), mail(other));
            let (a, b) = tokio::join!(db.mail_enqueue(&first), db.mail_enqueue(&second));
            assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
            assert!(db.mail_alerts_without_mail(ms_to_time(0), 10).await.unwrap().is_empty());
            let listed = db.mail_list(10).await.unwrap();
            assert_eq!(listed.len(), 2);
            assert!(listed.iter().all(|mail| mail.status == MailStatus::Pending && mail.attempts == 0));
        })
        .await;
    }

    #[tokio::test]
    async fn one_claimer_wins_and_a_lapsed_claim_can_be_taken_over() {
        on_each_backend(|db| async move {
            let alert = an_alert(&db, "k").await;
            db.mail_enqueue(&mail(alert)).await.unwrap();
            let id = db.mail_due(10).await.unwrap()[0];
            let lease = Utc::now() + chrono::Duration::seconds(60);
            let (a, b) = tokio::join!(db.mail_claim(id, "a", lease), db.mail_claim(id, "b", lease));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(a.is_some() != b.is_some(), "exactly one claim succeeds: {a:?} {b:?}");
            let (winner, loser) = if a.is_some() { ("a", "b") } else { ("b", "a") };
            assert_eq!(a.or(b).unwrap().attempts, 1);
            assert!(db.mail_due(10).await.unwrap().is_empty(), "claimed: not due");
            assert!(!db.mail_mark_sent(id, loser, "250 ok").await.unwrap(), "only the claimer records");

            // A failed attempt: pending again, due at once here.
            assert!(db.mail_mark_attempt_failed(id, winner, "550 no", Some(Utc::now())).await.unwrap());
            let waiting = db.mail_fetch(id).await.unwrap().unwrap();
            assert_eq!(
                (waiting.status, waiting.attempts, waiting.last_error.as_deref()),
                (MailStatus::Pending, 1, Some("550 no"))
            );
            // A claim whose holder died: it lapses and another takes the mail over.
            let lapsed = Utc::now() - chrono::Duration::seconds(1);
            assert!(db.mail_claim(id, "a", lapsed).await.unwrap().is_some());
            assert_eq!(db.mail_next_due().await.unwrap(), Some(ms_to_time(lapsed.timestamp_millis())));
            let taken = db.mail_claim(id, "b", lease).await.unwrap().expect("the lapsed claim is taken over");
            assert_eq!(taken.attempts, 3);
            assert!(!db.mail_mark_sent(id, "a", "250 late").await.unwrap(), "the old holder no longer records");
            assert!(db.mail_mark_sent(id, "b", "250 ok").await.unwrap());
            let sent = db.mail_fetch_by_alert(alert).await.unwrap().unwrap();
            assert_eq!(
                (sent.status, sent.smtp_reply.as_deref(), sent.last_error),
                (MailStatus::Sent, Some("250 ok"), None)
            );
            assert!(db.mail_claim(id, "c", lease).await.unwrap().is_none(), "sent mail is never claimed again");
            assert_eq!(db.mail_next_due().await.unwrap(), None);
        })
        .await;
    }

    #[tokio::test]
    async fn a_mail_given_up_stays_failed_with_its_error() {
        on_each_backend(|db| async move {
            let alert = an_alert(&db, "k").await;
            db.mail_enqueue(&mail(alert)).await.unwrap();
            let id = db.mail_due(10).await.unwrap()[0];
            db.mail_claim(id, "a", Utc::now() + chrono::Duration::seconds(60)).await.unwrap().unwrap();
            assert!(db.mail_mark_attempt_failed(id, "a", "cannot connect: refused", None).await.unwrap());
            let failed = db.mail_fetch(id).await.unwrap().unwrap();
            assert_eq!((failed.status, failed.next_attempt_at), (MailStatus::Failed, None));
            assert_eq!(failed.last_error.as_deref(), Some("cannot connect: refused"));
            assert!(db.mail_due(10).await.unwrap().is_empty());
            assert_eq!(db.mail_next_due().await.unwrap(), None);
        })
        .await;
    }
}
