#!/usr/bin/env python3
"""PyTorch eager (CPU) timing of exactly Conjure's `char-transformer` and `char-gru` training
steps, the yardstick of `conjure bench --model char-transformer|char-gru` (which times the same
step on a 65-character vocabulary in stream mode, rows of context + 1 tokens).

    PY=/path/to/venv-with-torch/bin/python
    $PY scripts/bench_torch_text.py --model char-transformer --batch 32 --threads 1

The step: embedding -> network -> logits over the vocabulary at every position -> mean token
cross-entropy -> backward -> total-norm clipping to 1 -> AdamW(lr 1e-3, betas (0.9, 0.99),
weight decay 0.01). char-transformer: nanoGPT's GPT shape (token and learned position embeddings,
4 pre-LayerNorm blocks of causal nn.MultiheadAttention (4 heads, width 64) and a GELU MLP of
width 256, final LayerNorm, head tied to the token embedding, no dropout). char-gru: embedding 64,
nn.GRU(64, 256), linear head. Prints `RESULT {json}` with the median steps/s over the repeats.
"""
import argparse, json, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["char-transformer", "char-gru"], default="char-transformer")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--context", type=int, default=64)
p.add_argument("--vocab", type=int, default=65)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--warmup", type=int, default=10)
p.add_argument("--steps", type=int, default=50)
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)
        self.register_buffer("mask", torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1))

    def forward(self, x):
        h = self.ln_1(x)
        t = x.shape[1]
        x = x + self.attn(h, h, h, attn_mask=self.mask[:t, :t], need_weights=False)[0]
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class CharTransformer(nn.Module):
    def __init__(self, vocab, context, width=64, layers=4, heads=4):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList([Block(width, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied head


class CharGRU(nn.Module):
    def __init__(self, vocab, embed=64, hidden=256):
        super().__init__()
        self.wte = nn.Embedding(vocab, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.lm_head = nn.Linear(hidden, vocab)

    def forward(self, idx):
        return self.lm_head(self.rnn(self.wte(idx))[0])


model = CharTransformer(a.vocab, a.context) if a.model == "char-transformer" else CharGRU(a.vocab)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)
rows = torch.randint(0, a.vocab, (a.batch, a.context + 1))
x, y = rows[:, :-1], rows[:, 1:]


def step():
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, a.vocab), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


for _ in range(a.warmup):
    step()
rates = []
for _ in range(a.repeats):
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    rates.append(a.steps / (time.perf_counter() - t0))
med = statistics.median(rates)
print("RESULT " + json.dumps({"model": a.model, "batch": a.batch, "threads": a.threads, "steps_per_s_median": med,
                               "tokens_per_s": med * a.batch * a.context, "torch": torch.__version__}))
