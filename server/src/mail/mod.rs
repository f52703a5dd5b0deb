//! Outgoing mail: [`send`] holds one SMTP conversation with lettre (tokio, rustls with Mozilla's
//! roots, as the rest of the server) and says how it ended, in the terms an operator acts on
//! (accepted with the server's reply, rejected with its code and text, cannot connect, TLS failed).
//! [`outbox`] is the reconciler that delivers queued alert mail; [`Outbox`] is its handle in
//! `AppState` (the poke, and the timings tests shorten).
//!
//! Passwords: the SMTP password is a [`Secret`] until lettre's `Credentials` takes it for AUTH; any
//! text that comes back (a reply, an error) is scrubbed of it before it is stored or shown.

pub mod outbox;

use crate::secrets::{MASK, Secret};
use api::v1::{SmtpOutcome, SmtpSecurity};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to reach the SMTP server.
#[derive(Clone, Debug)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Username and password for AUTH; `None`: no authentication.
    pub credentials: Option<(String, Secret)>,
    /// Bounds connecting and each reply; the whole conversation gets a few times this.
    pub timeout: Duration,
}

/// One mail to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// `<...>`; the same id for every attempt of one alert's mail, so that a mail sent twice after
    /// a crash between the server's acceptance and our record of it is one message to mail clients.
    pub message_id: String,
}

/// How one SMTP conversation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpAnswer {
    pub outcome: SmtpOutcome,
    /// The SMTP reply code, when there was a reply.
    pub code: Option<u16>,
    /// The server's reply text, or what went wrong.
    pub reply: String,
    pub elapsed: Duration,
}

impl SmtpAnswer {
    pub fn accepted(&self) -> bool {
        self.outcome == SmtpOutcome::Accepted
    }

    /// One line for logs and the outbox: `550 5.1.1 no such user`, `cannot connect: ...`.
    pub fn summary(&self) -> String {
        match (self.outcome, self.code) {
            (_, Some(code)) => format!("{code} {}", self.reply),
            (SmtpOutcome::CannotConnect, None) => format!("cannot connect: {}", self.reply),
            (SmtpOutcome::TlsFailed, None) => format!("TLS failed: {}", self.reply),
            (_, None) => self.reply.clone(),
        }
    }
}

/// Parse one address (`ops@example.com` or `Ops <ops@example.com>`), as the mail will carry it.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim().parse::<Mailbox>().map_err(|error| error.to_string())
}

/// The poke and the timings of the outbox reconciler, shared through `AppState`.
#[derive(Clone, Debug)]
pub struct Outbox {
    poke: Arc<tokio::sync::watch::Sender<u64>>,
    pub timing: OutboxTiming,
    /// Names this server's claims on mails (random per process).
    pub instance: String,
}

/// How the outbox reconciler paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxTiming {
    /// A pass runs at least this often (mail queued through other servers, lapsed claims).
    pub period: Duration,
    /// The wait after the first failed attempt; it doubles after each further one ...
    pub backoff_base: Duration,
    /// ... up to this.
    pub backoff_cap: Duration,
    /// After this many failed attempts the mail is given up (status `failed`).
    pub max_attempts: u32,
    /// SMTP connect and reply timeout (also the test mail's).
    pub smtp_timeout: Duration,
    /// Alerts raised this long ago or less are checked for a missing mail on every pass.
    pub catch_up: Duration,
}

impl Default for OutboxTiming {
    fn default() -> Self {
        OutboxTiming {
            period: Duration::from_secs(30),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(600),
            max_attempts: 10,
            smtp_timeout: Duration::from_secs(10),
            catch_up: Duration::from_secs(3600),
        }
    }
}

impl OutboxTiming {
    /// The wait before the next attempt after `failed_attempts` failures (1 = the first failed).
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(30);
        self.backoff_base.saturating_mul(1u32 << doublings).min(self.backoff_cap)
    }

    /// How long a claimed mail stays claimed: well past a whole conversation, so that only a
    /// sender that died lets it lapse.
    pub fn claim_lease(&self) -> Duration {
        self.smtp_timeout.saturating_mul(6).max(Duration::from_secs(30))
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(OutboxTiming::default())
    }
}

