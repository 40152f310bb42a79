"""fp8q.torch.quantize(functional=True): the operands of torch.matmul, @, bmm and
F.scaled_dot_product_attention in forward code are quantized too.

The main model is a small GPT-style decoder (token and position embeddings, two blocks of causal
self-attention with q/k/v/out Linear layers and an MLP, LayerNorms, an lm head), random-initialised
here, with attention done by plain matmuls (explicit mask and softmax) or by SDPA. The expected
values are computed here from the float model (operands recorded by the attention itself, SDPA's
formula written out) with fp8q.quantize, never with the code under test. Also: bmm, __rmatmul__,
nested modules, block formats along the reduction dimensions, state round trips, deep copies,
gradients, globs and formats keys, and errors (which leave the model unchanged). Skipped when torch
is not importable."""

import copy
import io
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8q  # noqa: E402
import fp8q.torch as ft  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

D, H, T, V = 32, 4, 8, 40  # width, heads, sequence length, vocabulary
HD = D // H
INF = float("inf")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Causal self-attention; ``record`` (a list, float model only) collects each call's operands
    (q, k^T, probs, v). When recording, the SDPA variant computes SDPA's formula written out
    here (:func:`sdpa_operands`): what functional quantization runs, to the last bit."""

    def __init__(self, sdpa):
        super().__init__()
        self.q, self.k, self.v, self.out = (nn.Linear(D, D) for _ in range(4))
        self.sdpa = sdpa
        self.record = None

    def forward(self, x):
        B, L, _ = x.shape
        q, k, v = (lin(x).view(B, L, H, HD).transpose(1, 2) for lin in (self.q, self.k, self.v))
        if self.sdpa and self.record is not None:
            ops = sdpa_operands(q, k, v)
            self.record.append(ops)
            y = ops[2] @ ops[3]
        elif self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            kt = k.transpose(-2, -1)
            scores = (q @ kt) * (1.0 / math.sqrt(HD))
            keep = torch.ones(L, L, dtype=torch.bool).tril()
            probs = torch.softmax(scores.masked_fill(~keep, -INF), dim=-1)
            if self.record is not None:
                self.record.append((q, kt, probs, v))
            y = torch.matmul(probs, v)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    def __init__(self, sdpa):
        super().__init__()
        self.ln1, self.attn, self.ln2 = nn.LayerNorm(D), Attention(sdpa), nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, sdpa):
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.ModuleList(Block(sdpa) for _ in range(2))
        self.ln = nn.LayerNorm(D)
        self.head = nn.Linear(D, V, bias=False)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


def gpt(sdpa=False):
    torch.manual_seed(0)
    return GPT(sdpa).eval()


def id_batches(n=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (2, T), generator=gen) for _ in range(n)]


def loop_over(batches):
    def forward_loop(model):
        for b in batches:
            model(*b) if isinstance(b, tuple) else model(b)
    return forward_loop


OPERANDS = [f"blocks.{i}.attn.operand:{j}" for i in range(2) for j in range(4)]


# ---------------------------------------------------------------------------------------------
# Independent expectations
# ---------------------------------------------------------------------------------------------


def causal_keep(L, S):
    return torch.ones(L, S, dtype=torch.bool).tril()


def sdpa_operands(q, k, v):
    """The four operands of softmax(q k^T / sqrt(E) + causal mask) v, computed here."""
    kt = k.transpose(-2, -1)
    scores = (q @ kt) * (1.0 / math.sqrt(q.shape[-1]))
    probs = torch.softmax(scores.masked_fill(~causal_keep(q.shape[-2], k.shape[-2]), -INF), dim=-1)
    return q, kt, probs, v


def float_run(model, batches):
    """({"blocks.i.attn.operand:j": [operand j of every call]}, {Linear name: [input of every
    call]}) of the float model (the attention's own record, plain forward pre-hooks)."""
    atts = {n: m for n, m in model.named_modules() if isinstance(m, Attention)}
    inputs, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: inputs.setdefault(name, []).append(args[0].detach().clone())))
    for m in atts.values():
        m.record = []
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    operands = {}
    for n, m in atts.items():
        calls, m.record = m.record, None
        for ops in calls:
            for j, t in enumerate(ops):
                operands.setdefault(f"{n}.operand:{j}", []).append(t.detach().clone())
    return operands, inputs


