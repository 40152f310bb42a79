//! Accuracy of the analytical integrals against closed forms and an independent brute-force
//! quadrature (narrow INT16 cells included), and the Monte-Carlo cross-check of the study.

use fp8q_core::analysis::distributions::Distribution;
use fp8q_core::analysis::expected_error::{error_terms, nearest_index};
use fp8q_core::analysis::study::{run_study, StudyConfig, VerifyOptions};
use fp8q_core::analysis::{grid_for, ideal_grid_for};

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// Independent reference: every half-cell cut into 16 equal pieces, 20-point Gauss–Legendre on
/// each (nodes from the Golub–Welsch-free Newton iteration below), plus the point masses.
fn brute_force(d: &Distribution, grid: &[f64]) -> (f64, f64) {
    let (nodes, weights) = gauss_legendre_20();
    let (lo, hi) = d.support();
    let mut cuts = vec![lo, hi];
    for w in grid.windows(2) {
        cuts.push(0.5 * (w[0] + w[1]));
    }
    cuts.extend_from_slice(grid);
    cuts.retain(|&c| c >= lo && c <= hi);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let (mut e2, mut exr) = (Neumaier::default(), Neumaier::default());
    for w in cuts.windows(2) {
        let q = grid[nearest_index(grid, 0.5 * (w[0] + w[1]))];
        let h = (w[1] - w[0]) / 16.0;
        for k in 0..16 {
            let a = w[0] + h * k as f64;
            for (t, wt) in nodes.iter().zip(&weights) {
                let x = a + 0.5 * h * (1.0 + t);
                let p = d.pdf(x) * wt * 0.5 * h;
                e2.add((x - q) * (x - q) * p);
                exr.add(x * (q - x) * p);
            }
        }
    }
    let (ml, mh) = d.point_masses();
    for (b, m) in [(lo, ml), (hi, mh)] {
        let r = grid[nearest_index(grid, b)] - b;
        e2.add(r * r * m);
        exr.add(b * r * m);
    }
    (e2.sum(), exr.sum())
}

/// Compensated (Kahan–Babuška–Neumaier) summation.
#[derive(Default)]
struct Neumaier {
    s: f64,
    c: f64,
}

impl Neumaier {
    fn add(&mut self, v: f64) {
        let t = self.s + v;
        if self.s.abs() >= v.abs() {
            self.c += (self.s - t) + v;
        } else {
            self.c += (v - t) + self.s;
        }
        self.s = t;
    }
    fn sum(&self) -> f64 {
        self.s + self.c
    }
}

fn gauss_legendre_20() -> (Vec<f64>, Vec<f64>) {
    let n = 20;
    let (mut xs, mut ws) = (vec![], vec![]);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..50 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 1..n {
                let p2 = ((2 * k + 1) as f64 * x * p1 - k as f64 * p0) / (k + 1) as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            x -= p1 / dp;
        }
        xs.push(x);
        ws.push(2.0 / ((1.0 - x * x) * dp * dp));
    }
    (xs, ws)
}

#[test]
fn int16_uniform_is_exact_despite_narrow_cells() {
    // uniform on [-1, 1], INT16 with α = 1: every cell is Δ wide (Δ = 1/32767) and the end cells are
    // halves, so E[R²] = Δ²/12 exactly
    let d = Distribution::uniform(-1.0, 1.0).unwrap();
    let grid = ideal_grid_for(&"int16".parse().unwrap(), 1.0).unwrap();
    let t = error_terms(&d, &grid, true);
    let delta = 1.0 / 32767.0;
    assert!(
        rel(t.mse, delta * delta / 12.0) < 1e-11,
        "{:e} vs {:e}",
        t.mse,
        delta * delta / 12.0
    );
}

