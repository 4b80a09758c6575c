#!/usr/bin/python3
"""Generate a random-weight ONNX model with the Hugging Face DINOv2 export contract.

No registry reachable from here ships DINOv2 weights, and lookout must not download
them at run time, so tests, benchmarks and the demo use a model of the same *shape
contract* with random weights:

  input   pixel_values       float32 [batch, 3, 224, 224]   (batch symbolic)
  outputs last_hidden_state  float32 [batch, 257, D]
          pooler_output      float32 [batch, D]             (token 0 after the final LayerNorm)

The graph mirrors a ViT-S/14-style DINOv2: a 14x14/14 Conv patch embedding, a CLS
token expanded to the batch, a learned position embedding, pre-norm transformer
blocks (LayerNormalization, multi-head attention from MatMul/Softmax, an MLP with
GELU written as Div(sqrt2) -> Erf -> Add 1 -> Mul x -> Mul 0.5, and layer scale),
and a final LayerNorm. Only opset-17 standard operators are used, so any ONNX
Runtime >= 1.12 runs it.

Usage (Debian's python3-onnx and python3-numpy; run with /usr/bin/python3):
  scripts/gen_model.py                      # tiny D=32 model -> models/dinov2-tiny-random.onnx
  scripts/gen_model.py --preset vits14      # ViT-S/14 shape (~87 MB) -> .lookout/models/ (never commit)
  scripts/gen_model.py --preset vits14 --int8 --out .lookout/models/dinov2-vits14-random-int8.onnx
  scripts/gen_model.py --dim 8 --mlp 16 --input-name input --out drift/embed/testdata/wrong-input.onnx

Output is deterministic for a given seed and flags (same bytes every run).
"""

import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = 224
PATCH = 14
PRESETS = {
    # D, depth, heads, mlp, default output
    "tiny": (32, 1, 2, 64, os.path.join(ROOT, "models", "dinov2-tiny-random.onnx")),
    "vits14": (384, 12, 6, 1536, os.path.join(ROOT, ".lookout", "models", "dinov2-vits14-random.onnx")),
}


class Graph:
    """Collects nodes and initializers, handing out unique tensor names."""

    def __init__(self, rng, int8=False):
        self.rng = rng
        self.int8 = int8
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), n))
        return n

    def weight(self, hint, shape, std):
        return self.const(hint, (self.rng.standard_normal(shape) * std).astype(np.float32))

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def layer_norm(g, x, dim):
    scale = g.const("ln_scale", np.ones(dim, np.float32))
    bias = g.const("ln_bias", np.zeros(dim, np.float32))
    return g.op("LayerNormalization", [x, scale, bias], "ln", axis=-1, epsilon=1e-6)


def linear(g, x, d_in, d_out):
    # Xavier-like 1/sqrt(fan_in) keeps activations O(1) through random blocks,
    # which ViT's 0.02 init only achieves together with trained weights.
    w = (g.rng.standard_normal((d_in, d_out)) * (1.0 / math.sqrt(d_in))).astype(np.float32)
    if g.int8:
        b = g.weight("b", (d_out,), 0.02)
        return g.op("Add", [int8_matmul(g, x, w), b])
    w_name = g.const("w", w)  # names allocated in the original order: same bytes as before --int8 existed
    b = g.weight("b", (d_out,), 0.02)
    return g.op("Add", [g.op("MatMul", [x, w_name]), b])


def int8_matmul(g, x, w):
    """x @ w with w quantized to int8 per output column (symmetric) and x
    quantized dynamically per tensor to uint8, the way ONNX Runtime's dynamic
    quantization rewrites a MatMul: DynamicQuantizeLinear -> MatMulInteger
    -> Cast -> scale. The same random draws as the float model, so the two
    files embed the same function up to quantization error."""
    scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0
    wq = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    xq, xs, xzp = g.name("xq"), g.name("xs"), g.name("xzp")
    g.nodes.append(helper.make_node("DynamicQuantizeLinear", [x], [xq, xs, xzp], name=g.name("dql")))
    acc = g.op("MatMulInteger", [xq, g.const("wq", wq), xzp])
    y = g.op("Cast", [acc], to=TensorProto.FLOAT)
    return g.op("Mul", [g.op("Mul", [y, xs]), g.const("wscale", scale.astype(np.float32))])


def gelu(g, x):
    # Exact (erf) GELU spelled out the way PyTorch's ONNX export writes it.
    sqrt2 = g.const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    one = g.const("one", np.array(1.0, np.float32))
    half = g.const("half", np.array(0.5, np.float32))
    e = g.op("Erf", [g.op("Div", [x, sqrt2])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [e, one])]), half])


