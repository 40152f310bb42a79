//! The reference's command line, verbatim: every option of its `image_net.py validate-quantized`
//! (listed with types, defaults and choices in tests/data/reference_validate_quantized_options.tsv,
//! made by tools/reference_cli_options.py from the reference's sources) is accepted with its
//! spelling, in `--opt value` and `--opt=value` forms, with the reference's value types and
//! choices; `--x/--no-x` pairs keep the last one given; options without effect print a note.
//! Everything runs through `--print-config`, which prints the resolved configuration and reads
//! no file, so no data is needed.

use std::process::Output;

mod common;
use common::{assert_user_error, fp8q};

/// One line of the option list.
#[derive(Debug, Clone)]
struct RefOption {
    spelling: String,
    kind: String,
    default: String,
    choices: Vec<String>,
    sample: String,
}

fn reference_options() -> Vec<RefOption> {
    let text = include_str!("data/reference_validate_quantized_options.tsv");
    let rows: Vec<RefOption> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad line {l:?}");
            RefOption {
                spelling: f[0].to_string(),
                kind: f[1].to_string(),
                default: f[2].to_string(),
                choices: if f[3] == "-" {
                    vec![]
                } else {
                    f[3].split('|').map(str::to_string).collect()
                },
                sample: f[4].to_string(),
            }
        })
        .collect();
    assert!(rows.len() > 60, "only {} options listed", rows.len());
    rows
}

/// The `--x/--no-x` pairs: consecutive flag lines (the generator writes a pair's two spellings
/// together, `--x` first).
fn pairs(rows: &[RefOption]) -> Vec<(String, String, bool)> {
    let flags: Vec<&RefOption> = rows.iter().filter(|r| r.kind == "flag").collect();
    assert_eq!(flags.len() % 2, 0);
    flags
        .chunks(2)
        .map(|p| (p[0].spelling.clone(), p[1].spelling.clone(), p[0].default == "True"))
        .collect()
}

const BASE: [&str; 6] = [
    "validate-quantized",
    "--images-dir",
    "no/such/images",
    "--architecture",
    "resnet18_quantized",
    "--print-config",
];

