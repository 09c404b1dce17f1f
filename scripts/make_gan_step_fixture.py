#!/usr/bin/env python3
"""Writes a GAN-step golden folder of the layout of ../shared/fixtures/gan_step and gan_step_bn
(same file names, README wording and losses.json), computed in float64 with PyTorch, for other
seeds, batch sizes and step counts. The fixture tests read any folder of that layout, so a folder
written here checks that they pass on data they were not written against:

    PY=/path/to/venv-with-torch/bin/python
    $PY scripts/make_gan_step_fixture.py --kind bn --seed 1 --batch 20 --steps 4 --out /tmp/sh/fixtures/gan_step_bn
    CONJURE_SHARED=/tmp/sh swift test -c release --filter GANFixtureTests

--kind seed: the `seed` MLP GAN, simultaneous update. --kind bn: the default `gan` MLP GAN with
BatchNorm1d, alternating update. Real rows are MNIST pixels x/127.5-1 from --mnist (a CSV, gzip
or not, label first), or uniform noise in [-1, 1] when it is not given.
"""
import argparse, gzip, json, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--kind", choices=["seed", "bn"], required=True)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--mnist", default=None)
p.add_argument("--out", required=True)
a = p.parse_args()
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)
torch.set_default_dtype(torch.float64)

if a.kind == "seed":
    G = nn.Sequential(nn.Linear(100, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
else:
    G = nn.Sequential(nn.Linear(100, 128), nn.LeakyReLU(0.2), nn.Linear(128, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2),
                      nn.Linear(256, 512), nn.BatchNorm1d(512), nn.LeakyReLU(0.2), nn.Linear(512, 1024),
                      nn.BatchNorm1d(1024), nn.LeakyReLU(0.2), nn.Linear(1024, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
G.train(); D.train()

os.makedirs(a.out, exist_ok=True)
def save(name, t):
    np.save(os.path.join(a.out, name + ".npy"), np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32)))

def dump(prefix):
    for mod, net in (("generator", G), ("discriminator", D)):
        for k, v in net.state_dict().items():
            save(f"{prefix}.{mod}.{k}", v.to(torch.float64))

if a.mnist:
    opener = gzip.open if a.mnist.endswith(".gz") else open
    with opener(a.mnist, "rt") as f:
        rows = [l for l in f.read().splitlines() if l and l[0].isdigit()]
    pick = rng.choice(len(rows), size=a.batch * a.steps, replace=False)
    pixels = np.array([[float(x) for x in rows[i].split(",")[1:]] for i in pick])
    reals = torch.tensor(pixels / 127.5 - 1).reshape(a.steps, a.batch, 784)
else:
    reals = torch.tensor(rng.uniform(-1, 1, size=(a.steps, a.batch, 784)))
zs = torch.tensor(rng.standard_normal((a.steps, a.batch, 100)))

dump("init")
optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
ones = torch.ones(a.batch, 1); zeros = torch.zeros(a.batch, 1)
losses = []
for s in range(a.steps):
    real, z = reals[s], zs[s]
    save(f"step{s}.real", real); save(f"step{s}.z", z)
    fake = G(z)
    real_logits = D(real); fake_logits = D(fake.detach())
    d_loss = F.binary_cross_entropy_with_logits(real_logits, ones) + F.binary_cross_entropy_with_logits(fake_logits, zeros)
    optD.zero_grad(); optG.zero_grad()
    d_loss.backward()
    for q in D.parameters(): q.grad_saved = q.grad.clone()
    if a.kind == "seed":  # simultaneous: both gradients before either update
        g_loss = F.binary_cross_entropy_with_logits(D(fake), ones)
        g_loss.backward()
        for q in D.parameters(): q.grad = q.grad_saved
        optD.step(); optG.step()
    else:  # alternating: D's update, then G's loss through the updated D on the same fake batch
        optD.step()
        g_loss = F.binary_cross_entropy_with_logits(D(fake), ones)
        g_loss.backward(); optG.step()
    if s == 0:
        save("step0.fake", fake); save("step0.real_logits", real_logits); save("step0.fake_logits", fake_logits)
        for mod, net in (("generator", G), ("discriminator", D)):
            for k, q in net.named_parameters():
                save(f"step0.grad.{mod}.{k}", q.grad if mod == "generator" else q.grad_saved)
    losses.append({"step": s, "d_loss": d_loss.item(), "g_loss": g_loss.item()})
dump("final")
with open(os.path.join(a.out, "losses.json"), "w") as f:
    json.dump({"steps": a.steps, "batch": a.batch, "noise_dim": 100, "losses": losses}, f, indent=1)

if a.kind == "seed":
    model = """- generator: 0 Linear(100,128), 1 ReLU, 2 Linear(128,256), 3 ReLU, 4 Linear(256,784), 5 Tanh
- discriminator: 0 Linear(784,128), 1 LeakyReLU(0.2), 2 Linear(128,1) -> logits"""
    update = """  gradients: d_loss w.r.t. D's parameters, g_loss w.r.t. G's parameters, both computed
  before either update (simultaneous update, as in the classic TensorFlow GAN step);
  then Adam(lr=2e-4, betas=(0.5, 0.999), eps=1e-8, bias-corrected, as in PyTorch) on both."""
else:
    model = """- generator: 0 Linear(100,128), 1 LeakyReLU(0.2), 2 Linear(128,256), 3 BatchNorm1d(256), 4 LeakyReLU(0.2),
  5 Linear(256,512), 6 BatchNorm1d(512), 7 LeakyReLU(0.2), 8 Linear(512,1024), 9 BatchNorm1d(1024),
  10 LeakyReLU(0.2), 11 Linear(1024,784), 12 Tanh. BatchNorm: eps 1e-5, momentum 0.1, training mode.
- discriminator: 0 Linear(784,512), 1 LeakyReLU(0.2), 2 Linear(512,256), 3 LeakyReLU(0.2), 4 Linear(256,1) -> logits"""
    update = """  alternating update: the gradient of d_loss w.r.t. D's parameters, an Adam step on D; then
  g_loss is computed through the UPDATED discriminator on the same fake batch (no second
  generator forward), its gradient w.r.t. G's parameters, an Adam step on G.
  Adam(lr=2e-4, betas=(0.5, 0.999), eps=1e-8, bias-corrected, as in PyTorch) on both."""
with open(os.path.join(a.out, "README.md"), "w") as f:
    f.write(f"""# {os.path.basename(a.out.rstrip('/'))}: golden values written by scripts/make_gan_step_fixture.py

Computed in float64 with PyTorch {torch.__version__} (seed {a.seed}) and stored as float32 .npy files.

Model (PyTorch state_dict names, Linear weights are [out, in]):
{model}

Each step s (s = 0..{a.steps - 1}) uses `step<s>.real.npy` [{a.batch},784] and `step<s>.z.npy` [{a.batch},100]:
  fake = G(z)
  d_loss = mean BCEwithLogits(D(real), 1) + mean BCEwithLogits(D(fake), 0)   (fake detached)
  g_loss = mean BCEwithLogits(D(fake), 1)                                    (non-saturating)
{update}
""")
print("wrote", a.out)
