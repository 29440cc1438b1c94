//! Talking to Intercom: one `POST /messages` attempt and what its answer says, the workspace's
//! admins, and the token struck from everything the server or the transport says back.

use std::time::Duration;

/// Intercom counts requests per 10-second window, not per minute: the limiter keeps every such
/// span within its share, and the sandbox enforces the limit the same way.
pub const WINDOW: Duration = Duration::from_secs(10);

pub mod admins;
pub mod answer;
pub mod client;
pub mod redact;
