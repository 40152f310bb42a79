//! The expected error of a block-scaled format on i.i.d. data (`docs/analysis.md`), exact up to
//! quadrature: `E[(q(X) - X)²]` and `E[X·(q(X) - X)]` per element, for `X` drawn from one of the
//! study's (symmetric) distributions and quantized by [`BlockQuantizer`] in blocks of `K`.
//!
//! **Conditioning.** A block's scale is a function `S(M)` of its largest magnitude
//! `M = max |x_i|`. Look at one element `X` of a block and at the largest magnitude `M'` of the
//! `K - 1` others (i.i.d., `P(M' < m) = F(m)^(K-1)` with `F(m) = P(|X| < m)`); the block maximum
//! is `max(|X|, M')`, so
//!
//! ```text
//! E[err] = E_X[ E_M'[ e_{S(max(|X|, M'))}(X) ] ],     e_S(x) = (S·q(x/S) - x)²,
//! ```
//!
//! `q` rounding to the element grid (nearest, saturating at ±elem_max). This is the same
//! quantity as conditioning on the block maximum, `(1/K)·E_M[e_{S(M)}(M) + (K-1)·E[e_{S(M)}(X) |
//! |X| ≤ M]]`, written per element; it needs only one-dimensional integrals when `S` is piecewise
//! constant.
//!
//! * **Piecewise-constant scales** (E8M0 for every rule; E4M3 under a fixed FP32 tensor scale).
//!   If `S = S_j` exactly when the block maximum lies in a piece `I_j = [lo_j, hi_j)`, then
//!
//!   ```text
//!   E[err] = Σ_j  G(hi_j) · ∫_{|x| ∈ I_j} e_{S_j} dP  +  (G(hi_j) - G(lo_j)) · ∫_{|x| < lo_j} e_{S_j} dP,
//!   G(m) = P(M' < m) = F(m)^(K-1)
//!   ```
//!
//!   (the element is the block maximum, or a smaller element of a block whose maximum is in
//!   `I_j`). Each integral is the study's cell-by-cell integral of the error on the element grid
//!   scaled by `S_j` ([`continuous_error_terms`]), saturation included; the point masses of a
//!   clipped distribution are added where they fall. E8M0 pieces are binades: the scale `2^e`
//!   applies when `amax / 2^e ∈ [c, 2c)` with `c = 2^emax` (floor), `2^emax·(1 - 2^-(m+2))`
//!   (even: `amax` rounded to the element's `m` mantissa bits first), `2^(emax-1)` (ceil) or
//!   `elem_max / 2` (rceil); ceil and rceil pieces are closed on the right, `(c, 2c]`. The sum
//!   runs from the piece holding the largest magnitude downwards and stops once a bound on
//!   what is left (`P(M' < hi)·P(|X| < hi)·hi²`) is below 1e-17 of the sum.
//! * **E4M3 under an FP32 tensor scale** (NVFP4). Given the tensor's largest magnitude `T`,
//!   `s_t = T / (448·elem_max)` and the block scale is `e4m3(clamp(448·M/T, 2^-6, 448))`: one
//!   piece per E4M3 value between the midpoints to its neighbours, `S_j = s_t·v_j`. The tensor
//!   maximum `T` is a property of the whole tensor, so the result depends on it; the analysis
//!   **conditions on `T`**: the elements are i.i.d. given `|X| ≤ T` (the law of the other
//!   elements of a tensor whose maximum is `T`, up to the `O(K/N)` share of the one block that
//!   holds the maximum). [`TensorMax::Median`] takes for `T` the median of the largest magnitude
//!   of `N` i.i.d. samples, `P(|X| ≤ T)^N = 1/2` — what the study uses, with `N` the Monte-Carlo's
//!   sample count when it verifies; [`TensorMax::Given`] takes a measured `T` (the tests
//!   condition on the Monte-Carlo sample's own maximum).
//! * **F32 scales** are continuous, `S(m) = m / elem_max`: the block maximum itself is exact
//!   (`m / S = elem_max`), so `E[err] = ∫ H(m) dG(m)` with `G(m) = P(M' ≤ m)` and
//!   `H(m) = ∫_{|x| < m} e_{S(m)}(x) dP(x)`, a smooth function of `m`. The outer integral is
//!   Gauss–Legendre (16 points) on pieces between quantiles of `G` (1e-15 … 1 - 1e-12), plus the
//!   point mass of `G` on the clip bound. A block of one element is exact (`E[err] = 0`).
//!
//! What the analysis leaves out, all far below the Monte-Carlo's resolution: the `f32` rounding
//! of the quantizer's scales (relative 2^-24), ties (measure zero for a density; a point mass
//! exactly on a tie rounds to the lower grid point here, to even in the quantizer), E8M0 scales
//! below `2^-127` (the sum stops long before), and the `O(K/N)` effect of the block holding
//! the tensor maximum.
//!
//! The distribution must be symmetric about 0 (as the study's are): `err(-x) = err(x)`, so
//! every integral is twice its half on `[0, ∞)`.

