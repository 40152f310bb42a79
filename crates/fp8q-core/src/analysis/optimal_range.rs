//! The range `α` that minimizes the analytical MSE, and the reference's sampled line search.
//!
//! `α ↦ MSE(α)` is cheap, piecewise smooth (kinks where grid boundaries cross the support's
//! bounds or point masses) and, for formats with a wide dynamic range, nearly periodic in
//! `log2 α` with many almost equal local minima. [`minimize_log_scan`] therefore scans
//! `log2 α` densely, keeps the best few local minima of the scan as brackets, and refines each
//! with Brent's method (parabolic interpolation with golden-section safeguards), returning the
//! best point seen.

use super::distributions::Distribution;
use super::expected_error::expected_mse;
use super::{grid_for, ideal_grid_for, quantizer_for, AnalysisError};
use crate::format::Format;
use rayon::prelude::*;

/// Tuning of the optimal-range search.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SearchOptions {
    /// Scan points per octave of `α`.
    pub points_per_octave: usize,
    /// How many of the scan's best local minima are refined.
    pub refine_candidates: usize,
    /// Relative tolerance on `α` of the refinement.
    pub rel_tol: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            points_per_octave: 32,
            refine_candidates: 6,
            rel_tol: 1e-9,
        }
    }
}

/// A minimum found by a search.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Optimum {
    /// The argument.
    pub alpha: f64,
    /// The function value there.
    pub value: f64,
    /// Number of function evaluations used.
    pub evaluations: usize,
}

/// The interval of `α` the search scans for a distribution: from `10⁻³·min(B, rms)` to `2B`, with
/// `B = max(|min|, |max|)` the clip bound and `rms = √E[X²]`. Beyond `B` there is no clipping,
/// so one octave above it covers the (near-)periodic behaviour of FP formats.
pub fn search_interval(dist: &Distribution) -> (f64, f64) {
    let b = dist.abs_bound();
    let rms = dist.second_moment().sqrt();
    (1e-3 * b.min(rms), 2.0 * b)
}

/// Minimize `f` over `[lo, hi]` (`0 < lo < hi`). A coarse scan of `log2 α` (8 points per octave)
/// finds the promising regions — coarse points within a factor [`PROMISING`] of the best; those
/// are scanned at `points_per_octave`, and the best local minima of the fine scan are refined
/// with Brent's method. Never returns a point worse than the best scanned one.
pub fn minimize_log_scan<F: Fn(f64) -> f64 + Sync>(f: F, lo: f64, hi: f64, opts: &SearchOptions) -> Optimum {
    assert!(lo > 0.0 && hi > lo, "invalid search interval [{lo}, {hi}]");
    let g = |u: f64| sanitize(f(u.exp2()));
    let (u0, u1) = (lo.log2(), hi.log2());
    let fine_per_octave = opts.points_per_octave.max(2) as f64;
    let coarse_per_octave = fine_per_octave.min(COARSE_PER_OCTAVE);
    let nc = (((u1 - u0) * coarse_per_octave).ceil() as usize).max(4);
    let hc = (u1 - u0) / nc as f64;
    let coarse: Vec<(f64, f64)> = (0..=nc)
        .into_par_iter()
        .map(|k| {
            let u = u0 + hc * k as f64;
            (u, g(u))
        })
        .collect();
    let best_coarse = coarse.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    // fine scan around every promising coarse point (± one coarse step)
    let sub = ((hc * fine_per_octave).ceil() as usize).max(1);
    let mut fine_us: Vec<f64> = Vec::new();
    for (k, &(_, v)) in coarse.iter().enumerate() {
        if v <= best_coarse * PROMISING || !best_coarse.is_finite() {
            let from = k.saturating_sub(1) * sub;
            let to = ((k + 1).min(nc)) * sub;
            fine_us.extend((from..=to).map(|j| u0 + hc * j as f64 / sub as f64));
        }
    }
    fine_us.sort_by(f64::total_cmp);
    fine_us.dedup();
    let scan: Vec<(f64, f64)> = fine_us.par_iter().map(|&u| (u, g(u))).collect();
    let mut evaluations = coarse.len() + scan.len();
    let step = hc / sub as f64;

    // local minima of the fine scan (neighbours must be adjacent scan points), best first
    let neighbour = |a: usize, b: usize| (scan[a].0 - scan[b].0).abs() <= 1.5 * step;
    let mut minima: Vec<usize> = (0..scan.len())
        .filter(|&k| {
            let left_ok = k == 0 || !neighbour(k - 1, k) || scan[k].1 < scan[k - 1].1;
            let right_ok = k + 1 == scan.len() || !neighbour(k, k + 1) || scan[k].1 <= scan[k + 1].1;
            left_ok && right_ok
        })
        .collect();
    minima.sort_by(|&a, &b| scan[a].1.total_cmp(&scan[b].1));
    minima.truncate(opts.refine_candidates.max(1));

    let mut best = scan
        .iter()
        .chain(coarse.iter())
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("non-empty scan");
    let refined: Vec<(f64, f64, usize)> = minima
        .par_iter()
        .map(|&k| {
            let (u, v) = scan[k];
            let a = (u - step).max(u0);
            let b = (u + step).min(u1);
            brent(g, a, b, u, v, opts.rel_tol / std::f64::consts::LN_2)
        })
        .collect();
    for (u, v, evals) in refined {
        evaluations += evals;
        if v < best.1 {
            best = (u, v);
        }
    }
    Optimum {
        alpha: best.0.exp2(),
        value: best.1,
        evaluations,
    }
}

