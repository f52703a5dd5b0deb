//! Which code each route needs, and when it is downloaded.
//!
//! The console ships as one main wasm module plus a few lazily loaded ones (see `docs/console-size.md`).
//! The main module holds what every visit needs: the runtime, the session and live store, the frame
//! (`Shell`), the login page and the infrastructure view (the page that follows signing in). The
//! Korean texts are a module of their own (`i18n`), fetched only when Korean is chosen. Every other
//! page belongs to one of four groups, and a group is downloaded the first time one of its pages is
//! opened:
//!
//! | Group | Pages |
//! |---|---|
//! | `inventory` | zones, clusters, hosts, a host, VMs, a VM, compute offerings |
//! | `ha` | a cluster's HA settings and plan, HA incidents, an incident |
//! | `wizard` | the HA setup wizard |
//! | `admin` | accounts, the audit log, email settings, alerts, the signed-in account |
//!
//! A group is one split point name: `wasm_split` puts every function that names it into one module,
//! so a group costs a few requests rather than one per function. Code two groups share goes into a
//! shared chunk that is fetched with whichever group comes first. The signed-in frame preloads every
//! group once it is up, so later first visits do not wait on the network either.
//!
//! Outside wasm32 (host tests, clippy) a split function is an ordinary function.

use crate::i18n::t;
use leptos::prelude::*;
use leptos::wasm_split::SplitLoaderError;
use leptos_router::LazyRoute;

/// Lazily loaded pages of one group: `$route` is what the route table names, `$load` the split
/// function that builds the page's view inside the `$group` module, `$preload` the group's preload
/// (declared by the first page, it fetches the module without building a page). Loads are
/// `fallible`: a module that cannot be fetched shows [`NotLoaded`] (and is fetched again next time)
/// instead of aborting the console.
macro_rules! lazy_pages {
    ($group:ident, $preload:ident: $first:ident => $first_load:ident => $first_page:path
     $(, $route:ident => $load:ident => $page:path)* $(,)?) => {
        lazy_pages!(@page $group, $preload, $first => $first_load => $first_page, preload($preload));
        $(lazy_pages!(@page $group, $preload, $route => $load => $page,);)*
    };
    (@page $group:ident, $preload:ident, $route:ident => $load:ident => $page:path, $($preload_option:tt)*) => {
        #[doc = concat!("The route of `", stringify!($page), "` (group `", stringify!($group), "`).")]
        pub struct $route;

        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            async fn view(_: Self) -> AnyView {
                match $load().await {
                    Ok(view) => view,
                    Err(_) => view! { <NotLoaded /> }.into_any(),
                }
            }

            async fn preload() {
                // A failure shows when the page itself is opened.
                let _ = $preload().await;
            }
        }

        #[leptos::wasm_split::wasm_split($group, wasm_split_path = ::leptos::wasm_split, fallible, $($preload_option)*)]
        fn $load() -> Result<AnyView, SplitLoaderError> {
            Ok($page().into_any())
        }
    };
}

lazy_pages!(inventory, preload_inventory:
    ZonesRoute => zones_view => crate::pages::zones::ZonesPage,
    ClustersRoute => clusters_view => crate::pages::clusters::ClustersPage,
    HostsRoute => hosts_view => crate::pages::hosts::HostsPage,
    HostRoute => host_view => crate::pages::host_detail::HostDetailPage,
    VmsRoute => vms_view => crate::pages::vms::VmsPage,
    VmRoute => vm_view => crate::pages::vm_detail::VmDetailPage,
    OfferingsRoute => offerings_view => crate::pages::offerings::OfferingsPage,
);

lazy_pages!(ha, preload_ha:
    ClusterHaRoute => cluster_ha_view => crate::pages::ha_plan::HaPlanPage,
    HaIncidentsRoute => ha_incidents_view => crate::pages::ha_incidents::HaIncidentsPage,
    HaIncidentRoute => ha_incident_view => crate::pages::ha_incident::HaIncidentPage,
);

lazy_pages!(wizard, preload_wizard:
    HaSetupRoute => ha_setup_view => crate::pages::ha_wizard::HaWizardPage,
);

lazy_pages!(admin, preload_admin:
    UsersRoute => users_view => crate::pages::users::UsersPage,
    AuditRoute => audit_view => crate::pages::audit::AuditPage,
    EmailSettingsRoute => email_settings_view => crate::pages::email_settings::EmailSettingsPage,
    AlertsRoute => alerts_view => crate::pages::alerts::AlertsPage,
    AccountRoute => account_view => crate::pages::account::AccountPage,
);

/// Fetches every group's module in the background (once the signed-in frame is up), so the first
/// visit to a page does not wait on the network. A failed fetch is retried when the page opens.
pub fn preload_all() {
    leptos::task::spawn_local(async {
        // One after another: the page being used keeps most of the connection.
        let _ = preload_inventory().await;
        let _ = preload_ha().await;
        let _ = preload_wizard().await;
        let _ = preload_admin().await;
    });
}

/// What a page shows when its code could not be downloaded (the server went away, the network
/// dropped). Opening the page again retries.
#[component]
fn NotLoaded() -> impl IntoView {
    view! {
        <div class="panel not-found" role="alert">
            <h1>{t("This page could not be loaded")}</h1>
            <p>{t("Its code could not be downloaded from the server. Check the connection, then open the page again.")}</p>
        </div>
    }
}
