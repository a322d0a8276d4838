#!/usr/bin/python3
"""The sweep's protocol in plain Python PyTorch, to cross-check Scalpel's trainer on chosen
(task, plan) cells: Adam (coupled weight decay 1e-4), batch 64, BatchNorm in eval mode, 10 epochs,
the best epoch (0 = unmodified) and learning rate by validation accuracy, per-class split
100/50/rest. Run with Debian's PyTorch:

    /usr/bin/python3 docs/sweep/python_check.py build/demo/demo_model.pt label-permutation all,fc 3

TASK: label-permutation (Scalpel's derangement for seed 0) or label-shift3 (y -> (y + 3) mod 10,
the reference's); PLAN: all, or a top-level module (fc, layer3, ...)."""
import gzip, json, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
model_path, task, plans = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
seeds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
folder = "/usr/share/datasets/fashion-mnist"
with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
with gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz")) as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
if task == "label-permutation":  # Scalpel's derangement for seed 0 (docs/sweep/sweep.md)
    mapping = {0: 7, 1: 4, 2: 9, 3: 5, 4: 2, 5: 1, 6: 0, 7: 8, 8: 3, 9: 6}
    y = np.array([mapping[int(v)] for v in y])
elif task == "label-shift3":  # the reference's mapping
    y = (y + 3) % 10
extra = {"scalpel/model.json": ""}
torch.jit.load(model_path, _extra_files=extra)
meta = json.loads(extra["scalpel/model.json"])
x = (x - meta["mean"][0]) / meta["std"][0]
X, Y = torch.tensor(x), torch.tensor(y)


def split(seed):
    rng = np.random.RandomState(seed)
    tr, va, te = [], [], []
    for c in range(10):
        idx = rng.permutation(np.where(y == c)[0])
        tr += list(idx[:100]); va += list(idx[100:150]); te += list(idx[150:])
    return [torch.tensor(sorted(p)) for p in (tr, va, te)]


def accuracy(model, idx):
    with torch.no_grad():
        return sum((model(X[idx[i:i + 1000]]).argmax(1) == Y[idx[i:i + 1000]]).sum().item()
                   for i in range(0, len(idx), 1000)) / len(idx)


def run(plan, lr, seed):
    torch.manual_seed(seed)
    model = torch.jit.load(model_path)
    model.eval()  # BatchNorm in eval mode throughout (no dropout in this model)
    params = [p for n, p in model.named_parameters() if plan == "all" or n.split(".")[0] == plan]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=1e-4)
    tr, va, te = split(seed)
    best, state = accuracy(model, va), {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    for epoch in range(10):
        order = tr[torch.randperm(len(tr), generator=g)]
        for i in range(0, len(order), 64):
            b = order[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(X[b]), Y[b]).backward()
            opt.step()
        v = accuracy(model, va)
        if v > best:
            best, state = v, {k: t.clone() for k, t in model.state_dict().items()}
    model.load_state_dict(state)
    return best, accuracy(model, te)


for plan in plans:
    tests = []
    for seed in range(seeds):
        start = time.time()
        runs = [(run(plan, lr, seed), lr) for lr in (1e-2, 1e-3, 1e-4)]
        (val, test), lr = max(runs, key=lambda r: r[0][0])
        tests.append(test)
        print(f"{task} {plan} seed {seed}: lr {lr} val {100*val:.1f} test {100*test:.1f} "
              f"({time.time()-start:.0f} s)", flush=True)
    print(f"{task} {plan}: {100*np.mean(tests):.1f} +- {100*np.std(tests, ddof=1) if seeds > 1 else 0:.1f}")
