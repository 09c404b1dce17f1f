#!/usr/bin/env python3
"""PyTorch eager (CPU) timing of exactly Conjure's `ddpm` (and `ddpm-cond`) preset: the training
step and DDIM sampling, the yardstick of `conjure bench --model ddpm|ddpm-cond`.

    /work/torchvenv/bin/python scripts/bench_torch_ddpm.py --model ddpm --batch 64 --threads 1

The denoiser is Conjure's UNet (Sources/ConjureModels/Diffusion/UNet.swift) built from
DiffusionConfig.ddpmPreset (DiffusionConfig.swift) for 1x28x28 images, layer for layer and in
the same order:
  time embedding: sinusoid of t (dim = base width 16, cosines first, max period 10000;
      Sources/ConjureNN/Diffusion.swift) -> time_embed Linear(16, 64), SiLU, Linear(64, 64);
      ddpm-cond adds label_embed Embedding(11, 64) (10 classes + the null class 10).
  conv_in Conv2d(1, 16, 3, padding 1)
  down.0: ResidualBlock(16 -> 16), downsample Conv2d(16, 16, 3, stride 2, padding 1)  28 -> 14
  down.1: ResidualBlock(16 -> 32) (1x1 conv_shortcut), downsample Conv2d(32, 32, 3, 2, 1) 14 -> 7
  down.2: ResidualBlock(32 -> 32), AttentionBlock(32)                               7x7
  mid: ResidualBlock(32 -> 32), AttentionBlock(32), ResidualBlock(32 -> 32)
  up.0 (level 2): 2 x [ResidualBlock(64 -> 32), AttentionBlock(32)], nearest x2 + Conv2d(32, 32, 3, 1, 1)
  up.1 (level 1): ResidualBlock(64 -> 32), ResidualBlock(48 -> 32), nearest x2 + Conv2d(32, 32, 3, 1, 1)
  up.2 (level 0): ResidualBlock(48 -> 16), ResidualBlock(32 -> 16)
      (each up block takes the previous output concatenated with the last skip along channels;
      the skips are conv_in's output, every down block's output and every downsample's output)
  norm_out GroupNorm(8, 16), SiLU, conv_out Conv2d(16, 1, 3, padding 1) (zero-initialised)
ResidualBlock: h = conv1(SiLU(GroupNorm(8)(x))) + time_emb_proj(SiLU(temb))[:, :, None, None];
  h = conv2(SiLU(GroupNorm(8)(h))) (dropout 0); out = conv_shortcut(x) or x, + h.
AttentionBlock: x + MHA(GroupNorm(8)(x) as [N, H*W, C]) back to [N, C, H, W], one head,
  nn.MultiheadAttention(C, 1, batch_first=True) (in_proj and out_proj, as Conjure's).
Parameters: 280,177 (ddpm) and 280,881 (ddpm-cond: + the 11 x 64 label embedding), Conjure's
counts (DiffusionConfig.ddpmPreset's documentation, docs/diffusion.md); the script asserts them.

Training step (DiffusionModel.trainingStep + Optimization.update, as `conjure bench` times it on
one fixed batch of uniform values in [-1, 1], Benchmark.syntheticRows):
  t ~ U{0..999} per image, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with the
  linear schedule beta = linspace(1e-4, 0.02, 1000) (Ho et al. 2020); loss = mean((eps_theta(x_t,
  t[, y]) - eps)^2); ddpm-cond: labels 0..9 in turn, each replaced by the null class with p = 0.1.
  backward, clip_grad_norm_(1.0), Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8), then the EMA of
  the weights: ema = d ema + (1 - d) w with d = min(0.999, (1 + n) / (10 + n)) at update n
  (1-based; Conjure's EMA.decay(atStep:)), the averages starting at the initial weights.

Sampling (DiffusionModel.sample with the preset's sampler: DDIM, eta 0, x0 clipped, from the EMA
weights, evaluation mode, no autograd): a copy of the network holding the EMA weights; per step
t -> prev of the DDIM subsequence tau_i = round((i + 1) T / S) - 1:
  eps = net(x, t) (ddpm-cond with guidance w != 0: one batch of 2N, labels then the null class,
  eps = (1 + w) eps(x, y) - w eps(x, null): guidance doubles the denoiser's work, as
  `conjure sample --guidance 3` does; the preset's w is 1, the cost is the same for any w != 0);
  x0 = clip((x - sqrt(1 - abar_t) eps) / sqrt(abar_t), -1, 1), eps = (x - sqrt(abar_t) x0) /
  sqrt(1 - abar_t); x = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps with x0_hat recomputed
  from eps (Song et al. 2021 eq. 12, eta 0); the result clipped to [-1, 1].
  Each timed run samples a batch of --batch images with --sample-steps DDIM steps (default 10);
  images/s of DDIM 50 = batch / (run time / sample-steps x 50): the denoiser's cost does not
  depend on t, so this is the 50-step rate up to the per-call overhead (the EMA copy), which a
  short run charges to fewer steps. `conjure bench --sample-steps` does the same; pass 50 to
  both to time whole runs.

Prints `RESULT {json}` with `steps_per_s_median` (training) and `images_per_s_median` (sampling),
the medians over --repeats timed runs, plus a human-readable line for each.
"""
import argparse
import copy
import json
import math
import os
import statistics
import time

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["ddpm", "ddpm-cond"], default="ddpm")
p.add_argument("--batch", type=int, default=64, help="images per training step and per sampling run")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--warmup", type=int, default=5, help="untimed training steps")
p.add_argument("--steps", type=int, default=20, help="training steps per timed run")
p.add_argument("--repeats", type=int, default=5, help="timed runs (medians reported)")
p.add_argument("--sample-steps", type=int, default=10,
               help="DDIM steps per timed sampling run (0: no sampling); the rate is stated for --sampler-steps")
