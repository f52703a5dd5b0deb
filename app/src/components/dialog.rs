//! A modal dialog and the small "why can't I?" disclosure used wherever the console withholds an action.
//!
//! The dialog is a plain `role="dialog"` box over a dimmed backdrop; Escape and the "×" button close it.
//! Dialogs can stack (the overcommit warning opens over the dialog whose action it checks): Escape then
//! closes only the topmost one. Its first form field gets the focus (the `autofocus` attribute of the
//! caller's field, or [`focus_when_mounted`]); without one the dialog itself takes it. While a dialog is
//! open, focus cannot wander to the page behind it (Tab stays inside), and when it closes the focus goes
//! back to where it was when it opened (usually the button that opened it).

use crate::i18n::{t, tf};
use leptos::ev::{focusin, keydown};
use leptos::html;
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys::{HtmlElement, Node};
use send_wrapper::SendWrapper;
use std::cell::{Cell, RefCell};

thread_local! {
    /// The open dialogs, oldest first: only the last one answers Escape.
    static OPEN_DIALOGS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static NEXT_DIALOG: Cell<u64> = const { Cell::new(0) };
}

/// Registers a newly opened dialog as the topmost one.
fn opened() -> u64 {
    let token = NEXT_DIALOG.with(|next| next.replace(next.get() + 1));
    OPEN_DIALOGS.with(|open| open.borrow_mut().push(token));
    token
}

fn closed(token: u64) {
    OPEN_DIALOGS.with(|open| open.borrow_mut().retain(|open| *open != token));
}

fn is_topmost(token: u64) -> bool {
    OPEN_DIALOGS.with(|open| open.borrow().last() == Some(&token))
}

/// A modal dialog titled `title`; `on_close` runs on Escape (when it is the topmost dialog), on "×",
/// and on a click on the backdrop.
#[component]
pub fn Dialog(#[prop(into)] title: String, #[prop(into)] on_close: Callback<()>, children: Children) -> impl IntoView {
    let token = opened();
    // Where the focus was (the opener), to give it back on close.
    let opener =
        SendWrapper::new(document().active_element().and_then(|element| element.dyn_into::<HtmlElement>().ok()));
    let dialog_ref = NodeRef::<html::Div>::new();
    let handle = window_event_listener(keydown, move |event| {
        if event.key() == "Escape" && is_topmost(token) {
            on_close.run(());
        }
    });
    // Focus that lands outside the topmost dialog (Tab past its last control, a click behind the
    // backdrop) comes back to the dialog.
    let focus_guard = window_event_listener(focusin, move |event| {
        if !is_topmost(token) {
            return;
        }
        let Some(dialog) = dialog_ref.get_untracked() else { return };
        let inside = event.target().and_then(|target| target.dyn_into::<Node>().ok()).is_some_and(|node| {
            let dialog: &Node = dialog.as_ref();
            dialog.contains(Some(&node))
        });
        if !inside {
            let _ = dialog.focus();
        }
    });
    // Without an autofocused field, the dialog itself takes the focus once it is on the page.
    Effect::new(move || {
        if let Some(dialog) = dialog_ref.get() {
            let focus_inside = document().active_element().is_some_and(|active| {
                let dialog: &Node = dialog.as_ref();
                dialog.contains(Some(active.as_ref()))
            });
            if !focus_inside {
                let _ = dialog.focus();
            }
        }
    });
    on_cleanup(move || {
        handle.remove();
        focus_guard.remove();
        closed(token);
        if let Some(opener) = opener.take()
            && opener.is_connected()
        {
            let _ = opener.focus();
        }
    });
    let title_id = format!("dialog-{token}");
    let heading_id = title_id.clone();
    view! {
        <div class="dialog-backdrop" on:click=move |_| on_close.run(())>
            <div
                class="dialog"
                role="dialog"
                aria-modal="true"
                aria-labelledby=title_id
                tabindex="-1"
                node_ref=dialog_ref
                on:click=|event| event.stop_propagation()
            >
                <header class="dialog-header">
                    <h2 id=heading_id>{title}</h2>
                    <button
                        type="button"
                        class="button button-quiet"
                        aria-label=t("Close")
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

/// Moves the keyboard focus to `element` once it is on the page (the `autofocus` attribute only works
/// on the first page load of a single-page app).
pub fn focus_when_mounted(element: impl Fn() -> Option<HtmlElement> + 'static) {
    Effect::new(move || {
        if let Some(element) = element() {
            // Focusing only fails for elements that cannot take focus; nothing to do then.
            let _ = element.focus();
        }
    });
}

/// Says, when asked, why an action is not offered: a "Why can't I …?" disclosure with the reason.
#[component]
pub fn WhyNot(#[prop(into)] action: String, #[prop(into)] reason: String) -> impl IntoView {
    view! {
        <details class="why-not">
            <summary>{tf("Why can't I {action}?", &[("action", &action)])}</summary>
            <p>{reason}</p>
        </details>
    }
}

/// The message of a failed form submission, announced to screen readers.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })
}
