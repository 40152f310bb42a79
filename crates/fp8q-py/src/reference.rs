//! The elementwise part of the paper reference's `quantize_to_fp8_ste_MM`, evaluated the way
//! PyTorch evaluates it in `float32` (the "reference arithmetic" of `fp8q.torch`).
//!
//! The reference computes, per element, `xc = min(max(x, lo), hi)`,
//! `k = max(1, floor(log2|xc| + b))`, `s = 2^(k - M - b)` and `round(xc / s) * s`. Division,
//! multiplication and round-half-even are exact IEEE operations, so they are done here; the only
//! implementation-specific operations are torch's `log2` and `pow`. Python (`fp8q/torch.py`)
//! evaluates those with torch itself on the few values that matter and hands over, per channel:
//! the binade thresholds (the smallest `|xc|` of each `k`, as torch's `log2` decides it) and the
//! scales `s_k` as torch's vectorized `pow` gives them and as its scalar loop gives them (torch
//! runs the scalar loop on the last few elements of each inner loop: the "tails", whose index
//! ranges are passed too). The same for the backward pass: the elementwise gradients of
//! autograd's formulas for `mul`, `div`, `pow`, `minimum` and `maximum`, operation by operation
//! in `f32`; torch itself sums them onto `maxval`, the bias and the mantissa bits.

use crate::errors::value_error;
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// `f32` nearest to ln 2: the factor `pow`'s backward multiplies by (a `double` scalar that
/// torch rounds to the tensor's `float32`).
const LN2: f32 = std::f64::consts::LN_2 as f32;

/// One entry of a channel's binade table, indexed by the biased exponent field of `|xc|`.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The binade `k` at the smallest magnitude with this exponent field.
    k0: u32,
    /// Bit pattern of the threshold of `k0 + 1` (`u32::MAX` when it is beyond this field).
    next: u32,
    /// More than two binades share this exponent field: search the thresholds.
    search: bool,
}

/// Everything the kernel needs about one channel.
struct Channel<'a> {
    lo: f32,
    hi: f32,
    /// Bit patterns of the thresholds of `k = 2, 3, ...` (non-decreasing).
    thresholds: &'a [u32],
    /// `s_k` for `k = 1, 2, ...` from torch's vectorized `pow`, and from its scalar loop.
    vector: &'a [f32],
    scalar: &'a [f32],
    table: Vec<Slot>,
}

impl<'a> Channel<'a> {
    fn new(lo: f32, hi: f32, thr: &'a [u32], vector: &'a [f32], scalar: &'a [f32]) -> Self {
        let table = (0u32..256)
            .map(|e| {
                let first = e << 23;
                let last = first | 0x7f_ffff;
                let below = thr.partition_point(|&t| t <= first);
                let next = thr.get(below).copied().filter(|&t| t <= last);
                let search = next.is_some() && thr.get(below + 1).is_some_and(|&t| t <= last);
                Slot {
                    k0: 1 + below as u32,
                    next: next.unwrap_or(u32::MAX),
                    search,
                }
            })
            .collect();
        Self {
            lo,
            hi,
            thresholds: thr,
            vector,
            scalar,
            table,
        }
    }

    /// The binade of a magnitude `a` (bit pattern; not NaN).
    #[inline]
    fn binade(&self, a: u32) -> usize {
        let slot = self.table[(a >> 23) as usize];
        if slot.search {
            1 + self.thresholds.partition_point(|&t| t <= a)
        } else {
            (slot.k0 + u32::from(a >= slot.next)) as usize
        }
    }

    /// torch's `maximum(x, lo)`: NaN wins; its vector loop returns `lo` on a tie of zeros of
    /// opposite signs, its scalar loop `x`.
    #[inline]
    fn max(&self, x: f32, scalar: bool) -> f32 {
        if x.is_nan() || x > self.lo || (scalar && x == self.lo) {
            x
        } else {
            self.lo
        }
    }

