//! "Issue power action on NAME": one of ON, OFF, CYCLE, RESET, SOFT, STATUS through the host's BMC.
//!
//! OFF, CYCLE and RESET take the power away from a running host at once, so they need a second step
//! that names the host and lists the VMs that would go down with it. The answer (the power state the
//! BMC reported right after) is shown in the dialog; the host's badge follows by itself, from the
//! server's live events.

use crate::api_client;
use crate::components::badges::{VmStateBadge, power_word};
use crate::components::dialog::{Dialog, FormError};
use crate::components::format::count;
use crate::session::Session;
use crate::store::Store;
use api::v1::{Host, PowerAction, PowerActionResult, VmState};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Every action, in the order offered.
pub const ACTIONS: [PowerAction; 6] =
    [PowerAction::On, PowerAction::Off, PowerAction::Cycle, PowerAction::Reset, PowerAction::Soft, PowerAction::Status];

/// What an action does, in words.
pub fn describe(action: PowerAction) -> &'static str {
    match action {
        PowerAction::On => "Power the host on.",
        PowerAction::Off => "Hard power-off, like pulling the plug: the OS gets no chance to shut down.",
        PowerAction::Cycle => "Power off, then on again (done as OFF then ON where the BMC lacks a cycle).",
        PowerAction::Reset => "Hard reset: the host restarts at once without shutting down.",
        PowerAction::Soft => "Ask the OS to shut down cleanly (ACPI); a hung OS may ignore it.",
        PowerAction::Status => "Read the power state; changes nothing.",
    }
}

/// The actions that take the power from a running host without asking its OS: they need confirming.
pub fn needs_confirmation(action: PowerAction) -> bool {
    matches!(action, PowerAction::Off | PowerAction::Cycle | PowerAction::Reset)
}

/// The confirm button's words for an action that needs confirming.
fn confirm_words(action: PowerAction, host: &str) -> String {
    match action {
        PowerAction::Off => format!("Power off {host}"),
        PowerAction::Cycle => format!("Power cycle {host}"),
        PowerAction::Reset => format!("Reset {host}"),
        other => format!("{} {host}", other.as_str()),
    }
}

/// The first step's submit button: "Continue" before a confirmation, else "Issue STATUS" and the like.
fn submit_words(chosen: Option<PowerAction>, pending: bool) -> String {
    match chosen {
        _ if pending => "Working…".to_owned(),
        None => "Issue".to_owned(),
        Some(action) if needs_confirmation(action) => "Continue".to_owned(),
        Some(action) => format!("Issue {}", action.as_str()),
    }
}

/// VM states whose VM has (or may have) a live process on its host: those go down with its power.
fn goes_down_with_host(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Migrating | VmState::Unknown)
}

/// The sentence for what the BMC answered.
pub fn result_summary(result: &PowerActionResult, host: &str) -> String {
    let (_, power) = power_word(result.power_state);
    match result.action {
        PowerAction::Status => format!("{host}: the BMC reports power {power} ({} ms).", result.elapsed_ms),
        action => format!(
            "{} on {host}: accepted by the BMC, which now reports power {power} ({} ms).",
            action.as_str(),
            result.elapsed_ms
        ),
    }
}

#[derive(Clone, PartialEq)]
enum Step {
    Choose,
    Confirm(PowerAction),
    Done(PowerActionResult),
}

