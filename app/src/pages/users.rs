//! Placeholder, being written.

use leptos::prelude::*;

#[component]
pub fn UsersPage() -> impl IntoView {
    view! { <h1>"UsersPage"</h1> }
}
