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
//!
//! The loops are branch-free (selects and table gathers) and compiled for AVX-512, AVX2 and the
//! baseline, picked at run time; rayon splits them over the cores.

use crate::errors::value_error;
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// `f32` nearest to ln 2: the factor `pow`'s backward multiplies by (a `double` scalar that
/// torch rounds to the tensor's `float32`).
const LN2: f32 = std::f64::consts::LN_2 as f32;

/// Table slots: one per exponent field of a normal `|xc|` (0..=255), then one per leading-bit
/// position of a subnormal one (256..=278).
const SLOTS: usize = 256 + 23;

/// The table slot of a magnitude's bit pattern `a` (`a != 0`; NaN lands in slot 255).
#[inline(always)]
fn slot(a: u32) -> usize {
    let e = a >> 23;
    // a subnormal's leading bit, read from its exact conversion to f32
    let lead = (((a | 1) as f32).to_bits() >> 23) - 127;
    (if e == 0 { 256 + lead } else { e }) as usize
}

/// Bit-pattern range of a table slot.
fn slot_range(i: usize) -> (u32, u32) {
    if i < 256 {
        let first = (i as u32) << 23;
        (first.max(1), first | 0x7f_ffff)
    } else {
        let p = (i - 256) as u32;
        (1 << p, (2u32 << p) - 1)
    }
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
    /// Per slot: the binade at the slot's smallest magnitude, and the threshold of the next one
    /// (`u32::MAX` when it lies beyond the slot).
    k0: Vec<u32>,
    next: Vec<u32>,
    /// Every slot holds at most two binades (else the thresholds are searched per element).
    simple: bool,
}

impl<'a> Channel<'a> {
    fn new(lo: f32, hi: f32, thr: &'a [u32], vector: &'a [f32], scalar: &'a [f32]) -> Self {
        let reached = thr.iter().filter(|&&t| t <= 0x7f7f_ffff).count();
        let thresholds = &thr[..reached];
        let (mut k0, mut next) = (vec![1u32; SLOTS], vec![u32::MAX; SLOTS]);
        let mut simple = true;
        for i in 0..SLOTS {
            if i == 255 {
                continue; // Inf/NaN: only NaN comes here, and gives NaN whatever the scale
            }
            let (first, last) = slot_range(i);
            let below = thresholds.partition_point(|&t| t <= first);
            k0[i] = 1 + below as u32;
            if let Some(&t) = thresholds.get(below).filter(|&&t| t <= last) {
                next[i] = t;
                simple &= thresholds.get(below + 1).is_none_or(|&t2| t2 > last);
            }
        }
        Self {
            lo,
            hi,
            thresholds,
            vector,
            scalar,
            k0,
            next,
            simple,
        }
    }

    /// The binade of a magnitude `a` (bit pattern; not NaN) by searching the thresholds.
    fn binade_search(&self, a: u32) -> usize {
        if a == 0 {
            1
        } else {
            1 + self.thresholds.partition_point(|&t| t <= a)
        }
    }

    /// The binade of a magnitude `a` (bit pattern) from the table: branch-free.
    #[inline(always)]
    fn binade(&self, a: u32) -> usize {
        let i = slot(a);
        // SAFETY: slot() < SLOTS = k0.len() = next.len()
        let (k0, next) = unsafe { (*self.k0.get_unchecked(i), *self.next.get_unchecked(i)) };
        let k = k0 + u32::from(a >= next);
        (if a == 0 { 1 } else { k }) as usize
    }

    /// `(y1, xc, s, q, r)`: torch's `maximum(x, lo)`, the clamped value, its scale, `xc / s` and
    /// `round(q)`. torch's `maximum` lets NaN through and, in its vector loop, returns `lo` on a
    /// tie of zeros of opposite signs, in its scalar loop `x`; `minimum(y1, hi)` (`hi` > 0) has no
    /// tie of zeros.
    #[inline(always)]
    fn eval<const SIMPLE: bool>(&self, x: f32, pow_scalar: bool, max_scalar: bool) -> (f32, f32, f32, f32, f32) {
        let y1 = if x.is_nan() || x > self.lo || (max_scalar && x == self.lo) {
            x
        } else {
            self.lo
        };
        let xc = if y1.is_nan() || y1 < self.hi { y1 } else { self.hi };
        let a = xc.abs().to_bits();
        let s = if SIMPLE {
            // SAFETY: the table's binades are at most 1 + thresholds.len() = the scales in use,
            // checked by Tables::new (NaN's slot 255 gives binade 1)
            unsafe { *self.vector.get_unchecked(self.binade(a) - 1) }
        } else {
            let k = if xc.is_nan() { 1 } else { self.binade_search(a) };
            if pow_scalar {
                self.scalar[k - 1]
            } else {
                self.vector[k - 1]
            }
        };
        // torch's scale of a NaN is NaN (clamp and pow pass it through), which matters for the
        // gradients: g * s / s is NaN
        let s = if xc.is_nan() { xc } else { s };
        let q = xc / s;
        (y1, xc, s, q, q.round_ties_even())
    }

