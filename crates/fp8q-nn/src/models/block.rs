//! What the residual blocks of both networks share: a sequence of conv+BN units followed by a
//! join with the block's input (ResNet's shortcut and ReLU, MobileNetV2's residual add). A
//! block can run whole, keep each unit's output on the way, or resume from a kept output.

use crate::error::{NnError, Result};
use crate::layers::{channel_layout, ConvBnAct};
use fp8q_tensors::feature_map::FeatureMap;

/// A block: units in sequence, then a join with the block's input.
pub trait Block {
    /// Checkpoint prefix (`layer1.0`, `features.3`).
    fn name(&self) -> &str;

    /// The units, in execution order.
    fn units_mut(&mut self) -> &mut [ConvBnAct];

    /// Combine the block's input `x` with `y`, the output of its last unit.
    fn join(&mut self, x: &FeatureMap, y: FeatureMap) -> Result<FeatureMap>;

    /// Run the block.
    fn forward(&mut self, x: FeatureMap) -> Result<FeatureMap> {
        let y = self.units_mut()[0].forward(&x)?;
        self.resume(&x, 1, y, false)
    }

    /// Run the block, pushing the output of each of its units onto `keep` (the points
    /// [`Block::resume`] can start from).
    fn forward_keeping(&mut self, x: &FeatureMap, keep: &mut Vec<FeatureMap>) -> Result<FeatureMap> {
        let mut y = self.units_mut()[0].forward(x)?;
        keep.push(y.clone());
        for u in &mut self.units_mut()[1..] {
            y = u.forward(&y)?;
            keep.push(y.clone());
        }
        self.join(x, y)
    }

    /// Finish the block from its input `x` and `y`, the output of its first `step` units
    /// (`1 ..=` the number of units), quantized first by unit `step - 1`'s output quantizer
    /// when `quantize_kept`: the remaining units, then the join.
    fn resume(&mut self, x: &FeatureMap, step: usize, mut y: FeatureMap, quantize_kept: bool) -> Result<FeatureMap> {
        let units = self.units_mut().len();
        if step == 0 || step > units {
            return Err(NnError::invalid(
                self.name(),
                format!("step {step} of a block of {units} units"),
            ));
        }
        if quantize_kept {
            let layout = channel_layout(&y);
            self.units_mut()[step - 1]
                .act_quantizer
                .apply(&mut y.data, 1, layout, false)?;
        }
        for u in &mut self.units_mut()[step..] {
            y = u.forward(&y)?;
        }
        self.join(x, y)
    }
}
