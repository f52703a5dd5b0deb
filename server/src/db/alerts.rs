//! Alerts: raise (deduplicated by key), clear, list, acknowledge.

use super::*;
use api::v1::{Alert, AlertId, AlertSeverity, AlertStatusFilter};
use api::{ClusterId, HostId, VmId};

/// An alert to raise. `dedupe_key` names the condition: while an uncleared alert with the same key
/// exists, raising again updates that alert instead of adding one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub kind: String,
    pub severity: AlertSeverity,
    pub cluster_id: Option<ClusterId>,
    pub host_id: Option<HostId>,
    pub vm_id: Option<VmId>,
    pub message: String,
    pub dedupe_key: String,
}

/// What raising did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Raised {
    /// A new alert.
    New(Alert),
    /// The condition's alert was already there; its message or severity changed, so it was updated
    /// and is open again (news for whoever acknowledged the old text).
    Updated(Alert),
    /// The condition's alert was already there, unchanged.
    Unchanged(Alert),
}

impl Raised {
    pub fn alert(&self) -> &Alert {
        match self {
            Raised::New(alert) | Raised::Updated(alert) | Raised::Unchanged(alert) => alert,
        }
    }
}

/// Why an acknowledgement did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum AcknowledgeRefusal {
    NotFound,
    Already { by: String, at: chrono::DateTime<chrono::Utc> },
}

const ALERT_COLUMNS: &str = "id, kind, severity, cluster_id, host_id, vm_id, message, raised_at, updated_at,
    acknowledged_at, acknowledged_by, cleared_at";

fn alert_from_row(row: &AnyRow) -> DbResult<Alert> {
    let id: String = row.try_get("id")?;
    Ok(Alert {
        id: id.parse().map_err(|_| DbError::Corrupt(format!("alerts.id = {id:?} is not a UUID")))?,
        kind: row.try_get("kind")?,
        severity: get_enum(row, "severity")?,
        cluster_id: get_opt_id(row, "cluster_id")?,
        host_id: get_opt_id(row, "host_id")?,
        vm_id: get_opt_id(row, "vm_id")?,
        message: row.try_get("message")?,
        raised_at: ms_to_time(row.try_get("raised_at")?),
        updated_at: ms_to_time(row.try_get("updated_at")?),
        acknowledged_at: row.try_get::<Option<i64>, _>("acknowledged_at")?.map(ms_to_time),
        acknowledged_by: row.try_get("acknowledged_by")?,
        cleared_at: row.try_get::<Option<i64>, _>("cleared_at")?.map(ms_to_time),
    })
}

async fn uncleared_by_key(tx: &mut sqlx::Transaction<'static, sqlx::Any>, key: &str) -> DbResult<Option<Alert>> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE dedupe_key = $1 AND cleared_at IS NULL");
    let row = sqlx::query(&sql).bind(key).fetch_optional(&mut **tx).await?;
    row.as_ref().map(alert_from_row).transpose()
}

impl Db {
    /// Raise an alert, or update the uncleared one of the same condition (one transaction). Two
    /// servers raising at once still make one alert: the loser of the unique index reads the
    /// winner's.
    pub async fn alert_raise(&self, new: &NewAlert) -> DbResult<Raised> {
        match self.alert_raise_once(new).await {
            Err(DbError::Query(error)) if is_unique_violation(&error) => self.alert_raise_once(new).await,
            other => other,
        }
    }

    async fn alert_raise_once(&self, new: &NewAlert) -> DbResult<Raised> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        if let Some(existing) = uncleared_by_key(&mut tx, &new.dedupe_key).await? {
            if existing.message == new.message && existing.severity == new.severity {
                return Ok(Raised::Unchanged(existing));
            }
            sqlx::query(
                "UPDATE alerts SET message = $1, severity = $2, updated_at = $3, acknowledged_at = NULL,
                    acknowledged_by = NULL WHERE id = $4",
            )
            .bind(&new.message)
            .bind(new.severity.as_str())
            .bind(now)
            .bind(existing.id.to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let alert =
                self.alert_fetch(existing.id).await?.ok_or_else(|| DbError::Corrupt("alert vanished".into()))?;
            return Ok(Raised::Updated(alert));
        }
        let id = AlertId::new_random();
        sqlx::query(
            "INSERT INTO alerts (id, kind, severity, cluster_id, host_id, vm_id, message, dedupe_key, raised_at,
                updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.to_string())
        .bind(&new.kind)
        .bind(new.severity.as_str())
        .bind(new.cluster_id.map(|id| id.to_string()))
        .bind(new.host_id.map(|id| id.to_string()))
        .bind(new.vm_id.map(|id| id.to_string()))
        .bind(&new.message)
        .bind(&new.dedupe_key)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let alert = self.alert_fetch(id).await?.ok_or_else(|| DbError::Corrupt("alert vanished".into()))?;
        Ok(Raised::New(alert))
    }

    /// The condition named by `dedupe_key` ended: its uncleared alert (if any) is cleared. Answers
    /// whether there was one.
    pub async fn alert_clear(&self, dedupe_key: &str) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("UPDATE alerts SET cleared_at = $1 WHERE dedupe_key = $2 AND cleared_at IS NULL")
            .bind(now_ms())
            .bind(dedupe_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn alert_fetch(&self, id: AlertId) -> DbResult<Option<Alert>> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    /// Newest first; `Open` lists those not acknowledged yet. At most `limit` (1 to 1000).
    pub async fn alert_list(&self, status: AlertStatusFilter, limit: u32) -> DbResult<Vec<Alert>> {
        let only_open = flag(status == AlertStatusFilter::Open);
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE ($1 = 0 OR acknowledged_at IS NULL)
             ORDER BY raised_at DESC, id DESC LIMIT $2"
        );
        let rows =
            sqlx::query(&sql).bind(only_open).bind(i64::from(limit.clamp(1, 1000))).fetch_all(&self.pool).await?;
        rows.iter().map(alert_from_row).collect()
    }

    /// Acknowledge an open alert as `by` (one transaction); refused when there is no such alert or
    /// someone already acknowledged it.
    pub async fn alert_acknowledge(&self, id: AlertId, by: &str) -> DbResult<Result<Alert, AcknowledgeRefusal>> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1");
        let Some(row) = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await? else {
            return Ok(Err(AcknowledgeRefusal::NotFound));
        };
        let current = alert_from_row(&row)?;
        if let (Some(at), Some(by)) = (current.acknowledged_at, current.acknowledged_by) {
            return Ok(Err(AcknowledgeRefusal::Already { by, at }));
        }
        sqlx::query("UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(by)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let alert = self.alert_fetch(id).await?.ok_or_else(|| DbError::Corrupt("alert vanished".into()))?;
        Ok(Ok(alert))
    }
}
