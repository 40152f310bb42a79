"""fp8q.sqnr against the golden study and `fp8q sqnr --json`; fp8q.Format against
`fp8q formats --json`."""

import json
import subprocess

import numpy as np
import pytest

import fp8q


def test_sqnr_default_study_matches_golden(golden):
    rows = fp8q.sqnr()
    assert len(rows) == 15
    cases = golden("sqnr_optimal.json")["cases"]
    matched = 0
    for c in cases:
        f = c["format"]
        fmt = f"e{f['exponent_bits']}m{f['mantissa_bits']}" if f["kind"] == "fp" else f"int{f['n_bits']}"
        family = {"gaussian": "gauss", "student_t": "student-t"}.get(c["distribution"], c["distribution"])
        cand = [r for r in rows if r["format"] == fmt and r["family"] == family]
        assert len(cand) == 1, (fmt, family)
        r = cand[0]
        assert r["mse"] == pytest.approx(c["expected_mse"], rel=1e-4)
        assert abs(r["sqnr_db"] - c["sqnr_db"]) < 0.01
        assert r["second_moment"] == pytest.approx(c["second_moment"], rel=1e-7)
        matched += 1
    assert matched == len(cases) == 15


def test_sqnr_fixed_range_options():
    rows = fp8q.sqnr(dists="gauss:clip=4", formats="e4m3,int8", maxval=3.0, verify=20000)
    assert [r["format"] for r in rows] == ["e4m3", "int8"]
    assert all(r["maxval"] == 3.0 and abs(r["mc_mse_z"]) < 6 for r in rows)
    assert sum(r["best"] for r in rows) == 1


def test_sqnr_agrees_with_cli(cli):
    args = ["--dist", "uniform", "--dist", "student-t:nu=5,clip=50", "--formats", "e5m2,e3m4,int8,float8_e4m3fn"]
    doc = json.loads(subprocess.run([cli, "sqnr", *args, "--json"], check=True, capture_output=True, text=True).stdout)
    rows = fp8q.sqnr(dists=["uniform", "student-t:nu=5,clip=50"], formats=["e5m2", "e3m4", "int8", "float8_e4m3fn"])
    flat = [(d, r) for d in doc["distributions"] for r in d["results"]]
    assert len(flat) == len(rows)
    for (d, want), got in zip(flat, rows):
        assert got["distribution"] == d["distribution"]["spec"]
        for k in ("format", "name", "n_bits", "maxval", "mse", "sqnr_db", "neg_log_mse_db", "xr", "dot_product_mse",
                  "dot_product_sqnr_db", "dot_product_neg_log_mse_db", "evaluations", "best"):
            assert got[k] == want[k], k


def test_formats_agree_with_cli(cli):
    names = "e5m2,e4m3,e2m5,ue4m4,int8,int4-asym,float8_e4m3fn,float8_e5m2fnuz"
    for maxval in (None, 2.5):
        extra = [] if maxval is None else ["--maxval", str(maxval)]
        doc = json.loads(subprocess.run([cli, "formats", "--formats", names, "--values", "--json", *extra],
                                        check=True, capture_output=True, text=True).stdout)
        for row in doc:
            f = fp8q.Format(row["spec"], maxval=maxval)
            for k in ("name", "spec", "kind", "n_bits", "exponent_bits", "mantissa_bits", "bias", "max", "min",
                      "min_normal", "min_subnormal", "distinct_values"):
                assert getattr(f, k) == row[k], (row["spec"], k)
            assert f.values().tolist() == row["values"]


def test_format_properties():
    f = fp8q.Format("e4m3")
    assert (f.name, f.kind, f.n_bits, f.exponent_bits, f.mantissa_bits, f.bias) == ("E4M3", "fp", 8, 4, 3, 8.0)
    assert (f.max, f.min, f.min_normal, f.min_subnormal, f.distinct_values) == (240.0, -240.0, 2.0**-7, 2.0**-10, 255)
    v = f.values()
    assert v.dtype == np.float64 and len(v) == 255 and np.all(np.diff(v) > 0)
    # quantizing the grid gives the grid back
    assert np.array_equal(fp8q.quantize(v.astype(np.float32), "e4m3", maxval=240.0), v.astype(np.float32))
    s = fp8q.Format("float8_e4m3fn")
    assert (s.max, s.bias, s.distinct_values) == (448.0, 7.0, 253)
    assert fp8q.Format("e4m3", maxval=1.0).max == 1.0
    assert fp8q.Format("int8").min_normal == 1.0 and fp8q.Format("int8").exponent_bits is None
    assert repr(fp8q.Format("e3m4", maxval=2.0)) == "fp8q.Format('e3m4', maxval=2.0)"
