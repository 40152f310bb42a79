//! Mixed-format PTQ (`--layer-formats FILE.json`): which format each listed quantizer slot uses.
//!
//! The file is a JSON object of unit name → `{"weight": format, "act": format}`, either key
//! optional, each format any spelling [`Format`] parses (`e3m4`, `ue4m4`, `int8`, `int8-asym`,
//! `float8_e4m3fn`, …; `fp8q formats` lists them):
//!
//! ```json
//! {"conv1": {"weight": "e3m4", "act": "int8"}, "fc": {"weight": "e4m3"}}
//! ```
//!
//! A listed slot gets its own format in place of `--qmethod` / `--n-bits` /
//! `--fp8-mantissa-bits` (width included); everything else stays as the run says: the range
//! estimator, per-channel, and for FP `--fp8-set-maxval` / `--fp8-maxval` (with set-maxval the
//! estimated range sets the maximum: flexible bias). The MSE estimator does not search the
//! mantissa bits of a listed FP slot (the file fixes them). `eXmY` is the signed format;
//! `ueXmY` drops the sign bit on a non-negative range and falls back to the signed format of the
//! same mantissa bits otherwise (as `--fp8-allow-unsigned`). Unlisted slots keep the global
//! options. [`crate::setup::plan`] checks the file against the model and the quant setup.
//!
//! ```
//! use fp8q_nn::layers::SlotKind;
//! use fp8q_ptq::LayerFormats;
//! let f = LayerFormats::parse(r#"{"fc": {"weight": "int8"}}"#, "mixed.json".as_ref()).unwrap();
//! assert_eq!(f.get("fc", SlotKind::Weight).unwrap().to_string(), "int8");
//! assert!(f.get("fc", SlotKind::Output).is_none());
//! let err = LayerFormats::parse(r#"{"fc": {"bias": "int8"}}"#, "mixed.json".as_ref()).unwrap_err();
//! assert!(err.to_string().contains("mixed.json"));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fp8q_core::format::Format;
use serde_json::Value;

use crate::error::{PtqError, Result};
use crate::setup::UnitStates;
use fp8q_nn::layers::SlotKind;

/// Files larger than this are refused before reading (a layer-formats file of the largest
/// model is a few kB).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// The formats of one unit's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SlotFormats {
    /// The weight quantizer's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<Format>,
    /// The activation quantizer's format (output, block output, or `LSQ_paper` input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Format>,
}

/// Per-slot formats: unit → [`SlotFormats`], and where they came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerFormats {
    /// Unit name (checkpoint prefix) → its slots' formats.
    pub units: BTreeMap<String, SlotFormats>,
    /// The file they were read from (named in errors), if any.
    pub source: Option<PathBuf>,
}

/// `weight` or `act`, the file's key of a slot kind.
pub fn role_of(kind: SlotKind) -> &'static str {
    match kind {
        SlotKind::Weight => "weight",
        SlotKind::Output | SlotKind::BlockOutput => "act",
    }
}