p.add_argument("--sampler-steps", type=int, default=50, help="the DDIM step count the images/s are stated for (the preset's 50)")
p.add_argument("--guidance", type=float, default=1.0, help="ddpm-cond: the guidance weight w (the preset's 1; any w != 0 costs the same)")
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
for name in ("batch", "threads", "steps", "repeats", "sampler_steps"):
    if getattr(a, name) < 1:
        p.error("--%s must be at least 1" % name.replace("_", "-"))
if a.warmup < 0 or not (0 <= a.sample_steps <= a.sampler_steps):
    p.error("--warmup must be >= 0 and --sample-steps in 0..--sampler-steps")
for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[k] = str(a.threads)

import torch  # noqa: E402  (after the thread variables)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(a.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass
torch.manual_seed(a.seed)

# DiffusionConfig.ddpmPreset
IMAGE = (1, 28, 28)
BASE, MULT, BLOCKS, ATTENTION_LEVELS, HEADS, GROUPS = 16, (1, 2, 2), 1, (2,), 1, 8
T = 1000
LR, BETAS, EPS, CLIP, EMA_DECAY = 1e-3, (0.9, 0.999), 1e-8, 1.0, 0.999
CLASSES = 10 if a.model == "ddpm-cond" else 0
LABEL_DROPOUT = 0.1
# Conjure's parameter counts (`conjure train --model ddpm` prints them; DiffusionConfig.parameterCount).
CONJURE_PARAMETERS = {"ddpm": 280_177, "ddpm-cond": 280_881}


