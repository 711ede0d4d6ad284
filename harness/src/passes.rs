//! Replicates in time: `--passes N` runs the whole matrix N times, each
//! pass in its own seeded shuffled order, so the N measurements of a cell
//! are minutes apart and carry whatever the machine did in between. This
//! module orders the passes and folds a cell's passes into one cell.
//!
//! A folded cell keeps every pass apart where statistics need it (its
//! sub-window samples carry the pass as their group, and `passes` holds
//! each pass's own figures) and adds them up where a headline figure is
//! wanted: histograms add (HdrHistograms merge exactly), calls and
//! windows sum, per-call figures are weighted by calls.

use wirebench_formats::dataset::SplitMix64;
use wirebench_reports::histogram;
use wirebench_reports::model::{Cell, CellStatus, Latency, Metrics, PassFigures};

/// The cell order of pass `pass`: the plan's order for a single pass (so a
/// one-pass run reads as planned, baselines first), otherwise a shuffle
/// seeded by the run's seed and the pass, reproducible run to run.
pub fn order(cells: usize, seed: u64, pass: u32, passes: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cells).collect();
    if passes > 1 {
        let mut rng = SplitMix64::new(seed ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(u64::from(pass) + 1));
        // Fisher-Yates.
        for i in (1..cells).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// Marks one pass's cell: its samples belong to group `pass`, and its own
/// figures are kept for the folded cell.
pub fn tag(cell: &mut Cell, pass: u32, offset_s: f64) -> PassFigures {
    for sample in &mut cell.samples {
        sample.group = pass;
    }
    let m = cell.metrics.as_ref();
    PassFigures {
        pass,
        group: pass,
        offset_s,
        status: cell.status,
        error: cell.error.clone(),
        calls: m.map_or(0, |m| m.calls),
        duration_s: m.map_or(0.0, |m| m.duration_s),
        p50_ns: m.map_or(0, |m| m.latency.p50),
        p99_ns: m.map_or(0, |m| m.latency.p99),
        calls_per_sec: m.map_or(0.0, |m| m.calls_per_sec),
    }
}

/// Folds the passes of one cell so far (in pass order) into one cell.
pub fn fold(passes: &[(Cell, PassFigures)]) -> Option<Cell> {
    let (first, _) = passes.first()?;
    if passes.len() == 1 {
        return Some(first.clone());
    }
    let mut cell = first.clone();
    cell.passes = passes.iter().map(|(_, p)| p.clone()).collect();
    cell.samples = passes.iter().flat_map(|(c, _)| c.samples.iter().copied()).collect();
    if let Some((failed, f)) = passes.iter().find(|(c, _)| c.status == CellStatus::Failed) {
        cell.status = CellStatus::Failed;
        cell.error = Some(format!("pass {}: {}", f.pass + 1, failed.error.as_deref().unwrap_or("failed")));
    } else if passes.iter().all(|(c, _)| c.status == CellStatus::Unsupported) {
        cell.passes.clear();
        return Some(cell);
    }
    let measured: Vec<&Cell> = passes.iter().map(|(c, _)| c).filter(|c| c.metrics.is_some()).collect();
    cell.metrics = fold_metrics(&measured);
    cell.histogram = fold_histograms(measured.iter().map(|c| c.histogram.as_deref()));
    cell.histogram_uncorrected = fold_histograms(measured.iter().map(|c| c.histogram_uncorrected.as_deref()));
    cell.histogram_first_reply = fold_histograms(measured.iter().map(|c| c.histogram_first_reply.as_deref()));
    if let (Some(m), Some(h)) = (cell.metrics.as_mut(), cell.histogram.as_deref())
        && let Ok(h) = histogram::decode(h)
    {
        m.latency = latency(&h);
    }
    if let (Some(m), Some(h)) = (cell.metrics.as_mut(), cell.histogram_uncorrected.as_deref())
        && let Ok(h) = histogram::decode(h)
    {
        m.latency_uncorrected = Some(latency(&h));
    }
    crate::modes::fold(&mut cell, &measured);
    Some(cell)
}

/// The sum of the passes' histograms (all present and decodable, or none).
fn fold_histograms<'a>(encoded: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let mut sum: Option<hdrhistogram::Histogram<u64>> = None;
    for text in encoded {
        let h = histogram::decode(text?).ok()?;
        match &mut sum {
            None => sum = Some(h),
            Some(s) => s.add(&h).ok()?,
        }
    }
    histogram::encode(&sum?).ok()
}

