//! The signed-in frame around every page: left navigation (with the number of open alerts), top bar
//! with the language menu, the user and "Sign out", the one overcommit warning dialog of the console,
//! and the gate that sends a person who is not signed in to the login page (and back afterwards).
//! [`LanguageSelect`] (the language menu) is also on the login and account pages.
//!
//! The live store, the event stream, the one-second clock and the session refresh all live exactly as
//! long as this frame: signing out tears them down, signing in builds them afresh.

use crate::api_client;
use crate::components::admission::OvercommitWarning;
use crate::i18n::{I18n, Lang, t};
use crate::live::LiveEvents;
use crate::pages::account::role_name;
use crate::pages::alerts::AlertsNavLink;
use crate::session::{Ability, REFRESH_EVERY, Session, SessionPhase};
use crate::store::{LiveStatus, Store};
use chrono::Utc;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::components::{A, Outlet};
use leptos_router::hooks::{use_location, use_navigate};
use send_wrapper::SendWrapper;
use std::time::Duration;

/// The address of the login page that comes back to `path` after signing in.
pub fn login_path_returning_to(path: &str) -> String {
    if path.is_empty() || path == "/" {
        "/login".to_owned()
    } else {
        format!("/login?next={}", String::from(js_sys::encode_uri_component(path)))
    }
}

/// Route view of every signed-in page: shows the frame when signed in, the login page otherwise.
#[component]
pub fn Shell() -> impl IntoView {
    let session = Session::expect();
    let location = use_location();
    let navigate = use_navigate();

    Effect::new(move || {
        if session.phase() == SessionPhase::SignedOut {
            let here = if session.return_here() {
                format!("{}{}", location.pathname.get_untracked(), location.search.get_untracked())
            } else {
                String::new()
            };
            navigate(&login_path_returning_to(&here), NavigateOptions { replace: true, ..Default::default() });
        }
    });

    move || match session.phase() {
        SessionPhase::SignedIn => view! { <SignedInFrame /> }.into_any(),
        SessionPhase::Unreachable => view! {
            <main class="boot">
                <div class="error-panel" role="alert">
                    <p class="error-title">{t("The management server cannot be reached")}</p>
                    <p>{move || session.unreachable_reason()}</p>
                    <button type="button" class="button" on:click=move |_| session.check()>
                        {t("Try again")}
                    </button>
                </div>
            </main>
        }
        .into_any(),
        SessionPhase::Checking | SessionPhase::SignedOut => view! {
            <main class="boot">
                <p class="loading">{t("Loading…")}</p>
            </main>
        }
        .into_any(),
    }
}

