//! The HA setup wizard (`/ha/setup`): the eight steps of turning HA on for a pool and proving it works,
//! in the order of Mold's HA guide. Each step is a component of its own in `ha_wizard/`, also reachable
//! alone (`/ha/setup?step=N&cluster=…`) from the object's action menu. The wizard's choices (zone,
//! cluster, test host, offering, test VMs) live in [`Wizard`] and in the address, so a reload or a link
//! lands on the same step.
//!
//! Steps 1–5 (`zone.rs`, `cluster.rs`, `oobm_configure.rs`, `oobm_enable.rs`, `host_state.rs`) set HA
//! and out-of-band management up; steps 6–8 (`offering.rs`, `deploy.rs`, `power_test.rs`) prove it.
//!
//! # The contract between the frame and a step
//!
//! Every step file exports exactly these two items (names fixed):
//!
//! | file                | component                          | done                                   |
//! |---------------------|------------------------------------|----------------------------------------|
//! | `zone.rs`           | `ZoneStep(wizard: Wizard)`         | `zone_done(wizard: Wizard) -> bool`    |
//! | `cluster.rs`        | `ClusterStep(wizard: Wizard)`      | `cluster_done(wizard) -> bool`         |
//! | `oobm_configure.rs` | `OobmConfigureStep(wizard: Wizard)`| `oobm_configure_done(wizard) -> bool`  |
//! | `oobm_enable.rs`    | `OobmEnableStep(wizard: Wizard)`   | `oobm_enable_done(wizard) -> bool`     |
//! | `host_state.rs`     | `HostStateStep(wizard: Wizard)`    | `host_state_done(wizard) -> bool`      |
//! | `offering.rs`       | `OfferingStep(wizard: Wizard)`     | `offering_done(wizard) -> bool`        |
//! | `deploy.rs`         | `DeployStep(wizard: Wizard)`       | `deploy_done(wizard) -> bool`          |
//! | `power_test.rs`     | `PowerTestStep(wizard: Wizard)`    | `power_test_done(wizard) -> bool`      |
//!
//! ```ignore
//! #[component]
//! pub fn OfferingStep(wizard: Wizard) -> impl IntoView { … }
//! /// Reactive: reads `Store::expect()` and the wizard's signals with `.get()`/`.with()`, so the frame's
//! /// Next button follows it. Must not have side effects; called inside the frame's reactive closures.
//! pub fn offering_done(wizard: Wizard) -> bool { … }
//! ```
//!
//! - The frame draws the stepper, the step's `<h2>` (which takes the focus when the step changes), the
//!   step's role note and Back / Next. A step draws only its body (no `<h2>`; use `<h3>` inside), inside
//!   `<section id="ha-wizard-step-N" data-testid="ha-wizard-step-N">`.
//! - Next is enabled when `<name>_done(wizard)` holds; otherwise [`Step::pending_reason`] is shown.
//! - Choices a step makes go into the wizard's signals (`wizard.offering.set(Some(id))`, …); the frame
//!   writes zone, cluster, host (= `test_host`) and offering into the address
//!   (`/ha/setup?step=N&zone=Z&cluster=C&host=H&offering=O`). `test_vms` is not in the address.
//! - A step that needs a role checks it itself with `Session::may_untracked(Ability::…)` and, when the
//!   role lacks it, shows the state read-only and no controls; the frame already says which role the
//!   step needs ([`Step::needs`]).
//! - To move on programmatically (e.g. after a successful action): `wizard.go(Step::Deploy)`.
//! - Links to a step from elsewhere: [`step_href`].

pub mod cluster;
pub mod deploy;
pub mod host_state;
pub mod offering;
pub mod oobm_configure;
pub mod oobm_enable;
pub mod power_test;
pub mod zone;

use crate::i18n::{t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::ids::{ClusterId, HostId, OfferingId, VmId, ZoneId};
use leptos::html;
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};

