//! `GET /api/v1/events`: live host and VM changes as server-sent events (event name `change`).

use super::extract::Auth;
use crate::app::permission::ViewInventory;
use crate::state::AppState;
use api::v1::Event;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

pub async fn stream(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let changes = BroadcastStream::new(state.events.subscribe()).map(|item| {
        // A subscriber that fell behind lost events: tell it to reload everything.
        let event = item.unwrap_or(Event::InventoryChanged);
        Ok(SseEvent::default().event("change").json_data(&event).unwrap_or_else(|_| SseEvent::default()))
    });
    let mut shutting_down = state.shutting_down.clone();
    let until_shutdown = async move {
        let _ = shutting_down.wait_for(|down| *down).await;
    };
    Sse::new(futures::StreamExt::take_until(changes, until_shutdown)).keep_alive(KeepAlive::default())
}
