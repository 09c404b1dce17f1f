#!/usr/bin/env python3
"""PyTorch CPU reference for one training step of Conjure's `wavegan` preset
(GANConfig.waveganPreset in Sources/ConjureModels/GAN/GANConfig.swift; networks in
GANNetworks.swift), in the style of scripts/bench_torch_gan.py, reusing
../../shared/bench/common.py (BENCH_DIR overrides where it is looked for). Prints one
`RESULT {json}` line with the same fields.

Model (WaveGAN, Donahue et al. 2019, float32, Glorot-uniform weights and zero biases as in the
authors' TensorFlow code and in Conjure), for model
size d (--model-size, default 8 as the preset) and length T = 1024 * L0 (--length, 8192):
  G: Linear(100, 16d*L0), reshape [16d, L0], ReLU,
     5 x ConvTranspose1d(kernel 25, stride 4, padding 11, output_padding 1)
     16d -> 8d -> 4d -> 2d -> d -> 1, ReLU between, tanh at the end (no BatchNorm).
  D: 5 x Conv1d(kernel 25, stride 4, padding 11) 1 -> d -> 2d -> 4d -> 8d -> 16d, each followed
     by LeakyReLU(0.2), phase shuffle (n = 2, reflection at the borders, one shift per example
     per call) after the first four; flatten, Linear(16d*L0, 1).
  loss: WGAN-GP (Gulrajani et al. 2017): D  mean D(fake) - mean D(real) + 10 * mean_i
        (||grad_x D(x_hat_i)|| - 1)^2 at x_hat = e*real + (1-e)*fake, e ~ U(0,1) per example,
        the norm as sqrt(sum g^2 + 1e-12); G  -mean D(G(z)).
  Adam lr 1e-4, betas (0.5, 0.9), eps 1e-8, both nets.

One step (Conjure's `alternating` update with n_critic 5, exactly what `conjure bench --model
wavegan` times as one step): z ~ one of 8 fixed latent batches [B, 100] in turn;
fake = G(z) (graph kept); one critic update on the fixed real batch and fake.detach() with the
gradient penalty (double backward through the critic); after every fifth critic update, the
generator update -mean D(fake) through the updated critic on the same fakes, gradients for G's
parameters only. So 5 steps = 5 critic steps with GP + 1 generator step. Use step counts that
are multiples of 5 (the defaults are: --steps 20 --warmup 5).

    /work/torchvenv/bin/python scripts/bench_torch_wavegan.py --threads 1
"""
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.environ.get("BENCH_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")))
import common  # noqa: E402  (must precede `import torch`)

NOISE = 100
N_CRITIC = 5
GP_LAMBDA = 10.0
SLOPE = 0.2
LR, B1, B2, EPS = 1e-4, 0.5, 0.9, 1e-8
KERNEL, STRIDE, PAD = 25, 4, 11


def parse_extra(p):
    p.add_argument("--model-size", type=int, default=8, help="WaveGAN's d (the paper's 64)")
    p.add_argument("--length", type=int, default=8192, help="samples per clip, a multiple of 1024")
    p.add_argument("--shuffle", type=int, default=2, help="phase-shuffle width n")
    p.set_defaults(steps=20, warmup=5, reps=3)


args = common.parse_args(parse_extra)
if args.length % 1024 != 0:
    sys.exit("--length must be a multiple of 1024, got %d" % args.length)
D_SIZE, T, L0 = args.model_size, args.length, args.length // 1024


def conv_flops_per_step(batch):
    """Multiply-add FLOPs (2 each) of the convolutions and linears of one critic step plus a
    fifth of a generator step, counted as forward + 2x backward per network pass: critic on
    real, fake and interpolates (3 passes) plus the penalty's double backward (about 2 more
    forward-equivalents of the critic's backward), G forward; every fifth step G backward and
    a critic pass. An estimate for the GFLOP/s column only."""
    d = D_SIZE
    widths = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
    g = NOISE * 16 * d * L0
    length = L0
    for i in range(5):
        length *= 4
        g += widths[i] * widths[i + 1] * KERNEL * length
    cw = [1, d, 2 * d, 4 * d, 8 * d, 16 * d]
    c = 16 * d * L0
    length = T
    for i in range(5):
        length //= 4
        c += cw[i] * cw[i + 1] * KERNEL * length
    per_sample = g + 3 * 3 * c + 2 * 2 * c + (2 * g + 3 * c) / N_CRITIC
    return int(2 * batch * per_sample)