/// The wizard's steps, numbered as the console shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Zone = 1,
    Cluster = 2,
    ConfigureOobm = 3,
    EnableOobm = 4,
    HostState = 5,
    Offering = 6,
    Deploy = 7,
    PowerOff = 8,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Zone,
        Step::Cluster,
        Step::ConfigureOobm,
        Step::EnableOobm,
        Step::HostState,
        Step::Offering,
        Step::Deploy,
        Step::PowerOff,
    ];

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(number: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.number() == number)
    }

    pub fn next(self) -> Option<Step> {
        Step::from_number(self.number() + 1)
    }

    pub fn previous(self) -> Option<Step> {
        Step::from_number(self.number().checked_sub(1)?)
    }

    /// The step's title (translated), as the stepper and the step's heading show it.
    pub fn title(self) -> &'static str {
        match self {
            Step::Zone => t("Enable HA for the zone"),
            Step::Cluster => t("Enable HA for the cluster"),
            Step::ConfigureOobm => t("Configure out-of-band management"),
            Step::EnableOobm => t("Enable out-of-band management"),
            Step::HostState => t("Check host HA state"),
            Step::Offering => t("Create an HA compute offering"),
            Step::Deploy => t("Deploy test VMs"),
            Step::PowerOff => t("Power-off test"),
        }
    }

    /// What the console's role check needs for the step's actions; `None` for a step that only reads.
    /// The server's permissions behind them: HA switches `ManageHa`, OOBM configuration, switches and
    /// power `ManageOobm`, offerings and deploying to a chosen host `ManagePool`; all are granted to
    /// pool operators and pool admins (server/src/app/permission.rs).
    pub fn needs(self) -> Option<Ability> {
        match self {
            Step::Zone | Step::Cluster => Some(Ability::ManageHa),
            Step::ConfigureOobm | Step::EnableOobm | Step::Offering | Step::Deploy | Step::PowerOff => {
                Some(Ability::ManagePool)
            }
            Step::HostState => None,
        }
    }

    /// Why Next is not offered yet (translated): what the step still waits for.
    pub fn pending_reason(self) -> &'static str {
        match self {
            Step::Zone => t("Next is available once HA is on for the chosen zone."),
            Step::Cluster => t("Next is available once HA is on for the chosen cluster and its hosts."),
            Step::ConfigureOobm => {
                t("Next is available once every host of the cluster has out-of-band management configured.")
            }
            Step::EnableOobm => t(
                "Next is available once out-of-band management is on for the zone, the cluster and every host of the cluster.",
            ),
            Step::HostState => t("Next is available once every host of the cluster is Available."),
            Step::Offering => t("Next is available once an HA compute offering is chosen."),
            Step::Deploy => t("Next is available once the test VMs run on the test host."),
            Step::PowerOff => t("The test is finished once a verdict is given."),
        }
    }
}

/// What the wizard has chosen or made so far; shared by every step.
#[derive(Clone, Copy)]
pub struct Wizard {
    pub step: RwSignal<Step>,
    pub zone: RwSignal<Option<ZoneId>>,
    pub cluster: RwSignal<Option<ClusterId>>,
    /// The host the test VMs go to and that the power-off test switches off (steps 7 and 8).
    pub test_host: RwSignal<Option<HostId>>,
    /// The HA offering made or chosen in step 6.
    pub offering: RwSignal<Option<OfferingId>>,
    /// The test VMs deployed in step 7.
    pub test_vms: RwSignal<Vec<VmId>>,
}

/// The wizard's choices as the address carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choices {
    pub step: Option<Step>,
    pub zone: Option<ZoneId>,
    pub cluster: Option<ClusterId>,
    pub host: Option<HostId>,
    pub offering: Option<OfferingId>,
}

impl Choices {
    /// Reads `step`, `zone`, `cluster`, `host` and `offering`; anything unreadable counts as absent.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Choices {
        Choices {
            step: get("step").and_then(|step| step.trim().parse::<u8>().ok()).and_then(Step::from_number),
            zone: get("zone").and_then(|id| id.trim().parse().ok()),
            cluster: get("cluster").and_then(|id| id.trim().parse().ok()),
            host: get("host").and_then(|id| id.trim().parse().ok()),
            offering: get("offering").and_then(|id| id.trim().parse().ok()),
        }
    }

    /// `/ha/setup?step=N&zone=Z&cluster=C&host=H&offering=O`, leaving out what is not chosen.
    pub fn href(&self) -> String {
        let mut href = format!("/ha/setup?step={}", self.step.unwrap_or(Step::Zone).number());
        let mut add = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                href.push_str(&format!("&{name}={value}"));
            }
        };
        add("zone", self.zone.map(|id| id.to_string()));
        add("cluster", self.cluster.map(|id| id.to_string()));
        add("host", self.host.map(|id| id.to_string()));
        add("offering", self.offering.map(|id| id.to_string()));
        href
    }
}

