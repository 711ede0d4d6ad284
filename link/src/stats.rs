//! The little statistics the validation and the tests share: percentiles
//! and binomial intervals.

/// The two-sided 99% quantile of the standard normal distribution.
pub const Z99: f64 = 2.575_829_303_548_901;

/// The range of counts of a Binomial(`n`, `p`) that a two-sided test at `z`
/// accepts: `n p ± (z √(n p (1 − p)) + ½)`, the normal approximation with a
/// continuity correction, clamped to `0..=n`.
pub fn binomial_acceptance(n: u64, p: f64, z: f64) -> (u64, u64) {
    let mean = n as f64 * p;
    let half = z * (mean * (1.0 - p)).sqrt() + 0.5;
    let lo = (mean - half).ceil().max(0.0) as u64;
    let hi = ((mean + half).floor() as u64).min(n);
    (lo, hi)
}

/// The Wilson score interval of a proportion: `k` successes in `n` trials,
/// at `z`. `(0, 1)` when `n` is 0.
pub fn wilson_interval(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The `q` quantile (0 to 1) of `sorted` by the nearest-rank method; `None`
/// when empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptance_region_of_one_percent() {
        // 100000 × 1% = 1000, σ = 31.46, so ± 81.5 at 99%.
        assert_eq!(binomial_acceptance(100_000, 0.01, Z99), (919, 1081));
        assert_eq!(binomial_acceptance(100, 0.0, Z99), (0, 0));
        assert_eq!(binomial_acceptance(100, 1.0, Z99), (100, 100));
    }

    #[test]
    fn wilson_contains_the_estimate_and_narrows_with_n() {
        let (lo, hi) = wilson_interval(10, 1_000, Z99);
        assert!(lo < 0.01 && hi > 0.01 && lo > 0.0);
        let (lo2, hi2) = wilson_interval(100, 10_000, Z99);
        assert!(hi2 - lo2 < hi - lo);
        let (lo0, hi0) = wilson_interval(0, 1_000, Z99);
        assert_eq!(lo0, 0.0);
        assert!(hi0 > 0.0 && hi0 < 0.01);
        assert_eq!(wilson_interval(0, 0, Z99), (0.0, 1.0));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile::<u32>(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7));
    }
}
