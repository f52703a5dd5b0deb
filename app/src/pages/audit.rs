//! Placeholder, being written.

use leptos::prelude::*;

#[component]
pub fn AuditPage() -> impl IntoView {
    view! { <h1>"AuditPage"</h1> }
}
