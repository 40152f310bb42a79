//! The element-wise kernel drivers shared by every quantizer, with runtime CPU-feature dispatch.
//!
//! A quantizer supplies one branch-free `f32 -> f32` function ([`ElementKernel::qdq`]); the loops
//! here (map into a buffer, map in place, sum of squared errors) are written once as plain scalar
//! loops marked `#[inline(always)]`, and [`dispatch_by_cpu`] compiles each three times (AVX-512,
//! AVX2+FMA, baseline), picking one at run time, so the auto-vectorizer can use the widest
//! registers the machine has without `-C target-cpu`. Large inputs are split over rayon.

use rayon::prelude::*;

/// Defines `$vis fn $name(args) -> R` that dispatches to `$generic(args)` compiled for the best
/// available instruction set. The function may take one type parameter with one bound
/// (`fn map<K: ElementKernel>(...)`) or none; `$generic` must be `#[inline(always)]` so that each
/// CPU-specific copy gets its own vectorized body.
macro_rules! dispatch_by_cpu {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$g:ident: $bound:path>)? ($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $generic:ident;) => {
        $(#[$meta])*
        $vis fn $name $(<$g: $bound>)? ($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
                fn avx512 $(<$g: $bound>)? ($($a: $t),*) $(-> $r)? { $generic $(::<$g>)? ($($a),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2 $(<$g: $bound>)? ($($a: $t),*) $(-> $r)? { $generic $(::<$g>)? ($($a),*) }
                if $crate::quantizer::element_kernel::has_avx512() {
                    // SAFETY: the CPU supports every feature `avx512` was compiled for.
                    return unsafe { avx512 $(::<$g>)? ($($a),*) };
                }
                if $crate::quantizer::element_kernel::has_avx2() {
                    // SAFETY: the CPU supports every feature `avx2` was compiled for.
                    return unsafe { avx2 $(::<$g>)? ($($a),*) };
                }
            }
            $generic $(::<$g>)? ($($a),*)
        }
    };
}
pub(crate) use dispatch_by_cpu;

/// Whether the AVX-512 path can run (cached by std).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && has_avx2()
}

/// Whether the AVX2+FMA path can run.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Elements per parallel work item for tensor-wide kernels.
pub(crate) const PAR_CHUNK: usize = 1 << 16;

/// A quantizer's per-element function. It must be branch-free (selects, not jumps) so that the
/// loops below vectorize, and is inlined into each CPU-specific copy of them.
pub(crate) trait ElementKernel: Sync {
    /// Quantize–dequantize one value.
    fn qdq(&self, x: f32) -> f32;
}

#[inline(always)]
fn map_generic<K: ElementKernel>(x: &[f32], out: &mut [f32], k: &K) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = k.qdq(v);
    }
}

#[inline(always)]
fn map_inplace_generic<K: ElementKernel>(x: &mut [f32], k: &K) {
    for v in x.iter_mut() {
        *v = k.qdq(*v);
    }
}

/// `Σ (q(x) - x)²` with 32 independent `f64` accumulators, so the sum does not serialize on the
/// adder's latency. The difference is taken in `f32`, which is exact whenever `q(x)` is zero or
/// lies within a factor of two of `x` (Sterbenz), i.e. everywhere except for values clipped at
/// more than twice the range, where it is off by at most half an ulp of the difference.
#[inline(always)]
fn sse_generic<K: ElementKernel>(x: &[f32], k: &K) -> f64 {
    const L: usize = 32;
    let mut acc = [0.0f64; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        let c: &[f32; L] = c.try_into().expect("lane block");
        for i in 0..L {
            let d = (k.qdq(c[i]) - c[i]) as f64;
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0;
    for &v in chunks.remainder() {
        let d = (k.qdq(v) - v) as f64;
        tail += d * d;
    }
    acc.iter().sum::<f64>() + tail
}

dispatch_by_cpu! {
    /// Quantize `x` into `out` on the calling thread.
    pub(crate) fn map_serial<K: ElementKernel>(x: &[f32], out: &mut [f32], k: &K) => map_generic;
}
dispatch_by_cpu! {
    /// Quantize `x` in place on the calling thread.
    pub(crate) fn map_inplace_serial<K: ElementKernel>(x: &mut [f32], k: &K) => map_inplace_generic;
}
dispatch_by_cpu! {
    /// `Σ (q(x) - x)²` on the calling thread.
    pub(crate) fn sum_sq_error<K: ElementKernel>(x: &[f32], k: &K) -> f64 => sse_generic;
}

/// How a block-scaled format maps a block's values into its element grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockScaling {
    /// `x · into` (E8M0: an exact power of two).
    Mul,
    /// `x / into` (an `f32` scale).
    Div,
    /// `clamp(x · into, ±m)` (a two-level scale).
    MulClamp,
}

/// One block-scaled pass over blocks of `k`: `q(pre(x, into)) · back`, per block's `into`/`back`;
/// the common block sizes (16, 32) get loops of a known length.
#[inline(always)]
fn blocks_with<K: ElementKernel, F: Fn(f32, f32) -> f32>(
    x: &[f32],
    out: &mut [f32],
    k: usize,
    into: &[f32],
    back: &[f32],
    kern: &K,
    pre: F,
) {
    match k {
        16 => blocks_fixed::<K, F, 16>(x, out, into, back, kern, pre),
        32 => blocks_fixed::<K, F, 32>(x, out, into, back, kern, pre),
        _ => {
            for (((x, o), &r), &b) in x.chunks(k).zip(out.chunks_mut(k)).zip(into).zip(back) {
                for (x, o) in x.iter().zip(o.iter_mut()) {
                    *o = kern.qdq(pre(*x, r)) * b;
                }
            }
        }
    }
}

#[inline(always)]
fn blocks_fixed<K: ElementKernel, F: Fn(f32, f32) -> f32, const B: usize>(
    x: &[f32],
    out: &mut [f32],
    into: &[f32],
    back: &[f32],
    kern: &K,
    pre: F,
) {
    let mut xs = x.chunks_exact(B);
    let mut os = out.chunks_exact_mut(B);
    let mut n = 0;
    for ((x, o), (&r, &b)) in (&mut xs).zip(&mut os).zip(into.iter().zip(back)) {
        let x: &[f32; B] = x.try_into().expect("block");
        let o: &mut [f32; B] = o.try_into().expect("block");
        for i in 0..B {
            o[i] = kern.qdq(pre(x[i], r)) * b;
        }
        n += 1;
    }
    // a last, shorter block
    let (x, o) = (xs.remainder(), os.into_remainder());
    if !x.is_empty() {
        let (r, b) = (into[n], back[n]);
        for (x, o) in x.iter().zip(o.iter_mut()) {
            *o = kern.qdq(pre(*x, r)) * b;
        }
    }
}

#[inline(always)]
fn blocks_mul_generic<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, into: &[f32], back: &[f32], kern: &K) {
    blocks_with(x, out, k, into, back, kern, |x, r| x * r)
}

