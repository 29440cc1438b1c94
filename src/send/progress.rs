//! Progress on stderr: an indicatif bar when stderr is a terminal, otherwise a short line every few
//! seconds (CI logs and redirected output stay readable). Both show the sent / failed / unknown
//! counts, the rate and the ETA; under one message a second a rate reads `0/s`, so the time to
//! the next message is shown instead, ticking down on the bar between outcomes.
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::results::Tally;

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Instant,
    /// The outcomes so far.
    pub(super) tally: Tally,
    /// What the bar's `{pace}` reads at every redraw, not only when an outcome arrives.
    pace: Arc<Mutex<Throughput>>,
}

/// The requests so far: enough to say the rate, the time to the next one and the ETA.
#[derive(Debug, Clone, Copy)]
struct Throughput {
    /// Rows that got a request's outcome (sent, failed, unknown); skipped rows take no time.
    requests: u64,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    left: u64,
}

impl Throughput {
    fn text(&self, now: Instant) -> String {
        let span = match (self.first_at, self.last_at) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        pace_text(
            self.requests,
            span,
            self.last_at.map(|t| now.saturating_duration_since(t)),
            self.left,
        )
    }
}

const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub(super) fn new(total: u64) -> Progress {
        let started = Instant::now();
        let pace = Arc::new(Mutex::new(Throughput {
            requests: 0,
            first_at: None,
            last_at: None,
            left: total,
        }));
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(8));
            let shared = Arc::clone(&pace);
            let pace_key = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let text = shared.lock().map(|p| p.text(Instant::now()));
                let _ = w.write_str(&text.unwrap_or_default());
            };
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} · {pace}")
                    .expect("valid template")
                    .with_key("pace", pace_key)
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            // Redraws between outcomes, so that `next in 4s` counts down at slow rates.
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            bar,
            total,
            started,
            last_line: started,
            tally: Tally::default(),
            pace,
        }
    }

    pub(super) fn done(&self) -> u64 {
        self.tally.rows()
    }

    fn counts(&self) -> String {
        format!(
            "sent {} failed {} unknown {}",
            self.tally.sent, self.tally.failed, self.tally.unknown
        )
    }

    /// Takes the counts in; a new request outcome restarts the countdown to the next one.
    fn record(&self) -> Throughput {
        let now = Instant::now();
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let requests = self.tally.sent + self.tally.failed + self.tally.unknown;
        if requests != pace.requests {
            pace.requests = requests;
            pace.first_at.get_or_insert(now);
            pace.last_at = Some(now);
        }
        pace.left = self.total.saturating_sub(self.done());
        *pace
    }

    pub(super) fn update(&mut self) {
        let pace = self.record();
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done());
                bar.set_message(self.counts());
            }
            None => {
                if self.last_line.elapsed() >= LINE_EVERY {
                    self.last_line = Instant::now();
                    crate::say!(
                        "progress: {}/{} rows, {}, {}",
                        self.done(),
                        self.total,
                        self.counts(),
                        pace.text(Instant::now())
                    );
                }
            }
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The rate and ETA for people: `42/s · ETA 3m 10s`; under one a second, when the next
/// message is due: `next in 4s · ETA 2m`. The pace is the one achieved between the first answer
/// and the last (429 pauses included), since that is what the rest of the run will take too;
/// `span` is that time, over `requests` answers.
fn pace_text(requests: u64, span: Duration, since_last: Option<Duration>, left: u64) -> String {
    if left == 0 {
        return "done".to_string();
    }
    let since_last = since_last.unwrap_or_default().as_secs_f64();
    // Answers come in small groups: under a second of them says little about the pace.
    let measured = span.as_secs_f64();
    if requests < 2 || measured < 1.0 {
        return if requests == 0 {
            "waiting for the first answer".to_string()
        } else {
            format!("measuring the pace · last answer {} ago", clock(since_last))
        };
    }
    let rate = (requests - 1) as f64 / measured;
    let eta = |seconds: f64| format!("ETA {}", clock(seconds));
    if rate >= 1.0 {
        let shown = if rate < 10.0 {
            format!("{rate:.1}/s")
        } else {
            format!("{rate:.0}/s")
        };
        return format!("{shown} · {}", eta(left as f64 / rate));
    }
    let interval = 1.0 / rate;
    let next = (interval - since_last).max(0.0);
    let next_text = if next < 0.5 {
        "next any moment".to_string()
    } else {
        format!("next in {}", clock(next))
    };
    format!(
        "{next_text} · {}",
        eta(next + (left.saturating_sub(1)) as f64 * interval)
    )
}

/// Whole seconds as `45s`, `3m 05s`, `2h 10m`.
fn clock(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn fast_runs_show_the_rate_and_the_eta() {
        // 501 answers 10 s apart from first to last, 1,000 rows left: 50/s, 20 s to go.
        assert_eq!(
            pace_text(501, secs(10.0), Some(secs(0.01)), 1000),
            "50/s · ETA 20s"
        );
        assert_eq!(
            pace_text(31, secs(10.0), Some(secs(0.1)), 300),
            "3.0/s · ETA 1m 40s"
        );
    }

    #[test]
    fn slow_runs_show_the_time_to_the_next_message_not_zero_a_second() {
        // One message every 10 s (6/min); the last one 3 s ago: the next in 7 s, then 4 more.
        let text = pace_text(7, secs(60.0), Some(secs(3.0)), 5);
        assert_eq!(text, "next in 7s · ETA 47s");
        assert!(!text.contains("/s"));
        // One every 2 minutes.
        assert_eq!(
            pace_text(3, secs(240.0), Some(secs(20.0)), 2),
            "next in 1m 40s · ETA 3m 40s"
        );
        // Overdue (a 429 pause, say): no negative countdown.
        assert_eq!(
            pace_text(7, secs(60.0), Some(secs(30.0)), 5),
            "next any moment · ETA 40s"
        );
    }

    #[test]
    fn before_the_pace_is_known_it_says_so() {
        assert_eq!(
            pace_text(0, secs(0.0), None, 10),
            "waiting for the first answer"
        );
        assert_eq!(
            pace_text(1, secs(0.0), Some(secs(4.2)), 9),
            "measuring the pace · last answer 4s ago"
        );
        // A first group of answers within a second is no measure of the pace yet.
        assert!(pace_text(8, secs(0.05), Some(secs(0.1)), 92).starts_with("measuring"));
        assert_eq!(pace_text(20, secs(5.0), None, 0), "done");
    }

    #[test]
    fn the_countdown_restarts_at_each_answer() {
        let mut p = Progress::new(10);
        p.tally.sent = 1;
        let first = p.record();
        p.tally.skipped = 1;
        let same = p.record();
        assert_eq!(
            first.last_at, same.last_at,
            "a skipped row is not a request"
        );
        assert_eq!(same.left, 8);
        std::thread::sleep(Duration::from_millis(2));
        p.tally.failed = 1;
        assert!(p.record().last_at > first.last_at);
    }
}
