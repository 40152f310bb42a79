//! Which format suits a tensor: for a list of formats, the range each gets, the measured SQNR of
//! the quantize–dequantized tensor, the analytical SQNR of the fitted distribution at that range
//! ([`super::fit`]), and the best format by each; report rows and a summary over many tensors.
//!
//! * [`analyze_tensor`]: one tensor × formats → [`TensorAnalysis`]. Ranges are estimated as
//!   `fp8q quantize` does ([`RangeSource::Estimate`], through [`quantize_and_measure`](super::quantize_measure::quantize_and_measure)'s
//!   functions) or given by the caller ([`RangeSource::Given`], e.g. calibrated activation
//!   ranges).
//! * [`AnalysisRow`]: one report row (`unit`, `slot`, statistics, per-format maps, best formats,
//!   optional network sensitivity, recommendation), serialized as `fp8q analyze --json` writes it.
//! * [`summarize`]: per format, how many tensors and parameters prefer it and the
//!   parameter-weighted SQNR; how often the prediction picks the measured best.
//!
//! ```
//! use fp8q_core::analysis::format_choice::{analyze_tensor, RangeSource};
//! use fp8q_core::analysis::quantize_measure::RangeOptions;
//! use fp8q_core::analysis::distributions::Distribution;
//! let x = Distribution::gauss(0.0, 1.0, -8.0, 8.0).unwrap().sample_f32(4096, 1);
//! let formats = ["e4m3", "int8"].map(|f| f.parse().unwrap());
//! let source = RangeSource::Estimate(RangeOptions::new("current_minmax".parse().unwrap(), false, false));
//! let a = analyze_tensor(&x, 1, &formats, &source).unwrap();
//! assert_eq!(a.figures.len(), 2);
//! assert!(a.figures.iter().all(|f| f.predicted_sqnr_db.is_some()));
//! ```

use super::block_measure::measure_blocks;
use super::fit::{predict_block_sqnr_db, Fit};
use super::magnitude_histogram::{
    predict_pooled_sqnr_db, predict_sqnr_db as predict_from_histograms, MagnitudeHistogram, PooledLaw,
};
use super::quantize_measure::{estimate_range, measure_many, method_name, RangeOptions};
use super::tensor_stats::{channel_moments, Moments, TensorStats};
use super::AnalysisError;
use crate::format::Format;
use crate::quantizer::block_quantizer::abs_max;
use crate::quantizer::{BlockLayout, QuantMethod};
use crate::range::{Range, RangeMethod};
use serde::ser::SerializeMap;
use serde::Serialize;

/// Where each format's range comes from. Block-scaled formats have no range (every block takes
/// its scale from its own values): range sources skip them, and they get none.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeSource {
    /// Estimated from the tensor as `fp8q quantize` does (one batch). With `mantissa_search`,
    /// only flexible-bias FP formats search their mantissa; the others are estimated without.
    Estimate(RangeOptions),
    /// Given: one range per format that has a range (every format but the block-scaled ones), in
    /// the order of the formats (one channel, or one per index of dimension 0). The quantizer is
    /// the format's default method ([`QuantMethod::from_format`]).
    Given(Vec<Range>),
    /// Given: one quantization method and range per format that has a range, in the order of
    /// the formats (for calibrated quantizers whose method differs from the format's default,
    /// e.g. after a mantissa search or with unsigned FP allowed). The format names still label
    /// the figures.
    GivenMethods(Vec<(QuantMethod, Range)>),
}

/// The figures of one format for one tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatFigures {
    /// The format as asked for (`e4m3`).
    pub format: String,
    /// The format used (`E4M3`; differs from `format` after a mantissa search).
    pub used: String,
    /// The range (per channel when per channel); `None` for a block-scaled format.
    pub range: Option<Range>,
    /// Mean squared error of the quantize–dequantized tensor.
    pub mse: f64,
    /// Measured SQNR in dB.
    pub sqnr_db: f64,
    /// Analytical SQNR in dB of the fitted distribution at the same range, or in the block
    /// format ([`predict_block_sqnr_db`]) (`None` when the tensor has no spread).
    pub predicted_sqnr_db: Option<f64>,
}

