//! Out-of-band management: each host's BMC configuration (password sealed, never clear), the OOBM
//! switches of zones, clusters and hosts, and the power state the sync last read.

use super::*;
use api::v1::{Cluster, OobmDriver, OobmErrorKind, OobmFailure, PowerState, RedfishAuth, Zone};
use api::{ClusterId, HostId, ZoneId};
use std::collections::HashMap;
use std::future::Future;

/// A host's OOBM configuration and state as stored, with its zone's and cluster's switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OobmRecord {
    pub host_id: HostId,
    pub host_name: String,
    pub cluster_id: ClusterId,
    pub driver: OobmDriver,
    pub address: String,
    pub port: u16,
    pub username: String,
    /// AES-256-GCM, see `secrets::SecretBox`; opened only to talk to the BMC.
    pub password_sealed: String,
    pub ipmi_cipher_suite: u8,
    pub redfish_https: bool,
    pub redfish_accept_self_signed: bool,
    pub redfish_auth: RedfishAuth,
    pub redfish_system_id: Option<String>,
    pub host_enabled: bool,
    pub cluster_enabled: bool,
    pub zone_enabled: bool,
    /// As last read: `None` never read (or not since the configuration changed).
    pub power_state: Option<PowerState>,
    pub power_read_at: Option<DateTime<Utc>>,
    pub last_error: Option<OobmFailure>,
    pub last_auth_alert_at: Option<DateTime<Utc>>,
}

impl OobmRecord {
    /// OOBM is in effect only when zone, cluster and host are all on.
    pub fn effective(&self) -> bool {
        self.zone_enabled && self.cluster_enabled && self.host_enabled
    }

    /// The power state the API shows: `disabled` unless in effect, `unknown` before the first read.
    pub fn shown_power_state(&self) -> PowerState {
        if self.effective() { self.power_state.unwrap_or(PowerState::Unknown) } else { PowerState::Disabled }
    }
}

/// A host's OOBM configuration to store (the password already sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OobmConfig {
    pub driver: OobmDriver,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password_sealed: String,
    pub ipmi_cipher_suite: u8,
    pub redfish_https: bool,
    pub redfish_accept_self_signed: bool,
    pub redfish_auth: RedfishAuth,
    pub redfish_system_id: Option<String>,
}

/// What the host list shows about a host's OOBM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPowerView {
    pub effective: bool,
    pub power_state: PowerState,
}

/// The result of one power read, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerReading {
    Read(PowerState),
    Failed(OobmFailure),
}

const OOBM_SELECT: &str = "SELECT o.host_id, h.name AS host_name, h.cluster_id, o.driver, o.address, o.port,
        o.username, o.password_sealed, o.ipmi_cipher_suite, o.redfish_https, o.redfish_accept_self_signed,
        o.redfish_auth, o.redfish_system_id, o.enabled AS host_enabled, c.oobm_enabled AS cluster_enabled,
        z.oobm_enabled AS zone_enabled, o.power_state, o.power_read_at, o.last_error_kind, o.last_error,
        o.last_auth_alert_at
    FROM host_oobm o
    JOIN hosts h ON h.id = o.host_id
    JOIN clusters c ON c.id = h.cluster_id
    JOIN zones z ON z.id = h.zone_id";

fn oobm_from_row(row: &AnyRow) -> DbResult<OobmRecord> {
    let port = get_u32(row, "port")?;
    let suite = get_u32(row, "ipmi_cipher_suite")?;
    let error_kind: Option<String> = row.try_get("last_error_kind")?;
    let last_error = match error_kind {
        None => None,
        Some(kind) => Some(OobmFailure {
            kind: serde_json::from_value::<OobmErrorKind>(serde_json::Value::String(kind.clone()))
                .map_err(|_| DbError::Corrupt(format!("host_oobm.last_error_kind = {kind:?} is not a known value")))?,
            message: row.try_get::<Option<String>, _>("last_error")?.unwrap_or_default(),
        }),
    };
    let power_state: Option<String> = row.try_get("power_state")?;
    Ok(OobmRecord {
        host_id: get_id(row, "host_id")?,
        host_name: row.try_get("host_name")?,
        cluster_id: get_id(row, "cluster_id")?,
        driver: get_enum(row, "driver")?,
        address: row.try_get("address")?,
        port: u16::try_from(port).map_err(|_| DbError::Corrupt(format!("host_oobm.port = {port} is out of range")))?,
        username: row.try_get("username")?,
        password_sealed: row.try_get("password_sealed")?,
        ipmi_cipher_suite: u8::try_from(suite)
            .map_err(|_| DbError::Corrupt(format!("host_oobm.ipmi_cipher_suite = {suite} is out of range")))?,
        redfish_https: get_bool(row, "redfish_https")?,
        redfish_accept_self_signed: get_bool(row, "redfish_accept_self_signed")?,
        redfish_auth: get_enum(row, "redfish_auth")?,
        redfish_system_id: row.try_get("redfish_system_id")?,
        host_enabled: get_bool(row, "host_enabled")?,
        cluster_enabled: get_bool(row, "cluster_enabled")?,
        zone_enabled: get_bool(row, "zone_enabled")?,
        power_state: power_state
            .map(|text| {
                serde_json::from_value(serde_json::Value::String(text.clone()))
                    .map_err(|_| DbError::Corrupt(format!("host_oobm.power_state = {text:?} is not a known value")))
            })
            .transpose()?,
        power_read_at: row.try_get::<Option<i64>, _>("power_read_at")?.map(ms_to_time),
        last_error,
        last_auth_alert_at: row.try_get::<Option<i64>, _>("last_auth_alert_at")?.map(ms_to_time),
    })
}

