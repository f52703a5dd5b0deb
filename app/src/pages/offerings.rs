//! Placeholder, being written.

use leptos::prelude::*;

#[component]
pub fn OfferingsPage() -> impl IntoView {
    view! { <h1>"OfferingsPage"</h1> }
}