#[test]
fn gaussian_closed_form_on_a_coarse_grid() {
    // wide cells, no cancellation: ∫_a^b (x-q)² φ = (1+q²)(Φ(b)-Φ(a)) - (b-2q)φ(b) + (a-2q)φ(a)
    let d = Distribution::gauss(0.0, 1.0, -40.0, 40.0).unwrap();
    let grid = [-1.5, -0.25, 0.0, 1.0, 3.0];
    let phi = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = |x: f64| 0.5 * puruspe::erfc(-x / std::f64::consts::SQRT_2);
    let piece =
        |a: f64, b: f64, q: f64| (1.0 + q * q) * (cdf(b) - cdf(a)) - (b - 2.0 * q) * phi(b) + (a - 2.0 * q) * phi(a);
    let mut want = 0.0;
    let mids: Vec<f64> = grid.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
    for (i, &q) in grid.iter().enumerate() {
        let a = if i == 0 { -40.0 } else { mids[i - 1] };
        let b = if i == grid.len() - 1 { 40.0 } else { mids[i] };
        want += piece(a, b, q);
    }
    let got = error_terms(&d, &grid, true).mse;
    assert!(rel(got, want) < 1e-13, "{got:e} vs {want:e}");
}

#[test]
fn agrees_with_brute_force_quadrature() {
    let cases = [
        ("gauss", "int16", 4.0),
        ("gauss", "int8", 3.9),
        ("gauss", "e4m3", 19.5),
        ("gauss", "e5m2", 0.3),
        ("student-t:nu=8,clip=100", "int16", 10.0),
        ("student-t:nu=4,clip=1000", "e5m10", 40.0),
        ("gauss:sigma=3,clip=12", "e8m7", 7.0),
        ("uniform", "int16", 0.7),
        ("student-t:nu=8,clip=100", "e3m4", 30.0),
        ("student-t:nu=3,min=-20,max=50", "e2m5", 7.0),
        ("gauss:mu=1.5,sigma=0.2,min=0,max=4", "e4m3", 2.5),
        ("uniform:min=-0.3,max=2", "e5m2", 1.7),
    ];
    for (ds, fs, alpha) in cases {
        let d: Distribution = ds.parse().unwrap();
        let grid = grid_for(&fs.parse().unwrap(), alpha).unwrap();
        let t = error_terms(&d, &grid, true);
        let (e2, exr) = brute_force(&d, &grid);
        assert!(rel(t.mse, e2) < 1e-11, "{ds} {fs} {alpha}: E[R²] {:e} vs {e2:e}", t.mse);
        // E[XR] sums terms of both signs: compare against the scale of E[|X R|] ≈ √(E[X²] E[R²])
        let scale = (d.second_moment() * e2).sqrt();
        assert!(
            (t.xr - exr).abs() < 1e-11 * scale,
            "{ds} {fs} {alpha}: E[XR] {:e} vs {exr:e}",
            t.xr
        );
    }
}

#[test]
fn monte_carlo_agrees_within_four_standard_errors() {
    let cfg = StudyConfig {
        verify: Some(VerifyOptions {
            samples: 2_000_000,
            seed: 2022,
        }),
        ..StudyConfig::paper()
    };
    let study = run_study(&cfg).unwrap();
    for dr in &study.distributions {
        for r in &dr.results {
            let mc = r.monte_carlo.expect("monte carlo requested");
            eprintln!(
                "{} {}: mse {:.6e} vs MC {:.6e} ± {:.1e} (z {:+.2}); dot {:.6e} vs MC {:.6e} ± {:.1e} (z {:+.2})",
                dr.distribution,
                r.format,
                r.mse,
                mc.mse,
                mc.mse_stderr,
                mc.mse_z,
                r.dot_product_mse,
                mc.dot_product_mse,
                mc.dot_product_stderr,
                mc.dot_product_z
            );
            assert!(
                mc.mse_z.abs() < 4.0,
                "{} {}: z = {}",
                dr.distribution,
                r.format,
                mc.mse_z
            );
            assert!(
                mc.dot_product_z.abs() < 4.0,
                "{} {}: dot z = {}",
                dr.distribution,
                r.format,
                mc.dot_product_z
            );
            assert!(mc.mse_stderr < 0.05 * r.mse, "too few samples for a meaningful check");
        }
    }
}
