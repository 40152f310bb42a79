//! Building blocks shared by the models. Each is a struct named by its checkpoint prefix.

pub mod activation;
pub mod batch_norm;
pub mod conv2d;
pub mod conv_bn_act;
pub mod linear;
pub mod quant_slot;

pub use activation::Activation;
pub use batch_norm::BatchNorm2d;
pub use conv2d::Conv2d;
pub use conv_bn_act::ConvBnAct;
pub use linear::Linear;
pub use quant_slot::{channel_layout, QuantSlot, SlotKind, TensorQuantizer};