def amax(tensors):
    return max(float(t.abs().max()) for t in tensors)


def lib_q(t, fmt, **kw):
    """fp8q.quantize of a tensor, as a tensor."""
    return torch.from_numpy(fp8q.quantize(t.detach().contiguous().numpy(), fmt, **kw))


def reference_forward(model, ids, act_max, op_max, fmt="e4m3"):
    """The quantized GPT written out: every Linear is F.linear(Q(x), Q(W) per channel, b) and
    every attention product Q(left) @ Q(right), Q = fp8q.quantize with the given maxvals."""
    def lin(name, layer, x):
        return F.linear(lib_q(x, fmt, maxval=act_max[name]), lib_q(layer.weight, fmt, per_channel=True), layer.bias)

    x = model.tok(ids) + model.pos(torch.arange(ids.shape[1]))
    for i, blk in enumerate(model.blocks):
        p, a = f"blocks.{i}.attn", blk.attn
        h = blk.ln1(x)
        B, L, _ = h.shape
        q, k, v = (lin(f"{p}.{n}", getattr(a, n), h).view(B, L, H, HD).transpose(1, 2) for n in "qkv")
        m = [op_max[f"{p}.operand:{j}"] for j in range(4)]
        scores = lib_q(q, fmt, maxval=m[0]) @ lib_q(k.transpose(-2, -1), fmt, maxval=m[1]) * (1.0 / math.sqrt(HD))
        probs = torch.softmax(scores.masked_fill(~causal_keep(L, L), -INF), dim=-1)
        y = lib_q(probs, fmt, maxval=m[2]) @ lib_q(v, fmt, maxval=m[3])
        x = x + lin(f"{p}.out", a.out, y.transpose(1, 2).reshape(B, L, D))
        h = blk.ln2(x)
        x = x + lin(f"blocks.{i}.mlp.2", blk.mlp[2], F.gelu(lin(f"blocks.{i}.mlp.0", blk.mlp[0], h)))
    return lin("head", model.head, model.ln(x))


def operand_quantizers(model):
    """{name: operand quantizer} found through the documented attributes."""
    out = {}
    for name, m in model.named_modules():
        ops = getattr(m, "fp8q_operands", None)
        if isinstance(ops, nn.ModuleDict):
            for key, q in ops.items():
                out[f"{name}.{key}" if name else key] = q
    return out


def capture_operands(model, *args, via=None):
    """{operand name: (operand, quantized operand)} of one forward pass of ``model`` (or of its
    submodule ``via``), by forward hooks on the quantizers."""
    seen, hooks = {}, []
    for name, q in operand_quantizers(model).items():
        hooks.append(q.register_forward_hook(
            lambda mod, a, out, name=name: seen.__setitem__(name, (a[0].detach().clone(), out.detach().clone()))))
    with torch.no_grad():
        (via or model)(*args)
    for h in hooks:
        h.remove()
    return seen


def assert_no_fp8q(model):
    """No hooks, scopes, operand quantizers or quantized classes anywhere in the model."""
    for name, m in model.named_modules():
        assert not m._forward_pre_hooks and not m._forward_hooks, name
        assert "fp8q_operands" not in m._modules and "_fp8q_scope" not in m.__dict__, name
        assert not type(m).__name__.startswith("Quant"), name
    assert torch._C._len_torch_function_stack() == 0


