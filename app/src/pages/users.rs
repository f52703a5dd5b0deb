//! Users (pool admins only): every account with its role, status and creation time. Admins create
//! users, change a user's role, disable or enable an account, and reset someone's password. The list is
//! fetched again after every change; the server's refusals (disabling yourself, demoting or disabling
//! the last pool admin, a taken username) are shown with its own message.

use crate::api_client::{self, ClientError};
use crate::components::dialog::{Dialog, FormError, WhyNot};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::pages::account::{NewPasswordFields, ROLES, password_problem, role_name};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{CreateUserRequest, Role, UpdateUserRequest, User};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The server's rule for usernames (`server/src/app/users.rs`), as a message naming the field.
fn username_problem(username: &str) -> Option<String> {
    let valid = !username.is_empty()
        && username.len() <= 64
        && username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (!valid).then(|| t("Username must be 1 to 64 letters, digits, '.', '_' or '-'.").to_owned())
}

/// The `<option>`s of a role select, showing the names people use, with `selected` chosen at first.
/// (The select's bound value is set before its options exist, so the first choice comes from here.)
fn role_options(selected: Role) -> impl IntoView {
    ROLES
        .iter()
        .map(|role| view! { <option value=role.as_str() selected=*role == selected>{role_name(*role)}</option> })
        .collect_view()
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let session = Session::expect();
    match session.may_untracked(Ability::AdministerPool) {
        Ok(()) => view! { <UsersAdmin /> }.into_any(),
        Err(reason) => view! {
            <div class="page">
                <header class="page-header">
                    <h1>{t("Users")}</h1>
                </header>
                <div class="panel admin-denied">
                    <p>{t("Only pool admins can manage users.")}</p>
                    <WhyNot action=t("manage users") reason=reason />
                </div>
            </div>
        }
        .into_any(),
    }
}

#[component]
fn UsersAdmin() -> impl IntoView {
    let session = Session::expect();
    let store = Store::expect();
    let users = LocalResource::new(move || async move {
        let answer = api_client::users().await;
        if let Err(error) = &answer {
            session.notice(error);
        }
        answer
    });
    let creating = RwSignal::new(false);
    let resetting = RwSignal::new(None::<User>);
    // What the last change did, announced politely; failures go to the frame's alert instead.
    let notice = RwSignal::new(None::<String>);
    let me = untrack(|| session.username());
    // Every change ends in a fresh copy of the list from the server, except a change to one's own role:
    // the console only learns it by asking who is signed in again, which rebuilds the whole frame.
    let changed = Callback::new({
        let me = me.clone();
        move |(user, message): (User, String)| {
            notice.set(Some(message));
            if me.as_deref() == Some(user.username.as_str()) {
                session.check();
            } else {
                users.refetch();
            }
        }
    });
    let failed = Callback::new(move |error: ClientError| {
        notice.set(None);
        store.report(session, &error);
    });

    view! {
        <div class="page users-page">
            <header class="page-header title-row">
                <h1>{t("Users")}</h1>
                <button type="button" class="button button-primary" on:click=move |_| creating.set(true)>
                    {t("New user")}
                </button>
            </header>
            <div role="status">
                {move || notice.get().map(|message| view! { <p class="admin-notice">{message}</p> })}
            </div>
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || users.refetch() /> }
                }>
                    {
                        let me = me.clone();
                        move || {
                            let me = me.clone();
                            Suspend::new(async move {
                                users.await.map(|list| view! { <UserTable list me changed failed resetting /> })
                            })
                        }
                    }
                </ErrorBoundary>
            </Transition>
            <Show when=move || creating.get()>
                <NewUserDialog on_close=move || creating.set(false) changed />
            </Show>
            {move || {
                resetting
                    .get()
                    .map(|user| {
                        view! { <ResetPasswordDialog user on_close=move || resetting.set(None) changed /> }
                    })
            }}
        </div>
    }
}

