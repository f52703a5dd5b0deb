//! Settings > Email (`/settings/email`, pool admins only): the SMTP settings form (server, port,
//! security, credentials, from address, recipients, which alert kinds are mailed, on/off), "Send test
//! email" (tries the form as typed, saved or not, and shows what the SMTP server answered), and the
//! outbox: recent alert mail with its recipients, status, attempts and last error.
//!
//! The stored SMTP password never comes back from the server (only `password_set`): the form says
//! one is stored and sends a password only when one was typed. The outbox is fetched again every
//! 10 s, on every inventory reload (alerts are announced that way), and after a save or a test.

use crate::api_client::{self, ClientError};
use crate::components::badges::SeverityBadge;
use crate::components::dialog::{FormError, WhyNot};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::form::{Choice, ChoiceSelect, TextField};
use crate::components::table::{DataTable, EmptyRow};
use crate::components::time::RelativeTime;
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{
    EmailSettings, MAILABLE_ALERT_KINDS, MailStatus, OutboxMail, SmtpOutcome, SmtpSecurity, TestEmailRequest,
    TestEmailResult, UpdateEmailSettingsRequest,
};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// How often the outbox is fetched again, besides on every inventory reload.
const OUTBOX_REFRESH_SECONDS: i64 = 10;
/// Mails shown in the outbox.
const OUTBOX_LIMIT: u32 = 50;

/// `Ok` for pool admins, else why not in words (SMTP is a global setting).
fn may_change(session: Session) -> Result<(), String> {
    session.may_untracked(Ability::AdministerPool).map_err(|reason| match untrack(|| session.role()) {
        Some(role) => tf(
            "Your role ({role}) cannot change global settings such as email; only pool admins can.",
            &[("role", role.as_str())],
        ),
        None => reason,
    })
}

/// "pool-overcommitted" -> "Pool overcommitted"; "oobm-auth-error" -> "OOBM auth error".
fn kind_label(kind: &str) -> String {
    let words: Vec<String> = kind
        .split('-')
        .enumerate()
        .map(|(index, word)| match word {
            "oobm" | "ha" | "vm" => word.to_ascii_uppercase(),
            _ if index == 0 => {
                let mut chars = word.chars();
                chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            }
            _ => word.to_owned(),
        })
        .collect();
    words.join(" ")
}

/// The mailable kinds in the reader's language; a kind this console does not know reads as words.
fn kind_text(kind: &str) -> String {
    let known = match kind {
        "host-failed" => t("Host failed"),
        "host-fenced" => t("Host fenced"),
        "fencing-failed" => t("Fencing failed"),
        "vm-restarted" => t("VM restarted"),
        "vm-restart-failed" => t("VM restart failed"),
        "pool-overcommitted" => t("Pool overcommitted"),
        "capacity-dropped" => t("Capacity dropped"),
        "no-ha-tag-host" => t("No HA tag host"),
        "oobm-auth-error" => t("OOBM auth error"),
        "storage-heartbeat-lost" => t("Storage heartbeat lost"),
        "primary-storage-down" => t("Primary storage down"),
        "ha-paused" => t("HA paused"),
        _ => return kind_label(kind),
    };
    known.to_owned()
}

fn security_name(security: SmtpSecurity) -> &'static str {
    match security {
        SmtpSecurity::None => t("None (plain text)"),
        SmtpSecurity::Starttls => "STARTTLS",
        SmtpSecurity::Tls => "TLS (SMTPS)",
    }
}

/// Recipients as typed: one per line, or separated by commas or semicolons.
fn split_recipients(text: &str) -> Vec<String> {
    text.split(['\n', ',', ';']).map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect()
}

#[component]
pub fn EmailSettingsPage() -> impl IntoView {
    let session = Session::expect();
    match may_change(session) {
        Ok(()) => view! { <EmailSettingsAdmin /> }.into_any(),
        Err(reason) => view! {
            <div class="page">
                <header class="page-header">
                    <h1>{t("Email")}</h1>
                </header>
                <div class="panel admin-denied">
                    <p>{t("Only pool admins can change the email settings.")}</p>
                    <WhyNot action=t("change the email settings") reason=reason />
                </div>
            </div>
        }
        .into_any(),
    }
}

