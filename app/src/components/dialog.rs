//! A modal dialog and the small "why can't I?" disclosure used wherever the console withholds an action.
//!
//! The dialog is a plain `role="dialog"` box over a dimmed backdrop; Escape and the "×" button close it.
//! Its first form field gets the focus (the `autofocus` attribute of the caller's field).

use leptos::ev::keydown;
use leptos::prelude::*;

/// A modal dialog titled `title`; `on_close` runs on Escape, on "×", and on a click on the backdrop.
#[component]
pub fn Dialog(#[prop(into)] title: String, #[prop(into)] on_close: Callback<()>, children: Children) -> impl IntoView {
    let handle = window_event_listener(keydown, move |event| {
        if event.key() == "Escape" {
            on_close.run(());
        }
    });
    on_cleanup(move || handle.remove());
    let title_id = format!("dialog-{}", title.to_lowercase().replace(|c: char| !c.is_alphanumeric(), "-"));
    let heading_id = title_id.clone();
    view! {
        <div class="dialog-backdrop" on:click=move |_| on_close.run(())>
            <div
                class="dialog"
                role="dialog"
                aria-modal="true"
                aria-labelledby=title_id
                on:click=|event| event.stop_propagation()
            >
                <header class="dialog-header">
                    <h2 id=heading_id>{title}</h2>
                    <button
                        type="button"
                        class="button button-quiet"
                        aria-label="Close"
                        on:click=move |_| on_close.run(())
                    >
                        "×"
                    </button>
                </header>
                <div class="dialog-body">{children()}</div>
            </div>
        </div>
    }
}

/// Says, when asked, why an action is not offered: a "Why can't I …?" disclosure with the reason.
#[component]
pub fn WhyNot(#[prop(into)] action: String, #[prop(into)] reason: String) -> impl IntoView {
    view! {
        <details class="why-not">
            <summary>{format!("Why can't I {action}?")}</summary>
            <p>{reason}</p>
        </details>
    }
}

/// The message of a failed form submission, announced to screen readers.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })
}
