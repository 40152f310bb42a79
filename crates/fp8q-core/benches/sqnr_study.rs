//! Benchmark of the analytical SQNR study (`docs/analysis.md`): the paper's default study with its 15
//! optimal-range searches, and a single MSE evaluation.

use criterion::{criterion_group, criterion_main, Criterion};
use fp8q_core::analysis::distributions::Distribution;
use fp8q_core::analysis::expected_error::expected_mse;
use fp8q_core::analysis::grid_for;
use fp8q_core::analysis::study::{run_study, StudyConfig};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqnr");
    g.sample_size(10);
    g.bench_function("default_study", |b| {
        b.iter(|| run_study(black_box(&StudyConfig::paper())).unwrap())
    });
    for (name, dist) in ["uniform", "gauss", "student-t"]
        .iter()
        .zip(Distribution::paper_defaults())
    {
        let grid = grid_for(&"e4m3".parse().unwrap(), dist.abs_bound()).unwrap();
        g.bench_function(format!("mse_e4m3_{name}"), |b| {
            b.iter(|| expected_mse(black_box(&dist), black_box(&grid)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
