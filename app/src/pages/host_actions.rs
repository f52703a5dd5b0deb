//! Host operations on the host detail page: disable or enable a host for new VMs, enter or cancel
//! maintenance, edit its tags, and remove an empty host. They need the `ManagePool` ability; other roles
//! see "Why can't I change this host?" instead. The host comes from the live store, so what the server's
//! events say shows here without a reload; a refusal shows the server's own message. Every change but
//! cancelling maintenance is checked by admission control: the overcommit warning may come first.

use crate::api_client;
use crate::components::admission::run_admitted;
use crate::components::dialog::{Dialog, FormError, WhyNot, focus_when_mounted};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{AgentConnection, Host, HostAllocation, UpdateHostRequest, VmState};
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::web_sys::HtmlElement;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

/// The longest tag the server accepts.
const TAG_MAX: usize = 64;

/// The tags typed as "ssd, gpu": trimmed, empty ones and repeats dropped (the first stays), and checked
/// as the server checks them (1 to 64 characters, no whitespace).
fn parse_tags(text: &str) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in text.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
        if tag.contains(char::is_whitespace) {
            return Err(tf("Tags: \"{tag}\" contains a space; separate tags with commas.", &[("tag", tag)]));
        }
        if tag.len() > TAG_MAX {
            return Err(tf(
                "Tags: \"{tag}\" is longer than {max} characters.",
                &[("tag", tag), ("max", &TAG_MAX.to_string())],
            ));
        }
        if !tags.iter().any(|known| known == tag) {
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}

/// The toolbar of host operations, or why the signed-in role has none.
#[component]
pub fn HostActions(host: Memo<Host>) -> impl IntoView {
    // Read once, untracked: see `crate::components::vm_power`.
    let session = Session::expect();
    match session.may_untracked(Ability::ManagePool) {
        Ok(()) => {
            let ha_test = session.may_untracked(Ability::ManageHa).is_ok();
            view! { <Operations host ha_test /> }.into_any()
        }
        Err(reason) => view! { <WhyNot action=t("change this host") reason /> }.into_any(),
    }
}

/// A step of the HA setup wizard on its own: the power-off test with this host (and its cluster).
fn power_off_test_link(host: Memo<Host>) -> impl IntoView {
    let (id, cluster, name) = host.with_untracked(|host| (host.id, host.cluster_id, host.name.clone()));
    view! {
        <A
            href=format!("/ha/setup?step=7&cluster={cluster}&host={id}")
            attr:class="button"
            attr:aria-label=tf("Power-off test with {host}…", &[("host", &name)])
        >
            {t("Power-off test with this host…")}
        </A>
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Maintenance,
    Remove,
}

#[derive(Clone, Copy)]
enum Call {
    Allocation(HostAllocation),
    CancelMaintenance,
}

#[component]
fn Operations(host: Memo<Host>, ha_test: bool) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let id = host.with_untracked(|host| host.id);
    let busy = RwSignal::new(false);
    let open = RwSignal::new(None::<Open>);
    let allocation = Memo::new(move |_| host.with(|host| host.allocation));
    let in_maintenance = Memo::new(move |_| {
        host.with(|host| host.allocation == HostAllocation::Maintenance || host.maintenance.is_some())
    });
    // The host's own count, or the live VM map's when a VM event came before the host's.
    let vms = Memo::new(move |_| host.with(|host| host.vm_count as usize).max(store.host_vm_counts(id).1));
    let close = Callback::new(move |()| open.set(None));

    let run = move |call: Call| {
        busy.set(true);
        spawn_local(async move {
            let answer = match call {
                Call::Allocation(allocation) => {
                    let request = UpdateHostRequest { allocation: Some(allocation), tags: None };
                    run_admitted(store, |choice| api_client::update_host(id, &request, choice)).await
                }
                Call::CancelMaintenance => Some(api_client::cancel_maintenance(id).await),
            };
            match answer {
                Some(Ok(host)) => store.upsert_host(host),
                Some(Err(error)) => store.report(session, &error),
                None => {}
            }
            busy.set(false);
        });
    };

    let placement = move || {
        if in_maintenance.get() {
            return view! {
                <button
                    type="button"
                    class="button"
                    title=t("The host takes new VMs again; VMs already moved stay where they are")
                    disabled=move || busy.get()
                    on:click=move |_| run(Call::CancelMaintenance)
                >
                    {t("Cancel maintenance")}
                </button>
            }
            .into_any();
        }
        let (word, target, hint) = match allocation.get() {
            HostAllocation::Disabled => {
                (t("Enable for new VMs"), HostAllocation::Enabled, t("Placement may put new VMs on this host again"))
            }
            _ => (
                t("Disable for new VMs"),
                HostAllocation::Disabled,
                t("Placement skips this host; the VMs on it stay and keep running"),
            ),
        };
        view! {
            <button
                type="button"
                class="button"
                title=hint
                disabled=move || busy.get()
                on:click=move |_| run(Call::Allocation(target))
            >
                {word}
            </button>
            <button
                type="button"
                class="button"
                disabled=move || busy.get()
                on:click=move |_| open.set(Some(Open::Maintenance))
            >
                {t("Enter maintenance")}
            </button>
        }
        .into_any()
    };

    let removal = move || match vms.get() {
        0 => view! {
            <button type="button" class="button button-danger" on:click=move |_| open.set(Some(Open::Remove))>
                {t("Remove host")}
            </button>
        }
        .into_any(),
        n => view! {
            <WhyNot action=t("remove this host") reason=if n == 1 {
                t("Move or destroy its 1 VM first.").to_owned()
            } else {
                tf("Move or destroy its {count} VMs first.", &[("count", &n.to_string())])
            } />
        }
        .into_any(),
    };

    view! {
        <div class="host-actions" role="group" aria-label=t("Host operations")>
            {placement}
            {ha_test.then(|| power_off_test_link(host))}
            {removal}
        </div>
        {move || match open.get() {
            Some(Open::Maintenance) => view! { <MaintenanceDialog host close /> }.into_any(),
            Some(Open::Remove) => view! { <RemoveDialog host close /> }.into_any(),
            None => ().into_any(),
        }}
    }
}