    /// torch's `minimum(y, hi)` (`hi` is positive: no tie of zeros).
    #[inline]
    fn min(&self, y: f32) -> f32 {
        if y.is_nan() || y < self.hi {
            y
        } else {
            self.hi
        }
    }

    /// `(y1, xc, s, q, r)`: `max(x, lo)`, the clamped value, its scale, `xc / s`, `round(q)`.
    #[inline]
    fn eval(&self, x: f32, pow_scalar: bool, max_scalar: bool) -> (f32, f32, f32, f32, f32) {
        let y1 = self.max(x, max_scalar);
        let xc = self.min(y1);
        if xc.is_nan() {
            return (y1, xc, xc, xc, xc);
        }
        let k = self.binade(xc.abs().to_bits());
        let s = if pow_scalar {
            self.scalar[k - 1]
        } else {
            self.vector[k - 1]
        };
        let q = xc / s;
        let r = q.round_ties_even();
        (y1, xc, s, q, r)
    }
}

/// Index ranges `[start, end)` of the elements torch evaluates in a scalar loop.
#[derive(Default)]
struct Tails(Vec<(usize, usize)>);

impl Tails {
    fn new(mut v: Vec<(usize, usize)>, n: usize, what: &str) -> PyResult<Self> {
        v.sort_unstable();
        for &(a, b) in &v {
            if a > b || b > n {
                return Err(value_error(format!("{what}: range {a}..{b} is outside 0..{n}")));
            }
        }
        Ok(Self(v))
    }

    fn contains(&self, i: usize) -> bool {
        let p = self.0.partition_point(|&(a, _)| a <= i);
        p > 0 && i < self.0[p - 1].1
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..b)
    }
}

/// The per-channel tables, checked against each other and against `n` elements.
struct Tables<'a> {
    channels: Vec<Channel<'a>>,
    /// Elements per channel.
    len: usize,
    pow_tails: Tails,
    max_tails: Tails,
}

impl<'a> Tables<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        n: usize,
        lo: &'a [f32],
        hi: &'a [f32],
        thr: &'a [u32],
        k_thr: usize,
        vector: &'a [f32],
        scalar: &'a [f32],
        k_scales: usize,
        pow_tails: Vec<(usize, usize)>,
        max_tails: Vec<(usize, usize)>,
    ) -> PyResult<Self> {
        let c = lo.len();
        if c == 0
            || hi.len() != c
            || thr.len() != c * k_thr
            || vector.len() != c * k_scales
            || scalar.len() != c * k_scales
        {
            return Err(value_error("reference tables: inconsistent channel counts"));
        }
        if k_scales != k_thr + 1 {
            return Err(value_error("reference tables: need one more scale than thresholds"));
        }
        if !n.is_multiple_of(c) {
            return Err(value_error(format!(
                "reference tables: {n} elements do not split into {c} channels"
            )));
        }
        let mut channels = Vec::with_capacity(c);
        for i in 0..c {
            let t = &thr[i * k_thr..(i + 1) * k_thr];
            if t.windows(2).any(|w| w[0] > w[1]) {
                return Err(value_error("reference tables: thresholds must not decrease"));
            }
            // a binade whose threshold is reached needs its scale
            let reached = t.iter().filter(|&&b| b <= 0x7f7f_ffff).count();
            let (v, s) = (
                &vector[i * k_scales..(i + 1) * k_scales],
                &scalar[i * k_scales..(i + 1) * k_scales],
            );
            if v.len() < reached + 1 {
                return Err(value_error("reference tables: too few scales"));
            }
            channels.push(Channel::new(lo[i], hi[i], t, v, s));
        }
        Ok(Self {
            channels,
            len: n / c,
            pow_tails: Tails::new(pow_tails, n, "pow tails")?,
            max_tails: Tails::new(max_tails, n, "max tails")?,
        })
    }

    #[inline]
    fn channel(&self, i: usize) -> &Channel<'a> {
        &self.channels[i / self.len]
    }

    /// Elements of a tail (either kind) with both of their path flags.
    fn tail_elements(&self) -> Vec<(usize, bool, bool)> {
        let mut v: Vec<(usize, bool, bool)> = self
            .pow_tails
            .indices()
            .map(|i| (i, true, self.max_tails.contains(i)))
            .chain(self.max_tails.indices().map(|i| (i, self.pow_tails.contains(i), true)))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v.dedup_by_key(|e| e.0);
        v
    }
}

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| value_error(format!("{what} must be C-contiguous")))
}