/// One tensor analysed for several formats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorAnalysis {
    /// Statistics of the whole tensor.
    pub stats: TensorStats,
    /// The fit behind the prediction (per channel when the ranges are), if the tensor has spread.
    pub fit: Option<Fit>,
    /// One entry per format, in the order asked.
    pub figures: Vec<FormatFigures>,
    /// The format with the highest measured SQNR (the first on ties).
    pub measured_best: String,
    /// The format with the highest predicted SQNR.
    pub predicted_best: Option<String>,
}

/// Whether a range method gives the same range for every format (the min–max family on one batch).
fn format_independent(m: RangeMethod) -> bool {
    matches!(
        m,
        RangeMethod::CurrentMinMax | RangeMethod::AllMinMax | RangeMethod::RunningMinMax { .. }
    )
}

/// Index of the largest value (NaN and `None` never win; the first on ties).
fn argmax<I: IntoIterator<Item = Option<f64>>>(values: I) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.into_iter().enumerate() {
        if let Some(v) = v.filter(|v| !v.is_nan()) {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Analyse `data` (row-major, `dim0` entries along dimension 0) for each of `formats`. Block
/// formats form blocks along dimension 1 of `[dim0, rest]` (the rows of a matrix; see
/// [`analyze_tensor_in`] for other layouts).
pub fn analyze_tensor(
    data: &[f32],
    dim0: usize,
    formats: &[Format],
    source: &RangeSource,
) -> Result<TensorAnalysis, AnalysisError> {
    let dim0 = dim0.max(1);
    let layout = BlockLayout::rows(dim0, data.len() / dim0);
    analyze_tensor_in(data, dim0, &[layout], formats, source)
}

/// [`analyze_tensor`] with the blocks of block-scaled formats laid out by `parts`: `data` is the
/// concatenation of parts (e.g. the batches of an activation), each quantized on its own with
/// blocks along its layout's `len` (as the PTQ pipeline quantizes each call; a two-level
/// format's tensor scale is each part's own). Their elements must add up to `data.len()`.
/// Formats with a range ignore `parts`.
pub fn analyze_tensor_in(
    data: &[f32],
    dim0: usize,
    parts: &[BlockLayout],
    formats: &[Format],
    source: &RangeSource,
) -> Result<TensorAnalysis, AnalysisError> {
    let invalid = |why: String| AnalysisError::Invalid { what: "analysis", why };
    if formats.is_empty() {
        return Err(invalid("no formats given".into()));
    }
    if data.is_empty() {
        return Err(invalid("the tensor is empty".into()));
    }
    let dim0 = dim0.max(1);
    if !data.len().is_multiple_of(dim0) {
        return Err(invalid(format!(
            "{} elements do not split into {dim0} rows",
            data.len()
        )));
    }
    let parts_numel: usize = parts.iter().map(BlockLayout::numel).sum();
    if parts_numel != data.len() {
        return Err(invalid(format!(
            "the block layouts hold {parts_numel} elements; the tensor has {}",
            data.len()
        )));
    }
    // the formats with a range, and their positions
    let ranged_formats: Vec<(usize, &Format)> = formats
        .iter()
        .enumerate()
        .filter(|(_, f)| f.as_block().is_none())
        .collect();
    let per_channel = match source {
        RangeSource::Estimate(o) => o.per_channel && dim0 > 1,
        RangeSource::Given(_) | RangeSource::GivenMethods(_) => {
            let ranges: Vec<&Range> = match source {
                RangeSource::Given(r) => r.iter().collect(),
                RangeSource::GivenMethods(r) => r.iter().map(|(_, r)| r).collect(),
                RangeSource::Estimate(_) => unreachable!(),
            };
            if ranges.len() != ranged_formats.len() {
                return Err(invalid(format!(
                    "{} given ranges for {} formats with a range",
                    ranges.len(),
                    ranged_formats.len()
                )));
            }
            for r in &ranges {
                if r.num_channels() != 1 && r.num_channels() != dim0 {
                    return Err(invalid(format!(
                        "a given range has {} channels; the tensor has {dim0} rows",
                        r.num_channels()
                    )));
                }
            }
            ranges.iter().any(|r| r.num_channels() > 1)
        }
    };
    // one streaming pass: per-channel moments when needed, merged for the whole tensor
    let channels = if per_channel {
        channel_moments(data, dim0)
    } else {
        Vec::new()
    };
    let whole = if per_channel {
        channels.iter().fold(Moments::default(), |a, b| a.merge(b))
    } else {
        Moments::of_parallel(data)
    };
    let stats = TensorStats::from_moments(&whole);
    let whole_slice = std::slice::from_ref(&whole);
    let fit_whole = Fit::from_moments(whole_slice);
    let fit_channels = if per_channel {
        Fit::from_moments(&channels)
    } else {
        None
    };
    // Σx² from the moments, unless non-finite values make the measured figures NaN anyway
    let signal = (whole.non_finite == 0).then_some(whole.sum_sq);

    // the ranges
    let mut ranged: Vec<(QuantMethod, Range)> = Vec::with_capacity(formats.len());
    match source {
        _ if ranged_formats.is_empty() => {}
        RangeSource::Estimate(opts) if format_independent(opts.method) => {
            // one batch: every min–max estimator gives the channels' min and max, which the
            // moments already hold (NaNs ignored as there); with ±Inf present, the estimator
            // itself runs (and reports the error)
            let range = if whole.non_finite == 0 {
                let ms = if per_channel { &channels[..] } else { whole_slice };
                Range {
                    min: ms.iter().map(|m| m.min).collect(),
                    max: ms.iter().map(|m| m.max).collect(),
                }
            } else {
                estimate_range(data, dim0, ranged_formats[0].1, opts)?.1
            };
            for (_, f) in &ranged_formats {
                ranged.push((opts.resolve(f)?.0, range.clone()));
            }
        }
        RangeSource::Estimate(opts) => {
            for (_, f) in &ranged_formats {
                // the mantissa search applies to the formats that have a variable mantissa
                let mut o = *opts;
                o.mantissa_search &= matches!(f, Format::Fp(_));
                ranged.push(estimate_range(data, dim0, f, &o)?);
            }
        }
        RangeSource::Given(ranges) => {
            for ((_, f), r) in ranged_formats.iter().zip(ranges) {
                ranged.push((QuantMethod::from_format(**f), r.clone()));
            }
        }
        RangeSource::GivenMethods(given) => ranged.extend(given.iter().cloned()),
    }

    // the prediction: the expected error of each grid for the tensor's empirical law; per
    // channel from the channels pooled when every channel's grid is its maximum times one grid
    // (one evaluation per format), else from each channel's own histogram
    let mut predicted = Vec::with_capacity(formats.len());
    let mut pooled: Option<(PooledLaw, Vec<f32>)> = None;
    let mut channel_hists: Option<Vec<MagnitudeHistogram>> = None;
    let mut whole_hist: Option<Vec<MagnitudeHistogram>> = None;
    for (method, range) in &ranged {
        if range.num_channels() > 1 {
            let (law, amax) = pooled.get_or_insert_with(|| {
                let amax: Vec<f32> = channels.iter().map(|m| m.min.abs().max(m.max.abs())).collect();
                (PooledLaw::of_channels(data, dim0, &amax), amax)
            });
            if let Some(p) = predict_pooled_sqnr_db(law, amax, whole.sum_sq, method, range)? {
                predicted.push(p);
                continue;
            }
            let hists = channel_hists.get_or_insert_with(|| MagnitudeHistogram::of_channels(data, dim0));
            predicted.push(predict_from_histograms(hists, whole.sum_sq, method, range)?);
        } else {
            let hist = whole_hist.get_or_insert_with(|| {
                vec![match &channel_hists {
                    Some(h) => h.iter().fold(MagnitudeHistogram::default(), |a, b| a.merge(b)),
                    None => MagnitudeHistogram::of_parallel(data),
                }]
            });
            predicted.push(predict_from_histograms(hist, whole.sum_sq, method, range)?);
        }
    }
    let mut measured = measure_many(data, dim0, ranged, signal)?.into_iter().zip(predicted);
    // block formats: each part quantized on its own, the squared errors summed
    let mut part_slices = Vec::with_capacity(parts.len());
    let mut at = 0;
    for p in parts {
        part_slices.push((*p, &data[at..at + p.numel()]));
        at += p.numel();
    }
    let part_max: Vec<(BlockLayout, f64)> = if formats.iter().any(|f| f.as_block().is_some()) {
        part_slices.iter().map(|(p, x)| (*p, abs_max(x) as f64)).collect()
    } else {
        Vec::new()
    };
    let block_signal = signal.unwrap_or_else(|| super::quantize_measure::sum_sq(data));
    let mut figures = Vec::with_capacity(formats.len());
    for f in formats {
        let Some(b) = f.as_block() else {
            let (m, predicted) = measured.next().expect("one measurement per format with a range");
            figures.push(FormatFigures {
                format: f.to_string(),
                used: method_name(&m.method),
                range: Some(m.range),
                mse: m.mse,
                sqnr_db: m.sqnr_db,
                predicted_sqnr_db: predicted,
            });
            continue;
        };
        let mut noise = 0.0;
        let mut one = None;
        for (p, x) in &part_slices {
            let m = measure_blocks(x, &[p.outer, p.len, p.inner], 1, b, None)?;
            noise += m.mse * p.numel() as f64;
            one = Some(m);
        }
        // one part: exactly `measure_blocks`' figures
        let (mse, sqnr) = match one.filter(|_| part_slices.len() == 1) {
            Some(m) => (m.mse, m.sqnr_db),
            None => (noise / data.len() as f64, super::sqnr_db(block_signal, noise)),
        };
        figures.push(FormatFigures {
            format: f.to_string(),
            used: f.to_string(),
            range: None,
            mse,
            sqnr_db: sqnr,
            predicted_sqnr_db: predict_block_sqnr_db(&whole, &b, &part_max)?,
        });
    }
    Ok(TensorAnalysis::from_figures(
        stats,
        if per_channel { fit_channels } else { fit_whole },
        figures,
    ))
}

impl TensorAnalysis {
    /// The analysis of the figures of every format (at least one), with the best formats by
    /// the measured and by the predicted SQNR.
    pub fn from_figures(stats: TensorStats, fit: Option<Fit>, figures: Vec<FormatFigures>) -> Self {
        let measured_best = argmax(figures.iter().map(|f| Some(f.sqnr_db))).unwrap_or(0);
        let predicted_best = argmax(figures.iter().map(|f| f.predicted_sqnr_db));
        TensorAnalysis {
            stats,
            fit,
            measured_best: figures[measured_best].format.clone(),
            predicted_best: predicted_best.map(|i| figures[i].format.clone()),
            figures,
        }
    }
}

/// A map from format name to a value that keeps the order of the formats (serialized as a JSON
/// object in that order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerFormat<T>(pub Vec<(String, T)>);

impl<T> PerFormat<T> {
    /// The value of a format.
    pub fn get(&self, format: &str) -> Option<&T> {
        self.0.iter().find(|(f, _)| f == format).map(|(_, v)| v)
    }
    /// Format names in order.
    pub fn formats(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(f, _)| f.as_str())
    }
    /// `(format, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(f, v)| (f.as_str(), v))
    }
}

