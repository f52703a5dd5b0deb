//! The leader lease: one row in the database says which management server runs the HA engine, in
//! which epoch, until when. A server renews its lease by compare-and-set well before it expires;
//! another takes over only once it has expired, with the epoch one higher. Every command to an agent
//! carries the epoch in force ([`crate::agents::AgentHub::raise_epoch`]), and the engine's own
//! commands carry its term's, so agents refuse commands from a deposed leader once the new one has
//! spoken to them; every database write of the engine re-checks the lease in its transaction
//! (`Db::ha_commit_step`), so a deposed leader writes nothing.
//!
//! Times come from each server's clock: servers sharing a database must keep their clocks within a
//! small fraction of [`LEASE_TTL`] (NTP does).

use crate::agents::{AgentHub, Leadership};
use crate::db::{Db, DbError, LeaseTerm, LeaseView};
use std::time::Duration;

/// How long a lease lasts without renewal: a crashed leader is replaced after at most this.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// A unique name for this server process in the lease.
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "parapet".into());
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &unique[..8])
}

/// Acquires and renews the lease for one server.
pub struct LeaseKeeper {
    db: Db,
    hub: AgentHub,
    holder: String,
    ttl: Duration,
    term: Option<LeaseTerm>,
}

impl LeaseKeeper {
    pub fn new(db: Db, hub: AgentHub, holder: String, ttl: Duration) -> Self {
        hub.leadership.lock().unwrap().me = holder.clone();
        LeaseKeeper { db, hub, holder, ttl, term: None }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The term this server holds, as of the last [`tick`](Self::tick).
    pub fn term(&self) -> Option<&LeaseTerm> {
        self.term.as_ref()
    }

    /// Acquire or renew the lease at `now_ms`. Answers the term while this server leads. The hub's
    /// epoch follows the lease's whoever holds it, so ordinary commands (a user's VM start on a
    /// follower) are never refused as stale. A database error ends leadership at once: a leader
    /// that cannot renew must assume it will be replaced.
    pub async fn tick(&mut self, now_ms: i64) -> Result<Option<LeaseTerm>, DbError> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let view = match self.db.lease_acquire(&self.holder, now_ms, ttl_ms).await {
            Ok(view) => view,
            Err(error) => {
                if self.term.take().is_some() {
                    tracing::warn!(holder = %self.holder, "cannot renew the leader lease; stepping down");
                }
                self.hub.leadership.lock().unwrap().leading = false;
                return Err(error);
            }
        };
        self.hub.raise_epoch(view.epoch());
        let term = match view {
            LeaseView::Leading(term) => {
                if self.term.as_ref().is_none_or(|previous| previous.epoch != term.epoch) {
                    tracing::info!(holder = %self.holder, epoch = term.epoch, "leading the HA engine");
                }
                *self.hub.leadership.lock().unwrap() = Leadership {
                    me: self.holder.clone(),
                    leading: true,
                    holder: term.holder.clone(),
                    epoch: term.epoch,
                    expires_at_ms: term.expires_at_ms,
                };
                Some(term)
            }
            LeaseView::Following { holder, epoch, expires_at_ms } => {
                if let Some(previous) = &self.term {
                    tracing::warn!(holder = %self.holder, epoch = previous.epoch, new_holder = %holder, new_epoch = epoch,
                        "lost the leader lease");
                }
                *self.hub.leadership.lock().unwrap() =
                    Leadership { me: self.holder.clone(), leading: false, holder, epoch, expires_at_ms };
                None
            }
        };
        self.term = term.clone();
        Ok(term)
    }

    /// Give the lease up (graceful shutdown), so another server takes over at once.
    pub async fn release(&mut self) {
        if let Some(term) = self.term.take() {
            match self.db.lease_release(&term).await {
                Ok(true) => tracing::info!(holder = %self.holder, epoch = term.epoch, "leader lease released"),
                Ok(false) => {}
                Err(error) => tracing::warn!(error = %crate::events::error_chain(&error), "cannot release the lease"),
            }
            self.hub.leadership.lock().unwrap().leading = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testdb::on_each_backend;

    #[tokio::test]
    async fn one_keeper_leads_the_other_follows_and_takes_over_with_a_higher_epoch() {
        on_each_backend(|db| async move {
            let hub_a = AgentHub::new(Duration::from_secs(5));
            let hub_b = AgentHub::new(Duration::from_secs(5));
            let mut a = LeaseKeeper::new(db.clone(), hub_a.clone(), "a".into(), Duration::from_secs(3));
            let mut b = LeaseKeeper::new(db.clone(), hub_b.clone(), "b".into(), Duration::from_secs(3));
            let term = a.tick(10_000).await.unwrap().expect("a leads");
            assert_eq!(b.tick(10_100).await.unwrap(), None);
            assert_eq!((hub_a.epoch(), hub_b.epoch()), (term.epoch, term.epoch), "both send the epoch in force");
            assert!(hub_a.leadership.lock().unwrap().leading && !hub_b.leadership.lock().unwrap().leading);
            // a renews in time; b keeps following.
            assert_eq!(a.tick(12_000).await.unwrap().map(|t| t.epoch), Some(term.epoch));
            assert_eq!(b.tick(14_500).await.unwrap(), None);
            // a stops renewing (crashed): once expired, b takes over with a higher epoch.
            let taken = b.tick(15_001).await.unwrap().expect("b takes over after expiry");
            assert_eq!(taken.epoch, term.epoch + 1);
            assert_eq!(a.tick(15_100).await.unwrap(), None, "a follows once it sees b");
            assert_eq!(hub_a.epoch(), taken.epoch);
            // A graceful release hands over at once.
            b.release().await;
            assert_eq!(a.tick(15_200).await.unwrap().map(|t| t.epoch), Some(taken.epoch + 1));
        })
        .await;
    }
}
