//! One channel's binade lookup and the evaluation of one element as the reference computes it.
//!
//! The binade `k` of a magnitude is `1 +` the number of thresholds at or below it. Per channel, a
//! table indexed by the magnitude's exponent field (or, for a subnormal, its leading-bit position)
//! gives the binade at the slot's smallest magnitude and the one threshold inside the slot, so
//! the lookup is two gathers and a compare. A channel whose slots hold more than two binades
//! (thresholds closer than a factor of two, which torch's `log2` never gives for the
//! reference's formula) falls back to a binary search.

use super::gradients::grads_from;

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

/// `(y1, xc, s, q, r)` of one element: `maximum(x, lo)`, the clamped value, its scale, `xc / s`
/// and `round(q)`.
pub(super) type Eval = (f32, f32, f32, f32, f32);

/// Everything the kernel needs about one channel.
#[derive(Debug)]
pub(super) struct Channel<'a> {
    pub(super) lo: f32,
    pub(super) hi: f32,
    /// Bit patterns of the thresholds of `k = 2, 3, ...` that a finite magnitude reaches
    /// (non-decreasing).
    thresholds: &'a [u32],
    /// `s_k` for `k = 1, 2, ...` from torch's vectorized `pow`, and from its scalar loop.
    vector: &'a [f32],
    scalar: &'a [f32],
    /// Per slot: the binade at the slot's smallest magnitude, and the threshold of the next one
    /// (`u32::MAX` when it lies beyond the slot).
    k0: Vec<u32>,
    next: Vec<u32>,
    /// Every slot holds at most two binades (else the thresholds are searched per element).
    pub(super) simple: bool,
}

impl<'a> Channel<'a> {
    /// The channel of the clamp bounds `lo`/`hi`, the thresholds `thr` (non-decreasing bit
    /// patterns) and the scales (`thr.len() + 1` of each kind, checked by the caller).
    pub(super) fn new(lo: f32, hi: f32, thr: &'a [u32], vector: &'a [f32], scalar: &'a [f32]) -> Self {
        debug_assert!(vector.len() == thr.len() + 1 && scalar.len() == vector.len());
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

    /// One element as torch's vector loops evaluate it. torch's `maximum` lets NaN through and,
    /// in its vector loop, returns `lo` on a tie of zeros of opposite signs (in its scalar loop
    /// `x`: see [`Channel::eval_at`]); `minimum(y1, hi)` (`hi` > 0) has no tie of zeros.
    #[inline(always)]
    pub(super) fn eval<const SIMPLE: bool>(&self, x: f32) -> Eval {
        let y1 = if x.is_nan() || x > self.lo { x } else { self.lo };
        let xc = if y1.is_nan() || y1 < self.hi { y1 } else { self.hi };
        let a = xc.abs().to_bits();
        let s = if SIMPLE {
            // SAFETY: the table's binades are at most 1 + thresholds.len() = the scales in use,
            // checked by ReferenceTables::new (NaN's slot 255 gives binade 1)
            unsafe { *self.vector.get_unchecked(self.binade(a) - 1) }
        } else {
            let k = if xc.is_nan() { 1 } else { self.binade_search(a) };
            self.vector[k - 1]
        };
        // torch's scale of a NaN is NaN (clamp and pow pass it through), which matters for the
        // gradients: g * s / s is NaN
        let s = if xc.is_nan() { xc } else { s };
        let q = xc / s;
        (y1, xc, s, q, q.round_ties_even())
    }

    /// The gradients of one element as torch's vector loops give them: `(x, lo, hi, -t)` (see
    /// [`grads_from`]).
    #[inline(always)]
    pub(super) fn grads<const SIMPLE: bool>(&self, x: f32, g: f32) -> [f32; 4] {
        grads_from(self.lo, self.hi, x, g, self.eval::<SIMPLE>(x))
    }

    /// One element as torch's scalar loops would give it where `pow_scalar` (the scale from the
    /// scalar `pow`) and `max_scalar` (`maximum`'s scalar loop) say so.
    pub(super) fn eval_at(&self, x: f32, pow_scalar: bool, max_scalar: bool) -> Eval {
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
