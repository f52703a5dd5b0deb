//! The page for an address the console does not know.

use crate::i18n::t;
use leptos::prelude::*;

#[component]
pub fn NotFoundPage() -> impl IntoView {
    view! {
        <main class="boot">
            <div class="panel not-found">
                <h1>{t("Page not found")}</h1>
                <p>{t("There is nothing at this address.")}</p>
                <a class="button" href="/">
                    {t("Go to the infrastructure view")}
                </a>
            </div>
        </main>
    }
}
