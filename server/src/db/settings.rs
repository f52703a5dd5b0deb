//! Global settings: a key -> text table (`ha.tag`, later SMTP ...). An absent key is "not configured".

use super::*;

/// The setting naming the host tag of dedicated HA hosts (REFERENCE.md: `ha.tag`, e.g. `ha_host`).
/// Hosts carrying it take only VMs restarted by HA; when it is set and a cluster has no such host,
/// the capacity reconciler raises a `no-ha-tag-host` alert.
pub const HA_TAG_SETTING: &str = "ha.tag";

impl Db {
    pub async fn setting_get(&self, key: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|row| row.try_get("value")).transpose()?)
    }

    /// Set `key` to `value`, or with `None` remove it (not configured). One transaction.
    pub async fn setting_set(&self, key: &str, value: Option<&str>) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM settings WHERE key = $1").bind(key).execute(&mut *tx).await?;
        if let Some(value) = value {
            sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)")
                .bind(key)
                .bind(value)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The `ha.tag` setting, when set to a non-empty tag.
    pub async fn ha_tag(&self) -> DbResult<Option<String>> {
        Ok(self.setting_get(HA_TAG_SETTING).await?.map(|tag| tag.trim().to_owned()).filter(|tag| !tag.is_empty()))
    }
}