/// Forward pass: `out[i] = round(xc / s) * s` as the reference computes it in `float32`.
#[pyfunction]
#[pyo3(signature = (x, out, lo, hi, thresholds, vector, scalar, pow_tails, max_tails))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference_forward(
    py: Python<'_>,
    x: PyReadonlyArray1<'_, f32>,
    mut out: PyReadwriteArray1<'_, f32>,
    lo: PyReadonlyArray1<'_, f32>,
    hi: PyReadonlyArray1<'_, f32>,
    thresholds: PyReadonlyArray2<'_, u32>,
    vector: PyReadonlyArray2<'_, f32>,
    scalar: PyReadonlyArray2<'_, f32>,
    pow_tails: Vec<(usize, usize)>,
    max_tails: Vec<(usize, usize)>,
) -> PyResult<()> {
    let xs = slice(&x, "x")?;
    let n = xs.len();
    let k_thr = thresholds.shape()[1];
    let k_scales = vector.shape()[1];
    let (thr, v, s) = (
        thresholds.as_slice().map_err(value_error)?,
        vector.as_slice().map_err(value_error)?,
        scalar.as_slice().map_err(value_error)?,
    );
    let (lo, hi) = (slice(&lo, "lo")?, slice(&hi, "hi")?);
    let dst = out
        .as_slice_mut()
        .map_err(|_| value_error("out must be C-contiguous"))?;
    if dst.len() != n {
        return Err(value_error("out must have as many elements as x"));
    }
    let tables = Tables::new(n, lo, hi, thr, k_thr, v, s, k_scales, pow_tails, max_tails)?;
    py.detach(|| {
        dst.par_chunks_mut(CHUNK).enumerate().for_each(|(j, d)| {
            let base = j * CHUNK;
            for (o, (i, &xi)) in d.iter_mut().zip(xs[base..].iter().enumerate()) {
                let (_, _, s, _, r) = tables.channel(base + i).eval(xi, false, false);
                *o = r * s;
            }
        });
        for (i, ps, ms) in tables.tail_elements() {
            let (_, _, s, _, r) = tables.channel(i).eval(xs[i], ps, ms);
            dst[i] = r * s;
        }
    });
    Ok(())
}

/// The gradients of one element: `(x, lo, hi, -t)` where `t = (k - M) - b` is `pow`'s exponent.
#[inline]
fn grads(ch: &Channel<'_>, x: f32, g: f32, pow_scalar: bool, max_scalar: bool) -> [f32; 4] {
    let (y1, _, s, q, r) = ch.eval(x, pow_scalar, max_scalar);
    // result = r * s (mul): d r = g * s; d s = g * r
    let g_r = g * s;
    // q = xc / s (div): d xc = g_q / s; d s = -g_q * ((xc / s) / s); round is straight-through
    let g_xc = g_r / s;
    let g_s = g * r + (-g_r) * (q / s);
    // s = 2^t (pow with a scalar base): d t = g_s * (s * ln 2)
    let g_t = g_s * (s * LN2);
    // xc = minimum(y1, hi): half of the gradient to each side of a tie
    let m = if y1 == ch.hi { g_xc / 2.0 } else { g_xc };
    let g_y1 = if y1 > ch.hi { 0.0 } else { m };
    let g_hi = if y1 < ch.hi { 0.0 } else { m };
    // y1 = maximum(x, lo)
    let m = if x == ch.lo { g_y1 / 2.0 } else { g_y1 };
    let g_x = if x < ch.lo { 0.0 } else { m };
    let g_lo = if x > ch.lo { 0.0 } else { m };
    [g_x, g_lo, g_hi, -g_t]
}

