//! Admission control (XAPI's HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN): deploy, start, migrate, host
//! disable / maintenance / removal and VM HA changes are checked against the cluster's failover
//! plan before they happen.
//!
//! The rule: compute the plan before and after the action. When the cluster is not already
//! overcommitted and the capacity after would be below what the plan covers now ("plan exists
//! for"), the action is refused with a 409 `would-overcommit` naming both capacities and the limit.
//! Pool operators and up may pass `?overcommit=proceed` (the cluster becomes overcommitted) or
//! `?overcommit=lower-limit` (the failure limit drops to the capacity after, then the action
//! proceeds). A cluster that is already overcommitted is not blocked further: it cannot get worse
//! in a way the plan still promises. Every decision goes to the audit log through [`AuditNote`].
//!
//! Decisions are serialized on this server (one lock, held until the action has recorded its effect),
//! so two concurrent starts cannot both pass on the same room. Several servers on one PostgreSQL
//! database do not share the lock; the capacity reconciler then raises the overcommit alert.

use super::AppError;
use super::permission::{ManageHa, Permission};
use crate::db::LimitChange;
use crate::ha::plan::DEFAULT_SEARCH_BUDGET;
use crate::ha::pool::{Change, ClusterSnapshot};
use crate::state::AppState;
use api::ClusterId;
use api::v1::{Event, OvercommitChoice, OvercommitConflict, PlanReport, Role};
use std::sync::{Arc, Mutex};

/// Where a handler's decision goes for the audit log: the audit middleware puts one in each mutating
/// request and writes what was noted as the entry's `detail`.
#[derive(Clone, Debug, Default)]
pub struct AuditNote(Arc<Mutex<Option<String>>>);

impl AuditNote {
    /// Note `text` (a later note replaces an earlier one).
    pub fn set(&self, text: impl Into<String>) {
        if let Ok(mut note) = self.0.lock() {
            *note = Some(text.into());
        }
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut note| note.take())
    }
}

/// What the caller of a checked action allows when the action would break the failover plan.
#[derive(Clone, Debug)]
pub struct Admission {
    choice: Option<OvercommitChoice>,
    may_override: bool,
    note: AuditNote,
}

impl Admission {
    /// The caller's choice from `?overcommit=`, refused with 403 for roles below pool operator.
    pub fn new(choice: Option<OvercommitChoice>, role: Role, note: AuditNote) -> Result<Admission, AppError> {
        let may_override = ManageHa::allows(role);
        if let Some(choice) = choice
            && !may_override
        {
            return Err(AppError::Forbidden(format!(
                "your role ({}) may not pass overcommit={}: only pool operators and pool admins may proceed past \
                 an overcommit warning or lower the host failure limit; cancel, or ask one of them",
                role.as_str(),
                choice.as_str()
            )));
        }
        Ok(Admission { choice, may_override, note })
    }

    pub fn choice(&self) -> Option<OvercommitChoice> {
        self.choice
    }
}

/// How the plan fares under an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The plan still covers what it covers now.
    Keeps,
    /// The cluster is overcommitted already: not blocked further.
    AlreadyOvercommitted,
    /// The action would leave less capacity than the plan covers now.
    Breaks,
}

/// The rule, pure: breaks when not already overcommitted and the capacity after is below "plan
/// exists for" before (no capacity at all, `None`, is below everything).
pub fn judge(before: &PlanReport, after: &PlanReport) -> Judgement {
    if before.overcommitted {
        return Judgement::AlreadyOvercommitted;
    }
    match after.max_failure_capacity {
        Some(capacity) if capacity >= before.plan_exists_for => Judgement::Keeps,
        _ => Judgement::Breaks,
    }
}

/// An admitted action. Holding it keeps other admission decisions of this server waiting, so drop
/// it only once the action has recorded its effect (VM marked starting, host updated ...).
pub struct Verdict {
    _serialized: tokio::sync::OwnedMutexGuard<()>,
    /// Set when the caller chose to lower the limit: apply it with the action's own write when that
    /// is one transaction, else through [`Verdict::lower_limit_now`] just before the action.
    pub limit_change: Option<LimitChange>,
}

