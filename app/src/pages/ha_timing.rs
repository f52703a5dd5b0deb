//! "HA timing" on a cluster's HA page: the cluster's failure detection and fencing timings
//! (`GET`/`PUT /clusters/{id}/ha/settings`), one labelled field each, in milliseconds. Pool operators
//! and up save them; others read them. A value that is not a whole number is refused here; the
//! server's 400 `invalid-ha-timing` names the field ("suspect_after_ms: …") and is shown at that field.

use crate::api_client;
use crate::components::dialog::{FormError, WhyNot};
use crate::i18n::t;
use crate::session::{Ability, Session};
use api::ClusterId;
use api::v1::{HaTimingSettings, UpdateHaTimingRequest};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The fields in the form's order: the server's name and the label.
const FIELDS: [&str; 6] = [
    "heartbeat_interval_ms",
    "suspect_after_ms",
    "storage_timeout_ms",
    "self_fence_timeout_ms",
    "fence_backoff_initial_ms",
    "fence_backoff_max_ms",
];

fn label(field: &str) -> &'static str {
    match field {
        "heartbeat_interval_ms" => t("Heartbeat interval (ms)"),
        "suspect_after_ms" => t("Suspect after network silence of (ms)"),
        "storage_timeout_ms" => t("Storage heartbeat timeout (ms)"),
        "self_fence_timeout_ms" => t("Self-fence timeout (ms)"),
        "fence_backoff_initial_ms" => t("First fencing retry after (ms)"),
        _ => t("Longest wait between fencing retries (ms)"),
    }
}

fn hint(field: &str) -> &'static str {
    match field {
        "heartbeat_interval_ms" => t("How often agents send a heartbeat."),
        "suspect_after_ms" => t("A host silent on the network this long becomes Suspect."),
        "storage_timeout_ms" => t("A storage heartbeat that has not advanced this long counts as stopped."),
        "self_fence_timeout_ms" => {
            t("An agent that reaches neither a management server nor its storage this long stops its VMs.")
        }
        "fence_backoff_initial_ms" => t("The first wait before a failed fence is tried again; doubled each time."),
        _ => t("The wait between fencing retries grows up to this."),
    }
}

fn value(timing: &HaTimingSettings, field: &str) -> u64 {
    match field {
        "heartbeat_interval_ms" => timing.heartbeat_interval_ms,
        "suspect_after_ms" => timing.suspect_after_ms,
        "storage_timeout_ms" => timing.storage_timeout_ms,
        "self_fence_timeout_ms" => timing.self_fence_timeout_ms,
        "fence_backoff_initial_ms" => timing.fence_backoff_initial_ms,
        _ => timing.fence_backoff_max_ms,
    }
}

/// The request from the typed texts (in [`FIELDS`] order), or the first field that is not a number.
pub fn parse_request(texts: &[String]) -> Result<UpdateHaTimingRequest, (usize, String)> {
    let mut numbers = [0u64; 6];
    for (index, text) in texts.iter().enumerate().take(6) {
        numbers[index] =
            text.trim().parse::<u64>().map_err(|_| (index, t("Give a whole number of milliseconds.").to_owned()))?;
    }
    Ok(UpdateHaTimingRequest {
        heartbeat_interval_ms: Some(numbers[0]),
        suspect_after_ms: Some(numbers[1]),
        storage_timeout_ms: Some(numbers[2]),
        self_fence_timeout_ms: Some(numbers[3]),
        fence_backoff_initial_ms: Some(numbers[4]),
        fence_backoff_max_ms: Some(numbers[5]),
    })
}

/// Which field a server refusal names ("suspect_after_ms: …"), if one of ours.
pub fn field_of(message: &str) -> Option<usize> {
    let (name, _) = message.split_once(':')?;
    FIELDS.iter().position(|field| *field == name.trim())
}

/// A refusal without its leading "field: ".
fn without_field(message: &str) -> String {
    message.split_once(": ").map_or_else(|| message.to_owned(), |(_, reason)| reason.to_owned())
}