impl Db {
    pub async fn oobm_fetch(&self, host: HostId) -> DbResult<Option<OobmRecord>> {
        let sql = format!("{OOBM_SELECT} WHERE o.host_id = $1");
        let row = sqlx::query(&sql).bind(host.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(oobm_from_row).transpose()
    }

    /// Every host whose OOBM is in effect (zone, cluster and host switches on), for the sync.
    pub async fn oobm_list_effective(&self) -> DbResult<Vec<OobmRecord>> {
        let sql =
            format!("{OOBM_SELECT} WHERE o.enabled = 1 AND c.oobm_enabled = 1 AND z.oobm_enabled = 1 ORDER BY h.name");
        sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(oobm_from_row).collect()
    }

    /// Whether OOBM is in effect and the power state to show, per host (`only`: one host).
    pub async fn oobm_power_views(&self, only: Option<HostId>) -> DbResult<HashMap<HostId, HostPowerView>> {
        let rows = match only {
            Some(id) => {
                let sql = format!("{OOBM_SELECT} WHERE o.host_id = $1");
                sqlx::query(&sql).bind(id.to_string()).fetch_all(&self.pool).await?
            }
            None => sqlx::query(OOBM_SELECT).fetch_all(&self.pool).await?,
        };
        let mut views = HashMap::with_capacity(rows.len());
        for row in &rows {
            let record = oobm_from_row(row)?;
            views.insert(
                record.host_id,
                HostPowerView { effective: record.effective(), power_state: record.shown_power_state() },
            );
        }
        Ok(views)
    }

    /// Store a host's OOBM configuration (its switch stays as it was, off for a new one). The power
    /// state read with the old settings no longer says anything: it is forgotten. Answers false when
    /// the host does not exist.
    pub async fn oobm_configure(&self, host: HostId, config: &OobmConfig) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT id FROM hosts WHERE id = $1")
            .bind(host.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        let updated = sqlx::query(
            "UPDATE host_oobm SET driver = $1, address = $2, port = $3, username = $4, password_sealed = $5,
                ipmi_cipher_suite = $6, redfish_https = $7, redfish_accept_self_signed = $8, redfish_auth = $9,
                redfish_system_id = $10, power_state = NULL, power_read_at = NULL, last_error_kind = NULL,
                last_error = NULL, updated_at = $11
             WHERE host_id = $12",
        )
        .bind(enum_text(&config.driver))
        .bind(&config.address)
        .bind(i64::from(config.port))
        .bind(&config.username)
        .bind(&config.password_sealed)
        .bind(i64::from(config.ipmi_cipher_suite))
        .bind(flag(config.redfish_https))
        .bind(flag(config.redfish_accept_self_signed))
        .bind(enum_text(&config.redfish_auth))
        .bind(config.redfish_system_id.clone())
        .bind(now_ms())
        .bind(host.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO host_oobm (host_id, driver, address, port, username, password_sealed,
                    ipmi_cipher_suite, redfish_https, redfish_accept_self_signed, redfish_auth, redfish_system_id,
                    enabled, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)",
            )
            .bind(host.to_string())
            .bind(enum_text(&config.driver))
            .bind(&config.address)
            .bind(i64::from(config.port))
            .bind(&config.username)
            .bind(&config.password_sealed)
            .bind(i64::from(config.ipmi_cipher_suite))
            .bind(flag(config.redfish_https))
            .bind(flag(config.redfish_accept_self_signed))
            .bind(enum_text(&config.redfish_auth))
            .bind(config.redfish_system_id.clone())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Turn a host's OOBM switch on or off; false when the host has no OOBM configuration.
    pub async fn oobm_set_host_enabled(&self, host: HostId, enabled: bool) -> DbResult<bool> {
        let result = sqlx::query("UPDATE host_oobm SET enabled = $1, updated_at = $2 WHERE host_id = $3")
            .bind(flag(enabled))
            .bind(now_ms())
            .bind(host.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn zone_set_oobm_enabled(&self, zone: ZoneId, enabled: bool) -> DbResult<Option<Zone>> {
        let result = sqlx::query("UPDATE zones SET oobm_enabled = $1 WHERE id = $2")
            .bind(flag(enabled))
            .bind(zone.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(self.zone_list().await?.into_iter().find(|candidate| candidate.id == zone))
    }

    pub async fn cluster_set_oobm_enabled(&self, cluster: ClusterId, enabled: bool) -> DbResult<Option<Cluster>> {
        let result = sqlx::query("UPDATE clusters SET oobm_enabled = $1 WHERE id = $2")
            .bind(flag(enabled))
            .bind(cluster.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() != 1 {
            return Ok(None);
        }
        self.cluster_fetch(cluster).await
    }

    /// Record one power read (or its failure). Answers whether the stored power state changed.
    pub async fn oobm_record_power(&self, host: HostId, reading: &PowerReading) -> DbResult<bool> {
        let (state, kind, message) = match reading {
            PowerReading::Read(state) => (*state, None, None),
            PowerReading::Failed(failure) => {
                (PowerState::Unknown, Some(enum_text(&failure.kind)), Some(failure.message.clone()))
            }
        };
        let state_text = enum_text(&state);
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT power_state FROM host_oobm WHERE host_id = $1")
            .bind(host.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let before: Option<String> = row.try_get("power_state")?;
        sqlx::query(
            "UPDATE host_oobm SET power_state = $1, power_read_at = $2, last_error_kind = $3, last_error = $4
             WHERE host_id = $5",
        )
        .bind(&state_text)
        .bind(now_ms())
        .bind(kind)
        .bind(message)
        .bind(host.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before.as_deref() != Some(state_text.as_str()))
    }

    /// Claim the right to raise a host's auth-error alert: true (and the time recorded) when none
    /// was raised since `now - interval`. One statement, so two servers never both claim it.
    pub async fn oobm_claim_auth_alert(
        &self,
        host: HostId,
        now: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> DbResult<bool> {
        let now_ms = now.timestamp_millis();
        let cutoff = now_ms - interval.num_milliseconds();
        let result = sqlx::query(
            "UPDATE host_oobm SET last_auth_alert_at = $1
             WHERE host_id = $2 AND (last_auth_alert_at IS NULL OR last_auth_alert_at <= $3)",
        )
        .bind(now_ms)
        .bind(host.to_string())
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replace a host's sealed password with `new_sealed` and run `apply` (the change on the BMC)
    /// inside the same transaction: committed when `apply` succeeds, rolled back when it fails.
    /// Refused when the stored password is no longer `expected_sealed` (changed meanwhile).
    pub async fn oobm_replace_password<E>(
        &self,
        host: HostId,
        expected_sealed: &str,
        new_sealed: &str,
        apply: impl Future<Output = Result<(), E>>,
    ) -> DbResult<Result<(), E>> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE host_oobm SET password_sealed = $1, power_state = NULL, last_error_kind = NULL,
                last_error = NULL, updated_at = $2
             WHERE host_id = $3 AND password_sealed = $4",
        )
        .bind(new_sealed)
        .bind(now_ms())
        .bind(host.to_string())
        .bind(expected_sealed)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Err(DbError::Refused(
                "the host's OOBM configuration changed while its password was being changed; try again".into(),
            ));
        }
        match apply.await {
            Ok(()) => {
                tx.commit().await?;
                Ok(Ok(()))
            }
            Err(error) => {
                tx.rollback().await?;
                Ok(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdb::{on_each_backend, registration};
    use super::*;

    async fn host(db: &Db) -> (HostId, ZoneId, ClusterId) {
        let zone = db.zone_insert("z", "hash").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "c").await.unwrap();
        let registration = registration("h1", "c", &[]);
        (db.host_register(zone.id, cluster.id, &registration).await.unwrap(), zone.id, cluster.id)
    }

    fn config(sealed: &str) -> OobmConfig {
        OobmConfig {
            driver: OobmDriver::Ipmitool,
            address: "10.0.0.5".into(),
            port: 623,
            username: "admin".into(),
            password_sealed: sealed.into(),
            ipmi_cipher_suite: 3,
            redfish_https: true,
            redfish_accept_self_signed: false,
            redfish_auth: RedfishAuth::Basic,
            redfish_system_id: None,
        }
    }

    #[tokio::test]
    async fn oobm_is_in_effect_only_with_all_three_switches_on() {
        on_each_backend(|db| async move {
            let (host, zone, cluster) = host(&db).await;
            assert!(db.oobm_fetch(host).await.unwrap().is_none());
            assert!(!db.oobm_set_host_enabled(host, true).await.unwrap(), "nothing to enable yet");
            assert!(db.oobm_configure(host, &config("v1:aa")).await.unwrap());
            assert!(!db.oobm_configure(HostId::new_random(), &config("v1:aa")).await.unwrap());
            let shown = |db: Db| async move { db.host_fetch(host).await.unwrap().unwrap() };
            assert_eq!(shown(db.clone()).await.power_state, PowerState::Disabled);
            assert!(db.oobm_set_host_enabled(host, true).await.unwrap());
            assert!(db.zone_set_oobm_enabled(zone, true).await.unwrap().unwrap().oobm_enabled);
            assert!(db.oobm_list_effective().await.unwrap().is_empty(), "the cluster is still off");
            assert!(db.cluster_set_oobm_enabled(cluster, true).await.unwrap().unwrap().oobm_enabled);
            let effective = db.oobm_list_effective().await.unwrap();
            assert_eq!(effective.len(), 1);
            assert_eq!(effective[0].host_name, "h1");
            let host_view = shown(db.clone()).await;
            assert!(host_view.oobm_enabled_effective);
            assert_eq!(host_view.power_state, PowerState::Unknown, "in effect but never read");

            assert!(db.oobm_record_power(host, &PowerReading::Read(PowerState::On)).await.unwrap());
            assert!(!db.oobm_record_power(host, &PowerReading::Read(PowerState::On)).await.unwrap());
            assert_eq!(shown(db.clone()).await.power_state, PowerState::On);
            let failure = OobmFailure { kind: OobmErrorKind::Auth, message: "refused".into() };
            assert!(db.oobm_record_power(host, &PowerReading::Failed(failure.clone())).await.unwrap());
            let record = db.oobm_fetch(host).await.unwrap().unwrap();
            assert_eq!((record.power_state, record.last_error), (Some(PowerState::Unknown), Some(failure)));

            // A new configuration forgets what the old one read, but keeps the switch.
            db.oobm_configure(host, &config("v1:bb")).await.unwrap();
            let record = db.oobm_fetch(host).await.unwrap().unwrap();
            assert_eq!((record.power_state, record.last_error, record.host_enabled), (None, None, true));
            assert!(db.zone_set_oobm_enabled(ZoneId::new_random(), true).await.unwrap().is_none());

            // Removing the host removes its BMC configuration with it.
            assert!(db.host_delete(host, None).await.unwrap());
            assert!(db.oobm_fetch(host).await.unwrap().is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn the_auth_alert_is_claimed_at_most_once_per_interval() {
        on_each_backend(|db| async move {
            let (host, _, _) = host(&db).await;
            db.oobm_configure(host, &config("v1:aa")).await.unwrap();
            let day = chrono::Duration::days(1);
            let now = Utc::now();
            assert!(db.oobm_claim_auth_alert(host, now, day).await.unwrap());
            assert!(!db.oobm_claim_auth_alert(host, now + chrono::Duration::hours(23), day).await.unwrap());
            assert!(db.oobm_claim_auth_alert(host, now + chrono::Duration::hours(25), day).await.unwrap());
        })
        .await;
    }

    #[tokio::test]
    async fn a_password_change_commits_only_when_the_bmc_took_it() {
        on_each_backend(|db| async move {
            let (host, _, _) = host(&db).await;
            db.oobm_configure(host, &config("v1:old")).await.unwrap();
            let refused = db.oobm_replace_password(host, "v1:old", "v1:new", async { Err("refused") }).await.unwrap();
            assert_eq!(refused, Err("refused"));
            assert_eq!(db.oobm_fetch(host).await.unwrap().unwrap().password_sealed, "v1:old", "rolled back");
            let stale = db.oobm_replace_password(host, "v1:other", "v1:new", async { Ok::<(), ()>(()) }).await;
            assert!(matches!(stale, Err(DbError::Refused(_))));
            db.oobm_replace_password(host, "v1:old", "v1:new", async { Ok::<(), ()>(()) }).await.unwrap().unwrap();
            assert_eq!(db.oobm_fetch(host).await.unwrap().unwrap().password_sealed, "v1:new");
        })
        .await;
    }
}