impl Outbox {
    pub fn new(timing: OutboxTiming) -> Outbox {
        Outbox {
            poke: Arc::new(tokio::sync::watch::channel(0).0),
            timing,
            instance: format!("parapet-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Wake the reconciler (mail was queued, or the settings changed). Coalesces: a burst of pokes
    /// wakes it once.
    pub fn poke(&self) {
        self.poke.send_modify(|count| *count = count.wrapping_add(1));
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.poke.subscribe()
    }
}

/// Replace every occurrence of the password in `text` with the mask.
fn scrub(text: &str, server: &SmtpServer) -> String {
    match &server.credentials {
        Some((_, password)) if !password.is_empty() => text.replace(password.expose(), MASK),
        _ => text.to_owned(),
    }
}

/// The TLS parameters for the server's host name (Mozilla's roots, as the rest of the server).
fn tls_parameters(server: &SmtpServer) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    TlsParameters::new(server.host.clone())
}

fn message(mail: &OutgoingMail) -> Result<Message, String> {
    let from = parse_mailbox(&mail.from).map_err(|error| format!("from address: {error}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .message_id(Some(mail.message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        builder = builder.to(parse_mailbox(to).map_err(|error| format!("recipient {to:?}: {error}"))?);
    }
    builder.body(mail.body.clone()).map_err(|error| error.to_string())
}

/// How one step of the conversation failed: lettre's error, or no answer in time.
enum Step {
    Failed(lettre::transport::smtp::Error),
    TimedOut,
}

async fn bounded<T>(
    limit: Duration,
    step: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Step> {
    match tokio::time::timeout(limit, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Step::Failed(error)),
        Err(_) => Err(Step::TimedOut),
    }
}

/// Send `mail` in one SMTP conversation and say how it ended. Never fails: every way it can go
/// wrong is an answer.
///
/// The conversation is driven step by step (lettre's tokio transport bounds only the TCP connect),
/// each step bounded by the timeout: connect and greeting (no answer: cannot connect), STARTTLS,
/// AUTH, the mail itself.
pub async fn send(server: &SmtpServer, mail: &OutgoingMail) -> SmtpAnswer {
    let started = Instant::now();
    let answer = |outcome, code, reply: String| SmtpAnswer {
        outcome,
        code,
        reply: scrub(reply.trim(), server),
        elapsed: started.elapsed(),
    };
    let failed = |error: &lettre::transport::smtp::Error| {
        let (outcome, code, reply) = classify(error, server);
        answer(outcome, code, reply)
    };
    let message = match message(mail) {
        Ok(message) => message,
        Err(error) => return answer(SmtpOutcome::Failed, None, error),
    };
    let tls = match server.security {
        SmtpSecurity::None => None,
        SmtpSecurity::Starttls | SmtpSecurity::Tls => match tls_parameters(server) {
            Ok(parameters) => Some(parameters),
            Err(error) => return answer(SmtpOutcome::TlsFailed, None, error.to_string()),
        },
    };
    let hello = ClientId::default();
    let wrapper = if server.security == SmtpSecurity::Tls { tls.clone() } else { None };
    let limit = server.timeout;
    let connect =
        AsyncSmtpConnection::connect_tokio1((server.host.as_str(), server.port), Some(limit), &hello, wrapper, None);
    let mut connection = match bounded(limit, connect).await {
        Ok(connection) => connection,
        Err(Step::Failed(error)) => return failed(&error),
        Err(Step::TimedOut) => {
            return answer(
                SmtpOutcome::CannotConnect,
                None,
                format!("no SMTP greeting from {}:{} within {} s", server.host, server.port, limit.as_secs()),
            );
        }
    };
    let result = async {
        if server.security == SmtpSecurity::Starttls
            && let Some(parameters) = tls
        {
            if !connection.can_starttls() {
                return Err(answer(
                    SmtpOutcome::TlsFailed,
                    None,
                    format!("{}:{} does not offer STARTTLS", server.host, server.port),
                ));
            }
            match bounded(limit, connection.starttls(parameters, &hello)).await {
                Ok(()) => {}
                Err(Step::Failed(error)) => return Err(failed(&error)),
                Err(Step::TimedOut) => {
                    return Err(answer(SmtpOutcome::TlsFailed, None, "no answer to STARTTLS in time".to_owned()));
                }
            }
        }
        if let Some((username, password)) = &server.credentials {
            let credentials = Credentials::new(username.clone(), password.expose().to_owned());
            match bounded(limit, connection.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)).await {
                Ok(_) => {}
                Err(Step::Failed(error)) => return Err(failed(&error)),
                Err(Step::TimedOut) => {
                    return Err(answer(SmtpOutcome::Failed, None, "no answer to AUTH in time".to_owned()));
                }
            }
        }
        let envelope = message.envelope().clone();
        let raw = message.formatted();
        // The data phase may carry a large mail: a few times the step timeout.
        match bounded(limit.saturating_mul(3), connection.send(&envelope, &raw)).await {
            Ok(response) => {
                let text: Vec<&str> = response.message().collect();
                Ok(answer(SmtpOutcome::Accepted, Some(u16::from(response.code())), text.join(" ")))
            }
            Err(Step::Failed(error)) => Err(failed(&error)),
            Err(Step::TimedOut) => Err(answer(SmtpOutcome::Failed, None, "no answer to the mail in time".to_owned())),
        }
    }
    .await;
    // Say goodbye, briefly; the outcome is already known.
    let _ = tokio::time::timeout(Duration::from_secs(1), connection.abort()).await;
    match result {
        Ok(answer) | Err(answer) => answer,
    }
}

/// Sort a lettre error into what an operator acts on.
fn classify(error: &lettre::transport::smtp::Error, server: &SmtpServer) -> (SmtpOutcome, Option<u16>, String) {
    // lettre's Display already ends with its source's text.
    let chain = error.to_string();
    if let Some(code) = error.status() {
        // "permanent error (550): 5.1.1 <x@y>: Recipient address rejected" -> the server's text.
        let text = match std::error::Error::source(error) {
            Some(source) => source.to_string(),
            None => chain,
        };
        return (SmtpOutcome::Rejected, Some(u16::from(code)), text);
    }
    if error.is_tls() {
        return (SmtpOutcome::TlsFailed, None, chain);
    }
    if error.is_timeout() {
        return (
            SmtpOutcome::CannotConnect,
            None,
            format!("no answer from {}:{} within {} s", server.host, server.port, server.timeout.as_secs()),
        );
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("starttls") || lower.contains("certificate") || lower.contains("handshake") {
        return (SmtpOutcome::TlsFailed, None, chain);
    }
    if lower.starts_with("connection error") {
        // Connecting failed, or, when TLS was asked for, the TLS layer saw no TLS (e.g. TLS to a
        // plain-text port).
        let io_kind = io_error_kind(error);
        if server.security != SmtpSecurity::None && io_kind == Some(std::io::ErrorKind::InvalidData) {
            return (SmtpOutcome::TlsFailed, None, chain);
        }
        return (SmtpOutcome::CannotConnect, None, format!("{}:{}: {chain}", server.host, server.port));
    }
    (SmtpOutcome::Failed, None, chain)
}

fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let timing = OutboxTiming::default();
        let waits: Vec<u64> = (1..=10).map(|failed| timing.backoff(failed).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(timing.backoff(0).as_secs(), 5);
        assert_eq!(timing.backoff(u32::MAX).as_secs(), 600, "no overflow");
    }

    #[test]
    fn addresses_parse_with_or_without_a_name() {
        assert_eq!(parse_mailbox("ops@example.com").unwrap().email.to_string(), "ops@example.com");
        let named = parse_mailbox("Parapet <parapet@example.com>").unwrap();
        assert_eq!((named.name.as_deref(), named.email.to_string().as_str()), (Some("Parapet"), "parapet@example.com"));
        for bad in ["", "ops", "ops@", "@example.com", "a b@example.com"] {
            assert!(parse_mailbox(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_never_carry_the_password() {
        let server = SmtpServer {
            host: "h".into(),
            port: 25,
            security: SmtpSecurity::None,
            credentials: Some(("u".into(), Secret::new("s3cret-pw"))),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(scrub("535 bad s3cret-pw for u", &server), format!("535 bad {MASK} for u"));
    }

    #[tokio::test]
    async fn nothing_listening_is_cannot_connect_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = SmtpServer {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::None,
            credentials: None,
            timeout: Duration::from_secs(2),
        };
        let mail = OutgoingMail {
            from: "p@example.com".into(),
            to: vec!["o@example.com".into()],
            subject: "s".into(),
            body: "b".into(),
            message_id: "<x@parapet>".into(),
        };
        let answer = send(&server, &mail).await;
        assert_eq!(answer.outcome, SmtpOutcome::CannotConnect, "{answer:?}");
        assert!(answer.reply.contains(&port.to_string()), "{answer:?}");
        assert!(answer.elapsed < Duration::from_secs(2), "{answer:?}");
    }
}
