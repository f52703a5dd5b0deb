//! A relative time ("2 s ago") that re-renders every second from the store's ticking clock.

use super::format;
use crate::store::Store;
use chrono::{DateTime, Utc};
use leptos::prelude::*;

#[component]
pub fn RelativeTime(#[prop(into)] at: Signal<Option<DateTime<Utc>>>) -> impl IntoView {
    let store = Store::expect();
    view! {
        <time
            datetime=move || at.get().map(|at| at.to_rfc3339())
            title=move || at.get().map(format::timestamp)
        >
            {move || format::ago(store.now.get(), at.get())}
        </time>
    }
}
