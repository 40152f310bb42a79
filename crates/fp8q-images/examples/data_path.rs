//! Throughput of the data path alone: decode, resize to 248, centre-crop 224 and normalize every
//! image of an ImageNet-layout split in batches, as `validate-quantized` feeds its model (no
//! model runs). Compare with PIL + torchvision's DataLoader on the same folder
//! (`python tools/bench_data_path.py loader DIR`) and with the model alone (`--example throughput`).
//!
//! ```sh
//! python tools/bench_data_path.py make /tmp/bench500          # 500×375 JPEG photographs
//! cargo run --release -p fp8q-images --example data_path -- /tmp/bench500/val 32 3
//! cargo run --release -p fp8q-images --example data_path -- /tmp/bench500/val 32 1 --check
//! ```
//!
//! `--check` also compares every batch, bit for bit, with the plain path: the whole image
//! decoded ([`decode`]), then resized, cropped and normalized ([`Transform::apply`]).

use std::time::Instant;

use fp8q_images::decode::decode;
use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let check = args.iter().any(|a| a == "--check");
    args.retain(|a| a != "--check");
    let [_, dir, rest @ ..] = args.as_slice() else {
        return Err("usage: data_path SPLIT_DIR [BATCH] [REPEATS] [--check]".into());
    };
    let batch: usize = rest.first().map_or(Ok(32), |s| s.parse())?;
    let repeats: usize = rest.get(1).map_or(Ok(3), |s| s.parse())?;
    let ds = ImageFolder::open(dir)?;
    let mut best = 0.0f64;
    for _ in 0..repeats {
        let start = Instant::now();
        let mut n = 0;
        for b in BatchLoader::new(&ds, LoaderOptions::new(batch, Transform::val())) {
            let b = b?;
            n += b.labels.len();
            if check {
                let per_image = 3 * 224 * 224;
                for (k, &i) in b.indices.iter().enumerate() {
                    let mut want = vec![0f32; per_image];
                    Transform::val().apply(&decode(&ds.samples[i].0)?, i as u64, &mut want);
                    let got = &b.images.data[k * per_image..(k + 1) * per_image];
                    if got.iter().zip(&want).any(|(a, b)| a.to_bits() != b.to_bits()) {
                        return Err(format!("{:?}: loader differs from decode + apply", ds.samples[i].0).into());
                    }
                }
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("{n} images: {rate:.1} img/s");
        best = best.max(rate);
    }
    println!(
        "data path ({} threads): best {best:.1} img/s",
        rayon::current_num_threads()
    );
    Ok(())
}