#[component]
fn EmailSettingsAdmin() -> impl IntoView {
    let session = Session::expect();
    let store = Store::expect();
    let settings = LocalResource::new(move || async move {
        let answer = api_client::email_settings().await;
        if let Err(error) = &answer {
            session.notice(error);
        }
        answer
    });
    // Bumped after a save or a test, so the outbox shows what they did.
    let poked = RwSignal::new(0u64);
    let stale =
        Memo::new(move |_| (store.reloads.get(), store.now.get().timestamp() / OUTBOX_REFRESH_SECONDS, poked.get()));
    let outbox = LocalResource::new(move || {
        stale.track();
        async move {
            let answer = api_client::mail_outbox(OUTBOX_LIMIT).await;
            if let Err(error) = &answer {
                session.notice(error);
            }
            answer
        }
    });

    view! {
        <div class="page email-page">
            <header class="page-header">
                <h1>{t("Email")}</h1>
                <p class="page-summary">{t("Alert mail through your SMTP server")}</p>
            </header>
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || settings.refetch() /> }
                }>
                    {move || Suspend::new(async move {
                        let current = settings.await?;
                        Ok::<_, ClientError>(view! { <EmailForm current poked /> })
                    })}
                </ErrorBoundary>
            </Transition>
            <section class="panel email-outbox" aria-labelledby="email-outbox-heading">
                <h2 id="email-outbox-heading">{t("Outbox")}</h2>
                <p class="field-hint">
                    {t("One mail per alert of a chosen kind. Failed attempts are retried after 5 s, doubling up to 10 minutes.")}
                </p>
                <Transition fallback=Loading>
                    <ErrorBoundary fallback=move |errors| {
                        view! { <ErrorView errors retry=move || outbox.refetch() /> }
                    }>
                        {move || Suspend::new(async move {
                            let list = outbox.await?;
                            Ok::<_, ClientError>(view! { <OutboxTable list /> })
                        })}
                    </ErrorBoundary>
                </Transition>
            </section>
        </div>
    }
}