use super::distributions::Distribution;
use super::expected_error::{continuous_error_terms, nearest_index, ErrorTerms};
use super::quadrature;
use super::AnalysisError;
use crate::format::{BlockElement, BlockFormat, ScaleFormat, ScaleRule, StandardFp8};

#[cfg(doc)]
use crate::quantizer::block_quantizer::BlockQuantizer;

/// Where the FP32 tensor scale of a two-level (E4M3-scaled) format comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TensorMax {
    /// The median of the largest magnitude of a tensor of this many i.i.d. elements.
    Median {
        /// Elements in the tensor.
        elements: usize,
    },
    /// A given largest magnitude (e.g. a sample's own).
    Given(f64),
}

/// The per-element error of a block format on a distribution.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BlockErrorTerms {
    /// `E[R²]` and `E[X·R]` per element.
    pub terms: ErrorTerms,
    /// The tensor maximum `T` conditioned on (two-level formats only).
    pub tensor_amax: Option<f64>,
}

/// The median of the largest magnitude of `n` i.i.d. draws: the `T` with `P(|X| ≤ T)^n = 1/2`
/// (the clip bound when the point masses there make `P(max = bound) ≥ 1/2`).
pub fn median_abs_max(dist: &Distribution, n: usize) -> f64 {
    let (_, b) = dist.support();
    // P(|X| > T) = 1 - 2^(-1/n)
    let target = -(-std::f64::consts::LN_2 / n.max(1) as f64).exp_m1();
    if dist.abs_tail(b) >= target {
        return b;
    }
    bisect(0.0, b, |m| dist.abs_tail(m) > target)
}

