//! (being written)

use super::Wizard;
use leptos::prelude::*;

#[component]
pub fn OobmConfigureStep(wizard: Wizard) -> impl IntoView {
    let _ = wizard;
}

pub fn oobm_configure_done(wizard: Wizard) -> bool {
    let _ = wizard;
    false
}