impl Verdict {
    /// For actions that go through an agent and so cannot share a transaction with the limit: set
    /// the lowered limit now, after the action's own records and just before its command. (If the
    /// command then fails, the lower limit stays; the audit log says it was chosen.)
    pub async fn lower_limit_now(&self, state: &AppState) -> Result<(), AppError> {
        if let Some(change) = self.limit_change {
            state.db.cluster_set_failure_limit(change.cluster_id, change.limit).await?;
            // Clusters carry the limit: consoles reload.
            state.events.publish(Event::InventoryChanged);
        }
        Ok(())
    }
}

fn capacity_text(capacity: Option<u32>) -> String {
    capacity.map_or_else(|| "none (not every protected VM can run)".to_owned(), |capacity| capacity.to_string())
}

/// Check `change` on `cluster` for `admission`'s caller. `action` names what is checked, for messages
/// and the audit log (e.g. `start VM "web-01" on kvm-a1`).
pub async fn check(
    state: &AppState,
    admission: &Admission,
    cluster: ClusterId,
    action: String,
    change: Change,
) -> Result<Verdict, AppError> {
    let serialized = state.admission_lock.clone().lock_owned().await;
    let before = ClusterSnapshot::load(&state.db, cluster)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no cluster with id {cluster}")))?;
    let after = before.with(&change);
    let admitted = |limit_change| Verdict { _serialized: serialized, limit_change };
    if before.plan_pool() == after.plan_pool() {
        // Nothing the planner sees changes (e.g. only the start order, or a host that is down anyway).
        note_unneeded_choice(admission, &action);
        return Ok(admitted(None));
    }
    let cluster_name = before.cluster.name.clone();
    let (before, after) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::ha::plan::PlanError>((
            before.report(DEFAULT_SEARCH_BUDGET)?,
            after.report(DEFAULT_SEARCH_BUDGET)?,
        ))
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)?;
    match judge(&before, &after) {
        Judgement::Keeps | Judgement::AlreadyOvercommitted => {
            note_unneeded_choice(admission, &action);
            Ok(admitted(None))
        }
        Judgement::Breaks => {
            let figures = format!(
                "capacity {} -> {}, host failure limit {}",
                capacity_text(before.max_failure_capacity),
                capacity_text(after.max_failure_capacity),
                before.failure_limit
            );
            match admission.choice {
                None => {
                    admission.note.set(format!("refused: {action} would overcommit {cluster_name} ({figures})"));
                    Err(AppError::WouldOvercommit(Box::new(conflict(
                        cluster,
                        cluster_name,
                        action,
                        &before,
                        &after,
                        admission.may_override,
                    ))))
                }
                Some(OvercommitChoice::Proceed) => {
                    admission
                        .note
                        .set(format!("overcommit=proceed: {action}; {cluster_name} becomes overcommitted ({figures})"));
                    Ok(admitted(None))
                }
                Some(OvercommitChoice::LowerLimit) => match after.max_failure_capacity {
                    Some(limit) => {
                        admission.note.set(format!(
                            "overcommit=lower-limit: {action}; host failure limit of {cluster_name} lowered from {} \
                             to {limit} ({figures})",
                            before.failure_limit
                        ));
                        Ok(admitted(Some(LimitChange { cluster_id: cluster, limit })))
                    }
                    None => {
                        admission.note.set(format!(
                            "refused: overcommit=lower-limit cannot keep a plan for {action} on {cluster_name} \
                             ({figures})"
                        ));
                        Err(AppError::conflict(
                            "limit-cannot-help",
                            format!(
                                "overcommit=lower-limit: after {action} not every protected VM of {cluster_name} could \
                                 run even with no host failure, so no failure limit keeps a plan; cancel, or pass \
                                 overcommit=proceed"
                            ),
                        ))
                    }
                },
            }
        }
    }
}

/// An override that was passed but not needed is noted too, so the audit log never suggests one was used.
fn note_unneeded_choice(admission: &Admission, action: &str) {
    if let Some(choice) = admission.choice {
        admission.note.set(format!("overcommit={} not needed: {action} keeps the failover plan", choice.as_str()));
    }
}

