//! The audit log (pool admins and pool operators): every mutating call, newest first, with who made it,
//! on what, how it ended, and what it decided beyond that (shown under the target). The filters (user,
//! object, time range, limit) live in the address (`?user=&object=&from=&to=&limit=`), so a filtered
//! view can be linked and the Back button works.
//!
//! From and To are typed in the browser's local time and travel in the address as UTC (RFC 3339), so a
//! link means the same moments for a colleague in another time zone. The table shows UTC.

use crate::api_client::{self, ClientError};
use crate::components::dialog::{FormError, WhyNot};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use api::v1::{AuditEntry, AuditQuery};
use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

/// How many entries a view shows unless the address says otherwise (the server's default too).
const DEFAULT_LIMIT: u32 = 200;
/// The server never answers with more than this many entries.
const MAX_LIMIT: u32 = 1000;

/// The filter form's fields, as typed (From and To in `datetime-local` form, local time).
#[derive(Debug)]
struct Filters {
    user: String,
    object: String,
    from: String,
    to: String,
    limit: String,
}

/// A `datetime-local` value ("2025-03-01T14:30", seconds optional), read in the browser's time zone.
fn local_to_utc(text: &str) -> Option<DateTime<Utc>> {
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let year = u32::try_from(local.year()).ok()?;
    let date = js_sys::Date::new_with_year_month_day_hr_min_sec(
        year,
        i32::try_from(local.month0()).ok()?,
        i32::try_from(local.day()).ok()?,
        i32::try_from(local.hour()).ok()?,
        i32::try_from(local.minute()).ok()?,
        i32::try_from(local.second()).ok()?,
    );
    let millis = date.get_time();
    // NaN for a date JavaScript cannot represent; the cast of a finite value is exact for real dates.
    if millis.is_finite() { DateTime::from_timestamp_millis(millis as i64) } else { None }
}

/// The `datetime-local` value showing a UTC moment in the browser's time zone (seconds only when set).
fn utc_to_local(at: DateTime<Utc>) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.timestamp_millis() as f64));
    let minutes = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    );
    match date.get_seconds() {
        0 => minutes,
        seconds => format!("{minutes}:{seconds:02}"),
    }
}

/// The browser's offset from UTC now, e.g. "UTC+02:00", for the form's hint.
fn local_offset() -> String {
    // getTimezoneOffset is UTC minus local time, in minutes.
    let minutes = -(js_sys::Date::new_0().get_timezone_offset() as i64);
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("UTC{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

fn parse_utc(name: &str, text: &str) -> Result<DateTime<Utc>, ClientError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|_| {
        ClientError::Invalid(tf(
            "The address's \"{name}\" is not a time: \"{text}\".",
            &[("name", name), ("text", text)],
        ))
    })
}

/// The limit to send: `None` for the default, so that "200" and nothing are the same view.
fn limit_of(text: &str) -> Result<Option<u32>, ()> {
    match text.trim() {
        "" => Ok(None),
        text => match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok((limit != DEFAULT_LIMIT).then_some(limit)),
            _ => Err(()),
        },
    }
}

