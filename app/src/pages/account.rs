//! The signed-in person's own account: their username, their role and what it may do, the console
//! language (kept on the account), and a form to change their password. A successful change ends every
//! other session of the account; this one gets a fresh session from the server's answer.
//!
//! The role names and the password rule live here too, because the users page shows the same ones.

use crate::api_client;
use crate::components::dialog::FormError;
use crate::components::layout::LanguageSelect;
use crate::i18n::{server_text, t, tf};
use crate::session::Session;
use api::v1::{ChangePasswordRequest, Role};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Every role, most powerful first, in the order the console lists them.
pub(crate) const ROLES: [Role; 4] = [Role::PoolAdmin, Role::PoolOperator, Role::VmOperator, Role::ReadOnly];

/// The server's rule (`server/src/app/users.rs`): passwords have at least this many characters.
const MIN_PASSWORD_LENGTH: usize = 10;

/// The server's other limit on passwords, in bytes of UTF-8.
const MAX_PASSWORD_BYTES: usize = 1024;

/// The role as people say it ("pool admin"), not its wire name ("pool-admin"); translated.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::PoolAdmin => t("pool admin"),
        Role::PoolOperator => t("pool operator"),
        Role::VmOperator => t("VM operator"),
        Role::ReadOnly => t("read-only"),
    }
}

/// What the role may do, in one line (the "Roles" table of the reference).
fn role_duty(role: Role) -> &'static str {
    match role {
        Role::PoolAdmin => {
            t("Everything: users and roles, hosts, offerings, HA settings, migration and VMs, and the audit log.")
        }
        Role::PoolOperator => t(
            "Runs the pool: hosts and maintenance, offerings, HA settings, migration and VMs, and reads the audit log; cannot manage users.",
        ),
        Role::VmOperator => {
            t("Starts, stops and restarts VMs and deploys new ones where placement chooses; sees the whole pool.")
        }
        Role::ReadOnly => t("Sees the whole pool but cannot change anything."),
    }
}

/// Why a new password would be refused, naming the field, or `None` when the server will take it.
/// Translated; the field names are the caller's (translated) labels.
pub(crate) fn password_problem(field: &str, password: &str, confirm_field: &str, confirm: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        let min = MIN_PASSWORD_LENGTH.to_string();
        Some(tf("{field} must be at least {min} characters.", &[("field", field), ("min", &min)]))
    } else if password.len() > MAX_PASSWORD_BYTES {
        let max = MAX_PASSWORD_BYTES.to_string();
        Some(tf("{field} must be at most {max} bytes.", &[("field", field), ("max", &max)]))
    } else if password != confirm {
        Some(tf("{confirm_field} does not match {field}.", &[("confirm_field", confirm_field), ("field", field)]))
    } else {
        None
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let session = Session::expect();
    // Read once, untracked, like every role-dependent view (see `vm_power`): a new sign-in builds a new frame.
    let (username, role) = untrack(|| (session.username(), session.role()));

    view! {
        <div class="page account-page">
            <header class="page-header">
                <h1>{t("Your account")}</h1>
            </header>
            <section class="panel account-panel" aria-label=t("Account")>
                <dl class="facts">
                    <dt>{t("Username")}</dt>
                    <dd class="account-username">{username}</dd>
                    <dt>{t("Role")}</dt>
                    <dd>
                        {role
                            .map(|role| {
                                view! {
                                    <span class="role-name">{role_name(role)}</span>
                                    <p class="role-duty">{role_duty(role)}</p>
                                }
                            })}
                    </dd>
                </dl>
            </section>
            <section class="panel account-language" aria-labelledby="account-language-heading">
                <h2 id="account-language-heading">{t("Console language")}</h2>
                <p class="field-hint account-note">
                    {t("Kept on your account: the console uses it in every browser you sign in from.")}
                </p>
                <div class="account-form">
                    <LanguageSelect id="account-language" />
                </div>
            </section>
            <ChangePasswordForm />
        </div>
    }
}

