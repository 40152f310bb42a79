//! The reference's `--x/--no-x` flag pairs, as click parses them: either spelling may be given,
//! any number of times, and the last one wins.
//!
//! Each pair is two clap flags that override each other (`overrides_with`), so only the later of
//! the two survives parsing. `--help` shows one line per pair: the `--x` spelling, whose help
//! names its negation and the default; the `--no-x` spelling is hidden. Pairs that change
//! nothing here carry a note, shown under their own help heading and printed when given.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The help heading of the reference's options that have no effect here.
pub const NO_EFFECT_HEADING: &str = "Reference options without effect here";

/// One pair as the command line left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    /// The value: the last spelling given, else the default.
    pub on: bool,
    /// Whether either spelling was given.
    pub given: bool,
}

/// The spellings, default and help of one pair.
#[derive(Debug, Clone, Copy)]
pub struct SwitchSpec {
    /// The clap id of the `--x` spelling (the field name).
    pub id: &'static str,
    /// The `--x` spelling, without dashes.
    pub on: &'static str,
    /// The negation, without dashes (usually `no-x`; the reference also has
    /// `--deterministic/--nondeterministic`).
    pub off: &'static str,
    /// The value when neither is given.
    pub default: bool,
    /// One-line help.
    pub help: &'static str,
    /// `Some(why)` for a pair that changes nothing here.
    pub no_effect: Option<&'static str>,
}

impl SwitchSpec {
    /// Add both spellings to `cmd`.
    fn augment(&self, cmd: Command) -> Command {
        let default = if self.default { self.on } else { self.off };
        let help = match self.no_effect {
            Some(why) => format!("No effect here: {why} [also --{}]", self.off),
            None => format!("{} [off: --{}] [default: --{default}]", self.help.trim(), self.off),
        };
        let mut on = Arg::new(self.id)
            .long(self.on)
            .action(ArgAction::SetTrue)
            .overrides_with(self.off)
            .help(help);
        if self.no_effect.is_some() {
            on = on.help_heading(NO_EFFECT_HEADING);
        }
        let off = Arg::new(self.off)
            .long(self.off)
            .action(ArgAction::SetTrue)
            .overrides_with(self.id)
            .hide(true);
        cmd.arg(on).arg(off)
    }

    /// The pair's state in `m`.
    fn read(&self, m: &ArgMatches) -> Switch {
        let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        // the overridden spelling is dropped while parsing: at most one is still given
        let on = if given(self.off) {
            false
        } else if given(self.id) {
            true
        } else {
            self.default
        };
        Switch {
            on,
            given: given(self.id) || given(self.off),
        }
    }

    /// The spelling that set `value` (`--x` or its negation), with dashes.
    pub fn spelling(&self, value: bool) -> String {
        format!("--{}", if value { self.on } else { self.off })
    }
}

/// Declares [`Switches`]: one `Switch` field per pair, the table of their specs and clap's
/// traits for flattening it into a command.
macro_rules! switches {
    ($(
        #[doc = $help:literal]
        $field:ident: $on:literal / $off:literal = $default:literal $(, no_effect = $why:literal)?;
    )*) => {
        /// Every `--x/--no-x` pair of the reference's `validate-quantized`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Switches {
            $(
                #[doc = $help]
                pub $field: Switch,
            )*
        }

        impl Switches {
            /// Every pair, in `--help` order.
            pub const SPECS: &'static [SwitchSpec] = &[$(
                SwitchSpec {
                    id: stringify!($field),
                    on: $on,
                    off: $off,
                    default: $default,
                    help: $help,
                    no_effect: switches!(@why $($why)?),
                },
            )*];

            /// Each pair with its state.
            pub fn iter(&self) -> impl Iterator<Item = (&'static SwitchSpec, Switch)> {
                Self::SPECS.iter().zip([$(self.$field),*])
            }

            fn read(m: &ArgMatches) -> Self {
                let mut specs = Self::SPECS.iter();
                Switches {
                    $($field: specs.next().map_or(Switch { on: $default, given: false }, |s| s.read(m)),)*
                }
            }
        }
    };
    (@why) => { None };
    (@why $why:literal) => { Some($why) };
}

switches! {
    /// Quantize each output channel of a weight with its own range.
    per_channel: "per-channel" / "no-per-channel" = false;
    /// Quantize weights (off: FP32 weights).
    weight_quant: "weight-quant" / "no-weight-quant" = true;
    /// Quantize activations (off: FP32 activations).
    act_quant: "act-quant" / "no-act-quant" = true;
    /// The estimated range sets the FP maximum value (off: --fp8-maxval or the format's default).
    fp8_set_maxval: "fp8-set-maxval" / "no-fp8-set-maxval" = false;
    /// The MSE range estimator also searches the FP mantissa bits, per quantizer.
    fp8_mse_include_mantissa_bits: "fp8-mse-include-mantissa-bits" / "no-fp8-mse-include-mantissa-bits" = true;
    /// A quantizer whose range is non-negative drops the sign bit.
    fp8_allow_unsigned: "fp8-allow-unsigned" / "no-fp8-allow-unsigned" = false;
    /// Re-estimate BN statistics on training batches with the quantizers fixed (see --bn-reestimation-batches).
    reestimate_bn_stats: "reestimate-bn-stats" / "no-reestimate-bn-stats" = true;
    /// Show progress bars on stderr (the reference's default is off, but its validate-quantized shows one regardless).
    progress_bar: "progress-bar" / "no-progress-bar" = true;
    /// Load pretrained weights (--no-pretrained, a randomly initialised network, is refused).
    pretrained: "pretrained" / "no-pretrained" = true;
    /// Use the GPU.
    cuda: "cuda" / "no-cuda" = true, no_effect = "fp8q runs on the CPU";
    /// Enforce determinism.
    deterministic: "deterministic" / "nondeterministic" = false, no_effect = "runs are deterministic for a given --seed";
    /// Gradient scaling (LSQ).
    grad_scaling: "grad-scaling" / "no-grad-scaling" = false, no_effect = "training (QAT) only";
    /// A separate optimizer for the quantizers.
    sep_quant_optimizer: "sep-quant-optimizer" / "no-sep-quant-optimizer" = false, no_effect = "training (QAT) only";
    /// Learn the FP maximum value.
    fp8_learn_maxval: "fp8-learn-maxval" / "no-fp8-learn-maxval" = false, no_effect = "training (QAT) only";
    /// Learn the FP mantissa bits.
    fp8_learn_mantissa_bits: "fp8-learn-mantissa-bits" / "no-fp8-learn-mantissa-bits" = false, no_effect = "training (QAT) only";
    /// Oscillation freezing uses an EMA (the reference spells the negation `--no-oscillation-freeze-use-ema`).
    oscillations_freeze_use_ema: "oscillations-freeze-use-ema" / "no-oscillation-freeze-use-ema" = true, no_effect = "training (QAT) only";
}

impl Switches {
    /// One line per given pair that has no effect: `--cuda has no effect here: fp8q runs on the CPU`.
    pub fn notes(&self) -> Vec<String> {
        self.iter()
            .filter(|(_, s)| s.given)
            .filter_map(|(spec, s)| {
                spec.no_effect
                    .map(|why| format!("{} has no effect here: {why}", spec.spelling(s.on)))
            })
            .collect()
    }
}

impl clap::FromArgMatches for Switches {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self::read(m))
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::read(m);
        Ok(())
    }
}

impl clap::Args for Switches {
    fn augment_args(cmd: Command) -> Command {
        Self::SPECS.iter().fold(cmd, |cmd, spec| spec.augment(cmd))
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
