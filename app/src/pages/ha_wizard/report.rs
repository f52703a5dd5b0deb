//! The power-off test's report: a JSON document (downloaded from a `Blob` through an object URL) and
//! a printable page (the report section alone, by `style/wizard_test.css`'s print rules, through
//! `window.print()`).

use super::verdict::Verdict;
use crate::i18n::t;
use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::web_sys::{Blob, BlobPropertyBag, Url};
use serde_json::{Value, json};
use wasm_bindgen::JsValue;

/// One host HA state the failed host went through.
#[derive(Clone, Debug, PartialEq)]
pub struct StateStep {
    pub state: &'static str,
    pub at: DateTime<Utc>,
    pub seconds: f64,
}

/// One test VM in the report.
#[derive(Clone, Debug, PartialEq)]
pub struct VmLine {
    pub name: String,
    pub id: String,
    pub from_host: String,
    pub to_host: Option<String>,
    pub state: &'static str,
    pub protected: bool,
    pub seconds: Option<f64>,
    pub restarts: usize,
}

/// Everything the report says.
pub struct ReportInput<'a> {
    pub cluster: String,
    pub host: String,
    pub host_id: String,
    pub powered_off_at: Option<DateTime<Utc>>,
    pub deadline_seconds: f64,
    pub verdict: &'a Verdict,
    pub states: Vec<StateStep>,
    pub vms: Vec<VmLine>,
    pub incident: Option<Value>,
    pub generated_at: DateTime<Utc>,
}

fn round1(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

/// The JSON report.
pub fn report_json(input: &ReportInput<'_>) -> Value {
    let reasons = match input.verdict {
        Verdict::Fail(reasons) => reasons.clone(),
        _ => Vec::new(),
    };
    json!({
        "test": "ha-power-off",
        "generated_at": input.generated_at,
        "cluster": input.cluster,
        "host": { "id": input.host_id, "name": input.host },
        "powered_off_at": input.powered_off_at,
        "deadline_seconds": input.deadline_seconds,
        "verdict": input.verdict.word(),
        "reasons": reasons,
        "host_states": input.states.iter().map(|step| json!({
            "state": step.state,
            "at": step.at,
            "seconds_after_power_off": round1(step.seconds),
        })).collect::<Vec<_>>(),
        "vms": input.vms.iter().map(|vm| json!({
            "name": vm.name,
            "id": vm.id,
            "ha_protected": vm.protected,
            "from_host": vm.from_host,
            "to_host": vm.to_host,
            "state": vm.state,
            "running_after_seconds": vm.seconds.map(round1),
            "restarts": vm.restarts,
        })).collect::<Vec<_>>(),
        "incident": input.incident,
    })
}

/// The report's file name: "ha-power-off-test-kvm-a1.json".
pub fn file_name(host: &str) -> String {
    let safe: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("ha-power-off-test-{safe}.json")
}

/// An object URL for `text` as a JSON file; `None` when the browser refused.
fn json_url(text: &str) -> Option<String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = Blob::new_with_str_sequence_and_options(&parts, &options).ok()?;
    Url::create_object_url_with_blob(&blob).ok()
}

/// "Download the report (JSON)" and "Print the report", for the report built by `json`.
#[component]
pub fn ReportLinks(#[prop(into)] json: Signal<String>, #[prop(into)] file: Signal<String>) -> impl IntoView {
    let url = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let next = json.with(|text| json_url(text));
        if let Some(old) = url.get_untracked() {
            let _ = Url::revoke_object_url(&old);
        }
        url.set(next);
    });
    on_cleanup(move || {
        if let Some(old) = url.try_get_untracked().flatten() {
            let _ = Url::revoke_object_url(&old);
        }
    });
    let print = move |_| {
        // Printing only fails where there is no printer dialog at all; nothing to tell then.
        let _ = window().print();
    };
    view! {
        <div class="wizard-report-actions">
            <a
                class="button"
                data-testid="wizard-report-json"
                href=move || url.get()
                download=move || file.get()
                aria-disabled=move || url.with(Option::is_none).then_some("true")
            >
                {t("Download the report (JSON)")}
            </a>
            <button type="button" class="button" data-testid="wizard-report-print" on:click=print>
                {t("Print the report")}
            </button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_carries_verdict_states_and_vms() {
        let at = Utc::now();
        let verdict = Verdict::Fail(vec!["HA-TEST-VM2 is late".into()]);
        let input = ReportInput {
            cluster: "cluster-b".into(),
            host: "kvm-b1".into(),
            host_id: "h1".into(),
            powered_off_at: Some(at),
            deadline_seconds: 180.0,
            verdict: &verdict,
            states: vec![StateStep { state: "suspect", at, seconds: 4.26 }],
            vms: vec![VmLine {
                name: "HA-TEST-VM1".into(),
                id: "v1".into(),
                from_host: "kvm-b1".into(),
                to_host: Some("kvm-b2".into()),
                state: "running",
                protected: true,
                seconds: Some(31.04),
                restarts: 1,
            }],
            incident: None,
            generated_at: at,
        };
        let report = report_json(&input);
        assert_eq!(report["verdict"], "fail");
        assert_eq!(report["reasons"][0], "HA-TEST-VM2 is late");
        assert_eq!(report["host_states"][0]["seconds_after_power_off"], 4.3);
        assert_eq!(report["vms"][0]["to_host"], "kvm-b2");
        assert_eq!(file_name("kvm b1"), "ha-power-off-test-kvm_b1.json");
    }
}