fn conflict(
    cluster_id: ClusterId,
    cluster_name: String,
    action: String,
    before: &PlanReport,
    after: &PlanReport,
    may_override: bool,
) -> OvercommitConflict {
    let consequence = match after.max_failure_capacity {
        Some(capacity) => format!("would leave {cluster_name} able to survive {capacity} host failure(s)"),
        None => format!(
            "would leave {cluster_name} without a failover plan: not every protected VM could run even with no \
             host failure"
        ),
    };
    let choices = match (may_override, after.max_failure_capacity) {
        (false, _) => "Only a pool operator or pool admin may proceed; cancel, or ask one of them.".to_owned(),
        (true, Some(capacity)) => format!(
            "Cancel, proceed anyway with ?overcommit=proceed (the cluster becomes overcommitted), or lower the \
             failure limit to {capacity} and proceed with ?overcommit=lower-limit."
        ),
        (true, None) => {
            "Cancel, or proceed anyway with ?overcommit=proceed (the cluster becomes overcommitted).".to_owned()
        }
    };
    OvercommitConflict {
        code: "would-overcommit".into(),
        message: format!(
            "{action} {consequence}; its failover plan covers {} (host failure limit {}). {choices}",
            before.plan_exists_for, before.failure_limit
        ),
        cluster_id,
        cluster_name,
        action,
        capacity_before: before.max_failure_capacity,
        capacity_after: after.max_failure_capacity,
        limit: before.failure_limit,
        plan_exists_for: before.plan_exists_for,
        lower_limit_to: after.max_failure_capacity,
        may_override,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(capacity: Option<u32>, limit: u32) -> PlanReport {
        PlanReport {
            max_failure_capacity: capacity,
            failure_limit: limit,
            plan_exists_for: capacity.map_or(0, |capacity| capacity.min(limit)),
            overcommitted: capacity.is_none_or(|capacity| capacity < limit),
            method: "exact".into(),
            unprotectable: vec![],
            reason: None,
        }
    }

    /// (capacity before, capacity after, limit) -> judgement.
    fn check(before: Option<u32>, after: Option<u32>, limit: u32, expected: Judgement) {
        let judged = judge(&report(before, limit), &report(after, limit));
        assert_eq!(judged, expected, "capacity {before:?} -> {after:?} with limit {limit}");
    }

    #[test]
    fn an_action_breaks_the_plan_only_below_what_it_covers_now() {
        use Judgement::*;
        check(Some(2), Some(1), 1, Keeps);
        check(Some(2), Some(2), 2, Keeps);
        check(Some(1), Some(0), 1, Breaks);
        check(Some(3), Some(1), 2, Breaks);
        check(Some(1), None, 1, Breaks);
        // Limit 0 promises nothing but that protected VMs run today.
        check(Some(1), Some(0), 0, Keeps);
        check(Some(1), None, 0, Breaks);
        // Already overcommitted: not blocked further.
        check(Some(0), Some(0), 1, AlreadyOvercommitted);
        check(None, None, 1, AlreadyOvercommitted);
        check(Some(1), Some(0), 2, AlreadyOvercommitted);
        // Rising capacity never breaks anything.
        check(Some(1), Some(3), 1, Keeps);
    }

    #[test]
    fn only_pool_operators_and_up_may_override() {
        for role in [Role::VmOperator, Role::ReadOnly] {
            let error = Admission::new(Some(OvercommitChoice::Proceed), role, AuditNote::default()).unwrap_err();
            assert!(
                matches!(&error, AppError::Forbidden(message) if message.contains("overcommit=proceed")),
                "{error}"
            );
            assert!(Admission::new(None, role, AuditNote::default()).is_ok(), "without a choice anyone may ask");
        }
        for role in [Role::PoolOperator, Role::PoolAdmin] {
            assert!(Admission::new(Some(OvercommitChoice::LowerLimit), role, AuditNote::default()).is_ok());
        }
    }

    #[test]
    fn the_conflict_names_the_capacities_limit_and_choices() {
        let body = conflict(
            ClusterId::new_random(),
            "c1".into(),
            "start VM \"x\"".into(),
            &report(Some(1), 1),
            &report(Some(0), 1),
            true,
        );
        assert_eq!(
            (body.capacity_before, body.capacity_after, body.limit, body.lower_limit_to),
            (Some(1), Some(0), 1, Some(0))
        );
        assert!(
            body.message.contains("able to survive 0 host failure(s)") && body.message.contains("limit 1"),
            "{}",
            body.message
        );
        assert!(body.message.contains("overcommit=lower-limit"));
        let body =
            conflict(ClusterId::new_random(), "c1".into(), "x".into(), &report(Some(1), 1), &report(None, 1), false);
        assert_eq!(body.lower_limit_to, None);
        assert!(body.message.contains("Only a pool operator"), "{}", body.message);
    }
}
