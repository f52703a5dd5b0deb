//! Alert mail against a real SMTP server we did not write (PyPI `aiosmtpd`, started here through
//! `support/smtp_server.py`): the test mail and what the server received, one mail per alert across
//! repeats, restarts and two servers on PostgreSQL, retries with back-off against a server that
//! refuses, delivery once a server that was down comes up, timeouts, and the SMTP password kept out of
//! every answer, the audit log and the logs. Prints the time from an alert to its mail's arrival.

#[path = "support/api_client.rs"]
mod api_client;
#[path = "support/smtp.rs"]
mod smtp;

use api::v1::{AlertSeverity, EmailSettings, MailStatus, OutboxMail, SmtpOutcome, TestEmailResult, alert_kind};
use server::app::alerts::NewAlert;
use server::config::ServerArgs;
use server::db::Raised;
use server::mail::{Outbox, OutboxTiming};
use server::state::AppState;
use smtp::{Mode, SmtpPeer};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "mail-integration-1";

/// Quick timings: retries 200 ms doubling to 800 ms, given up after 4 attempts.
fn timing() -> OutboxTiming {
    OutboxTiming {
        period: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_millis(800),
        max_attempts: 4,
        smtp_timeout: Duration::from_secs(2),
        catch_up: Duration::from_secs(3600),
    }
}

// ---------------------------------------------------------------- everything the process logs

/// Everything every server of this test binary logs (at debug and up), to look for passwords in.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Mutex::new(Tee(buffer.clone()));
        let filter = tracing_subscriber::EnvFilter::new("debug,hyper=info,hyper_util=info,reqwest=info,h2=info");
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(writer).try_init();
        buffer
    })
    .clone()
}

fn logged_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- a server under test

struct TestServer {
    browser: api_client::Browser,
    state: AppState,
    /// Every API answer's text, to look for passwords in.
    answers: Arc<Mutex<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// A server on a loopback port over `data_dir` (its SQLite database, unless `database_url`).
    async fn start(data_dir: &Path, database_url: Option<&str>, secrets_key: Option<&Path>) -> TestServer {
        Self::start_with(data_dir, database_url, secrets_key, timing()).await
    }

