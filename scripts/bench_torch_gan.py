#!/usr/bin/env python3
"""PyTorch CPU reference for one training step of Conjure's default `gan` preset
(GANConfig.ganPreset in Sources/ConjureModels/GAN.swift), in the style of
../../shared/bench/bench_torch.py, whose common.py it reuses (BENCH_DIR overrides
where common.py is looked for). Prints one `RESULT {json}` line with the same fields.

Model (float32, PyTorch default initialisation, torch.manual_seed(--seed)):
  G: Linear 100->128, LeakyReLU(0.2);
     Linear 128->256, BatchNorm1d, LeakyReLU(0.2);
     Linear 256->512, BatchNorm1d, LeakyReLU(0.2);
     Linear 512->1024, BatchNorm1d, LeakyReLU(0.2);
     Linear 1024->784, tanh.                (BatchNorm1d eps 1e-5, momentum 0.1)
  D: Linear 784->512, LeakyReLU(0.2), Linear 512->256, LeakyReLU(0.2), Linear 256->1 (logits);
     no dropout, no BatchNorm.
  loss: BCE with logits, real 1 / fake 0, non-saturating G loss.
  Adam lr 2e-4, betas (0.5, 0.999), eps 1e-8 (Conjure's; common.EPS is Keras' 1e-7), both nets.

One step (Conjure's `alternating` update):
  z ~ N(0, I) [B, 100]; fake = G(z) (G in train mode, graph kept);
  D update on the real batch and fake.detach();
  G loss through the *updated* D on the same fake (no second G forward),
  gradients for G's parameters only (backward(inputs=g_params)), G Adam step;
  then the EMA of G's parameters (not the BatchNorm running statistics):
  ema = d*ema + (1-d)*w with d = min(decay, (1+t)/(10+t)) at G step t (1-based; TensorFlow's
  warm-up rule, Conjure's EMA.decay(atStep:)), the averages starting at the initial weights.
  --ema 0 turns it off.

variants:
  eager    plain eager nn.Module + torch.optim.Adam (the headline figure)
  compile  G and D wrapped in torch.compile and the Adam steps compiled, as bench_torch.py;
           the EMA stays an eager torch._foreach_lerp_ (its weight changes every warm-up step).

    python scripts/bench_torch_gan.py --variant eager --batch 64 --threads 1
"""
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.environ.get("BENCH_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")))
import common  # noqa: E402  (sets nothing framework-side; must precede `import torch`)

NOISE = 100
DATA_DIM = 784
G_HIDDEN = [128, 256, 512, 1024]
G_BATCHNORM = [False, True, True, True]
D_HIDDEN = [512, 256]
SLOPE = 0.2
LR, B1, B2, EPS = 2e-4, 0.5, 0.999, 1e-8


def layer_sizes(widths):
    return list(zip(widths, widths[1:]))


G_SIZES = layer_sizes([NOISE] + G_HIDDEN + [DATA_DIM])
D_SIZES = layer_sizes([DATA_DIM] + D_HIDDEN + [1])


def gan_flops_per_step(batch):
    """Matmul FLOPs (2 per multiply-add) of one alternating step, counting only the products
    the step needs (the same count as Conjure's Benchmark.flopsPerStep):
      G: forward once (B), weight grads, input grads of every layer but the first (z needs none).
      D update: forward on real and fake (2B), weight grads (2B), input grads of every layer
                but the first (2B; neither input needs a gradient).
      G update: D forward on the fakes (B), D input grads of every layer down to the fakes,
                no D weight grads.
    Bias adds, BatchNorm, activations, losses, Adam and the EMA are not counted."""
    g_fwd = sum(i * o for i, o in G_SIZES)
    d_fwd = sum(i * o for i, o in D_SIZES)
    g_first = G_SIZES[0][0] * G_SIZES[0][1]
    d_first = D_SIZES[0][0] * D_SIZES[0][1]
    g_total = g_fwd + g_fwd + (g_fwd - g_first)
    d_step = 2 * d_fwd + 2 * d_fwd + 2 * (d_fwd - d_first)
    d_for_g = d_fwd + d_fwd
    return 2 * batch * (g_total + d_step + d_for_g)


def parse_extra(p):
    p.add_argument("--variant", default="eager", choices=["eager", "compile"])
    p.add_argument("--ema", type=float, default=0.999,
                   help="decay of the generator-weight EMA (with warm-up); 0 turns it off")


