//! Wire types for mail: SMTP settings, the test-mail result, which alert kinds are mailed, and the
//! outbox (one mail per alert) as the console shows it.

use super::{AlertId, AlertSeverity, alert_kind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Every alert kind that can be chosen for mail, in the order the console lists them: those of
/// [`alert_kind`] and the HA engine's (the server's `ha::decide::AlertKind`, kept in step by a test
/// there). A kind that is raised but missing here can still be mailed through
/// [`EmailSettings::all_alert_kinds`].
pub const MAILABLE_ALERT_KINDS: &[&str] = &[
    "host-failed",
    "host-fenced",
    "fencing-failed",
    "vm-restarted",
    "vm-restart-failed",
    alert_kind::POOL_OVERCOMMITTED,
    alert_kind::CAPACITY_DROPPED,
    alert_kind::NO_HA_TAG_HOST,
    alert_kind::OOBM_AUTH_ERROR,
    alert_kind::HA_PAUSED,
    "storage-heartbeat-lost",
    "primary-storage-down",
];

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpSecurity {
    /// Plain text (a relay on the same host or network only).
    None,
    /// Plain connect, then STARTTLS, which must succeed (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::None => "none",
            SmtpSecurity::Starttls => "starttls",
            SmtpSecurity::Tls => "tls",
        }
    }

    /// The port conventionally used with this security.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::None => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        }
    }
}

/// The stored SMTP settings as every answer shows them: the password only as `password_set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSettings {
    /// Alerts are mailed only while this is on (the test mail works either way).
    pub enabled: bool,
    /// SMTP server host name or IP address; empty until configured.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Empty: no SMTP authentication.
    pub username: String,
    /// Whether a password is stored (it is never shown).
    pub password_set: bool,
    /// The `From` of every mail, e.g. `Parapet <parapet@example.com>`.
    pub from_address: String,
    pub recipients: Vec<String>,
    /// The kinds mailed when `all_alert_kinds` is off (see [`MAILABLE_ALERT_KINDS`]).
    pub alert_kinds: Vec<String>,
    /// Mail every kind, including kinds added in later versions.
    pub all_alert_kinds: bool,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

/// `PUT /api/v1/settings/email`: the whole form. Validation errors are 400s naming the field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateEmailSettingsRequest {
    pub enabled: bool,
    pub host: String,
    /// Default: the usual port of `security`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: String,
    /// A new password; absent keeps the stored one (ignored, and the stored one removed, when
    /// `username` is empty).
    #[serde(default)]
    pub password: Option<String>,
    pub from_address: String,
    pub recipients: Vec<String>,
    #[serde(default)]
    pub alert_kinds: Vec<String>,
    #[serde(default)]
    pub all_alert_kinds: bool,
}

/// `POST /api/v1/settings/email/test`: send a test mail now. With `settings`, those (the form as
/// typed, not saved; a missing password means the stored one); without, the stored settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEmailRequest {
    #[serde(default)]
    pub settings: Option<UpdateEmailSettingsRequest>,
}

/// How an SMTP conversation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpOutcome {
    /// The server took the mail (2xx after the data).
    Accepted,
    /// The server answered with a 4xx or 5xx code (see `code` and `reply`).
    Rejected,
    /// No SMTP conversation: connection refused, no route, or no greeting within the timeout.
    CannotConnect,
    /// TLS could not be set up (STARTTLS not offered, untrusted certificate, handshake failure).
    TlsFailed,
    /// Anything else (a reply that is not SMTP, a timeout in the middle, ...).
    Failed,
}

/// What the SMTP server answered to a test mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEmailResult {
    pub outcome: SmtpOutcome,
    /// The SMTP reply code, when the server gave one (250 accepted, 550 rejected, ...).
    pub code: Option<u16>,
    /// The server's reply text, or what went wrong when there was no reply.
    pub reply: String,
    pub recipients: Vec<String>,
    pub elapsed_ms: u64,
}

/// Where a queued mail is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailStatus {
    /// Waiting for its (next) attempt at `next_attempt_at`.
    Pending,
    /// A server is sending it right now.
    Sending,
    Sent,
    /// Given up after the last attempt; `last_error` says why.
    Failed,
}

/// One mail of the outbox (`GET /api/v1/settings/email/outbox`): at most one per alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: uuid::Uuid,
    pub alert_id: AlertId,
    pub alert_kind: String,
    pub alert_severity: AlertSeverity,
    pub subject: String,
    pub recipients: Vec<String>,
    pub status: MailStatus,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The server's reply to the last attempt, or what went wrong.
    pub last_error: Option<String>,
    /// The server's acceptance reply, once sent.
    pub smtp_reply: Option<String>,
}

/// Query of `GET /api/v1/settings/email/outbox`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxQuery {
    /// At most this many, newest first [default 50, at most 500].
    #[serde(default)]
    pub limit: Option<u32>,
}
