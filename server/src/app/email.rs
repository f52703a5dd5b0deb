//! Alert mail rules: validating and storing the SMTP settings (password sealed with the server's
//! secrets key, never shown), the test mail, composing one alert's mail, and queueing it: once per
//! alert, whoever queues it (the hook in `alerts::raise`, or the outbox reconciler catching up on an
//! alert whose server stopped before queueing), because the outbox is keyed by alert id.

use super::AppError;
use crate::db::{EmailSettingsWrite, NewMail, Raised, StoredEmailSettings};
use crate::events::error_chain;
use crate::mail::{self, OutgoingMail, SmtpServer};
use crate::secrets::Secret;
use crate::state::AppState;
use api::v1::{
    Alert, AlertId, EmailSettings, MAILABLE_ALERT_KINDS, OutboxMail, OutboxQuery, SmtpSecurity, TestEmailRequest,
    TestEmailResult, UpdateEmailSettingsRequest,
};

/// The context the SMTP password is sealed with.
pub const PASSWORD_CONTEXT: &str = "smtp-password";

const MAX_RECIPIENTS: usize = 50;
const MAX_CREDENTIAL: usize = 256;
/// Subjects are cut to this many characters (the full message is in the body).
const SUBJECT_CHARS: usize = 140;

fn bad(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::bad_request(code, message)
}

/// A settings request, checked; the password (if given) not yet sealed.
struct Checked {
    write: EmailSettingsWrite,
    password: Option<Secret>,
}

/// Validate the form; every refusal names its field. Host, from address and a recipient are
/// required when mail is enabled (and for a test); a disabled form may be saved half filled.
fn check(request: &UpdateEmailSettingsRequest, require_complete: bool) -> Result<Checked, AppError> {
    let host = request.host.trim();
    let host = host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(host);
    if !host.is_empty() {
        let ok = host.len() <= 253
            && !host.starts_with('-')
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !ok {
            return Err(bad(
                "invalid-host",
                "host: must be a host name or IP address (letters, digits, '.', '-', ':'; at most 253)",
            ));
        }
    } else if require_complete {
        return Err(bad("invalid-host", "host: required (the SMTP server's name or address)"));
    }
    if request.port == Some(0) {
        return Err(bad("invalid-port", "port: must be 1 to 65535"));
    }
    let port = request.port.unwrap_or_else(|| request.security.default_port());
    let username = request.username.trim().to_owned();
    if username.len() > MAX_CREDENTIAL || username.chars().any(char::is_control) {
        return Err(bad("invalid-username", "username: at most 256 bytes, no control characters"));
    }
    let password = match &request.password {
        None => None,
        Some(_) if username.is_empty() => {
            return Err(bad("invalid-password", "password: give a username too, or leave the password out"));
        }
        Some(password) if password.is_empty() => {
            return Err(bad("invalid-password", "password: must not be empty (leave it out to keep the stored one)"));
        }
        Some(password) if password.len() > MAX_CREDENTIAL || password.chars().any(char::is_control) => {
            return Err(bad("invalid-password", "password: at most 256 bytes, no control characters"));
        }
        Some(password) => Some(Secret::new(password.clone())),
    };
    let from_address = request.from_address.trim().to_owned();
    if !from_address.is_empty() {
        mail::parse_mailbox(&from_address)
            .map_err(|error| bad("invalid-from-address", format!("from_address: not an email address ({error})")))?;
    } else if require_complete {
        return Err(bad("invalid-from-address", "from_address: required, e.g. Parapet <parapet@example.com>"));
    }
    if request.recipients.len() > MAX_RECIPIENTS {
        return Err(bad("invalid-recipients", format!("recipients: at most {MAX_RECIPIENTS}")));
    }
    let mut recipients: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, recipient) in request.recipients.iter().enumerate() {
        let recipient = recipient.trim();
        let mailbox = mail::parse_mailbox(recipient).map_err(|error| {
            bad("invalid-recipients", format!("recipients[{index}]: {recipient:?} is not an email address ({error})"))
        })?;
        if !seen.insert(mailbox.email.to_string().to_ascii_lowercase()) {
            return Err(bad("invalid-recipients", format!("recipients[{index}]: {recipient:?} is listed twice")));
        }
        recipients.push(recipient.to_owned());
    }
    if require_complete && recipients.is_empty() {
        return Err(bad("invalid-recipients", "recipients: at least one address"));
    }
    let mut alert_kinds: Vec<String> = Vec::new();
    for (index, kind) in request.alert_kinds.iter().enumerate() {
        if !MAILABLE_ALERT_KINDS.contains(&kind.as_str()) {
            return Err(bad(
                "invalid-alert-kinds",
                format!("alert_kinds[{index}]: unknown kind {kind:?} (known: {})", MAILABLE_ALERT_KINDS.join(", ")),
            ));
        }
        if !alert_kinds.contains(kind) {
            alert_kinds.push(kind.clone());
        }
    }
    if request.enabled && !request.all_alert_kinds && alert_kinds.is_empty() {
        return Err(bad("invalid-alert-kinds", "alert_kinds: choose at least one kind, or all_alert_kinds"));
    }
    Ok(Checked {
        write: EmailSettingsWrite {
            enabled: request.enabled,
            host: host.to_owned(),
            port,
            security: request.security,
            username,
            password_sealed: String::new(),
            from_address,
            recipients,
            alert_kinds,
            all_alert_kinds: request.all_alert_kinds,
            updated_by: String::new(),
        },
        password,
    })
}

