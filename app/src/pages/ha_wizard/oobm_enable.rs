//! (being written)

use super::Wizard;
use leptos::prelude::*;

#[component]
pub fn OobmEnableStep(wizard: Wizard) -> impl IntoView {
    let _ = wizard;
}

pub fn oobm_enable_done(wizard: Wizard) -> bool {
    let _ = wizard;
    false
}