impl LayerFormats {
    /// Read a layer-formats file. Errors name the file (and the unit and key at fault).
    pub fn read(path: &Path) -> Result<Self> {
        let io = |err| PtqError::Io {
            path: path.to_path_buf(),
            err,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(PtqError::invalid(
                format!("layer formats {}", path.display()),
                format!("{size} bytes: too large for a layer-formats file (at most {MAX_FILE_BYTES})"),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(&text, path)
    }

    /// Parse the text of a layer-formats file; `source` names it in errors.
    pub fn parse(text: &str, source: &Path) -> Result<Self> {
        let err = |why: String| PtqError::invalid(format!("layer formats {}", source.display()), why);
        const SHAPE: &str = r#"expected a JSON object of unit name → {"weight": format, "act": format}"#;
        let value: Value = serde_json::from_str(text).map_err(|e| err(format!("not valid JSON ({e}); {SHAPE}")))?;
        let Value::Object(map) = value else {
            return Err(err(format!("not a JSON object; {SHAPE}")));
        };
        if map.is_empty() {
            return Err(err(format!("lists no unit; {SHAPE}")));
        }
        let mut units = BTreeMap::new();
        for (unit, entry) in map {
            let Value::Object(slots) = entry else {
                return Err(err(format!("unit '{unit}': {entry} is not an object; {SHAPE}")));
            };
            if slots.is_empty() {
                return Err(err(format!(
                    "unit '{unit}' names no slot (give \"weight\" and/or \"act\")"
                )));
            }
            let mut formats = SlotFormats::default();
            for (key, v) in slots {
                let target = match key.as_str() {
                    "weight" => &mut formats.weight,
                    "act" => &mut formats.act,
                    other => {
                        return Err(err(format!(
                            "unit '{unit}': unknown key '{other}' (only \"weight\" and \"act\")"
                        )))
                    }
                };
                let Value::String(name) = &v else {
                    return Err(err(format!(
                        "unit '{unit}' {key}: {v} is not a format name (a string such as \"e4m3\" or \"int8\")"
                    )));
                };
                let format: Format = name.parse().map_err(|e| err(format!("unit '{unit}' {key}: {e}")))?;
                *target = Some(format);
            }
            units.insert(unit, formats);
        }
        Ok(LayerFormats {
            units,
            source: Some(source.to_path_buf()),
        })
    }

    /// The formats recorded in saved quantizer states (slots without one are left out).
    pub fn from_states(states: &UnitStates) -> Self {
        let units = states
            .iter()
            .filter_map(|(unit, s)| {
                let formats = SlotFormats {
                    weight: s.weight.as_ref().and_then(|q| q.format()),
                    act: s.act.as_ref().and_then(|q| q.format()),
                };
                (formats != SlotFormats::default()).then(|| (unit.clone(), formats))
            })
            .collect();
        LayerFormats { units, source: None }
    }

    /// The format of `unit`'s `kind` slot, if listed.
    pub fn get(&self, unit: &str, kind: SlotKind) -> Option<Format> {
        let slots = self.units.get(unit)?;
        match kind {
            SlotKind::Weight => slots.weight,
            SlotKind::Output | SlotKind::BlockOutput => slots.act,
        }
    }

    /// Apply `f` to every listed format (e.g. `--block-size`, `--scale-rule`).
    pub fn try_map_formats<E>(
        &mut self,
        mut f: impl FnMut(Format) -> std::result::Result<Format, E>,
    ) -> std::result::Result<(), E> {
        for s in self.units.values_mut() {
            for v in [&mut s.weight, &mut s.act].into_iter().flatten() {
                *v = f(*v)?;
            }
        }
        Ok(())
    }

    /// List `format` for `unit`'s `kind` slot.
    pub fn set(&mut self, unit: &str, kind: SlotKind, format: Format) {
        let slots = self.units.entry(unit.to_string()).or_default();
        match kind {
            SlotKind::Weight => slots.weight = Some(format),
            SlotKind::Output | SlotKind::BlockOutput => slots.act = Some(format),
        }
    }

    /// Every listed slot: `(unit, "weight" | "act", format)`, by unit name.
    pub fn slots(&self) -> impl Iterator<Item = (&str, &'static str, Format)> {
        self.units.iter().flat_map(|(unit, s)| {
            [("weight", s.weight), ("act", s.act)]
                .into_iter()
                .filter_map(move |(role, f)| f.map(|f| (unit.as_str(), role, f)))
        })
    }

    /// How many slots are listed.
    pub fn len(&self) -> usize {
        self.slots().count()
    }

    /// Whether no slot is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's layout: `{unit: {"weight": "e3m4", "act": "int8"}}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.units).unwrap_or(Value::Null)
    }

    /// Write the file (pretty JSON, readable by [`LayerFormats::read`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.units)
            .map_err(|e| PtqError::invalid(format!("layer formats {}", path.display()), e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|err| PtqError::Io {
            path: path.to_path_buf(),
            err,
        })
    }

    /// `layer formats FILE` (or `layer formats` without a file), the subject of errors.
    pub(crate) fn what(&self) -> String {
        match &self.source {
            Some(p) => format!("layer formats {}", p.display()),
            None => "layer formats".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LayerFormats> {
        LayerFormats::parse(text, Path::new("/tmp/mixed.json"))
    }

    #[test]
    fn reads_every_kind_of_format() {
        let f = parse(
            r#"{"conv1": {"weight": "e3m4", "act": "int8-asym"}, "fc": {"act": "float8_e4m3fn"},
                "layer1.0": {"act": "ue4m4"}, "x": {"weight": "E5M2"}}"#,
        )
        .unwrap();
        assert_eq!(f.len(), 5);
        let names: Vec<String> = f.slots().map(|(u, r, x)| format!("{u}.{r}={x}")).collect();
        assert_eq!(
            names,
            [
                "conv1.weight=e3m4",
                "conv1.act=int8-asym",
                "fc.act=float8_e4m3fn",
                "layer1.0.act=ue4m4",
                "x.weight=e5m2"
            ]
        );
        assert_eq!(f.get("layer1.0", SlotKind::BlockOutput).unwrap().to_string(), "ue4m4");
        assert_eq!(
            f.to_json(),
            serde_json::json!({"conv1": {"weight": "e3m4", "act": "int8-asym"}, "fc": {"act": "float8_e4m3fn"},
                "layer1.0": {"act": "ue4m4"}, "x": {"weight": "e5m2"}})
        );
        // what `write` produces reads back
        let back = parse(&serde_json::to_string(&f.units).unwrap()).unwrap();
        assert_eq!(back.units, f.units);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        for (text, needles) in [
            ("{\"conv1\": {\"weight\": \"e3m4\"", &["not valid JSON"][..]),
            ("[1, 2]", &["not a JSON object"]),
            ("{}", &["lists no unit"]),
            (r#"{"conv1": "e3m4"}"#, &["'conv1'", "not an object"]),
            (r#"{"conv1": {}}"#, &["'conv1'", "names no slot"]),
            (r#"{"conv1": {"bias": "e3m4"}}"#, &["'conv1'", "unknown key 'bias'"]),
            (r#"{"conv1": {"weight": 8}}"#, &["'conv1' weight", "not a format name"]),
            (r#"{"conv1": {"act": "fp8"}}"#, &["'conv1' act", "'fp8'", "e4m3"]),
            (r#"{"conv1": {"act": "e0m7"}}"#, &["'conv1' act", "exponent bits"]),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains("/tmp/mixed.json"), "{text}: {msg}");
            for n in needles {
                assert!(msg.contains(n), "{text}: expected '{n}' in {msg}");
            }
        }
        let missing = Path::new("/nonexistent/formats.json");
        let msg = LayerFormats::read(missing).unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/formats.json"), "{msg}");
    }
}
