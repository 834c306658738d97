"""Fixed part of the gpt target: the measure phase, where the metric is computed.

evo runs `python measure.py` after the run phase (prepare.py) has ended, in a fresh process and a
working copy that holds no mutable file: no line of train.py runs here. It loads the model the
run phase exported (a graph of ATen operators and its weights), checks it, and measures
`evaluate_bpb` on the validation split, which only this phase can see. Nothing the variant did to
library modules, globals or files in its own process reaches this one.

The export is the one thing of the variant's that arrives here, so it is read as an attacker
would write it: torch.export.load unpickles, evaluates symbolic-shape strings and runs guard
code, so `load_model` first checks that the archive holds nothing but a graph of ATen operators
on static shapes, tensors, and the files torch writes beside them.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from pathlib import Path

os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"  # every torch.load here: tensors, no pickles

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from corpus import EVAL_BATCH, MODEL, SEPARATOR, SEQ_LEN, VOCAB_SIZE, first_line, split_path  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from evo.target import protocol  # noqa: E402

EVAL_TOKENS = 2**17  # predicted tokens per measurement, the same positions for every variant

# UTF-8 bytes each token stands for: what makes bits per byte independent of the vocabulary.
TOKEN_BYTES = torch.ones(VOCAB_SIZE, dtype=torch.int64)
TOKEN_BYTES[SEPARATOR] = 0

# Dense bf16 peak of known GPUs, for MFU; others report no MFU rather than a guess.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12}

# What an archive of torch.export.save may hold (the pt2 archive format), and nothing else.
ARCHIVE_ENTRY = re.compile(
    r"[\w.-]+/(models/\w+\.json|data/(weights|constants)/(weight|tensor)_\d+"
    r"|data/(weights|constants)/model_(weights|constants)_config\.json"
    r"|data/sample_inputs/\w+\.pt|archive_format|archive_version|byteorder"
    r"|\.data/version|\.data/serialization_id)"
)
OPERATOR = re.compile(r"torch\.ops\.(aten|prims)\.(?!_{2})\w+\.(?!_{2})\w+|_operator\.getitem")
NUMBERS = {"as_int": int, "as_float": float, "as_bool": bool}


class Refused(Exception):
    """The variant ran but must not be scored; the message says why."""


def load_model(path: Path) -> torch.nn.Module:
    """The exported model, after checking that loading it cannot run anything but ATen code."""
    if not path.is_file():
        raise Refused("the run phase exported no model")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise Refused(f"the exported model is not an archive of torch.export.save ({e})") from None
    clean = io.BytesIO()
    with archive, zipfile.ZipFile(clean, "w") as out:
        for name in archive.namelist():
            if not ARCHIVE_ENTRY.fullmatch(name):
                raise Refused(f"the exported model holds {name!r}, not a graph or a tensor")
            data = archive.read(name)
            if name.endswith("_config.json"):
                _check_tensors(name, json.loads(data))
            if "/models/" in name:
                data = json.dumps(_checked_graph(json.loads(data))).encode()
            out.writestr(name, data)
    clean.seek(0)
    try:
        module = torch.export.load(clean).module()
    except Exception as e:  # torch's own loader on an archive it cannot read
        raise Refused(f"the exported model cannot be loaded: {first_line(e)}") from None
    for node in module.graph.nodes:  # what the checked names resolved to
        if node.op == "call_function" and not _aten(node.target):
            raise Refused(f"the exported model calls {node.target}, which is not an ATen operator")
    return module


def _check_tensors(name: str, config: dict) -> None:
    """Every weight and constant a tensor stored as such: no pickle, no custom object."""
    for key, entry in config.get("config", {}).items():
        if entry.get("use_pickle") is not False:
            raise Refused(f"the exported model pickles a tensor ({name}: {key})")
        if not re.fullmatch(r"(weight|tensor)_\d+", str(entry.get("path_name"))):
            raise Refused(f"the exported model's {key} is not a tensor ({name})")


def _checked_graph(program: dict) -> dict:
    """The serialized ExportedProgram, refused if it holds code or symbolic shapes, without the
    metadata that only describes the variant's source."""
    if program.get("guards_code") or program.get("range_constraints"):
        raise Refused("export the model with static shapes: no guards, no dynamic dimensions")
    module = program["graph_module"]
    module["metadata"] = {}
    for node in module["graph"]["nodes"]:
        node["metadata"] = {}
        if not OPERATOR.fullmatch(str(node.get("target"))):
            raise Refused(f"the exported model calls {node.get('target')!r}, not an ATen operator")
    stack = [program]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("as_expr", "expr_str", "as_custom_obj", "as_graph"):
                    raise Refused(f"the exported model holds {key!r}: export static shapes only")
                if key in NUMBERS and type(value) is not NUMBERS[key]:
                    raise Refused(f"the exported model's {key} is not a {NUMBERS[key].__name__}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return program


def _aten(target: object) -> bool:
    import operator

    return target is operator.getitem or (
        isinstance(target, torch._ops.OpOverload) and target.namespace in ("aten", "prims")
    )


def eval_windows(val_data: np.ndarray) -> torch.Tensor:
    """EVAL_TOKENS // SEQ_LEN windows of SEQ_LEN + 1 tokens, spread evenly over validation."""
    count = EVAL_TOKENS // SEQ_LEN
    starts = np.linspace(0, len(val_data) - SEQ_LEN - 1, count).astype(np.int64)
    return torch.from_numpy(
        np.stack([val_data[s : s + SEQ_LEN + 1] for s in starts]).astype(np.int64)
    )


def _logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=inputs.is_cuda):
        logits = model(inputs)
    if not isinstance(logits, torch.Tensor) or logits.shape != (*inputs.shape, VOCAB_SIZE):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise Refused(
            f"the model must return logits of shape {(*inputs.shape, VOCAB_SIZE)}, not {shape}"
        )
    return logits.float()


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, windows: torch.Tensor, device: torch.device) -> float:
    """Validation bits per byte: the bits the model needs, on average, per byte of held-out text.

        val_bpb = sum_t -ln p(token_t | tokens before t)  /  (ln 2 * sum_t bytes(token_t))

    The numerator is the total cross-entropy in nats over every predicted token; ln 2 turns
    nats into bits; dividing by the UTF-8 bytes of the predicted tokens, not by their count,
    makes the value independent of the vocabulary (a tokenizer with longer tokens predicts fewer
    of them, each covering more bytes), so tokenizer and architecture changes compare fairly.
    Tokens that stand for no text (the document separator) are left out of both sums.
    Measured here, in a process the variant never ran in: the model only maps token ids to
    logits, and this function computes the cross-entropy in fp32, on the same EVAL_TOKENS
    positions of the validation split at SEQ_LEN context for every variant. Lower is better; a
    uniform guess over 256 byte values scores 8.0.
    """
    total_nats = torch.zeros((), dtype=torch.float64)
    total_bytes = 0
    for batch in windows.split(EVAL_BATCH):
        batch = batch.to(device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = _logits(model, inputs)
        nats = F.cross_entropy(
            logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1), reduction="none"
        )
        nbytes = TOKEN_BYTES.to(device)[targets.reshape(-1)]
        total_nats += (nats.double() * (nbytes > 0)).sum().cpu()  # fp64: 2^17 terms
        total_bytes += int(nbytes.sum())
    return float(total_nats) / (math.log(2) * total_bytes)


