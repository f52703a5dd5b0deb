//! The signed-in frame around every page: left navigation (with the number of open alerts), top bar
//! with the user and "Sign out", the one overcommit warning dialog of the console, and the gate that
//! sends a person who is not signed in to the login page (and back afterwards).
//!
//! The live store, the event stream, the one-second clock and the session refresh all live exactly as
//! long as this frame: signing out tears them down, signing in builds them afresh.

use crate::api_client;
use crate::components::admission::OvercommitWarning;
use crate::live::LiveEvents;
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
                    <p class="error-title">"The management server cannot be reached"</p>
                    <p>{move || session.unreachable_reason()}</p>
                    <button type="button" class="button" on:click=move |_| session.check()>
                        "Try again"
                    </button>
                </div>
            </main>
        }
        .into_any(),
        SessionPhase::Checking | SessionPhase::SignedOut => view! {
            <main class="boot">
                <p class="loading">"Loading…"</p>
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
    on_cleanup(move || {
        drop(live);
        if let Ok(clock) = clock {
            clock.clear();
        }
        if let Ok(refresh) = refresh {
            refresh.clear();
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
                <nav class="nav" aria-label="Main">
                    <A href="/" exact=true>
                        "Infrastructure"
                    </A>
                    <A href="/zones">"Zones"</A>
                    <A href="/clusters">"Clusters"</A>
                    <A href="/hosts">"Hosts"</A>
                    <A href="/vms">"VMs"</A>
                    <A href="/offerings">"Offerings"</A>
                    <AlertsNavLink />
                    <A href="/ha/incidents">"HA incidents"</A>
                    {session
                        .may_untracked(Ability::ReadAudit)
                        .is_ok()
                        .then(|| view! { <A href="/audit">"Audit log"</A> })}
                    {session
                        .may_untracked(Ability::AdministerPool)
                        .is_ok()
                        .then(|| view! { <A href="/users">"Users"</A> })}
                    {session
                        .may_untracked(Ability::AdministerPool)
                        .is_ok()
                        .then(|| view! { <A href="/settings/email">"Email settings"</A> })}
                </nav>
            </aside>
            <header class="topbar">
                <LiveIndicator />
                <div class="topbar-user">
                    <A href="/account" attr:class="user-name" attr:title="Your account and password">
                        {move || session.username()}
                    </A>
                    <span class="user-role">
                        {move || session.role().map(|role| role.as_str())}
                    </span>
                    <button type="button" class="button button-quiet" on:click=sign_out>
                        "Sign out"
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
                                        aria-label="Dismiss"
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
        LiveStatus::Connecting => ("connecting", "Connecting…"),
        LiveStatus::Live => ("live", "Live"),
        LiveStatus::Reconnecting => ("reconnecting", "Reconnecting…"),
    };
    view! {
        <span
            class=move || format!("live live-{}", word().0)
            title="Whether changes on the server show up here as they happen"
        >
            <span class="live-dot" aria-hidden="true"></span>
            {move || word().1}
        </span>
    }
}
