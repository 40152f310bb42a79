#!/usr/bin/env python3
"""Write a synthetic 1-billion-parameter bf16 .safetensors checkpoint (about 2 GB) with the
shapes of a small Llama-like transformer, for timing `fp8q analyze` (not committed).

    python3 tools/make_big_safetensors.py /work/tmp-big/llama-1b.safetensors

Shapes: vocab 32000, hidden 2048, MLP 5632, 17 layers (q, k, v, o: 2048x2048; gate, up:
5632x2048; down: 2048x5632; two 2048 norms), embedding and lm_head 32000x2048, a final norm:
1 005 e6 weight parameters. Values: Gaussian (sigma 0.02) for attention and embeddings,
Student's t (nu = 5, scale 0.02) for the MLP, so formats differ per tensor. Tensors are generated
and written one at a time (numpy, float32 rounded to bf16 half to even), so memory stays at one
tensor.
"""

import json
import os
import struct
import sys

import numpy as np

VOCAB, HIDDEN, MLP, LAYERS = 32000, 2048, 5632, 17


def tensors():
    yield "model.embed_tokens.weight", (VOCAB, HIDDEN), "gauss"
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (HIDDEN,), "ones"
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            yield p + f"self_attn.{n}.weight", (HIDDEN, HIDDEN), "gauss"
        yield p + "post_attention_layernorm.weight", (HIDDEN,), "ones"
        yield p + "mlp.gate_proj.weight", (MLP, HIDDEN), "t"
        yield p + "mlp.up_proj.weight", (MLP, HIDDEN), "t"
        yield p + "mlp.down_proj.weight", (HIDDEN, MLP), "t"
    yield "model.norm.weight", (HIDDEN,), "ones"
    yield "lm_head.weight", (VOCAB, HIDDEN), "gauss"


def bf16_bytes(x):
    b = x.astype(np.float32).view(np.uint32)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16).tobytes()


def main():
    path = sys.argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    header, off = {}, 0
    specs = list(tensors())
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    rng = np.random.default_rng(1)
    params = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, kind in specs:
            n = int(np.prod(shape))
            params += n
            if kind == "ones":
                x = np.ones(n, dtype=np.float32) + 0.05 * rng.standard_normal(n, dtype=np.float32)
            elif kind == "gauss":
                x = 0.02 * rng.standard_normal(n, dtype=np.float32)
            else:
                x = (0.02 * rng.standard_t(5, n)).astype(np.float32)
            f.write(bf16_bytes(x))
    print(f"{path}: {params} parameters, {off + 8 + len(h)} bytes")


if __name__ == "__main__":
    main()