#[inline(always)]
fn blocks_div_generic<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, into: &[f32], back: &[f32], kern: &K) {
    blocks_with(x, out, k, into, back, kern, |x, d| x / d)
}

/// `m` travels in `back`'s last slot (the dispatch macro takes one type parameter and plain
/// arguments); `back` holds one entry per block plus `m`.
#[inline(always)]
fn blocks_mul_clamp_generic<K: ElementKernel>(
    x: &[f32],
    out: &mut [f32],
    k: usize,
    into: &[f32],
    back: &[f32],
    kern: &K,
) {
    let m = back[back.len() - 1];
    let back = &back[..back.len() - 1];
    blocks_with(x, out, k, into, back, kern, |x, r| {
        let y = x * r;
        // NaN passes (as torch.clamp keeps it)
        if y > m {
            m
        } else if y < -m {
            -m
        } else {
            y
        }
    })
}

dispatch_by_cpu! {
    pub(crate) fn blocks_mul<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, into: &[f32], back: &[f32], kern: &K) => blocks_mul_generic;
}
dispatch_by_cpu! {
    pub(crate) fn blocks_div<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, into: &[f32], back: &[f32], kern: &K) => blocks_div_generic;
}
dispatch_by_cpu! {
    pub(crate) fn blocks_mul_clamp<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, into: &[f32], back: &[f32], kern: &K) => blocks_mul_clamp_generic;
}

/// Run the block pass of `scaling` with kernel `kern` (`back` with `m` appended for
/// [`BlockScaling::MulClamp`]).
#[inline]
pub(crate) fn map_blocks<K: ElementKernel>(
    scaling: BlockScaling,
    x: &[f32],
    out: &mut [f32],
    k: usize,
    into: &[f32],
    back: &[f32],
    kern: &K,
) {
    match scaling {
        BlockScaling::Mul => blocks_mul(x, out, k, into, back, kern),
        BlockScaling::Div => blocks_div(x, out, k, into, back, kern),
        BlockScaling::MulClamp => blocks_mul_clamp(x, out, k, into, back, kern),
    }
}

/// Quantize `x` into `out` (same length), in parallel for large inputs.
pub(crate) fn map<K: ElementKernel>(x: &[f32], out: &mut [f32], k: &K) {
    assert_eq!(x.len(), out.len(), "input and output lengths differ");
    if x.len() <= PAR_CHUNK {
        map_serial(x, out, k);
    } else {
        x.par_chunks(PAR_CHUNK)
            .zip(out.par_chunks_mut(PAR_CHUNK))
            .for_each(|(x, o)| map_serial(x, o, k));
    }
}

/// Quantize in place, in parallel for large inputs.
pub(crate) fn map_inplace<K: ElementKernel>(x: &mut [f32], k: &K) {
    if x.len() <= PAR_CHUNK {
        map_inplace_serial(x, k);
    } else {
        x.par_chunks_mut(PAR_CHUNK).for_each(|c| map_inplace_serial(c, k));
    }
}
