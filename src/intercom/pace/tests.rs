//! The limiter's, the gate's and the in-flight limit's tests: rates kept over every span, groups,
//! pauses, and the auto limit under queueing. The limiter and the gate are the real ones, driven
//! on tokio's paused clock: a test that did not advance time would see no request go.
use std::sync::atomic::Ordering;

use super::limiter::{plan, spans, LATE_NS, MOST_COST};
use super::*;

#[test]
fn the_gate_counts_the_time_it_was_paused_not_the_time_it_was_told() {
    paused(async {
        let gate = Gate::default();
        gate.pause_until(Instant::now() + Duration::from_secs(3600));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(gate.paused(), Duration::from_secs(5));
        assert!(!gate.is_open());
        let waited = Instant::now();
        gate.wait().await;
        assert_eq!(waited.elapsed(), Duration::from_secs(3595));
        assert!(gate.is_open());
        assert_eq!(gate.paused(), Duration::from_secs(3600));
    })
}

#[test]
fn auto_follows_littles_law_above_what_the_limiter_lets_go_at_once() {
    assert_eq!(InFlight::target(166.0, 0.1, 9), 25 + 10);
    assert_eq!(InFlight::target(166.0, 0.3, 9), 75 + 10);
    assert_eq!(InFlight::target(1.0, 0.001, 2), 4);
    assert_eq!(InFlight::target(1e6, 10.0, 2), AUTO_MAX);
    // A server answering at once: the limit is still above a group, so the limiter paces.
    let lim = Limiter::new("10000/min".parse().unwrap());
    let group = lim.plan().group as usize;
    assert!(lim.at_once() >= group, "{} < {group}", lim.at_once());
    assert!(InFlight::target(166.7, 0.0005, lim.at_once() + 1) > group + 1);
}

fn auto(rate: &str) -> InFlight {
    let rate: Rate = rate.parse().unwrap();
    let limiter = Limiter::new(rate);
    InFlight::new(
        Concurrency::Auto,
        rate,
        limiter.at_once(),
        super::lead_for(rate, &limiter),
    )
}

#[test]
fn a_lead_ends_on_a_later_turns_deadline_so_one_timer_serves_both() {
    for (rate, groups) in [
        ("166/s", 50),
        ("10000/min", 8),
        ("1000/s", 100),
        ("50/s", 15),
    ] {
        let rate: Rate = rate.parse().unwrap();
        let limiter = Limiter::new(rate);
        let lead = super::lead_for(rate, &limiter);
        let spacing = limiter.period() * limiter.group();
        assert_eq!(lead, spacing * groups, "{rate:?}");
        assert!(lead >= super::LEAD && lead < super::LEAD + spacing);
        // The groups' turn times, on paused time, taken as the dispatcher does (one waited
        // for, the rest of its group at once): a message whose turn came at one of them leaves
        // a lead later, at the very deadline a later group's turn waits for.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let turns: Vec<tokio::time::Instant> = rt.block_on(async {
            let mut turns = Vec::new();
            for _ in 0..400 {
                turns.push(limiter.take().await);
                while limiter.try_take() {}
            }
            turns
        });
        let deadlines: std::collections::HashSet<_> = turns.iter().copied().collect();
        let late = turns[turns.len() / 2..]
            .iter()
            .filter(|&&t| t + lead <= *turns.last().unwrap() && !deadlines.contains(&(t + lead)))
            .count();
        assert_eq!(late, 0, "{rate:?}: leads that end off a turn's deadline");
    }
    // Slow rates keep the plain lead (one group's spacing is most of it); fast ones have none.
    for rate in ["1/min", "12/min", "3/s"] {
        let rate: Rate = rate.parse().unwrap();
        assert_eq!(super::lead_for(rate, &Limiter::new(rate)), super::LEAD);
    }
    let fast: Rate = "2000/s".parse().unwrap();
    assert_eq!(super::lead_for(fast, &Limiter::new(fast)), Duration::ZERO);
}

