//! Where a command's requests go: Intercom with the operator's token, or a sandbox started in
//! this process. `send`, `resolve`, `admins`, a test send and `track` share the options that say
//! which ([`Options`]: the token or its file, the API's base URL and version, `--sandbox` and its
//! files): the token is read in [`Options::token`] alone, [`Options::access`] resolves the rest
//! into an [`Access`], and [`Access::start`] (the one place a command starts a sandbox) makes it
//! the [`Target`] the requests go to.
//!
//! This module sits above [`crate::intercom`] and [`crate::sandbox`], so that neither needs the
//! other to reach a target.
use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::input::config;
use crate::input::files::{read_text, MAX_TOKEN_BYTES};
use crate::intercom::client::{Client, Token};
use crate::sandbox::{self, FaultSettings, RunningSandbox, SandboxConfig};

/// The options a command that talks to Intercom shares with the others, as values.
pub(crate) struct Options {
    /// `--token`, or `INTERCOM_TOKEN`.
    pub token: Option<String>,
    /// `--token-file`: wins over `token`.
    pub token_file: Option<PathBuf>,
    /// `--api-base`.
    pub base_url: Option<String>,
    /// `--intercom-version`.
    pub version: Option<String>,
    /// `--sandbox`, with its files and faults.
    pub sandbox: Option<SandboxOptions>,
    /// What the error for a missing token offers instead of one: each command names its own way
    /// to go on without a token.
    pub instead: &'static str,
}

/// `--sandbox`'s files and faults.
#[derive(Clone)]
pub(crate) struct SandboxOptions {
    /// Its contacts; without them a search finds a user for every key it names (but `missing`).
    pub contacts: Option<PathBuf>,
    pub missing: Vec<String>,
    /// Its admins; without them the default set.
    pub admins: Option<PathBuf>,
    /// Its log (a rehearsal's messages, read back by `track --sandbox`).
    pub log: Option<PathBuf>,
    pub faults: FaultSettings,
}

impl SandboxOptions {
    /// The sandbox these options describe, as a command starts it unless it says otherwise.
    pub fn config(&self) -> SandboxConfig {
        SandboxConfig {
            token: None,
            faults: self.faults.clone(),
            invent_contacts: self.contacts.is_none(),
            contacts: self.contacts.clone(),
            missing: self.missing.clone(),
            admins: self.admins.clone(),
            log: self.log.clone(),
        }
    }
}

/// The base URL and API version a command uses when no flag names them: its campaign file's, or
/// Intercom's defaults.
pub(crate) struct Defaults<'a> {
    pub base_url: &'a str,
    pub version: &'a str,
}

impl Defaults<'static> {
    /// Without a campaign file.
    pub const INTERCOM: Defaults<'static> = Defaults {
        base_url: config::DEFAULT_BASE_URL,
        version: config::DEFAULT_VERSION,
    };
}

/// The options resolved: the token, and where it is sent; nothing started yet.
#[derive(Clone)]
pub(crate) struct Access {
    pub token: Token,
    /// Intercom's base URL (checked); a sandbox's is known once it started.
    pub base_url: String,
    pub version: String,
    /// `Some`: the requests go to a sandbox started in this process.
    pub sandbox: Option<SandboxOptions>,
}

impl Options {
    /// The access token: with `--sandbox`, one made up for this run (the sandbox accepts only
    /// it); else `--token-file`, else `--token` or `INTERCOM_TOKEN`.
    pub fn token(&self) -> anyhow::Result<Token> {
        if self.sandbox.is_some() {
            return Token::new(random_token());
        }
        if let Some(path) = &self.token_file {
            let text = read_text(path, MAX_TOKEN_BYTES).context("cannot read the token file")?;
            return Token::new(text).with_context(|| format!("{}", path.display()));
        }
        match &self.token {
            Some(t) if !t.trim().is_empty() => Token::new(t.clone()),
            _ => bail!(
                "no access token: set INTERCOM_TOKEN (or pass --token-file FILE), or {}",
                self.instead
            ),
        }
    }

    /// The options resolved with `token` (from [`Options::token`]): a flag wins over `defaults`;
    /// Intercom's base URL is checked (a sandbox's is its own).
    pub fn access(self, token: Token, defaults: &Defaults<'_>) -> anyhow::Result<Access> {
        let base_url = self.base_url.unwrap_or_else(|| defaults.base_url.into());
        if self.sandbox.is_none() {
            config::check_base_url(&base_url)?;
        }
        Ok(Access {
            token,
            base_url,
            version: self.version.unwrap_or_else(|| defaults.version.into()),
            sandbox: self.sandbox,
        })
    }
}

impl Access {
    /// The target: Intercom as resolved, or a sandbox started on a free loopback port with the
    /// config `setup` makes of the options (it accepts only this access's token).
    pub async fn start(
        &self,
        setup: impl FnOnce(&SandboxOptions) -> SandboxConfig,
    ) -> anyhow::Result<Target> {
        let Some(options) = &self.sandbox else {
            return Ok(Target {
                base_url: self.base_url.clone(),
                version: self.version.clone(),
                token: self.token.clone(),
                sandbox: None,
            });
        };
        let config = SandboxConfig {
            token: Some(self.token.expose().to_string()),
            ..setup(options)
        };
        let running = sandbox::start(config, "127.0.0.1:0".parse()?).await?;
        Ok(Target {
            base_url: running.base_url(),
            version: self.version.clone(),
            token: self.token.clone(),
            sandbox: Some(running),
        })
    }
}

/// Where the requests go, ready: a URL with its version and token, and the sandbox behind it if
/// one was started (stopped by [`Target::close`]).
pub(crate) struct Target {
    pub base_url: String,
    pub version: String,
    pub token: Token,
    sandbox: Option<RunningSandbox>,
}

impl Target {
    /// A client for the target; `idle` connections kept at most.
    pub fn client(&self, timeout: std::time::Duration, idle: usize) -> anyhow::Result<Client> {
        Client::new(&self.base_url, &self.token, &self.version, timeout, idle)
    }

    /// Stops the sandbox, if one was started, once its log is complete.
    pub async fn close(self) -> anyhow::Result<()> {
        match self.sandbox {
            Some(running) => running.shutdown().await,
            None => Ok(()),
        }
    }
}

/// A rehearsal's token: the sandbox accepts only this run's.
fn random_token() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}