def timestep_embedding(t, dim, max_period=10000.0):
    """Sources/ConjureNN/Diffusion.swift's timestepEmbedding: [cos(t f), sin(t f)], f_i = exp(-ln(P) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1).to(torch.float32)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(GROUPS, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))  # dropout 0
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class AttentionBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, c)
        self.attn = nn.MultiheadAttention(c, HEADS, batch_first=True)

    def forward(self, x):
        n, c, h, w = x.shape
        seq = self.norm(x).reshape(n, c, h * w).permute(0, 2, 1)
        out = self.attn(seq, seq, seq, need_weights=False)[0]
        return x + out.permute(0, 2, 1).reshape(n, c, h, w)


class Level(nn.Module):
    def __init__(self, resnets, attentions, resample):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions) if attentions is not None else None
        self.resample = resample


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        c, tdim = IMAGE[0], 4 * BASE
        self.time_embed = nn.Sequential(nn.Linear(BASE, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.label_embed = nn.Embedding(CLASSES + 1, tdim) if CLASSES else None
        self.conv_in = nn.Conv2d(c, BASE, 3, padding=1)
        widths = [m * BASE for m in MULT]
        skips, ch = [BASE], BASE
        down = []
        for lvl, w in enumerate(widths):
            res, att = [], []
            for _ in range(BLOCKS):
                res.append(ResidualBlock(ch, w, tdim))
                ch = w
                if lvl in ATTENTION_LEVELS:
                    att.append(AttentionBlock(ch))
                skips.append(ch)
            ds = None
            if lvl < len(widths) - 1:
                ds = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
                skips.append(ch)
            down.append(Level(res, att if lvl in ATTENTION_LEVELS else None, ds))
        self.down = nn.ModuleList(down)
        self.mid_resnet1 = ResidualBlock(ch, ch, tdim)
        self.mid_attention = AttentionBlock(ch)
        self.mid_resnet2 = ResidualBlock(ch, ch, tdim)
        up = []
        for lvl in reversed(range(len(widths))):
            w = widths[lvl]
            res, att = [], []
            for _ in range(BLOCKS + 1):
                res.append(ResidualBlock(ch + skips.pop(), w, tdim))
                ch = w
                if lvl in ATTENTION_LEVELS:
                    att.append(AttentionBlock(ch))
            us = nn.Conv2d(ch, ch, 3, padding=1) if lvl > 0 else None
            up.append(Level(res, att if lvl in ATTENTION_LEVELS else None, us))
        self.up = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(GROUPS, ch)
        self.conv_out = nn.Conv2d(ch, c, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x, t, labels=None):
        temb = self.time_embed(timestep_embedding(t, BASE))
        if self.label_embed is not None:
            temb = temb + self.label_embed(labels)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for i, r in enumerate(level.resnets):
                h = r(h, temb)
                if level.attentions is not None:
                    h = level.attentions[i](h)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)
        h = self.mid_resnet2(self.mid_attention(self.mid_resnet1(h, temb)), temb)
        for level in self.up:
            for i, r in enumerate(level.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if level.attentions is not None:
                    h = level.attentions[i](h)
            if level.resample is not None:
                h = level.resample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


net = UNet()
params = list(net.parameters())
n_params = sum(q.numel() for q in params)
expected = CONJURE_PARAMETERS[a.model]
print("parameters: PyTorch %d, Conjure %d (%s)" % (n_params, expected, a.model), flush=True)
assert n_params == expected, "parameter count %d differs from Conjure's %d" % (n_params, expected)

betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
alphas_cumprod = torch.cumprod(1 - betas, dim=0)
sqrt_ab = alphas_cumprod.sqrt().float()
sqrt_1m_ab = (1 - alphas_cumprod).sqrt().float()

opt = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS)
with torch.no_grad():
    ema = [q.detach().clone() for q in params]
updates = 0
B = a.batch
x0 = torch.rand(B, *IMAGE) * 2 - 1  # Benchmark.syntheticRows: uniform in [-1, 1]
given_labels = torch.arange(B) % CLASSES if CLASSES else None  # balancedLabels(B, offset: 0)
net.train()


def train_step():
    global updates
    t = torch.randint(0, T, (B,))
    noise = torch.randn_like(x0)
    labels = None
    if CLASSES:
        labels = torch.where(torch.rand(B) < LABEL_DROPOUT, torch.full_like(given_labels, CLASSES), given_labels)
    xt = sqrt_ab[t].view(B, 1, 1, 1) * x0 + sqrt_1m_ab[t].view(B, 1, 1, 1) * noise
    loss = F.mse_loss(net(xt, t, labels), noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, CLIP)
    opt.step()
    updates += 1
    d = min(EMA_DECAY, (1 + updates) / (10 + updates))
    with torch.no_grad():
        torch._foreach_lerp_(ema, params, 1.0 - d)  # ema = d ema + (1 - d) w
    return loss


def ddim_timesteps(count):
    """DiffusionModel.ddimTimesteps: round((i + 1) T / count) - 1, halves away from zero as Swift's rounded()."""
    return [int(math.floor((i + 1) * T / count + 0.5)) - 1 for i in range(count)]


