//! The distributions of the analytical study (`docs/analysis.md`): uniform on `[a, b]`, and the Gaussian and
//! Student's t *clipped* at `[lo, hi]` — samples beyond a bound are clamped to it, so the mass of
//! each tail sits as a point mass on the bound.
//!
//! A [`Distribution`] has a continuous part with density [`Distribution::pdf`] on its support
//! `[min, max]` and point masses [`Distribution::point_masses`] at `min` and `max` (zero for the
//! uniform). [`Distribution::integrate`] integrates `g(x)·p(x)` over an interval accurately with
//! Gauss–Legendre rules on pieces that are small relative to the density's local scale.
//!
//! Command-line spelling (see [`Distribution::from_str`](std::str::FromStr)):
//! `uniform:min=-1,max=1`, `gauss:mu=0,sigma=1,min=-10,max=10`, `student-t:nu=8,min=-100,max=100`;
//! `clip=C` is short for `min=-C,max=C`.

use super::quadrature;
use super::AnalysisError;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::ser::SerializeStruct;
use std::fmt;
use std::str::FromStr;

/// The family and shape parameters of a distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DistKind {
    /// Uniform on `[min, max]`.
    Uniform,
    /// Gaussian with mean `mu` and standard deviation `sigma`.
    Gauss {
        /// Mean.
        mu: f64,
        /// Standard deviation (> 0).
        sigma: f64,
    },
    /// Standard Student's t with `nu` degrees of freedom.
    StudentT {
        /// Degrees of freedom (> 0).
        nu: f64,
    },
}

/// A distribution of the study: a continuous density on `[min, max]` plus point masses on the
/// bounds (the clamped tails). Constants (normalisation, tail masses, second moment) are computed
/// once by the constructors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distribution {
    kind: DistKind,
    min: f64,
    max: f64,
    /// Density normalisation (uniform: `1/(max-min)`; Gauss: `1/(σ√(2π))`; t: the t constant).
    norm: f64,
    mass_min: f64,
    mass_max: f64,
    second_moment: f64,
}

/// Gaussian tails are exactly zero in `f64` beyond this many standard deviations (`e^{-z²/2}`
/// underflows below the smallest subnormal).
const GAUSS_ZERO_Z: f64 = 38.7;

/// A piece is integrated with one rule when its width is at most this many local scales.
const MAX_PIECE_SCALES: f64 = 0.25;

fn check_finite(what: &str, v: f64) -> Result<(), AnalysisError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(AnalysisError::Distribution(format!("{what} must be finite (got {v})")))
    }
}

fn check_bounds(min: f64, max: f64) -> Result<(), AnalysisError> {
    check_finite("min", min)?;
    check_finite("max", max)?;
    if min < max {
        Ok(())
    } else {
        Err(AnalysisError::Distribution(format!(
            "min must be below max (got min={min}, max={max})"
        )))
    }
}

impl Distribution {
    /// Uniform on `[min, max]` (`min < max`, both finite).
    pub fn uniform(min: f64, max: f64) -> Result<Self, AnalysisError> {
        check_bounds(min, max)?;
        let mut d = Distribution {
            kind: DistKind::Uniform,
            min,
            max,
            norm: 1.0 / (max - min),
            mass_min: 0.0,
            mass_max: 0.0,
            second_moment: 0.0,
        };
        // closed form, stable: (max³ - min³) / (3 (max - min)) = (max² + max·min + min²) / 3
        d.second_moment = (max * max + max * min + min * min) / 3.0;
        Ok(d)
    }

