//! `campaign sandbox`'s flags, and the fault flags `send --sandbox` and `resolve --sandbox` share.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::input::config::DEFAULT_RATE;
use crate::input::rate::{parse_probability, LatencySpec, Rate};
use crate::sandbox::{ConversationSettings, FaultSettings, SandboxConfig};

/// What `sandbox --help` ends with: examples, exit codes, the environment. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const HELP: &str = "\
Examples:
  campaign sandbox
  campaign sandbox --listen 127.0.0.1:4010 --fail-rate 0.1 --latency 20ms..200ms --log sent.jsonl
  campaign sandbox --fail-after-rate 0.05 --seed 7     5xx after the message was made
  campaign send welcome.toml --api-base http://127.0.0.1:4010     send to it

Exit codes:
  0  stopped with Ctrl-C
  2  invalid flags or files (contacts, admins), or the address is taken

Environment:
  SANDBOX_TOKEN  the one bearer token to accept (--token)";

/// How the sandbox misbehaves; shared by `sandbox` and `send --sandbox`.
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// The limit the sandbox enforces, in Intercom's 10-second windows (a rate as `send --rate`
    /// takes it, from 1/h to 1000000/s).
    #[arg(long, default_value = DEFAULT_RATE)]
    pub rate_limit: Rate,
    /// Delay before each answer: `50ms`, or a range `20ms..200ms`.
    #[arg(long)]
    pub latency: Option<LatencySpec>,
    /// Share of requests answered 500, 502 or 503 (no message created; the 503 shed with
    /// `Retry-After` and no body).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub fail_rate: f64,
    /// Share of requests whose message is created, then answered 500, 502, 503 or 504 (as by a
    /// gateway in front of a slow backend).
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_probability)]
    pub fail_after_rate: f64,
    /// Share of requests whose message is created but whose connection is closed unanswered.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub drop_rate: f64,
    /// Seed for the faults, so that a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Accept any body without validating it (for throughput benchmarks).
    #[arg(long)]
    pub no_validate: bool,
    /// Share of messages whose contact replies (a conversation `POST /conversations/search`
    /// finds, `campaign track` counts).
    #[arg(long, default_value = "0", value_parser = parse_probability, value_name = "P")]
    pub reply_share: f64,
    /// How long after its message a contact replies: `0s`, `2s`, `3d`.
    #[arg(long, default_value = "0s", value_parser = crate::input::rate::parse_duration, value_name = "DURATION")]
    pub reply_after: std::time::Duration,
    /// Share of e-mails dropped (their recipient gets a `drop_reason`; they get no reply).
    #[arg(long, default_value = "0", value_parser = parse_probability, value_name = "P")]
    pub drop_share: f64,
    /// Refuse (400) an `IN` or `NIN` filter with more values than this (Intercom documents no
    /// such limit; for rehearsing the splitting of refused searches).
    #[arg(long, hide = true, value_name = "N")]
    pub max_search_values: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    pub listen: SocketAddr,
    /// Accept only this bearer token (any token is accepted without it).
    #[arg(long, env = "SANDBOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CSV of known contacts (column `id`; optional `email`, `external_id`, `role` and the
    /// three subscription columns `POST /contacts/search` reads); other recipients get 404.
    #[arg(long)]
    pub contacts: Option<PathBuf>,
    /// A CSV of the workspace's admins (columns `id,name,email`, optional `away`) instead of the
    /// default set (394051 and 814860); a message from any other admin gets 404.
    #[arg(long, value_name = "FILE")]
    pub admins: Option<PathBuf>,
    /// Append one JSON line per accepted message to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub faults: FaultArgs,
}

impl FaultArgs {
    /// The sandbox's own settings, as the flags give them.
    pub fn settings(&self) -> FaultSettings {
        FaultSettings {
            rate_limit: self.rate_limit,
            latency: self.latency,
            fail_rate: self.fail_rate,
            fail_after_rate: self.fail_after_rate,
            drop_rate: self.drop_rate,
            seed: self.seed,
            no_validate: self.no_validate,
            conversations: Box::new(ConversationSettings {
                reply_share: self.reply_share,
                reply_after: self.reply_after,
                drop_share: self.drop_share,
                max_values: self.max_search_values,
                replay: Vec::new(),
            }),
        }
    }
}

impl SandboxArgs {
    /// What `campaign sandbox` starts, and where it listens. Without a contacts file, a search
    /// finds a user for every e-mail or external id it names.
    pub fn settings(self) -> (SandboxConfig, SocketAddr) {
        let config = SandboxConfig {
            token: self.token,
            faults: self.faults.settings(),
            invent_contacts: self.contacts.is_none(),
            contacts: self.contacts,
            missing: Vec::new(),
            admins: self.admins,
            log: self.log,
        };
        (config, self.listen)
    }
}