#[test]
fn auto_starts_small_and_follows_a_slow_server() {
    let f = auto("1000/s");
    assert_eq!(f.size(), 64, "not 302 before any latency is known");
    // A server at 100-300 ms, spread out: the mean is planned for in full.
    for i in 0..200u64 {
        f.record_latency(Duration::from_millis(100 + (i * 37) % 200));
    }
    f.adjust();
    let mean = f.latency_us.load(Ordering::Relaxed) as f64 / 1e6;
    // Room for twice the lead too: messages wait it out between their turn and their leaving.
    let limiter = Limiter::new("1000/s".parse().unwrap());
    let lead = 2.0 * super::lead_for("1000/s".parse().unwrap(), &limiter).as_secs_f64();
    assert_eq!(f.size(), InFlight::target(1000.0, mean + lead, f.floor));
    // The wire holds requests sent and not answered: the latency alone sizes it, so that the
    // places a lead needs never pile requests on a server that slows down.
    assert_eq!(f.wire_size(), InFlight::target(1000.0, mean, f.floor));
    assert!(f.wire_size() < f.size());
    assert!(f.size() > 250, "{}", f.size());
}

#[test]
fn queueing_it_causes_itself_does_not_grow_auto() {
    // A fast server (1 ms) and a rate above what it takes: the requests queue, and latency
    // rises to 40 ms; the plan stays at 4 times the server's own latency.
    let f = auto("40000/s");
    for _ in 0..50 {
        f.record_latency(Duration::from_millis(1));
    }
    f.adjust();
    for _ in 0..20 {
        for _ in 0..100 {
            f.record_latency(Duration::from_millis(40));
        }
        f.adjust();
    }
    assert_eq!(f.size(), InFlight::target(40000.0, 0.004, f.floor));
    assert!(f.size() < 400, "{}", f.size());
}

// The limiter below is the real one, driven on tokio's paused clock: sleeps end at once, at
// their deadline (on the millisecond after, as the real timer fires).

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f)
}