    /// Gaussian `N(mu, sigma²)` clipped at `[min, max]` (tails as point masses on the bounds).
    pub fn gauss(mu: f64, sigma: f64, min: f64, max: f64) -> Result<Self, AnalysisError> {
        check_finite("mu", mu)?;
        check_finite("sigma", sigma)?;
        if sigma <= 0.0 {
            return Err(AnalysisError::Distribution(format!(
                "sigma must be positive (got {sigma})"
            )));
        }
        check_bounds(min, max)?;
        let s2 = std::f64::consts::SQRT_2 * sigma;
        let mut d = Distribution {
            kind: DistKind::Gauss { mu, sigma },
            min,
            max,
            norm: 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt()),
            mass_min: 0.5 * puruspe::erfc((mu - min) / s2),
            mass_max: 0.5 * puruspe::erfc((max - mu) / s2),
            second_moment: 0.0,
        };
        d.second_moment = d.compute_second_moment();
        Ok(d)
    }

    /// Standard Student's t with `nu` degrees of freedom clipped at `[min, max]`.
    pub fn student_t(nu: f64, min: f64, max: f64) -> Result<Self, AnalysisError> {
        check_finite("nu", nu)?;
        if nu <= 0.0 {
            return Err(AnalysisError::Distribution(format!("nu must be positive (got {nu})")));
        }
        check_bounds(min, max)?;
        let ln_norm =
            puruspe::ln_gamma(0.5 * (nu + 1.0)) - puruspe::ln_gamma(0.5 * nu) - 0.5 * (nu * std::f64::consts::PI).ln();
        let mut d = Distribution {
            kind: DistKind::StudentT { nu },
            min,
            max,
            norm: ln_norm.exp(),
            mass_min: student_t_cdf(nu, min),
            mass_max: student_t_cdf(nu, -max),
            second_moment: 0.0,
        };
        d.second_moment = d.compute_second_moment();
        Ok(d)
    }

    /// The paper's three distributions: uniform on [-1, 1], N(0, 1) clipped at ±10, t(ν=8)
    /// clipped at ±100.
    pub fn paper_defaults() -> Vec<Distribution> {
        vec![
            Distribution::uniform(-1.0, 1.0).expect("valid"),
            Distribution::gauss(0.0, 1.0, -10.0, 10.0).expect("valid"),
            Distribution::student_t(8.0, -100.0, 100.0).expect("valid"),
        ]
    }

    /// Family and shape parameters.
    pub fn kind(&self) -> DistKind {
        self.kind
    }
    /// Support `[min, max]`.
    pub fn support(&self) -> (f64, f64) {
        (self.min, self.max)
    }
    /// Largest magnitude of the support, `max(|min|, |max|)`.
    pub fn abs_bound(&self) -> f64 {
        self.min.abs().max(self.max.abs())
    }
    /// Point masses `(P[X = min], P[X = max])` (the clamped tails).
    pub fn point_masses(&self) -> (f64, f64) {
        (self.mass_min, self.mass_max)
    }
    /// `E[X²]`.
    pub fn second_moment(&self) -> f64 {
        self.second_moment
    }

    /// Whether the distribution is symmetric about 0 (`min = -max`, and `μ = 0` for a Gaussian):
    /// what the block-scaled analysis needs.
    pub fn is_symmetric(&self) -> bool {
        self.min == -self.max
            && match self.kind {
                DistKind::Gauss { mu, .. } => mu == 0.0,
                _ => true,
            }
    }

    /// For a symmetric distribution, `P(|X| < m)`: the continuous mass on `(-m, m)`, plus the
    /// point masses once `m > max`.
    pub fn abs_cdf(&self, m: f64) -> f64 {
        if m <= 0.0 {
            return 0.0;
        }
        if m > self.max {
            return 1.0;
        }
        match self.kind {
            DistKind::Uniform => m / self.max,
            DistKind::Gauss { sigma, .. } => puruspe::erf(m / (std::f64::consts::SQRT_2 * sigma)),
            DistKind::StudentT { nu } => 1.0 - 2.0 * student_t_cdf(nu, -m),
        }
    }

    /// For a symmetric distribution, `P(|X| >= m) = 1 - P(|X| < m)`, accurate in the tail.
    pub fn abs_tail(&self, m: f64) -> f64 {
        if m <= 0.0 {
            return 1.0;
        }
        if m > self.max {
            return 0.0;
        }
        match self.kind {
            DistKind::Uniform => (self.max - m) / self.max,
            DistKind::Gauss { sigma, .. } => puruspe::erfc(m / (std::f64::consts::SQRT_2 * sigma)),
            DistKind::StudentT { nu } => 2.0 * student_t_cdf(nu, -m),
        }
    }

    /// Density of the continuous part at `x` (zero outside the support).
    #[inline]
    pub fn pdf(&self, x: f64) -> f64 {
        if x < self.min || x > self.max {
            return 0.0;
        }
        self.pdf_unchecked(x)
    }

    #[inline(always)]
    fn pdf_unchecked(&self, x: f64) -> f64 {
        match self.kind {
            DistKind::Uniform => self.norm,
            DistKind::Gauss { mu, sigma } => {
                let z = (x - mu) / sigma;
                self.norm * (-0.5 * z * z).exp()
            }
            DistKind::StudentT { nu } => self.norm * (-0.5 * (nu + 1.0) * (x * x / nu).ln_1p()).exp(),
        }
    }

    /// Smallest length scale of the density on `[a, b]`: pieces much narrower than it are
    /// integrated to full precision by a low-order rule.
    fn min_scale(&self, a: f64, b: f64) -> f64 {
        match self.kind {
            DistKind::Uniform => f64::INFINITY,
            DistKind::Gauss { mu, sigma } => {
                // log-derivative |x-μ|/σ² beyond one σ, σ inside
                let far = (a - mu).abs().max((b - mu).abs()) / sigma;
                sigma / far.max(1.0)
            }
            DistKind::StudentT { nu } => {
                // (ν + x²) / ((ν+1) max(|x|, √ν)): the log-derivative scale (and the distance to
                // the poles at ±i√ν), smallest at the point of [a, b] nearest to 0
                let x = if a <= 0.0 && b >= 0.0 {
                    0.0
                } else {
                    a.abs().min(b.abs())
                };
                (nu + x * x) / ((nu + 1.0) * x.max(nu.sqrt()))
            }
        }
    }

    /// Width (in local scales) up to which a whole rounding cell is integrated by the Taylor
    /// expansion of [`Distribution::taylor`] (relative error about `r⁴`).
    pub(crate) const TAYLOR_MAX_SCALES: f64 = 1e-3;

    /// `r = (b - a) / local scale` of an interval of the support.
    pub(crate) fn scales(&self, a: f64, b: f64) -> f64 {
        (b - a) / self.min_scale(a, b)
    }

    /// Density and its scaled derivatives at `x`: `[p, p'/p, p''/(2p), p'''/(6p)]`, so that
    /// `p(x+u) ≈ p·(1 + c1·u + c2·u² + c3·u³)` for `|u|` much smaller than the local scale.
    #[inline]
    pub(crate) fn taylor(&self, x: f64) -> [f64; 4] {
        match self.kind {
            DistKind::Uniform => [self.norm, 0.0, 0.0, 0.0],
            DistKind::Gauss { mu, sigma } => {
                let z = (x - mu) / sigma;
                let p = self.norm * (-0.5 * z * z).exp();
                // p^(k)/p = (-1)^k He_k(z) / σ^k
                [
                    p,
                    -z / sigma,
                    (z * z - 1.0) / (2.0 * sigma * sigma),
                    -(z * z * z - 3.0 * z) / (6.0 * sigma * sigma * sigma),
                ]
            }
            DistKind::StudentT { nu } => {
                let p = self.pdf_unchecked(x);
                let w = nu + x * x;
                let k = nu + 1.0;
                // d1 = (log p)', and its first two derivatives
                let d1 = -k * x / w;
                let d1p = -k * (nu - x * x) / (w * w);
                let d1pp = 2.0 * k * x * (3.0 * nu - x * x) / (w * w * w);
                [
                    p,
                    d1,
                    (d1 * d1 + d1p) / 2.0,
                    (d1 * d1 * d1 + 3.0 * d1 * d1p + d1pp) / 6.0,
                ]
            }
        }
    }

    /// True if the density is exactly zero (in `f64`) on all of `[a, b]`.
    pub(crate) fn negligible(&self, a: f64, b: f64) -> bool {
        match self.kind {
            DistKind::Gauss { mu, sigma } => {
                let (za, zb) = ((a - mu) / sigma, (b - mu) / sigma);
                (za > GAUSS_ZERO_Z && zb > GAUSS_ZERO_Z) || (za < -GAUSS_ZERO_Z && zb < -GAUSS_ZERO_Z)
            }
            _ => false,
        }
    }

    /// `∫_a^b g(x) p(x) dx` for each of the `K` components of `g`, over `[a, b] ∩ [min, max]`
    /// (the continuous part only). `g` must be smooth on the interval (a polynomial of low
    /// degree here). Accuracy: about 1e-13 relative for each non-negative component.
    pub fn integrate<const K: usize, G: Fn(f64) -> [f64; K]>(&self, a: f64, b: f64, g: &G) -> [f64; K] {
        let a = a.max(self.min);
        let b = b.min(self.max);
        let mut acc = [0.0; K];
        if a < b {
            self.integrate_rec(a, b, g, &mut acc, 0);
        }
        acc
    }

    fn integrate_rec<const K: usize, G: Fn(f64) -> [f64; K]>(
        &self,
        a: f64,
        b: f64,
        g: &G,
        acc: &mut [f64; K],
        depth: u32,
    ) {
        if self.negligible(a, b) {
            return;
        }
        let r = (b - a) / self.min_scale(a, b);
        if r > MAX_PIECE_SCALES && depth < 60 {
            let m = a + 0.5 * (b - a);
            self.integrate_rec(a, m, g, acc, depth + 1);
            self.integrate_rec(m, b, g, acc, depth + 1);
            return;
        }
        // the rule's error is O(r^(2n-2)) relative, with small constants (n = 2: about r²/60)
        let n = if r <= 1e-4 {
            2
        } else if r <= 2e-3 {
            4
        } else if r <= 0.04 {
            6
        } else {
            12
        };
        let rule = quadrature::rule(n);
        let half = 0.5 * (b - a);
        let mid = a + half;
        let mut part = [0.0; K];
        for (t, w) in rule.nodes.iter().zip(&rule.weights) {
            let x = mid + half * t;
            let wp = w * self.pdf_unchecked(x);
            let gx = g(x);
            for k in 0..K {
                part[k] += wp * gx[k];
            }
        }
        for k in 0..K {
            acc[k] += part[k] * half;
        }
    }

    fn compute_second_moment(&self) -> f64 {
        let [inner] = self.integrate(self.min, self.max, &|x| [x * x]);
        inner + self.mass_min * self.min * self.min + self.mass_max * self.max * self.max
    }

    /// `n` samples (clamped to the support, as `f32`), deterministic for a seed and independent
    /// of the number of threads (blocks of 65 536 samples, each with its own seeded generator).
    pub fn sample_f32(&self, n: usize, seed: u64) -> Vec<f32> {
        const BLOCK: usize = 1 << 16;
        let mut out = vec![0f32; n];
        out.par_chunks_mut(BLOCK).enumerate().for_each(|(i, chunk)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(block_seed(seed, i as u64));
            self.fill(&mut rng, chunk);
        });
        out
    }

    fn fill(&self, rng: &mut rand::rngs::StdRng, out: &mut [f32]) {
        use rand::distr::Distribution as _;
        match self.kind {
            DistKind::Uniform => {
                for v in out.iter_mut() {
                    let u: f64 = rng.random();
                    *v = (self.min + (self.max - self.min) * u).clamp(self.min, self.max) as f32;
                }
            }
            DistKind::Gauss { mu, sigma } => {
                let d = rand_distr::Normal::new(mu, sigma).expect("validated parameters");
                for v in out.iter_mut() {
                    *v = d.sample(rng).clamp(self.min, self.max) as f32;
                }
            }
            DistKind::StudentT { nu } => {
                let d = rand_distr::StudentT::new(nu).expect("validated parameters");
                for v in out.iter_mut() {
                    *v = d.sample(rng).clamp(self.min, self.max) as f32;
                }
            }
        }
    }

    /// A readable description, e.g. `Gaussian μ=0, σ=1 clipped at [-10, 10]`.
    pub fn label(&self) -> String {
        match self.kind {
            DistKind::Uniform => format!("Uniform on [{}, {}]", Num(self.min), Num(self.max)),
            DistKind::Gauss { mu, sigma } => {
                format!(
                    "Gaussian μ={}, σ={} clipped at [{}, {}]",
                    Num(mu),
                    Num(sigma),
                    Num(self.min),
                    Num(self.max)
                )
            }
            DistKind::StudentT { nu } => format!(
                "Student's t ν={} clipped at [{}, {}]",
                Num(nu),
                Num(self.min),
                Num(self.max)
            ),
        }
    }

    /// Family name: `uniform`, `gauss`, `student-t`.
    pub fn family(&self) -> &'static str {
        match self.kind {
            DistKind::Uniform => "uniform",
            DistKind::Gauss { .. } => "gauss",
            DistKind::StudentT { .. } => "student-t",
        }
    }
}