/// The largest `m` in `[lo, hi]` with `below(m)` true, by bisection (`below` monotone: true then
/// false).
fn bisect(mut lo: f64, mut hi: f64, below: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if below(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The non-negative element values, ascending, `0` first.
pub fn element_positive_grid(element: BlockElement) -> Vec<f64> {
    match element {
        BlockElement::Fp(f) => f
            .with_maxval(element.max_value())
            .expect("a positive element maximum")
            .positive_grid(),
        BlockElement::Standard(s) => s.values().into_iter().filter(|v| *v >= 0.0).map(f64::from).collect(),
        BlockElement::Int(n) => {
            let delta = (-((n - 2) as f64)).exp2();
            (0..(1i64 << (n - 1))).map(|k| k as f64 * delta).collect()
        }
    }
}

/// `|X|` given `|X| ≤ cap`, for a symmetric distribution.
struct AbsLaw<'a> {
    dist: &'a Distribution,
    /// The clip bound `B`.
    bound: f64,
    /// `min(T, B)`.
    cap: f64,
    /// `P(|X| ≤ cap)`.
    norm: f64,
    /// `P(|X| = B)` if `cap = B`, else 0.
    atom: f64,
}

/// A range of magnitudes, `[a, b)` or `(a, b]`.
#[derive(Clone, Copy)]
struct Range {
    a: f64,
    b: f64,
    right_closed: bool,
}

impl Range {
    fn contains(&self, x: f64) -> bool {
        if self.right_closed {
            x > self.a && x <= self.b
        } else {
            x >= self.a && x < self.b
        }
    }
}

impl<'a> AbsLaw<'a> {
    fn new(dist: &'a Distribution, cap: f64) -> Self {
        let (_, bound) = dist.support();
        let cap = cap.min(bound);
        let (norm, atom) = if cap >= bound {
            (1.0, 1.0 - dist.abs_cdf(bound))
        } else {
            (dist.abs_cdf(cap), 0.0)
        };
        AbsLaw {
            dist,
            bound,
            cap,
            norm,
            atom,
        }
    }

    /// `P(|X| < m)` (or `≤` when `inclusive`), given `|X| ≤ cap`.
    fn cdf(&self, m: f64, inclusive: bool) -> f64 {
        if m > self.cap || (inclusive && m >= self.cap) {
            1.0
        } else {
            self.dist.abs_cdf(m) / self.norm
        }
    }

    /// `∫_{|x| ∈ r} (R², x·R) dP` given `|X| ≤ cap`, on the non-negative `grid` (both signs).
    fn terms(&self, grid: &[f64], r: Range) -> ErrorTerms {
        let mut t = continuous_error_terms(self.dist, grid, r.a, r.b.min(self.cap), true);
        t.mse *= 2.0;
        t.xr *= 2.0;
        if self.atom > 0.0 && r.contains(self.bound) {
            let d = grid[nearest_index(grid, self.bound)] - self.bound;
            t.mse += self.atom * d * d;
            t.xr += self.atom * self.bound * d;
        }
        ErrorTerms {
            mse: t.mse / self.norm,
            xr: t.xr / self.norm,
        }
    }
}

/// A piece of block maxima sharing one scale.
#[derive(Debug, Clone, Copy)]
struct Piece {
    lo: f64,
    hi: f64,
    right_closed: bool,
    scale: f64,
}

/// The E8M0 pieces, from the one holding `cap` downwards to the smallest scale `2^-127`, for
/// values measured in units of `unit` (a value `x` of the distribution is `x·unit` in the data
/// the quantizer sees: the power-of-two scales are powers of two of the data, not of `x`).
fn e8m0_pieces(format: &BlockFormat, cap: f64, unit: f64) -> Result<Vec<Piece>, AnalysisError> {
    let cap = cap * unit;
    let element = format.element();
    let emax = element.emax();
    let (c, right_closed) = match format.rule() {
        ScaleRule::Floor => ((emax as f64).exp2(), false),
        ScaleRule::Even => {
            let m = element.mantissa_bits().min(22) as f64;
            ((emax as f64).exp2() * (1.0 - (-(m + 2.0)).exp2()), false)
        }
        ScaleRule::Ceil => (((emax - 1) as f64).exp2(), true),
        ScaleRule::Rceil => (element.max_value() / 2.0, true),
    };
    let piece = |e: i32| Piece {
        lo: if e <= -127 { 0.0 } else { c * (e as f64).exp2() },
        hi: 2.0 * c * (e as f64).exp2(),
        right_closed,
        scale: (e as f64).exp2(),
    };
    // the piece holding cap
    let mut top = ((cap / c).log2().floor() as i32).clamp(-127, 200);
    while !Range::from(piece(top)).contains(cap) {
        if cap < piece(top).hi && top > -127 {
            top -= 1;
        } else if cap >= piece(top).lo {
            top += 1;
        } else {
            break;
        }
    }
    if top > 127 {
        return Err(AnalysisError::Invalid {
            what: "distribution",
            why: format!("values up to {cap:e} need an E8M0 scale beyond 2^127 for {format}"),
        });
    }
    Ok((-127..=top.max(-127))
        .rev()
        .map(piece)
        .map(|p| Piece {
            lo: p.lo / unit,
            hi: p.hi / unit,
            scale: p.scale / unit,
            ..p
        })
        .collect())
}

impl From<Piece> for Range {
    fn from(p: Piece) -> Range {
        Range {
            a: p.lo,
            b: p.hi,
            right_closed: p.right_closed,
        }
    }
}

/// The two-level pieces for the tensor maximum `t`, from the top down.
fn e4m3_pieces(format: &BlockFormat, t: f64) -> Vec<Piece> {
    let elem_max = format.element().max_value();
    let s_t = t / (448.0 * elem_max);
    // normal E4M3 values 2^-6 ..= 448 (the clamp keeps the block scale among them)
    let values: Vec<f64> = StandardFp8::E4M3FN
        .values()
        .into_iter()
        .filter(|v| *v >= 0.015625)
        .map(f64::from)
        .collect();
    // raw = 448·m/t  <=>  m = raw·t/448
    let to_m = |raw: f64| raw * t / 448.0;
    let n = values.len();
    (0..n)
        .rev()
        .map(|i| Piece {
            lo: if i == 0 {
                0.0
            } else {
                to_m(0.5 * (values[i - 1] + values[i]))
            },
            hi: if i + 1 == n {
                f64::INFINITY
            } else {
                to_m(0.5 * (values[i] + values[i + 1]))
            },
            right_closed: false,
            scale: s_t * values[i],
        })
        .collect()
}

fn scaled(grid: &[f64], s: f64) -> Vec<f64> {
    grid.iter().map(|g| g * s).collect()
}

/// The sum over pieces of constant scale (see the module doc).
fn piecewise_terms(law: &AbsLaw, grid: &[f64], k: usize, pieces: &[Piece]) -> ErrorTerms {
    let others = (k - 1) as i32;
    let g = |m: f64, inclusive: bool| law.cdf(m, inclusive).powi(others);
    let (mut mse, mut xr) = (0.0, 0.0);
    for p in pieces {
        if p.hi <= 0.0 {
            break;
        }
        if p.lo > law.cap {
            continue;
        }
        let inc = p.right_closed;
        let g_hi = g(p.hi, inc);
        let bound = g_hi * law.cdf(p.hi, inc) * p.hi.min(law.cap).powi(2);
        if mse > 0.0 && bound < 1e-17 * mse {
            break;
        }
        let grid = scaled(grid, p.scale);
        let own = law.terms(&grid, Range::from(*p));
        mse += g_hi * own.mse;
        xr += g_hi * own.xr;
        let w = g_hi - g(p.lo, inc);
        if w > 0.0 && p.lo > 0.0 {
            let below = law.terms(
                &grid,
                Range {
                    a: 0.0,
                    b: p.lo,
                    right_closed: inc,
                },
            );
            mse += w * below.mse;
            xr += w * below.xr;
        }
    }
    ErrorTerms { mse, xr }
}

/// The F32-scale integral `∫ H(m) dG(m)` (see the module doc).
fn f32_terms(law: &AbsLaw, grid: &[f64], elem_max: f64, k: usize) -> ErrorTerms {
    if k == 1 {
        return ErrorTerms { mse: 0.0, xr: 0.0 };
    }
    let others = (k - 1) as f64;
    // H(m): elements below m on the grid scaled by m / elem_max
    let h = |m: f64| {
        law.terms(
            &scaled(grid, m / elem_max),
            Range {
                a: 0.0,
                b: m,
                right_closed: false,
            },
        )
    };
    // quantiles of G(m) = F(m)^(K-1) on (0, cap): F(m_q) = q^(1/(K-1))
    let qs: [f64; 24] = [
        1e-15,
        1e-12,
        1e-9,
        1e-6,
        1e-4,
        1e-3,
        1e-2,
        0.03,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        0.97,
        0.99,
        0.999,
        1.0 - 1e-4,
        1.0 - 1e-6,
        1.0 - 1e-9,
        1.0 - 1e-12,
    ];
    let mut cuts = vec![0.0];
    for q in qs {
        let f = q.powf(1.0 / others);
        if law.cdf(law.cap, false) <= f {
            break;
        }
        let m = bisect(0.0, law.cap, |m| law.cdf(m, false) < f);
        if m > *cuts.last().expect("non-empty") {
            cuts.push(m);
        }
    }
    if law.cap > *cuts.last().expect("non-empty") {
        cuts.push(law.cap);
    }
    // dG/dm = (K-1) F^(K-2) f(m), f(m) = 2 p(m) / norm
    let rule = quadrature::rule(16);
    let (mut mse, mut xr) = (0.0, 0.0);
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let half = 0.5 * (b - a);
        for (t, wt) in rule.nodes.iter().zip(&rule.weights) {
            let m = a + half * (1.0 + t);
            let dens = others * law.cdf(m, false).powf(others - 1.0) * 2.0 * law.dist.pdf(m) / law.norm;
            if dens == 0.0 {
                continue;
            }
            let hm = h(m);
            mse += wt * half * dens * hm.mse;
            xr += wt * half * dens * hm.xr;
        }
    }
    // G's point mass on the clip bound: another element sits on it
    if law.atom > 0.0 {
        let mass = 1.0 - law.cdf(law.cap, false).powf(others);
        let hm = h(law.cap);
        mse += mass * hm.mse;
        xr += mass * hm.xr;
    }
    ErrorTerms { mse, xr }
}

