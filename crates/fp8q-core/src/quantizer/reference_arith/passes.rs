//! The forward and backward passes: branch-free loops per channel segment (compiled per CPU by
//! [`dispatch_by_cpu`]), split over rayon, then the few tail elements torch runs in its scalar
//! loops.

use super::channel::Channel;
use super::error::ReferenceArithError;
use super::gradients::grads_from;
use super::tables::ReferenceTables;
use crate::quantizer::element_kernel::dispatch_by_cpu;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

#[inline(always)]
fn forward_generic(ch: &Channel<'_>, x: &[f32], out: &mut [f32]) {
    if ch.simple {
        for (o, &v) in out.iter_mut().zip(x) {
            let (_, _, s, _, r) = ch.eval::<true>(v);
            *o = r * s;
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            let (_, _, s, _, r) = ch.eval::<false>(v);
            *o = r * s;
        }
    }
}

#[inline(always)]
fn backward_generic(
    ch: &Channel<'_>,
    x: &[f32],
    g: &[f32],
    gx: &mut [f32],
    glo: &mut [f32],
    ghi: &mut [f32],
    ngt: &mut [f32],
) {
    let n = x
        .len()
        .min(g.len())
        .min(gx.len())
        .min(glo.len())
        .min(ghi.len())
        .min(ngt.len());
    let (x, g, gx, glo, ghi, ngt) = (
        &x[..n],
        &g[..n],
        &mut gx[..n],
        &mut glo[..n],
        &mut ghi[..n],
        &mut ngt[..n],
    );
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
}

dispatch_by_cpu! {
    /// One channel segment of the forward pass, as torch's vector loops compute it.
    fn forward_run(ch: &Channel<'_>, x: &[f32], out: &mut [f32]) => forward_generic;
}
dispatch_by_cpu! {
    /// One channel segment of the backward pass, as torch's vector loops compute it.
    fn backward_run(
        ch: &Channel<'_>,
        x: &[f32],
        g: &[f32],
        gx: &mut [f32],
        glo: &mut [f32],
        ghi: &mut [f32],
        ngt: &mut [f32],
    ) => backward_generic;
}

/// Forward pass: `out[i] = round(xc / s) * s` as the reference computes it in `float32`, for the
/// tensor `x` (flattened, row-major, channels along dimension 0) the `tables` were built for.
///
/// # Errors
///
/// When `x` has another length than the tables were built for, or `out` another than `x`.
pub fn forward(x: &[f32], out: &mut [f32], tables: &ReferenceTables<'_>) -> Result<(), ReferenceArithError> {
    check_elements(x, tables)?;
    if out.len() != x.len() {
        return Err(ReferenceArithError::Length { what: "out" });
    }
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(j, d)| {
        let base = j * CHUNK;
        tables.segments(base, base + d.len(), |ch, s, e| {
            forward_run(ch, &x[s..e], &mut d[s - base..e - base]);
        });
    });
    for (i, ps, ms) in tables.tail_elements() {
        let (_, _, s, _, r) = tables.channel(i).eval_at(x[i], ps, ms);
        out[i] = r * s;
    }
    Ok(())
}

/// Where [`backward`] writes the elementwise gradients; each is optional (one not given is
/// computed into scratch memory and dropped) and, when given, as long as `x`.
#[derive(Debug, Default)]
pub struct Gradients<'o> {
    /// The gradient for `x`.
    pub x: Option<&'o mut [f32]>,
    /// The gradient for `lo` (the reference's `minval`), per element.
    pub lo: Option<&'o mut [f32]>,
    /// The gradient for `hi` (`maxval`), per element.
    pub hi: Option<&'o mut [f32]>,
    /// Minus the gradient for the exponent `t = (k - M) - b` of `pow`, per element: torch sums
    /// it onto the bias and `M`.
    pub neg_exponent: Option<&'o mut [f32]>,
}

/// Backward pass: for an incoming gradient `g` of the forward pass's result, the elementwise
/// gradients of autograd's formulas for `x`, `lo`, `hi` and minus those for the exponent of
/// `pow`, into whichever of `grads` are given. torch itself sums them onto `maxval`, the bias
/// and the mantissa bits.
///
/// # Errors
///
/// When `x` has another length than the tables were built for, or `g` or a given output another
/// than `x`.
pub fn backward(
    x: &[f32],
    g: &[f32],
    grads: Gradients<'_>,
    tables: &ReferenceTables<'_>,
) -> Result<(), ReferenceArithError> {
    check_elements(x, tables)?;
    let n = x.len();
    if g.len() != n {
        return Err(ReferenceArithError::Length { what: "g" });
    }
    let mut outs = [grads.x, grads.lo, grads.hi, grads.neg_exponent];
    if outs.iter().flatten().any(|o| o.len() != n) {
        return Err(ReferenceArithError::Length { what: "outputs" });
    }
    // the outputs cut into the same chunks (None: a scratch chunk per task)
    let mut chunked: [Vec<Option<&mut [f32]>>; 4] = Default::default();
    for (c, d) in chunked.iter_mut().zip(outs.iter_mut()) {
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
        let need = part.iter().filter(|o| o.is_none()).count();
        let mut scratch = vec![0.0f32; need * len];
        let mut spare = scratch.chunks_mut(len.max(1));
        let [gx, glo, ghi, ngt] =
            part.map(|o| o.unwrap_or_else(|| spare.next().expect("one scratch chunk per missing output")));
        tables.segments(base, base + len, |ch, s, e| {
            let r = s - base..e - base;
            backward_run(
                ch,
                &x[s..e],
                &g[s..e],
                &mut gx[r.clone()],
                &mut glo[r.clone()],
                &mut ghi[r.clone()],
                &mut ngt[r],
            );
        });
    });
    // the few elements torch runs in its scalar loops
    for (i, ps, ms) in tables.tail_elements() {
        let ch = tables.channel(i);
        let v = grads_from(ch.lo, ch.hi, x[i], g[i], ch.eval_at(x[i], ps, ms));
        for (o, val) in outs.iter_mut().zip(v) {
            if let Some(o) = o {
                o[i] = val;
            }
        }
    }
    Ok(())
}

fn check_elements(x: &[f32], tables: &ReferenceTables<'_>) -> Result<(), ReferenceArithError> {
    if x.len() == tables.elements() {
        Ok(())
    } else {
        Err(ReferenceArithError::ElementCount {
            got: x.len(),
            expected: tables.elements(),
        })
    }
}