impl<T: Serialize> Serialize for PerFormat<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A tensor that was not analysed, and why (listed in a report's `skipped`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// Its name.
    pub name: String,
    /// Stored element type.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Why.
    pub reason: String,
}

/// The unit a tensor's name stands for: the name without a trailing `.weight`
/// (`layer1.0.conv1.weight` → `layer1.0.conv1`).
pub fn unit_of(name: &str) -> &str {
    name.strip_suffix(".weight").unwrap_or(name)
}

/// The formats of an analysis from their names (`fp8q analyze --formats`): blank entries are
/// ignored; an unknown name, a format listed twice or no format at all is an error.
pub fn parse_formats<S: AsRef<str>>(names: &[S]) -> Result<Vec<Format>, AnalysisError> {
    let invalid = |why: String| AnalysisError::Invalid { what: "--formats", why };
    let mut out: Vec<Format> = Vec::new();
    for s in names.iter().map(|s| s.as_ref().trim()).filter(|s| !s.is_empty()) {
        let f: Format = s.parse().map_err(|e| invalid(format!("'{s}': {e}")))?;
        if out.contains(&f) {
            return Err(invalid(format!("{s} is listed twice")));
        }
        out.push(f);
    }
    if out.is_empty() {
        return Err(invalid("no format given".into()));
    }
    Ok(out)
}

