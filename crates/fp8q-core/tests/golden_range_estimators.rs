//! Parity of the range estimators with the reference (tests/data/range_estimators.json, `docs/range-estimators.md`):
//! ranges within 1e-5 relative after every batch; the MSE estimator's mantissa choice equal.

use fp8q_core::format::{IntFormat, IntKind};
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::{RangeEstimator, RangeMethod};
use serde_json::Value;

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/range_estimators.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("golden file {path} missing: {e}"));
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn method_of(case: &Value) -> (RangeMethod, QuantMethod) {
    let q = &case["quantizer"];
    let quant = match q["kind"].as_str() {
        Some("int") => {
            QuantMethod::Int(IntFormat::new(q["n_bits"].as_u64().unwrap() as u32, IntKind::Symmetric).unwrap())
        }
        // estimators that do not quantize still need a method; FP E4M3 is as good as any
        _ => QuantMethod::Fp {
            n_bits: q["n_bits"].as_u64().unwrap_or(8) as u32,
            mantissa_bits: q["mantissa_bits"].as_u64().unwrap_or(3) as u32,
            allow_unsigned: false,
        },
    };
    let method = match case["method"].as_str().unwrap() {
        "current_minmax" => RangeMethod::CurrentMinMax,
        "allminmax" => RangeMethod::AllMinMax,
        "running_minmax" => RangeMethod::RunningMinMax {
            momentum: case["momentum"].as_f64().unwrap() as f32,
        },
        "MSE" => RangeMethod::Mse {
            mantissa_search: q["include_mantissa_bits"].as_bool().unwrap(),
        },
        "line_search" => RangeMethod::LineSearch {
            num_candidates: case["num_candidates"].as_u64().unwrap() as usize,
            range_margin: case["range_margin"].as_f64().unwrap() as f32,
        },
        other => panic!("unknown method {other}"),
    };
    (method, quant)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1e-30)
}

#[test]
fn range_estimators_match_reference() {
    let golden = load();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    let mut checked = 0;
    for (ci, case) in cases.iter().enumerate() {
        let (method, mut quant) = method_of(case);
        let per_channel = case["per_channel"].as_bool().unwrap();
        let mut est = RangeEstimator::new(method, per_channel);
        for (bi, (batch, expect)) in case["batches"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["after_each_batch"].as_array().unwrap())
            .enumerate()
        {
            let x = f32s(&batch["x"]);
            let dim0 = batch["shape"][0].as_u64().unwrap() as usize;
            let r = est.update(&x, dim0, &mut quant).unwrap();
            let (emin, emax) = (f32s(&expect["x_min"]), f32s(&expect["x_max"]));
            assert_eq!(r.min.len(), emin.len(), "case {ci} ({method}) batch {bi}: channels");
            for c in 0..emin.len() {
                assert!(
                    close(r.min[c], emin[c]) && close(r.max[c], emax[c]),
                    "case {ci} ({method}, per_channel={per_channel}) batch {bi} channel {c}: got [{}, {}], expected [{}, {}]",
                    r.min[c],
                    r.max[c],
                    emin[c],
                    emax[c]
                );
            }
            if let Some(m) = expect.get("mantissa_bits").and_then(Value::as_f64) {
                assert_eq!(
                    quant.mantissa_bits(),
                    Some(m as u32),
                    "case {ci} batch {bi}: mantissa bits"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 33);
}

#[test]
fn estimator_errors_are_clear() {
    let mut q = QuantMethod::from_format("e4m3".parse().unwrap());
    let mut est = RangeEstimator::new(RangeMethod::CurrentMinMax, true);
    let err = est.update(&[1.0, 2.0, 3.0], 2, &mut q).unwrap_err().to_string();
    assert!(err.contains("3 elements") && err.contains("2 channel"), "{err}");
    let err = est.update(&[], 1, &mut q).unwrap_err().to_string();
    assert!(err.contains("0 elements"), "{err}");
    let mut est = RangeEstimator::new(RangeMethod::AllMinMax, false);
    let err = est.update(&[f32::NAN, f32::NAN], 1, &mut q).unwrap_err().to_string();
    assert!(err.contains("no finite values"), "{err}");
    assert!("median".parse::<RangeMethod>().is_err());
}