/// A dispatcher as the send pipeline's is: wait for the limiter, take whatever else it allows
/// at once, then idle for `idle()` before the next round. Returns when each request went (in
/// nanoseconds from the start) during `run`.
fn dispatch(rate: &str, run: Duration, mut idle: impl FnMut() -> Duration) -> Vec<u64> {
    paused(async {
        let lim = Limiter::new(rate.parse().unwrap());
        let start = tokio::time::Instant::now();
        let at = || (tokio::time::Instant::now() - start).as_nanos() as u64;
        let mut times = Vec::new();
        loop {
            lim.take().await;
            if at() >= run.as_nanos() as u64 {
                return times;
            }
            times.push(at());
            while lim.try_take() {
                times.push(at());
            }
            let pause = idle();
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    })
}

/// The most requests in any half-open span of `span_ns`.
fn busiest(times: &[u64], span_ns: u64) -> u64 {
    let (mut most, mut first) = (0, 0);
    for (i, t) in times.iter().enumerate() {
        while times[first] + span_ns <= *t {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most as u64
}

const SEC: u64 = 1_000_000_000;

#[test]
fn every_rate_keeps_its_unit_and_ten_seconds_within_share_and_its_long_run_rate() {
    // (rate, its unit in seconds, the unit's share, a 10-second span's share)
    for (rate, unit, unit_share, ten_share) in [
        ("1/h", 3600, 1, 1),
        ("50/hour", 3600, 50, 1),
        ("1/min", 60, 1, 1),
        ("2/min", 60, 2, 1),
        ("7/min", 60, 7, 2),
        ("12/min", 60, 12, 2),
        ("30/min", 60, 30, 5),
        ("1000/min", 60, 1000, 167),
        ("10000/min", 60, 10000, 1666),
        ("1/s", 1, 1, 10),
        ("3/s", 1, 3, 30),
        ("50/s", 1, 50, 500),
        ("166/s", 1, 166, 1660),
        ("1000/s", 1, 1000, 10_000),
        ("1666/10s", 10, 1666, 1666),
        ("10000/s", 1, 10_000, 100_000),
    ] {
        let run = Duration::from_secs(if unit >= 60 { 60 * unit } else { 40 });
        let times = dispatch(rate, run, || Duration::ZERO);
        // Time was advanced: the last request left near the run's end.
        assert!(
            *times.last().unwrap() + 2 * unit * SEC >= run.as_nanos() as u64,
            "{rate}"
        );
        let in_unit = busiest(&times, unit * SEC);
        assert!(
            in_unit <= unit_share,
            "{rate}: {in_unit} in {unit} s, share {unit_share}"
        );
        let in_ten = busiest(&times, 10 * SEC);
        assert!(
            in_ten <= ten_share,
            "{rate}: {in_ten} in 10 s, share {ten_share}"
        );
        // As the server may see them: each up to the plan's jitter late.
        let jitter = plan(rate.parse().unwrap()).jitter_ns;
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut arrived: Vec<u64> = times
            .iter()
            .map(|t| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                t + (seed >> 33) % (jitter + 1)
            })
            .collect();
        arrived.sort_unstable();
        let (in_unit, in_ten) = (busiest(&arrived, unit * SEC), busiest(&arrived, 10 * SEC));
        assert!(
            in_unit <= unit_share && in_ten <= ten_share,
            "{rate}, up to {jitter} ns late: {in_unit} in {unit} s, {in_ten} in 10 s"
        );
        let expected = rate.parse::<Rate>().unwrap().per_second() * run.as_secs_f64();
        let n = times.len() as f64;
        // The figures BENCHMARKS.md quotes (`--nocapture`).
        eprintln!(
            "{rate}: {n} in {run:?} ({:.4} of the rate), busiest {unit} s {in_unit} (share {unit_share}), busiest 10 s {in_ten} (share {ten_share})",
            n / expected
        );
        assert!(
            n >= (expected * 0.99).min(expected - 1.0) && n <= expected + 8.0,
            "{rate}: {n} requests in {run:?}, expected {expected}"
        );
    }
}

#[test]
fn requests_leave_in_groups_where_the_spans_allow_it() {
    for (rate, group) in [
        ("10000/min", 7),
        ("1000/s", 3),
        ("10000/s", 8),
        // A second's share of 166 has room for a pair only at 0.991 of the rate: one at a time.
        ("166/s", 1),
        ("50/s", 1),
        ("30/min", 1),
    ] {
        assert_eq!(plan(rate.parse().unwrap()).group, group, "{rate}");
        let times = dispatch(rate, Duration::from_secs(30), || Duration::ZERO);
        let mut wakeups = times.clone();
        wakeups.dedup();
        // One wake-up per group, not per request.
        assert!(
            wakeups.len() <= times.len().div_ceil(group as usize),
            "{rate}: {} wake-ups for {} requests, groups of {group}",
            wakeups.len(),
            times.len()
        );
    }
}

#[test]
fn low_rates_allow_for_requests_that_reach_the_server_late() {
    for (rate, jitter_ms) in [
        ("12/min", 25),
        ("1/h", 25),
        ("30/min", 10),
        ("10000/min", 0),
        ("1000/s", 0),
    ] {
        let p = plan(rate.parse().unwrap());
        assert_eq!(p.jitter_ns, jitter_ms * 1_000_000, "{rate}: {p:?}");
    }
}

#[test]
fn at_low_rates_the_burst_is_one_request_and_the_second_waits_the_whole_unit() {
    for rate in ["1/h", "2/min", "7/min", "12/min"] {
        let p = plan(rate.parse().unwrap());
        assert_eq!(p.burst_cells / p.cells, 1, "{rate}: {p:?}");
    }
    paused(async {
        let lim = Limiter::new("1/h".parse().unwrap());
        let start = Instant::now();
        lim.take().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(!lim.try_take());
        lim.take().await;
        let spacing = start.elapsed();
        assert!(
            spacing >= Duration::from_secs(3600)
                && spacing <= Duration::from_secs(3600 * 1005 / 1000),
            "{spacing:?}"
        );
    })
}

/// A rate of `count` per `unit` seconds, any from 1/h to 1,000,000/s; small counts often.
fn any_rate() -> impl proptest::strategy::Strategy<Value = Rate> {
    use proptest::prelude::*;
    prop_oneof![Just(1u64), Just(10), Just(60), Just(3600)].prop_flat_map(|unit| {
        let most = crate::input::rate::MAX_PER_SECOND * unit;
        prop_oneof![1..=100u64, 1..=most].prop_map(move |count| Rate {
            count: count as u32,
            per: Duration::from_secs(unit),
        })
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

    /// The plan's arithmetic over the whole range: never faster than the rate, at least
    /// 99.4 % of it, a tolerance of at least `LATE` and a group, and GCRA's most in any span
    /// (`floor((L + jitter + tolerance) / period) + 1`) within the span's share.
    #[test]
    fn the_plan_keeps_every_rate_and_every_span_within_its_share(rate in any_rate()) {
        let p = plan(rate);
        let period = u128::from(p.period_ns);
        proptest::prop_assert!(p.group >= 1 && period >= 1 && p.cells >= 1);
        proptest::prop_assert_eq!(u128::from(p.cells) * u128::from(p.cell_ns), period);
        let (count, per) = (u128::from(rate.count), rate.per.as_nanos());
        proptest::prop_assert!(per <= period * count, "faster than {}: {:?}", rate, p);
        proptest::prop_assert!(p.cost(rate) <= MOST_COST, "{}: {:?} gives up {}", rate, p, p.cost(rate));
        let tolerance = u128::from(p.tolerance_ns());
        proptest::prop_assert!(tolerance + u128::from(p.cell_ns) > LATE_NS as u128 + u128::from(p.group - 1) * period);
        for (span, share) in spans(rate) {
            let most = (u128::from(span + p.jitter_ns) + tolerance) / period + 1;
            proptest::prop_assert!(
                most <= u128::from(share),
                "{}: {} in {} ns, share {}", rate, most, span, share
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// The real limiter under a dispatcher that waits, comes late and idles at random: no
    /// span of the rate's unit, nor any 10 seconds, holds more than its share.
    #[test]
    fn a_dispatcher_that_comes_and_goes_never_overfills_a_span(
        count in 1u32..=2000,
        unit in proptest::prelude::prop_oneof![
            proptest::strategy::Just(1u64),
            proptest::strategy::Just(10),
            proptest::strategy::Just(60),
            proptest::strategy::Just(3600),
        ],
        idles in proptest::collection::vec(0u64..3_000, 1..16),
    ) {
        let rate = Rate { count, per: Duration::from_secs(unit) };
        let text = rate.to_string();
        // Idle for up to 3 periods, cycling through the drawn pattern; many zeros.
        let period = unit * SEC / u64::from(count);
        let mut i = 0;
        let idle = || {
            i += 1;
            let x = idles[i % idles.len()];
            Duration::from_nanos(if x < 1_000 { 0 } else { period * (x - 1_000) / 1_000 })
        };
        let run = Duration::from_secs((3 * unit).max(30));
        let times = dispatch(&text, run, idle);
        for (span, share) in spans(rate) {
            let most = busiest(&times, span);
            proptest::prop_assert!(most <= share, "{}: {} in {} ns, share {}", text, most, span, share);
        }
    }
}

#[test]
fn a_low_rate_lets_requests_go_a_period_apart() {
    // 30/min: the first at once, then one every 2 s, never two together (on the paused clock,
    // so what is asserted is the limiter's decision, not a loaded machine's timing).
    let times = dispatch("30/min", Duration::from_millis(6_500), || Duration::ZERO);
    assert_eq!(times.len(), 4, "{times:?}");
    assert_eq!(times[0], 0);
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= 2 * SEC, "{times:?}");
    }
}

/// The send pipeline with its journal: turns taken as the limiter allows, each batch of turns
/// then held up by a sync of `syncs()` (the turns that came meanwhile join the next batch), and
/// every request then through the door limiter if `door` (as [`Pace::send`] does). Returns
/// when each request left, in nanoseconds from the start.
fn leave_after_syncs(
    rate: &str,
    run: Duration,
    mut syncs: impl FnMut() -> Duration,
    door: bool,
) -> Vec<u64> {
    use std::sync::{Arc, Mutex};
    paused(async move {
        let rate: Rate = rate.parse().unwrap();
        let turns = Limiter::new(rate);
        let leaving = Arc::new(Limiter::new(rate));
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let turner = async move {
            loop {
                turns.take().await;
                if start.elapsed() >= run {
                    return;
                }
                let mut n = 1;
                while turns.try_take() {
                    n += 1;
                }
                tx.send(n).unwrap();
            }
        };
        let mut sent = tokio::task::JoinSet::new();
        let recorder = async {
            while let Some(mut n) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    n += more;
                }
                tokio::time::sleep(syncs()).await;
                for _ in 0..n {
                    let (leaving, times) = (Arc::clone(&leaving), Arc::clone(&times));
                    sent.spawn(async move {
                        if door {
                            leaving.take().await;
                        }
                        times
                            .lock()
                            .unwrap()
                            .push(start.elapsed().as_nanos() as u64);
                    });
                }
            }
        };
        tokio::join!(turner, recorder);
        sent.join_all().await;
        let mut times = std::mem::take(&mut *times.lock().unwrap());
        times.sort_unstable();
        times
    })
}

#[test]
fn requests_held_up_by_a_slow_sync_still_leave_within_every_span() {
    // Syncs of 1 ms, now and then one of 150-450 ms, as a loaded disk does. The requests a
    // stall held up leave a period apart after it: the run falls behind by the longest stall,
    // once, and keeps its rate after that.
    for rate in ["10000/min", "1000/s", "12/min", "200/s"] {
        let r: Rate = rate.parse().unwrap();
        let run = Duration::from_secs(if r.per_second() < 1.0 { 600 } else { 30 });
        let syncs = |n: &mut u64| {
            *n += 1;
            Duration::from_millis(if *n % 61 == 30 {
                150 + (*n * 53) % 300
            } else {
                1
            })
        };
        let mut n = 0;
        let times = leave_after_syncs(rate, run, || syncs(&mut n), true);
        for (span, share) in spans(r) {
            let most = busiest(&times, span);
            assert!(most <= share, "{rate}: {most} in {span} ns, share {share}");
        }
        // Without the door, the turns that came during a slow sync leave together behind it.
        let mut n = 0;
        let crowded = leave_after_syncs(rate, run, || syncs(&mut n), false);
        let over = spans(r)
            .into_iter()
            .any(|(span, share)| busiest(&crowded, span) > share);
        // The same requests leave, the last at most the longest stall later (and two periods
        // and the timer's milliseconds).
        assert_eq!(times.len(), crowded.len(), "{rate}");
        let period = r.per.as_nanos() as u64 / u64::from(r.count);
        let (last, last_crowded) = (*times.last().unwrap(), *crowded.last().unwrap());
        assert!(
            last <= last_crowded + 470_000_000 + 2 * period,
            "{rate}: the last left at {last} ns, not {last_crowded} ns"
        );
        assert!(
            over || r.per_second() < 1.0,
            "{rate}: no span overfilled without the door"
        );
    }
}

/// A run's pace at `rate` and `concurrency`, its client pointed at a closed port.
fn pace_of(rate: &str, concurrency: Concurrency) -> Pace {
    let token = crate::intercom::client::Token::new("test-token".into()).unwrap();
    let client = Client::new(
        "http://127.0.0.1:9",
        &token,
        "2.16",
        Duration::from_secs(1),
        1,
    )
    .unwrap();
    Pace::new(
        client,
        rate.parse().unwrap(),
        concurrency,
        tokio_util::sync::CancellationToken::new(),
    )
}

/// Messages waiting out their lead hold places, but they have not reached the server: the
/// window's remaining calls are compared with the requests sent and not answered. Counting
/// the places paused every sender near the end of each window at 10000/min (1,617 of 1,666
/// in every aligned 10 s).
#[test]
fn the_servers_remaining_calls_are_compared_with_requests_sent_not_places_held() {
    paused(async {
        let pace = pace_of("10000/min", Concurrency::Fixed(64));
        // Fifty messages waiting out their lead.
        let mut held = Vec::new();
        for _ in 0..50 {
            held.push(pace.place().await.unwrap());
        }
        let answer = |remaining: u64| Attempt::Sent {
            message_id: "1".into(),
            status: 200,
            rate: crate::intercom::client::RateInfo {
                limit: Some(1666),
                remaining: Some(remaining),
                reset: Some(u64::MAX / 2),
            },
        };
        pace.send(async { answer(10) }).await;
        assert!(
            pace.gate.is_open(),
            "paused with 10 calls left and one request sent"
        );
        pace.send(async { answer(1) }).await;
        assert!(
            !pace.gate.is_open(),
            "the window's last call: every sender waits"
        );
        drop(held);
    });
}

/// Without a lead, a fixed concurrency of 4 has 8 places and 4 requests on the wire; requests
/// beyond the 4 wait for one to end, and more than a quarter of the wire waiting is a backlog
/// (the recorder gathers rows behind it) until a request ends and `wire_drained` says so. With
/// a lead (166/s), the places are the concurrency's 4.
#[test]
fn without_a_lead_a_fixed_concurrency_syncs_as_many_again_as_it_lets_out() {
    paused(async {
        let pace = |rate: &str| Arc::new(pace_of(rate, Concurrency::Fixed(4)));
        let places = |pace: &Pace| {
            let held: Vec<Place> = std::iter::from_fn(|| pace.try_place()).take(100).collect();
            held.len()
        };
        assert_eq!(places(&pace("166/s")), 4);
        let pace = pace("1000000/s");
        assert!(pace.lead().is_zero());
        assert_eq!(places(&pace), 8);

        let answer = || Attempt::NotReached("held".into());
        let mut ends = Vec::new();
        for _ in 0..6 {
            let (end, ended) = tokio::sync::oneshot::channel::<()>();
            ends.push(end);
            let pace = Arc::clone(&pace);
            tokio::spawn(async move {
                pace.send(async move {
                    let _ = ended.await;
                    answer()
                })
                .await
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(pace.sending.load(Ordering::Relaxed), 4, "the wire holds 4");
        assert!(
            pace.wire_backlog(),
            "2 wait for the wire, more than a quarter of it"
        );
        // As the recorder waits: told of the queue running low (perhaps earlier, by a request
        // that went to the wire before), it looks again.
        let drained = tokio::spawn({
            let pace = Arc::clone(&pace);
            async move {
                while pace.wire_backlog() {
                    pace.wire_drained().await;
                }
            }
        });
        tokio::task::yield_now().await;
        assert!(!drained.is_finished());
        drop(ends.remove(0));
        tokio::time::timeout(Duration::from_secs(1), drained)
            .await
            .expect("told when the wire's queue runs low")
            .unwrap();
        assert!(!pace.wire_backlog(), "1 waits: a quarter of the wire");
    });
}