/// The form, filled from the stored settings.
#[component]
fn EmailForm(current: EmailSettings, poked: RwSignal<u64>) -> impl IntoView {
    let session = Session::expect();
    let enabled = RwSignal::new(current.enabled);
    let host = RwSignal::new(current.host.clone());
    let port = RwSignal::new(current.port.to_string());
    let security = RwSignal::new(current.security.as_str().to_owned());
    let username = RwSignal::new(current.username.clone());
    let password = RwSignal::new(String::new());
    let password_set = RwSignal::new(current.password_set);
    let from_address = RwSignal::new(current.from_address.clone());
    let recipients = RwSignal::new(current.recipients.join("\n"));
    let all_kinds = RwSignal::new(current.all_alert_kinds);
    let kinds = RwSignal::new(current.alert_kinds.clone());
    let updated = RwSignal::new((current.updated_by.clone(), current.updated_at));

    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let testing = RwSignal::new(false);
    let tested = RwSignal::new(None::<TestEmailResult>);

    // The request from the form as typed; a port that is not a number is named like the server does.
    let request = move || -> Result<UpdateEmailSettingsRequest, String> {
        let port = match port.get_untracked().trim() {
            "" => None,
            text => match text.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return Err(t("port: a number from 1 to 65535").to_owned()),
            },
        };
        let security = match security.get_untracked().as_str() {
            "none" => SmtpSecurity::None,
            "tls" => SmtpSecurity::Tls,
            _ => SmtpSecurity::Starttls,
        };
        let typed = password.get_untracked();
        Ok(UpdateEmailSettingsRequest {
            enabled: enabled.get_untracked(),
            host: host.get_untracked().trim().to_owned(),
            port,
            security,
            username: username.get_untracked().trim().to_owned(),
            password: (!typed.is_empty()).then_some(typed),
            from_address: from_address.get_untracked().trim().to_owned(),
            recipients: split_recipients(&recipients.get_untracked()),
            alert_kinds: kinds.get_untracked(),
            all_alert_kinds: all_kinds.get_untracked(),
        })
    };

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        notice.set(None);
        let request = match request() {
            Ok(request) => request,
            Err(problem) => {
                error.set(Some(problem));
                return;
            }
        };
        error.set(None);
        saving.set(true);
        spawn_local(async move {
            match api_client::update_email_settings(&request).await {
                Ok(saved) => {
                    password.set(String::new());
                    password_set.set(saved.password_set);
                    port.set(saved.port.to_string());
                    updated.set((saved.updated_by.clone(), saved.updated_at));
                    notice.set(Some(if saved.enabled {
                        t("Saved. Alert mail is on.").to_owned()
                    } else {
                        t("Saved. Alert mail is off.").to_owned()
                    }));
                    poked.update(|count| *count += 1);
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
            }
            saving.set(false);
        });
    };

    let send_test = move |_| {
        notice.set(None);
        let request = match request() {
            Ok(request) => request,
            Err(problem) => {
                error.set(Some(problem));
                return;
            }
        };
        error.set(None);
        tested.set(None);
        testing.set(true);
        spawn_local(async move {
            match api_client::test_email(&TestEmailRequest { settings: Some(request) }).await {
                Ok(result) => tested.set(Some(result)),
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
            }
            testing.set(false);
            poked.update(|count| *count += 1);
        });
    };

    let security_choices = Signal::stored(
        [SmtpSecurity::Starttls, SmtpSecurity::Tls, SmtpSecurity::None]
            .into_iter()
            .map(|security| Choice::new(security.as_str(), security_name(security)))
            .collect::<Vec<_>>(),
    );
    let kind_boxes = MAILABLE_ALERT_KINDS
        .iter()
        .map(|kind| {
            let kind = (*kind).to_owned();
            let id = format!("email-kind-{kind}");
            let checked = {
                let kind = kind.clone();
                move || kinds.with(|chosen| chosen.contains(&kind))
            };
            let toggle = {
                let kind = kind.clone();
                move |event: leptos::ev::Event| {
                    let on = event_target_checked(&event);
                    kinds.update(|chosen| {
                        chosen.retain(|other| *other != kind);
                        if on {
                            chosen.push(kind.clone());
                        }
                    });
                }
            };
            let label_for = id.clone();
            view! {
                <label class="checkbox" for=label_for>
                    <input
                        id=id
                        type="checkbox"
                        prop:checked=checked
                        disabled=move || all_kinds.get()
                        on:change=toggle
                    />
                    <span>{kind_text(&kind)}</span>
                    <span class="mono muted">{kind.clone()}</span>
                </label>
            }
        })
        .collect_view();

    view! {
        <section class="panel email-settings" aria-labelledby="email-settings-heading">
            <h2 id="email-settings-heading">{t("SMTP settings")}</h2>
            <form class="email-form" on:submit=on_submit novalidate>
                <label class="checkbox email-enabled" for="email-enabled">
                    <input id="email-enabled" type="checkbox" bind:checked=enabled />
                    <span>{t("Send alert mail")}</span>
                </label>
                <div class="email-grid">
                    <TextField id="email-host" label=t("SMTP server") value=host placeholder="smtp.example.com" />
                    <TextField id="email-port" label=t("Port") value=port kind="number" />
                    <ChoiceSelect id="email-security" label=t("Security") choices=security_choices value=security />
                    <TextField id="email-username" label=t("Username (empty: no authentication)") value=username />
                    <div class="field">
                        <label for="email-password">{t("Password")}</label>
                        <input
                            id="email-password"
                            type="password"
                            autocomplete="new-password"
                            placeholder=move || {
                                if password_set.get() { t("•••• stored; type to replace") } else { "" }
                            }
                            bind:value=password
                        />
                        <span class="field-hint">
                            {move || {
                                if password_set.get() {
                                    t("A password is stored (encrypted). Leave this empty to keep it.")
                                } else {
                                    t("Stored encrypted; never shown again.")
                                }
                            }}
                        </span>
                    </div>
                    <TextField
                        id="email-from"
                        label=t("From address")
                        value=from_address
                        placeholder="Parapet <parapet@example.com>"
                    />
                </div>
                <div class="field">
                    <label for="email-recipients">{t("Recipients (one per line)")}</label>
                    <textarea id="email-recipients" rows="3" bind:value=recipients></textarea>
                </div>
                <fieldset class="email-kinds">
                    <legend>{t("Alert kinds to mail")}</legend>
                    <label class="checkbox" for="email-all-kinds">
                        <input id="email-all-kinds" type="checkbox" bind:checked=all_kinds />
                        <span>{t("All kinds, including kinds added later")}</span>
                    </label>
                    {kind_boxes}
                </fieldset>
                <FormError error=error />
                <div role="status">
                    {move || notice.get().map(|message| view! { <p class="admin-success">{message}</p> })}
                    {move || tested.get().map(|result| view! { <TestOutcome result /> })}
                </div>
                <div class="admin-actions">
                    <button type="submit" class="button button-primary" disabled=move || saving.get()>
                        {move || if saving.get() { t("Saving…") } else { t("Save") }}
                    </button>
                    <button type="button" class="button" disabled=move || testing.get() on:click=send_test>
                        {move || if testing.get() { t("Sending test email…") } else { t("Send test email") }}
                    </button>
                    <span class="admin-loading">
                        {move || {
                            let (by, at) = updated.get();
                            match (by, at) {
                                (Some(by), Some(at)) => {
                                    let at = at.format("%Y-%m-%d %H:%M UTC").to_string();
                                    tf("Last saved by {user} at {time}", &[("user", &by), ("time", &at)])
                                }
                                _ => t("Not saved yet").to_owned(),
                            }
                        }}
                    </span>
                </div>
            </form>
        </section>
    }
}

