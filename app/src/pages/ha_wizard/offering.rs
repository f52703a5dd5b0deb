//! Step 6: a compute offering with "offer HA" on, for the test VMs (Mold's guide: "HA용 컴퓨트 오퍼링
//! 생성"). Either a new one (name "HA-TEST" by default, CPU cores, MHz per core and memory, each field
//! checked as the server checks it, with the error beside the field) or an HA offering that exists.
//! Either way the choice goes into [`Wizard::offering`]. Creating needs the `ManagePool` ability
//! (pool operators and pool admins); other roles see the step's state and who can take it.

use super::Wizard;
use crate::api_client::{self, ClientError};
use crate::components::dialog::FormError;
use crate::components::form::{Choice, ChoiceSelect, TextField};
use crate::components::format;
use crate::i18n::{server_text, t, tf};
use crate::pages::offerings::{CPU_CORES, CPU_MHZ, MEMORY_MB, NAME_BYTES, number_in};
use crate::session::{Ability, Session};
use api::OfferingId;
use api::v1::{ComputeOffering, CreateOfferingRequest};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The offering's name unless the operator types another.
pub const DEFAULT_NAME: &str = "HA-TEST";

/// The step is done once the wizard has an HA offering (made or chosen here).
pub fn offering_done(wizard: Wizard) -> bool {
    wizard.offering.with(Option::is_some)
}

/// The form's fields as typed.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferingForm {
    pub name: String,
    pub description: String,
    pub cpu_cores: String,
    pub cpu_mhz: String,
    pub memory_mb: String,
}

impl Default for OfferingForm {
    fn default() -> Self {
        OfferingForm {
            name: DEFAULT_NAME.to_owned(),
            description: "HA test offering".to_owned(),
            cpu_cores: "1".to_owned(),
            cpu_mhz: "1000".to_owned(),
            memory_mb: "1024".to_owned(),
        }
    }
}

/// What is wrong with each field, in the current language.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldErrors {
    pub name: Option<&'static str>,
    pub cpu_cores: Option<&'static str>,
    pub cpu_mhz: Option<&'static str>,
    pub memory_mb: Option<&'static str>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.name.is_some() || self.cpu_cores.is_some() || self.cpu_mhz.is_some() || self.memory_mb.is_some()
    }
}

/// Checks the fields as the server does (`app/offerings.rs`) and builds the request with "offer HA" on.
pub fn offering_request(form: &OfferingForm) -> Result<CreateOfferingRequest, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = form.name.trim();
    if !NAME_BYTES.contains(&name.len()) {
        errors.name = Some(t("Give a name of 1 to 64 characters."));
    }
    let cpu_cores = number_in(&form.cpu_cores, &CPU_CORES);
    if cpu_cores.is_none() {
        errors.cpu_cores = Some(t("Give a whole number of cores from 1 to 256."));
    }
    let cpu_mhz = number_in(&form.cpu_mhz, &CPU_MHZ);
    if cpu_mhz.is_none() {
        errors.cpu_mhz = Some(t("Give the speed of one core, from 100 to 10000 MHz."));
    }
    let memory_mb = number_in(&form.memory_mb, &MEMORY_MB);
    if memory_mb.is_none() {
        errors.memory_mb = Some(t("Give the memory in MB, from 64 to 4194304."));
    }
    match (cpu_cores, cpu_mhz, memory_mb) {
        (Some(cpu_cores), Some(cpu_mhz), Some(memory_mb)) if !errors.any() => Ok(CreateOfferingRequest {
            name: name.to_owned(),
            description: form.description.trim().to_owned(),
            cpu_cores,
            cpu_mhz,
            memory_mb,
            host_tags: Vec::new(),
            offer_ha: true,
        }),
        _ => Err(errors),
    }
}

/// A server refusal that names a field, as that field's error.
fn server_field_error(error: &ClientError) -> Option<FieldErrors> {
    let mut errors = FieldErrors::default();
    match error.code()? {
        "invalid-name" => errors.name = Some(t("Give a name of 1 to 64 characters.")),
        "invalid-cpu-cores" => errors.cpu_cores = Some(t("Give a whole number of cores from 1 to 256.")),
        "invalid-cpu-mhz" => errors.cpu_mhz = Some(t("Give the speed of one core, from 100 to 10000 MHz.")),
        "invalid-memory" => errors.memory_mb = Some(t("Give the memory in MB, from 64 to 4194304.")),
        _ => return None,
    }
    Some(errors)
}

