//! Shared pieces of wirebench's `cargo bench` targets (in `benches/`).
//!
//! - `codecs`: encode, decode to owned, and access in place, per format and
//!   workload (criterion).
//! - `rpc`: one round trip per transport and format (criterion).
//! - `interface`: the codec interface against direct library calls, as a
//!   ratio.
//!
//! The speed targets of the transports and the harness are printed by
//! `harness/benches/targets.rs`, which needs the `wirebench` binary.
//!
//! The ratio benches take criterion's flags too: `--test` runs them once,
//! as `cargo bench -- --test` does in CI.

use std::time::{Duration, Instant};

/// Whether the bench was started in test mode (`cargo bench -- --test`).
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// Whether `--quick` was given.
pub fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// Median of `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// Times `a` and `b` in alternating rounds of `batch` calls each and
/// returns the median nanoseconds per call of each. Alternating cancels
/// slow drift of the machine (frequency, other load) between the two.
pub fn interleaved(rounds: usize, batch: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut ta, mut tb) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        start.elapsed().as_nanos() as f64 / batch as f64
    };
    for round in 0..rounds {
        // Alternate which goes first, too.
        if round % 2 == 0 {
            ta.push(time(&mut a));
            tb.push(time(&mut b));
        } else {
            tb.push(time(&mut b));
            ta.push(time(&mut a));
        }
    }
    (median(&mut ta), median(&mut tb))
}

/// How many calls of `f` take about `target`.
pub fn batch_for(target: Duration, mut f: impl FnMut()) -> usize {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < target / 10 && n < 1_000_000 {
        f();
        n += 1;
    }
    (n * 10).max(1)
}
