//! The torchvision checkpoints the reference uses, and the hash prefix in their names.

/// A checkpoint published by torchvision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PretrainedWeights {
    /// The architecture, by its canonical name (`fp8q_nn::models::Architecture::name`).
    pub architecture: &'static str,
    /// The file name in the torch hub cache, e.g. `resnet18-f37072fd.pth`; the part between the
    /// last `-` and the `.` is a prefix of the file's SHA-256 (see [`hash_prefix`]).
    pub file_name: &'static str,
    /// Where torchvision downloads it from.
    pub url: &'static str,
}

/// torchvision's IMAGENET1K_V1 weights (what `pretrained=True` loads), one per architecture.
/// MobileNetV2's file is in torchvision's key layout, which [`fp8q_nn::models::Model`] accepts.
pub const TORCHVISION_WEIGHTS: [PretrainedWeights; 3] = [
    PretrainedWeights {
        architecture: "resnet18",
        file_name: "resnet18-f37072fd.pth",
        url: "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    },
    PretrainedWeights {
        architecture: "resnet50",
        file_name: "resnet50-0676ba61.pth",
        url: "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    },
    PretrainedWeights {
        architecture: "mobilenet_v2",
        file_name: "mobilenet_v2-b0353104.pth",
        url: "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    },
];

/// The torchvision IMAGENET1K_V1 weights of the architecture named `arch` (`resnet18`, ...), if
/// torchvision publishes any.
pub fn torchvision_weights(arch: &str) -> Option<&'static PretrainedWeights> {
    TORCHVISION_WEIGHTS.iter().find(|w| w.architecture == arch)
}

/// The SHA-256 prefix a file name promises, found as `torch.hub.HASH_REGEX` (`-([a-f0-9]*)\.`)
/// finds it: the first `-` followed by lowercase hex digits and a `.`. `None` when there is no
/// such part. The prefix may be empty (`name-.pth`), which, as in torch, verifies nothing.
pub fn hash_prefix(file_name: &str) -> Option<&str> {
    let bytes = file_name.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'-')
        .find_map(|(dash, _)| {
            let start = dash + 1;
            let hex = bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                .count();
            // Everything up to `start + hex` is ASCII, so these are char boundaries.
            (bytes.get(start + hex) == Some(&b'.')).then(|| &file_name[start..start + hex])
        })
}