/// Points per octave of the coarse scan.
const COARSE_PER_OCTAVE: f64 = 8.0;
/// Coarse points whose MSE is within this factor of the best coarse MSE are scanned finely.
pub const PROMISING: f64 = 3.0;

fn sanitize(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v
    }
}

/// Brent's minimization on `[a, b]` starting from the interior point `x` with value `fx`;
/// absolute tolerance `tol` on the argument. Returns `(argmin, min, evaluations)`.
fn brent<F: Fn(f64) -> f64>(f: F, mut a: f64, mut b: f64, x0: f64, fx0: f64, tol: f64) -> (f64, f64, usize) {
    const GOLD: f64 = 0.381_966_011_250_105_1; // (3 - √5) / 2
    let (mut x, mut fx) = (x0, fx0);
    let (mut w, mut fw) = (x, fx);
    let (mut v, mut fv) = (x, fx);
    let mut d: f64 = 0.0;
    let mut e: f64 = 0.0;
    let mut evals = 0;
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        let tol1 = tol + 1e-15 * x.abs();
        let tol2 = 2.0 * tol1;
        if (x - m).abs() <= tol2 - 0.5 * (b - a) {
            break;
        }
        let mut golden = true;
        if e.abs() > tol1 {
            // parabola through (v, fv), (w, fw), (x, fx)
            let r = (x - w) * (fx - fv);
            let mut q = (x - v) * (fx - fw);
            let mut p = (x - v) * q - (x - w) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            let e_prev = e;
            if p.abs() < (0.5 * q * e_prev).abs() && p > q * (a - x) && p < q * (b - x) {
                e = d;
                d = p / q;
                let u = x + d;
                if u - a < tol2 || b - u < tol2 {
                    d = if x < m { tol1 } else { -tol1 };
                }
                golden = false;
            }
        }
        if golden {
            e = if x < m { b - x } else { a - x };
            d = GOLD * e;
        }
        let u = if d.abs() >= tol1 { x + d } else { x + tol1.copysign(d) };
        let fu = f(u);
        evals += 1;
        if fu <= fx {
            if u < x {
                b = x;
            } else {
                a = x;
            }
            (v, fv) = (w, fw);
            (w, fw) = (x, fx);
            (x, fx) = (u, fu);
        } else {
            if u < x {
                a = u;
            } else {
                b = u;
            }
            if fu <= fw || w == x {
                (v, fv) = (w, fw);
                (w, fw) = (u, fu);
            } else if fu <= fv || v == x || v == w {
                (v, fv) = (u, fu);
            }
        }
    }
    (x, fx, evals)
}