    /// The gradients of one element: `(x, lo, hi, -t)` (see [`grads_from`]).
    #[inline(always)]
    fn grads<const SIMPLE: bool>(&self, x: f32, g: f32) -> [f32; 4] {
        grads_from(self, x, g, self.eval::<SIMPLE>(x, false, false))
    }

    /// One element as torch's scalar loops would give it where `pow_scalar`/`max_scalar` say so.
    fn eval_at(&self, x: f32, pow_scalar: bool, max_scalar: bool) -> (f32, f32, f32, f32, f32) {
        let y1 = if x.is_nan() || x > self.lo || (max_scalar && x == self.lo) {
            x
        } else {
            self.lo
        };
        let xc = if y1.is_nan() || y1 < self.hi { y1 } else { self.hi };
        let k = if xc.is_nan() {
            1
        } else {
            self.binade_search(xc.abs().to_bits())
        };
        let s = if xc.is_nan() {
            xc
        } else if pow_scalar {
            self.scalar[k - 1]
        } else {
            self.vector[k - 1]
        };
        let q = xc / s;
        (y1, xc, s, q, q.round_ties_even())
    }
}

/// Defines `fn $name(ch, args)` running `$body` compiled for AVX-512, for AVX2+FMA and for the
/// baseline, picking one at run time.
macro_rules! per_cpu {
    ($name:ident($ch:ident: &Channel, $($a:ident: $t:ty),*) $body:block) => {
        fn $name($ch: &Channel<'_>, $($a: $t),*) {
            #[inline(always)]
            fn generic($ch: &Channel<'_>, $($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
                fn avx512($ch: &Channel<'_>, $($a: $t),*) { generic($ch, $($a),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($ch: &Channel<'_>, $($a: $t),*) { generic($ch, $($a),*) }
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512dq")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature avx512 is compiled for
                    return unsafe { avx512($ch, $($a),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has every feature avx2 is compiled for
                    return unsafe { avx2($ch, $($a),*) };
                }
            }
            generic($ch, $($a),*)
        }
    };
}

per_cpu!(forward_run(ch: &Channel, x: &[f32], out: &mut [f32]) {
    if ch.simple {
        for (o, &v) in out.iter_mut().zip(x) {
            let (_, _, s, _, r) = ch.eval::<true>(v, false, false);
            *o = r * s;
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            let (_, _, s, _, r) = ch.eval::<false>(v, false, false);
            *o = r * s;
        }
    }
});

per_cpu!(backward_run(ch: &Channel, x: &[f32], g: &[f32], gx: &mut [f32], glo: &mut [f32], ghi: &mut [f32], ngt: &mut [f32]) {
    let n = x.len().min(g.len()).min(gx.len()).min(glo.len()).min(ghi.len()).min(ngt.len());
    let (x, g, gx, glo, ghi, ngt) = (&x[..n], &g[..n], &mut gx[..n], &mut glo[..n], &mut ghi[..n], &mut ngt[..n]);
    if ch.simple {
        for i in 0..n {
            let [a, b, c, d] = ch.grads::<true>(x[i], g[i]);
            (gx[i], glo[i], ghi[i], ngt[i]) = (a, b, c, d);
        }
    } else {
        for i in 0..n {
            let [a, b, c, d] = ch.grads::<false>(x[i], g[i]);
            (gx[i], glo[i], ghi[i], ngt[i]) = (a, b, c, d);
        }
    }
});

/// Index ranges `[start, end)` of the elements torch evaluates in a scalar loop.
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

/// The arrays Python passes to both passes.
type TableArgs<'py> = (
    PyReadonlyArray1<'py, f32>,
    PyReadonlyArray1<'py, f32>,
    PyReadonlyArray2<'py, u32>,
    PyReadonlyArray2<'py, f32>,
    PyReadonlyArray2<'py, f32>,
);

