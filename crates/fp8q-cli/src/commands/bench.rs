//! `fp8q bench`: throughput of the quantize–dequantize kernels beside a plain copy.

use anyhow::Result;
use fp8q_core::format::{BlockFormat, Format, FpFormat, IntFormat, IntKind, StandardFp8};
use fp8q_core::quantizer::{
    quantize_channels_into, BlockLayout, BlockQuantizer, FpQuantizer, IntQuantizer, QuantMethod, Quantizer,
};
use fp8q_core::range::{RangeEstimator, RangeMethod};
use rayon::prelude::*;
use std::time::Instant;

/// Measure element-wise kernel throughput on an f32 buffer (read + write = 8 bytes per element),
/// beside a plain parallel copy of the same buffer in the same run (the memory-bandwidth bound).
/// Each figure is the best of `--repeats` runs.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Number of f32 elements (default 16M = 64 MiB).
    #[arg(long, default_value_t = 16 << 20)]
    pub elements: usize,
    /// Channels for the per-channel measurement (dimension 0).
    #[arg(long, default_value_t = 1024)]
    pub channels: usize,
    /// Repetitions per kernel (the best is reported).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Also time the MSE range estimator on a weight-sized tensor (6 mantissa counts × 111 ranges).
    #[arg(long)]
    pub estimators: bool,
}

/// Run the command.
pub fn run(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(
        args.elements > 0 && args.repeats > 0,
        "--elements and --repeats must be positive"
    );
    anyhow::ensure!(
        args.channels > 0 && args.elements.is_multiple_of(args.channels),
        "--channels must divide --elements"
    );
    let n = args.elements;
    // deterministic, roughly Gaussian-looking data with a wide dynamic range
    let x: Vec<f32> = (0..n)
        .into_par_iter()
        .map(|i| {
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            let u = h as f32 / (1u64 << 24) as f32 - 0.5;
            u * u * u * 40.0
        })
        .collect();
    let mut out = vec![0.0f32; n];
    let bytes = 8.0 * n as f64;
    println!(
        "{} elements ({} MiB), {} threads, best of {}",
        n,
        (n * 4) >> 20,
        rayon::current_num_threads(),
        args.repeats
    );
    println!(
        "{:<44} {:>12} {:>10} {:>10}  arithmetic",
        "kernel", "Gelem/s", "GB/s", "vs copy"
    );

    let copy = best_of(args.repeats, || {
        out.par_chunks_mut(1 << 16)
            .zip(x.par_chunks(1 << 16))
            .for_each(|(o, i)| o.copy_from_slice(i));
    });
    let report = |name: &str, secs: f64, arithmetic: &str| {
        println!(
            "{:<44} {:>12.3} {:>10.2} {:>9.0}%  {}",
            name,
            n as f64 / secs / 1e9,
            bytes / secs / 1e9,
            100.0 * copy / secs,
            arithmetic
        );
    };
    report("plain copy (parallel)", copy, "");

    let e4m3 = FpFormat::new(8, 3, true)?;
    let q = FpQuantizer::new(e4m3, 3.7)?;
    report(
        "E4M3 per-tensor, flexible bias (α = 3.7)",
        best_of(args.repeats, || q.quantize(&x, &mut out)),
        q.arithmetic(),
    );
    // in place (what the PTQ engine does with activations): no read-for-ownership of a second
    // buffer, so the traffic really is 8 bytes per element, as for the copy (memcpy streams)
    out.copy_from_slice(&x);
    report(
        "E4M3 per-tensor in place (α = 3.7)",
        best_of(args.repeats, || q.quantize_inplace(&mut out)),
        q.arithmetic(),
    );
    let q = FpQuantizer::new(e4m3, 240.0)?;
    report(
        "E4M3 per-tensor, default bias",
        best_of(args.repeats, || q.quantize(&x, &mut out)),
        q.arithmetic(),
    );
    let q = FpQuantizer::new(FpFormat::new(8, 2, true)?, 7.0)?;
    report(
        "E5M2 per-tensor (α = 7)",
        best_of(args.repeats, || q.quantize(&x, &mut out)),
        q.arithmetic(),
    );

    let per_channel: Vec<Quantizer> = (0..args.channels)
        .map(|c| FpQuantizer::new(e4m3, 1.0 + c as f64 * 0.01).map(Quantizer::Fp))
        .collect::<fp8q_core::Result<_>>()?;
    report(
        &format!("E4M3 per-channel ({} channels)", args.channels),
        best_of(args.repeats, || {
            quantize_channels_into(&per_channel, &x, &mut out).expect("shapes agree");
        }),
        "mixed",
    );

    let int8 = IntQuantizer::new(IntFormat::new(8, IntKind::Symmetric)?.grid_for_range(-5.0, 5.0));
    report(
        "INT8 symmetric per-tensor",
        best_of(args.repeats, || int8.quantize(&x, &mut out)),
        "f32",
    );
    let sat = FpQuantizer::standard(StandardFp8::E4M3FN, 0.01)?;
    report(
        "float8_e4m3fn saturating, scaled",
        best_of(args.repeats, || sat.quantize(&x, &mut out)),
        sat.arithmetic(),
    );

    // block formats: rows of 4096 values (a weight matrix's input dimension), blocks along them
    let rows = BlockLayout::rows(n / 4096, 4096);
    let (xb, ob) = (&x[..rows.numel()], &mut out[..rows.numel()]);
    for name in ["mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4"] {
        let f: BlockFormat = name.parse()?;
        let secs = best_of(args.repeats, || {
            // the tensor scale of a two-level format is part of the work
            BlockQuantizer::for_tensor(f, xb)
                .quantize(rows, xb, ob)
                .expect("shapes agree")
        });
        report(name, secs * n as f64 / rows.numel() as f64, "f32, scale per block");
    }
    // NVFP4 with its FP32 tensor scale known (calibrated, or a weight's): one pass less
    let nv: BlockFormat = "nvfp4".parse()?;
    let fixed = BlockQuantizer::new(nv, fp8q_core::quantizer::block_quantizer::abs_max(xb));
    let secs = best_of(args.repeats, || fixed.quantize(rows, xb, ob).expect("shapes agree"));
    report(
        "nvfp4 (tensor scale given)",
        secs * n as f64 / rows.numel() as f64,
        "f32, scale per block",
    );

    if args.estimators {
        bench_mse(args.repeats.min(3))?;
    }
    Ok(())
}

/// Time the MSE estimator with mantissa search on a ResNet-like conv weight.
fn bench_mse(repeats: usize) -> Result<()> {
    let (c_out, per) = (256usize, 256 * 9);
    let w: Vec<f32> = (0..c_out * per)
        .map(|i| {
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (h as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect();
    for per_channel in [false, true] {
        let secs = best_of(repeats, || {
            let mut m = QuantMethod::from_format("e4m3".parse::<Format>().expect("valid"));
            let mut est = RangeEstimator::new(RangeMethod::Mse { mantissa_search: true }, per_channel);
            est.update(&w, c_out, &mut m).expect("estimate");
        });
        println!(
            "MSE estimator with mantissa search, [{c_out}, 256, 3, 3] weight, per_channel={per_channel}: {:.1} ms ({:.2} Gelem/s quantized)",
            secs * 1e3,
            (6 * 111 * w.len()) as f64 / secs / 1e9
        );
    }
    Ok(())
}

fn best_of(repeats: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up: page faults, caches, thread pool
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
