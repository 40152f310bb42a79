//! `fp8q sqnr` end to end: the default study, JSON and CSV output, the plot, and clear errors
//! (exit code 2, no panic) for bad input.

use std::process::Output;

mod common;
use common::fp8q;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn default_run_prints_the_paper_study() {
    let o = fp8q(&["sqnr"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for needle in [
        "Uniform on [-1, 1]",
        "Gaussian",
        "Student's t",
        "E5M2",
        "E4M3",
        "E3M4",
        "E2M5",
        "INT8",
        "-10log10 MSE",
        "dot SQNR dB",
    ] {
        assert!(s.contains(needle), "missing {needle} in\n{s}");
    }
    // best formats of the paper's study: INT8 for uniform, E2M5 for the Gaussian and the t
    assert!(s.contains("* best: INT8"), "{s}");
    assert_eq!(s.matches("* best: E2M5").count(), 2, "{s}");
}

#[test]
fn json_parses_and_holds_every_case() {
    let o = fp8q(&[
        "sqnr",
        "--json",
        "--dist",
        "gauss:clip=4",
        "--dist",
        "uniform:min=0,max=2",
        "--formats",
        "e4m3,e3m2,int8,int6",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    let dists = v["distributions"].as_array().unwrap();
    assert_eq!(dists.len(), 2);
    assert_eq!(dists[0]["distribution"]["spec"], "gauss:mu=0,sigma=1,min=-4,max=4");
    for d in dists {
        let rs = d["results"].as_array().unwrap();
        assert_eq!(rs.len(), 4);
        assert_eq!(rs.iter().filter(|r| r["best"] == true).count(), 1);
        for r in rs {
            let (m2, mse, db) = (
                d["second_moment"].as_f64().unwrap(),
                r["mse"].as_f64().unwrap(),
                r["sqnr_db"].as_f64().unwrap(),
            );
            assert!((db - 10.0 * (m2 / mse).log10()).abs() < 1e-9);
        }
    }
    // fewer bits cannot be better than more bits of the same kind
    let mse = |i: usize| dists[0]["results"][i]["mse"].as_f64().unwrap();
    assert!(mse(2) < mse(3));
}

#[test]
fn fixed_maxval_matches_the_golden_case() {
    // golden sqnr_fixed_range.json: gauss, E4M3 at maxval 3: expected_mse 0.001088067293531129
    let o = fp8q(&[
        "sqnr",
        "--json",
        "--dist",
        "gauss",
        "--formats",
        "e4m3",
        "--maxval",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let r = &v["distributions"][0]["results"][0];
    assert_eq!(r["maxval"], 3.0);
    let mse = r["mse"].as_f64().unwrap();
    assert!(
        ((mse - 0.001088067293531129) / 0.001088067293531129).abs() < 1e-7,
        "{mse}"
    );
}

#[test]
fn csv_verify_and_plot() {
    let dir = std::env::temp_dir().join(format!("fp8q_sqnr_test_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("sqnr.svg");
    let o = fp8q(&[
        "sqnr",
        "--csv",
        "--verify",
        "20000",
        "--formats",
        "e4m3,int8",
        "--plot",
        svg.to_str().unwrap(),
        "--curves",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].starts_with("distribution,format,maxval"));
    assert_eq!(lines.len(), 1 + 3 * 2, "{s}");
    assert!(lines[1].starts_with("\"uniform:min=-1,max=1\",e4m3,"), "{}", lines[1]);
    assert!(lines[1].contains(",20000,"), "{}", lines[1]);
    let plot = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        plot.starts_with("<svg") && plot.contains("E4M3") && plot.contains("MSE against"),
        "bad svg"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_gives_clear_errors_and_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["sqnr", "--dist", "cauchy"], "cauchy"),
        (&["sqnr", "--dist", "gauss:sigma=-1"], "sigma"),
        (&["sqnr", "--dist", "uniform:min=2,max=1"], "min"),
        (&["sqnr", "--dist", "student-t:nu=abc"], "abc"),
        (&["sqnr", "--dist", "gauss:foo=1"], "foo"),
        (&["sqnr", "--formats", "e4m3,fp8"], "fp8"),
        (&["sqnr", "--formats", "e0m7"], "e0m7"),
        (&["sqnr", "--formats", "e8m23"], "e8m23"),
        (&["sqnr", "--maxval", "-1"], "-1"),
        (&["sqnr", "--maxval", "nan"], "nan"),
        (&["sqnr", "--verify", "1"], "1"),
        (&["sqnr", "--json", "--csv"], "--csv"),
        (&["sqnr", "--curves"], "--plot"),
        (&["sqnr", "--formats", "mxfp9"], "mxfp9"),
        (&["sqnr", "--formats", "e2m1@0"], "block size"),
        (&["sqnr", "--formats", "mxfp4", "--block-size", "0"], "block size"),
        (&["sqnr", "--formats", "mxfp4", "--scale-rule", "up"], "scale rule"),
        (&["sqnr", "--block-size", "16"], "block-scaled"),
        (
            &["sqnr", "--formats", "mxfp4", "--dist", "uniform:min=-1,max=2"],
            "symmetric",
        ),
        (&["sqnr", "--formats", "nvfp4", "--tensor-size", "0"], "0"),
    ];
    for (args, needle) in cases {
        let o = fp8q(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: error does not name '{needle}': {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn block_formats_sit_beside_per_tensor_ones() {
    let o = fp8q(&[
        "sqnr",
        "--json",
        "--formats",
        "mxfp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,e4m3,int8",
        "--verify",
        "200000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    for d in v["distributions"].as_array().unwrap() {
        let rs = d["results"].as_array().unwrap();
        let names: Vec<&str> = rs.iter().map(|r| r["format"].as_str().unwrap()).collect();
        assert_eq!(names, ["mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4", "e4m3", "int8"]);
        for r in rs {
            let block = r["format"].as_str().unwrap() != "e4m3" && r["format"].as_str().unwrap() != "int8";
            // no range for a block format: maxval is null
            assert_eq!(r["maxval"].is_null(), block, "{r}");
            assert_eq!(r["tensor_amax"].is_number(), r["format"] == "nvfp4", "{r}");
            let z = r["monte_carlo"]["mse_z"].as_f64().unwrap();
            if block {
                assert!(z.abs() < 5.0, "{r}");
            }
        }
    }
    // --block-size and --scale-rule rename the formats they change
    let o = fp8q(&[
        "sqnr",
        "--csv",
        "--formats",
        "mxfp4,nvfp4,e4m3",
        "--block-size",
        "64",
        "--scale-rule",
        "rceil",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    let row = s.lines().find(|l| l.contains("e2m1@64:rceil,")).expect(&s);
    // maxval empty for a block format
    assert!(row.contains("e2m1@64:rceil,,"), "{row}");
    assert!(s.contains(",e2m1@64/e4m3,"), "{s}");
    assert!(s.contains(",e4m3,"), "{s}");
}

#[test]
fn splits_table_csv_json_and_plot() {
    let dir = std::env::temp_dir().join(format!("fp8q_splits_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("splits.svg");
    let o = fp8q(&[
        "sqnr",
        "--splits",
        "--dist",
        "gauss:clip=10",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for needle in [
        "4 bits",
        "6 bits",
        "8 bits",
        "K=1 ",
        "K=128",
        "per tensor",
        "e2m3",
        "int6",
    ] {
        assert!(s.contains(needle), "missing {needle} in\n{s}");
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    std::fs::remove_dir_all(&dir).ok();
    // CSV: one line per (width, block size, split): 6 block sizes × (3 + 5 + 7) splits
    let o = fp8q(&["sqnr", "--splits", "--csv", "--dist", "uniform:clip=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert_eq!(s.lines().count(), 1 + 6 * 15, "{s}");
    assert!(s.contains(",8,32,e4m3,e4m3@32,"), "{s}");
    assert!(s.contains(",6,per-tensor,e2m3,e2m3,"), "{s}");
    // JSON: per tensor is a null block size; each row names its best split
    let o = fp8q(&["sqnr", "--splits", "--json", "--dist", "student-t:nu=8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 18);
    assert!(rows.iter().any(|r| r["block_size"].is_null()));
    for r in rows {
        let best = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["best"] == true)
            .count();
        assert_eq!(best, 1, "{r}");
    }
    // the split table takes no format list
    let o = fp8q(&["sqnr", "--splits", "--formats", "mxfp4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--formats"), "{}", stderr(&o));
}
