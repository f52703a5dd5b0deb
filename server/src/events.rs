//! Live changes for the console: one broadcast channel that `GET /api/v1/events` streams as SSE.

use crate::db::Db;
use api::v1::Event;
use api::{HostId, VmId};
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        EventBus { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    pub fn publish(&self, event: Event) {
        // No subscriber is fine: nobody is watching.
        let _ = self.sender.send(event);
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