#[component]
fn ChangePasswordForm() -> impl IntoView {
    let session = Session::expect();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(false);
    let pending = RwSignal::new(false);

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        done.set(false);
        let current_password = current.get_untracked();
        let new_password = new.get_untracked();
        let problem = if current_password.is_empty() {
            Some(t("Current password is required.").to_owned())
        } else {
            password_problem(t("New password"), &new_password, t("Confirm new password"), &confirm.get_untracked())
        };
        if let Some(problem) = problem {
            error.set(Some(problem));
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            match api_client::change_password(&ChangePasswordRequest { current_password, new_password }).await {
                Ok(me) => {
                    current.set(String::new());
                    new.set(String::new());
                    confirm.set(String::new());
                    done.set(true);
                    session.signed_in(me);
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
            }
            pending.set(false);
        });
    };

    view! {
        <section class="panel account-password" aria-labelledby="change-password-heading">
            <h2 id="change-password-heading">{t("Change password")}</h2>
            <p class="field-hint account-note">{t("Changing your password signs out your other sessions.")}</p>
            <form class="account-form" on:submit=on_submit novalidate>
                <div class="field">
                    <label for="account-current-password">{t("Current password")}</label>
                    <input
                        id="account-current-password"
                        type="password"
                        autocomplete="current-password"
                        required
                        bind:value=current
                    />
                </div>
                <NewPasswordFields
                    id="account-new-password"
                    label=t("New password")
                    confirm_label=t("Confirm new password")
                    password=new
                    confirm
                />
                <FormError error=error />
                <div role="status">
                    <Show when=move || done.get()>
                        <p class="admin-success">
                            {t("Password changed. Your other sessions have been signed out.")}
                        </p>
                    </Show>
                </div>
                <div class="admin-actions">
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Changing password…") } else { t("Change password") }}
                    </button>
                </div>
            </form>
        </section>
    }
}

/// A new password and its confirmation, with the server's rule as the first field's hint. The inputs'
/// ids are `{id}` and `{id}-confirm`.
#[component]
pub(crate) fn NewPasswordFields(
    id: &'static str,
    label: &'static str,
    confirm_label: &'static str,
    password: RwSignal<String>,
    confirm: RwSignal<String>,
    /// Focus the first field when shown (the first field of a dialog).
    #[prop(optional)]
    autofocus: bool,
) -> impl IntoView {
    let hint = format!("{id}-hint");
    let confirm_id = format!("{id}-confirm");
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <input
                id=id
                type="password"
                autocomplete="new-password"
                aria-describedby=hint.clone()
                autofocus=autofocus
                required
                bind:value=password
            />
            <span id=hint class="field-hint">
                {tf("At least {min} characters.", &[("min", &MIN_PASSWORD_LENGTH.to_string())])}
            </span>
        </div>
        <div class="field">
            <label for=confirm_id.clone()>{confirm_label}</label>
            <input id=confirm_id type="password" autocomplete="new-password" required bind:value=confirm />
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_name_the_field() {
        assert_eq!(
            password_problem("New password", "short", "Confirm new password", "short"),
            Some("New password must be at least 10 characters.".to_owned())
        );
        assert_eq!(
            password_problem("Password", "long enough!", "Confirm password", "long enough?"),
            Some("Confirm password does not match Password.".to_owned())
        );
        assert_eq!(password_problem("Password", "long enough!", "Confirm password", "long enough!"), None);
        // Characters, not bytes: ten accented letters are enough.
        assert_eq!(password_problem("Password", "éééééééééé", "Confirm", "éééééééééé"), None);
        crate::i18n::with_lang(crate::i18n::Lang::Ko, || {
            assert_eq!(
                password_problem(t("New password"), "short", t("Confirm new password"), "short"),
                Some("새 비밀번호은(는) 10자 이상이어야 합니다.".to_owned())
            );
        });
    }

    #[test]
    fn every_role_has_a_name() {
        let names: Vec<_> = ROLES.iter().map(|role| role_name(*role)).collect();
        assert_eq!(names, ["pool admin", "pool operator", "VM operator", "read-only"]);
    }
}
