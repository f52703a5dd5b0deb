//! Wire types shared by the console, the management server and the host agents.
//!
//! This crate is serde-only on purpose: the console compiles it to wasm32, so it must never pull in
//! tokio, axum or sqlx. `v1` is the console <-> server REST/SSE contract; `agent` is the agent <-> server
//! protocol. Both are versioned so that old peers get a clear error instead of a misread message.

pub mod agent;
pub mod ids;
pub mod v1;

pub use ids::*;
