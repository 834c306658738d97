"""Mutable part of the gpt target: the model, the optimisers and the training loop.

evo's operators change this file, and only this file. `train(run)` must return a model that maps
token ids of shape (batch, run.seq_len) to logits of shape (batch, run.seq_len, run.vocab_size),
causally; prepare.py measures it. Train only on `run.batches(...)`, which ends when the budget is
spent, and schedule on `run.progress()`.
"""

from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

# Model and batch size per device. The CPU size learns within 30-120 s on 2 cores. The CUDA size
# (85M parameters, 32,768 tokens a step) keeps an H100 or H200 busy: 31-35% MFU, about 600,000
# tokens/s on an H200 with torch.compile (BENCHMARKS.md, "GPU").
CPU_SIZE = {"depth": 4, "d_model": 128, "n_heads": 4, "batch_size": 8}
CUDA_SIZE = {"depth": 12, "d_model": 768, "n_heads": 6, "batch_size": 128}
SEQ_LEN = 256
MLP_RATIO = 4
ACTIVATION = "relu2"  # relu2 | gelu
OPTIMIZER = "muon"  # muon (matrices) + adamw (the rest) | adamw (everything)
MATRIX_LR = 0.02  # Muon's learning rate for the blocks' weight matrices
ADAM_LR = 3e-3  # AdamW's learning rate (every parameter when OPTIMIZER is adamw)
MOMENTUM = 0.95
WEIGHT_DECAY = 0.0
ADAM_BETAS = (0.9, 0.95)
WARMUP = 0.05  # fraction of the budget spent ramping the learning rate up
WARMDOWN = 0.4  # fraction of the budget spent decaying it to zero
GRAD_CLIP = 1.0
COMPILE_ON_CUDA = True


def rms_norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len, head_dim, device):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(seq_len, device=device).float(), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)


class Attention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x, cos, sin):
        batch, seq, width = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.n_heads, width // self.n_heads).unbind(2)
        q, k = apply_rotary(rms_norm(q), cos, sin), apply_rotary(rms_norm(k), cos, sin)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.proj(y.transpose(1, 2).reshape(batch, seq, width))


class MLP(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.fc = nn.Linear(d_model, MLP_RATIO * d_model, bias=False)
        self.proj = nn.Linear(MLP_RATIO * d_model, d_model, bias=False)

    def forward(self, x):
        x = self.fc(x)
        x = F.relu(x).square() if ACTIVATION == "relu2" else F.gelu(x)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.attn = Attention(d_model, n_heads)
        self.mlp = MLP(d_model)

    def forward(self, x, cos, sin):
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, depth, d_model, n_heads, max_seq_len):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(depth))
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        cos, sin = rotary_tables(max_seq_len, d_model // n_heads, self.embed.weight.device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features**-0.5)
        for block in self.blocks:  # residual branches start silent
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.proj.weight)
        nn.init.zeros_(self.head.weight)

    def forward(self, idx):
        seq = idx.size(1)
        x = rms_norm(self.embed(idx))
        for block in self.blocks:
            x = block(x, self.cos[:, :seq], self.sin[:, :seq])
        return self.head(rms_norm(x))


def orthogonalize(g, steps=5):
    """Newton-Schulz iteration towards the nearest semi-orthogonal matrix (Muon's update)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if g.is_cuda else g.float()  # bf16 matmuls are slow on CPU
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return (x.T if tall else x).type_as(g)


class Muon(torch.optim.Optimizer):
    """Momentum, then the orthogonalized update, for 2-D weight matrices."""

    def __init__(self, params, lr, momentum):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p.grad))
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = orthogonalize(p.grad.lerp(buf, group["momentum"]))
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.add_(update, alpha=-group["lr"] * scale)


def build_optimizers(model):
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    rest = [p for p in model.parameters() if all(p is not m for m in matrices)]
    if OPTIMIZER == "adamw":
        rest, matrices = list(model.parameters()), []
    optimizers = [torch.optim.AdamW(rest, lr=ADAM_LR, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)]
    if matrices:
        optimizers.append(Muon(matrices, lr=MATRIX_LR, momentum=MOMENTUM))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers


def lr_scale(progress):
    if progress < WARMUP:
        return (progress + 1e-3) / WARMUP
    if progress > 1 - WARMDOWN:
        return max(0.0, (1 - progress) / WARMDOWN)
    return 1.0


def train(run):
    size = CUDA_SIZE if run.device.type == "cuda" else CPU_SIZE
    max_seq_len = max(SEQ_LEN, run.seq_len)  # train on SEQ_LEN, measured at run.seq_len
    model = GPT(run.vocab_size, size["depth"], size["d_model"], size["n_heads"], max_seq_len)
    model.to(run.device)
    optimizers = build_optimizers(model)
    cuda = run.device.type == "cuda"
    step_model = torch.compile(model) if cuda and COMPILE_ON_CUDA else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    for inputs, targets in run.batches(size["batch_size"], SEQ_LEN):
        scale = lr_scale(run.progress())
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale
        with autocast:
            logits = step_model(inputs)
        loss = F.cross_entropy(logits.float().view(-1, run.vocab_size), targets.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        for optimizer in optimizers:
            optimizer.step()
        model.zero_grad(set_to_none=True)
    return model
