//! JPEG decoding speed: our Pillow-exact decoder (libjpeg-turbo's C code through `mozjpeg-sys`)
//! against the `image` crate's decoder (zune-jpeg, used before):
//! `cargo run --release -p fp8q-images --example decode_speed -- [FILE.jpg] [ITERATIONS]`
//! (default: the 500×375 4:2:0 quality-90 fixture, 300 iterations). Files are read once; the
//! timing is the decoding to RGB alone, median and best of five rounds, one thread.
//!
//! Pillow on the same file, for comparison (same session, same machine):
//! `python -c "import io,timeit;from PIL import Image;b=open('F','rb').read();print(min(timeit.repeat(lambda:Image.open(io.BytesIO(b)).convert('RGB'),number=300,repeat=5))/300*1e3,'ms')"`

use std::time::Instant;

use fp8q_images::decode::decode_bytes;

fn time_ms(iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / iters as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    (rounds[2], rounds[0])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images/j420_q90_500x375.jpg");
    let path = args.get(1).map(String::as_str).unwrap_or(default);
    let iters: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(300);
    let bytes = std::fs::read(path)?;
    let ours = decode_bytes(&bytes)?;
    let theirs = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)?.to_rgb8();
    let differ = ours.data.iter().zip(theirs.as_raw()).filter(|(a, b)| a != b).count();
    println!(
        "{path}: {}×{}, {} bytes; image crate differs from ours in {differ} of {} bytes",
        ours.width,
        ours.height,
        bytes.len(),
        ours.data.len()
    );
    let (med, best) = time_ms(iters, || {
        std::hint::black_box(decode_bytes(&bytes).unwrap());
    });
    println!("libjpeg-turbo C (mozjpeg-sys, ours): median {med:.3} ms, best {best:.3} ms per image");
    let (med, best) = time_ms(iters, || {
        std::hint::black_box(
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
                .unwrap()
                .to_rgb8(),
        );
    });
    println!("image crate (zune-jpeg, before):    median {med:.3} ms, best {best:.3} ms per image");
    Ok(())
}
