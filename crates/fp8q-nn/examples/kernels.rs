//! Per-kernel timings on the layer shapes of ResNet-18 and MobileNetV2 at 224×224:
//! `cargo run --release -p fp8q-nn --example kernels -- [batch] [repeats] [name filter]`.
//!
//! Prints the best wall time of `repeats` runs, the process CPU time per run (Linux), and the
//! rate in GMAC/s, for each dense and depthwise convolution shape.

use std::time::Instant;

use fp8q_nn::kernels::{conv::conv2d_slice, depthwise::depthwise_conv2d, pool::max_pool2d, Window};
use fp8q_tensors::feature_map::FeatureMap;

/// User + system CPU seconds of this process so far (0 where `/proc` is unavailable).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn pseudo(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0).collect()
}

fn time(repeats: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (mut best, cpu0) = (f64::INFINITY, cpu_seconds());
    for _ in 0..repeats {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, (cpu_seconds() - cpu0) / repeats as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let repeats: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let only = args.get(3).cloned().unwrap_or_default();
    let win = |k: usize, stride: usize, pad: usize| Window {
        kh: k,
        kw: k,
        stride,
        pad,
    };
    // (name, c, h, oc, window, count in the network)
    let dense = [
        ("r18 conv1 7x7s2", 3, 224, 64, win(7, 2, 3), 1),
        ("r18 l1 3x3", 64, 56, 64, win(3, 1, 1), 4),
        ("r18 l2 3x3s2", 64, 56, 128, win(3, 2, 1), 1),
        ("r18 l2 3x3", 128, 28, 128, win(3, 1, 1), 3),
        ("r18 l3 3x3", 256, 14, 256, win(3, 1, 1), 3),
        ("r18 l4 3x3", 512, 7, 512, win(3, 1, 1), 3),
        ("r18 l2 ds 1x1s2", 64, 56, 128, win(1, 2, 0), 1),
        ("mv2 expand 24->144 @56", 24, 56, 144, win(1, 1, 0), 1),
        ("mv2 project 144->24 @56", 144, 56, 24, win(1, 1, 0), 1),
        ("mv2 expand 64->384 @14", 64, 14, 384, win(1, 1, 0), 1),
        ("mv2 project 384->64 @14", 384, 14, 64, win(1, 1, 0), 1),
        ("mv2 expand 160->960 @7", 160, 7, 960, win(1, 1, 0), 1),
        ("mv2 head 320->1280 @7", 320, 7, 1280, win(1, 1, 0), 1),
    ];
    let mut total = 0.0;
    for (name, c, h, oc, w, count) in dense {
        if !name.contains(only.as_str()) {
            continue;
        }
        let x = FeatureMap::from_vec(pseudo(n * c * h * h), n, c, h, h)?;
        let wt = pseudo(oc * c * w.kh * w.kw);
        let (oh, ow) = w.out_hw(h, h).ok_or("shape")?;
        let macs = (n * oc * oh * ow * c * w.kh * w.kw) as f64;
        let (best, cpu) = time(repeats, || {
            conv2d_slice(&x, &wt, oc, w, name).unwrap();
        });
        total += best * count as f64;
        println!(
            "{name:28} {:8.2} ms  cpu {:8.2} ms  {:6.1} GMAC/s",
            best * 1e3,
            cpu * 1e3,
            macs / best / 1e9
        );
    }
    println!("r18 dense convs (weighted by count): {:.1} ms", total * 1e3);
    for (name, c, h, stride) in [
        ("mv2 dw 96 @112 s2", 96, 112, 2),
        ("mv2 dw 144 @56 s1", 144, 56, 1),
        ("mv2 dw 384 @14 s1", 384, 14, 1),
        ("mv2 dw 960 @7 s1", 960, 7, 1),
    ] {
        if !name.contains(only.as_str()) {
            continue;
        }
        let x = FeatureMap::from_vec(pseudo(n * c * h * h), n, c, h, h)?;
        let wt = pseudo(c * 9);
        let (best, cpu) = time(repeats, || {
            depthwise_conv2d(&x, &wt, win(3, stride, 1), name).unwrap();
        });
        let bytes = (n * c * h * h * 4) as f64;
        println!(
            "{name:28} {:8.2} ms  cpu {:8.2} ms  {:6.1} GB/s in",
            best * 1e3,
            cpu * 1e3,
            bytes / best / 1e9
        );
    }
    if !"r18 maxpool".contains(only.as_str()) {
        return Ok(());
    }
    let x = FeatureMap::from_vec(pseudo(n * 64 * 112 * 112), n, 64, 112, 112)?;
    let (best, cpu) = time(repeats, || {
        max_pool2d(&x, win(3, 2, 1), "maxpool").unwrap();
    });
    println!("{:28} {:8.2} ms  cpu {:8.2} ms", "r18 maxpool", best * 1e3, cpu * 1e3);
    Ok(())
}
