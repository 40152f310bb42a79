//! End-to-end checks of `fp8q formats` and `fp8q quantize` through the built binary.

use std::path::Path;
use std::process::Output;

mod common;
use common::{fp8q, tmpdir};

/// A little-endian `.npy` v1.0 file written by hand (independent of the code under test).
fn write_npy(path: &Path, descr: &str, shape: &[usize], payload: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(payload);
    std::fs::write(path, bytes).unwrap();
}

fn read_npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("<f4"), "{header}");
    bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn sample(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.618).sin() * (1.0 + (i % 5) as f32)) * 0.7)
        .collect()
}

fn assert_user_error(out: &Output, needle: &str) {
    common::assert_user_error(out, &[needle]);
}

#[test]
fn formats_table_and_json() {
    let out = fp8q(&["formats"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "E5M2",
        "E4M3",
        "E3M4",
        "E2M5",
        "E1M6",
        "INT8",
        "float8_e4m3fn",
        "float8_e5m2fnuz",
        "mxfp8_e4m3",
        "mxfp6_e2m3",
        "mxfp4",
        "mxint8",
        "nvfp4",
        "e2m1@16/e4m3",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let out = fp8q(&["formats", "--formats", "mxfp4,nvfp4", "--block-size", "64", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["block_size"].as_u64(), v[0]["max"].as_f64()),
        (Some("e2m1@64"), Some(64), Some(6.0))
    );
    assert_eq!(
        (v[1]["scale"].as_str(), v[1]["bits_per_element"].as_f64()),
        (Some("e4m3"), Some(4.125))
    );
    let help = String::from_utf8_lossy(&fp8q(&["formats", "--help"]).stdout).into_owned();
    assert!(
        help.contains("ELEMENT@K[/SCALE][:RULE]") && help.contains("rceil"),
        "{help}"
    );
    let out = fp8q(&[
        "formats",
        "--formats",
        "e4m3,int8",
        "--maxval",
        "2",
        "--json",
        "--values",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e4m3 = &v[0];
    assert_eq!(e4m3["max"], 2.0);
    assert_eq!(e4m3["distinct_values"], 255);
    let values = e4m3["values"].as_array().unwrap();
    assert_eq!(values.len(), 255);
    assert_eq!(values.last().unwrap().as_f64(), Some(2.0));
    // bias = 2^e - log2(α) + log2(2 - 2^-m) - 1 = 16 - 1 + log2(1.875) - 1
    let bias = e4m3["bias"].as_f64().unwrap();
    assert!((bias - (14.0 + 1.875f64.log2())).abs() < 1e-12, "{bias}");
    assert_eq!(v[1]["min_normal"].as_f64(), Some((2.0f32 / 127.0) as f64));
}

#[test]
fn formats_rejects_impossible_formats() {
    assert_user_error(&fp8q(&["formats", "--formats", "e0m7"]), "exponent");
    assert_user_error(&fp8q(&["formats", "--formats", "fp8"]), "'fp8'");
    assert_user_error(&fp8q(&["formats", "--maxval=-1"]), "--maxval");
    assert_user_error(&fp8q(&["formats", "--formats", "mxfp4", "--maxval", "2"]), "block");
    assert_user_error(
        &fp8q(&["formats", "--formats", "mxfp4", "--block-size", "0"]),
        "block size",
    );
    assert_user_error(&fp8q(&["formats", "--formats", "e2m1@8/e5m2"]), "cannot hold");
}

#[test]
fn quantize_npy_matches_the_library_and_reports_sqnr() {
    let dir = tmpdir("npy");
    let x = sample(4 * 3 * 3 * 3);
    let input = dir.join("w.npy");
    write_npy(
        &input,
        "<f4",
        &[4, 3, 3, 3],
        &x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    );
    let output = dir.join("q.npy");
    let out = fp8q(&[
        "quantize",
        input.to_str().unwrap(),
        "--format",
        "e3m4",
        "--per-channel",
        "--json",
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = read_npy_f32(&output);
    assert_eq!(q.len(), x.len());
    // independent expectation: per channel, α = absmax of the channel, E3M4 quantizer
    let fmt = fp8q_core::format::FpFormat::new(8, 4, true).unwrap();
    let per = x.len() / 4;
    let mut noise = 0.0f64;
    for c in 0..4 {
        let ch = &x[c * per..(c + 1) * per];
        let alpha = ch.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        let quant = fp8q_core::quantizer::FpQuantizer::new(fmt, alpha).unwrap();
        for (i, v) in ch.iter().enumerate() {
            assert_eq!(q[c * per + i], quant.quantize_value(*v), "channel {c} element {i}");
            noise += ((q[c * per + i] - v) as f64).powi(2);
        }
        let (lo, hi) = (
            report[0]["range"]["min"][c].as_f64().unwrap(),
            report[0]["range"]["max"][c].as_f64().unwrap(),
        );
        assert_eq!(lo.abs().max(hi.abs()) as f32, alpha as f32);
    }
    let signal: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
    let sqnr = report[0]["sqnr_db"].as_f64().unwrap();
    assert!((sqnr - 10.0 * (signal / noise).log10()).abs() < 1e-9, "{sqnr}");
}

/// A block format through `fp8q quantize`: blocks along the chosen axis, the output equals the
/// library's `quantize_blocks`, the range is null, and range options are refused.
#[test]
fn quantize_with_block_formats() {
    let dir = tmpdir("npy-blocks");
    let shape = [6usize, 40, 3];
    let x = sample(shape.iter().product());
    let input = dir.join("w.npy");
    write_npy(
        &input,
        "<f4",
        &shape,
        &x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    );
    let output = dir.join("q.npy");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "quantize",
            input.to_str().unwrap(),
            "--json",
            "-o",
            output.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fp8q(&args)
    };
    for (format, axis, k, want_name) in [
        ("mxfp4", "-1", Some("3"), "e2m1@3"),
        ("mxfp6_e2m3", "1", None, "mxfp6_e2m3"),
        ("nvfp4", "1", Some("8"), "e2m1@8/e4m3"),
        ("e3m4@16:rceil", "0", None, "e3m4@16:rceil"),
    ] {
        let mut extra = vec!["--format", format, "--block-axis", axis];
        if let Some(k) = k {
            extra.extend(["--block-size", k]);
        }
        let out = run(&extra);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report[0]["format"], want_name, "{format}");
        assert!(report[0]["range"].is_null());
        let f: fp8q_core::format::Format = want_name.parse().unwrap();
        let mut want = vec![0f32; x.len()];
        fp8q_core::quantizer::block_quantizer::quantize_blocks(
            f.as_block().unwrap(),
            &x,
            &shape,
            axis.parse().unwrap(),
            &mut want,
        )
        .unwrap();
        assert_eq!(read_npy_f32(&output), want, "{format}");
        let noise: f64 = x.iter().zip(&want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let signal: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        let sqnr = report[0]["sqnr_db"].as_f64().unwrap();
        assert!((sqnr - 10.0 * (signal / noise).log10()).abs() < 1e-9, "{format} {sqnr}");
    }
    for (extra, needle) in [
        (vec!["--format", "mxfp4", "--per-channel"], "--per-channel"),
        (vec!["--format", "mxfp4", "--maxval", "2"], "--maxval"),
        (vec!["--format", "mxfp4", "--block-axis", "3"], "axis"),
        (vec!["--format", "mxfp4", "--block-size", "0"], "block size"),
        (vec!["--format", "e2m1@16/int4"], "cannot hold"),
    ] {
        assert_user_error(&run(&extra), needle);
    }
}

#[test]
fn quantize_reads_f64_npy_and_searches_mantissa_bits() {
    let dir = tmpdir("f64");
    let x: Vec<f64> = sample(512).iter().map(|v| *v as f64).collect();
    let input = dir.join("a.npy");
    write_npy(
        &input,
        "<f8",
        &[512],
        &x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    );
    let out = fp8q(&[
        "quantize",
        input.to_str().unwrap(),
        "--range",
        "mse",
        "--mantissa-search",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["stored_dtype"], "f64");
    let m = report[0]["mantissa_bits"].as_u64().unwrap();
    assert!((1..=6).contains(&m));
}

#[test]
fn quantize_safetensors_keeps_other_tensors() {
    use safetensors::tensor::TensorView;
    let dir = tmpdir("st");
    let w = sample(64);
    let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ids: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = safetensors::serialize(
        vec![
            (
                "layer.weight".to_string(),
                TensorView::new(safetensors::Dtype::F32, vec![8, 8], &wb).unwrap(),
            ),
            (
                "ids".to_string(),
                TensorView::new(safetensors::Dtype::I64, vec![3], &ids).unwrap(),
            ),
            (
                "empty".to_string(),
                TensorView::new(safetensors::Dtype::F32, vec![0, 4], &[]).unwrap(),
            ),
            (
                "zeros".to_string(),
                TensorView::new(safetensors::Dtype::F32, vec![2, 2], &[0u8; 16]).unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    let input = dir.join("m.safetensors");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.join("q.safetensors");
    let out = fp8q(&[
        "quantize",
        input.to_str().unwrap(),
        "--format",
        "int8",
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // an empty tensor is kept and named; an all-zero one is reproduced exactly (+inf dB)
    assert!(
        stdout.contains("1 empty tensor(s) not quantized (written unchanged): empty"),
        "{stdout}"
    );
    let zeros_line = stdout.lines().find(|l| l.starts_with("zeros ")).unwrap();
    assert!(zeros_line.trim_end().ends_with(" inf"), "{zeros_line}");
    let back = std::fs::read(&output).unwrap();
    let st = safetensors::SafeTensors::deserialize(&back).unwrap();
    assert_eq!(st.tensor("ids").unwrap().data(), &ids[..]);
    assert_eq!(st.tensor("empty").unwrap().shape(), &[0, 4]);
    assert_eq!(st.tensor("zeros").unwrap().data(), &[0u8; 16][..]);
    let q: Vec<f32> = st
        .tensor("layer.weight")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let absmax = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let delta = absmax / 127.0;
    for (a, b) in w.iter().zip(&q) {
        let k = b / delta;
        assert!(
            (k - k.round()).abs() < 1e-3,
            "{b} is not on the INT8 grid of step {delta}"
        );
        assert!((a - b).abs() <= delta / 2.0 * 1.0001, "{a} -> {b}");
    }
}

#[test]
fn quantize_bad_input_is_a_clear_error() {
    let dir = tmpdir("bad");
    let missing = dir.join("missing.npy");
    assert_user_error(&fp8q(&["quantize", missing.to_str().unwrap()]), "missing.npy");
    let corrupt = dir.join("corrupt.npy");
    std::fs::write(&corrupt, b"not an npy file at all").unwrap();
    assert_user_error(&fp8q(&["quantize", corrupt.to_str().unwrap()]), "corrupt.npy");
    let ints = dir.join("ints.npy");
    write_npy(&ints, "<i4", &[2], &[1, 0, 0, 0, 2, 0, 0, 0]);
    assert_user_error(&fp8q(&["quantize", ints.to_str().unwrap()]), "unsupported dtype");
    let good = dir.join("good.npy");
    write_npy(&good, "<f4", &[2], &[0, 0, 128, 63, 0, 0, 0, 64]);
    let g = good.to_str().unwrap();
    assert_user_error(&fp8q(&["quantize", g, "--format", "e0m7"]), "exponent");
    assert_user_error(&fp8q(&["quantize", g, "--mantissa-search"]), "--range mse");
    assert_user_error(
        &fp8q(&["quantize", g, "--format", "int8", "--range", "mse", "--mantissa-search"]),
        "flexible-bias",
    );
    assert_user_error(&fp8q(&["quantize", g, "--maxval", "0"]), "--maxval");
    assert_user_error(&fp8q(&["quantize", g, "--range", "median"]), "median");
    assert_user_error(
        &fp8q(&["quantize", g, "-o", dir.join("x.txt").to_str().unwrap()]),
        "x.txt",
    );
    let txt = dir.join("w.txt");
    std::fs::write(&txt, "1 2 3").unwrap();
    assert_user_error(&fp8q(&["quantize", txt.to_str().unwrap()]), "w.txt");
}