# ---------------------------------------------------------------------------------------------
# The GPT decoder
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sdpa", [False, True], ids=["matmul", "sdpa"])
def test_gpt_operands_calibrated_and_output_equals_reference(sdpa):
    model = gpt(sdpa)
    batches = id_batches()
    operands, inputs = float_run(model, batches)
    q = ft.quantize(model, loop_over(batches), functional=True)
    ops = operand_quantizers(q)
    assert sorted(ops) == sorted(OPERANDS) == sorted(operands)
    rows = [r for r in ft.summary(q) if r["kind"] == "operand"]
    assert [r["name"] for r in rows] == OPERANDS
    op_max = {}
    for name in OPERANDS:
        want = amax(operands[name])
        assert ops[name].maxval == want, name
        assert ops[name].side == int(name[-1]) % 2
        op_max[name] = want
    row = rows[2]
    assert row["format"] == "e4m3" and row["range"] == "minmax" and row["maxval"] == op_max[row["name"]]
    assert row["per_channel"] is False and row["enabled"] is True
    act_max = {n: amax(xs) for n, xs in inputs.items()}
    for ids in id_batches(2, seed=7):
        with torch.no_grad():
            got = q(ids)
            want = reference_forward(model, ids, act_max, op_max)
        assert torch.equal(got, want)
        assert not torch.equal(got, model(ids))
    # the quantizers hold no tensors: the state_dict is the float model's
    assert set(q.state_dict()) == set(model.state_dict())
    assert torch._C._len_torch_function_stack() == 0


def test_sdpa_decomposition_matches_torch_when_quantizers_are_off():
    model = gpt(sdpa=True)
    batches = id_batches()
    q = ft.quantize(model, loop_over(batches), weights=None, activations=None, functional=True)
    assert sorted(operand_quantizers(q)) == sorted(OPERANDS)
    assert not any(r["enabled"] for r in ft.summary(q))
    with torch.no_grad():
        for ids in id_batches(2, seed=5):
            got, want = q(ids), model(ids)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


class SDPA(nn.Module):
    """F.scaled_dot_product_attention with fixed keyword arguments."""

    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **self.kw)


def qkv(seed, heads=(2, 2), L=5, S=6, E=8, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, heads[0], L, E, generator=gen) * scale, torch.randn(2, heads[1], S, E, generator=gen),
            torch.randn(2, heads[1], S, E, generator=gen))


@pytest.mark.parametrize("kw,heads", [
    ({}, (2, 2)),
    ({"is_causal": True}, (2, 2)),
    ({"attn_mask": torch.rand(5, 6, generator=torch.Generator().manual_seed(3)) > 0.3}, (2, 2)),
    ({"attn_mask": torch.randn(5, 6, generator=torch.Generator().manual_seed(4))}, (2, 2)),
    ({"scale": 0.3}, (2, 2)),
    ({"enable_gqa": True}, (4, 2)),
], ids=["plain", "causal", "bool_mask", "float_mask", "scale", "gqa"])
def test_sdpa_arguments(kw, heads):
    if "attn_mask" in kw and kw["attn_mask"].dtype == torch.bool:
        kw["attn_mask"][:, 0] = True  # no fully masked row
    model = SDPA(**kw)
    batches = [qkv(s, heads) for s in range(2)]
    off = ft.quantize(model, loop_over(batches), activations=None, weights=None, functional=True)
    assert sorted(operand_quantizers(off)) == [f"operand:{j}" for j in range(4)]
    x = qkv(9, heads)
    with torch.no_grad():
        torch.testing.assert_close(off(*x), model(*x), rtol=1e-5, atol=1e-6)
    # quantized: the same formula on fp8q.quantize'd operands
    on = ft.quantize(model, loop_over(batches), functional=True, formats={"": {"operand:2": "e3m4"}})
    ops = operand_quantizers(on)
    assert ops["operand:2"].format == "e3m4" and ops["operand:0"].format == "e4m3"
    qq, k, v = x
    if kw.get("enable_gqa"):
        k, v = k.repeat_interleave(2, -3), v.repeat_interleave(2, -3)
    m = [ops[f"operand:{j}"].maxval for j in range(4)]
    scores = lib_q(qq, "e4m3", maxval=m[0]) @ lib_q(k.transpose(-2, -1), "e4m3", maxval=m[1])
    scores = scores * kw.get("scale", 1 / math.sqrt(qq.shape[-1]))
    if kw.get("is_causal"):
        scores = scores.masked_fill(~causal_keep(5, 6), -INF)
    mask = kw.get("attn_mask")
    if mask is not None:
        scores = scores.masked_fill(~mask, -INF) if mask.dtype == torch.bool else scores + mask
    want = lib_q(torch.softmax(scores, -1), "e3m4", maxval=m[2]) @ lib_q(v, "e4m3", maxval=m[3])
    with torch.no_grad():
        assert torch.equal(on(*x), want)


