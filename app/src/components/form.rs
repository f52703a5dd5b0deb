//! Small form widgets shared by the dialogs and pages: a labelled `<select>` of [`Choice`]s and a
//! labelled text or number input, both bound to a `RwSignal<String>`.

use leptos::prelude::*;

/// One option of a [`ChoiceSelect`]: its value, its text, and whether it can be chosen.
#[derive(Clone, PartialEq)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub enabled: bool,
}

impl Choice {
    pub fn new(value: impl ToString, label: impl Into<String>) -> Choice {
        Choice { value: value.to_string(), label: label.into(), enabled: true }
    }
}

/// A labelled `<select>`, first offering `placeholder` (value "") when given. A choice sets `value`,
/// or is handed to `on_choose` when given (which then sets `value` itself).
#[component]
pub fn ChoiceSelect(
    #[prop(into)] id: String,
    #[prop(into)] label: String,
    #[prop(optional, into)] placeholder: Option<Signal<String>>,
    #[prop(into)] choices: Signal<Vec<Choice>>,
    value: RwSignal<String>,
    #[prop(optional, into)] on_choose: Option<Callback<String>>,
    #[prop(optional)] autofocus: bool,
    #[prop(optional)] disabled: bool,
) -> impl IntoView {
    let choose = move |chosen: String| match on_choose {
        Some(on_choose) => on_choose.run(chosen),
        None => value.set(chosen),
    };
    let options = move || {
        choices
            .get()
            .into_iter()
            .map(|choice| {
                let selected = choice.value.clone();
                view! {
                    <option
                        value=choice.value
                        disabled=!choice.enabled
                        prop:selected=move || value.with(|value| *value == selected)
                    >
                        {choice.label}
                    </option>
                }
            })
            .collect_view()
    };
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <select
                id=id
                autofocus=autofocus
                disabled=disabled
                on:change:target=move |event| choose(event.target().value())
            >
                {placeholder
                    .map(|placeholder| {
                        view! {
                            <option value="" prop:selected=move || value.with(String::is_empty)>
                                {placeholder}
                            </option>
                        }
                    })}
                {options}
            </select>
        </div>
    }
}

/// A labelled text (or `kind="number"`) input bound to `value`. With `error`, a message about the
/// field shows under it, tied to the input (`aria-invalid`, `aria-describedby`).
#[component]
pub fn TextField(
    #[prop(into)] id: String,
    #[prop(into)] label: String,
    value: RwSignal<String>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] placeholder: Option<String>,
    #[prop(optional)] autofocus: bool,
    #[prop(optional)] disabled: bool,
    #[prop(optional, into)] error: Option<Signal<Option<&'static str>>>,
) -> impl IntoView {
    let error = move || error.and_then(|error| error.get());
    let error_id = format!("{id}-error");
    let described = {
        let error_id = error_id.clone();
        move || error().is_some().then(|| error_id.clone())
    };
    view! {
        <div class="field" class:field-invalid=move || error().is_some()>
            <label for=id.clone()>{label}</label>
            <input
                id=id
                type=kind
                autocomplete="off"
                placeholder=placeholder
                autofocus=autofocus
                disabled=disabled
                bind:value=value
                aria-invalid=move || error().is_some().then_some("true")
                aria-describedby=described
            />
            {move || error().map(|message| view! { <span id=error_id.clone() class="field-error">{message}</span> })}
        </div>
    }
}
