//! Bit-exact parity of the standard 8-bit encodings with ml_dtypes (`standard_encodings.json`,
//! `docs/formats.md`): every decoded code and every encoded input of a plain cast.

use fp8q_core::format::{Overflow, StandardFp8};
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/standard_encodings.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("golden data {path} missing: {e}"));
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn format_entry(g: &Value, f: StandardFp8) -> &Value {
    g["formats"]
        .get(f.name())
        .unwrap_or_else(|| panic!("golden file lacks {}", f.name()))
}

/// The golden value of a code: `None` for NaN.
fn golden_value(v: &Value) -> Option<f32> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "inf" => Some(f32::INFINITY),
        Value::String(s) if s == "-inf" => Some(f32::NEG_INFINITY),
        Value::Number(n) => {
            let d = n.as_f64().unwrap();
            let f = d as f32;
            assert_eq!(f as f64, d, "golden value {d} is not an f32");
            Some(f)
        }
        other => panic!("unexpected golden decode entry {other}"),
    }
}

#[test]
fn decode_every_code_bit_exact() {
    let g = golden();
    for f in StandardFp8::ALL {
        let dec = format_entry(&g, f)["decode"].as_array().expect("decode array");
        assert_eq!(dec.len(), 256, "{}", f.name());
        let mut nan_codes = Vec::new();
        for (code, v) in dec.iter().enumerate() {
            let got = f.decode(code as u8);
            match golden_value(v) {
                None => {
                    assert!(got.is_nan(), "{} code {code:#04x}: expected NaN, got {got}", f.name());
                    assert!(f.is_nan_code(code as u8));
                    nan_codes.push(code as u8);
                }
                Some(want) => {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} code {code:#04x}: expected {want:e} ({:#010x}), got {got:e} ({:#010x})",
                        f.name(),
                        want.to_bits(),
                        got.to_bits()
                    );
                    assert!(!f.is_nan_code(code as u8));
                }
            }
        }
        assert_eq!(nan_codes, f.nan_codes(), "{}", f.name());
        // the golden max, min values and the number of distinct finite values
        let max = format_entry(&g, f)["max"].as_f64().unwrap();
        assert_eq!(f.max_value() as f64, max, "{}", f.name());
        let mut finite: Vec<f32> = dec.iter().filter_map(golden_value).filter(|v| v.is_finite()).collect();
        finite.sort_by(f32::total_cmp);
        finite.dedup_by(|a, b| a == b); // -0 == +0
        assert_eq!(finite.len(), f.num_finite_values(), "{}", f.name());
        assert_eq!(finite, f.values(), "{}", f.name());
        let pos: Vec<f32> = finite.iter().copied().filter(|&v| v > 0.0).collect();
        assert_eq!(pos[0], f.min_subnormal(), "{}", f.name());
        let m = f.mantissa_bits() as usize;
        assert_eq!(pos[(1 << m) - 1], f.min_normal(), "{}", f.name());
        assert_eq!(f.has_inf(), dec.iter().any(|v| v == "inf"), "{}", f.name());
        assert_eq!(
            f.has_negative_zero(),
            golden_value(&dec[0x80]) == Some(0.0),
            "{}",
            f.name()
        );
    }
}

#[test]
fn encode_every_input_bit_exact() {
    let g = golden();
    let mut total = 0;
    for f in StandardFp8::ALL {
        let e = format_entry(&g, f);
        let inputs = e["encode_inputs_f32_bits"].as_array().expect("inputs");
        let codes = e["encode_codes"].as_array().expect("codes");
        assert_eq!(inputs.len(), codes.len());
        assert!(inputs.len() > 1000, "{}: suspiciously few inputs", f.name());
        let xs: Vec<f32> = inputs
            .iter()
            .map(|b| f32::from_bits(u32::try_from(b.as_u64().unwrap()).unwrap()))
            .collect();
        let want: Vec<u8> = codes
            .iter()
            .map(|c| u8::try_from(c.as_u64().unwrap()).unwrap())
            .collect();
        let mut failures = Vec::new();
        for (&x, &w) in xs.iter().zip(&want) {
            let got = f.encode(x, Overflow::Cast);
            if got != w {
                failures.push(format!(
                    "x = {x:e} ({:#010x}): expected {w:#04x}, got {got:#04x}",
                    x.to_bits()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{}: {} of {} encodings differ, e.g.\n{}",
            f.name(),
            failures.len(),
            xs.len(),
            failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        // the slice helper agrees with the scalar path
        let mut out = vec![0u8; xs.len()];
        f.encode_slice(&xs, &mut out, Overflow::Cast);
        assert_eq!(out, want, "{}: encode_slice", f.name());
        total += xs.len();
    }
    println!("{total} golden encodings matched bit-exactly");
}

/// Saturating encoding differs from the cast exactly where the cast overflows.
#[test]
fn saturate_differs_from_cast_only_on_overflow() {
    let g = golden();
    for f in StandardFp8::ALL {
        let e = format_entry(&g, f);
        let max_code = f.encode(f.max_value(), Overflow::Cast);
        for (b, c) in e["encode_inputs_f32_bits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(e["encode_codes"].as_array().unwrap())
        {
            let x = f32::from_bits(b.as_u64().unwrap() as u32);
            let cast = c.as_u64().unwrap() as u8;
            let sat = f.encode(x, Overflow::Saturate);
            if x.is_nan() {
                assert!(f.decode(sat).is_nan());
                continue;
            }
            let cast_v = f.decode(cast);
            if cast_v.is_finite() {
                assert_eq!(sat, cast, "{} x = {x:e}", f.name());
            } else {
                // the cast overflowed: saturate to ±max with the sign of x
                let want = if x < 0.0 { max_code | 0x80 } else { max_code };
                assert_eq!(sat, want, "{} x = {x:e}", f.name());
            }
        }
    }
}

#[test]
fn decode_slice_matches_golden() {
    let g = golden();
    for f in StandardFp8::ALL {
        let codes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0f32; 256];
        f.decode_slice(&codes, &mut out);
        for (c, v) in format_entry(&g, f)["decode"].as_array().unwrap().iter().enumerate() {
            match golden_value(v) {
                None => assert!(out[c].is_nan()),
                Some(w) => assert_eq!(out[c].to_bits(), w.to_bits(), "{} {c}", f.name()),
            }
        }
    }
}