def attention(g, x, dim, heads):
    hd = dim // heads
    split = g.const("split_shape", np.array([0, 0, heads, hd], np.int64))
    merge = g.const("merge_shape", np.array([0, 0, dim], np.int64))

    def project(perm):
        y = g.op("Reshape", [linear(g, x, dim, dim), split])
        return g.op("Transpose", [y], perm=perm)

    q = project([0, 2, 1, 3])  # [B,H,T,hd]
    k = project([0, 2, 3, 1])  # [B,H,hd,T]
    v = project([0, 2, 1, 3])  # [B,H,T,hd]
    scale = g.const("attn_scale", np.array(1.0 / math.sqrt(hd), np.float32))
    scores = g.op("Mul", [g.op("MatMul", [q, k]), scale])
    probs = g.op("Softmax", [scores], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return linear(g, g.op("Reshape", [ctx, merge]), dim, dim)


def block(g, x, dim, heads, mlp):
    # DINOv2's layer scale starts at 1.0; kept so the graph has the same ops.
    ls1 = g.const("layer_scale", np.ones(dim, np.float32))
    ls2 = g.const("layer_scale", np.ones(dim, np.float32))
    a = attention(g, layer_norm(g, x, dim), dim, heads)
    x = g.op("Add", [x, g.op("Mul", [a, ls1])])
    h = linear(g, gelu(g, linear(g, layer_norm(g, x, dim), dim, mlp)), mlp, dim)
    return g.op("Add", [x, g.op("Mul", [h, ls2])])


def embeddings(g, pixels, dim):
    tokens = (IMAGE // PATCH) ** 2
    # Patch weights at 1/sqrt(fan_in) (not 0.02) so brightness or blur of the
    # image visibly moves the tokens relative to the position embedding.
    w = g.weight("patch_w", (dim, 3, PATCH, PATCH), 1.0 / math.sqrt(3 * PATCH * PATCH))
    b = g.weight("patch_b", (dim,), 0.02)
    conv = g.op("Conv", [pixels, w, b], "patch", kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    flat = g.op("Reshape", [conv, g.const("flat_shape", np.array([0, dim, -1], np.int64))])
    patches = g.op("Transpose", [flat], perm=[0, 2, 1])  # [B,256,D]

    batch = g.op("Slice", [g.op("Shape", [pixels]), g.const("i0", np.array([0], np.int64)),
                           g.const("i1", np.array([1], np.int64))])
    cls_shape = g.op("Concat", [batch, g.const("cls_tail", np.array([1, dim], np.int64))], axis=0)
    cls = g.op("Expand", [g.weight("cls_token", (1, 1, dim), 0.02), cls_shape])
    x = g.op("Concat", [cls, patches], axis=1)  # [B,257,D]
    return g.op("Add", [x, g.weight("pos_embed", (1, tokens + 1, dim), 0.02)])


def build(args):
    g = Graph(np.random.default_rng(args.seed), args.int8)
    x = embeddings(g, args.input_name, args.dim)
    for _ in range(args.depth):
        x = block(g, x, args.dim, args.heads, args.mlp)
    g.nodes.append(helper.make_node("LayerNormalization", [x, g.const("ln_scale", np.ones(args.dim, np.float32)),
                                                          g.const("ln_bias", np.zeros(args.dim, np.float32))],
                                    ["last_hidden_state"], name="final_ln", axis=-1, epsilon=1e-6))
    g.nodes.append(helper.make_node("Gather", ["last_hidden_state", g.const("cls_index", np.array(0, np.int64))],
                                    ["pooler_output"], name="pooler", axis=1))
    seq = (IMAGE // PATCH) ** 2 + 1
    graph = helper.make_graph(
        g.nodes, "dinov2_random",
        [helper.make_tensor_value_info(args.input_name, TensorProto.FLOAT, ["batch_size", 3, IMAGE, IMAGE])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch_size", seq, args.dim]),
         helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch_size", args.dim])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="lookout/scripts/gen_model.py")
    model.ir_version = 8  # what opset 17 needs; keeps older ORT builds able to load it
    model.doc_string = (f"Random-weight DINOv2-contract model (D={args.dim}, depth={args.depth}, "
                        f"heads={args.heads}, mlp={args.mlp}, seed={args.seed}). Not a real DINOv2.")
    onnx.checker.check_model(model, full_check=True)
    return model


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--dim", type=int, help="embedding width D")
    p.add_argument("--depth", type=int, help="transformer blocks")
    p.add_argument("--heads", type=int, help="attention heads (must divide D)")
    p.add_argument("--mlp", type=int, help="MLP hidden width")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--input-name", default="pixel_values",
                   help="name of the image input; anything else breaks the contract (test fixture)")
    p.add_argument("--int8", action="store_true",
                   help="int8 weights (per-column) with dynamic uint8 activations in every linear layer; "
                        "same random weights as without the flag")
    p.add_argument("--out", help="output path (default depends on the preset)")
    args = p.parse_args()
    dim, depth, heads, mlp, out = PRESETS[args.preset]
    args.dim = args.dim or dim
    args.depth = args.depth if args.depth is not None else depth
    args.heads = args.heads or heads
    args.mlp = args.mlp or mlp
    args.out = args.out or out
    if args.dim % args.heads:
        p.error(f"--heads {args.heads} does not divide --dim {args.dim}")
    return args


def main():
    args = parse()
    model = build(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, args.out)  # never leave a half-written model behind
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