args = common.parse_args(parse_extra)
if not (0 <= args.ema < 1):
    sys.exit("--ema must be in [0, 1), got %r" % args.ema)
common.set_thread_env(args.threads)
# Timer.finish reports common.flops_per_step(batch), which counts the seed model: use ours.
common.flops_per_step = gan_flops_per_step
timer = common.Timer("torch", args.variant, args)
t_imp = time.time()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
timer.mark("t_import_s", t_imp)
torch.set_num_threads(args.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass
torch.manual_seed(args.seed)

t_data = time.time()
X = torch.from_numpy(common.load_mnist())
timer.mark("t_data_s", t_data)

t_first = time.time()
B = args.batch
NB = X.shape[0] // B

g_layers = []
for (i, o), bn in zip(G_SIZES, G_BATCHNORM + [None]):
    g_layers.append(nn.Linear(i, o))
    if bn is None:  # output layer
        g_layers.append(nn.Tanh())
    else:
        if bn:
            g_layers.append(nn.BatchNorm1d(o, eps=1e-5, momentum=0.1))
        g_layers.append(nn.LeakyReLU(SLOPE))
G = nn.Sequential(*g_layers)
d_layers = []
for k, (i, o) in enumerate(D_SIZES):
    d_layers.append(nn.Linear(i, o))
    if k < len(D_SIZES) - 1:
        d_layers.append(nn.LeakyReLU(SLOPE))
D = nn.Sequential(*d_layers)
G.train()
D.train()
g_params = list(G.parameters())
d_params = list(D.parameters())
g_opt = torch.optim.Adam(g_params, lr=LR, betas=(B1, B2), eps=EPS)
d_opt = torch.optim.Adam(d_params, lr=LR, betas=(B1, B2), eps=EPS)
ones = torch.ones(B, 1)
zeros = torch.zeros(B, 1)

# EMA of G's parameters (BatchNorm weight/bias included, running statistics not), starting
# at the initial weights as Conjure's EMA(parameters:decay:) does.
with torch.no_grad():
    ema = [p.detach().clone() for p in g_params] if args.ema > 0 else None
g_steps = 0

if args.variant == "compile":
    Gc = torch.compile(G)
    Dc = torch.compile(D)
    d_opt_step = torch.compile(d_opt.step)
    g_opt_step = torch.compile(g_opt.step)
else:
    Gc, Dc = G, D
    d_opt_step, g_opt_step = d_opt.step, g_opt.step

counter = 0
last = None


def ema_update():
    global g_steps
    g_steps += 1
    d = min(args.ema, (1 + g_steps) / (10 + g_steps))
    with torch.no_grad():
        # ema += (1 - d) * (w - ema)  ==  d * ema + (1 - d) * w
        torch._foreach_lerp_(ema, g_params, 1.0 - d)


def train_step(i):
    start = (i % NB) * B
    real = X[start:start + B]
    fake = Gc(torch.randn(B, NOISE))  # graph kept for the G update
    # D update on the real batch and the detached fakes
    d_opt.zero_grad(set_to_none=True)
    d_loss = (F.binary_cross_entropy_with_logits(Dc(real), ones) +
              F.binary_cross_entropy_with_logits(Dc(fake.detach()), zeros))
    d_loss.backward()
    d_opt_step()
    # G update through the updated D on the same fakes; grads for G's parameters only
    g_opt.zero_grad(set_to_none=True)
    g_loss = F.binary_cross_entropy_with_logits(Dc(fake), ones)
    g_loss.backward(inputs=g_params)
    g_opt_step()
    if ema is not None:
        ema_update()
    return d_loss, g_loss


def step_n(k):
    global counter, last
    for _ in range(k):
        last = train_step(counter)
        counter += 1


def sync():
    return float(last[0].detach()), float(last[1].detach())


flops = gan_flops_per_step(B)
print("flops_per_step %d (%.2f MFLOP at batch %d)" % (flops, flops / 1e6, B), flush=True)

step_n(1)
sync()
timer.mark("t_first_step_s", t_first)
timer.rec["t_startup_to_first_step_s"] = round(time.time() - common.T0, 4)
step_n(args.warmup)
sync()

rep_times, util, losses = common.run_reps(step_n, args, sync)
timer.finish(rep_times, losses, extra=dict(
    model="gan", ema_decay=args.ema, adam_eps=EPS,
    cpu_util_cores=util, version="torch " + torch.__version__,
    torch_threads=torch.get_num_threads(),
    cpu_capability=torch.backends.cpu.get_cpu_capability()))