/// Check range options against the formats of an analysis, as [`analyze_tensor`] applies them:
/// the mantissa search applies to the flexible-bias FP formats, and at least one must be among
/// the formats; every other combination is checked as for one format
/// ([`RangeOptions::resolve`]).
pub fn check_range_options(opts: &RangeOptions, formats: &[Format]) -> Result<(), AnalysisError> {
    if opts.mantissa_search && !formats.iter().any(|f| matches!(f, Format::Fp(_))) {
        return Err(AnalysisError::Invalid {
            what: "options",
            why: "--mantissa-search needs a flexible-bias FP format (eXmY) among --formats".into(),
        });
    }
    for f in formats {
        let mut o = *opts;
        o.mantissa_search &= matches!(f, Format::Fp(_));
        o.resolve(f)?;
    }
    Ok(())
}

/// Which tensor of a unit a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// The unit's weight.
    Weight,
    /// The unit's activation (its input or output quantizer).
    Act,
}

impl Slot {
    /// `weight` or `act`.
    pub fn name(&self) -> &'static str {
        match self {
            Slot::Weight => "weight",
            Slot::Act => "act",
        }
    }
}

/// A range in a report: the number of channels and the envelope of their bounds (the range
/// itself for one channel).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RangeSummary {
    /// Channels (1 per tensor).
    pub channels: usize,
    /// Smallest lower bound.
    pub min: f32,
    /// Largest upper bound.
    pub max: f32,
}

