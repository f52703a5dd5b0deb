//! Parapet's web console: a Leptos client-side app (wasm32) talking to the management server's `/api/v1`.
//!
//! Code map: `api_client` is the only module that speaks HTTP; `session` knows who is signed in; `store`
//! is the one live copy of the pool that `live` keeps current from server-sent events; `components` are
//! reusable widgets (layout shell, badges, tables); `pages` has one file per screen.

pub mod api_client;
pub mod components;
pub mod i18n;
pub mod live;
pub mod pages;
pub mod session;
pub mod store;

use components::layout::Shell;
use leptos::prelude::*;
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::path;
use session::Session;

/// The whole console: session context, then the routes (the login page outside the signed-in frame).
#[component]
pub fn App() -> impl IntoView {
    let i18n = i18n::I18n::provide();
    Session::provide();
    // A new language re-renders everything (texts are translated as they are built; see `i18n`).
    move || {
        i18n.lang();
        view! {
        <Router>
            <Routes fallback=pages::not_found::NotFoundPage>
                <Route path=path!("/login") view=pages::login::LoginPage />
                <ParentRoute path=path!("") view=Shell>
                    <Route path=path!("") view=pages::infrastructure::InfrastructurePage />
                    <Route path=path!("zones") view=pages::zones::ZonesPage />
                    <Route path=path!("clusters") view=pages::clusters::ClustersPage />
                    <Route path=path!("clusters/:id/ha") view=pages::ha_plan::HaPlanPage />
                    <Route path=path!("hosts") view=pages::hosts::HostsPage />
                    <Route path=path!("hosts/:id") view=pages::host_detail::HostDetailPage />
                    <Route path=path!("vms") view=pages::vms::VmsPage />
                    <Route path=path!("vms/:id") view=pages::vm_detail::VmDetailPage />
                    <Route path=path!("offerings") view=pages::offerings::OfferingsPage />
                    <Route path=path!("users") view=pages::users::UsersPage />
                    <Route path=path!("audit") view=pages::audit::AuditPage />
                    <Route path=path!("settings/email") view=pages::email_settings::EmailSettingsPage />
                    <Route path=path!("alerts") view=pages::alerts::AlertsPage />
                    <Route path=path!("ha/setup") view=pages::ha_wizard::HaWizardPage />
                    <Route path=path!("ha/incidents") view=pages::ha_incidents::HaIncidentsPage />
                    <Route path=path!("ha/incidents/:id") view=pages::ha_incident::HaIncidentPage />
                    <Route path=path!("account") view=pages::account::AccountPage />
                </ParentRoute>
            </Routes>
        </Router>
        }
    }
}
