//! The audit log: append and query.

use super::*;
use api::v1::{AuditEntry, AuditQuery};

pub struct NewAuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub client: &'a str,
    /// What the call decided beyond its status (e.g. an overcommit override), if anything.
    pub detail: Option<&'a str>,
}

fn outcome(status: u16) -> &'static str {
    match status {
        0..=399 => "ok",
        400..=499 => "refused",
        _ => "failed",
    }
}

impl Db {
    pub async fn audit_insert(&self, entry: NewAuditEntry<'_>) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, outcome, status, client, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(now_ms())
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(outcome(entry.status))
        .bind(i64::from(entry.status))
        .bind(entry.client)
        .bind(entry.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first, filtered by actor (exact), target (contains) and time range; at most 1,000.
    pub async fn audit_list(&self, query: &AuditQuery) -> DbResult<Vec<AuditEntry>> {
        let limit = i64::from(query.limit.unwrap_or(200).clamp(1, 1000));
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, outcome, status, client, detail FROM audit_log
             WHERE ($1 = '' OR actor = $1)
               AND ($2 = '' OR target LIKE $3)
               AND at >= $4 AND at <= $5
             ORDER BY at DESC, id DESC
             LIMIT $6",
        )
        .bind(query.actor.clone().unwrap_or_default())
        .bind(query.target.clone().unwrap_or_default())
        .bind(format!("%{}%", query.target.clone().unwrap_or_default().replace(['%', '_'], "")))
        .bind(query.since.map(|time| time.timestamp_millis()).unwrap_or(0))
        .bind(query.until.map(|time| time.timestamp_millis()).unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: i64 = row.try_get("status")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: ms_to_time(row.try_get("at")?),
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    outcome: row.try_get("outcome")?,
                    status: u16::try_from(status).unwrap_or(0),
                    client: row.try_get("client")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}
