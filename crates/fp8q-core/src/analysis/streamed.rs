//! One tensor analysed from its parts as they arrive, without keeping them: the batches of an
//! activation that a calibration loop feeds through a model. Memory is the statistics (moments and a
//! bounded [`MagnitudeHistogram`]) and one accumulator per format, whatever the number of
//! batches.
//!
//! Each part is measured as the quantizer in the model quantizes it: a format with a range at the
//! range given up front (the calibrated one, fixed), a block-scaled format part by part with its
//! blocks along the part's layout (a two-level format's tensor scale is each part's own). The
//! moments of all parts are merged, and the prediction is made from them at the end exactly as
//! [`analyze_tensor_in`](super::format_choice::analyze_tensor_in) makes it for the
//! concatenated parts with [`RangeSource::Given`] ranges, so both give the same analysis (up to
//! the order of floating-point sums).
//!
//! ```
//! use fp8q_core::analysis::streamed::StreamedAnalysis;
//! use fp8q_core::quantizer::BlockLayout;
//! use fp8q_core::range::Range;
//! let formats = ["e4m3", "mxfp4"].map(|f| f.parse().unwrap());
//! let ranges = vec![Range { min: vec![-3.0], max: vec![3.0] }];
//! let mut a = StreamedAnalysis::new(&formats, ranges).unwrap();
//! for batch in [[0.5f32, -1.0, 2.0, 3.0], [0.25, 0.0, -3.0, 1.5]] {
//!     a.add(&batch, BlockLayout::flat(4)).unwrap();
//! }
//! let analysis = a.finish().unwrap();
//! assert_eq!(analysis.stats.numel, 8);
//! assert_eq!(analysis.figures.len(), 2);
//! ```

use super::block_measure::measure_blocks;
use super::fit::{predict_block_sqnr_db, Fit};
use super::format_choice::{FormatFigures, TensorAnalysis};
use super::magnitude_histogram::{predict_sqnr_db as predict_from_histograms, MagnitudeHistogram};
use super::quantize_measure::{measure_many, method_name};
use super::tensor_stats::{Moments, TensorStats};
use super::AnalysisError;
use crate::format::Format;
use crate::quantizer::block_quantizer::abs_max;
use crate::quantizer::{BlockLayout, QuantMethod};
use crate::range::Range;

/// The running analysis of one tensor for a list of formats (see the module's documentation).
#[derive(Debug, Clone)]
pub struct StreamedAnalysis {
    formats: Vec<Format>,
    /// The method and range of each format with a range, in the order of the formats.
    ranged: Vec<(QuantMethod, Range)>,
    moments: Moments,
    /// The empirical law of the values (for the prediction of the formats with a range).
    histogram: MagnitudeHistogram,
    /// `Σ (q(x) - x)²` of each format, in the order of the formats.
    noise: Vec<f64>,
    /// Layout and largest magnitude of each part (block formats only).
    parts: Vec<(BlockLayout, f64)>,
}

impl StreamedAnalysis {
    /// An empty analysis of `formats`; `ranges` holds one single-channel range per format with a
    /// range (every format but the block-scaled ones), in the order of the formats. The
    /// quantizer of each is the format's default method ([`QuantMethod::from_format`]).
    pub fn new(formats: &[Format], ranges: Vec<Range>) -> Result<Self, AnalysisError> {
        let invalid = |why: String| AnalysisError::Invalid { what: "analysis", why };
        if formats.is_empty() {
            return Err(invalid("no formats given".into()));
        }
        let ranged_formats: Vec<&Format> = formats.iter().filter(|f| f.as_block().is_none()).collect();
        if ranges.len() != ranged_formats.len() {
            return Err(invalid(format!(
                "{} given ranges for {} formats with a range",
                ranges.len(),
                ranged_formats.len()
            )));
        }
        let mut ranged = Vec::with_capacity(ranges.len());
        for (f, r) in ranged_formats.into_iter().zip(ranges) {
            if r.num_channels() != 1 {
                return Err(invalid(format!(
                    "a streamed tensor has one range per format (got {} channels)",
                    r.num_channels()
                )));
            }
            let method = QuantMethod::from_format(*f);
            // checks the range against the format now, not at the first part
            r.quantizers(&method)?;
            ranged.push((method, r));
        }
        Ok(StreamedAnalysis {
            formats: formats.to_vec(),
            ranged,
            moments: Moments::default(),
            histogram: MagnitudeHistogram::default(),
            noise: vec![0.0; formats.len()],
            parts: Vec::new(),
        })
    }

