//! Progress on stderr: an indicatif bar when stderr is a terminal, otherwise a short line every few
//! seconds (CI logs and redirected output stay readable).
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Instant,
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
    pub skipped: u64,
}

const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(8));
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            bar
        });
        Progress {
            bar,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
            sent: 0,
            failed: 0,
            unknown: 0,
            skipped: 0,
        }
    }

    pub fn done(&self) -> u64 {
        self.sent + self.failed + self.unknown + self.skipped
    }

    fn counts(&self) -> String {
        format!(
            "sent {} failed {} unknown {}",
            self.sent, self.failed, self.unknown
        )
    }

    fn rate(&self) -> f64 {
        self.done() as f64 / self.started.elapsed().as_secs_f64().max(0.001)
    }

    pub fn update(&mut self) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done());
                bar.set_message(format!("{} · {:.0}/s", self.counts(), self.rate()));
            }
            None => {
                if self.last_line.elapsed() >= LINE_EVERY {
                    self.last_line = Instant::now();
                    eprintln!(
                        "progress: {}/{} rows, {}, {:.0}/s",
                        self.done(),
                        self.total,
                        self.counts(),
                        self.rate()
                    );
                }
            }
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn println(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
