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
pub mod routes;
pub mod session;
pub mod store;

use components::layout::Shell;
use leptos::prelude::*;
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::path;
use routes::*;
use session::Session;

/// The whole console: session context, then the routes (the login page outside the signed-in frame;
/// every page but the login page and the infrastructure view loads its code when first needed, see
/// `routes`).
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
                    <Route path=path!("zones") view={lazy::<ZonesRoute>()} />
                    <Route path=path!("clusters") view={lazy::<ClustersRoute>()} />
                    <Route path=path!("clusters/:id/ha") view={lazy::<ClusterHaRoute>()} />
                    <Route path=path!("hosts") view={lazy::<HostsRoute>()} />
                    <Route path=path!("hosts/:id") view={lazy::<HostRoute>()} />
                    <Route path=path!("vms") view={lazy::<VmsRoute>()} />
                    <Route path=path!("vms/:id") view={lazy::<VmRoute>()} />
                    <Route path=path!("offerings") view={lazy::<OfferingsRoute>()} />
                    <Route path=path!("users") view={lazy::<UsersRoute>()} />
                    <Route path=path!("audit") view={lazy::<AuditRoute>()} />
                    <Route path=path!("settings/email") view={lazy::<EmailSettingsRoute>()} />
                    <Route path=path!("alerts") view={lazy::<AlertsRoute>()} />
                    <Route path=path!("ha/setup") view={lazy::<HaSetupRoute>()} />
                    <Route path=path!("ha/incidents") view={lazy::<HaIncidentsRoute>()} />
                    <Route path=path!("ha/incidents/:id") view={lazy::<HaIncidentRoute>()} />
                    <Route path=path!("account") view={lazy::<AccountRoute>()} />
                </ParentRoute>
            </Routes>
        </Router>
        }
    }
}
