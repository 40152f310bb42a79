//! Forward throughput on synthetic input (mean and best of the timed iterations):
//! `cargo run --release -p fp8q-nn --example throughput -- resnet18 CKPT [batch] [iterations] [fp8]`.
//!
//! With `fp8`, the default PTQ setup (FP8 E4M3-style fake quantization of weights and
//! activations) is installed, calibrated on the warm-up batch and fixed before timing.

use std::time::Instant;

use fp8q_nn::feature_map::FeatureMap;
use fp8q_nn::models::{Architecture, Model};
use fp8q_nn::ptq::{install, PtqConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: throughput ARCH CHECKPOINT [BATCH] [ITERATIONS] [fp8]".into());
    }
    let arch: Architecture = args[1].parse()?;
    let batch: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let iters: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let mut model = Model::load(arch, &args[2])?;
    let x: Vec<f32> = (0..batch * 3 * 224 * 224)
        .map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
        .collect();
    let quantized = args.get(5).is_some_and(|m| m == "fp8");
    let installed = if quantized {
        Some(install(&mut model, &PtqConfig::default())?)
    } else {
        None
    };
    model.forward_fm(FeatureMap::from_vec(x.clone(), batch, 3, 224, 224)?)?; // warm-up (calibration)
    if let Some(inst) = &installed {
        inst.fix_all()?;
    }
    let mode = if quantized { "fp8" } else { "fp32" };
    let mut best = f64::INFINITY;
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        model.forward_fm(FeatureMap::from_vec(x.clone(), batch, 3, 224, 224)?)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{arch} {mode}: batch {batch}, {iters} iterations, mean {:.1} img/s ({:.3} s per batch), best {:.1} img/s",
        (batch * iters) as f64 / secs,
        secs / iters as f64,
        batch as f64 / best
    );
    Ok(())
}