#[component]
pub fn HaTiming(cluster: ClusterId) -> impl IntoView {
    let session = Session::expect();
    // Read once, untracked: see crate::components::vm_power.
    let permitted = session.may_untracked(Ability::ManageHa);
    let editable = permitted.is_ok();
    let texts: [RwSignal<String>; 6] = std::array::from_fn(|_| RwSignal::new(String::new()));
    let field_errors: [RwSignal<Option<String>>; 6] = std::array::from_fn(|_| RwSignal::new(None));
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let loaded = RwSignal::new(false);
    let show = move |timing: &HaTimingSettings| {
        for (index, field) in FIELDS.iter().enumerate() {
            texts[index].set(value(timing, field).to_string());
        }
    };
    let fetched = LocalResource::new(move || async move { api_client::cluster_ha_settings(cluster).await });
    Effect::new(move || match fetched.get() {
        Some(Ok(settings)) => {
            show(&settings.timing);
            loaded.set(true);
        }
        Some(Err(failure)) => {
            session.notice(&failure);
            error.set(Some(failure.to_string()));
        }
        None => {}
    });
    let clear_errors = move || {
        for slot in field_errors {
            slot.set(None);
        }
        error.set(None);
        notice.set(None);
    };
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if !editable || pending.get_untracked() || !loaded.get_untracked() {
            return;
        }
        clear_errors();
        let typed: Vec<String> = texts.iter().map(|text| text.get_untracked()).collect();
        let request = match parse_request(&typed) {
            Ok(request) => request,
            Err((index, message)) => {
                field_errors[index].set(Some(message));
                return;
            }
        };
        pending.set(true);
        spawn_local(async move {
            match api_client::update_cluster_ha_settings(cluster, &request).await {
                Ok(settings) => {
                    show(&settings.timing);
                    notice.set(Some(
                        t("HA timing saved. Agents use a new self-fence timeout when they next connect.").to_owned(),
                    ));
                }
                Err(failure) => {
                    session.notice(&failure);
                    let message = failure.to_string();
                    let raw = match &failure {
                        api_client::ClientError::Api { error, .. } => error.message.clone(),
                        _ => String::new(),
                    };
                    match field_of(&raw) {
                        // The field is named by its label already: its reason alone.
                        Some(index) => field_errors[index].set(Some(without_field(&message))),
                        None => error.set(Some(message)),
                    }
                }
            }
            pending.set(false);
        });
    };

    let fields = FIELDS
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let id = format!("ha-timing-{}", field.replace('_', "-"));
            let hint_id = format!("{id}-hint");
            let error_id = format!("{id}-error");
            let described = format!("{hint_id} {error_id}");
            let slot = field_errors[index];
            let text = texts[index];
            view! {
                <div class="field ha-timing-field">
                    <label for=id.clone()>{label(field)}</label>
                    <input
                        id=id.clone()
                        type="number"
                        min="1"
                        step="1"
                        autocomplete="off"
                        disabled=!editable
                        data-testid=id.clone()
                        aria-describedby=described
                        aria-invalid=move || if slot.with(Option::is_some) { "true" } else { "false" }
                        bind:value=text
                    />
                    <p class="field-hint" id=hint_id>{hint(field)}</p>
                    <p class="field-error" id=error_id role="alert" data-testid=format!("{id}-error")>
                        {move || slot.get()}
                    </p>
                </div>
            }
        })
        .collect_view();

    view! {
        <section class="panel ha-timing" aria-labelledby="ha-timing-heading" data-testid="ha-timing">
            <h2 id="ha-timing-heading">{t("HA timing")}</h2>
            <p class="field-hint">
                {t("How fast a failed host is detected and fenced. Every timeout must exceed the heartbeat interval, and the self-fence timeout the storage timeout.")}
            </p>
            <form class="ha-timing-form" on:submit=on_submit novalidate>
                <div class="ha-timing-grid">{fields}</div>
                {editable
                    .then(|| {
                        view! {
                            <button
                                type="submit"
                                class="button button-primary"
                                data-testid="ha-timing-save"
                                disabled=move || pending.get() || !loaded.get()
                            >
                                {move || if pending.get() { t("Saving…") } else { t("Save timing") }}
                            </button>
                        }
                    })}
            </form>
            <FormError error />
            {move || {
                notice
                    .get()
                    .map(|text| view! { <p class="form-saved" role="status" data-testid="ha-timing-saved">{text}</p> })
            }}
            {permitted.err().map(|reason| view! { <WhyNot action=t("change HA timing") reason /> })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_numbers_make_the_request_and_a_bad_one_names_its_field() {
        let texts: Vec<String> = ["1000", "3000", "4000", "8000", "1000", " 30000 "].map(String::from).into();
        let request = parse_request(&texts).unwrap();
        assert_eq!(request.fence_backoff_max_ms, Some(30_000));
        assert_eq!(request.suspect_after_ms, Some(3000));
        let mut bad = texts.clone();
        bad[2] = "soon".into();
        assert_eq!(parse_request(&bad).unwrap_err().0, 2);
    }

    #[test]
    fn server_refusals_are_placed_at_their_field() {
        assert_eq!(field_of("suspect_after_ms: 1000 ms must exceed the heartbeat interval (1000 ms)"), Some(1));
        assert_eq!(field_of("fence_backoff_max_ms: must be at least"), Some(5));
        assert_eq!(field_of("something else entirely"), None);
        assert_eq!(without_field("suspect_after_ms: must be at most 3600000 ms"), "must be at most 3600000 ms");
        let korean = crate::i18n::with_lang(crate::i18n::Lang::Ko, || {
            crate::i18n::server_text("self_fence_timeout_ms: 4000 ms must exceed the storage timeout (4000 ms)")
        });
        assert_eq!(without_field(&korean), "4000 ms는 스토리지 시간 제한(4000 ms)보다 커야 합니다");
        assert_eq!(value(&HaTimingSettings::default(), "storage_timeout_ms"), 4000);
    }
}
