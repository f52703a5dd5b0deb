//! Live changes for the console: one broadcast channel that `GET /api/v1/events` streams as SSE.

use crate::db::Db;
use api::v1::Event;
use api::{HostId, VmId};
use std::sync::Arc;
use tokio::sync::{Notify, broadcast};

/// Every publication is also a change of the inventory, which may change a cluster's failover plan:
/// it wakes the capacity reconciler (`ha::capacity`). Heartbeat announcements and the reconciler's
/// own announcements use the `announce_*` methods, which do not, so they cannot keep it busy.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    inventory_changed: Arc<Notify>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        EventBus { sender, inventory_changed: Arc::default() }
    }

    /// Resolves after the next inventory change (at once if one happened since the last call):
    /// changes coalesce, so a burst wakes the waiter once.
    pub async fn inventory_changed(&self) {
        self.inventory_changed.notified().await;
    }

    /// Send to the console without counting as an inventory change.
    pub fn announce(&self, event: Event) {
        // No subscriber is fine: nobody is watching.
        let _ = self.sender.send(event);
    }

    /// Re-read a host and announce it without counting as an inventory change (heartbeat times).
    pub async fn announce_host(&self, db: &Db, id: HostId) {
        match db.host_fetch(id).await {
            Ok(Some(host)) => self.announce(Event::HostChanged { host }),
            Ok(None) => {}
            Err(error) => tracing::warn!(%id, error = %error_chain(&error), "cannot read a host to announce it"),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Announce a change of the inventory to the console and to the capacity reconciler.
    pub fn publish(&self, event: Event) {
        self.inventory_changed.notify_one();
        self.announce(event);
    }

    /// Re-read a host (with its allocation) and announce it.
    pub async fn publish_host(&self, db: &Db, id: HostId) {
        match db.host_fetch(id).await {
            Ok(Some(host)) => self.publish(Event::HostChanged { host }),
            Ok(None) => {}
            Err(error) => tracing::warn!(%id, error = %error_chain(&error), "cannot read a host to announce it"),
        }
    }

    pub async fn publish_vm(&self, db: &Db, id: VmId) {
        match db.vm_fetch(id).await {
            Ok(Some(vm)) => self.publish(Event::VmChanged { vm }),
            Ok(None) => {}
            Err(error) => tracing::warn!(%id, error = %error_chain(&error), "cannot read a VM to announce it"),
        }
    }
}

/// An error and all its sources on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
