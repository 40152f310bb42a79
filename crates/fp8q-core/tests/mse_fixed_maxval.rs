//! The MSE estimator on an FP slot whose maximum the range does not set (`--fp8-set-maxval`
//! off, the default): the reference's quantizer ignores the candidate ranges, so every
//! candidate is scored at the slot's fixed maximum and only the mantissa count is chosen — the
//! count that is best *at that maximum*. Expected values from the reference's
//! `FP_MSE_Estimator` (`tests/data/mse_fixed_maxval.json`, made with the reference checkout of
//! `tools/reference_diff.py`); `tools/reference_diff.py` found fp8q choosing other counts
//! (scoring each candidate at its own maximum) on ResNet-18 with `--act-quant-method MSE`.

use fp8q_core::manager::{QuantConfig, QuantManager, QuantizerState};
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::RangeMethod;
use serde_json::Value;

#[test]
fn mse_without_set_maxval_picks_the_reference_mantissa_count() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mse_fixed_maxval.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (k, case) in doc["cases"].as_array().unwrap().iter().enumerate() {
        let per_channel = case["per_channel"].as_bool().unwrap();
        let mut slot = QuantManager::new(QuantConfig {
            method: QuantMethod::Fp {
                n_bits: 8,
                mantissa_bits: 4,
                allow_unsigned: case["allow_unsigned"].as_bool().unwrap(),
            },
            range_method: RangeMethod::Mse { mantissa_search: true },
            per_channel,
            fp_set_maxval: false,
            fp_maxval: None,
        })
        .unwrap();
        let dim0 = case["shape"][0].as_u64().unwrap() as usize;
        for (b, (batch, want)) in case["batches"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["after_each_batch"].as_array().unwrap())
            .enumerate()
        {
            let mut x: Vec<f32> = batch
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            slot.forward(&mut x, dim0).unwrap();
            let Some(QuantizerState::Fp {
                maxval,
                mantissa_bits,
                sign_bits,
                ..
            }) = slot.state()
            else {
                panic!("case {k}: not an FP state");
            };
            assert_eq!(
                mantissa_bits as u64,
                want["mantissa_bits"].as_u64().unwrap(),
                "case {k} batch {b}"
            );
            assert_eq!(
                sign_bits as u64,
                want["sign_bits"].as_u64().unwrap(),
                "case {k} batch {b}"
            );
            assert_eq!(maxval, vec![15.5], "case {k} batch {b}");
        }
    }
}