    async fn start_with(
        data_dir: &Path,
        database_url: Option<&str>,
        secrets_key: Option<&Path>,
        timing: OutboxTiming,
    ) -> TestServer {
        logs();
        let args = ServerArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.to_owned()),
            database_url: database_url.map(str::to_owned),
            secrets_key_file: secrets_key.map(Path::to_owned),
            ..Default::default()
        };
        let mut server = server::Server::prepare(&args.resolve().unwrap(), Some(ADMIN_PASSWORD.into())).await.unwrap();
        server.state.outbox = Outbox::new(timing);
        let state = server.state.clone();
        let base = format!("http://{}", server.local_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        let browser = api_client::Browser::new(&base);
        let test = TestServer { browser, state, answers: Arc::default(), stop: Some(stop), task: Some(task) };
        let (status, _) = test
            .call("POST", "/auth/login", Some(serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD})))
            .await;
        assert_eq!(status, 200, "sign-in");
        test
    }

    async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let (status, text) = self.browser.call_text(method, path, body).await;
        self.answers.lock().unwrap().push_str(&text);
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    async fn configure(&self, settings: serde_json::Value) -> EmailSettings {
        let (status, answer) = self.call("PUT", "/settings/email", Some(settings)).await;
        assert_eq!(status, 200, "{answer}");
        serde_json::from_value(answer).unwrap()
    }

    async fn test_mail(&self, body: Option<serde_json::Value>) -> TestEmailResult {
        let (status, answer) = self.call("POST", "/settings/email/test", body).await;
        assert_eq!(status, 200, "{answer}");
        serde_json::from_value(answer).unwrap()
    }

    async fn outbox(&self) -> Vec<OutboxMail> {
        let (status, answer) = self.call("GET", "/settings/email/outbox", None).await;
        assert_eq!(status, 200, "{answer}");
        serde_json::from_value(answer).unwrap()
    }

    /// Raise an alert the way every part of the server does.
    async fn raise(&self, kind: &str, subject: &str, message: &str) -> Raised {
        server::app::alerts::raise(&self.state, alert(kind, subject, message)).await.unwrap()
    }

    /// Polls the outbox until `done` holds for the mail of `alert`; answers it.
    async fn wait_for_mail(
        &self,
        alert: api::v1::AlertId,
        within: Duration,
        done: impl Fn(&OutboxMail) -> bool,
    ) -> OutboxMail {
        let deadline = Instant::now() + within;
        loop {
            let mail = self.state.db.mail_fetch_by_alert(alert).await.unwrap();
            if let Some(mail) = mail.as_ref().filter(|mail| done(mail)) {
                return mail.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the mail of alert {alert} did not get there within {within:?}: {mail:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// An alert about `subject` (no cluster, host or VM: alerts carry no foreign keys).
fn alert(kind: &str, subject: &str, message: &str) -> NewAlert {
    NewAlert {
        kind: kind.to_owned(),
        severity: AlertSeverity::Warning,
        cluster_id: None,
        host_id: None,
        vm_id: None,
        message: message.to_owned(),
        dedupe_key: server::app::alerts::dedupe_key(kind, subject),
    }
}

fn settings_for(peer_port: u16, auth: Option<(&str, &str)>) -> serde_json::Value {
    let mut settings = serde_json::json!({
        "enabled": true,
        "host": "127.0.0.1",
        "port": peer_port,
        "security": "none",
        "from_address": "Parapet <parapet@pool.example>",
        "recipients": ["ops@pool.example", "Oncall <oncall@pool.example>"],
        "alert_kinds": [alert_kind::POOL_OVERCOMMITTED, alert_kind::OOBM_AUTH_ERROR],
    });
    if let Some((user, password)) = auth {
        settings["username"] = user.into();
        settings["password"] = password.into();
    }
    settings
}

async fn fresh_postgres() -> String {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("PARAPET_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = sqlx::AnyPool::connect(&admin_url).await.expect("PostgreSQL is required for this test");
    let name = format!("parapet_mail_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    // Migrate once, so that two servers do not race to create the schema.
    server::db::Db::connect(&url).await.unwrap().close().await;
    url
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_mail_and_an_alert_mail_reach_a_real_smtp_server_and_the_password_never_shows() {
    const PASSWORD: &str = "Smtp-Secret-7f3a9";
    let peer = SmtpPeer::start(Mode::Accept, Some(("parapet", PASSWORD))).await;
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None, None).await;

    let saved = server.configure(settings_for(peer.port, Some(("parapet", PASSWORD)))).await;
    assert!(saved.password_set && saved.enabled, "{saved:?}");
    let stored = server.state.db.email_settings_fetch().await.unwrap().unwrap();
    assert!(
        stored.password_sealed.starts_with("v1:") && !stored.password_sealed.contains(PASSWORD),
        "the password is sealed at rest"
    );

    // The test mail: the server's acceptance comes back, and the server received what we sent.
    let started = Instant::now();
    let result = server.test_mail(None).await;
    let round_trip = started.elapsed();
    assert_eq!((result.outcome, result.code), (SmtpOutcome::Accepted, Some(250)), "{result:?}");
    assert!(result.reply.contains("queued as test-1"), "{result:?}");
    let received = peer.wait_for(1, Duration::from_secs(5)).await;
    let test = &received[0];
    assert_eq!(test.login.as_deref(), Some("parapet"), "AUTH as the configured user");
    assert_eq!(test.mail_from, "parapet@pool.example");
    assert_eq!(test.rcpt_tos, ["ops@pool.example", "oncall@pool.example"]);
    assert_eq!(test.from, "Parapet <parapet@pool.example>");
    assert_eq!(test.subject, "[Parapet] Test email");
    assert!(test.body.contains("sent by admin"), "{}", test.body);

    // A wrong password is the server's refusal, with its code.
    let mut wrong = settings_for(peer.port, Some(("parapet", "not-the-password")));
    wrong["enabled"] = false.into();
    let refused = server.test_mail(Some(serde_json::json!({ "settings": wrong }))).await;
    assert_eq!((refused.outcome, refused.code), (SmtpOutcome::Rejected, Some(535)), "{refused:?}");

    // An alert of a chosen kind: one mail, whose subject names the kind and whose body the message.
    let raised_at = Instant::now();
    let raised = server.raise(alert_kind::POOL_OVERCOMMITTED, "c1", "cluster c1 is overcommitted: 0 < 1").await;
    let alert = raised.alert().clone();
    let received = peer.wait_for(2, Duration::from_secs(10)).await;
    let alert_to_mail = raised_at.elapsed();
    let mail = &received[1];
    assert_eq!(mail.rcpt_tos, ["ops@pool.example", "oncall@pool.example"]);
    assert_eq!(mail.mail_from, "parapet@pool.example");
    assert!(mail.subject.contains("pool-overcommitted") && mail.subject.contains("warning"), "{}", mail.subject);
    assert!(mail.body.contains("cluster c1 is overcommitted: 0 < 1"), "{}", mail.body);
    assert!(mail.body.contains(&alert.id.to_string()), "{}", mail.body);
    assert_eq!(mail.message_id, format!("<alert-{}@parapet>", alert.id));
    let sent = server.wait_for_mail(alert.id, Duration::from_secs(5), |mail| mail.status == MailStatus::Sent).await;
    assert_eq!(sent.attempts, 1);
    assert!(sent.smtp_reply.as_deref().is_some_and(|reply| reply.starts_with("250")), "{sent:?}");

    // A kind that is not chosen is not mailed.
    let other = server.raise(alert_kind::CAPACITY_DROPPED, "c1", "capacity fell").await;
    server::mail::outbox::pass(&server.state).await.unwrap();
    assert!(server.state.db.mail_fetch_by_alert(other.alert().id).await.unwrap().is_none());

    // Saving again without a password keeps it (and still never shows it).
    let mut again = settings_for(peer.port, None);
    again["username"] = "parapet".into();
    assert!(server.configure(again).await.password_set);
    assert_eq!(server.test_mail(None).await.outcome, SmtpOutcome::Accepted);
    let outbox = server.outbox().await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");

    let (_, audit) = server.call("GET", "/audit", None).await;
    assert!(audit.to_string().contains("/settings/email"), "the changes are audited: {audit}");
    let answers = server.answers.lock().unwrap().clone();
    let logged = logged_text();
    server.stop().await;
    assert!(logged.contains("alert mail sent"), "the log says what happened");
    for (place, text) in [("API answers", &answers), ("logs", &logged), ("audit log", &audit.to_string())] {
        assert!(!text.contains(PASSWORD), "the SMTP password appears in the {place}");
    }
    println!(
        "figures: test mail round trip {} ms; alert raised -> mail received {} ms (SQLite)",
        round_trip.as_millis(),
        alert_to_mail.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_is_one_mail_across_repeats_updates_and_a_restart() {
    let peer = SmtpPeer::start(Mode::Accept, None).await;
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None, None).await;
    server.configure(settings_for(peer.port, None)).await;

    let first = server.raise(alert_kind::POOL_OVERCOMMITTED, "c1", "overcommitted: 0 < 1").await;
    assert!(matches!(first, Raised::New(_)));
    let again = server.raise(alert_kind::POOL_OVERCOMMITTED, "c1", "overcommitted: 0 < 1").await;
    assert!(matches!(again, Raised::Unchanged(_)));
    let changed = server.raise(alert_kind::POOL_OVERCOMMITTED, "c1", "overcommitted: 0 < 2").await;
    assert!(matches!(changed, Raised::Updated(_)));
    let id = first.alert().id;
    server.wait_for_mail(id, Duration::from_secs(10), |mail| mail.status == MailStatus::Sent).await;
    for _ in 0..3 {
        server::mail::outbox::pass(&server.state).await.unwrap();
    }
    server.stop().await;

    // The same database after a restart: its first pass looks at recent alerts again.
    let restarted = TestServer::start(data.path(), None, None).await;
    server::mail::outbox::pass(&restarted.state).await.unwrap();
    // An alert stored without its mail being queued (as when a server stops in between) gets one.
    let orphan = restarted.state.db.alert_raise(&alert(alert_kind::POOL_OVERCOMMITTED, "c2", "c2 overcommitted")).await;
    let orphan = orphan.unwrap().alert().id;
    restarted.state.outbox.poke();
    restarted.wait_for_mail(orphan, Duration::from_secs(10), |mail| mail.status == MailStatus::Sent).await;
    for _ in 0..3 {
        server::mail::outbox::pass(&restarted.state).await.unwrap();
    }
    restarted.stop().await;

    let received = peer.received();
    let about = |alert: api::v1::AlertId| {
        received.iter().filter(|mail| mail.message_id == format!("<alert-{alert}@parapet>")).count()
    };
    assert_eq!((about(id), about(orphan), received.len()), (1, 1, 2), "{received:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_postgresql_send_each_alert_mail_once() {
    let peer = SmtpPeer::start(Mode::Accept, Some(("pg-user", "Pg-Smtp-Secret-1"))).await;
    let url = fresh_postgres().await;
    let keys = tempfile::tempdir().unwrap();
    // Servers sharing a database share the secrets key (the stored password opens on both).
    let key = keys.path().join("secrets.key");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::start(dir_a.path(), Some(&url), Some(&key)).await;
    let b = TestServer::start(dir_b.path(), Some(&url), Some(&key)).await;
    a.configure(settings_for(peer.port, Some(("pg-user", "Pg-Smtp-Secret-1")))).await;

    // Each alert raised on one server; both reconcilers are poked and race for every mail.
    let mut alerts = Vec::new();
    let mut latencies = Vec::new();
    for index in 0..5 {
        let (raiser, other) = if index % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let started = Instant::now();
        let raised = raiser.raise(alert_kind::OOBM_AUTH_ERROR, &format!("h{index}"), "BMC refused the password").await;
        other.state.outbox.poke();
        alerts.push(raised.alert().id);
        peer.wait_for(index + 1, Duration::from_secs(10)).await;
        latencies.push(started.elapsed());
    }
    // Both catch up on the same alerts, at the same time, a few times over.
    for _ in 0..3 {
        let (first, second) = tokio::join!(server::mail::outbox::pass(&a.state), server::mail::outbox::pass(&b.state));
        first.unwrap();
        second.unwrap();
    }
    let outbox = a.outbox().await;
    a.stop().await;
    b.stop().await;

    let received = peer.received();
    assert_eq!(received.len(), alerts.len(), "{received:#?}");
    for alert in &alerts {
        let copies = received.iter().filter(|mail| mail.message_id == format!("<alert-{alert}@parapet>")).count();
        assert_eq!(copies, 1, "alert {alert}");
    }
    assert!(outbox.iter().all(|mail| mail.status == MailStatus::Sent && mail.attempts == 1), "{outbox:#?}");
    latencies.sort();
    println!(
        "figures: alert raised -> mail received with two servers on PostgreSQL: min {} ms, median {} ms, max {} ms ({} alerts)",
        latencies[0].as_millis(),
        latencies[latencies.len() / 2].as_millis(),
        latencies[latencies.len() - 1].as_millis(),
        latencies.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_server_gets_retries_with_back_off_then_the_mail_is_given_up_with_its_error() {
    let peer = SmtpPeer::start(Mode::Reject, None).await;
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None, None).await;
    server.configure(settings_for(peer.port, None)).await;

    let result = server.test_mail(None).await;
    assert_eq!((result.outcome, result.code), (SmtpOutcome::Rejected, Some(550)), "{result:?}");
    assert!(result.reply.contains("refuses all mail"), "{result:?}");

    let id = server.raise(alert_kind::POOL_OVERCOMMITTED, "c1", "overcommitted").await.alert().id;
    // Watch the attempts go up, noting when each was first seen.
    let mut seen: Vec<(u32, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let mail = server.state.db.mail_fetch_by_alert(id).await.unwrap();
        if let Some(mail) = &mail
            && mail.attempts > 0
            && seen.last().is_none_or(|(attempts, _)| *attempts != mail.attempts)
        {
            seen.push((mail.attempts, Instant::now()));
        }
        if let Some(mail) = mail.filter(|mail| mail.status == MailStatus::Failed) {
            break mail;
        }
        assert!(Instant::now() < deadline, "not given up within 20 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.stop().await;
    assert_eq!(last.attempts, timing().max_attempts);
    let error = last.last_error.unwrap();
    assert!(error.starts_with("550") && error.contains("refuses all mail"), "{error}");
    assert!(peer.received().is_empty());
    // Attempt n+1 came no sooner than the back-off after attempt n (200, 400, 800 ms).
    let attempts: Vec<u32> = seen.iter().map(|(attempts, _)| *attempts).collect();
    assert_eq!(attempts, [1, 2, 3, 4], "every attempt seen once: {seen:?}");
    let gaps: Vec<Duration> = seen.windows(2).map(|pair| pair[1].1 - pair[0].1).collect();
    for (index, gap) in gaps.iter().enumerate() {
        let backoff = timing().backoff(index as u32 + 1);
        // Polling every 5 ms may see the earlier attempt a little late.
        assert!(*gap + Duration::from_millis(30) >= backoff, "gap {index}: {gap:?} < back-off {backoff:?}");
    }
    println!(
        "figures: gaps between attempts against a refusing server: {gaps:?} (back-off 200 ms doubling, cap 800 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_retried_and_gets_the_mail_once_it_is_up() {
    let port = smtp::free_tcp_port();
    let data = tempfile::tempdir().unwrap();
    // Enough attempts to outlast the SMTP server's start (Python, about a second).
    let patient = OutboxTiming { max_attempts: 30, ..timing() };
    let server = TestServer::start_with(data.path(), None, None, patient).await;
    server.configure(settings_for(port, None)).await;

    let started = Instant::now();
    let down = server.test_mail(None).await;
    assert_eq!(down.outcome, SmtpOutcome::CannotConnect, "{down:?}");
    assert!(down.reply.contains(&port.to_string()), "{down:?}");
    assert!(started.elapsed() < timing().smtp_timeout, "a refused connection is reported at once");

    let id = server.raise(alert_kind::POOL_OVERCOMMITTED, "c1", "overcommitted").await.alert().id;
    let waiting = server.wait_for_mail(id, Duration::from_secs(10), |mail| mail.attempts >= 2).await;
    let error = waiting.last_error.clone().unwrap_or_default();
    assert!(error.starts_with("cannot connect"), "{waiting:?}");

    let peer = SmtpPeer::start_on(port, Mode::Accept, None).await;
    let up_at = Instant::now();
    let sent = server.wait_for_mail(id, Duration::from_secs(10), |mail| mail.status == MailStatus::Sent).await;
    let received = peer.wait_for(1, Duration::from_secs(5)).await;
    server.stop().await;
    assert!(sent.attempts >= 2 && sent.last_error.is_none(), "{sent:?}");
    assert_eq!(received.len(), 1);
    assert!(received[0].subject.contains("pool-overcommitted"));
    println!(
        "figures: server up -> mail delivered {} ms (attempts {}; back-off capped at 800 ms)",
        up_at.elapsed().as_millis(),
        sent.attempts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_and_starttls_that_is_not_offered_fails_as_tls() {
    let (silent, _listener) = smtp::silent_listener().await;
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None, None).await;
    let mut settings = settings_for(silent, None);
    settings["enabled"] = false.into();
    let started = Instant::now();
    let hung = server.test_mail(Some(serde_json::json!({ "settings": settings }))).await;
    let waited = started.elapsed();
    assert_eq!(hung.outcome, SmtpOutcome::CannotConnect, "{hung:?}");
    assert!(waited >= timing().smtp_timeout && waited < timing().smtp_timeout * 3, "{waited:?}");

    let peer = SmtpPeer::start(Mode::Accept, None).await;
    let mut starttls = settings_for(peer.port, None);
    starttls["security"] = "starttls".into();
    let refused = server.test_mail(Some(serde_json::json!({ "settings": starttls }))).await;
    assert_eq!(refused.outcome, SmtpOutcome::TlsFailed, "{refused:?}");
    assert!(refused.reply.to_ascii_lowercase().contains("starttls"), "{refused:?}");
    let mut wrapped = settings_for(peer.port, None);
    wrapped["security"] = "tls".into();
    let garbled = server.test_mail(Some(serde_json::json!({ "settings": wrapped }))).await;
    assert_eq!(garbled.outcome, SmtpOutcome::TlsFailed, "TLS to a plain-text port: {garbled:?}");
    server.stop().await;
    assert!(peer.received().is_empty());
    println!("figures: silent SMTP server reported as cannot-connect after {} ms (timeout 2 s)", waited.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_for_pool_admins_and_bad_fields_are_named() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), None, None).await;
    let (status, answer) = server.call("GET", "/settings/email", None).await;
    assert_eq!(status, 200);
    assert_eq!(answer["enabled"], false);
    assert_eq!(answer["password_set"], false);
    for (field, change) in [
        ("recipients[1]", serde_json::json!({"recipients": ["ops@pool.example", "not an address"]})),
        ("from_address", serde_json::json!({"from_address": "parapet"})),
        ("port", serde_json::json!({"port": 0})),
        ("host", serde_json::json!({"host": "bad host"})),
        ("alert_kinds[0]", serde_json::json!({"alert_kinds": ["no-such-kind"]})),
    ] {
        let mut settings = settings_for(25, None);
        for (key, value) in change.as_object().unwrap() {
            settings[key] = value.clone();
        }
        let (status, answer) = server.call("PUT", "/settings/email", Some(settings)).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert!(answer["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{field}: {answer}");
    }
    assert!(server.state.db.email_settings_fetch().await.unwrap().is_none(), "nothing stored by refused forms");
    server.stop().await;
}