/// The `α` minimizing the analytical MSE of `format` for `dist` over [`search_interval`], on the
/// ideal grid ([`ideal_grid_for`]; `value` is the MSE there, which differs from the MSE on the
/// quantizer's `f32` INT grid by ~1e-8 relative).
pub fn optimal_maxval(dist: &Distribution, format: &Format, opts: &SearchOptions) -> Result<Optimum, AnalysisError> {
    let (lo, hi) = search_interval(dist);
    // fail early (with a clear message) if the format cannot be built at the interval's ends
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Err(AnalysisError::Invalid {
            what: "range",
            why: format!(
                "the search interval [{lo:e}, {hi:e}] of {dist} is degenerate (scale too small or too large for f64)"
            ),
        });
    }
    for a in [lo, hi] {
        grid_for(format, a).map_err(|e| AnalysisError::Invalid {
            what: "range",
            why: format!("{format} cannot be scaled to the search interval [{lo:e}, {hi:e}] of {dist}: {e}"),
        })?;
    }
    Ok(minimize_log_scan(
        |alpha| match ideal_grid_for(format, alpha) {
            Ok(g) => expected_mse(dist, &g),
            Err(_) => f64::INFINITY,
        },
        lo,
        hi,
        opts,
    ))
}

/// The reference's sampled line search (`line_search` in `docs/range-estimators.md`): `T = max|x| + 0.5`,
/// candidates `α_i = i·T/100` for `i = 1..=1000`, loss = sum of squared quantization errors of
/// the samples with the real quantizer for `[-α_i, α_i]`; returns the first minimizing `α_i`.
pub fn sampled_line_search(samples: &[f32], format: &Format) -> Result<Optimum, AnalysisError> {
    if samples.is_empty() {
        return Err(AnalysisError::Invalid {
            what: "samples",
            why: "the sampled line search needs at least one sample".into(),
        });
    }
    let absmax = samples.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let h = 10.0 * (absmax + 0.5) / 1000.0;
    // candidates are independent: evaluate them in parallel, each over all samples
    let losses: Vec<f64> = (1..=1000usize)
        .into_par_iter()
        .map(|i| {
            let alpha = i as f64 * h;
            match quantizer_for(format, alpha) {
                Ok(q) => q.sum_sq_error(samples),
                Err(_) => f64::INFINITY,
            }
        })
        .collect();
    let mut best = 0;
    for (i, &l) in losses.iter().enumerate() {
        if l < losses[best] {
            best = i;
        }
    }
    Ok(Optimum {
        alpha: (best + 1) as f64 * h,
        value: losses[best] / samples.len() as f64,
        evaluations: 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brent_finds_smooth_minimum() {
        let o = minimize_log_scan(|a| (a.ln() - 0.3).powi(2) + 1.0, 0.01, 100.0, &SearchOptions::default());
        assert!((o.alpha - 0.3f64.exp()).abs() < 1e-7, "{o:?}");
        assert!((o.value - 1.0).abs() < 1e-14);
    }

    #[test]
    fn picks_the_global_of_several_minima() {
        // periodic in log2 with a slow trend: the best minimum is the right-most one
        let f = |a: f64| {
            let u = a.log2();
            (2.0 * std::f64::consts::PI * u).cos() - 1e-3 * u
        };
        let o = minimize_log_scan(f, 1.0, 16.0, &SearchOptions::default());
        // minima at u = k + 1/2 (+ tiny shift): best is u ≈ 3.5
        assert!((o.alpha.log2() - 3.5).abs() < 1e-3, "{o:?}");
    }

    #[test]
    fn kinked_function() {
        let f = |a: f64| (a - 2.0).abs() + 0.1 * (a - 2.0).max(0.0);
        let o = minimize_log_scan(f, 0.1, 10.0, &SearchOptions::default());
        assert!((o.alpha - 2.0).abs() < 1e-8, "{o:?}");
    }
}
