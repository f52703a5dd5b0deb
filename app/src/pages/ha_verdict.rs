//! The "Failover plan" panel of a cluster's HA plan page: the headline, green "HA is guaranteed, max N
//! failures" or red "HA cannot be guaranteed" with why, and the figures (max failure capacity, plan
//! exists for, host failure limit, overcommitted, how it was computed). While restart priorities are
//! changed on the page and not saved, it shows the what-if plan the planner computes for them
//! (`POST /ha/plan/simulate`), recomputed at every change.

use crate::api_client;
use crate::components::format;
use crate::i18n::{server_text, t, tf};
use crate::pages::ha_plan::{PlanState, host_failures};
use api::v1::{PlanReport, PlanSimulateRequest, RestartPriority};
use leptos::prelude::*;

/// The headline: green "HA is guaranteed, max N failures" or red "HA cannot be guaranteed".
fn verdict(report: &PlanReport) -> (bool, String) {
    match report.max_failure_capacity {
        Some(capacity) if !report.overcommitted => {
            let count = capacity.to_string();
            let headline = if capacity == 1 {
                tf("HA is guaranteed, max {count} failure", &[("count", &count)])
            } else {
                tf("HA is guaranteed, max {count} failures", &[("count", &count)])
            };
            (true, headline)
        }
        _ => (false, t("HA cannot be guaranteed").to_owned()),
    }
}

/// Why HA cannot be guaranteed, when it cannot.
fn shortfall(report: &PlanReport) -> Option<String> {
    match (report.max_failure_capacity, report.overcommitted) {
        (None, _) => Some(
            report.reason.as_deref().map_or_else(|| t("Not every protected VM can run now.").to_owned(), server_text),
        ),
        (Some(capacity), true) => Some(tf(
            "The cluster survives {failures} but its host failure limit is {limit}: it is overcommitted.",
            &[("failures", &host_failures(capacity)), ("limit", &report.failure_limit.to_string())],
        )),
        (Some(_), false) => None,
    }
}

fn method_text(method: &str) -> &'static str {
    match method {
        "exact" => t("exact: it cannot survive more failures"),
        "bound" => t("proven bound: it may survive more failures"),
        "trivial" => t("nothing to protect"),
        _ => t("no plan"),
    }
}

/// The report to show: the live one, or the what-if one once the planner answered.
#[derive(Clone, PartialEq)]
enum Shown {
    Live(PlanReport),
    WhatIf(PlanReport),
    Computing,
    Failed(String),
}

/// The headline and figures of the plan, live or what-if.
#[component]
pub fn Verdict(state: PlanState) -> impl IntoView {
    let simulated = LocalResource::new(move || {
        let pool = state.what_if.get();
        async move {
            let pool = pool?;
            Some(
                api_client::simulate_plan(&PlanSimulateRequest {
                    pool,
                    fail: Some(Vec::new()),
                    admit_start: None,
                    on: None,
                })
                .await,
            )
        }
    });
    let shown = Memo::new(move |_| {
        if state.what_if.with(Option::is_none) {
            return state
                .live
                .with(|plan| plan.as_ref().map_or(Shown::Computing, |plan| Shown::Live(plan.report.clone())));
        }
        simulated.with(|answer| match answer {
            Some(Some(Ok(response))) => Shown::WhatIf(response.report.clone()),
            Some(Some(Err(error))) => Shown::Failed(error.to_string()),
            _ => Shown::Computing,
        })
    });
    let report_view = move |report: PlanReport, what_if: bool| {
        let (good, headline) = verdict(&report);
        let capacity =
            report.max_failure_capacity.map_or_else(|| t("none").to_owned(), |capacity| capacity.to_string());
        view! {
            <p class=if good { "ha-verdict-title ha-good" } else { "ha-verdict-title ha-bad" } role="status">
                {headline}
            </p>
            {shortfall(&report).map(|text| view! { <p class="ha-shortfall">{text}</p> })}
            {what_if
                .then(|| {
                    view! { <p class="ha-what-if">{t("With the restart priorities chosen below, not saved yet.")}</p> }
                })}
            <dl class="facts ha-facts">
                <dt>{t("Max failure capacity")}</dt>
                <dd>{capacity}</dd>
                <dt>{t("Plan exists for")}</dt>
                <dd>{host_failures(report.plan_exists_for)}</dd>
                <dt>{t("Host failure limit")}</dt>
                <dd>{report.failure_limit}</dd>
                <dt>{t("Overcommitted")}</dt>
                <dd>{if report.overcommitted { t("Yes") } else { t("No") }}</dd>
                <dt>{t("Computed by")}</dt>
                <dd>{method_text(&report.method)}</dd>
            </dl>
            {(!report.unprotectable.is_empty()).then(|| view! {
                <p class="field-hint">
                    {tf(
                        "On local storage, so HA cannot restart them elsewhere: {vms}.",
                        &[("vms", &report.unprotectable.join(", "))],
                    )}
                </p>
            })}
        }
        .into_any()
    };
    view! {
        <section class="panel ha-verdict" aria-labelledby="ha-verdict-heading">
            <h2 id="ha-verdict-heading">{t("Failover plan")}</h2>
            {move || match shown.get() {
                Shown::Live(report) => report_view(report, false),
                Shown::WhatIf(report) => report_view(report, true),
                Shown::Computing => view! { <p class="in-progress" role="status">{t("Computing the plan…")}</p> }.into_any(),
                Shown::Failed(message) => view! { <p class="form-error" role="alert">{message}</p> }.into_any(),
            }}
            <p class="field-hint">
                {tf(
                    "Protected VMs are those with priority \"{priority}\"; only running VMs are planned for.",
                    &[("priority", format::priority_label(RestartPriority::Restart))],
                )}
            </p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_green_only_when_not_overcommitted() {
        let report = |capacity, overcommitted| PlanReport {
            max_failure_capacity: capacity,
            failure_limit: 1,
            plan_exists_for: 1,
            overcommitted,
            method: "exact".into(),
            unprotectable: Vec::new(),
            reason: None,
        };
        assert_eq!(verdict(&report(Some(2), false)), (true, "HA is guaranteed, max 2 failures".to_owned()));
        assert_eq!(verdict(&report(Some(1), false)).1, "HA is guaranteed, max 1 failure");
        assert!(!verdict(&report(Some(0), true)).0);
        assert!(!verdict(&report(None, true)).0);
        assert!(shortfall(&report(Some(0), true)).is_some_and(|text| text.contains("overcommitted")));
    }
}
