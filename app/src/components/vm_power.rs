//! Start / Stop buttons of one VM, named "Start NAME" / "Stop NAME" for screen readers and tests.
//!
//! The answer (202, VM now Starting/Stopping) goes straight into the store; the final Running/Stopped
//! arrives later as a live event. A refusal is shown with the server's message in the frame's alert.
//! A start is checked by admission control: the overcommit warning may come first.

use crate::api_client;
use crate::components::admission::run_admitted;
use crate::i18n::{t, tf};
use crate::session::Session;
use crate::store::Store;
use api::VmId;
use api::v1::VmState;
use leptos::prelude::*;
use leptos::task::spawn_local;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Power {
    Start,
    Stop,
}

fn allowed(power: Power, state: VmState) -> bool {
    match power {
        Power::Start => matches!(state, VmState::Stopped | VmState::Error),
        Power::Stop => matches!(state, VmState::Running | VmState::Error),
    }
}

#[component]
pub fn VmPowerButtons(vm_id: VmId, name: String, state: VmState) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    // Read once, untracked: a reactive read of the (console-wide) session here would re-run this
    // button's closures while the frame around it is being torn down on sign-out, and touch
    // disposed signals. The role cannot change without a new sign-in, which builds a new frame.
    let permitted = session.can_operate_vms_untracked();
    let pending = RwSignal::new(false);

    let act = move |power: Power| {
        pending.set(true);
        spawn_local(async move {
            let answer = match power {
                Power::Start => run_admitted(store, |choice| api_client::start_vm(vm_id, choice)).await,
                Power::Stop => Some(api_client::stop_vm(vm_id).await),
            };
            match answer {
                Some(Ok(accepted)) => store.upsert_vm(accepted.vm),
                Some(Err(error)) => store.report(session, &error),
                None => {}
            }
            pending.set(false);
        });
    };
    let button = move |power: Power| {
        let (word, label, class) = match power {
            Power::Start => (t("Start"), tf("Start {name}", &[("name", &name)]), "button button-small button-start"),
            Power::Stop => (t("Stop"), tf("Stop {name}", &[("name", &name)]), "button button-small button-stop"),
        };
        let can = allowed(power, state);
        view! {
            <button
                type="button"
                class=class
                aria-label=label
                title=(!permitted).then_some(t("Your role cannot power VMs on or off"))
                disabled=move || !can || !permitted || pending.get()
                on:click=move |_| act(power)
            >
                {word}
            </button>
        }
    };
    view! { <div class="row-actions">{button(Power::Start)} {button(Power::Stop)}</div> }
}