/// What the SMTP server answered to the test mail.
#[component]
fn TestOutcome(result: TestEmailResult) -> impl IntoView {
    let (class, headline) = match result.outcome {
        SmtpOutcome::Accepted => ("email-test email-test-ok", t("Accepted by the SMTP server")),
        SmtpOutcome::Rejected => ("email-test email-test-bad", t("Rejected by the SMTP server")),
        SmtpOutcome::CannotConnect => ("email-test email-test-bad", t("Cannot connect to the SMTP server")),
        SmtpOutcome::TlsFailed => ("email-test email-test-bad", t("TLS failed")),
        SmtpOutcome::Failed => ("email-test email-test-bad", t("The test mail failed")),
    };
    let reply = match result.code {
        Some(code) => format!("{code} {}", result.reply),
        None => result.reply.clone(),
    };
    view! {
        <div class=class>
            <p class="email-test-headline">
                {headline}
                <span class="muted">" " {tf("({ms} ms)", &[("ms", &result.elapsed_ms.to_string())])}</span>
            </p>
            <p class="mono email-test-reply">{reply}</p>
            <p class="muted">{tf("To: {recipients}", &[("recipients", &result.recipients.join(", "))])}</p>
        </div>
    }
}

/// The mail's status as a wire word (for CSS classes).
fn status_text(mail: &OutboxMail) -> &'static str {
    match mail.status {
        MailStatus::Pending if mail.attempts == 0 => "queued",
        MailStatus::Pending => "retrying",
        MailStatus::Sending => "sending",
        MailStatus::Sent => "sent",
        MailStatus::Failed => "failed",
    }
}

/// The status word in the reader's language.
fn status_label(status: &str) -> &'static str {
    match status {
        "queued" => t("queued"),
        "retrying" => t("retrying"),
        "sending" => t("sending"),
        "sent" => t("sent"),
        _ => t("failed"),
    }
}

#[component]
fn OutboxTable(list: Vec<OutboxMail>) -> impl IntoView {
    let empty = list.is_empty();
    let rows = list
        .into_iter()
        .map(|mail| {
            let queued = Signal::stored(Some(mail.created_at));
            let status = status_text(&mail);
            let when = match (mail.status, mail.sent_at, mail.next_attempt_at) {
                (MailStatus::Sent, Some(at), _) => {
                    let at = Signal::stored(Some(at));
                    view! { <span>{t("sent")} " " <RelativeTime at /></span> }.into_any()
                }
                (MailStatus::Pending, _, Some(at)) => {
                    let at = Signal::stored(Some(at));
                    view! { <span>{t("next")} " " <RelativeTime at /></span> }.into_any()
                }
                _ => view! { <span class="muted">"—"</span> }.into_any(),
            };
            let detail = mail.last_error.clone().or(mail.smtp_reply.clone()).unwrap_or_default();
            view! {
                <tr class=format!("mail-{status}")>
                    <td>
                        <SeverityBadge severity=mail.alert_severity />
                        <span class="mono">{format!(" {}", mail.alert_kind)}</span>
                    </td>
                    <td class="email-subject">{mail.subject.clone()}</td>
                    <td>{mail.recipients.join(", ")}</td>
                    <td>
                        <span class=format!("mail-status mail-status-{status}")>{status_label(status)}</span>
                    </td>
                    <td class="numeric">{mail.attempts}</td>
                    <td class="mono email-detail">{server_text(&detail)}</td>
                    <td>
                        <RelativeTime at=queued />
                    </td>
                    <td>{when}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable label=t("Outbox")>
            <thead>
                <tr>
                    <th scope="col">{t("Alert")}</th>
                    <th scope="col">{t("Subject")}</th>
                    <th scope="col">{t("Recipients")}</th>
                    <th scope="col">{t("Status")}</th>
                    <th scope="col" class="numeric">{t("Attempts")}</th>
                    <th scope="col">{t("Last error or reply")}</th>
                    <th scope="col">{t("Queued")}</th>
                    <th scope="col">{t("Sent or next attempt")}</th>
                </tr>
            </thead>
            <tbody>
                {empty.then(|| view! { <EmptyRow columns=8 text=t("No alert mail yet.") /> })}
                {rows}
            </tbody>
        </DataTable>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_labels_read_as_words() {
        assert_eq!(kind_label("pool-overcommitted"), "Pool overcommitted");
        assert_eq!(kind_label("oobm-auth-error"), "OOBM auth error");
        assert_eq!(kind_label("no-ha-tag-host"), "No HA tag host");
    }

    #[test]
    fn recipients_split_on_lines_commas_and_semicolons() {
        assert_eq!(split_recipients("a@x\n b@x , c@x;\n\n"), ["a@x", "b@x", "c@x"]);
    }
}
