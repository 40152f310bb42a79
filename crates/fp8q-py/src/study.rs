//! `sqnr`: the analytical SQNR study of `fp8q sqnr`, returned as one flat dict per
//! (distribution, format) — rows ready for a DataFrame.

use crate::errors::value_error;
use fp8q_core::analysis::distributions::Distribution;
use fp8q_core::analysis::optimal_range::SearchOptions;
use fp8q_core::analysis::study::{paper_formats, run_study, RangeChoice, StudyConfig, VerifyOptions};
use fp8q_core::format::{Format, ScaleRule};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Run the study (see the Python docstring of `fp8q.sqnr`).
#[pyfunction]
#[pyo3(signature = (dists=None, formats=None, maxval=None, range_search="analytic", samples=1_000_000, seed=10, verify=None, points_per_octave=32, block_size=None, scale_rule=None, tensor_size=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sqnr<'py>(
    py: Python<'py>,
    dists: Option<Vec<String>>,
    formats: Option<Vec<String>>,
    maxval: Option<f64>,
    range_search: &str,
    samples: usize,
    seed: u64,
    verify: Option<usize>,
    points_per_octave: u32,
    block_size: Option<usize>,
    scale_rule: Option<&str>,
    tensor_size: Option<usize>,
) -> PyResult<Bound<'py, PyList>> {
    let rule = scale_rule
        .map(|r| r.parse::<ScaleRule>().map_err(value_error))
        .transpose()?;
    let distributions = match dists {
        Some(d) if !d.is_empty() => d
            .iter()
            .map(|s| s.parse::<Distribution>().map_err(value_error))
            .collect::<PyResult<Vec<_>>>()?,
        _ => Distribution::paper_defaults(),
    };
    let formats = match formats {
        Some(f) if !f.is_empty() => f
            .iter()
            .map(|s| {
                s.parse::<Format>()
                    .and_then(|f| f.with_block_options(block_size, rule))
                    .map_err(value_error)
            })
            .collect::<PyResult<Vec<_>>>()?,
        _ => paper_formats(),
    };
    if (block_size.is_some() || rule.is_some()) && !formats.iter().any(|f| f.as_block().is_some()) {
        return Err(value_error(
            "block_size and scale_rule apply to block-scaled formats, and none is given",
        ));
    }
    if tensor_size == Some(0) {
        return Err(value_error("tensor_size must be at least 1"));
    }
    if let Some(a) = maxval {
        if !(a.is_finite() && a > 0.0) {
            return Err(value_error(format!("'{a}' is not a positive finite number")));
        }
    }
    let count = |what: &str, n: usize| {
        if n >= 2 {
            Ok(n)
        } else {
            Err(value_error(format!(
                "{what}: '{n}' is not a whole number of at least 2"
            )))
        }
    };
    let range = match (maxval, range_search.trim().to_ascii_lowercase().as_str()) {
        (Some(a), _) => RangeChoice::Fixed(a),
        (None, "analytic") => RangeChoice::Optimal,
        (None, "samples") => RangeChoice::Sampled {
            samples: count("samples", samples)?,
            seed,
        },
        (None, other) => {
            return Err(value_error(format!(
                "invalid range_search '{other}': expected 'analytic' or 'samples'"
            )))
        }
    };
    if !(4..=4096).contains(&points_per_octave) {
        return Err(value_error(format!(
            "points_per_octave: {points_per_octave} is not in 4..=4096"
        )));
    }
    let verify = match verify {
        Some(n) => Some(VerifyOptions {
            samples: count("verify", n)?,
            seed,
        }),
        None => None,
    };
    let config = StudyConfig {
        distributions,
        formats,
        range,
        search: SearchOptions {
            points_per_octave: points_per_octave as usize,
            ..SearchOptions::default()
        },
        verify,
        curve_points: None,
        tensor_elements: tensor_size,
    };
    let study = py
        .detach(|| run_study(&config))
        .map_err(|e| value_error(format!("the SQNR study failed: {e}")))?;

    let rows = PyList::empty(py);
    for dr in &study.distributions {
        for r in &dr.results {
            let d = PyDict::new(py);
            d.set_item("distribution", dr.distribution.to_string())?;
            d.set_item("family", dr.distribution.family())?;
            d.set_item("label", dr.distribution.label())?;
            d.set_item("second_moment", dr.second_moment)?;
            d.set_item("format", &r.format)?;
            d.set_item("name", &r.name)?;
            d.set_item("n_bits", r.n_bits)?;
            d.set_item("maxval", r.maxval)?;
            d.set_item("bits_per_element", r.bits_per_element)?;
            d.set_item("tensor_amax", r.tensor_amax)?;
            d.set_item("mse", r.mse)?;
            d.set_item("sqnr_db", r.sqnr_db)?;
            d.set_item("neg_log_mse_db", r.neg_log_mse_db)?;
            d.set_item("xr", r.xr)?;
            d.set_item("dot_product_mse", r.dot_product_mse)?;
            d.set_item("dot_product_sqnr_db", r.dot_product_sqnr_db)?;
            d.set_item("dot_product_neg_log_mse_db", r.dot_product_neg_log_mse_db)?;
            d.set_item("evaluations", r.evaluations)?;
            d.set_item("best", r.best)?;
            d.set_item("range_method", &study.range_method)?;
            if let Some(m) = r.monte_carlo {
                d.set_item("mc_samples", m.samples)?;
                d.set_item("mc_seed", m.seed)?;
                d.set_item("mc_mse", m.mse)?;
                d.set_item("mc_mse_stderr", m.mse_stderr)?;
                d.set_item("mc_mse_z", m.mse_z)?;
                d.set_item("mc_dot_product_mse", m.dot_product_mse)?;
                d.set_item("mc_dot_product_stderr", m.dot_product_stderr)?;
                d.set_item("mc_dot_product_z", m.dot_product_z)?;
            }
            rows.append(d)?;
        }
    }
    Ok(rows)
}