/// `P[T < x]` for the standard Student's t with `nu` degrees of freedom, accurate in both tails.
pub fn student_t_cdf(nu: f64, x: f64) -> f64 {
    if x == 0.0 {
        return 0.5;
    }
    // P[|T| > |x|] = I_{ν/(ν+x²)}(ν/2, 1/2)
    let z = nu / (nu + x * x);
    let tail = 0.5 * puruspe::betai(0.5 * nu, 0.5, z.clamp(0.0, 1.0));
    if x < 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// A well-mixed seed for block `i` of a stream (SplitMix64 finaliser).
fn block_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number as written in specs and labels: plain decimal for moderate magnitudes, otherwise
/// scientific (both parse back to the same `f64`).
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.abs();
        if a == 0.0 || (1e-4..1e15).contains(&a) {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
}

impl fmt::Display for Distribution {
    /// The parseable spelling, e.g. `gauss:mu=0,sigma=1,min=-10,max=10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DistKind::Uniform => write!(f, "uniform:min={},max={}", Num(self.min), Num(self.max)),
            DistKind::Gauss { mu, sigma } => {
                write!(
                    f,
                    "gauss:mu={},sigma={},min={},max={}",
                    Num(mu),
                    Num(sigma),
                    Num(self.min),
                    Num(self.max)
                )
            }
            DistKind::StudentT { nu } => write!(
                f,
                "student-t:nu={},min={},max={}",
                Num(nu),
                Num(self.min),
                Num(self.max)
            ),
        }
    }
}

