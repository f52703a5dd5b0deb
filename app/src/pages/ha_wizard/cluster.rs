//! (being written)

use super::Wizard;
use leptos::prelude::*;

#[component]
pub fn ClusterStep(wizard: Wizard) -> impl IntoView {
    let _ = wizard;
}

pub fn cluster_done(wizard: Wizard) -> bool {
    let _ = wizard;
    false
}
