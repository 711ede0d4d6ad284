//! The few statistics the verdicts rest on, written out so a reviewer can
//! check them against a textbook: means and variances, Student's t
//! distribution (through the regularized incomplete beta function),
//! Welch's two-sample t, and the Holm and Benjamini-Hochberg corrections.
//! `docs/statistics.md` says how they are used.

/// The mean of `values` (NaN when empty).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The unbiased sample variance (n - 1 in the denominator); 0 for fewer
/// than two values.
pub fn variance(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64
}

/// The median of `values` (sorted in place; NaN when empty).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients: relative error
/// below 1e-15 over the range used here).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1-x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularized incomplete beta function I_x(a, b), by its continued
/// fraction (modified Lentz), using the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
/// where the fraction converges faster. Small results keep their relative
/// accuracy, which the far tail of a t distribution needs.
pub fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=500 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// P(T > t) for Student's t with `df` degrees of freedom (any real
/// df > 0, as Welch's approximation gives).
pub fn t_upper_tail(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t == f64::INFINITY {
        return 0.0;
    }
    if t == f64::NEG_INFINITY {
        return 1.0;
    }
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { tail } else { 1.0 - tail }
}

/// The t value with upper tail `p` (0 < p < 1): the 1 - p quantile of
/// Student's t with `df` degrees of freedom, by bisection on
/// [`t_upper_tail`] (monotone), to a relative 1e-12.
pub fn t_quantile_upper(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p > 0.5 {
        return -t_quantile_upper(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_upper_tail(hi, df) > p {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if t_upper_tail(mid, df) > p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Welch's two-sample comparison of `new` against `base`: the difference
/// of means, its standard error and the Welch-Satterthwaite degrees of
/// freedom. Both sides need at least two values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// mean(new) - mean(base).
    pub difference: f64,
    /// sqrt(var(base)/n_base + var(new)/n_new).
    pub standard_error: f64,
    /// Welch-Satterthwaite degrees of freedom (n_base + n_new - 2 when
    /// both sides have no spread at all).
    pub df: f64,
}

impl Welch {
    /// The comparison, or `None` when a side has fewer than two values.
    pub fn of(base: &[f64], new: &[f64]) -> Option<Welch> {
        if base.len() < 2 || new.len() < 2 {
            return None;
        }
        let (nb, nn) = (base.len() as f64, new.len() as f64);
        let (vb, vn) = (variance(base) / nb, variance(new) / nn);
        let se2 = vb + vn;
        let df = if se2 > 0.0 { se2 * se2 / (vb * vb / (nb - 1.0) + vn * vn / (nn - 1.0)) } else { nb + nn - 2.0 };
        Some(Welch { difference: mean(new) - mean(base), standard_error: se2.sqrt(), df })
    }

    /// One-sided p-value of "the difference is at most `bound`" (small
    /// when the difference is confidently above it).
    pub fn p_above(&self, bound: f64) -> f64 {
        if self.standard_error > 0.0 {
            t_upper_tail((self.difference - bound) / self.standard_error, self.df)
        } else if self.difference > bound {
            0.0
        } else {
            1.0
        }
    }

    /// One-sided p-value of "the difference is at least `-bound`".
    pub fn p_below(&self, bound: f64) -> f64 {
        Welch { difference: -self.difference, ..*self }.p_above(bound)
    }

    /// The two-sided `1 - alpha` confidence interval of the difference.
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        let half = self.quantile(alpha / 2.0) * self.standard_error;
        (self.difference - half, self.difference + half)
    }

    /// The t value with upper tail `p` at this comparison's df.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.standard_error > 0.0 { t_quantile_upper(p, self.df) } else { 0.0 }
    }
}

/// The `1 - alpha` confidence interval of the mean of `values` (Student's
/// t with n - 1 degrees of freedom), or `None` for fewer than two values.
pub fn mean_interval(values: &[f64], alpha: f64) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let half = t_quantile_upper(alpha / 2.0, n - 1.0) * (variance(values) / n).sqrt();
    let m = mean(values);
    Some((m - half, m + half))
}

/// The multiple-comparison correction of a family of p-values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    /// Holm-Bonferroni: controls the family-wise error rate.
    Holm,
    /// Benjamini-Hochberg: controls the false discovery rate.
    BenjaminiHochberg,
}

impl Correction {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Correction::Holm => "Holm",
            Correction::BenjaminiHochberg => "Benjamini-Hochberg",
        }
    }
}