#[component]
pub fn PowerActionDialog(host: Memo<Host>, on_close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let (id, name) = host.with_untracked(|host| (host.id, host.name.clone()));
    let chosen = RwSignal::new(None::<PowerAction>);
    let step = RwSignal::new(Step::Choose);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // The VMs on the host that would lose their power, live.
    let at_risk = Memo::new(move |_| {
        store.vms.with(|vms| {
            let mut found: Vec<(String, VmState)> = vms
                .values()
                .filter(|vm| vm.host_id == Some(id) && goes_down_with_host(vm.state))
                .map(|vm| (vm.name.clone(), vm.state))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found
        })
    });

    let issue = move |action: PowerAction| {
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match api_client::oobm_power(id, action).await {
                Ok(result) => step.set(Step::Done(result)),
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(failure.to_string()));
                }
            }
            pending.set(false);
        });
    };
    let choose_submit = move |event: SubmitEvent| {
        event.prevent_default();
        match chosen.get_untracked() {
            None => error.set(Some("Action: choose one.".to_owned())),
            Some(action) if needs_confirmation(action) => {
                error.set(None);
                step.set(Step::Confirm(action));
            }
            Some(action) => issue(action),
        }
    };

    let name_for_choose = name.clone();
    let choose = move || {
        let radios = ACTIONS
            .into_iter()
            .map(|action| {
                let word = action.as_str();
                let radio_id = format!("power-action-{}", word.to_lowercase());
                let hint_id = format!("{radio_id}-hint");
                view! {
                    <div class="power-choice">
                        <input
                            type="radio"
                            name="power-action"
                            id=radio_id.clone()
                            value=word
                            aria-describedby=hint_id.clone()
                            prop:checked=move || chosen.get() == Some(action)
                            on:change=move |_| chosen.set(Some(action))
                        />
                        <label for=radio_id>{word}</label>
                        <span id=hint_id class="field-hint">{describe(action)}</span>
                    </div>
                }
            })
            .collect_view();
        view! {
            <form class="dialog-form" on:submit=choose_submit>
                <fieldset class="power-choices">
                    <legend>{format!("Action on {name_for_choose}")}</legend>
                    {radios}
                </fieldset>
                <FormError error />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| on_close.run(())>
                        "Cancel"
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || submit_words(chosen.get(), pending.get())}
                    </button>
                </div>
            </form>
        }
    };

    let confirm = move |action: PowerAction, name: String| {
        let vms = at_risk.get();
        let consequence = match action {
            PowerAction::Off => "loses its power at once and stays off",
            PowerAction::Cycle => "loses its power, then is powered on again",
            _ => "restarts at once without shutting down",
        };
        let vm_list = if vms.is_empty() {
            view! { <p>{format!("No VMs run on {name} now.")}</p> }.into_any()
        } else {
            view! {
                <p>{format!("Its {} go down with it:", count(vms.len(), "running VM", "running VMs"))}</p>
                <ul class="power-vms" aria-label=format!("VMs running on {name}")>
                    {vms
                        .into_iter()
                        .map(|(vm, state)| view! {
                            <li>
                                <span>{vm}</span>
                                <VmStateBadge state />
                            </li>
                        })
                        .collect_view()}
                </ul>
            }
            .into_any()
        };
        let submit = move |event: SubmitEvent| {
            event.prevent_default();
            issue(action);
        };
        view! {
            <form class="dialog-form power-confirm" on:submit=submit>
                <p class="host-warning" role="alert">
                    {format!("{} {name}: the host {consequence}.", action.as_str())}
                </p>
                {vm_list}
                <FormError error />
                <div class="dialog-actions">
                    <button
                        type="button"
                        class="button button-quiet"
                        on:click=move |_| {
                            error.set(None);
                            step.set(Step::Choose);
                        }
                    >
                        "Back"
                    </button>
                    <button type="submit" class="button button-danger" disabled=move || pending.get()>
                        {confirm_words(action, &name)}
                    </button>
                </div>
            </form>
        }
    };

    let done = move |result: PowerActionResult, name: String| {
        view! {
            <div class="dialog-form power-result">
                <p class="oobm-test-result oobm-test-ok" role="status">{result_summary(&result, &name)}</p>
                {result.note.clone().map(|note| view! { <p class="field-hint">{note}</p> })}
                <div class="dialog-actions">
                    <button
                        type="button"
                        class="button"
                        on:click=move |_| {
                            chosen.set(None);
                            step.set(Step::Choose);
                        }
                    >
                        "Issue another action"
                    </button>
                    <button type="button" class="button button-primary" on:click=move |_| on_close.run(())>
                        "Close"
                    </button>
                </div>
            </div>
        }
    };

    let name_for_view = name.clone();
    view! {
        <Dialog title=format!("Issue power action on {name}") on_close>
            {move || match step.get() {
                Step::Choose => choose().into_any(),
                Step::Confirm(action) => confirm(action, name_for_view.clone()).into_any(),
                Step::Done(result) => done(result, name_for_view.clone()).into_any(),
            }}
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::v1::PowerState;

    #[test]
    fn only_the_actions_that_cut_a_running_host_need_confirming() {
        let confirmed: Vec<_> = ACTIONS.into_iter().filter(|action| needs_confirmation(*action)).collect();
        assert_eq!(confirmed, [PowerAction::Off, PowerAction::Cycle, PowerAction::Reset]);
        assert_eq!(confirm_words(PowerAction::Off, "kvm-a1"), "Power off kvm-a1");
        assert_eq!(submit_words(Some(PowerAction::Off), false), "Continue");
        assert_eq!(submit_words(Some(PowerAction::Status), false), "Issue STATUS");
    }

    #[test]
    fn the_result_says_what_the_bmc_reports() {
        let result =
            PowerActionResult { action: PowerAction::Off, power_state: PowerState::Off, note: None, elapsed_ms: 12 };
        assert_eq!(
            result_summary(&result, "kvm-a1"),
            "OFF on kvm-a1: accepted by the BMC, which now reports power Off (12 ms)."
        );
    }
}
