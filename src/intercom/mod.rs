//! Talking to Intercom: one request and what its answer says, the pace every request keeps (one
//! limiter, a pause gate, the in-flight limit) and what an outcome means for a retry, the
//! workspace's admins, and the token struck from everything the server or the transport says
//! back. `send` and `resolve` both make their requests through these.

use std::time::Duration;

/// Intercom counts requests per 10-second window, not per minute: the limiter keeps every such
/// span within its share, and the sandbox enforces the limit the same way.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

pub mod admins;
pub mod answer;
pub(crate) mod backoff;
pub mod client;
pub(crate) mod pace;
pub mod redact;
