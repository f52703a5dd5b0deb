//! What an ErrorBoundary shows: the server's own message(s), in an alert, with a way to try again.

use crate::i18n::{server_text, t};
use leptos::error::Errors;
use leptos::prelude::*;

#[component]
pub fn ErrorView(
    errors: ArcRwSignal<Errors>,
    /// Runs when the person presses "Try again" (typically a resource refetch).
    #[prop(optional, into)]
    retry: Option<Callback<()>>,
) -> impl IntoView {
    let messages = move || {
        errors.get().into_iter().map(|(_, error)| view! { <li>{server_text(&error.to_string())}</li> }).collect_view()
    };
    view! {
        <div class="error-panel" role="alert">
            <p class="error-title">{t("Could not load this page")}</p>
            <ul class="error-messages">{messages}</ul>
            {retry.map(|retry| {
                view! {
                    <button type="button" class="button" on:click=move |_| retry.run(())>
                        {t("Try again")}
                    </button>
                }
            })}
        </div>
    }
}

/// What a Transition shows before the first answer arrives.
#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" aria-live="polite">{t("Loading…")}</p> }
}
