//! The login page: username and password, the server's refusal shown as an alert, and on success back to
//! the page the person wanted (`?next=`), or the infrastructure view. The language menu is here too, so
//! the console can be read before signing in.

use crate::api_client;
use crate::components::layout::LanguageSelect;
use crate::i18n::{server_text, t};
use crate::session::{Session, SessionPhase};
use api::v1::LoginRequest;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};

/// Where to go after signing in: only a path of this console, never another site (`//evil`, `https:`).
fn safe_next(next: Option<String>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/login") => next,
        _ => "/".to_owned(),
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let session = Session::expect();
    let query = use_query_map();
    let navigate = use_navigate();

    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    // Signed in (just now, or already when arriving here): go where the person wanted.
    Effect::new(move || {
        if session.phase() == SessionPhase::SignedIn {
            let next = safe_next(query.with_untracked(|query| query.get("next")));
            navigate(&next, NavigateOptions { replace: true, ..Default::default() });
        }
    });

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        error.set(None);
        let credentials =
            LoginRequest { username: username.get_untracked().trim().to_owned(), password: password.get_untracked() };
        spawn_local(async move {
            match api_client::login(&credentials).await {
                Ok(me) => {
                    password.set(String::new());
                    session.signed_in(me);
                }
                Err(failure) => error.set(Some(server_text(&failure.to_string()))),
            }
            pending.set(false);
        });
    };

    view! {
        <main class="login-page">
            <form class="login-card" on:submit=on_submit>
                <div class="login-brand">
                    <span class="brand-mark" aria-hidden="true"></span>
                    <span class="brand-name">"Parapet"</span>
                </div>
                <h1>{t("Sign in to the console")}</h1>
                <p class="login-hint">{t("High availability for your virtualization pools.")}</p>
                <div class="field">
                    <label for="login-username">{t("Username")}</label>
                    <input
                        id="login-username"
                        name="username"
                        type="text"
                        autocomplete="username"
                        autofocus
                        required
                        bind:value=username
                    />
                </div>
                <div class="field">
                    <label for="login-password">{t("Password")}</label>
                    <input
                        id="login-password"
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                        bind:value=password
                    />
                </div>
                {move || {
                    error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })
                }}
                <button type="submit" class="button button-primary" disabled=move || pending.get()>
                    {t("Sign in")}
                </button>
                <LanguageSelect id="login-language" />
            </form>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(safe_next(Some("/hosts/1".into())), "/hosts/1");
        assert_eq!(safe_next(Some("//evil.example".into())), "/");
        assert_eq!(safe_next(Some("https://evil.example".into())), "/");
        assert_eq!(safe_next(Some("/login?next=/x".into())), "/");
        assert_eq!(safe_next(None), "/");
    }
}
