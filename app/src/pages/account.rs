//! Placeholder, being written.

use leptos::prelude::*;

#[component]
pub fn AccountPage() -> impl IntoView {
    view! { <h1>"AccountPage"</h1> }
}