def sample(sampler_net, z, steps, labels):
    """DiffusionModel.sample with DDIM eta 0, x0 clipped (and guidance for ddpm-cond)."""
    n = z.shape[0]
    seq = ddim_timesteps(steps)
    guided = labels is not None and a.guidance != 0
    x = z
    for i in reversed(range(len(seq))):
        t, prev = seq[i], (seq[i - 1] if i > 0 else -1)
        ab = float(alphas_cumprod[t])
        ab_prev = float(alphas_cumprod[prev]) if prev >= 0 else 1.0
        if guided:
            both = sampler_net(torch.cat([x, x]), torch.full((2 * n,), t, dtype=torch.long),
                               torch.cat([labels, torch.full_like(labels, CLASSES)]))
            eps = both[:n] * (1 + a.guidance) - both[n:] * a.guidance
        else:
            eps = sampler_net(x, torch.full((n,), t, dtype=torch.long), labels)
        # clippedNoise
        x0_hat = ((x - eps * math.sqrt(1 - ab)) * (1 / math.sqrt(ab))).clamp(-1, 1)
        eps = (x - x0_hat * math.sqrt(ab)) * (1 / math.sqrt(1 - ab))
        # ddimUpdate, eta 0
        x0_hat = (x - eps * math.sqrt(1 - ab)) * (1 / math.sqrt(ab))
        x = x0_hat * math.sqrt(ab_prev) + eps * math.sqrt(max(1 - ab_prev, 0.0))
    return x.clamp(-1, 1)


ema_net = copy.deepcopy(net)


def sampling_run(steps):
    """One sampling call: the EMA weights into the sampling copy (as samplingNetwork()), then DDIM."""
    with torch.no_grad():
        for q, e in zip(ema_net.parameters(), ema):
            q.copy_(e)
        ema_net.eval()
        z = torch.randn(B, *IMAGE)
        return sample(ema_net, z, steps, given_labels)


def median(v):
    return statistics.median(v)


for _ in range(a.warmup):
    last = train_step()
rates = []
for _ in range(a.repeats):
    t0 = time.perf_counter()
    for _ in range(a.steps):
        last = train_step()
    float(last.detach())
    rates.append(a.steps / (time.perf_counter() - t0))
med = median(rates)
print("train  %-9s batch %4d  threads %d  %8.2f steps/s (min %.2f, max %.2f)  %9.1f images/s" % (
    a.model, B, a.threads, med, min(rates), max(rates), med * B), flush=True)
result = {"model": a.model, "batch": B, "threads": a.threads, "parameters": n_params,
          "steps_per_s_median": med, "steps_per_s_min": min(rates), "steps_per_s_max": max(rates),
          "final_loss": float(last.detach()), "torch": torch.__version__,
          "cpu_capability": torch.backends.cpu.get_cpu_capability()}
if a.sample_steps > 0:
    sampling_run(1)  # warm-up: the copy, the buffers
    img_rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        out = sampling_run(a.sample_steps)
        float(out[0, 0, 0, 0])
        dt = time.perf_counter() - t0
        img_rates.append(B / (dt / a.sample_steps * a.sampler_steps))
    im = median(img_rates)
    desc = "ddim %d steps, eta 0, x0 clipped%s" % (a.sampler_steps, ", guidance %g (2N evaluations)" % a.guidance if CLASSES and a.guidance != 0 else "")
    print("sample %-9s batch %4d  threads %d  %8.2f images/s (min %.2f, max %.2f)  %s; timed runs of %d steps" % (
        a.model, B, a.threads, im, min(img_rates), max(img_rates), desc, a.sample_steps), flush=True)
    result.update({"images_per_s_median": im, "images_per_s_min": min(img_rates), "images_per_s_max": max(img_rates),
                   "sampler": desc, "sample_steps_timed": a.sample_steps})
print("RESULT " + json.dumps(result), flush=True)