def test_sdpa_dropout_needs_eval():
    model = SDPA(dropout_p=0.5).eval()
    batches = [qkv(s) for s in range(2)]
    q = ft.quantize(model, loop_over(batches), activations=None, functional=True)
    x = qkv(7)
    with torch.no_grad():
        torch.testing.assert_close(q(*x), F.scaled_dot_product_attention(*x), rtol=1e-5, atol=1e-6)
        q.train()
        with pytest.raises(ValueError, match="dropout_p"):
            q(*x)
    assert torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("fmt", ["e3m4@8", "mxfp8_e4m3"])
@pytest.mark.parametrize("sdpa", [False, True], ids=["matmul", "sdpa"])
def test_block_formats_along_reduction_dims(fmt, sdpa):
    model = gpt(sdpa)
    # only the attention modules: their own products, not their Linear layers
    q = ft.quantize(model, loop_over(id_batches()), weights=None, activations=fmt, functional=True,
                    layers="blocks.*.attn")
    assert not any(hasattr(m, "weight_quantizer") for m in q.modules())
    rows = ft.summary(q)
    assert [r["name"] for r in rows] == OPERANDS
    assert all(r["maxval"] is None and r["range"] == "block" for r in rows)
    seen = capture_operands(q, id_batches(1, seed=3)[0])
    assert sorted(seen) == sorted(OPERANDS)
    for name, (x, y) in seen.items():
        axis = -1 if int(name[-1]) % 2 == 0 else -2  # left: last dim, right: second to last
        np.testing.assert_array_equal(y.numpy(), fp8q.quantize(x.contiguous().numpy(), fmt, block_axis=axis),
                                      err_msg=name)
        if fmt == "e3m4@8":
            assert not np.array_equal(y.numpy(), fp8q.quantize(x.contiguous().numpy(), fmt, block_axis=-1 - axis % 2))


# ---------------------------------------------------------------------------------------------
# Other products and the naming
# ---------------------------------------------------------------------------------------------


class Bmm(nn.Module):
    def forward(self, a, b):
        return torch.bmm(a, b) + a.bmm(b * 2)


