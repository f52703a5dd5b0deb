//! Compute offerings: the table of sizes VMs are deployed with (CPU, memory, host tags, whether they
//! offer HA) and how many VMs use each, counted live from the store. Pool operators and up create, edit
//! (only the changed fields are sent) and delete them; the server refuses to delete an offering in use
//! and the dialog shows its message. Other roles see the table and why they cannot change it.

use crate::api_client::{self, ClientError};
use crate::components::dialog::{Dialog, FormError, WhyNot};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::form::TextField;
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{ComputeOffering, CreateOfferingRequest, UpdateOfferingRequest};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;

/// The dialog open on this page, if any.
#[derive(Clone, PartialEq)]
enum Open {
    New,
    Edit(ComputeOffering),
    Delete(ComputeOffering),
}

fn vms_using(store: Store, offering: &ComputeOffering) -> usize {
    let id = offering.id;
    store.vm_counts(|vm| vm.offering_id == id).1
}

#[component]
pub fn OfferingsPage() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let permitted = session.may_untracked(Ability::ManagePool);
    let can_manage = permitted.is_ok();
    let offerings = LocalResource::new(move || async move {
        let answer = api_client::offerings().await;
        if let Err(error) = &answer {
            session.notice(error);
        }
        answer
    });
    // A step of the HA setup wizard on its own: an offering whose VMs HA protects.
    let ha_offering_link = session.may_untracked(Ability::ManageHa).is_ok().then(|| {
        view! {
            <A href="/ha/setup?step=6" attr:class="button">
                {t("Create an HA offering…")}
            </A>
        }
    });
    let open = RwSignal::new(None::<Open>);
    let close = Callback::new(move |()| open.set(None));
    let done = Callback::new(move |()| {
        open.set(None);
        offerings.refetch();
    });

    view! {
        <div class="page">
            <header class="page-header page-header-split">
                <div>
                    <h1>{t("Compute offerings")}</h1>
                    <p class="page-summary">{t("The sizes VMs are deployed with, and whether HA protects them.")}</p>
                </div>
                <div class="page-actions">
                    {ha_offering_link}
                    {match permitted {
                        Ok(()) => view! {
                            <button type="button" class="button button-primary" on:click=move |_| open.set(Some(Open::New))>
                                {t("New offering")}
                            </button>
                        }
                        .into_any(),
                        Err(reason) => view! { <WhyNot action=t("create or change offerings") reason /> }.into_any(),
                    }}
                </div>
            </header>
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! {
                        <ErrorView
                            errors
                            retry=move || {
                                offerings.refetch();
                                store.reload();
                            }
                        />
                    }
                }>
                    {move || Suspend::new(async move {
                        let list = offerings.await?;
                        store.load.await?;
                        Ok::<_, ClientError>(view! { <OfferingTable list can_manage open /> })
                    })}
                </ErrorBoundary>
            </Transition>
            {move || match open.get() {
                Some(Open::New) => view! { <OfferingDialog existing=None on_close=close on_done=done /> }.into_any(),
                Some(Open::Edit(offering)) => {
                    view! { <OfferingDialog existing=Some(offering) on_close=close on_done=done /> }.into_any()
                }
                Some(Open::Delete(offering)) => view! { <DeleteDialog offering on_close=close on_done=done /> }.into_any(),
                None => ().into_any(),
            }}
        </div>
    }
}

