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
use leptos_router::Lazy;
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
                    <Route path=path!("zones") view={Lazy::<ZonesRoute>::new()} />
                    <Route path=path!("clusters") view={Lazy::<ClustersRoute>::new()} />
                    <Route path=path!("clusters/:id/ha") view={Lazy::<ClusterHaRoute>::new()} />
                    <Route path=path!("hosts") view={Lazy::<HostsRoute>::new()} />
                    <Route path=path!("hosts/:id") view={Lazy::<HostRoute>::new()} />
                    <Route path=path!("vms") view={Lazy::<VmsRoute>::new()} />
                    <Route path=path!("vms/:id") view={Lazy::<VmRoute>::new()} />
                    <Route path=path!("offerings") view={Lazy::<OfferingsRoute>::new()} />
                    <Route path=path!("users") view={Lazy::<UsersRoute>::new()} />
                    <Route path=path!("audit") view={Lazy::<AuditRoute>::new()} />
                    <Route path=path!("settings/email") view={Lazy::<EmailSettingsRoute>::new()} />
                    <Route path=path!("alerts") view={Lazy::<AlertsRoute>::new()} />
                    <Route path=path!("ha/setup") view={Lazy::<HaSetupRoute>::new()} />
                    <Route path=path!("ha/incidents") view={Lazy::<HaIncidentsRoute>::new()} />
                    <Route path=path!("ha/incidents/:id") view={Lazy::<HaIncidentRoute>::new()} />
                    <Route path=path!("account") view={Lazy::<AccountRoute>::new()} />
                </ParentRoute>
            </Routes>
        </Router>
        }
    }
}
