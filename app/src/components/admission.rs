//! Admission control in the console: the overcommit warning, asked once for every checked action.
//!
//! The server checks deploy, start, migrate, VM HA changes, host changes, maintenance and removal
//! against the cluster's failover plan; an action that would break it is refused with 409
//! `would-overcommit` ([`ClientError::WouldOvercommit`]). [`run_admitted`] runs such an action; on that
//! refusal it puts the question into the store, where the frame's one [`OvercommitWarning`] shows the
//! dialog "This would break the failover plan" with the server's message and figures. Cancel ends the
//! action; pool operators and up may also "Proceed anyway (pool becomes overcommitted)" or "Lower the
//! failure limit to N and proceed", which sends the same call again with `?overcommit=proceed` or
//! `?overcommit=lower-limit`. Other roles see only Cancel, and a sentence saying why. The dialog words
//! the warning from the conflict's figures: the server's `message` is written for API clients and names
//! the `?overcommit=` parameter, which a person in the console never types.

use crate::api_client::{ClientError, ClientResult};
use crate::components::dialog::{Dialog, focus_when_mounted};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{OvercommitChoice, OvercommitConflict};
use leptos::html;
use leptos::prelude::*;
use leptos::web_sys::HtmlElement;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The person's answer to one overcommit warning, shared by the dialog's buttons and the waiting action.
#[derive(Default)]
struct Slot {
    /// Set once: `Some(None)` is Cancel.
    answer: Cell<Option<Option<OvercommitChoice>>>,
    answered: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Slot {
    fn give(&self, choice: Option<OvercommitChoice>) {
        if !self.answered.replace(true) {
            self.answer.set(Some(choice));
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }
}

/// The answering end of one question. Dropping it unanswered (a newer question replaced it, or the
/// person signed out) counts as Cancel, so that no action waits forever.
struct Reply(Rc<Slot>);

impl Drop for Reply {
    fn drop(&mut self) {
        self.0.give(None);
    }
}

/// The waiting end: resolves to the person's choice, `None` for Cancel.
struct Answer(Rc<Slot>);

impl Future for Answer {
    type Output = Option<OvercommitChoice>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.answer.take() {
            Some(choice) => Poll::Ready(choice),
            None => {
                self.0.waker.set(Some(context.waker().clone()));
                Poll::Pending
            }
        }
    }
}

/// An overcommit warning waiting for the person's answer (held by [`Store::overcommit`]).
pub struct OvercommitQuestion {
    conflict: OvercommitConflict,
    reply: Reply,
}

/// Shows the warning for `conflict` and waits for the answer (`None`: cancelled).
async fn ask(store: Store, conflict: OvercommitConflict) -> Option<OvercommitChoice> {
    let slot = Rc::new(Slot::default());
    // Replacing an unanswered question drops its reply, which cancels it.
    store.overcommit.set(Some(OvercommitQuestion { conflict, reply: Reply(Rc::clone(&slot)) }));
    Answer(slot).await
}

/// Runs an action that admission control checks: first as is; when the server answers that it would
/// break the failover plan, asks the person and runs it again with their choice. `None` when they
/// cancelled (nothing to report); otherwise the (final) answer of the server.
pub async fn run_admitted<T, Call, Sent>(store: Store, call: Call) -> Option<ClientResult<T>>
where
    Call: Fn(Option<OvercommitChoice>) -> Sent,
    Sent: Future<Output = ClientResult<T>>,
{
    match call(None).await {
        Err(ClientError::WouldOvercommit(conflict)) => {
            let choice = ask(store, *conflict).await?;
            Some(call(Some(choice)).await)
        }
        answer => Some(answer),
    }
}

/// "1", or "none" when not every protected VM can run even without a failure.
fn capacity_text(capacity: Option<u32>) -> String {
    capacity.map_or_else(|| t("none").to_owned(), |capacity| capacity.to_string())
}

/// "starting VM ..." -> "Starting VM ...".
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// "1 host failure", "2 host failures".
fn failures(n: u32) -> String {
    if n == 1 { t("1 host failure").to_owned() } else { tf("{n} host failures", &[("n", &n.to_string())]) }
}

/// What the action would do to the plan, in words.
fn explanation(conflict: &OvercommitConflict) -> String {
    let action = capitalized(&server_text(&conflict.action));
    let covered = failures(conflict.plan_exists_for);
    let limit = conflict.limit.to_string();
    match conflict.capacity_after {
        Some(capacity) => tf(
            "{action} would leave {cluster} able to survive only {failures}, while its failover plan covers {covered} (host failure limit {limit}).",
            &[
                ("action", &action),
                ("cluster", &conflict.cluster_name),
                ("failures", &failures(capacity)),
                ("covered", &covered),
                ("limit", &limit),
            ],
        ),
        None => tf(
            "{action} would leave {cluster} without a failover plan: not every protected VM could run even with no host failure, while its failover plan covers {covered} (host failure limit {limit}).",
            &[("action", &action), ("cluster", &conflict.cluster_name), ("covered", &covered), ("limit", &limit)],
        ),
    }
}

/// What the two ways past the warning do, for those who may take them.
fn choices_text(conflict: &OvercommitConflict) -> String {
    match conflict.lower_limit_to {
        Some(limit) => tf(
            "Proceeding anyway leaves {cluster} overcommitted (an alert is raised); lowering its host failure limit to {limit} keeps a plan for {failures}.",
            &[("cluster", &conflict.cluster_name), ("limit", &limit.to_string()), ("failures", &failures(limit))],
        ),
        None => tf(
            "Proceeding anyway leaves {cluster} without a failover plan (an alert is raised); no lower failure limit would keep one.",
            &[("cluster", &conflict.cluster_name)],
        ),
    }
}

/// The dialog of the pending question, if any; rendered once by the signed-in frame.
#[component]
pub fn OvercommitWarning() -> impl IntoView {
    let store = Store::expect();
    // Read once, untracked: see crate::components::vm_power.
    let role = Session::expect().may_untracked(Ability::OverrideOvercommit);
    let conflict =
        move || store.overcommit.with(|question| question.as_ref().map(|question| question.conflict.clone()));
    move || conflict().map(|conflict| view! { <WarningDialog conflict role=role.clone() /> })
}

/// Hands the person's answer to the waiting action and closes the dialog.
fn answer(store: Store, choice: Option<OvercommitChoice>) {
    if let Some(question) = store.overcommit.try_update(Option::take).flatten() {
        question.reply.0.give(choice);
    }
}

#[component]
fn WarningDialog(conflict: OvercommitConflict, role: Result<(), String>) -> impl IntoView {
    let store = Store::expect();
    let cancel_button = NodeRef::<html::Button>::new();
    focus_when_mounted(move || cancel_button.get().map(HtmlElement::from));
    let why_not = match (&role, conflict.may_override) {
        (Err(reason), _) => Some(tf("{reason} You can only cancel, or ask one of them.", &[("reason", reason)])),
        (Ok(()), false) => Some(
            t("The server does not let your role override this warning. You can only cancel, or ask a pool operator or pool admin.")
            .to_owned(),
        ),
        (Ok(()), true) => None,
    };
    let may_override = why_not.is_none();
    let lower_to = conflict.lower_limit_to.filter(|_| may_override);
    let figures = tf(
        "{before} → {after} host failures",
        &[("before", &capacity_text(conflict.capacity_before)), ("after", &capacity_text(conflict.capacity_after))],
    );
    let action = server_text(&conflict.action);

    view! {
        <Dialog title=t("This would break the failover plan") on_close=Callback::new(move |()| answer(store, None))>
            <div class="overcommit-warning">
                <p class="overcommit-message">{explanation(&conflict)}</p>
                <dl class="facts overcommit-facts">
                    <dt>{t("Cluster")}</dt>
                    <dd>{conflict.cluster_name.clone()}</dd>
                    <dt>{t("Action")}</dt>
                    <dd>{action}</dd>
                    <dt>{t("Max failure capacity")}</dt>
                    <dd>{figures}</dd>
                    <dt>{t("Host failure limit")}</dt>
                    <dd>{conflict.limit}</dd>
                    <dt>{t("Plan exists for")}</dt>
                    <dd>{failures(conflict.plan_exists_for)}</dd>
                </dl>
                {match why_not {
                    Some(reason) => view! { <p class="overcommit-why">{reason}</p> }.into_any(),
                    None => view! { <p class="overcommit-choices">{choices_text(&conflict)}</p> }.into_any(),
                }}
                <div class="dialog-actions overcommit-actions">
                    <button
                        type="button"
                        class="button"
                        node_ref=cancel_button
                        on:click=move |_| answer(store, None)
                    >
                        {t("Cancel")}
                    </button>
                    {lower_to
                        .map(|limit| {
                            view! {
                                <button
                                    type="button"
                                    class="button"
                                    on:click=move |_| answer(store, Some(OvercommitChoice::LowerLimit))
                                >
                                    {tf("Lower the failure limit to {limit} and proceed", &[("limit", &limit.to_string())])}
                                </button>
                            }
                        })}
                    {may_override
                        .then(|| {
                            view! {
                                <button
                                    type="button"
                                    class="button button-danger"
                                    on:click=move |_| answer(store, Some(OvercommitChoice::Proceed))
                                >
                                    {t("Proceed anyway (pool becomes overcommitted)")}
                                </button>
                            }
                        })}
                </div>
            </div>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_read_as_numbers_or_none() {
        assert_eq!(capacity_text(Some(1)), "1");
        assert_eq!(capacity_text(None), "none");
    }

    fn conflict(capacity_after: Option<u32>) -> OvercommitConflict {
        OvercommitConflict {
            code: "would-overcommit".into(),
            message: "for API clients".into(),
            cluster_id: api::ClusterId::new_random(),
            cluster_name: "cluster-a".into(),
            action: "starting VM \"big\" on kvm-a1".into(),
            capacity_before: Some(2),
            capacity_after,
            limit: 2,
            plan_exists_for: 2,
            lower_limit_to: capacity_after,
            may_override: true,
        }
    }

    #[test]
    fn the_warning_is_worded_from_the_figures() {
        assert_eq!(
            explanation(&conflict(Some(1))),
            "Starting VM \"big\" on kvm-a1 would leave cluster-a able to survive only 1 host failure, while its failover plan covers 2 host failures (host failure limit 2)."
        );
        assert!(explanation(&conflict(None)).contains("without a failover plan"));
        assert!(choices_text(&conflict(Some(1))).contains("lowering its host failure limit to 1 keeps a plan"));
        assert!(choices_text(&conflict(None)).contains("no lower failure limit"));
        assert!(!choices_text(&conflict(Some(0))).contains('?'), "no query parameters in the console");
        assert_eq!(capitalized(""), "");
    }

    #[test]
    fn an_unanswered_question_counts_as_cancel() {
        let slot = Rc::new(Slot::default());
        drop(Reply(Rc::clone(&slot)));
        assert_eq!(slot.answer.take(), Some(None));
    }

    #[test]
    fn only_the_first_answer_counts() {
        let slot = Rc::new(Slot::default());
        let reply = Reply(Rc::clone(&slot));
        reply.0.give(Some(OvercommitChoice::Proceed));
        drop(reply);
        assert_eq!(slot.answer.take(), Some(Some(OvercommitChoice::Proceed)));
    }
}
