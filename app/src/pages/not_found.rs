//! The page for an address the console does not know.

use leptos::prelude::*;

#[component]
pub fn NotFoundPage() -> impl IntoView {
    view! {
        <main class="boot">
            <div class="panel not-found">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <a class="button" href="/">
                    "Go to the infrastructure view"
                </a>
            </div>
        </main>
    }
}