impl serde::Serialize for Distribution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Distribution", 9)?;
        st.serialize_field("spec", &self.to_string())?;
        st.serialize_field("family", self.family())?;
        st.serialize_field("label", &self.label())?;
        match self.kind {
            DistKind::Uniform => {}
            DistKind::Gauss { mu, sigma } => {
                st.serialize_field("mu", &mu)?;
                st.serialize_field("sigma", &sigma)?;
            }
            DistKind::StudentT { nu } => st.serialize_field("nu", &nu)?,
        }
        st.serialize_field("min", &self.min)?;
        st.serialize_field("max", &self.max)?;
        st.serialize_field("point_mass_min", &self.mass_min)?;
        st.serialize_field("point_mass_max", &self.mass_max)?;
        st.serialize_field("second_moment", &self.second_moment)?;
        st.end()
    }
}

const DIST_HINT: &str = "expected uniform[:min=A,max=B], gauss[:mu=M,sigma=S,min=A,max=B] or student-t[:nu=N,min=A,max=B] (clip=C is short for min=-C,max=C)";

impl FromStr for Distribution {
    type Err = AnalysisError;

    /// Parse `family[:key=value,...]`. Families: `uniform` (keys `min`, `max`; default [-1, 1]),
    /// `gauss`/`gaussian`/`normal` (`mu`, `sigma`, `min`, `max`; defaults 0, 1 and μ ± 10σ),
    /// `student-t`/`student_t`/`t` (`nu`, `min`, `max`; defaults 8 and ±100). `clip=C` sets
    /// `min=-C, max=C`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| AnalysisError::Distribution(format!("invalid distribution '{spec}': {why}"));
        let s = spec.trim();
        let (family, params) = match s.split_once(':') {
            Some((f, p)) => (f.trim().to_ascii_lowercase(), p.trim()),
            None => (s.to_ascii_lowercase(), ""),
        };
        let allowed: &[&str] = match family.as_str() {
            "uniform" => &["min", "max", "clip"],
            "gauss" | "gaussian" | "normal" => &["mu", "sigma", "min", "max", "clip"],
            "student-t" | "student_t" | "studentt" | "t" => &["nu", "min", "max", "clip"],
            _ => return Err(bad(format!("unknown family '{family}'; {DIST_HINT}"))),
        };
        let mut values: Vec<(String, f64)> = Vec::new();
        for item in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("'{item}' is not key=value; {DIST_HINT}")))?;
            let k = k.trim().to_ascii_lowercase();
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown parameter '{k}' for {family} (allowed: {})",
                    allowed.join(", ")
                )));
            }
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| bad(format!("value '{}' of {k} is not a number", v.trim())))?;
            if !v.is_finite() {
                return Err(bad(format!("{k} must be finite (got {v})")));
            }
            if values.iter().any(|(kk, _)| *kk == k) {
                return Err(bad(format!("{k} given twice")));
            }
            values.push((k, v));
        }
        let get = |k: &str| values.iter().find(|(kk, _)| kk == k).map(|(_, v)| *v);
        let clip = get("clip");
        if clip.is_some() && (get("min").is_some() || get("max").is_some()) {
            return Err(bad("clip cannot be combined with min or max".into()));
        }
        if let Some(c) = clip {
            if c <= 0.0 {
                return Err(bad(format!("clip must be positive (got {c})")));
            }
        }
        let bounds = |dmin: f64, dmax: f64| match clip {
            Some(c) => (-c, c),
            None => (get("min").unwrap_or(dmin), get("max").unwrap_or(dmax)),
        };
        let result = match allowed[0] {
            "min" => {
                let (lo, hi) = bounds(-1.0, 1.0);
                Distribution::uniform(lo, hi)
            }
            "mu" => {
                let mu = get("mu").unwrap_or(0.0);
                let sigma = get("sigma").unwrap_or(1.0);
                let (lo, hi) = bounds(mu - 10.0 * sigma, mu + 10.0 * sigma);
                Distribution::gauss(mu, sigma, lo, hi)
            }
            _ => {
                let (lo, hi) = bounds(-100.0, 100.0);
                Distribution::student_t(get("nu").unwrap_or(8.0), lo, hi)
            }
        };
        result.map_err(|e| bad(e.inner_message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_spellings() {
        let d: Distribution = "uniform".parse().unwrap();
        assert_eq!(d.support(), (-1.0, 1.0));
        let d: Distribution = "gauss:mu=0,sigma=1,min=-10,max=10".parse().unwrap();
        assert_eq!(d.to_string(), "gauss:mu=0,sigma=1,min=-10,max=10");
        let d: Distribution = "student-t:nu=8,clip=100".parse().unwrap();
        assert_eq!(d.to_string(), "student-t:nu=8,min=-100,max=100");
        assert_eq!("t".parse::<Distribution>().unwrap(), d);
        let d: Distribution = "gauss:sigma=1e-30".parse().unwrap();
        assert_eq!(
            d.to_string(),
            "gauss:mu=0,sigma=1e-30,min=-1.0000000000000001e-29,max=1.0000000000000001e-29"
        );
        assert_eq!(d.to_string().parse::<Distribution>().unwrap(), d);
        let d: Distribution = "gauss:sigma=2".parse().unwrap();
        assert_eq!(d.support(), (-20.0, 20.0));
        for bad in [
            "foo",
            "gauss:sigma=0",
            "gauss:sigma=-1",
            "uniform:min=1,max=1",
            "uniform:min=1,max=0",
            "uniform:nu=3",
            "gauss:mu=x",
            "gauss:mu",
            "student-t:nu=0",
            "student-t:clip=5,min=1",
            "uniform:min=-inf",
            "uniform:min=nan",
            "gauss:mu=1,mu=2",
            "uniform:clip=-1",
        ] {
            let err = bad.parse::<Distribution>().unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn masses_and_moments() {
        let g = Distribution::gauss(0.0, 1.0, -1.0, 2.0).unwrap();
        let (lo, hi) = g.point_masses();
        assert!((lo - 0.15865525393145707).abs() < 1e-15);
        assert!((hi - 0.022750131948179195).abs() < 1e-15);
        // Cauchy = t(1): P[T < -1] = 1/4 (puruspe's incomplete beta is good to ~1e-11)
        assert!((student_t_cdf(1.0, -1.0) - 0.25).abs() < 1e-10);
        assert!((student_t_cdf(1.0, 1.0) - 0.75).abs() < 1e-10);
        // t(2): P[T < x] = 1/2 + x / (2 √(2 + x²))
        let x: f64 = -7.0;
        assert!((student_t_cdf(2.0, x) / (0.5 + x / (2.0 * (2.0 + x * x).sqrt())) - 1.0).abs() < 1e-9);
        // unclipped-looking Gaussian: E[X²] = σ² + μ²
        let g = Distribution::gauss(0.5, 2.0, -40.0, 41.0).unwrap();
        assert!((g.second_moment() - 4.25).abs() < 1e-13 * 4.25, "{}", g.second_moment());
        // t(ν=8): ν/(ν-2) when the clip is far out (tail beyond ±1e4 negligible at 1e-12)
        let t = Distribution::student_t(8.0, -1e4, 1e4).unwrap();
        assert!((t.second_moment() - 4.0 / 3.0).abs() < 1e-12, "{}", t.second_moment());
        // total probability
        for d in [g, t, Distribution::student_t(3.0, -5.0, 2.0).unwrap()] {
            let [p] = d.integrate(d.min, d.max, &|_| [1.0]);
            let (a, b) = d.point_masses();
            assert!((p + a + b - 1.0).abs() < 1e-10, "{d}: {}", p + a + b);
        }
    }

    #[test]
    fn samples_are_deterministic_and_clamped() {
        let d = Distribution::gauss(0.0, 1.0, -1.0, 1.0).unwrap();
        let a = d.sample_f32(100_000, 7);
        let b = d.sample_f32(100_000, 7);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        let at_bounds = a.iter().filter(|v| v.abs() == 1.0).count() as f64 / a.len() as f64;
        let (lo, hi) = d.point_masses();
        assert!((at_bounds - (lo + hi)).abs() < 0.01, "{at_bounds}");
        assert_ne!(a, d.sample_f32(100_000, 8));
    }
}
