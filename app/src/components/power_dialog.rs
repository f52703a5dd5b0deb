//! "Issue power action on NAME": one of ON, OFF, CYCLE, RESET, SOFT, STATUS through the host's BMC.
//!
//! OFF, CYCLE and RESET take the power away from a running host at once, so they need a second step
//! that names the host and lists the VMs that would go down with it. The answer (the power state the
//! BMC reported right after) is shown in the dialog; the host's badge follows by itself, from the
//! server's live events.

use crate::api_client;
use crate::components::badges::{VmStateBadge, power_word};
use crate::components::dialog::{Dialog, FormError};
use crate::i18n::{server_text, t, tf};
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
        PowerAction::On => t("Power the host on."),
        PowerAction::Off => t("Hard power-off, like pulling the plug: the OS gets no chance to shut down."),
        PowerAction::Cycle => t("Power off, then on again (done as OFF then ON where the BMC lacks a cycle)."),
        PowerAction::Reset => t("Hard reset: the host restarts at once without shutting down."),
        PowerAction::Soft => t("Ask the OS to shut down cleanly (ACPI); a hung OS may ignore it."),
        PowerAction::Status => t("Read the power state; changes nothing."),
    }
}

/// The actions that take the power from a running host without asking its OS: they need confirming.
pub fn needs_confirmation(action: PowerAction) -> bool {
    matches!(action, PowerAction::Off | PowerAction::Cycle | PowerAction::Reset)
}

/// The confirm button's words for an action that needs confirming.
fn confirm_words(action: PowerAction, host: &str) -> String {
    match action {
        PowerAction::Off => tf("Power off {host}", &[("host", host)]),
        PowerAction::Cycle => tf("Power cycle {host}", &[("host", host)]),
        PowerAction::Reset => tf("Reset {host}", &[("host", host)]),
        other => tf("{action} {host}", &[("action", other.as_str()), ("host", host)]),
    }
}

/// The first step's submit button: "Continue" before a confirmation, else "Issue STATUS" and the like.
fn submit_words(chosen: Option<PowerAction>, pending: bool) -> String {
    match chosen {
        _ if pending => t("Working…").to_owned(),
        None => t("Issue").to_owned(),
        Some(action) if needs_confirmation(action) => t("Continue").to_owned(),
        Some(action) => tf("Issue {action}", &[("action", action.as_str())]),
    }
}

/// VM states whose VM has (or may have) a live process on its host: those go down with its power.
fn goes_down_with_host(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Migrating | VmState::Unknown)
}

/// The sentence for what the BMC answered.
pub fn result_summary(result: &PowerActionResult, host: &str) -> String {
    let (_, power) = power_word(result.power_state);
    let ms = result.elapsed_ms.to_string();
    match result.action {
        PowerAction::Status => {
            tf("{host}: the BMC reports power {power} ({ms} ms).", &[("host", host), ("power", power), ("ms", &ms)])
        }
        action => tf(
            "{action} on {host}: accepted by the BMC, which now reports power {power} ({ms} ms).",
            &[("action", action.as_str()), ("host", host), ("power", power), ("ms", &ms)],
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
                    error.set(Some(server_text(&failure.to_string())));
                }
            }
            pending.set(false);
        });
    };
    let choose_submit = move |event: SubmitEvent| {
        event.prevent_default();
        match chosen.get_untracked() {
            None => error.set(Some(t("Action: choose one.").to_owned())),
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
                    <legend>{tf("Action on {name}", &[("name", &name_for_choose)])}</legend>
                    {radios}
                </fieldset>
                <FormError error />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
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
        let args = [("action", action.as_str()), ("name", name.as_str())];
        let warning = match action {
            PowerAction::Off => tf("{action} {name}: the host loses its power at once and stays off.", &args),
            PowerAction::Cycle => tf("{action} {name}: the host loses its power, then is powered on again.", &args),
            _ => tf("{action} {name}: the host restarts at once without shutting down.", &args),
        };
        let vm_list = if vms.is_empty() {
            view! { <p>{tf("No VMs run on {name} now.", &[("name", &name)])}</p> }.into_any()
        } else {
            let going_down = if vms.len() == 1 {
                t("Its 1 running VM goes down with it:").to_owned()
            } else {
                tf("Its {n} running VMs go down with it:", &[("n", &vms.len().to_string())])
            };
            view! {
                <p>{going_down}</p>
                <ul class="power-vms" aria-label=tf("VMs running on {name}", &[("name", &name)])>
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
                    {warning}
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
                        {t("Back")}
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
                {result.note.clone().map(|note| view! { <p class="field-hint">{server_text(&note)}</p> })}
                <div class="dialog-actions">
                    <button
                        type="button"
                        class="button"
                        on:click=move |_| {
                            chosen.set(None);
                            step.set(Step::Choose);
                        }
                    >
                        {t("Issue another action")}
                    </button>
                    <button type="button" class="button button-primary" on:click=move |_| on_close.run(())>
                        {t("Close")}
                    </button>
                </div>
            </div>
        }
    };

    let name_for_view = name.clone();
    view! {
        <Dialog title=tf("Issue power action on {name}", &[("name", &name)]) on_close>
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
        crate::i18n::with_lang(crate::i18n::Lang::Ko, || {
            assert_eq!(
                result_summary(&result, "kvm-a1"),
                "kvm-a1 OFF: BMC가 요청을 수락했으며 현재 전원 꺼짐 상태를 보고합니다(12 ms)."
            );
            assert_eq!(confirm_words(PowerAction::Off, "kvm-a1"), "kvm-a1 전원 끄기");
        });
    }
}
