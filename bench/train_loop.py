"""The Python PyTorch baseline for bench_train: the same TorchScript model, batch, optimiser and
threads, in the plain training loop of the PyTorch examples. Prints one JSON line.

    train_loop.py MODEL --size C,H,W --batch B --steps N --trainable PREFIX|all --threads T
                  [--device cpu|cuda] [--precision fp32|bf16] [--channels-last]
                  [--make-resnet50 OUT]
    train_loop.py MODEL --size C,H,W --batch B --items N --epochs E --trainable PREFIX[,PREFIX]
                  (a whole run: E epochs over N items and a validation batch after each, as the
                  paper's code trains: the frozen part computed every step; prints run_s)
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--size", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--items", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--trainable", default="all")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--make-resnet50", action="store_true",
                        help="script torchvision's resnet50 (10 classes) to MODEL and exit")
    args = parser.parse_args()
    if args.make_resnet50:
        import torchvision
        torch.manual_seed(0)
        torch.jit.script(torchvision.models.resnet50(num_classes=10)).save(args.model)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = torch.jit.load(args.model, map_location=device)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.channels_last:
        model.to(memory_format=layout)
    prefixes = args.trainable.split(",")
    trains = lambda name: args.trainable == "all" or any(name == p or name.startswith(p + ".") for p in prefixes)
    frozen_norms = []
    for name, p in model.named_parameters():
        p.requires_grad_(trains(name))
    for name, m in model.named_modules():
        if hasattr(m, "running_mean") and not trains(name):
            frozen_norms.append(m)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-4)
    shape = [args.batch] + [int(s) for s in args.size.split(",")]
    torch.manual_seed(0)
    x = torch.rand(shape, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (args.batch,), device=device)
    model.train()
    for m in frozen_norms:
        m.train(False)
    if args.items:
        return whole_run(args, model, optimiser, frozen_norms, shape[1:], device)
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimiser.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            outputs = model(x)
        loss = F.cross_entropy(outputs.float(), y)
        loss.backward()
        optimiser.step()
        loss.item()  # waits for the device, like Scalpel's step (it reads the loss every step)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    print(json.dumps({"step_ms": 1000 * statistics.median(times), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "trainable": len(params)}))


def whole_run(args, model, optimiser, frozen_norms, item_shape, device):
    torch.manual_seed(0)
    images = torch.rand([args.items] + item_shape, device=device)
    labels = torch.randint(0, 10, (args.items,), device=device)
    validation = torch.rand([args.batch] + item_shape, device=device)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(args.items, device=device)
        model.train()
        for m in frozen_norms:
            m.train(False)
        for first in range(0, args.items, args.batch):
            batch = order[first:first + args.batch]
            optimiser.zero_grad()
            loss = F.cross_entropy(model(images[batch]).float(), labels[batch])
            loss.backward()
            optimiser.step()
            loss.item()
        model.eval()
        with torch.no_grad():
            model(validation).sum().item()
    print(json.dumps({"run_s": time.perf_counter() - start, "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