fn print_config(extra: &[&str]) -> Output {
    let mut args = BASE.to_vec();
    args.extend_from_slice(extra);
    fp8q(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The resolved configuration; fails the test unless the run succeeded.
fn config(extra: &[&str]) -> serde_json::Value {
    let out = print_config(extra);
    assert!(
        out.status.success(),
        "{extra:?}: exit {:?}\n{}",
        out.status.code(),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{extra:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The config key of an option: its spelling without dashes, `-` → `_`.
fn key(spelling: &str) -> String {
    spelling.trim_start_matches("--").replace('-', "_")
}

/// Values that we refuse on purpose, with words the error must contain.
fn refusal(args: &[&str]) -> Option<&'static [&'static str]> {
    match args {
        ["--load-type", "quantized"] | ["--load-type=quantized"] => {
            Some(&["--load-type quantized", "--load-quant-params"])
        }
        ["--no-pretrained"] | ["--no-pretrained", "--no-pretrained"] => Some(&["--no-pretrained", "not supported"]),
        _ => None,
    }
}

#[test]
fn every_reference_option_parses_in_both_forms() {
    for opt in reference_options() {
        let values: Vec<String> = match opt.kind.as_str() {
            "flag" => vec![],
            "choice" => opt.choices.clone(),
            _ => vec![opt.sample.clone()],
        };
        let mut forms: Vec<Vec<String>> = vec![];
        if values.is_empty() {
            forms.push(vec![opt.spelling.clone()]);
            // twice is fine, as in click
            forms.push(vec![opt.spelling.clone(), opt.spelling.clone()]);
        }
        for v in &values {
            forms.push(vec![opt.spelling.clone(), v.clone()]);
            forms.push(vec![format!("{}={v}", opt.spelling)]);
        }
        for form in forms {
            let form: Vec<&str> = form.iter().map(String::as_str).collect();
            let out = print_config(&form);
            match refusal(&form) {
                Some(needles) => assert_user_error(&out, needles),
                None => assert!(
                    out.status.success(),
                    "{form:?}: exit {:?}\n{}",
                    out.status.code(),
                    stderr(&out)
                ),
            }
        }
    }
}

#[test]
fn values_of_the_wrong_type_or_outside_the_choices_are_refused() {
    for opt in reference_options() {
        let bad = match opt.kind.as_str() {
            "int" => "1.5",
            "float" => "abc",
            "choice" => "not_a_choice",
            _ => continue,
        };
        let out = print_config(&[&opt.spelling, bad]);
        assert_eq!(out.status.code(), Some(2), "{} {bad}: {}", opt.spelling, stderr(&out));
        assert!(
            stderr(&out).contains(&opt.spelling),
            "{} {bad}: {}",
            opt.spelling,
            stderr(&out)
        );
    }
    // a flag takes no value
    assert_eq!(print_config(&["--per-channel=1"]).status.code(), Some(2));
    // our choices are case-sensitive like the reference's, except --quant-optimizer's
    assert_eq!(print_config(&["--qmethod", "FP_QUANTIZER"]).status.code(), Some(2));
    assert!(print_config(&["--quant-optimizer", "adam"]).status.success());
}

/// Our defaults are the reference's, except where the help says otherwise.
#[test]
fn defaults_are_the_references_except_the_documented_ones() {
    // option → (our default, why it differs)
    let differs: &[(&str, serde_json::Value)] = &[
        ("qmethod", "fp_quantizer".into()),       // reference: symmetric_uniform
        ("seed", 10.into()),                      // reference: unseeded
        ("num_workers", serde_json::Value::Null), // reference: 16 processes; here: all cores
        ("act_momentum", 0.9.into()),             // reference: None, i.e. the estimator's 0.9
        ("progress_bar", true.into()),            // reference: off, yet its command shows one
        ("load_type", "fp32".into()),             // reference: quantized (refused here)
    ];
    let cfg = config(&[]);
    let mut compared = 0;
    for opt in reference_options() {
        let k = key(&opt.spelling);
        let Some(ours) = cfg.get(&k) else { continue };
        if ["images_dir", "architecture"].contains(&k.as_str()) {
            continue;
        }
        if let Some((_, expected)) = differs.iter().find(|(d, _)| *d == k) {
            assert_eq!(ours, expected, "{k}");
            continue;
        }
        let reference: serde_json::Value = match (opt.kind.as_str(), opt.default.as_str()) {
            (_, "None") => serde_json::Value::Null,
            ("flag", d) => (d == "True").into(),
            ("int", d) => d.parse::<i64>().unwrap().into(),
            ("float", d) => d.parse::<f64>().unwrap().into(),
            (_, d) => d.into(),
        };
        assert_eq!(ours, &reference, "default of {}", opt.spelling);
        compared += 1;
    }
    assert!(compared >= 18, "only {compared} defaults compared");
}

#[test]
fn the_last_spelling_of_a_pair_wins() {
    let rows = reference_options();
    let base = config(&[]);
    let mut checked = 0;
    for (on, off, _) in pairs(&rows) {
        let k = key(&on);
        if base.get(&k).is_none() {
            continue; // no effect here: see the notes test
        }
        if on == "--pretrained" {
            assert!(print_config(&[&off, &on]).status.success());
            assert_user_error(&print_config(&[&on, &off]), &["--no-pretrained"]);
            continue;
        }
        for (args, expected) in [
            (vec![&on, &off], false),
            (vec![&off, &on], true),
            (vec![&on, &off, &on], true),
            (vec![&off, &on, &off], false),
            (vec![&on], true),
            (vec![&off], false),
        ] {
            let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            assert_eq!(config(&args)[&k], expected, "{args:?}");
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} pairs checked");
    // valued options given twice keep the last value, as in click
    let cfg = config(&["--n-bits", "4", "--qmethod", "symmetric_uniform", "--n-bits=6"]);
    assert_eq!(cfg["n_bits"], 6);
    assert_eq!(
        config(&["--architecture", "mobilenet_v2_quantized"])["architecture"],
        "mobilenet_v2"
    );
}

#[test]
fn options_without_effect_say_so() {
    // the reference's options that change nothing here (GPU, determinism, training, logging, the
    // MSE estimator's unused knobs)
    let no_effect = [
        "--cuda",
        "--no-cuda",
        "--deterministic",
        "--nondeterministic",
        "--max-epochs",
        "--save-checkpoint-dir",
        "--tb-logging-dir",
        "--weight-opt-method",
        "--act-opt-method",
        "--num-candidates",
        "--act-num-candidates",
        "--grad-scaling",
        "--no-grad-scaling",
        "--sep-quant-optimizer",
        "--no-sep-quant-optimizer",
        "--fp8-learn-maxval",
        "--no-fp8-learn-maxval",
        "--fp8-learn-mantissa-bits",
        "--no-fp8-learn-mantissa-bits",
        "--oscillations-freeze-use-ema",
        "--no-oscillation-freeze-use-ema",
        "--quant-optimizer",
        "--quant-learning-rate",
        "--quant-momentum",
        "--quant-weight-decay",
        "--quant-learning-rate-schedule",
    ];
    let rows = reference_options();
    let quiet = config(&[]);
    for opt in &rows {
        let s = opt.spelling.as_str();
        let without_effect = no_effect.contains(&s) || s.starts_with("--oscillations-");
        let args: Vec<&str> = if opt.kind == "flag" {
            vec![s]
        } else {
            vec![s, opt.sample.as_str()]
        };
        if refusal(&args).is_some() {
            continue;
        }
        let out = print_config(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let note = format!("note: {s} has no effect here");
        if without_effect {
            assert!(stderr(&out).contains(&note), "{args:?}: {}", stderr(&out));
            // and changes nothing
            let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(cfg, quiet, "{args:?}");
        } else {
            assert!(!stderr(&out).contains("no effect"), "{args:?}: {}", stderr(&out));
        }
    }
    // one line each, only when given; --cuda says the run is on the CPU
    let out = print_config(&["--cuda", "--max-epochs=3"]);
    let lines: Vec<&str> = std::str::from_utf8(&out.stderr).unwrap().lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("--cuda") && lines[0].contains("CPU"), "{lines:?}");
    assert!(print_config(&[]).stderr.is_empty());
    // the last spelling of a pair is the one named
    assert!(stderr(&print_config(&["--cuda", "--no-cuda"])).contains("note: --no-cuda has no effect"));
    // golden_section is only refused where the reference fails: with the MSE estimator
    assert_user_error(
        &print_config(&["--weight-quant-method", "MSE", "--weight-opt-method", "golden_section"]),
        &["--weight-opt-method golden_section", "MSE"],
    );
}

#[test]
fn load_type_quantized_is_refused_with_a_pointer() {
    assert_user_error(
        &print_config(&["--load-type", "quantized"]),
        &["--load-type quantized", "--load-quant-params"],
    );
    assert_eq!(config(&["--load-type", "fp32"])["load_type"], "fp32");
}

/// The seed README's command, exactly as printed, parses into the configuration it means.
#[test]
fn the_readme_command_parses_verbatim() {
    let readme = "validate-quantized --images-dir DIR --architecture mobilenet_v2_quantized --batch-size 64 \
                  --seed 10 --model-dir mobilenet_v2.pth.tar --n-bits 8 --cuda --load-type fp32 --quant-setup all \
                  --qmethod fp_quantizer --per-channel --fp8-mantissa-bits=5 --fp8-set-maxval \
                  --no-fp8-mse-include-mantissa-bits --weight-quant-method=current_minmax \
                  --act-quant-method=allminmax --num-est-batches=1";
    let mut args: Vec<&str> = readme.split_whitespace().collect();
    args.push("--print-config");
    let out = fp8q(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "note: --cuda has no effect here: fp8q runs on the CPU"
    );
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = serde_json::json!({
        "architecture": "mobilenet_v2",
        "images_dir": "DIR",
        "model_dir": "mobilenet_v2.pth.tar",
        "load_type": "fp32",
        "batch_size": 64,
        "seed": 10,
        "n_bits": 8,
        "n_bits_act": null,
        "quant_setup": "all",
        "qmethod": "fp_quantizer",
        "qmethod_act": null,
        "per_channel": true,
        "fp8_mantissa_bits": 5,
        "fp8_maxval": null,
        "fp8_set_maxval": true,
        "fp8_mse_include_mantissa_bits": false,
        "fp8_allow_unsigned": false,
        "weight_quant_method": "current_minmax",
        "act_quant_method": "allminmax",
        "num_est_batches": 1,
        "weight_quant": true,
        "act_quant": true,
        "reestimate_bn_stats": true,
        "interpolation": "bilinear",
        "calib_transform": "train",
    });
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&cfg[k], v, "{k}");
    }
}

/// `--help` shows each pair on one line (the negation named in its help) and says where our
/// defaults differ.
#[test]
fn help_shows_one_line_per_pair_and_the_differing_defaults() {
    let out = fp8q(&["validate-quantized", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (on, off, _) in pairs(&reference_options()) {
        let starts = |s: &str| {
            help.lines()
                .map(str::trim_start)
                .filter(|l| *l == s || l.starts_with(&format!("{s} ")))
                .count()
        };
        assert_eq!(starts(&on), 1, "{on} in:\n{help}");
        assert_eq!(starts(&off), 0, "{off} has its own line in:\n{help}");
        assert!(
            help.contains(&format!("--{}", off.trim_start_matches("--"))),
            "{off} not named"
        );
    }
    for needle in [
        "reference's default is `quantized`",
        "reference's default: symmetric_uniform",
        "mobilenet_v2_quantized",
        "torchvision",
        "Reference options without effect here",
    ] {
        assert!(help.contains(needle), "'{needle}' not in:\n{help}");
    }
}
