//! What the data path adds to a quantized model's time, measured in one process:
//! `cargo run --release -p fp8q-ptq --example end_to_end -- ARCH CKPT SPLIT_DIR [batch] [segment] [rounds]`.
//!
//! The FP8 model (the default PTQ setup: the reference's defaults, E3M4 per tensor; calibrated on
//! the first batch and fixed) runs in alternating segments of `segment` batches: on batches the
//! loader decodes from `SPLIT_DIR` ahead of the model (as `validate-quantized` runs) and on
//! demand (`prefetch` 0), and on a batch decoded beforehand (the model alone). Segments alternate
//! so that all see the same machine state; a shared machine drifts by more than the differences
//! between them over a minute. The report gives the median img/s of each and, as the median over
//! rounds, what the data path adds to the model's time.
//!
//! ```sh
//! python tools/bench_data_path.py make /tmp/bench2k --images 2560   # 500×375 JPEG photographs
//! cargo run --release -p fp8q-ptq --example end_to_end -- mobilenet_v2 mnv2.pth /tmp/bench2k/val 32 8 12
//! ```

use std::time::Instant;

use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::{install, PtqConfig};
use fp8q_tensors::feature_map::FeatureMap;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, arch, ckpt, dir, rest @ ..] = args.as_slice() else {
        return Err("usage: end_to_end ARCH CHECKPOINT SPLIT_DIR [BATCH] [SEGMENT] [ROUNDS]".into());
    };
    let arch: Architecture = arch.parse()?;
    let batch: usize = rest.first().map_or(Ok(32), |s| s.parse())?;
    let segment: usize = rest.get(1).map_or(Ok(4), |s| s.parse())?;
    let rounds: usize = rest.get(2).map_or(Ok(10), |s| s.parse())?;
    // loading ahead on the idle-priority pool (what `validate-quantized` does), and on demand
    let modes = [("ahead", 2), ("on demand", 0)];
    let ds = ImageFolder::open(dir)?;
    let opts = LoaderOptions::new(batch, Transform::val());
    let first = BatchLoader::new(&ds, opts.clone()).next().ok_or("no images")??;
    let mut model = Model::load(arch, ckpt)?;
    let installed = install(&mut model, &PtqConfig::default())?;
    model.forward_fm(first.images.clone())?;
    installed.fix_all()?;

    let per_segment = batch * segment;
    let mut offset = 0;
    let mut alone = Vec::new();
    let mut ends: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        let t = Instant::now();
        for _ in 0..segment {
            model.forward_fm(first.images.clone())?;
        }
        alone.push(per_segment as f64 / t.elapsed().as_secs_f64());
        for (m, mode) in modes.iter().enumerate() {
            // a different slice of the folder each time, so no file is hot from the last segment
            if offset + per_segment > ds.samples.len() {
                offset = 0;
            }
            let mut part = ds.clone();
            part.samples = ds.samples[offset..offset + per_segment].to_vec();
            offset += per_segment;
            let mut o = opts.clone();
            o.prefetch = mode.1;
            let t = Instant::now();
            let mut n = 0;
            for b in BatchLoader::new(&part, o) {
                let b = b?;
                n += b.labels.len();
                let x: FeatureMap = b.images;
                model.forward_fm(x)?;
            }
            ends[m].push(n as f64 / t.elapsed().as_secs_f64());
        }
        println!(
            "round {round}: alone {:.1}{}",
            alone[round],
            modes
                .iter()
                .zip(&ends)
                .map(|((m, _), e)| format!(", {m} {:.1}", e[round]))
                .collect::<String>()
        );
    }
    let mut ratios: Vec<Vec<f64>> = ends
        .iter()
        .map(|e| alone.iter().zip(e).map(|(a, r)| a / r - 1.0).collect())
        .collect();
    let a = median(&mut alone);
    println!(
        "{arch}, batch {batch}, segments of {segment} batches, {rounds} rounds: model alone {a:.1} img/s (median)"
    );
    for (((m, _), e), q) in modes.iter().zip(&mut ends).zip(&mut ratios) {
        let r = median(e);
        let lo = q.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "  {m}: end to end {r:.1} img/s (median); the data path adds {:+.1}% to the model's time (median of rounds; range {:+.1}% to {:+.1}%)",
            100.0 * median(q),
            100.0 * lo,
            100.0 * hi
        );
    }
    Ok(())
}