/// The address of a step with these choices, for links from the zone, cluster and host menus.
pub fn step_href(step: Step, zone: Option<ZoneId>, cluster: Option<ClusterId>, host: Option<HostId>) -> String {
    Choices { step: Some(step), zone, cluster, host, offering: None }.href()
}

impl Wizard {
    pub fn new(choices: &Choices) -> Wizard {
        Wizard {
            step: RwSignal::new(choices.step.unwrap_or(Step::Zone)),
            zone: RwSignal::new(choices.zone),
            cluster: RwSignal::new(choices.cluster),
            test_host: RwSignal::new(choices.host),
            offering: RwSignal::new(choices.offering),
            test_vms: RwSignal::new(Vec::new()),
        }
    }

    /// Moves to a step (the frame updates the address and moves the focus to its heading).
    pub fn go(self, step: Step) {
        self.step.set(step);
    }

    /// The choices as they stand (tracked).
    pub fn choices(self) -> Choices {
        Choices {
            step: Some(self.step.get()),
            zone: self.zone.get(),
            cluster: self.cluster.get(),
            host: self.test_host.get(),
            offering: self.offering.get(),
        }
    }

    /// Takes what the address says (only what differs, so nothing re-renders needlessly).
    fn take(self, choices: &Choices) {
        let set = |changed: bool, apply: &dyn Fn()| {
            if changed {
                apply();
            }
        };
        let step = choices.step.unwrap_or(Step::Zone);
        set(self.step.get_untracked() != step, &|| self.step.set(step));
        set(self.zone.get_untracked() != choices.zone, &|| self.zone.set(choices.zone));
        set(self.cluster.get_untracked() != choices.cluster, &|| self.cluster.set(choices.cluster));
        set(self.test_host.get_untracked() != choices.host, &|| self.test_host.set(choices.host));
        set(self.offering.get_untracked() != choices.offering, &|| self.offering.set(choices.offering));
    }

    /// The hosts of the chosen cluster (tracked; empty before a cluster is chosen).
    pub fn cluster_hosts(self) -> Vec<HostId> {
        match self.cluster.get() {
            Some(cluster) => Store::expect().host_ids(Some(cluster)),
            None => Vec::new(),
        }
    }
}

/// Whether a step's work is done (reactive): the step's own `<name>_done`.
pub fn step_done(step: Step, wizard: Wizard) -> bool {
    match step {
        Step::Zone => zone::zone_done(wizard),
        Step::Cluster => cluster::cluster_done(wizard),
        Step::ConfigureOobm => oobm_configure::oobm_configure_done(wizard),
        Step::EnableOobm => oobm_enable::oobm_enable_done(wizard),
        Step::HostState => host_state::host_state_done(wizard),
        Step::Offering => offering::offering_done(wizard),
        Step::Deploy => deploy::deploy_done(wizard),
        Step::PowerOff => power_test::power_test_done(wizard),
    }
}

fn step_body(step: Step, wizard: Wizard) -> AnyView {
    match step {
        Step::Zone => view! { <zone::ZoneStep wizard /> }.into_any(),
        Step::Cluster => view! { <cluster::ClusterStep wizard /> }.into_any(),
        Step::ConfigureOobm => view! { <oobm_configure::OobmConfigureStep wizard /> }.into_any(),
        Step::EnableOobm => view! { <oobm_enable::OobmEnableStep wizard /> }.into_any(),
        Step::HostState => view! { <host_state::HostStateStep wizard /> }.into_any(),
        Step::Offering => view! { <offering::OfferingStep wizard /> }.into_any(),
        Step::Deploy => view! { <deploy::DeployStep wizard /> }.into_any(),
        Step::PowerOff => view! { <power_test::PowerTestStep wizard /> }.into_any(),
    }
}