common.set_thread_env(args.threads)
common.flops_per_step = conv_flops_per_step
timer = common.Timer("torch", "eager", args)
t_imp = time.time()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
timer.mark("t_import_s", t_imp)
torch.set_num_threads(args.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass
torch.manual_seed(args.seed)


class PhaseShuffle(nn.Module):
    """Shifts each example's [C, L] map by k ~ U{-n..n} with reflection: out[i, :, t] =
    x[i, :, r(t - k_i)]; a gather, so its backward (scatter-add) is differentiable again."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        if not self.training or self.n == 0:
            return x
        n_ex, c, length = x.shape
        k = torch.randint(-self.n, self.n + 1, (n_ex, 1))
        src = torch.arange(length).unsqueeze(0) - k
        src = torch.where(src < 0, -src, src)
        src = torch.where(src >= length, 2 * (length - 1) - src, src)
        return x.gather(2, src.unsqueeze(1).expand(n_ex, c, length))


class Reshape(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


d = D_SIZE
g_widths = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
g_layers = [nn.Linear(NOISE, 16 * d * L0), Reshape(16 * d, L0), nn.ReLU()]
for i in range(5):
    g_layers.append(nn.ConvTranspose1d(g_widths[i], g_widths[i + 1], KERNEL, stride=STRIDE,
                                       padding=PAD, output_padding=1))
    g_layers.append(nn.ReLU() if i < 4 else nn.Tanh())
G = nn.Sequential(*g_layers)
d_layers = []
width = 1
for i in range(5):
    d_layers += [nn.Conv1d(width, d << i, KERNEL, stride=STRIDE, padding=PAD), nn.LeakyReLU(SLOPE)]
    if i < 4:
        d_layers.append(PhaseShuffle(args.shuffle))
    width = d << i
d_layers += [nn.Flatten(), nn.Linear(16 * d * L0, 1)]
D = nn.Sequential(*d_layers)
for m in list(G.modules()) + list(D.modules()):
    if isinstance(m, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
G.train()
D.train()
g_params = list(G.parameters())
d_params = list(D.parameters())
n_params = sum(p.numel() for p in g_params), sum(p.numel() for p in d_params)
print("parameters: generator %d, critic %d, total %d (d %d, T %d)" % (n_params[0], n_params[1], sum(n_params), d, T), flush=True)
g_opt = torch.optim.Adam(g_params, lr=LR, betas=(B1, B2), eps=EPS)
d_opt = torch.optim.Adam(d_params, lr=LR, betas=(B1, B2), eps=EPS)

B = args.batch
t_first = time.time()
real = torch.rand(B, 1, T) * 2 - 1
zs = [torch.randn(B, NOISE) for _ in range(8)]
counter = 0
last = None


def train_step(i):
    fake = G(zs[i % len(zs)])  # graph kept for the G update
    d_opt.zero_grad(set_to_none=True)
    fake_d = fake.detach()
    d_loss = D(fake_d).mean() - D(real).mean()
    e = torch.rand(B, 1, 1)
    x_hat = (e * real + (1 - e) * fake_d).requires_grad_(True)
    grad, = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    norms = (grad.pow(2).sum(dim=(1, 2)) + 1e-12).sqrt()
    d_loss = d_loss + GP_LAMBDA * (norms - 1).pow(2).mean()
    d_loss.backward()
    d_opt.step()
    g_loss = None
    if (i + 1) % N_CRITIC == 0:
        g_opt.zero_grad(set_to_none=True)
        g_loss = -D(fake).mean()
        g_loss.backward(inputs=g_params)
        g_opt.step()
    return d_loss, g_loss


def step_n(k):
    global counter, last
    for _ in range(k):
        dl, gl = train_step(counter)
        last = (dl, gl if gl is not None else (last[1] if last else dl))
        counter += 1


def sync():
    return float(last[0].detach()), float(last[1].detach())


flops = conv_flops_per_step(B)
print("flops_per_step %d (%.2f GFLOP at batch %d, estimate)" % (flops, flops / 1e9, B), flush=True)
step_n(N_CRITIC)
sync()
timer.mark("t_first_step_s", t_first)
timer.rec["t_startup_to_first_step_s"] = round(time.time() - common.T0, 4)
step_n(args.warmup)
sync()
rep_times, util, losses = common.run_reps(step_n, args, sync)
r = timer.finish(rep_times, losses, extra=dict(
    model="wavegan", model_size=d, length=T, n_critic=N_CRITIC, parameters=sum(n_params),
    cpu_util_cores=util, version="torch " + torch.__version__,
    torch_threads=torch.get_num_threads(),
    cpu_capability=torch.backends.cpu.get_cpu_capability()))
print("batch %4d  threads %d  %8.2f steps/s (min %.2f, max %.2f)  %9.0f samples/s" % (
    B, args.threads, r["steps_per_s_median"], r["steps_per_s_min"], r["steps_per_s_max"],
    r["steps_per_s_median"] * B), flush=True)
