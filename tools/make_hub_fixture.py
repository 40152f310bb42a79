"""Make crates/fp8q-tensors/tests/data/hub_cases.json for the hub tests.

Everything expected comes from PyTorch itself:
* `checkpoint_dirs`: `torch.hub.get_dir() + "/checkpoints"` (where `load_state_dict_from_url` keeps
  its files) under a set of TORCH_HOME / XDG_CACHE_HOME / HOME values;
* `hash_prefixes`: what `torch.hub.HASH_REGEX` extracts from a file name (None when it finds nothing);
* `torchvision`: file name and URL of torchvision's IMAGENET1K_V1 weights per architecture;
* `payload_len`, `payload_sha256`: the served test payload's length (a little over two 64 KiB read
  chunks) and hashlib's SHA-256 of it. The payload is not stored: byte `i` is
  `((i * 2654435761 + 12345) mod 2^32) >> 24`, which the test computes too.

Run from the repository root: python3 tools/make_hub_fixture.py
"""

import hashlib
import json
import os
from pathlib import Path

import torch.hub
import torchvision.models as tvm

OUT = Path("crates/fp8q-tensors/tests/data")

ENV_CASES = [
    {"HOME": "/home/u"},
    {"HOME": "/home/u/"},
    {"HOME": "/"},
    {"HOME": "/home/u", "TORCH_HOME": "/opt/th"},
    {"HOME": "/home/u", "TORCH_HOME": "/opt/th/", "XDG_CACHE_HOME": "/x/cache"},
    {"HOME": "/home/u", "XDG_CACHE_HOME": "/x/cache"},
    {"HOME": "/home/u", "XDG_CACHE_HOME": "/x/cache/"},
    {"HOME": "/home/u", "TORCH_HOME": "~/th"},
    {"HOME": "/home/u", "TORCH_HOME": "~"},
    {"HOME": "/home/u", "XDG_CACHE_HOME": "~/c"},
    {"HOME": "/home/u", "TORCH_HOME": "relative/th"},
    {"HOME": "/home/u", "TORCH_HOME": ""},
    {"HOME": "/home/u", "XDG_CACHE_HOME": ""},
    {"HOME": "/home/u", "TORCH_HUB": "/ignored"},
]

HASH_NAMES = [
    "resnet18-f37072fd.pth",
    "resnet50-0676ba61.pth",
    "mobilenet_v2-b0353104.pth",
    "mobilenet_v2.pth.tar",
    "a-b-0123.pth",
    "a-xyz.pth-abc.tar",
    "weights-.pth",
    "weights-ABC.pth",
    "noprefix",
]


def checkpoint_dir(env: dict) -> str:
    saved = dict(os.environ)
    try:
        for k in ("TORCH_HOME", "XDG_CACHE_HOME", "HOME", "TORCH_HUB"):
            os.environ.pop(k, None)
        os.environ.update(env)
        return os.path.join(torch.hub.get_dir(), "checkpoints")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def payload_bytes(n: int) -> bytes:
    return bytes(((i * 2654435761 + 12345) % 2**32) >> 24 for i in range(n))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    payload = payload_bytes(2 * 65536 + 1234)

    def hash_prefix(name):
        m = torch.hub.HASH_REGEX.search(name)
        return None if m is None else m.group(1)

    weights = {
        "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
        "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
        "mobilenet_v2": tvm.MobileNet_V2_Weights.IMAGENET1K_V1,
    }
    cases = {
        "checkpoint_dirs": [{"env": e, "dir": checkpoint_dir(e)} for e in ENV_CASES],
        "hash_prefixes": [{"name": n, "prefix": hash_prefix(n)} for n in HASH_NAMES],
        "torchvision": {
            arch: {"file_name": os.path.basename(w.url), "url": w.url} for arch, w in weights.items()
        },
        "payload_len": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    (OUT / "hub_cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