    /// Elements seen so far.
    pub fn numel(&self) -> u64 {
        self.moments.n + self.moments.non_finite
    }

    /// Measure one part, laid out by `layout` around the block axis of the block formats.
    pub fn add(&mut self, data: &[f32], layout: BlockLayout) -> Result<(), AnalysisError> {
        if layout.numel() != data.len() {
            return Err(AnalysisError::Invalid {
                what: "analysis",
                why: format!(
                    "the block layout holds {} elements; the part has {}",
                    layout.numel(),
                    data.len()
                ),
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut measured = measure_many(data, 1, self.ranged.clone(), Some(0.0))?.into_iter();
        let has_blocks = self.formats.iter().any(|f| f.as_block().is_some());
        for (f, noise) in self.formats.iter().zip(self.noise.iter_mut()) {
            *noise += match f.as_block() {
                None => measured.next().expect("one measurement per format with a range").noise,
                Some(b) => {
                    let shape = [layout.outer, layout.len, layout.inner];
                    measure_blocks(data, &shape, 1, b, None)?.mse * data.len() as f64
                }
            };
        }
        if has_blocks {
            self.parts.push((layout, abs_max(data) as f64));
        }
        self.moments = self.moments.merge(&Moments::of_parallel(data));
        if !self.ranged.is_empty() {
            self.histogram = self.histogram.merge(&MagnitudeHistogram::of_parallel(data));
        }
        Ok(())
    }

    /// The analysis of every part seen (an error before the first).
    pub fn finish(&self) -> Result<TensorAnalysis, AnalysisError> {
        let whole = self.moments;
        if self.numel() == 0 {
            return Err(AnalysisError::Invalid {
                what: "analysis",
                why: "no elements were seen".into(),
            });
        }
        let numel = self.numel() as f64;
        // with a NaN or ±Inf present the measured figures are NaN, as for a whole tensor
        let signal = if whole.non_finite == 0 { whole.sum_sq } else { f64::NAN };
        let whole_slice = std::slice::from_ref(&whole);
        let fit = Fit::from_moments(whole_slice);
        let mut ranged = self.ranged.iter();
        let mut figures = Vec::with_capacity(self.formats.len());
        for (f, &noise) in self.formats.iter().zip(&self.noise) {
            let noise = if signal.is_nan() { f64::NAN } else { noise };
            let (used, range, predicted) = match f.as_block() {
                None => {
                    let (method, range) = ranged.next().expect("one range per format with a range");
                    let predicted =
                        predict_from_histograms(std::slice::from_ref(&self.histogram), whole.sum_sq, method, range)?;
                    (method_name(method), Some(range.clone()), predicted)
                }
                Some(b) => (f.to_string(), None, predict_block_sqnr_db(&whole, &b, &self.parts)?),
            };
            figures.push(FormatFigures {
                format: f.to_string(),
                used,
                range,
                mse: noise / numel,
                sqnr_db: super::sqnr_db(signal, noise),
                predicted_sqnr_db: predicted,
            });
        }
        Ok(TensorAnalysis::from_figures(
            TensorStats::from_moments(&whole),
            fit,
            figures,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::distributions::Distribution;
    use crate::analysis::format_choice::{analyze_tensor_in, RangeSource};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        a == b || (a - b).abs() <= tol * a.abs().max(b.abs())
    }

    /// Streaming the parts gives the analysis of their concatenation with the same ranges and
    /// the same block layouts (the library's whole-tensor path).
    #[test]
    fn parts_streamed_match_the_concatenated_analysis() {
        let d = Distribution::student_t(3.0, -40.0, 40.0).unwrap();
        let a = d.sample_f32(3 * 64 * 5, 1);
        let b = d.sample_f32(2 * 64 * 5, 2);
        let c = d.sample_f32(7 * 48, 3);
        let layouts = [
            BlockLayout {
                outer: 3,
                len: 64,
                inner: 5,
            },
            BlockLayout {
                outer: 2,
                len: 64,
                inner: 5,
            },
            BlockLayout::rows(7, 48),
        ];
        let formats: Vec<Format> = ["e4m3", "e2m5", "int8", "float8_e4m3fn", "mxfp4", "nvfp4", "e3m4@32"]
            .iter()
            .map(|f| f.parse().unwrap())
            .collect();
        let ranges = vec![
            Range {
                min: vec![-11.0],
                max: vec![11.0]
            };
            4
        ];
        let mut s = StreamedAnalysis::new(&formats, ranges.clone()).unwrap();
        for (x, l) in [&a, &b, &c].into_iter().zip(layouts) {
            s.add(x, l).unwrap();
        }
        let got = s.finish().unwrap();
        let all: Vec<f32> = [a, b, c].concat();
        let want = analyze_tensor_in(&all, 1, &layouts, &formats, &RangeSource::Given(ranges)).unwrap();
        assert_eq!(got.stats.numel, want.stats.numel);
        assert!(close(got.stats.kurtosis, want.stats.kurtosis, 1e-9));
        for (g, w) in got.figures.iter().zip(&want.figures) {
            assert_eq!((&g.format, &g.used, &g.range), (&w.format, &w.used, &w.range));
            assert!(
                close(g.sqnr_db, w.sqnr_db, 1e-9),
                "{}: {} vs {}",
                g.format,
                g.sqnr_db,
                w.sqnr_db
            );
            assert!(close(g.mse, w.mse, 1e-9), "{}", g.format);
            let (gp, wp) = (g.predicted_sqnr_db.unwrap(), w.predicted_sqnr_db.unwrap());
            assert!(close(gp, wp, 1e-6), "{}: predicted {gp} vs {wp}", g.format);
        }
        assert_eq!(got.measured_best, want.measured_best);
        assert_eq!(got.predicted_best, want.predicted_best);
    }

    #[test]
    fn bad_settings_and_parts_are_errors() {
        let formats: Vec<Format> = vec!["e4m3".parse().unwrap(), "mxfp4".parse().unwrap()];
        let one = Range {
            min: vec![-1.0],
            max: vec![1.0],
        };
        assert!(StreamedAnalysis::new(&formats, vec![]).is_err());
        assert!(StreamedAnalysis::new(&[], vec![]).is_err());
        let two = Range {
            min: vec![-1.0, -1.0],
            max: vec![1.0, 1.0],
        };
        assert!(StreamedAnalysis::new(&formats, vec![two]).is_err());
        let mut s = StreamedAnalysis::new(&formats, vec![one]).unwrap();
        assert!(s.finish().is_err(), "nothing seen");
        assert!(s.add(&[1.0, 2.0, 3.0], BlockLayout::flat(4)).is_err());
        s.add(&[0.5, -0.25, 1.0, 0.0], BlockLayout::flat(4)).unwrap();
        assert_eq!(s.numel(), 4);
        let nan = {
            let mut t = s.clone();
            t.add(&[f32::NAN, 1.0], BlockLayout::flat(2)).unwrap();
            t.finish().unwrap()
        };
        assert!(nan.figures.iter().all(|f| f.sqnr_db.is_nan()));
    }
}
