//! The reference's valued options that change nothing here (training, QAT, logging, the MSE
//! estimator's unused knobs): accepted with the reference's types and choices, listed under
//! their own `--help` heading, and named in a note when given.
//!
//! (The flag pairs without effect, such as `--cuda/--no-cuda`, are in [`super::switches`].)

use clap::builder::PossibleValuesParser;
use clap::parser::ValueSource;
use clap::{value_parser, Arg, ArgMatches, Command};

use super::switches::NO_EFFECT_HEADING;

/// The type of an option's value, as the reference's click declares it.
#[derive(Debug, Clone, Copy)]
pub enum ValueKind {
    /// `type=int`.
    Int,
    /// `type=float`.
    Float,
    /// `type=str` or a path that is never read here.
    Text,
    /// `click.Choice`, case-sensitive.
    Choice(&'static [&'static str]),
    /// `click.Choice(case_sensitive=False)`.
    ChoiceIgnoreCase(&'static [&'static str]),
}

/// One valued option without effect.
#[derive(Debug, Clone, Copy)]
pub struct NoEffectSpec {
    /// The spelling, without dashes (also the clap id).
    pub long: &'static str,
    /// Its value's type.
    pub kind: ValueKind,
    /// Why it changes nothing here.
    pub why: &'static str,
}

const QAT: &str = "training (QAT) only";
const OPT_METHODS: &[&str] = &["grid", "golden_section"];

/// Every valued option of the reference's `validate-quantized` that has no effect here.
pub const NO_EFFECT: &[NoEffectSpec] = &[
    spec("max-epochs", ValueKind::Int, "training only"),
    spec(
        "save-checkpoint-dir",
        ValueKind::Text,
        "nothing is trained, no checkpoint is written",
    ),
    spec(
        "tb-logging-dir",
        ValueKind::Text,
        "no TensorBoard logging (use --json for a report)",
    ),
    spec(
        "weight-opt-method",
        ValueKind::Choice(OPT_METHODS),
        "the MSE estimator always searches a grid (golden_section fails with MSE, as in the reference)",
    ),
    spec(
        "num-candidates",
        ValueKind::Int,
        "the MSE estimator always tries 111 candidates, as the reference's does",
    ),
    spec(
        "act-opt-method",
        ValueKind::Choice(OPT_METHODS),
        "the MSE estimator always searches a grid (golden_section fails with MSE, as in the reference)",
    ),
    spec(
        "act-num-candidates",
        ValueKind::Int,
        "the MSE estimator always tries 111 candidates, as the reference's does",
    ),
    spec("quant-optimizer", ValueKind::ChoiceIgnoreCase(&["SGD", "Adam"]), QAT),
    spec("quant-learning-rate", ValueKind::Float, QAT),
    spec("quant-momentum", ValueKind::Float, QAT),
    spec("quant-weight-decay", ValueKind::Float, QAT),
    spec("quant-learning-rate-schedule", ValueKind::Text, QAT),
    spec("oscillations-dampen-weight", ValueKind::Float, QAT),
    spec(
        "oscillations-dampen-aggregation",
        ValueKind::Choice(&["sum", "mean", "kernel_mean"]),
        QAT,
    ),
    spec("oscillations-dampen-weight-final", ValueKind::Float, QAT),
    spec("oscillations-dampen-anneal-start", ValueKind::Float, QAT),
    spec("oscillations-freeze-threshold", ValueKind::Float, QAT),
    spec("oscillations-freeze-ema-momentum", ValueKind::Float, QAT),
    spec("oscillations-freeze-max-bits", ValueKind::Int, QAT),
    spec("oscillations-freeze-threshold-final", ValueKind::Float, QAT),
    spec("oscillations-freeze-anneal-start", ValueKind::Float, QAT),
];

const fn spec(long: &'static str, kind: ValueKind, why: &'static str) -> NoEffectSpec {
    NoEffectSpec { long, kind, why }
}

impl NoEffectSpec {
    fn arg(&self) -> Arg {
        let arg = Arg::new(self.long)
            .long(self.long)
            .help_heading(NO_EFFECT_HEADING)
            .help(format!("No effect here: {}", self.why));
        match self.kind {
            ValueKind::Int => arg.value_name("INT").value_parser(value_parser!(i64)),
            ValueKind::Float => arg.value_name("FLOAT").value_parser(value_parser!(f64)),
            ValueKind::Text => arg.value_name("TEXT"),
            ValueKind::Choice(names) => arg
                .value_name("NAME")
                .value_parser(PossibleValuesParser::new(names.iter().copied())),
            ValueKind::ChoiceIgnoreCase(names) => arg
                .value_name("NAME")
                .value_parser(PossibleValuesParser::new(names.iter().copied()))
                .ignore_case(true),
        }
    }
}

/// The options of [`NO_EFFECT`] that were given, with their values as typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoEffectOptions {
    /// `(spelling without dashes, value)`, in [`NO_EFFECT`] order.
    pub given: Vec<(&'static str, String)>,
}

impl NoEffectOptions {
    /// The value given for `long`, if any.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.given.iter().find(|(l, _)| *l == long).map(|(_, v)| v.as_str())
    }

    /// One line per given option: `--max-epochs has no effect here: training only`.
    pub fn notes(&self) -> Vec<String> {
        self.given
            .iter()
            .filter_map(|(long, _)| NO_EFFECT.iter().find(|s| s.long == *long))
            .map(|s| format!("--{} has no effect here: {}", s.long, s.why))
            .collect()
    }

    fn read(m: &ArgMatches) -> Self {
        let given = NO_EFFECT
            .iter()
            .filter(|s| m.value_source(s.long) == Some(ValueSource::CommandLine))
            .filter_map(|s| {
                // the last value given (the options override themselves, as in click)
                let raw = m.get_raw(s.long)?.next_back()?;
                Some((s.long, raw.to_string_lossy().into_owned()))
            })
            .collect();
        NoEffectOptions { given }
    }
}

impl clap::FromArgMatches for NoEffectOptions {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self::read(m))
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::read(m);
        Ok(())
    }
}

impl clap::Args for NoEffectOptions {
    fn augment_args(cmd: Command) -> Command {
        NO_EFFECT.iter().fold(cmd, |cmd, s| cmd.arg(s.arg()))
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