/// The API's view of the stored settings (never the password); defaults before the first save.
pub fn view(stored: Option<&StoredEmailSettings>) -> EmailSettings {
    match stored {
        Some(stored) => EmailSettings {
            enabled: stored.enabled,
            host: stored.host.clone(),
            port: stored.port,
            security: stored.security,
            username: stored.username.clone(),
            password_set: !stored.password_sealed.is_empty(),
            from_address: stored.from_address.clone(),
            recipients: stored.recipients.clone(),
            alert_kinds: stored.alert_kinds.clone(),
            all_alert_kinds: stored.all_alert_kinds,
            updated_at: Some(stored.updated_at),
            updated_by: Some(stored.updated_by.clone()),
        },
        None => EmailSettings {
            enabled: false,
            host: String::new(),
            port: SmtpSecurity::default().default_port(),
            security: SmtpSecurity::default(),
            username: String::new(),
            password_set: false,
            from_address: String::new(),
            recipients: Vec::new(),
            alert_kinds: MAILABLE_ALERT_KINDS.iter().map(|kind| (*kind).to_owned()).collect(),
            all_alert_kinds: false,
            updated_at: None,
            updated_by: None,
        },
    }
}

/// `GET /settings/email`.
pub async fn show(state: &AppState) -> Result<EmailSettings, AppError> {
    Ok(view(state.db.email_settings_fetch().await?.as_ref()))
}

/// The stored password, opened; an empty sealed value is no password.
fn stored_password(state: &AppState, stored: &StoredEmailSettings) -> Result<Option<Secret>, String> {
    if stored.password_sealed.is_empty() {
        return Ok(None);
    }
    state
        .secrets
        .open(&stored.password_sealed, PASSWORD_CONTEXT)
        .map(Some)
        .map_err(|error| format!("the stored SMTP password cannot be used: {error}; save the settings again"))
}

fn server_of(state: &AppState, write: &EmailSettingsWrite, password: Option<Secret>) -> SmtpServer {
    SmtpServer {
        host: write.host.clone(),
        port: write.port,
        security: write.security,
        credentials: (!write.username.is_empty())
            .then(|| (write.username.clone(), password.unwrap_or_else(|| Secret::new("")))),
        timeout: state.outbox.timing.smtp_timeout,
    }
}

/// The SMTP server of the stored settings (for the outbox reconciler).
pub fn stored_server(state: &AppState, stored: &StoredEmailSettings) -> Result<SmtpServer, String> {
    let password = stored_password(state, stored)?;
    Ok(SmtpServer {
        host: stored.host.clone(),
        port: stored.port,
        security: stored.security,
        credentials: (!stored.username.is_empty())
            .then(|| (stored.username.clone(), password.unwrap_or_else(|| Secret::new("")))),
        timeout: state.outbox.timing.smtp_timeout,
    })
}

