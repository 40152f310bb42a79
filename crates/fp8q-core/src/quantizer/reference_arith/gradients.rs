//! The elementwise gradients of the reference's graph from the clamp to the result: autograd's
//! formulas for `mul`, `div`, `pow`, `minimum` and `maximum`, operation by operation in `f32`.

use super::channel::Eval;

/// `f32` nearest to ln 2: the factor `pow`'s backward multiplies by (a `double` scalar that
/// torch rounds to the tensor's `float32`).
const LN2: f32 = std::f64::consts::LN_2 as f32;

/// The gradients of one element `x` of a channel clamped to `[lo, hi]`, for an incoming gradient
/// `g`, from its evaluation `(y1, xc, s, q, r)`: `(x, lo, hi, -t)` where `t = (k - M) - b` is
/// `pow`'s exponent. Each line is one of autograd's formulas, in `f32`, in the order the
/// reference's graph runs them.
#[inline(always)]
pub(super) fn grads_from(lo: f32, hi: f32, x: f32, g: f32, (y1, _, s, q, r): Eval) -> [f32; 4] {
    // result = r * s (mul): d r = g * s; d s = g * r
    let g_r = g * s;
    // q = xc / s (div): d xc = g_q / s; d s = -g_q * ((xc / s) / s); round passes g_q = g_r
    let g_xc = g_r / s;
    let g_s = g * r + (-g_r) * (q / s);
    // s = 2^t (pow with a scalar base): d t = g_s * (s * ln 2)
    let g_t = g_s * (s * LN2);
    // xc = minimum(y1, hi): half to each side of a tie, nothing to the larger one
    let m = if y1 == hi { g_xc / 2.0 } else { g_xc };
    let g_y1 = if y1 > hi { 0.0 } else { m };
    let g_hi = if y1 < hi { 0.0 } else { m };
    // y1 = maximum(x, lo)
    let m = if x == lo { g_y1 / 2.0 } else { g_y1 };
    let g_x = if x < lo { 0.0 } else { m };
    let g_lo = if x > lo { 0.0 } else { m };
    [g_x, g_lo, g_hi, -g_t]
}
