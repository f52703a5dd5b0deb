//! (being written)

use super::Wizard;
use leptos::prelude::*;

#[component]
pub fn ZoneStep(wizard: Wizard) -> impl IntoView {
    let _ = wizard;
}

pub fn zone_done(wizard: Wizard) -> bool {
    let _ = wizard;
    false
}
