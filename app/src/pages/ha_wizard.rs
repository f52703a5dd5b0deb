//! The HA setup wizard (`/ha/setup`): the eight steps of turning HA on for a pool and proving it works,
//! in the order of Mold's HA guide. Each step is a component of its own in `ha_wizard/`, also reachable
//! alone (`/ha/setup?step=N&cluster=…`) from the object's action menu. The wizard's choices (zone,
//! cluster, test host, offering, test VMs) live in [`Wizard`] and in the address, so a reload or a link
//! lands on the same step.
//!
//! Steps 1–5 (`zone.rs`, `cluster.rs`, `oobm_configure.rs`, `oobm_enable.rs`, `host_state.rs`) set HA
//! and out-of-band management up; steps 6–8 (`offering.rs`, `deploy.rs`, `power_test.rs`) prove it.

pub mod cluster;
pub mod deploy;
pub mod host_state;
pub mod offering;
pub mod oobm_configure;
pub mod oobm_enable;
pub mod power_test;
pub mod zone;

use api::ids::{ClusterId, HostId, OfferingId, VmId, ZoneId};
use leptos::prelude::*;

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

/// The wizard's page (being written).
#[component]
pub fn HaWizardPage() -> impl IntoView {
    view! { <h1>{crate::i18n::t("HA setup")}</h1> }
}