/// Percentiles of a histogram, as a results file stores them.
pub fn latency(h: &hdrhistogram::Histogram<u64>) -> Latency {
    Latency {
        min: h.min(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        p9999: h.value_at_quantile(0.9999),
        max: h.max(),
        mean: h.mean(),
    }
}

/// Sums and call-weighted means over the passes' metrics; percentiles are
/// set from the summed histogram by the caller.
fn fold_metrics(cells: &[&Cell]) -> Option<Metrics> {
    let all: Vec<&Metrics> = cells.iter().filter_map(|c| c.metrics.as_ref()).collect();
    let first = *all.first()?;
    let calls: u64 = all.iter().map(|m| m.calls).sum();
    let secs: f64 = all.iter().map(|m| m.duration_s).sum();
    let weighted = |f: &dyn Fn(&Metrics) -> f64| {
        if calls == 0 { 0.0 } else { all.iter().map(|m| f(m) * m.calls as f64).sum::<f64>() / calls as f64 }
    };
    // A per-call figure some pass lacks is unknown for the whole cell.
    let weighted_opt = |f: &dyn Fn(&Metrics) -> Option<f64>| {
        if all.iter().all(|m| f(m).is_some()) { Some(weighted(&|m| f(m).unwrap_or(0.0))) } else { None }
    };
    let mut m = first.clone();
    m.calls = calls;
    m.duration_s = secs;
    m.calls_per_sec = if secs > 0.0 { calls as f64 / secs } else { 0.0 };
    m.mb_per_sec =
        if secs > 0.0 { calls as f64 * (first.request_bytes + first.reply_bytes) as f64 / secs / 1e6 } else { 0.0 };
    m.send_lag_p99_ns = all.iter().filter_map(|m| m.send_lag_p99_ns).max();
    m.wire_sent_per_call = weighted_opt(&|m| m.wire_sent_per_call);
    m.wire_received_per_call = weighted_opt(&|m| m.wire_received_per_call);
    m.client_user_us_per_call = weighted(&|m| m.client_user_us_per_call);
    m.client_system_us_per_call = weighted(&|m| m.client_system_us_per_call);
    m.server_user_us_per_call = weighted_opt(&|m| m.server_user_us_per_call);
    m.server_system_us_per_call = weighted_opt(&|m| m.server_system_us_per_call);
    m.broker_user_us_per_call = weighted_opt(&|m| m.broker_user_us_per_call);
    m.broker_system_us_per_call = weighted_opt(&|m| m.broker_system_us_per_call);
    m.errors = all.iter().map(|m| m.errors).sum();
    m.timeouts = all.iter().map(|m| m.timeouts).sum();
    m.wrong_replies = all.iter().map(|m| m.wrong_replies).sum();
    m.late_replies = all.iter().map(|m| m.late_replies).sum();
    m.overhead_p50 = None;
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirebench_reports::model::{Load, Sample};

    fn pass_cell(calls: u64, p50: u64, status: CellStatus) -> Cell {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for _ in 0..calls {
            h.record(p50).unwrap();
        }
        let metrics = Metrics {
            calls,
            duration_s: 0.1,
            calls_per_sec: calls as f64 / 0.1,
            client_user_us_per_call: 2.0,
            latency: latency(&h),
            ..Metrics::default()
        };
        Cell {
            key: "multiply/json/tcp/c1".into(),
            workload: "multiply".into(),
            workload_kind: "multiply".into(),
            size: None,
            format: "json".into(),
            transport: "tcp".into(),
            load: Load { model: "closed".into(), in_flight: 1, connections: 1, rate: None, clients: 1 },
            status,
            error: (status == CellStatus::Failed).then(|| "1 errors".to_owned()),
            baseline: None,
            raw_shape: None,
            metrics: Some(metrics),
            samples: vec![Sample { group: 0, calls, p50_ns: p50, p99_ns: p50, calls_per_sec: calls as f64 / 0.01 }],
            histogram: histogram::encode(&h).ok(),
            histogram_uncorrected: None,
            histogram_first_reply: None,
            passes: Vec::new(),
            link: None,
            clients: Vec::new(),
            mode: Default::default(),
        }
    }

    #[test]
    fn orders_are_permutations_and_differ_between_passes() {
        assert_eq!(order(5, 1, 0, 1), vec![0, 1, 2, 3, 4], "a single pass runs in plan order");
        let a = order(50, 7, 0, 3);
        let b = order(50, 7, 1, 3);
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(order(50, 7, 1, 3), b, "seeded: the same every run");
    }

    #[test]
    fn passes_fold_into_sums_and_keep_their_own_figures() {
        let mut passes = Vec::new();
        for (pass, (calls, p50)) in [(100u64, 10_000u64), (300, 20_000)].into_iter().enumerate() {
            let mut cell = pass_cell(calls, p50, CellStatus::Ok);
            let figures = tag(&mut cell, pass as u32, pass as f64 * 60.0);
            passes.push((cell, figures));
        }
        let cell = fold(&passes).unwrap();
        let m = cell.metrics.unwrap();
        assert_eq!(m.calls, 400);
        assert!((m.duration_s - 0.2).abs() < 1e-12);
        assert!((m.calls_per_sec - 2000.0).abs() < 1e-9);
        assert!((m.client_user_us_per_call - 2.0).abs() < 1e-12);
        // 300 of 400 calls took 20 us: the merged median is theirs.
        assert!((19_900..=20_100).contains(&m.latency.p50), "{}", m.latency.p50);
        assert_eq!(cell.passes.len(), 2);
        assert_eq!(cell.passes[1].p50_ns, passes[1].1.p50_ns);
        assert_eq!(cell.samples.iter().map(|s| s.group).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(cell.samples.iter().map(|s| s.calls).sum::<u64>(), m.calls);
    }

    #[test]
    fn one_failed_pass_fails_the_cell() {
        let mut passes = Vec::new();
        for (pass, status) in [CellStatus::Ok, CellStatus::Failed].into_iter().enumerate() {
            let mut cell = pass_cell(10, 5_000, status);
            let figures = tag(&mut cell, pass as u32, 0.0);
            passes.push((cell, figures));
        }
        let cell = fold(&passes).unwrap();
        assert_eq!(cell.status, CellStatus::Failed);
        assert_eq!(cell.error.as_deref(), Some("pass 2: 1 errors"));
    }
}
