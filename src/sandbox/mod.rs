//! `campaign sandbox`: a local Intercom-compatible server for `POST /messages` (and `GET /admins`)
//! that validates requests against the OpenAPI description and misbehaves on demand.
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::{FaultArgs, SandboxArgs};

/// Everything a sandbox needs to start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Accept only this bearer token; `None` accepts any non-empty token.
    pub token: Option<String>,
    pub faults: FaultArgs,
    pub contacts: Option<PathBuf>,
    pub log: Option<PathBuf>,
}

/// A sandbox serving in the background of this process.
pub struct RunningSandbox {
    pub addr: SocketAddr,
}

impl RunningSandbox {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes the log, and returns once the server is down.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        todo!()
    }
}

/// Starts a sandbox on `listen` (port 0 picks a free one) and returns at once.
pub async fn start(_config: SandboxConfig, _listen: SocketAddr) -> anyhow::Result<RunningSandbox> {
    todo!()
}

/// The `campaign sandbox` command: prints the address, serves until Ctrl-C.
pub async fn serve_forever(_args: SandboxArgs) -> anyhow::Result<()> {
    todo!()
}