/// Which role a step needs, in words (translated), when the signed-in role lacks it.
pub fn role_note(step: Step) -> Option<String> {
    let ability = step.needs()?;
    let session = Session::expect();
    session.may_untracked(ability).err()?;
    let role =
        untrack(|| session.role()).map(|role| crate::pages::account::role_name(role).to_owned()).unwrap_or_default();
    Some(match step {
        Step::Zone | Step::Cluster => tf(
            "Your role ({role}) can see this step but not take it: switching HA needs a pool operator or a pool admin.",
            &[("role", &role)],
        ),
        Step::ConfigureOobm | Step::EnableOobm => tf(
            "Your role ({role}) can see this step but not take it: configuring and switching out-of-band management needs a pool operator or a pool admin.",
            &[("role", &role)],
        ),
        Step::Offering => tf(
            "Your role ({role}) can see this step but not take it: creating a compute offering needs a pool operator or a pool admin.",
            &[("role", &role)],
        ),
        Step::Deploy => tf(
            "Your role ({role}) can see this step but not take it: deploying VMs onto a chosen host needs a pool operator or a pool admin.",
            &[("role", &role)],
        ),
        Step::PowerOff => tf(
            "Your role ({role}) can see this step but not take it: powering a host off through out-of-band management needs a pool operator or a pool admin.",
            &[("role", &role)],
        ),
        Step::HostState => return None,
    })
}

/// Whether the signed-in role may take a step's actions (untracked, like `Session::may_untracked`).
pub fn may_take(step: Step) -> bool {
    step.needs().is_none_or(|ability| Session::expect().may_untracked(ability).is_ok())
}

/// The wizard's page: the stepper, the current step's panel and Back / Next; the choices follow the
/// address both ways.
#[component]
pub fn HaWizardPage() -> impl IntoView {
    let store = Store::expect();
    let query = use_query_map();
    let navigate = use_navigate();
    let from_address = Memo::new(move |_| query.with(|query| Choices::parse(|name| query.get(name))));
    let wizard = Wizard::new(&from_address.get_untracked());
    oobm_configure::OobmConfigs::provide();
    // The address → the wizard (a link followed, the browser's Back).
    Effect::new(move || wizard.take(&from_address.get()));
    // The wizard → the address: a new step is a new history entry, a new choice replaces the entry.
    Effect::new(move || {
        let choices = wizard.choices();
        let here = from_address.get_untracked();
        if choices != here {
            // The first visit's `/ha/setup` becomes `?step=1` in place, not a new entry.
            let replace = here.step.is_none() || choices.step == here.step;
            navigate(&choices.href(), NavigateOptions { replace, scroll: false, ..Default::default() });
        }
    });
    // A chosen cluster brings its zone along (a link from a cluster's menu names only the cluster).
    Effect::new(move || {
        if let Some(cluster) = wizard.cluster.get().and_then(|id| store.cluster(id))
            && wizard.zone.get_untracked() != Some(cluster.zone_id)
        {
            wizard.zone.set(Some(cluster.zone_id));
        }
    });
    // So does a chosen host its cluster.
    Effect::new(move || {
        if let Some(host) = wizard.test_host.get().and_then(|id| store.host(id))
            && wizard.cluster.get_untracked().is_none()
        {
            wizard.cluster.set(Some(host.cluster_id));
        }
    });

    let heading = NodeRef::<html::H2>::new();
    // The heading takes the focus when the step changes (not on the first render: the page's own
    // focus order starts at the top).
    let first = StoredValue::new(true);
    Effect::new(move || {
        wizard.step.track();
        if let Some(heading) = heading.get() {
            if first.get_value() {
                first.set_value(false);
            } else {
                let _ = heading.focus();
            }
        }
    });

    let done = Memo::new(move |_| step_done(wizard.step.get(), wizard));
    let next = move |_| {
        if let Some(step) = wizard.step.get_untracked().next() {
            wizard.go(step);
        }
    };
    let back = move |_| {
        if let Some(step) = wizard.step.get_untracked().previous() {
            wizard.go(step);
        }
    };

    view! {
        <div class="page ha-wizard" data-testid="ha-wizard">
            <header class="page-header">
                <h1>{t("HA setup")}</h1>
                <p class="page-summary">
                    {t("Turn HA on for a pool and prove it works, step by step: zone, cluster, out-of-band management, host states, an HA offering, test VMs and a power-off test.")}
                </p>
            </header>
            <nav class="wizard-steps-nav" aria-label=t("HA setup steps")>
                <ol class="wizard-steps">
                    {Step::ALL
                        .into_iter()
                        .map(|step| view! { <StepperItem step wizard /> })
                        .collect_view()}
                </ol>
            </nav>
            <section
                class="wizard-panel"
                id=move || format!("ha-wizard-step-{}", wizard.step.get().number())
                data-testid=move || format!("ha-wizard-step-{}", wizard.step.get().number())
                data-step=move || wizard.step.get().number()
                aria-labelledby="ha-wizard-heading"
            >
                <h2 id="ha-wizard-heading" class="wizard-heading" tabindex="-1" node_ref=heading>
                    {move || {
                        let step = wizard.step.get();
                        tf(
                            "Step {number} of 8: {title}",
                            &[("number", &step.number().to_string()), ("title", step.title())],
                        )
                    }}
                </h2>
                {move || {
                    let step = wizard.step.get();
                    role_note(step)
                        .map(|note| {
                            view! {
                                <p class="wizard-role-note" data-testid="ha-wizard-role-note" role="note">
                                    {note}
                                </p>
                            }
                        })
                }}
                <div class="wizard-body">{move || step_body(wizard.step.get(), wizard)}</div>
            </section>
            <div class="wizard-actions">
                <button
                    type="button"
                    class="button"
                    data-testid="ha-wizard-back"
                    disabled=move || wizard.step.get().previous().is_none()
                    on:click=back
                >
                    {t("Back")}
                </button>
                {move || {
                    let step = wizard.step.get();
                    match step.next() {
                        Some(following) => {
                            view! {
                                <button
                                    type="button"
                                    class="button button-primary"
                                    id="ha-wizard-next"
                                    data-testid="ha-wizard-next"
                                    aria-describedby="ha-wizard-next-reason"
                                    disabled=move || !done.get()
                                    on:click=next
                                >
                                    {tf("Next: {title}", &[("title", following.title())])}
                                </button>
                            }
                                .into_any()
                        }
                        None => {
                            view! {
                                <a
                                    class="button button-primary"
                                    href="/ha/incidents"
                                    data-testid="ha-wizard-finish"
                                    aria-describedby="ha-wizard-next-reason"
                                >
                                    {t("See HA incidents")}
                                </a>
                            }
                                .into_any()
                        }
                    }
                }}
                <p id="ha-wizard-next-reason" class="wizard-next-reason" data-testid="ha-wizard-next-reason" aria-live="polite">
                    {move || (!done.get()).then(|| wizard.step.get().pending_reason())}
                </p>
            </div>
        </div>
    }
}

