//! Per-element kernels of `fp8q analyze`'s weights mode, on one thread and one cache-resident
//! chunk: the moments of [`Moments::of`] against a plain E4M3 quantize–dequantize and the
//! summed squared error of the same quantizer (the measure pass). Throughput in elements/s, so
//! the statistics pass can be read as a fraction of one quantize pass.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fp8q_core::analysis::distributions::Distribution;
use fp8q_core::analysis::tensor_stats::{Moments, CHUNK};
use fp8q_core::quantizer::QuantMethod;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let x = Distribution::gauss(0.0, 0.02, -1.0, 1.0).unwrap().sample_f32(CHUNK, 7);
    let q = QuantMethod::from_format("e4m3".parse().unwrap())
        .quantizer_for_range(-0.1, 0.1)
        .unwrap();
    let mut out = vec![0.0f32; x.len()];
    let mut g = c.benchmark_group("analysis_kernels");
    g.throughput(Throughput::Elements(x.len() as u64));
    g.bench_function("moments", |b| b.iter(|| Moments::of(black_box(&x))));
    g.bench_function("quantize_e4m3", |b| {
        b.iter(|| q.quantize(black_box(&x), black_box(&mut out)))
    });
    g.bench_function("sum_sq_error_e4m3", |b| b.iter(|| q.sum_sq_error(black_box(&x))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