/// `E[R²]` and `E[X·R]` per element of `format` on i.i.d. draws of `dist` (symmetric about 0);
/// `tensor` sets the FP32 tensor scale of a two-level format (ignored by the others).
pub fn block_error_terms(
    dist: &Distribution,
    format: &BlockFormat,
    tensor: TensorMax,
) -> Result<BlockErrorTerms, AnalysisError> {
    block_error_terms_in_units(dist, format, tensor, 1.0)
}

/// [`block_error_terms`] for data `unit·X`, `X` drawn from `dist`, in units of `unit` (the terms
/// and the tensor maximum are those of `X`; multiply `mse` by `unit²` for the data's). Only the
/// E8M0 scales depend on `unit` beyond that scaling: they are powers of two of the data (a
/// standardized fit to a tensor of any σ, `fp8q analyze`). `unit` must be positive and finite.
pub fn block_error_terms_in_units(
    dist: &Distribution,
    format: &BlockFormat,
    tensor: TensorMax,
    unit: f64,
) -> Result<BlockErrorTerms, AnalysisError> {
    if !(unit.is_finite() && unit > 0.0) {
        return Err(AnalysisError::Invalid {
            what: "unit",
            why: format!("must be positive and finite (got {unit})"),
        });
    }
    if !dist.is_symmetric() {
        return Err(AnalysisError::Invalid {
            what: "distribution",
            why: format!("the block-scaled analysis needs a distribution symmetric about 0 (got {dist})"),
        });
    }
    let (_, bound) = dist.support();
    let grid = element_positive_grid(format.element());
    let k = format.block_size();
    match format.scale() {
        ScaleFormat::E8m0 => {
            let law = AbsLaw::new(dist, bound);
            let pieces = e8m0_pieces(format, law.cap, unit)?;
            Ok(BlockErrorTerms {
                terms: piecewise_terms(&law, &grid, k, &pieces),
                tensor_amax: None,
            })
        }
        ScaleFormat::F32 => {
            let law = AbsLaw::new(dist, bound);
            Ok(BlockErrorTerms {
                terms: f32_terms(&law, &grid, format.element().max_value(), k),
                tensor_amax: None,
            })
        }
        ScaleFormat::E4m3 => {
            let t = match tensor {
                TensorMax::Median { elements } => {
                    if elements == 0 {
                        return Err(AnalysisError::Invalid {
                            what: "tensor size",
                            why: "a tensor needs at least one element".into(),
                        });
                    }
                    median_abs_max(dist, elements)
                }
                TensorMax::Given(t) => {
                    if !(t.is_finite() && t > 0.0) {
                        return Err(AnalysisError::Invalid {
                            what: "tensor maximum",
                            why: format!("must be positive and finite (got {t})"),
                        });
                    }
                    t
                }
            };
            let law = AbsLaw::new(dist, t);
            let pieces = e4m3_pieces(format, t);
            Ok(BlockErrorTerms {
                terms: piecewise_terms(&law, &grid, k, &pieces),
                tensor_amax: Some(t),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> BlockFormat {
        s.parse().unwrap()
    }

    #[test]
    fn element_grids() {
        assert_eq!(
            element_positive_grid(fmt("mxfp4").element()),
            [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
        );
        let g = element_positive_grid(fmt("mxint8").element());
        assert_eq!((g.len(), g[1], *g.last().unwrap()), (128, 1.0 / 64.0, 127.0 / 64.0));
        let g = element_positive_grid(fmt("mxfp8_e4m3").element());
        assert_eq!((g.len(), *g.last().unwrap()), (127, 448.0));
    }

    #[test]
    fn a_block_of_one_under_e8m0_is_the_elements_top_binade() {
        // K = 1, uniform [-1, 1], floor: x in [2^k, 2^(k+1)) lands on the element's top binade
        // [2^emax, 2^(emax+1)), where the grid step is 2^(emax - m): relative step 2^-m. For
        // E2M1 (m = 1) the MSE per binade is step²/12 with step = 2^(k-1) plus saturation of
        // [1.75, 2)·2^k to 1.5·2^k... check against a direct integral instead.
        let d = Distribution::uniform(-1.0, 1.0).unwrap();
        let t = block_error_terms(&d, &fmt("e2m1@1"), TensorMax::Median { elements: 1 }).unwrap();
        // direct: ∫_0^1 (q(x) - x)² dx with q from the element grid scaled by the binade's scale
        let grid = element_positive_grid(fmt("mxfp4").element());
        let n = 2_000_000;
        let mut s = 0.0;
        for i in 0..n {
            let x = (i as f64 + 0.5) / n as f64;
            let e = x.log2().floor() - 2.0;
            let sc = e.exp2();
            let q = grid[nearest_index(&grid, x / sc)] * sc;
            s += (q - x).powi(2);
        }
        let want = s / n as f64;
        assert!((t.terms.mse / want - 1.0).abs() < 1e-6, "{} vs {want}", t.terms.mse);
    }

    #[test]
    fn f32_blocks_of_one_are_exact_and_bigger_blocks_lose() {
        let d = Distribution::gauss(0.0, 1.0, -10.0, 10.0).unwrap();
        let t1 = block_error_terms(&d, &fmt("int4@1/f32"), TensorMax::Given(1.0)).unwrap();
        assert_eq!(t1.terms.mse, 0.0);
        let a = block_error_terms(&d, &fmt("int4@16/f32"), TensorMax::Given(1.0)).unwrap();
        let b = block_error_terms(&d, &fmt("int4@128/f32"), TensorMax::Given(1.0)).unwrap();
        assert!(a.terms.mse > 0.0 && b.terms.mse > a.terms.mse);
    }

    #[test]
    fn median_max_of_n() {
        let d = Distribution::gauss(0.0, 1.0, -10.0, 10.0).unwrap();
        let t = median_abs_max(&d, 1000);
        assert!((d.abs_tail(t) - (1.0 - 0.5f64.powf(1e-3))).abs() < 1e-12);
        // a clip bound that holds half the mass: the maximum is the bound
        let d = Distribution::gauss(0.0, 1.0, -0.1, 0.1).unwrap();
        assert_eq!(median_abs_max(&d, 10), 0.1);
    }

    #[test]
    fn asymmetric_distributions_are_refused() {
        let d = Distribution::uniform(-1.0, 2.0).unwrap();
        let e = block_error_terms(&d, &fmt("mxfp4"), TensorMax::Given(1.0)).unwrap_err();
        assert!(e.to_string().contains("symmetric"), "{e}");
    }

    /// A Gaussian of σ = u in data units is the standard Gaussian in units of u: the E8M0
    /// scales sit on the data's powers of two, whatever u is.
    #[test]
    fn units_scale_the_data() {
        for u in [0.75f64, 0.3, 3.1, 0.5] {
            let data = Distribution::gauss(0.0, u, -8.0 * u, 8.0 * u).unwrap();
            let std = Distribution::gauss(0.0, 1.0, -8.0, 8.0).unwrap();
            for f in ["mxfp4", "mxfp6_e2m3", "mxint8", "e3m2@16:rceil", "e2m1@32/f32"] {
                let a = block_error_terms(&data, &fmt(f), TensorMax::Given(8.0 * u)).unwrap();
                let b = block_error_terms_in_units(&std, &fmt(f), TensorMax::Given(8.0), u).unwrap();
                let rel = (a.terms.mse - b.terms.mse * u * u).abs() / a.terms.mse;
                assert!(rel < 1e-9, "{f} u={u}: {} vs {}", a.terms.mse, b.terms.mse * u * u);
            }
        }
        let std = Distribution::gauss(0.0, 1.0, -8.0, 8.0).unwrap();
        // not a power of two: the error differs from the standard one
        let one = block_error_terms(&std, &fmt("mxfp4"), TensorMax::Given(8.0)).unwrap();
        let odd = block_error_terms_in_units(&std, &fmt("mxfp4"), TensorMax::Given(8.0), 0.75).unwrap();
        assert!((one.terms.mse - odd.terms.mse).abs() > 1e-3 * one.terms.mse);
        assert!(block_error_terms_in_units(&std, &fmt("mxfp4"), TensorMax::Given(8.0), 0.0).is_err());
    }
}