#[component]
fn UserTable(
    list: Vec<User>,
    me: Option<String>,
    changed: Callback<(User, String)>,
    failed: Callback<ClientError>,
    resetting: RwSignal<Option<User>>,
) -> impl IntoView {
    view! {
        <DataTable label=t("Users")>
            <thead>
                <tr>
                    <th scope="col">{t("Username")}</th>
                    <th scope="col">{t("Role")}</th>
                    <th scope="col">{t("Status")}</th>
                    <th scope="col">{t("Created")}</th>
                    <th scope="col" class="actions">{t("Actions")}</th>
                </tr>
            </thead>
            <tbody>
                {list.is_empty().then(|| view! { <EmptyRow columns=5 text=t("No users.") /> })}
                {list
                    .into_iter()
                    .map(|user| {
                        let is_me = me.as_deref() == Some(user.username.as_str());
                        view! { <UserRow user is_me changed failed resetting /> }
                    })
                    .collect_view()}
            </tbody>
        </DataTable>
    }
}

/// One account: its role (changeable), status, creation time, and the Disable/Enable and Reset password
/// actions.
#[component]
fn UserRow(
    user: User,
    is_me: bool,
    changed: Callback<(User, String)>,
    failed: Callback<ClientError>,
    resetting: RwSignal<Option<User>>,
) -> impl IntoView {
    let role = RwSignal::new(user.role.as_str().to_owned());
    let pending = RwSignal::new(false);
    let id = user.id;
    let name = user.username.clone();
    let current_role = user.role;
    let disabled = user.disabled;

    let update = move |request: UpdateUserRequest| {
        pending.set(true);
        spawn_local(async move {
            match api_client::update_user(id, &request).await {
                Ok(updated) => {
                    let message = match request.role {
                        Some(new_role) => {
                            tf("{user} is now {role}.", &[("user", &updated.username), ("role", role_name(new_role))])
                        }
                        None if updated.disabled => tf("{user} is disabled.", &[("user", &updated.username)]),
                        None => tf("{user} is enabled.", &[("user", &updated.username)]),
                    };
                    changed.run((updated, message));
                }
                Err(error) => {
                    // A refused role change leaves the select showing the role the user really has.
                    role.set(current_role.as_str().to_owned());
                    failed.run(error);
                }
            }
            pending.set(false);
        });
    };
    let save_role = move |_| {
        if let Some(new_role) = role.with_untracked(|role| Role::parse(role)) {
            update(UpdateUserRequest { role: Some(new_role), disabled: None });
        }
    };
    let toggle = move |_| update(UpdateUserRequest { role: None, disabled: Some(!disabled) });
    let role_unchanged = move || role.with(|role| role == current_role.as_str());
    let (status_word, status_text) = if disabled { ("disabled", t("Disabled")) } else { ("enabled", t("Enabled")) };
    let (toggle_word, toggle_label, toggle_class) = if disabled {
        (t("Enable"), tf("Enable {user}", &[("user", &name)]), "button button-small")
    } else {
        (t("Disable"), tf("Disable {user}", &[("user", &name)]), "button button-small button-danger")
    };
    let created_at = user.created_at;

    view! {
        <tr data-user=name.clone()>
            <th scope="row">
                {name.clone()} {is_me.then(|| view! { <span class="muted">" " {t("(you)")}</span> })}
            </th>
            <td>
                <div class="role-edit">
                    <select aria-label=tf("Role of {user}", &[("user", &name)]) bind:value=role disabled=move || pending.get()>
                        {role_options(current_role)}
                    </select>
                    <button
                        type="button"
                        class="button button-small"
                        aria-label=tf("Save role of {user}", &[("user", &name)])
                        disabled=move || pending.get() || role_unchanged()
                        on:click=save_role
                    >
                        {t("Save role")}
                    </button>
                </div>
            </td>
            <td>
                <span class=format!("pill pill-{status_word}")>{status_text}</span>
            </td>
            <td>
                <time datetime=created_at.to_rfc3339()>{format::timestamp(created_at)}</time>
            </td>
            <td class="actions">
                <div class="row-actions">
                    <button
                        type="button"
                        class=toggle_class
                        aria-label=toggle_label
                        disabled=move || pending.get()
                        on:click=toggle
                    >
                        {toggle_word}
                    </button>
                    <button
                        type="button"
                        class="button button-small"
                        aria-label=tf("Reset password for {user}", &[("user", &name)])
                        disabled=move || pending.get()
                        on:click=move |_| resetting.set(Some(user.clone()))
                    >
                        {t("Reset password")}
                    </button>
                </div>
            </td>
        </tr>
    }
}