#[component]
fn SignedInFrame() -> impl IntoView {
    let session = Session::expect();
    let store = Store::provide(session);

    let live = SendWrapper::new(LiveEvents::start(store, session));
    let clock = set_interval_with_handle(move || store.now.set(Utc::now()), Duration::from_secs(1));
    let refresh = set_interval_with_handle(move || session.refresh(), REFRESH_EVERY);
    // The other pages' code, fetched once this frame is up so a first visit does not wait for it.
    Effect::new(crate::routes::preload_all);
    on_cleanup(move || {
        drop(live);
        if let Ok(clock) = clock {
            clock.clear();
        }
        if let Ok(refresh) = refresh {
            refresh.clear();
        }
    });

    // A language choice the account could not keep: shown like any other problem, also by the frame
    // the switch built afresh.
    Effect::new(move || {
        if let Some(problem) = session.language_problem() {
            store.problem.set(Some(problem));
        }
    });

    let sign_out = move |_| {
        spawn_local(async move {
            // Whatever the server says, the person wants out: leave the signed-in area regardless (the
            // gate in `Shell` then goes to the login page).
            let _ = api_client::logout().await;
            session.signed_out();
        });
    };

    view! {
        <div class="shell">
            <aside class="sidebar">
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true"></span>
                    <span class="brand-name">"Parapet"</span>
                </a>
                <nav class="nav" aria-label=t("Main")>
                    <A href="/" exact=true>
                        {t("Infrastructure")}
                    </A>
                    <A href="/zones">{t("Zones")}</A>
                    <A href="/clusters">{t("Clusters")}</A>
                    <A href="/hosts">{t("Hosts")}</A>
                    <A href="/vms">{t("VMs")}</A>
                    <A href="/offerings">{t("Offerings")}</A>
                    <AlertsNavLink />
                    <A href="/ha/setup">{t("HA setup")}</A>
                    <A href="/ha/incidents">{t("HA incidents")}</A>
                    {session
                        .may_untracked(Ability::ReadAudit)
                        .is_ok()
                        .then(|| view! { <A href="/audit">{t("Audit log")}</A> })}
                    {session
                        .may_untracked(Ability::AdministerPool)
                        .is_ok()
                        .then(|| view! { <A href="/users">{t("Users")}</A> })}
                    {session
                        .may_untracked(Ability::AdministerPool)
                        .is_ok()
                        .then(|| view! { <A href="/settings/email">{t("Email settings")}</A> })}
                </nav>
            </aside>
            <header class="topbar">
                <LiveIndicator />
                <div class="topbar-user">
                    <LanguageSelect id="topbar-language" compact=true />
                    <A href="/account" attr:class="user-name" attr:title=t("Your account and password")>
                        {move || session.username()}
                    </A>
                    <span class="user-role">{move || session.role().map(role_name)}</span>
                    <button type="button" class="button button-quiet" on:click=sign_out>
                        {t("Sign out")}
                    </button>
                </div>
            </header>
            <main class="content">
                {move || {
                    store
                        .problem
                        .get()
                        .map(|problem| {
                            view! {
                                <div class="problem" role="alert">
                                    <span>{problem}</span>
                                    <button
                                        type="button"
                                        class="button button-quiet"
                                        aria-label=t("Dismiss")
                                        on:click=move |_| store.problem.set(None)
                                    >
                                        "×"
                                    </button>
                                </div>
                            }
                        })
                }}
                <Outlet />
            </main>
            <OvercommitWarning />
        </div>
    }
}

/// A dot and a word in the top bar saying whether live updates are flowing.
#[component]
fn LiveIndicator() -> impl IntoView {
    let store = Store::expect();
    let word = move || match store.live.get() {
        LiveStatus::Connecting => ("connecting", t("Connecting…")),
        LiveStatus::Live => ("live", t("Live")),
        LiveStatus::Reconnecting => ("reconnecting", t("Reconnecting…")),
    };
    view! {
        <span
            class=move || format!("live live-{}", word().0)
            title=t("Whether changes on the server show up here as they happen")
        >
            <span class="live-dot" aria-hidden="true"></span>
            {move || word().1}
        </span>
    }
}

/// The language menu: a `<select>` labelled "Language", each language in its own name. Choosing one
/// switches the console (which re-renders) and, when someone is signed in, remembers it on the account
/// (see [`Session::choose_language`]). `compact` hides the label visually (the top bar); screen readers
/// still read it.
#[component]
pub fn LanguageSelect(id: &'static str, #[prop(optional)] compact: bool) -> impl IntoView {
    let session = Session::expect();
    // The whole console is rebuilt when the language changes, so the one in force now is all we show.
    let current = untrack(|| I18n::expect().lang());
    let options = Lang::ALL
        .into_iter()
        .map(|lang| {
            view! {
                <option value=lang.tag() lang=lang.tag() selected=lang == current>
                    {lang.native_name()}
                </option>
            }
        })
        .collect_view();
    view! {
        <div class=if compact { "language-select" } else { "field language-select" }>
            <label for=id class:visually-hidden=compact>
                {t("Language")}
            </label>
            <select
                id=id
                on:change:target=move |event| {
                    if let Some(lang) = Lang::from_tag(&event.target().value()) {
                        session.choose_language(lang);
                    }
                }
            >
                {options}
            </select>
        </div>
    }
}
