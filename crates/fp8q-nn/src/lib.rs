//! # fp8q-nn: post-training quantization of CNNs. PLACEHOLDER: being implemented.
