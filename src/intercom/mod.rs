//! Talking to Intercom: one `POST /messages` attempt and what its answer says, the workspace's
//! admins, and the token struck from everything the server or the transport says back.

pub mod admins;
pub mod answer;
pub mod client;
pub mod redact;
