//! (being written)

use super::Wizard;
use leptos::prelude::*;

#[component]
pub fn HostStateStep(wizard: Wizard) -> impl IntoView {
    let _ = wizard;
}

pub fn host_state_done(wizard: Wizard) -> bool {
    let _ = wizard;
    false
}