/// "HA-TEST (1 × 1000 MHz, 1.0 GiB)".
fn offering_label(offering: &ComputeOffering) -> String {
    format!(
        "{} ({} × {} MHz, {})",
        offering.name,
        offering.cpu_cores,
        offering.cpu_mhz,
        format::memory(offering.memory_mb)
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    New,
    Existing,
}

#[component]
pub fn OfferingStep(wizard: Wizard) -> impl IntoView {
    let session = Session::expect();
    let may = session.may_untracked(Ability::ManagePool).is_ok();
    let reload = RwSignal::new(0u32);
    let offerings = LocalResource::new(move || {
        reload.track();
        api_client::offerings()
    });
    let ha_offerings = Memo::new(move |_| {
        offerings.with(|answer| match answer {
            Some(Ok(list)) => list.iter().filter(|offering| offering.offer_ha).cloned().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    });
    let chosen_offering = Memo::new(move |_| {
        let id = wizard.offering.get()?;
        ha_offerings.with(|list| list.iter().find(|offering| offering.id == id).cloned())
    });

    let mode = RwSignal::new(Mode::New);
    // An HA offering named like the default already exists (an earlier run): offer it first.
    Effect::new(move |decided: Option<bool>| {
        if decided == Some(true) {
            return true;
        }
        let loaded = offerings.with(|answer| answer.is_some());
        if loaded && ha_offerings.with(|list| list.iter().any(|offering| offering.name == DEFAULT_NAME)) {
            mode.set(Mode::Existing);
        }
        loaded
    });

    let form = OfferingForm::default();
    let name = RwSignal::new(form.name);
    let description = RwSignal::new(form.description);
    let cpu_cores = RwSignal::new(form.cpu_cores);
    let cpu_mhz = RwSignal::new(form.cpu_mhz);
    let memory_mb = RwSignal::new(form.memory_mb);
    let errors = RwSignal::new(FieldErrors::default());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let existing = RwSignal::new(String::new());

    let on_create = move |event: SubmitEvent| {
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
        };
        let request = match offering_request(&form) {
            Ok(request) => request,
            Err(found) => {
                errors.set(found);
                error.set(Some(t("Correct the marked fields.").to_owned()));
                return;
            }
        };
        errors.set(FieldErrors::default());
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            match api_client::create_offering(&request).await {
                Ok(created) => {
                    wizard.offering.set(Some(created.id));
                    reload.update(|n| *n += 1);
                }
                Err(failure) => {
                    session.notice(&failure);
                    if let Some(found) = server_field_error(&failure) {
                        errors.set(found);
                    }
                    error.set(Some(server_text(&failure.to_string())));
                }
            }
            pending.set(false);
        });
    };
    let on_choose = move |event: SubmitEvent| {
        event.prevent_default();
        match existing.get_untracked().parse::<OfferingId>() {
            Ok(id) => {
                error.set(None);
                wizard.offering.set(Some(id));
            }
            Err(_) => error.set(Some(t("HA offering: choose one.").to_owned())),
        }
    };
    let choices = Memo::new(move |_| {
        ha_offerings
            .with(|list| list.iter().map(|offering| Choice::new(offering.id, offering_label(offering))).collect())
    });
    let load_error = move || {
        offerings.with(|answer| match answer {
            Some(Err(failure)) => Some(view! { <p class="form-error">{server_text(&failure.to_string())}</p> }),
            _ => None,
        })
    };

    let chosen = move || match (wizard.offering.get(), chosen_offering.get()) {
        (None, _) => view! { <p class="wizard-status">{t("No HA offering chosen yet.")}</p> }.into_any(),
        (Some(_), Some(offering)) => view! {
            <p class="wizard-status wizard-status-ok" role="status" data-testid="wizard-offering-chosen">
                {tf("The test VMs will use {offering}, with HA offered.", &[("offering", &offering_label(&offering))])}
            </p>
        }
        .into_any(),
        (Some(_), None) => {
            view! { <p class="wizard-status">{t("An HA offering is chosen (loading its details…).")}</p> }.into_any()
        }
    };

    let controls = move || {
        if !may {
            return view! {
                <p class="wizard-role-note" data-testid="wizard-role-note-offering">
                    {t("Only pool operators and pool admins can create or choose the HA offering; your role can follow this step but not take it.")}
                </p>
            }
            .into_any();
        }
        let create_form = move || {
            view! {
                <form class="wizard-form" on:submit=on_create novalidate>
                    <TextField id="wizard-offering-name" label=t("Name") value=name error=Signal::derive(move || errors.get().name) />
                    <div class="field">
                        <label for="wizard-offering-description">{t("Description")}</label>
                        <input id="wizard-offering-description" type="text" autocomplete="off" bind:value=description />
                    </div>
                    <div class="field-row">
                        <TextField
                            id="wizard-offering-cores"
                            label=t("CPU cores")
                            kind="number"
                            value=cpu_cores
                            error=Signal::derive(move || errors.get().cpu_cores)
                        />
                        <TextField
                            id="wizard-offering-mhz"
                            label=t("CPU (MHz per core)")
                            kind="number"
                            value=cpu_mhz
                            error=Signal::derive(move || errors.get().cpu_mhz)
                        />
                        <TextField
                            id="wizard-offering-memory"
                            label=t("Memory (MB)")
                            kind="number"
                            value=memory_mb
                            error=Signal::derive(move || errors.get().memory_mb)
                        />
                    </div>
                    <p class="field-hint">{t("\"Offer HA\" is on: every VM of this offering is protected by HA.")}</p>
                    <FormError error />
                    <div class="wizard-actions">
                        <button type="submit" class="button button-primary" disabled=move || pending.get()>
                            {move || if pending.get() { t("Creating…") } else { t("Create HA offering") }}
                        </button>
                    </div>
                </form>
            }
        };
        let choose_form = move || {
            view! {
                <form class="wizard-form" on:submit=on_choose novalidate>
                    <ChoiceSelect
                        id="wizard-offering-existing"
                        label=t("HA offering")
                        placeholder=Signal::derive(move || {
                            if ha_offerings.with(Vec::is_empty) { t("No HA offering exists yet") } else { t("Choose an HA offering") }
                                .to_owned()
                        })
                        choices=choices
                        value=existing
                    />
                    <FormError error />
                    <div class="wizard-actions">
                        <button type="submit" class="button button-primary">{t("Use this offering")}</button>
                    </div>
                </form>
            }
        };
        view! {
            <fieldset class="wizard-choice">
                <legend>{t("Offering for the test VMs")}</legend>
                <label class="radio">
                    <input
                        type="radio"
                        name="wizard-offering-mode"
                        prop:checked=move || mode.get() == Mode::New
                        on:change=move |_| {
                            error.set(None);
                            mode.set(Mode::New);
                        }
                    />
                    {t("Create a new HA offering")}
                </label>
                <label class="radio">
                    <input
                        type="radio"
                        name="wizard-offering-mode"
                        prop:checked=move || mode.get() == Mode::Existing
                        on:change=move |_| {
                            error.set(None);
                            mode.set(Mode::Existing);
                        }
                    />
                    {t("Use an existing HA offering")}
                </label>
            </fieldset>
            {load_error}
            {move || match mode.get() {
                Mode::New => create_form().into_any(),
                Mode::Existing => choose_form().into_any(),
            }}
        }
        .into_any()
    };

    view! {
        <div class="wizard-step wizard-step-offering">
            <p class="wizard-intro">
                {t("The test VMs need a compute offering with \"offer HA\" on, so that HA restarts them when their host fails.")}
            </p>
            {chosen}
            {controls}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_form_makes_an_ha_offering() {
        let request = offering_request(&OfferingForm::default()).unwrap();
        assert_eq!(request.name, "HA-TEST");
        assert!(request.offer_ha);
        assert_eq!((request.cpu_cores, request.cpu_mhz, request.memory_mb), (1, 1000, 1024));
    }

    #[test]
    fn each_wrong_field_gets_its_own_error() {
        let form = OfferingForm {
            name: "  ".into(),
            description: String::new(),
            cpu_cores: "0".into(),
            cpu_mhz: "fast".into(),
            memory_mb: "32".into(),
        };
        let errors = offering_request(&form).unwrap_err();
        assert!(errors.name.is_some() && errors.cpu_cores.is_some());
        assert!(errors.cpu_mhz.is_some() && errors.memory_mb.is_some());
        let one = OfferingForm { cpu_mhz: "99".into(), ..OfferingForm::default() };
        let errors = offering_request(&one).unwrap_err();
        assert_eq!((errors.name, errors.cpu_mhz.is_some()), (None, true));
    }

    #[test]
    fn server_refusals_land_on_their_field() {
        let refusal = ClientError::Api {
            status: 400,
            error: api::v1::ApiError {
                code: "invalid-memory".into(),
                message: "memory_mb must be 64 to 4194304".into(),
            },
        };
        assert!(server_field_error(&refusal).is_some_and(|errors| errors.memory_mb.is_some()));
    }
}