#[component]
fn NewUserDialog(#[prop(into)] on_close: Callback<()>, changed: Callback<(User, String)>) -> impl IntoView {
    let session = Session::expect();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let role = RwSignal::new(Role::ReadOnly.as_str().to_owned());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let name = username.get_untracked().trim().to_owned();
        let password_text = password.get_untracked();
        let problem = username_problem(&name).or_else(|| {
            password_problem(t("Password"), &password_text, t("Confirm password"), &confirm.get_untracked())
        });
        if let Some(problem) = problem {
            error.set(Some(problem));
            return;
        }
        let Some(chosen) = role.with_untracked(|role| Role::parse(role)) else {
            error.set(Some(t("Role must be one of the four roles.").to_owned()));
            return;
        };
        error.set(None);
        pending.set(true);
        let request = CreateUserRequest { username: name, password: password_text, role: chosen };
        spawn_local(async move {
            match api_client::create_user(&request).await {
                Ok(user) => {
                    on_close.run(());
                    let message = tf(
                        "{user} was created as {role}.",
                        &[("user", &user.username), ("role", role_name(user.role))],
                    );
                    changed.run((user, message));
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                    pending.set(false);
                }
            }
        });
    };

    view! {
        <Dialog title=t("New user") on_close=on_close>
            <form class="admin-dialog-form" on:submit=on_submit novalidate>
                <div class="field">
                    <label for="new-user-username">{t("Username")}</label>
                    <input
                        id="new-user-username"
                        type="text"
                        autocomplete="off"
                        aria-describedby="new-user-username-hint"
                        autofocus
                        required
                        bind:value=username
                    />
                    <span id="new-user-username-hint" class="field-hint">
                        {t("1 to 64 letters, digits, '.', '_' or '-'.")}
                    </span>
                </div>
                <NewPasswordFields
                    id="new-user-password"
                    label=t("Password")
                    confirm_label=t("Confirm password")
                    password
                    confirm
                />
                <div class="field">
                    <label for="new-user-role">{t("Role")}</label>
                    <select id="new-user-role" bind:value=role>
                        {role_options(Role::ReadOnly)}
                    </select>
                </div>
                <FormError error=error />
                <div class="dialog-actions">
                    <button type="button" class="button" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {t("Create user")}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

#[component]
fn ResetPasswordDialog(
    user: User,
    #[prop(into)] on_close: Callback<()>,
    changed: Callback<(User, String)>,
) -> impl IntoView {
    let session = Session::expect();
    let is_me = untrack(|| session.username()).as_deref() == Some(user.username.as_str());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let id = user.id;
    let title = tf("Reset password for {user}", &[("user", &user.username)]);

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let new_password = password.get_untracked();
        if let Some(problem) =
            password_problem(t("New password"), &new_password, t("Confirm new password"), &confirm.get_untracked())
        {
            error.set(Some(problem));
            return;
        }
        error.set(None);
        pending.set(true);
        let user = user.clone();
        spawn_local(async move {
            match api_client::reset_password(id, new_password).await {
                Ok(()) if is_me => {
                    // The reset ended every session of this account, this one included.
                    session.check();
                }
                Ok(()) => {
                    on_close.run(());
                    let message =
                        tf("The password of {user} was reset; their sessions have ended.", &[("user", &user.username)]);
                    changed.run((user, message));
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                    pending.set(false);
                }
            }
        });
    };

    view! {
        <Dialog title=title on_close=on_close>
            <form class="admin-dialog-form" on:submit=on_submit novalidate>
                <p class="dialog-note">
                    {if is_me {
                        t(
                            "This is your own account: resetting its password signs you out everywhere. The Account page changes it without signing you out here.",
                        )
                    } else {
                        t("The user's sessions end; they sign in again with the new password.")
                    }}
                </p>
                <NewPasswordFields
                    id="reset-password"
                    label=t("New password")
                    confirm_label=t("Confirm new password")
                    password
                    confirm
                    autofocus=true
                />
                <FormError error=error />
                <div class="dialog-actions">
                    <button type="button" class="button" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {t("Reset password")}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::username_problem;

    #[test]
    fn usernames_follow_the_servers_rule() {
        assert_eq!(username_problem("alice.b-2_x"), None);
        assert!(username_problem("").is_some());
        assert!(username_problem("al ice").is_some());
        assert!(username_problem(&"a".repeat(65)).is_some());
    }
}
