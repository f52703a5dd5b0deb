//! Table helpers shared by the list pages: the dense table frame, empty rows and allocation bars.

use super::format;
use crate::i18n::tf;
use leptos::prelude::*;

/// A compact data table with an accessible name (a visible caption, or an aria-label when hidden).
#[component]
pub fn DataTable(
    /// The table's accessible name.
    #[prop(into)]
    label: String,
    /// Show the label as a visible caption above the table.
    #[prop(optional)]
    caption: bool,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data-table" aria-label=(!caption).then(|| label.clone())>
                {caption.then(|| view! { <caption>{label.clone()}</caption> })}
                {children()}
            </table>
        </div>
    }
}

/// The single row of a table that has nothing to show.
#[component]
pub fn EmptyRow(columns: u32, #[prop(into)] text: String) -> impl IntoView {
    view! {
        <tr class="empty-row">
            <td colspan=columns>{text}</td>
        </tr>
    }
}

/// A small horizontal bar showing how much of a capacity is allocated, coloured by level.
#[component]
pub fn UsageBar(used: u64, total: u64) -> impl IntoView {
    let percent = format::percent(used, total);
    let level = match percent {
        0..70 => "ok",
        70..90 => "high",
        _ => "full",
    };
    let allocated = tf("{percent}% allocated", &[("percent", &percent.to_string())]);
    view! {
        <span
            class=format!("usage-bar usage-{level}")
            role="img"
            aria-label=allocated.clone()
            title=allocated
        >
            <span class="usage-fill" style=format!("width: {percent}%")></span>
        </span>
    }
}