/// Adjusted p-values: compare each with alpha.
pub fn correct(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![1.0; m];
    match correction {
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::BenjaminiHochberg => {
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((p[i] * m as f64 / (rank + 1) as f64).min(1.0));
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn holm_and_bh_adjust_as_published() {
        let p = [0.01, 0.04, 0.03, 0.005];
        let holm = correct(&p, Correction::Holm);
        assert_eq!(holm, vec![0.03, 0.06, 0.06, 0.02]);
        let bh = correct(&p, Correction::BenjaminiHochberg);
        let want = [0.02, 0.04, 0.04, 0.02];
        for (a, b) in bh.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{bh:?}");
        }
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!(ln_gamma(1.0).abs() < 1e-13 && ln_gamma(2.0).abs() < 1e-13, "{} {}", ln_gamma(1.0), ln_gamma(2.0));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-14));
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13));
        assert!(close(ln_gamma(101.0), (1..=100).map(|i| f64::from(i).ln()).sum(), 1e-13));
    }

    /// Reference values from mpmath 1.3 at 30 digits
    /// (`mpmath.betainc(df/2, 1/2, 0, df/(df+t*t), regularized=True)/2` for
    /// tails, and `findroot` on it for quantiles); the first ones are the
    /// familiar table values 12.706, 4.303, 2.571, 2.228, 1.960.
    #[test]
    fn student_t_matches_reference_values() {
        let quantiles = [
            (0.025, 1.0, 12.706_204_736_174_7),
            (0.025, 2.0, 4.302_652_729_749_46),
            (0.025, 5.0, 2.570_581_835_636_31),
            (0.025, 10.0, 2.228_138_851_986_27),
            (0.025, 1e6, 1.959_966_356_814_107),
            (0.005, 4.0, 4.604_094_871_349_99),
            (0.0005, 6.0, 5.958_816_178_818_1),
            (0.05 / 200.0, 6.0, 6.788_339_990_341_349),
            (0.025, 3.4, 2.980_773_502_558_622),
        ];
        for (p, df, want) in quantiles {
            let got = t_quantile_upper(p, df);
            assert!(close(got, want, 1e-9), "t({p}, {df}) = {got}, want {want}");
            assert!(close(t_upper_tail(want, df), p, 1e-9), "tail({want}, {df})");
        }
        assert!(close(t_upper_tail(20.0, 3.0), 1.366_016_251_236_56e-4, 1e-8), "{}", t_upper_tail(20.0, 3.0));
        assert!(close(t_upper_tail(50.0, 10.0), 1.237_155_164_651_34e-13, 1e-7), "{}", t_upper_tail(50.0, 10.0));
        assert_eq!(t_upper_tail(0.0, 7.0), 0.5);
        assert!(close(t_upper_tail(-2.0, 5.0), 1.0 - t_upper_tail(2.0, 5.0), 1e-14));
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // base mean 2, var 1 (n 3); new mean 5, var 4 (n 3).
        let w = Welch::of(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0]).unwrap();
        assert!(close(w.difference, 3.0, 1e-15));
        assert!(close(w.standard_error, (1.0f64 / 3.0 + 4.0 / 3.0).sqrt(), 1e-15));
        // (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = (25/9) / (17/18) = 50/17.
        assert!(close(w.df, 50.0 / 17.0, 1e-14), "{}", w.df);
        let (lo, hi) = w.interval(0.05);
        assert!(lo < 3.0 && hi > 3.0 && close(hi - 3.0, 3.0 - lo, 1e-12));
        // t = 3 / sqrt(5/3) = 2.3238 at 50/17 df (mpmath).
        assert!(close(w.p_above(0.0), 0.052_239_443_342_360_9, 1e-9), "{}", w.p_above(0.0));
        assert!(close(w.p_above(3.0), 0.5, 1e-12));
        assert!(close(w.p_below(0.0), 1.0 - 0.052_239_443_342_360_9, 1e-9));
        assert!(Welch::of(&[1.0], &[1.0, 2.0]).is_none());
        // No spread: the sign decides.
        let flat = Welch::of(&[1.0, 1.0], &[2.0, 2.0]).unwrap();
        assert_eq!((flat.p_above(0.5), flat.p_above(1.5)), (0.0, 1.0));
        assert_eq!(flat.interval(0.05), (1.0, 1.0));
    }

    #[test]
    fn means_and_medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
        assert_eq!(variance(&[1.0]), 0.0);
        let (lo, hi) = mean_interval(&[1.0, 2.0, 3.0], 0.05).unwrap();
        assert!(close(hi - 2.0, 4.302_652_729_749_46 / 3f64.sqrt(), 1e-9), "{lo} {hi}");
    }
}
