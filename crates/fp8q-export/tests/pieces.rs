//! A weight encoded piece by piece (as `fp8q export` streams it) gives exactly the bytes, values
//! and error sums of the whole weight encoded at once, in every format and layout, with pieces
//! that end inside rows wherever the format allows it.

use fp8q_export::encode::{encode, finite_abs_max, needs_tensor_amax, WeightEncoder};
use fp8q_export::{ExportFormat, Layout};

/// Values with varied magnitudes per row and block (and a zero row, and a zero block).
fn weight(out: usize, cols: usize) -> Vec<f32> {
    (0..out * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            if r == 2 || (r == 4 && c < 32) {
                return 0.0;
            }
            let u = ((i * 2_654_435_761) % 10_007) as f32 / 10_007.0 - 0.5;
            u * (1.0 + r as f32) * if c % 37 == 0 { 40.0 } else { 1.0 }
        })
        .collect()
}

#[test]
fn pieces_give_the_whole_weights_encoding() {
    let (out, cols) = (7, 192);
    let x = weight(out, cols);
    let shape = [out, cols];
    let cases = [
        ("float8_e4m3fn", false, Layout::CompressedTensors),
        ("float8_e4m3fn", true, Layout::CompressedTensors),
        ("int8", false, Layout::CompressedTensors),
        ("mxfp8_e4m3", false, Layout::CompressedTensors),
        ("mxfp6_e2m3", false, Layout::CompressedTensors),
        ("mxfp4", false, Layout::CompressedTensors),
        ("nvfp4", false, Layout::CompressedTensors),
        ("nvfp4", false, Layout::ModelOpt),
    ];
    for (name, per_channel, layout) in cases {
        let f = ExportFormat::parse(name, per_channel, None).unwrap();
        let whole = encode(&f, layout, "w.weight", &x, &shape).unwrap();
        let amax = needs_tensor_amax(&f).then(|| finite_abs_max("w.weight", &x).unwrap());
        for pieces_of in [1usize, 2, 3, 5] {
            let mut enc = WeightEncoder::new(&f, layout, "w.weight", &shape, amax).unwrap();
            let unit = enc.piece_unit();
            let piece = unit * pieces_of;
            let (mut first, mut values) = (Vec::new(), vec![0f32; x.len()]);
            let (mut s, mut e) = (0f64, 0f64);
            for (xs, vs) in x.chunks(piece).zip(values.chunks_mut(piece)) {
                let (a, b) = enc.encode_piece(xs, &mut first, vs).unwrap();
                s += a;
                e += b;
            }
            let mut parts = vec![first];
            parts.extend(enc.finish().unwrap());
            let what = format!("{name} per_channel={per_channel} {layout} pieces of {piece}");
            assert_eq!(parts.len(), whole.parts.len(), "{what}");
            for (p, w) in parts.iter().zip(&whole.parts) {
                assert!(p == &w.data, "{what}: {} differs", w.spec.suffix);
            }
            assert!(
                values
                    .iter()
                    .zip(&whole.values)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: values"
            );
            let (s0, e0) = x.iter().zip(&whole.values).fold((0f64, 0f64), |(s, e), (&a, &b)| {
                (s + f64::from(a).powi(2), e + (f64::from(a) - f64::from(b)).powi(2))
            });
            assert!(
                (s - s0).abs() <= 1e-9 * s0 && (e - e0).abs() <= 1e-9 * e0,
                "{what}: sums"
            );
        }
    }
}

#[test]
fn a_bad_piece_or_an_unfinished_weight_is_an_error() {
    let f = ExportFormat::parse("int8", false, None).unwrap();
    let x = weight(3, 64);
    let mut enc = WeightEncoder::new(&f, Layout::CompressedTensors, "w.weight", &[3, 64], None).unwrap();
    let mut stored = Vec::new();
    let mut v = vec![0f32; 65];
    // int8 has a scale per row: a piece must hold whole rows
    let e = enc.encode_piece(&x[..65], &mut stored, &mut v).unwrap_err().to_string();
    assert!(e.contains("w.weight") && e.contains("multiples of 64"), "{e}");
    enc.encode_piece(&x[..64], &mut stored, &mut v[..64]).unwrap();
    let e = enc.finish().unwrap_err().to_string();
    assert!(e.contains("64 of its 192 values"), "{e}");
    // a per-tensor scale needs the tensor's largest magnitude first; NaN has no code
    let fp8 = ExportFormat::parse("float8_e4m3fn", false, None).unwrap();
    assert!(WeightEncoder::new(&fp8, Layout::CompressedTensors, "w.weight", &[3, 64], None).is_err());
    let mut bad = x.clone();
    bad[70] = f32::NAN;
    let e = finite_abs_max("w.weight", &bad).unwrap_err().to_string();
    assert!(e.contains("w.weight") && e.contains("NaN"), "{e}");
    let mut enc = WeightEncoder::new(&f, Layout::CompressedTensors, "w.weight", &[3, 64], None).unwrap();
    let mut v = vec![0f32; 192];
    let e = enc.encode_piece(&bad, &mut stored, &mut v).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
}
