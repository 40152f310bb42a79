//! Quantize a tensor with a block-scaled format and measure the SQNR of the result: the code
//! path of `fp8q quantize` and of the format analysis for block formats (no range: every block
//! takes its scale from its own values).
//!
//! ```
//! use fp8q_core::analysis::block_measure::measure_blocks;
//! let x: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
//! let m = measure_blocks(&x, &[2, 32], -1, "mxfp8_e4m3".parse().unwrap(), None).unwrap();
//! // FLOOR saturates a block maximum above 1.75·2^k (E4M3FN's top is 448 = 1.75·2^8)
//! assert!(m.sqnr_db > 20.0 && m.sqnr_db < 30.0, "{}", m.sqnr_db);
//! ```

use super::quantize_measure::sum_sq;
use super::{sqnr_db, AnalysisError};
use crate::format::BlockFormat;
use crate::quantizer::{BlockLayout, BlockQuantizer};
use rayon::prelude::*;
use serde::Serialize;

/// The error of a tensor quantized with a block format.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockMeasured {
    /// Mean squared error.
    pub mse: f64,
    /// `10·log10(Σx² / Σ(q(x) - x)²)`.
    pub sqnr_db: f64,
}

/// Quantize `data` (shape `shape`, blocks along `axis`, negative from the end) with `format` and
/// measure the error; with `out`, also write the quantized values there.
pub fn measure_blocks(
    data: &[f32],
    shape: &[usize],
    axis: isize,
    format: BlockFormat,
    out: Option<&mut [f32]>,
) -> Result<BlockMeasured, AnalysisError> {
    let layout = BlockLayout::new(shape, axis)?;
    let q = BlockQuantizer::for_tensor(format, data);
    let mut own;
    let out = match out {
        Some(o) => o,
        None => {
            own = vec![0f32; data.len()];
            &mut own[..]
        }
    };
    q.quantize(layout, data, out)?;
    let noise: f64 = data
        .par_chunks(1 << 16)
        .zip(out.par_chunks(1 << 16))
        .map(|(x, q)| {
            x.iter()
                .zip(q)
                .map(|(&a, &b)| (b as f64 - a as f64).powi(2))
                .sum::<f64>()
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    Ok(BlockMeasured {
        mse: noise / data.len().max(1) as f64,
        sqnr_db: sqnr_db(sum_sq(data), noise),
    })
}