/// Backward pass: the elementwise gradients for `x`, `lo` (the reference's `minval`), `hi`
/// (`maxval`) and minus those for the exponent of `pow` (the bias and `M` get their sums), into
/// whichever outputs are given.
#[pyfunction]
#[pyo3(signature = (x, g, outs, lo, hi, thresholds, vector, scalar, pow_tails, max_tails))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference_backward(
    py: Python<'_>,
    x: PyReadonlyArray1<'_, f32>,
    g: PyReadonlyArray1<'_, f32>,
    outs: Vec<Option<PyReadwriteArray1<'_, f32>>>,
    lo: PyReadonlyArray1<'_, f32>,
    hi: PyReadonlyArray1<'_, f32>,
    thresholds: PyReadonlyArray2<'_, u32>,
    vector: PyReadonlyArray2<'_, f32>,
    scalar: PyReadonlyArray2<'_, f32>,
    pow_tails: Vec<(usize, usize)>,
    max_tails: Vec<(usize, usize)>,
) -> PyResult<()> {
    let xs = slice(&x, "x")?;
    let gs = slice(&g, "g")?;
    let n = xs.len();
    if gs.len() != n {
        return Err(value_error("g must have as many elements as x"));
    }
    if outs.len() != 4 {
        return Err(value_error("outs must hold 4 arrays or None"));
    }
    let k_thr = thresholds.shape()[1];
    let k_scales = vector.shape()[1];
    let (thr, v, s) = (
        thresholds.as_slice().map_err(value_error)?,
        vector.as_slice().map_err(value_error)?,
        scalar.as_slice().map_err(value_error)?,
    );
    let (lo, hi) = (slice(&lo, "lo")?, slice(&hi, "hi")?);
    let tables = Tables::new(n, lo, hi, thr, k_thr, v, s, k_scales, pow_tails, max_tails)?;
    let mut outs = outs;
    let mut dsts: Vec<Option<&mut [f32]>> = Vec::with_capacity(4);
    for o in outs.iter_mut() {
        match o {
            Some(a) => {
                let d = a
                    .as_slice_mut()
                    .map_err(|_| value_error("outputs must be C-contiguous"))?;
                if d.len() != n {
                    return Err(value_error("outputs must have as many elements as x"));
                }
                dsts.push(Some(d));
            }
            None => dsts.push(None),
        }
    }
    py.detach(|| {
        // split every output into the same chunks and walk them together
        let mut parts: Vec<[Option<&mut [f32]>; 4]> = Vec::new();
        let mut rest: [Option<&mut [f32]>; 4] = [None, None, None, None];
        for (r, d) in rest.iter_mut().zip(dsts) {
            *r = d;
        }
        let mut left = n;
        while left > 0 {
            let take = left.min(CHUNK);
            let mut part: [Option<&mut [f32]>; 4] = [None, None, None, None];
            for (p, r) in part.iter_mut().zip(rest.iter_mut()) {
                if let Some(d) = r.take() {
                    let (a, b) = d.split_at_mut(take);
                    *p = Some(a);
                    *r = Some(b);
                }
            }
            parts.push(part);
            left -= take;
        }
        parts.into_par_iter().enumerate().for_each(|(j, mut part)| {
            let base = j * CHUNK;
            let len = (n - base).min(CHUNK);
            for i in 0..len {
                let at = base + i;
                let v = grads(tables.channel(at), xs[at], gs[at], false, false);
                for (p, val) in part.iter_mut().zip(v) {
                    if let Some(d) = p {
                        d[i] = val;
                    }
                }
            }
        });
    });
    // the few elements torch runs in its scalar loops
    for (i, ps, ms) in tables.tail_elements() {
        let v = grads(tables.channel(i), xs[i], gs[i], ps, ms);
        for (o, val) in outs.iter_mut().zip(v) {
            if let Some(a) = o {
                a.as_slice_mut().map_err(value_error)?[i] = val;
            }
        }
    }
    Ok(())
}