/// "Enter maintenance on NAME": says what will happen to its VMs, then asks the server to do it.
#[component]
fn MaintenanceDialog(host: Memo<Host>, close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let (id, name, cluster) = host.with_untracked(|host| (host.id, host.name.clone(), host.cluster_id));
    let cluster = store.clusters.with_untracked(|clusters| clusters.get(&cluster).map(|cluster| cluster.name.clone()));
    // The server moves the VMs that run, or may run (state unknown), on the host.
    let to_move = Memo::new(move |_| {
        store.vm_counts(|vm| vm.host_id == Some(id) && matches!(vm.state, VmState::Running | VmState::Unknown)).1
    });
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let confirm = NodeRef::<html::Button>::new();
    focus_when_mounted(move || confirm.get().map(HtmlElement::from));

    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match run_admitted(store, |choice| api_client::enter_maintenance(id, choice)).await {
                Some(Ok(host)) => {
                    store.upsert_host(host);
                    close.run(());
                }
                Some(Err(failure)) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
                None => {}
            }
            pending.set(false);
        });
    };
    let host_name = name.clone();
    let plan = move || {
        let count = to_move.get();
        let n = count.to_string();
        match (count, &cluster) {
            (0, _) => tf("{host} has no running VMs, so it goes into maintenance at once.", &[("host", &host_name)]),
            (1, Some(cluster)) => tf(
                "Its 1 running VM will first be live-migrated to other hosts of cluster {cluster}. If it has nowhere to go, the server refuses and nothing changes.",
                &[("cluster", cluster)],
            ),
            (1, None) => t(
                "Its 1 running VM will first be live-migrated to other hosts of its cluster. If it has nowhere to go, the server refuses and nothing changes.",
            )
            .to_owned(),
            (_, Some(cluster)) => tf(
                "Its {count} running VMs will first be live-migrated to other hosts of cluster {cluster}, one at a time. If any of them has nowhere to go, the server refuses and nothing changes.",
                &[("count", &n), ("cluster", cluster)],
            ),
            (_, None) => tf(
                "Its {count} running VMs will first be live-migrated to other hosts of its cluster, one at a time. If any of them has nowhere to go, the server refuses and nothing changes.",
                &[("count", &n)],
            ),
        }
    };

    view! {
        <Dialog title=tf("Enter maintenance on {host}", &[("host", &name)]) on_close=close>
            <form class="host-dialog-form" on:submit=submit>
                <p>{plan}</p>
                <p>{t("Stopped VMs stay on the host. No new VMs are placed on it until maintenance is cancelled.")}</p>
                <FormError error />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" node_ref=confirm disabled=move || pending.get()>
                        {t("Start maintenance")}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

/// "Remove host NAME": the name must be typed to confirm; afterwards the console goes to the host list.
#[component]
fn RemoveDialog(host: Memo<Host>, close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let navigate = use_navigate();
    let (id, name) = host.with_untracked(|host| (host.id, host.name.clone()));
    let typed = RwSignal::new(String::new());
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let field = NodeRef::<html::Input>::new();
    focus_when_mounted(move || field.get().map(HtmlElement::from));
    let connected = move || host.with(|host| host.connection == AgentConnection::Connected);

    let expected = name.clone();
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        if typed.with(|typed| typed.trim() != expected) {
            error.set(Some(tf("Host name: type \"{host}\" exactly to confirm.", &[("host", &expected)])));
            return;
        }
        pending.set(true);
        error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match run_admitted(store, |choice| api_client::remove_host(id, choice)).await {
                Some(Ok(())) => {
                    navigate("/hosts", NavigateOptions::default());
                    store.hosts.update(|hosts| {
                        hosts.remove(&id);
                    });
                }
                Some(Err(failure)) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
                None => {}
            }
            pending.set(false);
        });
    };

    view! {
        <Dialog title=tf("Remove host {host}", &[("host", &name)]) on_close=close>
            <form class="host-dialog-form" on:submit=submit>
                <p>{tf("{host} leaves the inventory for good.", &[("host", &name)])}</p>
                <Show when=connected>
                    <p class="host-warning">
                        {t("Its agent is still connected: the server only removes a host whose agent has been stopped.")}
                    </p>
                </Show>
                <div class="field">
                    <label for="remove-host-name">{t("Host name")}</label>
                    <input
                        id="remove-host-name"
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        aria-describedby="remove-host-name-hint"
                        node_ref=field
                        bind:value=typed
                    />
                    <span id="remove-host-name-hint" class="field-hint">
                        {tf("Type {host} to confirm.", &[("host", &name)])}
                    </span>
                </div>
                <FormError error />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-danger" disabled=move || pending.get()>
                        {t("Remove permanently")}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

/// The host's tags as chips, with "Edit tags" for those who may change them.
#[component]
pub fn HostTags(host: Memo<Host>) -> impl IntoView {
    let permitted = Session::expect().may_untracked(Ability::ManagePool).is_ok();
    let open = RwSignal::new(false);
    let tags = Memo::new(move |_| host.with(|host| host.tags.clone()));
    let chips = move || {
        let tags = tags.get();
        if tags.is_empty() {
            view! { <span class="muted">{t("none")}</span> }.into_any()
        } else {
            tags.into_iter().map(|tag| view! { <span class="tag">{tag}</span> }).collect_view().into_any()
        }
    };
    view! {
        <div class="host-tags">
            {chips}
            {permitted
                .then(|| {
                    view! {
                        <button type="button" class="button button-small button-quiet" on:click=move |_| open.set(true)>
                            {t("Edit tags")}
                        </button>
                    }
                })}
        </div>
        {move || open.get().then(|| view! { <TagsDialog host close=Callback::new(move |()| open.set(false)) /> })}
    }
}

/// "Tags of NAME": a comma-separated field, checked like the server checks it, saved with one PATCH.
#[component]
fn TagsDialog(host: Memo<Host>, close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let (id, name, tags) = host.with_untracked(|host| (host.id, host.name.clone(), host.tags.clone()));
    let text = RwSignal::new(tags.join(", "));
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let field = NodeRef::<html::Input>::new();
    focus_when_mounted(move || field.get().map(HtmlElement::from));

    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let tags = match text.with(|text| parse_tags(text)) {
            Ok(tags) => tags,
            Err(message) => {
                error.set(Some(message));
                return;
            }
        };
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            let request = UpdateHostRequest { allocation: None, tags: Some(tags) };
            match run_admitted(store, |choice| api_client::update_host(id, &request, choice)).await {
                Some(Ok(host)) => {
                    store.upsert_host(host);
                    close.run(());
                }
                Some(Err(failure)) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
                None => {}
            }
            pending.set(false);
        });
    };

    view! {
        <Dialog title=tf("Tags of {host}", &[("host", &name)]) on_close=close>
            <form class="host-dialog-form" on:submit=submit>
                <div class="field">
                    <label for="host-tags">{t("Tags")}</label>
                    <input
                        id="host-tags"
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        placeholder="ssd, gpu"
                        aria-describedby="host-tags-hint"
                        node_ref=field
                        bind:value=text
                    />
                    <span id="host-tags-hint" class="field-hint">
                        {t(
                            "Separate tags with commas. Each tag is 1 to 64 characters without spaces. VMs of an offering with host tags are only placed on hosts that have all of them.",
                        )}
                    </span>
                </div>
                <FormError error />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {t("Save tags")}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}
