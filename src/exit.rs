//! How a command ended, and the exit code that says it. Commands return an [`Outcome`] or a
//! [`Failure`]; [`code`] is the one place either becomes a code (the README's "Exit codes"
//! table, a contract users' scripts read), and `main.rs` the one caller that exits with it, but
//! for the second Ctrl-C, which exits at once through [`now`].

/// How a command that ran to its end ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every row sent; for `check` and `preview`, nothing wrong; for the others, done as asked.
    Done,
    /// Rows left `failed` or `unknown` (this run's or an earlier one's); a test send that did not
    /// go; `track --settle` that left rows `unknown`.
    RowsLeft,
    /// The run stopped early and can be resumed: `--limit`, `--canary`, a stall, 401 or 403, too
    /// many failures.
    Stopped,
    /// The confirmation was declined at the terminal: nothing was sent.
    Declined,
    /// Interrupted by Ctrl-C (or SIGTERM), and the run ended cleanly.
    Interrupted,
}

/// Why a command ended in an error, by whether requests may have left.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Invalid input or usage, found before the first request: nothing was sent.
    #[error(transparent)]
    Invalid(#[from] anyhow::Error),
    /// Problems in the input, each already said where it was found (a report of rows and
    /// templates, with its summary): nothing was sent.
    #[error("the input has problems (said above)")]
    Reported,
    /// Intercom (or the sandbox) could not be reached, or refused or failed a request, before
    /// any message was sent (`GET /admins`, a search): nothing was sent.
    #[error(transparent)]
    Api(anyhow::Error),
    /// Requests may have left: the run stopped early and can be resumed.
    #[error("the run stopped; {} records what was sent, and --resume continues it", results.display())]
    Stopped {
        /// The results file that records what was sent.
        results: std::path::PathBuf,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// How a command ended: the value [`code`] reads.
pub type Ended = Result<Outcome, Failure>;

/// The exit code of a command's end: the README's "Exit codes" table, row by row.
pub fn code(ended: &Ended) -> u8 {
    match ended {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::RowsLeft) => 1,
        Err(Failure::Invalid(_) | Failure::Reported | Failure::Api(_)) => 2,
        Ok(Outcome::Stopped) | Err(Failure::Stopped { .. }) => 3,
        Ok(Outcome::Declined) => 4,
        Ok(Outcome::Interrupted) => 130,
    }
}

/// Ends the process at once with `outcome`'s code, without unwinding: for the second Ctrl-C,
/// which must not wait for the requests in flight.
pub fn now(outcome: Outcome) -> ! {
    std::process::exit(i32::from(code(&Ok(outcome))))
}

/// Ends the process at once, with `error` said and the code of a run stopped early, for a
/// file-system error where no caller could act on one: reading back the temporary file that holds
/// what is known of each row. Nothing is lost: the results file and its journal record every
/// request that left, as after a kill, and `--resume` continues.
pub fn lost(error: &anyhow::Error) -> ! {
    crate::say!("error: {error:#}; stopped at once: the results file and its journal record what was sent, and `--resume` continues");
    std::process::exit(i32::from(code(&Ok(Outcome::Stopped))))
}

impl Failure {
    /// Says the failure on stderr, with its causes; a [`Failure::Reported`] was said already.
    pub fn say(self) {
        match self {
            Failure::Reported => {}
            Failure::Invalid(e) | Failure::Api(e) => crate::say!("error: {e:#}"),
            stopped @ Failure::Stopped { .. } => {
                crate::say!("error: {:#}", anyhow::Error::new(stopped))
            }
        }
    }

    /// Intercom could not be reached, or refused or failed a request, before anything was sent.
    pub(crate) fn api(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Api(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_says_its_causes_and_every_end_has_its_documented_code() {
        let cause = anyhow::anyhow!("disk full").context("cannot write the journal");
        let stopped = Failure::Stopped {
            results: "c.results.csv".into(),
            cause: cause.into(),
        };
        assert_eq!(
            format!("{:#}", anyhow::Error::new(stopped)),
            "the run stopped; c.results.csv records what was sent, and --resume continues it: cannot write the journal: disk full"
        );
        let invalid = Failure::from(anyhow::anyhow!("no such file").context("c.toml"));
        assert_eq!(format!("{invalid:#}"), "c.toml: no such file");
        // The README's "Exit codes" table.
        let stopped = Failure::Stopped {
            results: "r.csv".into(),
            cause: "x".into(),
        };
        for (ended, expected) in [
            (Ok(Outcome::Done), 0),
            (Ok(Outcome::RowsLeft), 1),
            (Err(invalid), 2),
            (Err(Failure::Reported), 2),
            (Err(Failure::api(anyhow::anyhow!("refused"))), 2),
            (Ok(Outcome::Stopped), 3),
            (Err(stopped), 3),
            (Ok(Outcome::Declined), 4),
            (Ok(Outcome::Interrupted), 130),
        ] {
            assert_eq!(code(&ended), expected, "{ended:?}");
        }
    }
}