class RMatmul(nn.Module):
    """x @ w written as w.__rmatmul__(x): x is the left operand."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, generator=torch.Generator().manual_seed(0)) * 5)

    def forward(self, x):
        return self.w.__rmatmul__(x)


class Inner(nn.Module):
    def forward(self, x):
        return x @ x.transpose(-2, -1)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, x):
        y = torch.matmul(x, x.transpose(-2, -1) * 3)  # operands 0, 1
        z = self.inner(y) + self.inner(y * 2)         # inner's 0, 1 (both calls)
        return z.matmul(torch.ones(z.shape[-1]))       # operands 2, 3 (a 1-D right operand)


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def test_bmm():
    batches = [(randn(2, 3, 4, seed=s), randn(2, 4, 5, seed=10 + s, scale=3)) for s in range(3)]
    q = ft.quantize(Bmm(), loop_over(batches), functional=True)
    ops = operand_quantizers(q)
    assert sorted(ops) == [f"operand:{j}" for j in range(4)]
    assert ops["operand:0"].maxval == ops["operand:2"].maxval == amax(a for a, _ in batches)
    assert ops["operand:1"].maxval == amax(b for _, b in batches)
    assert ops["operand:3"].maxval == amax(b * 2 for _, b in batches)
    a, b = randn(2, 3, 4, seed=20), randn(2, 4, 5, seed=21, scale=3)
    m = [ops[f"operand:{j}"].maxval for j in range(4)]
    want = (torch.bmm(lib_q(a, "e4m3", maxval=m[0]), lib_q(b, "e4m3", maxval=m[1]))
            + torch.bmm(lib_q(a, "e4m3", maxval=m[2]), lib_q(b * 2, "e4m3", maxval=m[3])))
    with torch.no_grad():
        assert torch.equal(q(a, b), want)


def test_rmatmul_keeps_left_and_right():
    model = RMatmul()
    batches = [randn(4, 8, seed=s) for s in range(2)]
    q = ft.quantize(model, loop_over(batches), functional=True, activations="e3m4")
    ops = operand_quantizers(q)
    assert ops["operand:0"].maxval == amax(batches) and ops["operand:0"].side == 0
    assert ops["operand:1"].maxval == float(model.w.detach().abs().max()) and ops["operand:1"].side == 1
    x = randn(4, 8, seed=5)
    w = model.w.detach()
    xq, wq = lib_q(x, "e3m4", maxval=ops["operand:0"].maxval), lib_q(w, "e3m4", maxval=ops["operand:1"].maxval)
    with torch.no_grad():
        assert torch.equal(q(x), xq @ wq)
    # straight-through gradient: d(sum(Q(x) @ Q(w)))/dx = 1 @ Q(w)^T where x is inside the range
    x = (x * 0.5).requires_grad_()
    q(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4, 3) @ wq.T)


def test_nested_modules_number_their_own_calls():
    batches = [randn(3, 4, seed=s) for s in range(2)]
    q = ft.quantize(Outer(), loop_over(batches), functional=True)
    ops = operand_quantizers(q)
    assert sorted(ops) == ["inner.operand:0", "inner.operand:1", "operand:0", "operand:1", "operand:2", "operand:3"]
    assert [r["name"] for r in ft.summary(q)] == ["operand:0", "operand:1", "operand:2", "operand:3",
                                                  "inner.operand:0", "inner.operand:1"]
    ys = [x @ (x.T * 3) for x in batches]
    zs = [y @ y.T + (2 * y) @ (2 * y).T for y in ys]
    assert ops["operand:0"].maxval == amax(batches)
    assert ops["operand:1"].maxval == amax(x * 3 for x in batches)
    assert ops["inner.operand:0"].maxval == amax(2 * y for y in ys)  # both calls share the quantizers
    assert ops["operand:2"].maxval == amax(zs)
    assert ops["operand:3"].maxval == 1.0
    # the inner module run on its own uses its quantizers too
    seen = capture_operands(q, ys[0], via=q.inner)
    assert sorted(seen) == ["inner.operand:0", "inner.operand:1"]


def test_globs_and_formats_select_operand_owners():
    model = gpt()
    batches = id_batches(2)
    q = ft.quantize(model, loop_over(batches), functional=True, exclude="blocks.1.attn",
                    formats={"blocks.0.attn": {"operand:1": "int8", "operand:3": None}})
    ops = operand_quantizers(q)
    assert sorted(ops) == OPERANDS[:4]
    assert hasattr(q.blocks[1].attn.q, "weight_quantizer")  # the Linear layers inside stay selected
    assert [ops[n].format for n in OPERANDS[:4]] == ["e4m3", "int8", "e4m3", None]
    assert not ops["blocks.0.attn.operand:3"].enabled
    row = [r for r in ft.summary(q) if r["name"] == "blocks.0.attn.operand:3"][0]
    assert row["format"] is None and row["enabled"] is False
    # a formats entry of an excluded module is ignored
    q = ft.quantize(model, loop_over(batches), functional=True, exclude="blocks.*.attn",
                    formats={"blocks.1.attn": {"operand:0": "int8"}})
    assert operand_quantizers(q) == {}
    # a Linear layer's own keys and operand keys together
    q = ft.quantize(model, loop_over(batches), functional=True,
                    formats={"head": {"weight": "e3m4", "operand:0": "int8"}})
    assert q.head.weight_quantizer.format == "e3m4"


def test_uncalibrated_operands_warn_once_and_stay_float():
    model = gpt()
    q = ft.quantize(model, None, functional=True, activations=None, weights=None)
    ids = id_batches(1)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            out = q(ids)
            q(ids)
    names = sorted(n for n in OPERANDS if any(f"'{n}'" in str(w.message) for w in caught))
    assert names == sorted(OPERANDS) and len(caught) == len(OPERANDS)
    with torch.no_grad():
        assert torch.equal(out, model(ids))


# ---------------------------------------------------------------------------------------------
# States, copies, gradients
# ---------------------------------------------------------------------------------------------


def test_states_round_trip(tmp_path):
    model = gpt()
    batches = id_batches()
    q = ft.quantize(model, loop_over(batches), functional=True, formats={"blocks.1.attn": {"operand:2": "int8"}})
    q.blocks[0].attn.fp8q_operands["operand:3"].enabled = False
    path = tmp_path / "states.json"
    saved = ft.save_states(q, path)
    assert saved["quantizers"]["blocks.1.attn.operand:2"] == {
        "kind": "operand", "format": "int8", "enabled": True, "range": "minmax",
        "maxval": q.blocks[1].attn.fp8q_operands["operand:2"].maxval}
    fresh = ft.quantize(gpt(), None, functional=True)
    assert operand_quantizers(fresh) == {}
    ft.load_states(fresh, path)
    fresh.load_state_dict(q.state_dict())
    assert sorted(operand_quantizers(fresh)) == sorted(OPERANDS)
    assert ft.summary(fresh) == ft.summary(q)
    for ids in id_batches(2, seed=11):
        with torch.no_grad():
            assert torch.equal(fresh(ids), q(ids))
    ft.load_states(fresh, saved)  # again, onto the existing quantizers
    # an operand of a module whose operands are not quantized is unknown; nothing is created
    other = ft.quantize(gpt(), None, functional=True, exclude="blocks.1.attn")
    with pytest.raises(ValueError, match="unknown"):
        ft.load_states(other, saved)
    assert operand_quantizers(other) == {}
    plain = ft.quantize(gpt(), None)
    with pytest.raises(ValueError, match="unknown"):
        ft.load_states(plain, saved)
    bad = copy.deepcopy(saved)
    bad["quantizers"]["blocks.0.attn.operand:1"]["kind"] = "input"
    with pytest.raises(ValueError, match="operand quantizer"):
        ft.load_states(ft.quantize(gpt(), None, functional=True), bad)


def test_deepcopy_has_its_own_quantizers_and_hooks():
    q = ft.quantize(gpt(), loop_over(id_batches()), functional=True)
    c = copy.deepcopy(q)
    mine, theirs = operand_quantizers(q), operand_quantizers(c)
    assert sorted(theirs) == sorted(mine)
    assert all(theirs[n] is not mine[n] for n in mine)
    ids = id_batches(1, seed=4)[0]
    with torch.no_grad():
        assert torch.equal(c(ids), q(ids))
    assert sorted(capture_operands(c, ids)) == sorted(OPERANDS)
    # torch.save / torch.load of the whole model (pickling) works the same way
    buf = io.BytesIO()
    torch.save(q, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(ids), q(ids))
    assert ft.summary(loaded) == ft.summary(q)
    calls = []
    mine[OPERANDS[0]].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        c(ids)
    assert calls == []  # the copy's hooks drive the copy's quantizers
    before = q(ids).detach()
    theirs[OPERANDS[2]].maxval = theirs[OPERANDS[2]].maxval / 4
    with torch.no_grad():
        assert not torch.equal(c(ids), before)
        assert torch.equal(q(ids), before)


def test_gradients_reach_the_embeddings():
    q = ft.quantize(gpt(), loop_over(id_batches()), functional=True)
    q.train()
    out = q(id_batches(1, seed=6)[0])
    out.square().mean().backward()
    for name, p in q.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------
# Hooks, inplace, errors
# ---------------------------------------------------------------------------------------------


def test_hooks_only_with_functional():
    model = gpt()
    q = ft.quantize(model, loop_over(id_batches()))
    for name, m in q.named_modules():
        assert not m._forward_pre_hooks and not m._forward_hooks, name
        assert "_fp8q_scope" not in m.__dict__
    # inplace=False: the caller's model gets nothing
    q = ft.quantize(model, loop_over(id_batches()), functional=True)
    assert_no_fp8q(model)
    assert all(m._forward_pre_hooks for m in q.modules() if not hasattr(m, "format") and
               not isinstance(m, nn.ModuleDict))
    q = ft.quantize(model, loop_over(id_batches()), functional=True, inplace=True)
    assert q is model and sorted(operand_quantizers(model)) == sorted(OPERANDS)
    with pytest.raises(ValueError, match="already quantized"):
        ft.quantize(model, None, functional=True)


def _raise_after(model):
    model(id_batches(1)[0])
    raise RuntimeError("out of batches")


def _raise_inside(model):
    model(id_batches(1)[0])
    model.blocks[1].attn(torch.randn(2, T, D + 1))  # fails in a nested Linear


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("kw,err,match", [
    ({"formats": {"blocks.0.attn": {"operand:0": "e4m3"}}, "functional": False}, ValueError, "functional=True"),
    ({"formats": {"blocks.0.attn": {"operand:1": "bogus"}}}, ValueError, "unknown format"),
    ({"formats": {"blocks.0.attn": {"operand:x": "e4m3"}}}, ValueError, "unknown key"),
    ({"formats": {"blocks.0.attn": {"operand:01": "e4m3"}}}, ValueError, "unknown key"),
    ({"formats": {"blocks.0.attn": {"act": "e4m3"}}}, ValueError, "not a Linear or Conv layer"),
    ({"formats": {"blocks.9": {"operand:0": "e4m3"}}}, ValueError, "not a module of the model"),
    ({"formats": {"blocks.0.attn": ["operand:0"]}}, TypeError, "must be a mapping"),
    ({"layers": "blocks.*.attn", "functional": False}, ValueError, "matches no Linear or Conv layer"),
    ({"exclude": "decoder.*"}, ValueError, "matches no Linear or Conv layer and no module"),
    ({"functional": 1}, TypeError, "functional must be True or False"),
    ({"forward_loop": _raise_after}, ValueError, "forward_loop raised RuntimeError: out of batches"),
    ({"forward_loop": _raise_inside}, ValueError, "forward_loop raised RuntimeError"),
])
def test_bad_input_leaves_model_unchanged(kw, err, match, inplace):
    kw = {"functional": True, **kw}
    model = gpt()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(err, match=match):
        ft.quantize(model, kw.pop("forward_loop", loop_over(id_batches(1))), inplace=inplace, **kw)
    assert_no_fp8q(model)
    assert set(model.state_dict()) == set(before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    ids = id_batches(1)[0]
    with torch.no_grad():
        assert torch.equal(model(ids), gpt()(ids))


def test_non_finite_operand_fails_calibration():
    model = Inner()
    with pytest.raises(ValueError, match="no finite value"):
        ft.quantize(model, lambda m: m(torch.full((2, 2), INF)), functional=True, inplace=True)
    assert_no_fp8q(model)
