//! Placeholder, being written.

use leptos::prelude::*;

#[component]
pub fn VmDetailPage() -> impl IntoView {
    view! { <h1>"VmDetailPage"</h1> }
}