#[component]
fn OfferingTable(mut list: Vec<ComputeOffering>, can_manage: bool, open: RwSignal<Option<Open>>) -> impl IntoView {
    let store = Store::expect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let columns = if can_manage { 8 } else { 7 };
    let rows = list
        .into_iter()
        .map(|offering| {
            let tags = if offering.host_tags.is_empty() {
                view! { <span class="muted">{t("any host")}</span> }.into_any()
            } else {
                offering
                    .host_tags
                    .iter()
                    .map(|tag| view! { <span class="tag">{tag.clone()}</span> })
                    .collect_view()
                    .into_any()
            };
            let counted = offering.clone();
            let actions = can_manage.then(|| {
                let (edit, delete) = (offering.clone(), offering.clone());
                view! {
                    <td class="actions">
                        <div class="row-actions">
                            <button
                                type="button"
                                class="button button-small"
                                aria-label=tf("Edit {offering}", &[("offering", &offering.name)])
                                on:click=move |_| open.set(Some(Open::Edit(edit.clone())))
                            >
                                {t("Edit")}
                            </button>
                            <button
                                type="button"
                                class="button button-small button-danger"
                                aria-label=tf("Delete {offering}", &[("offering", &offering.name)])
                                on:click=move |_| open.set(Some(Open::Delete(delete.clone())))
                            >
                                {t("Delete")}
                            </button>
                        </div>
                    </td>
                }
            });
            view! {
                <tr data-offering=offering.name.clone()>
                    <th scope="row">{offering.name.clone()}</th>
                    <td class="offering-description">{offering.description.clone()}</td>
                    <td>{format!("{} × {} MHz", offering.cpu_cores, offering.cpu_mhz)}</td>
                    <td>{format::memory(offering.memory_mb)}</td>
                    <td>{tags}</td>
                    <td>{offering.offer_ha.then(|| view! { <span class="pill pill-on">{t("HA")}</span> })}</td>
                    <td class="num">{move || vms_using(store, &counted)}</td>
                    {actions}
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let empty = rows.is_empty();
    view! {
        <DataTable label=t("Compute offerings")>
            <thead>
                <tr>
                    <th scope="col">{t("Name")}</th>
                    <th scope="col">{t("Description")}</th>
                    <th scope="col">{t("CPU")}</th>
                    <th scope="col">{t("Memory")}</th>
                    <th scope="col">{t("Host tags")}</th>
                    <th scope="col">{t("HA")}</th>
                    <th scope="col" class="num">{t("VMs")}</th>
                    {can_manage.then(|| view! { <th scope="col" class="actions">{t("Actions")}</th> })}
                </tr>
            </thead>
            <tbody>
                {empty.then(|| view! { <EmptyRow columns text=t("No compute offerings yet.") /> })} {rows}
            </tbody>
        </DataTable>
    }
}

/// The offering dialog's fields as typed, before validation.
struct OfferingForm {
    name: String,
    description: String,
    cpu_cores: String,
    cpu_mhz: String,
    memory_mb: String,
    host_tags: String,
    offer_ha: bool,
}

/// The server's limits on an offering's fields (`server/src/app/offerings.rs`), checked before sending.
pub const NAME_BYTES: std::ops::RangeInclusive<usize> = 1..=64;
pub const CPU_CORES: std::ops::RangeInclusive<u32> = 1..=256;
pub const CPU_MHZ: std::ops::RangeInclusive<u32> = 100..=10_000;
pub const MEMORY_MB: std::ops::RangeInclusive<u64> = 64..=4 * 1024 * 1024;

/// `text` as a number within `range`, or `None`.
pub fn number_in<T: std::str::FromStr + PartialOrd>(text: &str, range: &std::ops::RangeInclusive<T>) -> Option<T> {
    text.trim().parse::<T>().ok().filter(|value| range.contains(value))
}

fn valid_tag(tag: &str) -> bool {
    tag.len() <= 64 && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks the fields as the server does and builds the offering, or says which field is wrong.
fn offering_request(form: OfferingForm) -> Result<CreateOfferingRequest, String> {
    let name = form.name.trim().to_owned();
    if !NAME_BYTES.contains(&name.len()) {
        return Err(t("Name: give 1 to 64 characters.").to_owned());
    }
    let cpu_cores = number_in(&form.cpu_cores, &CPU_CORES)
        .ok_or_else(|| t("CPU cores: give a whole number from 1 to 256.").to_owned())?;
    let cpu_mhz = number_in(&form.cpu_mhz, &CPU_MHZ)
        .ok_or_else(|| t("CPU speed (MHz): give the speed of one core, 100 to 10000.").to_owned())?;
    let memory_mb = number_in(&form.memory_mb, &MEMORY_MB)
        .ok_or_else(|| t("Memory (MB): give 64 to 4194304 megabytes.").to_owned())?;
    let mut host_tags: Vec<String> = Vec::new();
    for tag in form.host_tags.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
        if !valid_tag(tag) {
            return Err(tf("Host tags: \"{tag}\" is not 1 to 64 letters, digits, '-', '_' or '.'.", &[("tag", tag)]));
        }
        if !host_tags.iter().any(|known| known == tag) {
            host_tags.push(tag.to_owned());
        }
    }
    Ok(CreateOfferingRequest {
        name,
        description: form.description.trim().to_owned(),
        cpu_cores,
        cpu_mhz,
        memory_mb,
        host_tags,
        offer_ha: form.offer_ha,
    })
}

/// Only what differs from the offering as it is.
fn offering_changes(old: &ComputeOffering, new: CreateOfferingRequest) -> UpdateOfferingRequest {
    UpdateOfferingRequest {
        name: (new.name != old.name).then_some(new.name),
        description: (new.description != old.description).then_some(new.description),
        cpu_cores: (new.cpu_cores != old.cpu_cores).then_some(new.cpu_cores),
        cpu_mhz: (new.cpu_mhz != old.cpu_mhz).then_some(new.cpu_mhz),
        memory_mb: (new.memory_mb != old.memory_mb).then_some(new.memory_mb),
        host_tags: (new.host_tags != old.host_tags).then_some(new.host_tags),
        offer_ha: (new.offer_ha != old.offer_ha).then_some(new.offer_ha),
    }
}

/// "New offering", or "Edit offering NAME" prefilled with it.
#[component]
fn OfferingDialog(existing: Option<ComputeOffering>, on_close: Callback<()>, on_done: Callback<()>) -> impl IntoView {
    let session = Session::expect();
    let title = existing
        .as_ref()
        .map_or_else(|| t("New offering").to_owned(), |old| tf("Edit offering {offering}", &[("offering", &old.name)]));
    let text = |pick: fn(&ComputeOffering) -> String, default: &str| {
        RwSignal::new(existing.as_ref().map_or_else(|| default.to_owned(), pick))
    };
    let name = text(|old| old.name.clone(), "");
    let description = text(|old| old.description.clone(), "");
    let cpu_cores = text(|old| old.cpu_cores.to_string(), "1");
    let cpu_mhz = text(|old| old.cpu_mhz.to_string(), "1000");
    let memory_mb = text(|old| old.memory_mb.to_string(), "1024");
    let host_tags = text(|old| old.host_tags.join(", "), "");
    let offer_ha = RwSignal::new(existing.as_ref().is_some_and(|old| old.offer_ha));
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let submit_label = if existing.is_some() { t("Save changes") } else { t("Create offering") };

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let form = OfferingForm {
            name: name.get_untracked(),
            description: description.get_untracked(),
            cpu_cores: cpu_cores.get_untracked(),
            cpu_mhz: cpu_mhz.get_untracked(),
            memory_mb: memory_mb.get_untracked(),
            host_tags: host_tags.get_untracked(),
            offer_ha: offer_ha.get_untracked(),
        };
        let offering = match offering_request(form) {
            Ok(offering) => offering,
            Err(message) => {
                error.set(Some(message));
                return;
            }
        };
        let changes = existing.as_ref().map(|old| (old.id, offering_changes(old, offering.clone())));
        if changes.as_ref().is_some_and(|(_, changes)| *changes == UpdateOfferingRequest::default()) {
            on_close.run(());
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            let answer = match changes {
                Some((id, changes)) => api_client::update_offering(id, &changes).await,
                None => api_client::create_offering(&offering).await,
            };
            match answer {
                Ok(_) => on_done.run(()),
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                    pending.set(false);
                }
            }
        });
    };

    view! {
        <Dialog title on_close>
            <form class="dialog-form" on:submit=on_submit novalidate>
                <TextField id="offering-name" label=t("Name") value=name autofocus=true />
                <TextField id="offering-description" label=t("Description") value=description />
                <div class="field-row">
                    <TextField id="offering-cores" label=t("CPU cores") value=cpu_cores kind="number" />
                    <TextField id="offering-mhz" label=t("CPU speed (MHz)") value=cpu_mhz kind="number" />
                    <TextField id="offering-memory" label=t("Memory (MB)") value=memory_mb kind="number" />
                </div>
                <p class="field-hint">{t("CPU and memory can change only while no VM uses the offering.")}</p>
                <TextField id="offering-tags" label=t("Host tags (comma separated)") value=host_tags placeholder="ssd, gpu" />
                <p class="field-hint">{t("VMs of this offering go only to hosts that carry every tag.")}</p>
                <label class="checkbox">
                    <input type="checkbox" bind:checked=offer_ha />
                    {t("Offer HA")}
                </label>
                <FormError error=error />
                <div class="dialog-actions">
                    <button type="button" class="button" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Saving…") } else { submit_label }}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

/// "Delete NAME": confirms, and shows the server's refusal while VMs use the offering.
#[component]
fn DeleteDialog(offering: ComputeOffering, on_close: Callback<()>, on_done: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let id = offering.id;
    let name = offering.name.clone();
    let usage = {
        let name = name.clone();
        move || match vms_using(store, &offering) {
            0 => tf("No VM uses {offering}. Deleting it cannot be undone.", &[("offering", &name)]),
            1 => tf(
                "1 VM uses {offering}: the server refuses to delete it while that VM exists.",
                &[("offering", &name)],
            ),
            count => tf(
                "{count} VMs use {offering}: the server refuses to delete it while they exist.",
                &[("count", &count.to_string()), ("offering", &name)],
            ),
        }
    };
    let delete = move |_| {
        if pending.get_untracked() {
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            match api_client::delete_offering(id).await {
                Ok(()) => on_done.run(()),
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                    pending.set(false);
                }
            }
        });
    };

    view! {
        <Dialog title=tf("Delete {offering}", &[("offering", &name)]) on_close>
            <p>{usage}</p>
            <FormError error=error />
            <div class="dialog-actions">
                <button type="button" class="button" autofocus on:click=move |_| on_close.run(())>
                    {t("Cancel")}
                </button>
                <button type="button" class="button button-danger" disabled=move || pending.get() on:click=delete>
                    {move || if pending.get() { t("Deleting…") } else { t("Delete offering") }}
                </button>
            </div>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> OfferingForm {
        OfferingForm {
            name: " web-ha ".to_owned(),
            description: "Web tier".to_owned(),
            cpu_cores: "2".to_owned(),
            cpu_mhz: "2000".to_owned(),
            memory_mb: "4096".to_owned(),
            host_tags: "ssd, , gpu,ssd".to_owned(),
            offer_ha: true,
        }
    }

    #[test]
    fn fields_are_checked_and_tags_split() {
        let offering = offering_request(form()).expect("valid form");
        assert_eq!(offering.name, "web-ha");
        assert_eq!(offering.host_tags, ["ssd", "gpu"]);
        let bad = OfferingForm { cpu_mhz: "50".to_owned(), ..form() };
        assert!(offering_request(bad).is_err_and(|message| message.starts_with("CPU speed")));
        let bad = OfferingForm { host_tags: "two words".to_owned(), ..form() };
        assert!(offering_request(bad).is_err_and(|message| message.starts_with("Host tags")));
    }

    #[test]
    fn edits_send_only_changes() {
        let new = offering_request(form()).expect("valid form");
        let old = ComputeOffering {
            id: api::OfferingId::new_random(),
            name: "web-ha".to_owned(),
            description: "Web tier".to_owned(),
            cpu_cores: 2,
            cpu_mhz: 2000,
            memory_mb: 2048,
            host_tags: vec!["ssd".to_owned(), "gpu".to_owned()],
            offer_ha: true,
        };
        assert_eq!(offering_changes(&old, new), UpdateOfferingRequest { memory_mb: Some(4096), ..Default::default() });
    }
}
