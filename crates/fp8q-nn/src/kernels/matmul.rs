//! Matrix products whose every output value is independent of the batch it was computed in, so
//! that an image's logits do not depend on which other images share its batch (sharded
//! evaluation merges bit-identically into the unsharded run).
//!
//! The `gemm` crate picks its algorithm from the matrix shape, and each algorithm sums the `k`
//! products of an output value in its own order:
//!
//! * `m ≤ 1` or `n ≤ 1`: a matrix–vector kernel; `k ≤ 2`: an outer-product kernel;
//! * `m·n ≤ 256` with a column-contiguous right operand: horizontal (dot-product) microkernels
//!   that sum depth blocks of 1 024;
//! * `m ≤ 64` and `n ≤ 64`: depth blocks of `min(k, 512)`;
//! * otherwise depth blocks sized from the caches, balanced to `⌈k / ⌈k / kc⌉⌉` (576 → 2 · 288).
//!
//! In a convolution `n` is the number of output pixels times the images in one product, so a
//! 7×7 layer with ≤ 64 filters and `k > 512` summed differently alone than in a group. In the
//! linear layer `m` is the batch size, so the logits of the single image of a 1-image batch
//! came from the matrix–vector kernel and differed in the last bits from the same image's
//! logits in a larger batch.
//!
//! The cure: [`matmul`] feeds `gemm` at most [`DEPTH_BLOCK`] = 512 of depth per call
//! (accumulating into the output), which every block-based path then takes whole, in one
//! block, in the same order; and [`linear_rows`] computes each row on its own, so every row
//! goes through the same matrix–vector kernel whatever the batch.

use gemm::Parallelism;

/// The most depth handed to one `gemm` call (the smallest block any of its paths uses).
pub const DEPTH_BLOCK: usize = 512;

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`, all row-major and contiguous, summed over the depth in
/// blocks of [`DEPTH_BLOCK`] (each output value's sum is the same whatever `m` and `n`, for
/// `m, n ≥ 2` and `k > 2`).
///
/// # Safety
/// The slices must hold at least `m·n`, `m·k` and `k·n` values.
pub unsafe fn matmul(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize, par: Parallelism) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    if k == 0 {
        dst[..m * n].fill(0.0);
        return;
    }
    let mut start = 0;
    while start < k {
        let depth = DEPTH_BLOCK.min(k - start);
        // SAFETY: the block's columns of `lhs` (row stride `k`) and rows of `rhs` (row stride
        // `n`) lie inside the slices the caller guarantees; `dst` is only written on the first
        // block (`read_dst` false) and accumulated into afterwards.
        unsafe {
            gemm::gemm(
                m,
                n,
                depth,
                dst.as_mut_ptr(),
                1,
                n as isize,
                start > 0,
                lhs.as_ptr().add(start),
                1,
                k as isize,
                rhs.as_ptr().add(start * n),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
        start += depth;
    }
}

/// `y[r, o] = Σ_i x[r, i] · w[o, i]` for the `rows` rows of `x` (`[rows, inputs]`) and `w`
/// (`[outputs, inputs]`), all row-major: each row on its own (the matrix–vector kernel), so a
/// row's result does not depend on the other rows.
pub fn linear_rows(x: &[f32], w: &[f32], rows: usize, inputs: usize, outputs: usize) -> Vec<f32> {
    assert!(
        x.len() == rows * inputs && w.len() == outputs * inputs,
        "linear_rows: shapes"
    );
    let mut y = vec![0f32; rows * outputs];
    if inputs == 0 {
        return y;
    }
    for (dst, row) in y.chunks_mut(outputs.max(1)).zip(x.chunks(inputs)) {
        // SAFETY: `row` is `[1, inputs]` (column stride 1), `wᵀ` is `[inputs, outputs]` read from
        // row-major `w` (row stride 1, column stride `inputs`), `dst` is `[1, outputs]`; the
        // lengths are checked above.
        unsafe {
            gemm::gemm(
                1,
                outputs,
                inputs,
                dst.as_mut_ptr(),
                1,
                outputs as isize,
                false,
                row.as_ptr(),
                1,
                inputs as isize,
                w.as_ptr(),
                inputs as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            )
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn naive(x: &[f32], w: &[f32], inputs: usize) -> Vec<f64> {
        x.chunks(inputs)
            .flat_map(|r| {
                w.chunks(inputs)
                    .map(move |c| r.iter().zip(c).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>())
            })
            .collect()
    }

    /// Rows of a linear layer with ImageNet's 1 000 classes, and with few: the first rows alone
    /// (1, 2, 3 and 64 of them) give the same bits as within 70 rows (the matrix–vector kernel for
    /// one row used to differ from the blocked kernels, and shapes with m·n ≤ 256 from larger ones).
    #[test]
    fn linear_rows_do_not_depend_on_the_batch() {
        for (inputs, outputs) in [(512, 1000), (1280, 1000), (64, 4), (600, 100)] {
            let rows = 70;
            let x = pseudo(rows * inputs, 1);
            let w = pseudo(outputs * inputs, 2);
            let all = linear_rows(&x, &w, rows, inputs, outputs);
            let want = naive(&x, &w, inputs);
            for (a, b) in all.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
            }
            for m in [1, 2, 3, 64] {
                let part = linear_rows(&x[..m * inputs], &w, m, inputs, outputs);
                assert_eq!(bits(&part), bits(&all[..m * outputs]), "{inputs}→{outputs}, {m} rows");
            }
        }
    }

    /// Products with 64 rows and 49 to 98 columns (a 7×7 layer of 64 filters, one or two images),
    /// depth 576 (3×3×64): the columns of the narrow product equal those of the wide one.
    #[test]
    fn matmul_columns_do_not_depend_on_the_width() {
        let (m, k) = (64, 576);
        let lhs = pseudo(m * k, 3);
        let wide_n = 98;
        let rhs = pseudo(k * wide_n, 4);
        let mut wide = vec![0f32; m * wide_n];
        unsafe { matmul(&mut wide, &lhs, &rhs, m, k, wide_n, Parallelism::None) };
        for n in [2, 49, 64, 65] {
            // the first n columns of rhs
            let narrow_rhs: Vec<f32> = rhs.chunks(wide_n).flat_map(|r| r[..n].to_vec()).collect();
            let mut narrow = vec![0f32; m * n];
            unsafe { matmul(&mut narrow, &lhs, &narrow_rhs, m, k, n, Parallelism::Rayon(2)) };
            let want: Vec<f32> = wide.chunks(wide_n).flat_map(|r| r[..n].to_vec()).collect();
            assert_eq!(bits(&narrow), bits(&want), "{n} columns");
        }
    }
}
