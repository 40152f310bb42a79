//! Forward throughput on synthetic input:
//! `cargo run --release -p fp8q-ptq --example throughput -- ARCH CKPT [batch] [iterations] [fp32|fp8|both]`.
//!
//! With `fp8`, the default PTQ setup (the reference's defaults: FP8 E3M4 fake quantization of
//! weights and activations, per tensor) is installed, calibrated on the warm-up batch and fixed
//! before timing. With `both` (the default), an FP32 and a quantized copy of the model run
//! alternately, batch by batch, so that both see the same machine state; the report gives the
//! median and best img/s of each and the quantization overhead (ratio of the medians).

use std::time::Instant;

use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::{install, PtqConfig};
use fp8q_tensors::feature_map::FeatureMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: throughput ARCH CHECKPOINT [BATCH] [ITERATIONS] [fp32|fp8|both]".into());
    }
    let arch: Architecture = args[1].parse()?;
    let batch: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let iters: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let mode = args.get(5).map(String::as_str).unwrap_or("both");
    let modes: &[&str] = match mode {
        "fp32" => &["fp32"],
        "fp8" => &["fp8"],
        "both" => &["fp32", "fp8"],
        other => return Err(format!("unknown mode {other}: fp32, fp8 or both").into()),
    };
    let x: Vec<f32> = (0..batch * 3 * 224 * 224)
        .map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
        .collect();
    let input = || -> Result<FeatureMap, Box<dyn std::error::Error>> {
        Ok(FeatureMap::from_vec(x.clone(), batch, 3, 224, 224)?)
    };
    let mut models = Vec::new();
    for &m in modes {
        let mut model = Model::load(arch, &args[2])?;
        let installed = if m == "fp8" {
            Some(install(&mut model, &PtqConfig::default())?)
        } else {
            None
        };
        model.forward_fm(input()?)?; // warm-up (calibration)
        if let Some(inst) = &installed {
            inst.fix_all()?;
        }
        models.push((m, model, Vec::new()));
    }
    for _ in 0..iters {
        for (_, model, times) in &mut models {
            let fm = input()?;
            let t = Instant::now();
            model.forward_fm(fm)?;
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let mut medians = Vec::new();
    for (m, _, times) in &mut models {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        medians.push(median);
        println!(
            "{arch} {m}: batch {batch}, {iters} iterations, median {:.1} img/s, best {:.1} img/s",
            batch as f64 / median,
            batch as f64 / times[0]
        );
    }
    if let [fp32, fp8] = medians[..] {
        println!(
            "quantization overhead: {:+.1}% time per batch (medians)",
            100.0 * (fp8 / fp32 - 1.0)
        );
    }
    Ok(())
}