/// The server query an address asks for (`param` reads its query parameters); a malformed address is
/// reported, not silently dropped.
fn query_of(param: impl Fn(&str) -> Option<String>) -> Result<AuditQuery, ClientError> {
    let text = |name: &str| param(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
    let limit = limit_of(&text("limit").unwrap_or_default()).map_err(|()| {
        ClientError::Invalid(tf(
            "The address's \"limit\" must be a whole number from 1 to {max}.",
            &[("max", &MAX_LIMIT.to_string())],
        ))
    })?;
    Ok(AuditQuery {
        actor: text("user"),
        target: text("object"),
        since: text("from").map(|from| parse_utc("from", &from)).transpose()?,
        until: text("to").map(|to| parse_utc("to", &to)).transpose()?,
        limit,
    })
}

/// The form's fields for an address (empty where the address has nothing usable).
fn filters_of(params: &ParamsMap) -> Filters {
    let text = |name: &str| params.get(name).unwrap_or_default();
    let local = |name: &str| {
        params
            .get(name)
            .and_then(|value| DateTime::parse_from_rfc3339(value.trim()).ok())
            .map_or_else(String::new, |at| utc_to_local(at.with_timezone(&Utc)))
    };
    Filters { user: text("user"), object: text("object"), from: local("from"), to: local("to"), limit: text("limit") }
}

/// The server query the form asks for, or the message naming the field that is wrong.
fn query_from(filters: &Filters) -> Result<AuditQuery, String> {
    let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
    let moment = |problem: &'static str, value: &str| match text(value) {
        None => Ok(None),
        Some(value) => local_to_utc(&value).map(Some).ok_or_else(|| problem.to_owned()),
    };
    let since = moment(t("From is not a valid date and time."), &filters.from)?;
    let until = moment(t("To is not a valid date and time."), &filters.to)?;
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(t("From must be earlier than To.").to_owned());
    }
    let limit = limit_of(&filters.limit)
        .map_err(|()| tf("Limit must be a whole number from 1 to {max}.", &[("max", &MAX_LIMIT.to_string())]))?;
    Ok(AuditQuery { actor: text(&filters.user), target: text(&filters.object), since, until, limit })
}

/// The address of the view filtered by `query` (`/audit` when nothing is filtered).
fn address_of(query: &AuditQuery) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    pairs.extend(query.actor.clone().map(|user| ("user", user)));
    pairs.extend(query.target.clone().map(|object| ("object", object)));
    pairs.extend(query.since.map(|from| ("from", from.to_rfc3339_opts(SecondsFormat::Secs, true))));
    pairs.extend(query.until.map(|to| ("to", to.to_rfc3339_opts(SecondsFormat::Secs, true))));
    pairs.extend(query.limit.map(|limit| ("limit", limit.to_string())));
    // Encoding plain strings cannot fail; an empty query is the unfiltered view either way.
    match serde_urlencoded::to_string(&pairs) {
        Ok(encoded) if !encoded.is_empty() => format!("/audit?{encoded}"),
        _ => "/audit".to_owned(),
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let session = Session::expect();
    match session.may_untracked(Ability::ReadAudit) {
        Ok(()) => view! { <AuditLog /> }.into_any(),
        Err(reason) => view! {
            <div class="page">
                <header class="page-header">
                    <h1>{t("Audit log")}</h1>
                </header>
                <div class="panel admin-denied">
                    <p>{t("Only pool operators and pool admins can read the audit log.")}</p>
                    <WhyNot action=t("read the audit log") reason=reason />
                </div>
            </div>
        }
        .into_any(),
    }
}