def flops_per_token(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """Training FLOPs per token: three times a forward pass's, counted.

    Counted by torch's FLOP counter on the exported graph, so it follows whatever the variant
    computes: 2 FLOPs per multiply-add of every matrix product forward and twice that backward,
    which gives 6 per weight of every matrix (embedding lookups do none) plus 12 * depth * width
    * seq_len for attention's scores and weighted sums, over the whole seq_len x seq_len square
    as in PaLM's MFU (Chowdhery et al. 2022, appendix B): causal masking is not subtracted.
    Attention is counted through the math kernels, which the counter can see on every device.
    """
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _logits(model, inputs)
    return 3 * counter.get_total_flops() // inputs.numel()


@torch.no_grad()
def check_causal(model: torch.nn.Module, windows: torch.Tensor, device: torch.device) -> None:
    """Refuse a model whose predictions at a position depend on later tokens.

    Such a model could read the very byte it is asked to predict. Changing the second half of
    each input must leave the logits of the first half unchanged.
    """
    inputs = windows[:EVAL_BATCH, :-1].to(device)
    cut = SEQ_LEN // 2
    changed = inputs.clone()
    changed[:, cut:] = (
        inputs[:, cut:] + 1 + torch.arange(SEQ_LEN - cut, device=device)
    ) % VOCAB_SIZE
    before, after = _logits(model, inputs)[:, :cut], _logits(model, changed)[:, :cut]
    tolerance = (2e-2 if inputs.is_cuda else 1e-4) * (1.0 + float(before.abs().max()))
    if not torch.isfinite(before).all():
        raise Refused("the model's logits are not finite (did the training diverge?)")
    if float((before - after).abs().max()) > tolerance:
        raise Refused("the model is not causal: predictions depend on later tokens")


def mfu(flops_per_second: float, device: torch.device) -> float | None:
    """Model FLOPs utilisation: training FLOPs per second (flops_per_token) over the GPU's dense
    bf16 peak; None on CPU and on GPUs of unknown peak, rather than a guess."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    peak = next((flops for key, flops in PEAK_FLOPS.items() if key in name), None)
    return None if peak is None else round(flops_per_second / peak, 4)


def measure(req: protocol.Request) -> None:
    torch.set_num_threads(req.threads)
    device = torch.device(req.device)
    handed = protocol.handed_off(req)  # the run phase's word: shown, not trusted
    windows = eval_windows(np.memmap(split_path(req.cache_dir, "val"), np.uint8, mode="r"))
    details = {}
    try:
        model = load_model(req.output_dir / MODEL).to(device)
        check_causal(model, windows, device)
        flops = flops_per_token(model, windows[:EVAL_BATCH, :-1].to(device))
        details["flops_per_token"] = flops
        tokens, seconds = handed.get("tokens"), req.trained_seconds
        if isinstance(tokens, int) and seconds:
            details["mfu"] = mfu(flops * tokens / seconds, device)
        val_bpb = evaluate_bpb(model, windows, device)
    except Refused as refusal:
        protocol.report_invalid(req, str(refusal), **details)
        return
    protocol.report(req, val_bpb, **details)


if __name__ == "__main__":
    measure(protocol.request(60.0, phase="measure"))