/// One step in the stepper: a link to it (every step is reachable alone), marked done or not, and
/// `aria-current="step"` on the current one.
#[component]
fn StepperItem(step: Step, wizard: Wizard) -> impl IntoView {
    let done = Memo::new(move |_| step_done(step, wizard));
    let current = move || wizard.step.get() == step;
    let href = move || Choices { step: Some(step), ..wizard.choices() }.href();
    view! {
        <li
            class="wizard-step"
            class:wizard-step-current=current
            class:wizard-step-done=move || done.get()
            data-testid=format!("ha-wizard-stepper-{}", step.number())
            data-done=move || if done.get() { "true" } else { "false" }
        >
            <a
                href=href
                aria-current=move || current().then_some("step")
                on:click=move |event| {
                    event.prevent_default();
                    wizard.go(step);
                }
            >
                <span class="wizard-step-mark" aria-hidden="true">
                    {move || if done.get() { "✓".to_owned() } else { step.number().to_string() }}
                </span>
                <span class="wizard-step-title">{step.title()}</span>
                <span class="visually-hidden">
                    {move || if done.get() { t("(done)") } else { t("(not done)") }}
                </span>
            </a>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_address_carries_the_choices_both_ways() {
        let cluster = ClusterId::new_random();
        let host = HostId::new_random();
        let href = step_href(Step::ConfigureOobm, None, Some(cluster), Some(host));
        assert_eq!(href, format!("/ha/setup?step=3&cluster={cluster}&host={host}"));
        let query: HashMap<String, String> = href
            .split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap())
            .collect();
        let parsed = Choices::parse(|name| query.get(name).cloned());
        assert_eq!(
            parsed,
            Choices {
                step: Some(Step::ConfigureOobm),
                zone: None,
                cluster: Some(cluster),
                host: Some(host),
                offering: None
            }
        );
        assert_eq!(parsed.href(), href);
    }

    #[test]
    fn nonsense_in_the_address_counts_as_nothing_chosen() {
        let parsed = Choices::parse(|name| Some(if name == "step" { "9" } else { "not-an-id" }.to_owned()));
        assert_eq!(parsed, Choices::default());
        assert_eq!(Choices::default().href(), "/ha/setup?step=1");
        assert_eq!(Step::PowerOff.next(), None);
        assert_eq!(Step::Zone.previous(), None);
        assert_eq!(Step::Cluster.previous(), Some(Step::Zone));
    }
}