impl From<&Range> for RangeSummary {
    fn from(r: &Range) -> Self {
        RangeSummary {
            channels: r.num_channels(),
            min: r.min.iter().copied().fold(f32::INFINITY, f32::min),
            max: r.max.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }
}

/// One row of a format-analysis report (`fp8q analyze --json` writes a list of these).
/// Per-format figures are maps from format name to value, in the order of `--formats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisRow {
    /// The unit: a layer name (`layer1.0.conv1`), or a checkpoint key without its `.weight`.
    pub unit: String,
    /// Weight or activation.
    pub slot: Slot,
    /// The tensor's own name (e.g. the checkpoint key), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements.
    pub numel: u64,
    /// Statistics.
    pub stats: TensorStats,
    /// The fitted distribution behind `predicted_sqnr_db`.
    pub fit: Option<Fit>,
    /// The range each format gets (`None` for a block-scaled format: no range).
    pub range: PerFormat<Option<RangeSummary>>,
    /// The format each actually uses (differs after a mantissa search).
    pub used_format: PerFormat<String>,
    /// Measured SQNR of the quantize–dequantized tensor, dB.
    pub sqnr_db: PerFormat<f64>,
    /// Analytical SQNR of the fitted distribution at the same range, dB.
    pub predicted_sqnr_db: PerFormat<Option<f64>>,
    /// Best format by the prediction.
    pub predicted_best: Option<String>,
    /// Best format by the measured SQNR.
    pub measured_best: String,
    /// Network sensitivity: SQNR of the logits against FP32 with only this slot quantized.
    pub output_sqnr_db: Option<PerFormat<f64>>,
    /// Best `output_sqnr_db` if present, else `measured_best`.
    pub recommended: String,
}

impl AnalysisRow {
    /// A row from an analysis.
    pub fn new(unit: String, slot: Slot, tensor: Option<String>, shape: Vec<usize>, a: TensorAnalysis) -> Self {
        let figures = &a.figures;
        AnalysisRow {
            unit,
            slot,
            tensor,
            shape,
            numel: a.stats.numel,
            stats: a.stats,
            fit: a.fit,
            range: PerFormat(
                figures
                    .iter()
                    .map(|x| (x.format.clone(), x.range.as_ref().map(RangeSummary::from)))
                    .collect(),
            ),
            used_format: PerFormat(figures.iter().map(|x| (x.format.clone(), x.used.clone())).collect()),
            sqnr_db: PerFormat(figures.iter().map(|x| (x.format.clone(), x.sqnr_db)).collect()),
            predicted_sqnr_db: PerFormat(
                figures
                    .iter()
                    .map(|x| (x.format.clone(), x.predicted_sqnr_db))
                    .collect(),
            ),
            predicted_best: a.predicted_best,
            recommended: a.measured_best.clone(),
            measured_best: a.measured_best,
            output_sqnr_db: None,
        }
    }