impl<'a> Tables<'a> {
    fn new(
        n: usize,
        arrays: &'a TableArgs<'_>,
        pow_tails: Vec<(usize, usize)>,
        max_tails: Vec<(usize, usize)>,
    ) -> PyResult<Self> {
        let (lo, hi, thresholds, vector, scalar) = arrays;
        let (lo, hi) = (slice(lo, "lo")?, slice(hi, "hi")?);
        let k_thr = thresholds.shape()[1];
        let k_scales = vector.shape()[1];
        let contiguous = || value_error("reference tables must be C-contiguous");
        let thr = thresholds.as_slice().map_err(|_| contiguous())?;
        let (vector, scalar) = (
            vector.as_slice().map_err(|_| contiguous())?,
            scalar.as_slice().map_err(|_| contiguous())?,
        );
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
            let v = &vector[i * k_scales..(i + 1) * k_scales];
            let s = &scalar[i * k_scales..(i + 1) * k_scales];
            channels.push(Channel::new(lo[i], hi[i], t, v, s));
        }
        Ok(Self {
            channels,
            len: n / c,
            pow_tails: Tails::new(pow_tails, n, "pow tails")?,
            max_tails: Tails::new(max_tails, n, "max tails")?,
        })
    }

    fn channel(&self, i: usize) -> &Channel<'a> {
        &self.channels[i / self.len]
    }

    /// Calls `f(channel, start, end)` for the pieces of `[start, end)` that lie in one channel.
    fn segments(&self, start: usize, end: usize, mut f: impl FnMut(&Channel<'a>, usize, usize)) {
        let mut s = start;
        while s < end {
            let c = s / self.len;
            let e = end.min((c + 1) * self.len);
            f(&self.channels[c], s, e);
            s = e;
        }
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
pub(crate) fn reference_forward<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, f32>,
    mut out: PyReadwriteArray1<'py, f32>,
    lo: PyReadonlyArray1<'py, f32>,
    hi: PyReadonlyArray1<'py, f32>,
    thresholds: PyReadonlyArray2<'py, u32>,
    vector: PyReadonlyArray2<'py, f32>,
    scalar: PyReadonlyArray2<'py, f32>,
    pow_tails: Vec<(usize, usize)>,
    max_tails: Vec<(usize, usize)>,
) -> PyResult<()> {
    let xs = slice(&x, "x")?;
    let n = xs.len();
    let arrays = (lo, hi, thresholds, vector, scalar);
    let tables = Tables::new(n, &arrays, pow_tails, max_tails)?;
    let dst = out
        .as_slice_mut()
        .map_err(|_| value_error("out must be C-contiguous"))?;
    if dst.len() != n {
        return Err(value_error("out must have as many elements as x"));
    }
    py.detach(|| {
        dst.par_chunks_mut(CHUNK).enumerate().for_each(|(j, d)| {
            let base = j * CHUNK;
            tables.segments(base, base + d.len(), |ch, s, e| {
                forward_run(ch, &xs[s..e], &mut d[s - base..e - base]);
            });
        });
        for (i, ps, ms) in tables.tail_elements() {
            let (_, _, s, _, r) = tables.channel(i).eval_at(xs[i], ps, ms);
            dst[i] = r * s;
        }
    });
    Ok(())
}

/// Backward pass: the elementwise gradients for `x`, `lo` (the reference's `minval`), `hi`
/// (`maxval`) and minus those for the exponent of `pow` (the bias and `M` get their sums), into
/// whichever of the four outputs are given.
#[pyfunction]
#[pyo3(signature = (x, g, outs, lo, hi, thresholds, vector, scalar, pow_tails, max_tails))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference_backward<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, f32>,
    g: PyReadonlyArray1<'py, f32>,
    mut outs: Vec<Option<PyReadwriteArray1<'py, f32>>>,
    lo: PyReadonlyArray1<'py, f32>,
    hi: PyReadonlyArray1<'py, f32>,
    thresholds: PyReadonlyArray2<'py, u32>,
    vector: PyReadonlyArray2<'py, f32>,
    scalar: PyReadonlyArray2<'py, f32>,
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
    let arrays = (lo, hi, thresholds, vector, scalar);
    let tables = Tables::new(n, &arrays, pow_tails, max_tails)?;
    let mut dsts: Vec<Option<&mut [f32]>> = Vec::with_capacity(4);
    for o in outs.iter_mut() {
        dsts.push(match o {
            Some(a) => {
                let d = a
                    .as_slice_mut()
                    .map_err(|_| value_error("outputs must be C-contiguous"))?;
                if d.len() != n {
                    return Err(value_error("outputs must have as many elements as x"));
                }
                Some(d)
            }
            None => None,
        });
    }
    py.detach(|| {
        // the outputs cut into the same chunks (None: a scratch chunk per task)
        let mut chunked: [Vec<Option<&mut [f32]>>; 4] = Default::default();
        for (c, d) in chunked.iter_mut().zip(dsts) {
            *c = match d {
                Some(d) => d.chunks_mut(CHUNK).map(Some).collect(),
                None => (0..n.div_ceil(CHUNK)).map(|_| None).collect(),
            };
        }
        let [a, b, c, d] = chunked;
        let parts: Vec<_> = a
            .into_iter()
            .zip(b)
            .zip(c)
            .zip(d)
            .map(|(((a, b), c), d)| [a, b, c, d])
            .collect();
        parts.into_par_iter().enumerate().for_each(|(j, part)| {
            let base = j * CHUNK;
            let len = (n - base).min(CHUNK);
            let mut scratch = Vec::new();
            let [mut ox, mut olo, mut ohi, mut ot] = part;
            let need = [&ox, &olo, &ohi, &ot].iter().filter(|o| o.is_none()).count();
            scratch.resize(need * len, 0.0f32);
            let mut spare = scratch.chunks_mut(len.max(1));
            let mut pick = |o: &mut Option<&mut [f32]>| -> *mut [f32] {
                match o {
                    Some(d) => *d as *mut [f32],
                    None => spare.next().expect("one scratch chunk per missing output") as *mut [f32],
                }
            };
            // SAFETY: the four pointers are distinct live buffers (outputs or scratch chunks) of
            // `len` elements, each borrowed mutably only here
            let (gx, glo, ghi, ngt) = unsafe {
                (
                    &mut *pick(&mut ox),
                    &mut *pick(&mut olo),
                    &mut *pick(&mut ohi),
                    &mut *pick(&mut ot),
                )
            };
            tables.segments(base, base + len, |ch, s, e| {
                let r = s - base..e - base;
                backward_run(
                    ch,
                    &xs[s..e],
                    &gs[s..e],
                    &mut gx[r.clone()],
                    &mut glo[r.clone()],
                    &mut ghi[r.clone()],
                    &mut ngt[r],
                );
            });
        });
    });
    // the few elements torch runs in its scalar loops
    for (i, ps, ms) in tables.tail_elements() {
        let ch = tables.channel(i);
        let v = grads_from(ch, xs[i], gs[i], ch.eval_at(xs[i], ps, ms));
        for (o, val) in outs.iter_mut().zip(v) {
            if let Some(a) = o {
                a.as_slice_mut().map_err(value_error)?[i] = val;
            }
        }
    }
    Ok(())
}