#[component]
fn AuditLog() -> impl IntoView {
    let session = Session::expect();
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|params| query_of(|name| params.get(name))));
    let entries = LocalResource::new(move || {
        let query = query.get();
        async move {
            let answer = api_client::audit(&query?).await;
            if let Err(error) = &answer {
                session.notice(error);
            }
            answer
        }
    });
    let (loading, set_loading) = signal(false);
    let limit = Memo::new(move |_| {
        query.with(|query| query.as_ref().ok().and_then(|query| query.limit).unwrap_or(DEFAULT_LIMIT))
    });

    view! {
        <div class="page audit-page">
            <header class="page-header">
                <h1>{t("Audit log")}</h1>
                <p class="page-summary">{t("Every change made through the API, newest first. Times in UTC.")}</p>
            </header>
            <FilterForm params current=query loading on_same=move || entries.refetch() />
            <Transition fallback=Loading set_pending=set_loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || entries.refetch() /> }
                }>
                    {move || Suspend::new(async move {
                        entries.await.map(|list| view! { <AuditTable list limit=limit.get_untracked() /> })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

/// The filter form: its fields follow the address (Back, a followed link) and "Apply filters" writes
/// them into the address. `current` is the query the page shows now; `on_same` runs when the filters
/// ask for that same query, to load the log again.
#[component]
fn FilterForm(
    params: Memo<ParamsMap>,
    current: Memo<Result<AuditQuery, ClientError>>,
    loading: ReadSignal<bool>,
    #[prop(into)] on_same: Callback<()>,
) -> impl IntoView {
    let navigate = use_navigate();
    let initial = params.with_untracked(filters_of);
    let user = RwSignal::new(initial.user);
    let object = RwSignal::new(initial.object);
    let from = RwSignal::new(initial.from);
    let to = RwSignal::new(initial.to);
    let limit = RwSignal::new(initial.limit);
    let error = RwSignal::new(None::<String>);
    Effect::new(move || {
        let filters = params.with(filters_of);
        user.set(filters.user);
        object.set(filters.object);
        from.set(filters.from);
        to.set(filters.to);
        limit.set(filters.limit);
        error.set(None);
    });

    let show = move |query: AuditQuery| {
        error.set(None);
        if current.with_untracked(|current| current.as_ref() == Ok(&query)) {
            on_same.run(());
        } else {
            navigate(&address_of(&query), NavigateOptions::default());
        }
    };
    let apply = {
        let show = show.clone();
        move |event: SubmitEvent| {
            event.prevent_default();
            let filters = Filters {
                user: user.get_untracked(),
                object: object.get_untracked(),
                from: from.get_untracked(),
                to: to.get_untracked(),
                limit: limit.get_untracked(),
            };
            match query_from(&filters) {
                Ok(query) => show(query),
                Err(problem) => error.set(Some(problem)),
            }
        }
    };
    let clear = move |_| {
        for field in [user, object, from, to, limit] {
            field.set(String::new());
        }
        show(AuditQuery::default());
    };

    view! {
        <form class="panel audit-filters" aria-label=t("Filters") on:submit=apply novalidate>
            <div class="audit-filter-fields">
                <div class="field">
                    <label for="audit-user">{t("User")}</label>
                    <input id="audit-user" type="text" placeholder="alice" bind:value=user />
                </div>
                <div class="field">
                    <label for="audit-object">{t("Object")}</label>
                    <input
                        id="audit-object"
                        type="text"
                        placeholder=t("a VM id, or offerings")
                        aria-describedby="audit-filters-hint"
                        bind:value=object
                    />
                </div>
                <div class="field">
                    <label for="audit-from">{t("From")}</label>
                    <input
                        id="audit-from"
                        type="datetime-local"
                        aria-describedby="audit-filters-hint"
                        bind:value=from
                    />
                </div>
                <div class="field">
                    <label for="audit-to">{t("To")}</label>
                    <input
                        id="audit-to"
                        type="datetime-local"
                        aria-describedby="audit-filters-hint"
                        bind:value=to
                    />
                </div>
                <div class="field audit-limit">
                    <label for="audit-limit">{t("Limit")}</label>
                    <input
                        id="audit-limit"
                        type="number"
                        min="1"
                        max=MAX_LIMIT.to_string()
                        placeholder=DEFAULT_LIMIT.to_string()
                        bind:value=limit
                    />
                </div>
            </div>
            <p id="audit-filters-hint" class="field-hint">
                {tf(
                    "User is an exact username; Object matches every call whose path contains it. From and To are in your time zone ({offset}).",
                    &[("offset", &local_offset())],
                )}
            </p>
            <FormError error=error />
            <div class="admin-actions">
                <button type="submit" class="button button-primary" disabled=move || loading.get()>
                    {t("Apply filters")}
                </button>
                <button type="button" class="button" disabled=move || loading.get() on:click=clear>
                    {t("Clear")}
                </button>
                <span class="admin-loading" role="status">
                    {move || loading.get().then(|| t("Loading…"))}
                </span>
            </div>
        </form>
    }
}

fn outcome_badge(outcome: &str) -> impl IntoView + use<> {
    let word = match outcome {
        "ok" => "ok",
        "refused" => "refused",
        "failed" => "failed",
        _ => "other",
    };
    // The known outcomes in the reader's language; any other word as the server wrote it.
    let text = match word {
        "ok" => t("ok").to_owned(),
        "refused" => t("refused").to_owned(),
        "failed" => t("failed").to_owned(),
        _ => outcome.to_owned(),
    };
    view! {
        <span class=format!("badge badge-outcome-{word}") data-state=outcome.to_owned()>
            {text}
        </span>
    }
}

#[component]
fn AuditTable(list: Vec<AuditEntry>, limit: u32) -> impl IntoView {
    let count = list.len();
    let summary = if count >= limit as usize {
        tf(
            "Showing the newest {count} entries; raise Limit or narrow the filters to see older ones.",
            &[("count", &count.to_string())],
        )
    } else if count == 1 {
        t("1 entry.").to_owned()
    } else {
        tf("{count} entries.", &[("count", &count.to_string())])
    };
    view! {
        <p class="audit-count" role="status">{summary}</p>
        <DataTable label=t("Audit log entries")>
            <thead>
                <tr>
                    <th scope="col">{t("Time")}</th>
                    <th scope="col">{t("User")}</th>
                    <th scope="col">{t("Action")}</th>
                    <th scope="col">{t("Target")}</th>
                    <th scope="col">{t("Outcome")}</th>
                    <th scope="col" class="num">{t("Status")}</th>
                    <th scope="col">{t("Client")}</th>
                </tr>
            </thead>
            <tbody>
                {(count == 0).then(|| view! { <EmptyRow columns=7 text=t("No entries match these filters.") /> })}
                {list
                    .into_iter()
                    .map(|entry| {
                        view! {
                            <tr data-outcome=entry.outcome.clone()>
                                <td class="nowrap">
                                    <time datetime=entry.at.to_rfc3339()>{format::timestamp(entry.at)}</time>
                                </td>
                                <td>{entry.actor}</td>
                                <td class="mono">{entry.action}</td>
                                <td class="audit-target">
                                    <span class="mono">{entry.target}</span>
                                    {entry.detail.map(|detail| view! { <span class="audit-detail">{server_text(&detail)}</span> })}
                                </td>
                                <td>{outcome_badge(&entry.outcome)}</td>
                                <td class="num">{entry.status}</td>
                                <td class="mono">{entry.client}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </DataTable>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query an address asks for, its parameters decoded as the browser does.
    fn read(address: &str) -> Result<AuditQuery, ClientError> {
        let query = address.split_once('?').map_or("", |(_, query)| query);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        query_of(|name| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()))
    }

    #[test]
    fn the_default_limit_is_no_limit_in_the_address() {
        assert_eq!(limit_of(""), Ok(None));
        assert_eq!(limit_of("200"), Ok(None));
        assert_eq!(limit_of(" 50 "), Ok(Some(50)));
        assert_eq!(limit_of("0"), Err(()));
        assert_eq!(limit_of("1001"), Err(()));
        assert_eq!(limit_of("many"), Err(()));
    }

    #[test]
    fn an_address_reads_back_as_the_same_query() {
        let query = AuditQuery {
            actor: Some("alice".to_owned()),
            target: Some("offerings/1 & 2".to_owned()),
            since: DateTime::parse_from_rfc3339("2025-03-01T12:30:00Z").ok().map(|at| at.with_timezone(&Utc)),
            until: None,
            limit: Some(50),
        };
        let address = address_of(&query);
        assert!(address.starts_with("/audit?user=alice&object=offerings%2F1+%26+2&from=2025-03-01T12%3A30%3A00Z"));
        assert_eq!(read(&address), Ok(query));
        assert_eq!(address_of(&AuditQuery::default()), "/audit");
    }

    #[test]
    fn a_malformed_address_says_what_is_wrong() {
        let error = read("/audit?from=yesterday").unwrap_err();
        assert_eq!(error.to_string(), "The address's \"from\" is not a time: \"yesterday\".");
        assert!(read("/audit?limit=0").is_err());
    }
}