    /// The row of a named tensor (a checkpoint key, or any name a caller gives): its unit is
    /// the name without a trailing `.weight` ([`unit_of`]); per-channel ranges run along
    /// dimension 0 and the blocks of block-scaled formats along dimension 1 (the reduction
    /// dimension of a linear or conv weight, as in PTQ) when the tensor has two or more
    /// dimensions (a vector or scalar gets one range, and blocks along its only axis). What
    /// `fp8q analyze CHECKPOINT` and the Python package's `fp8q.analyze` report per tensor.
    pub fn of_tensor(
        name: &str,
        slot: Slot,
        shape: &[usize],
        data: &[f32],
        formats: &[Format],
        source: &RangeSource,
    ) -> Result<Self, AnalysisError> {
        let dim0 = if shape.len() >= 2 { shape[0] } else { 1 };
        let layout = if shape.len() >= 2 {
            BlockLayout::new(shape, 1)?
        } else {
            BlockLayout::flat(data.len())
        };
        let a = analyze_tensor_in(data, dim0, &[layout], formats, source)?;
        Ok(AnalysisRow::new(
            unit_of(name).to_string(),
            slot,
            Some(name.to_string()),
            shape.to_vec(),
            a,
        ))
    }

    /// Set the network sensitivity (per format) and recommend its best format.
    pub fn set_output_sqnr(&mut self, output_sqnr_db: PerFormat<f64>) {
        if let Some(i) = argmax(output_sqnr_db.0.iter().map(|(_, v)| Some(*v))) {
            self.recommended = output_sqnr_db.0[i].0.clone();
        }
        self.output_sqnr_db = Some(output_sqnr_db);
    }
}

/// Per-format line of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatSummary {
    /// Format.
    pub format: String,
    /// Rows whose recommendation it is.
    pub tensors: usize,
    /// Their elements.
    pub parameters: u64,
    /// `Σ numel·sqnr_db / Σ numel` over the rows with a finite SQNR for this format.
    pub weighted_sqnr_db: f64,
    /// The same for the predicted SQNR (rows with a prediction).
    pub weighted_predicted_sqnr_db: Option<f64>,
}

/// A summary of many rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Rows.
    pub tensors: usize,
    /// Their elements.
    pub parameters: u64,
    /// One entry per format, in the rows' order.
    pub formats: Vec<FormatSummary>,
    /// Rows with a prediction.
    pub predictions: usize,
    /// Rows whose predicted best format is the measured best.
    pub prediction_matches: usize,
}

/// Summarize rows (formats taken from the first row).
pub fn summarize(rows: &[AnalysisRow]) -> Summary {
    let names: Vec<String> = rows
        .first()
        .map(|r| r.sqnr_db.formats().map(String::from).collect())
        .unwrap_or_default();
    let weighted = |get: &dyn Fn(&AnalysisRow) -> Option<f64>| {
        let (mut w, mut s) = (0.0f64, 0.0f64);
        for r in rows {
            if let Some(v) = get(r).filter(|v| v.is_finite()) {
                w += r.numel as f64;
                s += r.numel as f64 * v;
            }
        }
        (w > 0.0).then(|| s / w)
    };
    let formats = names
        .iter()
        .map(|f| {
            let preferring = rows.iter().filter(|r| &r.recommended == f);
            FormatSummary {
                format: f.clone(),
                tensors: preferring.clone().count(),
                parameters: preferring.map(|r| r.numel).sum(),
                weighted_sqnr_db: weighted(&|r| r.sqnr_db.get(f).copied()).unwrap_or(f64::NAN),
                weighted_predicted_sqnr_db: weighted(&|r| r.predicted_sqnr_db.get(f).copied().flatten()),
            }
        })
        .collect();
    let predictions = rows.iter().filter(|r| r.predicted_best.is_some()).count();
    let prediction_matches = rows
        .iter()
        .filter(|r| r.predicted_best.as_deref() == Some(r.measured_best.as_str()))
        .count();
    Summary {
        tensors: rows.len(),
        parameters: rows.iter().map(|r| r.numel).sum(),
        formats,
        predictions,
        prediction_matches,
    }
}