/// `PUT /settings/email`: store the form (a password left out keeps the stored one; an empty
/// username removes it).
pub async fn update(
    state: &AppState,
    request: UpdateEmailSettingsRequest,
    username: &str,
) -> Result<EmailSettings, AppError> {
    let mut checked = check(&request, request.enabled)?;
    let existing = state.db.email_settings_fetch().await?;
    checked.write.updated_by = username.to_owned();
    checked.write.password_sealed = match (&checked.password, &existing) {
        _ if checked.write.username.is_empty() => String::new(),
        (Some(password), _) => state.secrets.seal(password, PASSWORD_CONTEXT).map_err(AppError::internal)?,
        (None, Some(existing)) => existing.password_sealed.clone(),
        (None, None) => String::new(),
    };
    let stored = state.db.email_settings_store(&checked.write).await?;
    tracing::info!(
        enabled = stored.enabled,
        host = %stored.host,
        port = stored.port,
        security = stored.security.as_str(),
        recipients = stored.recipients.len(),
        by = username,
        "email settings saved"
    );
    // Mail waiting for a corrected configuration goes out at once.
    state.outbox.poke();
    Ok(view(Some(&stored)))
}

/// `POST /settings/email/test`: send a test mail with the given settings (the form as typed; a
/// missing password: the stored one) or the stored ones, and answer what the SMTP server said.
pub async fn test(state: &AppState, request: TestEmailRequest, username: &str) -> Result<TestEmailResult, AppError> {
    let existing = state.db.email_settings_fetch().await?;
    let (write, password) = match request.settings {
        Some(settings) => {
            let checked = check(&settings, true)?;
            let password = match (checked.password, &existing) {
                (Some(password), _) => Some(password),
                (None, Some(existing)) if !checked.write.username.is_empty() => {
                    stored_password(state, existing).map_err(|message| bad("missing-password", message))?
                }
                (None, _) => None,
            };
            (checked.write, password)
        }
        None => {
            let Some(existing) = existing else {
                return Err(bad("not-configured", "settings: nothing is stored yet; send the form to test"));
            };
            let form = UpdateEmailSettingsRequest {
                enabled: existing.enabled,
                host: existing.host.clone(),
                port: Some(existing.port),
                security: existing.security,
                username: existing.username.clone(),
                password: None,
                from_address: existing.from_address.clone(),
                recipients: existing.recipients.clone(),
                alert_kinds: existing.alert_kinds.clone(),
                all_alert_kinds: existing.all_alert_kinds,
            };
            let checked = check(&form, true)?;
            let password = stored_password(state, &existing).map_err(|message| bad("missing-password", message))?;
            (checked.write, password)
        }
    };
    if !write.username.is_empty() && password.is_none() {
        return Err(bad("missing-password", "password: required with a username (nothing is stored)"));
    }
    let server = server_of(state, &write, password);
    let mail = OutgoingMail {
        from: write.from_address.clone(),
        to: write.recipients.clone(),
        subject: "[Parapet] Test email".to_owned(),
        body: format!(
            "This is a test mail from Parapet, sent by {username} at {}.\n\n\
             If you can read it, alert mail will reach you.\n\n-- \nParapet\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        ),
        message_id: format!("<test-{}@parapet>", uuid::Uuid::new_v4().simple()),
    };
    let answer = mail::send(&server, &mail).await;
    tracing::info!(host = %server.host, port = server.port, outcome = ?answer.outcome, by = username,
        "test email: {}", answer.summary());
    Ok(TestEmailResult {
        outcome: answer.outcome,
        code: answer.code,
        reply: answer.reply,
        recipients: write.recipients,
        elapsed_ms: u64::try_from(answer.elapsed.as_millis()).unwrap_or(u64::MAX),
    })
}

/// `GET /settings/email/outbox`: recent mails, newest first.
pub async fn outbox(state: &AppState, query: &OutboxQuery) -> Result<Vec<OutboxMail>, AppError> {
    if query.limit.is_some_and(|limit| !(1..=500).contains(&limit)) {
        return Err(bad("invalid-limit", "limit: must be 1 to 500"));
    }
    Ok(state.db.mail_list(query.limit.unwrap_or(50)).await?)
}

/// The Message-ID of an alert's mail: the same for every attempt (see `mail::OutgoingMail`).
pub fn message_id(alert: AlertId) -> String {
    format!("<alert-{alert}@parapet>")
}

/// Subject and body of an alert's mail. The subject names the severity and the kind.
pub async fn compose(state: &AppState, alert: &Alert) -> (String, String) {
    let mut place = Vec::new();
    if let Some(id) = alert.cluster_id {
        let name = state.db.cluster_fetch(id).await.ok().flatten().map_or_else(|| id.to_string(), |c| c.name);
        place.push(format!("cluster {name}"));
    }
    if let Some(id) = alert.host_id {
        let name = state.db.host_fetch(id).await.ok().flatten().map_or_else(|| id.to_string(), |h| h.name);
        place.push(format!("host {name}"));
    }
    if let Some(id) = alert.vm_id {
        let name = state.db.vm_fetch(id).await.ok().flatten().map_or_else(|| id.to_string(), |vm| vm.name);
        place.push(format!("VM {name}"));
    }
    let place = if place.is_empty() { "the pool".to_owned() } else { place.join(" / ") };
    let one_line: String = alert.message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut headline: String = one_line.chars().take(SUBJECT_CHARS).collect();
    if one_line.chars().count() > SUBJECT_CHARS {
        headline.push('…');
    }
    let subject = format!("[Parapet] {} {}: {headline}", alert.severity.as_str(), alert.kind);
    let body = format!(
        "Parapet raised an alert.\n\n\
         Kind:     {kind}\n\
         Severity: {severity}\n\
         Where:    {place}\n\
         Raised:   {raised}\n\
         Alert id: {id}\n\n\
         {message}\n\n\
         Acknowledge it on the console's Alerts page.\n\n-- \nParapet\n",
        kind = alert.kind,
        severity = alert.severity.as_str(),
        raised = alert.raised_at.format("%Y-%m-%d %H:%M:%S UTC"),
        id = alert.id,
        message = alert.message,
    );
    (subject, body)
}

/// Queue `alert`'s mail when the settings say it is to be mailed. Answers whether this call queued
/// it (false: not to be mailed, or already queued by anyone).
pub async fn queue_for_alert(
    state: &AppState,
    settings: &StoredEmailSettings,
    alert: &Alert,
) -> Result<bool, AppError> {
    if !settings.mails(&alert.kind, alert.raised_at) || settings.recipients.is_empty() {
        return Ok(false);
    }
    let (subject, body) = compose(state, alert).await;
    let queued = state
        .db
        .mail_enqueue(&NewMail {
            alert_id: alert.id,
            alert_kind: alert.kind.clone(),
            alert_severity: alert.severity,
            recipients: settings.recipients.clone(),
            subject,
            body,
        })
        .await?;
    if queued {
        tracing::info!(alert = %alert.id, kind = %alert.kind, "alert mail queued");
    }
    Ok(queued)
}

/// The hook in `alerts::raise`: a new alert gets its mail queued and the outbox woken. A repeat or
/// an update of the same alert never mails again. Mail trouble never fails the raise: it is logged,
/// and the outbox reconciler catches up on the alert later.
pub async fn alert_raised(state: &AppState, raised: &Raised) {
    let Raised::New(alert) = raised else {
        return;
    };
    let settings = match state.db.email_settings_fetch().await {
        Ok(Some(settings)) => settings,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(alert = %alert.id, error = %error_chain(&error), "cannot read the email settings");
            return;
        }
    };
    match queue_for_alert(state, &settings, alert).await {
        Ok(true) => state.outbox.poke(),
        Ok(false) => {}
        Err(error) => tracing::warn!(alert = %alert.id, error = %error_chain(&error), "cannot queue the alert mail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> UpdateEmailSettingsRequest {
        UpdateEmailSettingsRequest {
            enabled: true,
            host: "smtp.example.com".into(),
            port: None,
            security: SmtpSecurity::Starttls,
            username: "parapet".into(),
            password: Some("smtp-pass-1".into()),
            from_address: "Parapet <parapet@example.com>".into(),
            recipients: vec!["ops@example.com".into(), "Oncall <oncall@example.com>".into()],
            alert_kinds: vec!["pool-overcommitted".into()],
            all_alert_kinds: false,
        }
    }

    /// The 400 for `change`d form: its code and whether its message names `field`.
    fn refusal(change: impl FnOnce(&mut UpdateEmailSettingsRequest)) -> (String, String) {
        let mut request = form();
        change(&mut request);
        match check(&request, request.enabled) {
            Err(AppError::BadRequest { code, message }) => (code.to_owned(), message),
            Err(other) => panic!("not a 400: {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_good_form_passes_with_the_port_of_its_security() {
        let checked = check(&form(), true).unwrap();
        assert_eq!(checked.write.port, 587);
        assert_eq!(checked.password.unwrap().expose(), "smtp-pass-1");
        let tls = UpdateEmailSettingsRequest { security: SmtpSecurity::Tls, ..form() };
        assert_eq!(check(&tls, true).unwrap().write.port, 465);
    }

    #[test]
    fn every_refusal_names_its_field() {
        type Change = Box<dyn FnOnce(&mut UpdateEmailSettingsRequest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("host", Box::new(|r| r.host = "bad host!".into())),
            ("host", Box::new(|r| r.host = String::new())),
            ("port", Box::new(|r| r.port = Some(0))),
            ("username", Box::new(|r| r.username = "a\nb".into())),
            ("password", Box::new(|r| r.password = Some(String::new()))),
            ("password", Box::new(|r| r.username = String::new())),
            ("from_address", Box::new(|r| r.from_address = "not-an-address".into())),
            ("from_address", Box::new(|r| r.from_address = String::new())),
            ("recipients[1]", Box::new(|r| r.recipients[1] = "nobody".into())),
            ("recipients[1]", Box::new(|r| r.recipients[1] = "OPS@example.com".into())),
            ("recipients", Box::new(|r| r.recipients.clear())),
            ("alert_kinds[0]", Box::new(|r| r.alert_kinds = vec!["no-such-kind".into()])),
            ("alert_kinds", Box::new(|r| r.alert_kinds.clear())),
        ];
        for (field, change) in cases {
            let (code, message) = refusal(change);
            assert!(message.starts_with(&format!("{field}:")), "{field}: {code} {message}");
            assert!(!message.contains("smtp-pass-1"), "{message}");
        }
    }

    #[test]
    fn every_kind_the_ha_engine_raises_can_be_chosen() {
        use crate::ha::decide::AlertKind;
        // Exhaustive: a new kind of the engine does not compile here until it is listed.
        let every = |kind: AlertKind| match kind {
            AlertKind::HostFailed
            | AlertKind::HostFenced
            | AlertKind::FencingFailed
            | AlertKind::VmRestarted
            | AlertKind::VmRestartFailed
            | AlertKind::StorageHeartbeatLost
            | AlertKind::PrimaryStorageDown => kind.as_str(),
        };
        for kind in [
            AlertKind::HostFailed,
            AlertKind::HostFenced,
            AlertKind::FencingFailed,
            AlertKind::VmRestarted,
            AlertKind::VmRestartFailed,
            AlertKind::StorageHeartbeatLost,
            AlertKind::PrimaryStorageDown,
        ] {
            assert!(MAILABLE_ALERT_KINDS.contains(&every(kind)), "{} cannot be chosen for mail", kind.as_str());
        }
    }

    #[test]
    fn a_disabled_form_may_be_incomplete_but_not_wrong() {
        let draft = UpdateEmailSettingsRequest {
            enabled: false,
            host: String::new(),
            from_address: String::new(),
            recipients: vec![],
            alert_kinds: vec![],
            ..form()
        };
        assert!(check(&draft, false).is_ok());
        let wrong = UpdateEmailSettingsRequest { recipients: vec!["x".into()], ..draft };
        assert!(check(&wrong, false).is_err());
    }
}