/// The gradients of one element for an incoming gradient `g`, from its evaluation
/// `(y1, xc, s, q, r)`: `(x, lo, hi, -t)` where `t = (k - M) - b` is `pow`'s exponent. Each line
/// is one of autograd's formulas, in `f32`, in the order the reference's graph runs them.
#[inline(always)]
fn grads_from(ch: &Channel<'_>, x: f32, g: f32, (y1, _, s, q, r): (f32, f32, f32, f32, f32)) -> [f32; 4] {
    // result = r * s (mul): d r = g * s; d s = g * r
    let g_r = g * s;
    // q = xc / s (div): d xc = g_q / s; d s = -g_q * ((xc / s) / s); round passes g_q = g_r
    let g_xc = g_r / s;
    let g_s = g * r + (-g_r) * (q / s);
    // s = 2^t (pow with a scalar base): d t = g_s * (s * ln 2)
    let g_t = g_s * (s * LN2);
    // xc = minimum(y1, hi): half to each side of a tie, nothing to the larger one
    let m = if y1 == ch.hi { g_xc / 2.0 } else { g_xc };
    let g_y1 = if y1 > ch.hi { 0.0 } else { m };
    let g_hi = if y1 < ch.hi { 0.0 } else { m };
    // y1 = maximum(x, lo)
    let m = if x == ch.lo { g_y1 / 2.0 } else { g_y1 };
    let g_x = if x < ch.lo { 0.0 } else { m };
    let g_lo = if x > ch.lo { 0.0 } else { m };
    [g_x, g_lo, g_hi, -g_t]
}
