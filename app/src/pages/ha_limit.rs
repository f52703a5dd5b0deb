//! The "Host failure limit" part of a cluster's HA plan page: how many host failures the cluster should
//! survive. Pool operators and up change it with "Save limit"; a limit above the cluster's max failure
//! capacity first asks "The pool will be overcommitted" and only then goes to the server with
//! `confirm_overcommit`. Should the capacity have fallen in between, the server's refusal
//! (409 `limit-above-capacity`) opens the same question with the server's words.

use crate::api_client;
use crate::components::dialog::{Dialog, FormError, WhyNot, focus_when_mounted};
use crate::components::form::TextField;
use crate::i18n::{t, tf};
use crate::pages::ha_plan::{PlanState, host_failures};
use crate::session::{Ability, Session};
use api::v1::SetFailureLimitRequest;
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::web_sys::HtmlElement;

/// The largest limit the server accepts.
const MAX_LIMIT: u32 = 1000;

/// The code of the server's refusal of a limit above the capacity.
const LIMIT_ABOVE_CAPACITY: &str = "limit-above-capacity";

/// The limit as typed, checked like the server checks it.
fn parse_limit(text: &str) -> Result<u32, String> {
    text.trim().parse::<u32>().ok().filter(|limit| *limit <= MAX_LIMIT).ok_or_else(|| {
        tf("Host failure limit: give a whole number from 0 to {max}.", &[("max", &MAX_LIMIT.to_string())])
    })
}

/// Whether `limit` is above what the cluster can survive (`None`: not even today's protected VMs fit).
fn above_capacity(limit: u32, capacity: Option<u32>) -> bool {
    capacity.is_none_or(|capacity| limit > capacity)
}

/// What setting `limit` means when it is above the capacity, in words.
fn overcommit_text(cluster: &str, limit: u32, capacity: Option<u32>) -> String {
    let now = match capacity {
        Some(capacity) => {
            tf("{cluster} can survive {failures} now.", &[("cluster", cluster), ("failures", &host_failures(capacity))])
        }
        None => tf("{cluster} has no failover plan now: not every protected VM can run.", &[("cluster", cluster)]),
    };
    tf(
        "{now} With a host failure limit of {limit} it becomes overcommitted: its plan covers fewer failures than the limit, an alert is raised, and actions that lower the capacity further are no longer refused.",
        &[("now", &now), ("limit", &limit.to_string())],
    )
}

/// A limit waiting for the operator's confirmation, and why.
#[derive(Clone)]
struct Confirmation {
    limit: u32,
    message: String,
}

#[component]
pub fn FailureLimit(state: PlanState) -> impl IntoView {
    let session = Session::expect();
    // Read once, untracked: see crate::components::vm_power.
    let permitted = session.may_untracked(Ability::ManageHa);
    let editable = permitted.is_ok();
    let current = Memo::new(move |_| state.live.with(|plan| plan.as_ref().map(|plan| plan.failure_limit)));
    let text = RwSignal::new(String::new());
    // The field follows the server's limit (saved here or by someone else).
    Effect::new(move || {
        if let Some(limit) = current.get() {
            text.set(limit.to_string());
        }
    });
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let confirming = RwSignal::new(None::<Confirmation>);

    let send = move |limit: u32, confirm_overcommit: bool| {
        pending.set(true);
        error.set(None);
        notice.set(None);
        spawn_local(async move {
            let request = SetFailureLimitRequest { limit, confirm_overcommit };
            match api_client::set_failure_limit(state.cluster, &request).await {
                Ok(plan) => {
                    state.live.set(Some(plan));
                    notice.set(Some(tf("Host failure limit set to {limit}.", &[("limit", &limit.to_string())])));
                }
                Err(failure) if !confirm_overcommit && failure.code() == Some(LIMIT_ABOVE_CAPACITY) => {
                    confirming.set(Some(Confirmation { limit, message: failure.to_string() }));
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(failure.to_string()));
                }
            }
            pending.set(false);
        });
    };
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if !editable || pending.get_untracked() {
            return;
        }
        notice.set(None);
        let limit = match text.with_untracked(|text| parse_limit(text)) {
            Ok(limit) => limit,
            Err(message) => {
                error.set(Some(message));
                return;
            }
        };
        error.set(None);
        if current.get_untracked() == Some(limit) {
            notice.set(Some(tf("Nothing to save: the limit is {limit} already.", &[("limit", &limit.to_string())])));
            return;
        }
        let (cluster, capacity) = state.live.with_untracked(|plan| {
            plan.as_ref()
                .map_or((String::new(), None), |plan| (plan.cluster_name.clone(), plan.report.max_failure_capacity))
        });
        if above_capacity(limit, capacity) {
            confirming.set(Some(Confirmation { limit, message: overcommit_text(&cluster, limit, capacity) }));
        } else {
            send(limit, false);
        }
    };
    let close = Callback::new(move |()| confirming.set(None));
    let confirm = Callback::new(move |limit: u32| {
        confirming.set(None);
        send(limit, true);
    });

    view! {
        <section class="panel ha-limit" aria-labelledby="ha-limit-heading">
            <h2 id="ha-limit-heading">{t("Host failure limit")}</h2>
            <form class="ha-limit-form" on:submit=on_submit novalidate>
                <TextField id="ha-limit" label=t("Host failure limit") value=text kind="number" disabled=!editable />
                {editable
                    .then(|| {
                        view! {
                            <button type="submit" class="button button-primary" disabled=move || pending.get()>
                                {move || if pending.get() { t("Saving…") } else { t("Save limit") }}
                            </button>
                        }
                    })}
            </form>
            <p class="field-hint">
                {t(
                    "How many host failures the cluster should survive; actions that would break that are checked first.",
                )}
            </p>
            <FormError error />
            {move || notice.get().map(|text| view! { <p class="form-saved" role="status">{text}</p> })}
            {permitted.err().map(|reason| view! { <WhyNot action=t("change the host failure limit") reason /> })}
        </section>
        {move || confirming.get().map(|confirmation| view! { <ConfirmOvercommit confirmation close confirm /> })}
    }
}

/// "The pool will be overcommitted": Cancel, or set the limit anyway.
#[component]
fn ConfirmOvercommit(confirmation: Confirmation, close: Callback<()>, confirm: Callback<u32>) -> impl IntoView {
    let cancel = NodeRef::<html::Button>::new();
    focus_when_mounted(move || cancel.get().map(HtmlElement::from));
    let limit = confirmation.limit;
    view! {
        <Dialog title=t("The pool will be overcommitted") on_close=close>
            <p>{confirmation.message}</p>
            <div class="dialog-actions">
                <button type="button" class="button" node_ref=cancel on:click=move |_| close.run(())>
                    {t("Cancel")}
                </button>
                <button type="button" class="button button-danger" on:click=move |_| confirm.run(limit)>
                    {t("Set the limit anyway")}
                </button>
            </div>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_up_to_the_servers_maximum() {
        assert_eq!(parse_limit(" 2 "), Ok(2));
        assert!(parse_limit("-1").is_err_and(|message| message.starts_with("Host failure limit")));
        assert!(parse_limit("1001").is_err());
        assert!(parse_limit("one").is_err());
    }

    #[test]
    fn a_limit_above_the_capacity_or_without_a_plan_overcommits() {
        assert!(!above_capacity(1, Some(1)));
        assert!(above_capacity(2, Some(1)));
        assert!(above_capacity(0, None));
        assert!(overcommit_text("c1", 2, Some(1)).starts_with("c1 can survive 1 host failure now."));
    }
}
