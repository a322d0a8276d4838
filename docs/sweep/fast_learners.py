#!/usr/bin/python3
"""Does a short run rank plans by where they end, or by how fast they start?

Reads a sweep's sweep-runs.csv (every plan in each BatchNorm mode at each learning rate, with its
validation accuracy after every epoch) and, per task and seed, compares ways of picking a plan
from its first epochs with the plan that is best after the whole run (10 epochs, the best epoch on
validation):

  raw@1      the validation accuracy after 1 epoch
  raw@2      ... after 2 epochs (raw@3: 3, the plan search's last round in a 10-epoch run;
             raw@5: 5, what a longer last round would see)
  mean@3-5   the mean over epochs 3 to 5: a longer last round that smooths its noise
  ranked@2   after 2 epochs, plus what the second epoch added, once more: a learning-curve
             extrapolation the plan search ranked by at first and dropped (sweep.md says why)

For each it prints how often it picks the plan that ends best, the test accuracy it gives up
against that plan (regret, points), and the rank correlation with the final order. Each plan is
taken at the learning rate its whole run chose. Last, per task, the mean test accuracy of the
plan that ends best: what a search that trained every plan to the end would give, so the most a
choice made on this validation split can reach.

Then a tie-break the plan search does not use, kept here as the evidence against it: the
one-standard-error rule (Breiman et al. 1984; Hastie et al., The Elements of Statistical Learning,
7.10), which takes, among the plans within one binomial standard error of the best on validation,
the one that trains the fewest parameters (counted on the demo model; the reference model is the
same design at twice the width, so the order is the same). Surgical fine-tuning's premise says the
smaller plan should generalise as well and forget less; the table says whether it tests better.

Usage: fast_learners.py SWEEP-RUNS.CSV ...
"""
import csv
import math
import os
import sys
from collections import defaultdict
from fractions import Fraction
from functools import reduce

# Trainable parameters per block of the demo model (build/demo/demo_untrained.pt, counted with
# torch when the build has it).
DEMO_MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "build", "demo", "demo_untrained.pt")
DEMO_BLOCKS = {"stem": 176, "layer1": 4672, "layer2": 14528, "layer3": 57728, "fc": 650}


def block_sizes():
    try:
        import torch
        model = torch.jit.load(DEMO_MODEL)
    except Exception:  # no torch or no build: the counts as written above
        return DEMO_BLOCKS
    sizes = defaultdict(int)
    for name, parameter in model.named_parameters():
        sizes[name.split(".")[0]] += parameter.numel()
    return dict(sizes)


def trained_parameters(plan, sizes):
    if plan.startswith("every "):  # every block; Auto-RGN trains every layer too
        return sum(sizes.values())
    return sum(sizes[block] for block in plan.split("+"))


def validation_items(rows):
    """How many validation images a task has: accuracies are multiples of 100 / that number."""
    steps = [Fraction(row["validation_accuracy"]) for row in rows]
    for row in rows:
        steps += [Fraction(x) for x in row["validation_by_epoch"].split()]
    step = reduce(lambda a, b: Fraction(math.gcd(a.numerator * b.denominator,
                                                 b.numerator * a.denominator),
                                        a.denominator * b.denominator), steps)
    return round(100 / step)


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    for position, i in enumerate(order):
        result[i] = position
    return result


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    mean = (n - 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    var = sum((x - mean) ** 2 for x in ra)
    return cov / var if var else 0.0


def main(paths):
    runs = []
    for path in paths:
        with open(path, newline="") as f:
            runs += [row for row in csv.DictReader(f) if row["validation_by_epoch"]]
    # (task, seed) -> (plan, mode) -> the run whose final validation is best over learning rates
    plans = defaultdict(dict)
    for row in runs:
        key = (row["task"], row["seed"])
        plan = (row["plan"], row["batch_norm"])
        if row["plan"].startswith("BatchNorm recalibration"):
            continue  # it does not train: nothing to rank by its start
        best = plans[key].get(plan)
        if best is None or float(row["validation_accuracy"]) > float(best["validation_accuracy"]):
            plans[key][plan] = row
    rules = {
        "raw@1": lambda v: v[0],
        "raw@2": lambda v: v[1],
        "raw@3": lambda v: v[2],
        "raw@5": lambda v: v[4],
        "mean@3-5": lambda v: sum(v[2:5]) / 3,
        "ranked@2": lambda v: v[1] + max(0.0, v[1] - v[0]),
    }
    totals = {rule: [0, 0.0, 0.0] for rule in rules}
    cases = 0
    ceiling = defaultdict(list)  # task -> the test accuracy of the plan that ends best, per seed
    for (task, seed), candidates in sorted(plans.items()):
        rows = list(candidates.values())
        epochs = [[float(x) for x in row["validation_by_epoch"].split()] for row in rows]
        if len(rows) < 3 or min(len(e) for e in epochs) < 3:
            continue
        final = [float(row["validation_accuracy"]) for row in rows]
        test = [float(row["test_accuracy"]) for row in rows]
        truth = max(range(len(rows)), key=lambda i: final[i])
        cases += 1
        ceiling[task].append(test[truth])
        line = f"{task} seed {seed}: ends best {rows[truth]['plan']} ({rows[truth]['batch_norm']})"
        for rule, score in rules.items():
            scores = [score(e) for e in epochs]
            pick = max(range(len(rows)), key=lambda i: scores[i])
            totals[rule][0] += pick == truth
            totals[rule][1] += test[truth] - test[pick]
            totals[rule][2] += spearman(scores, final)
            line += f"; {rule} picks {rows[pick]['plan']} ({rows[pick]['batch_norm']})"
        print(line)
    print(f"\n{cases} task × seed cases")
    print("rule       picks the final best   test regret (points)   rank correlation")
    for rule, (hits, regret, rho) in totals.items():
        print(f"{rule:10} {hits:>3}/{cases:<18} {regret / max(cases, 1):>8.2f}"
              f"               {rho / max(cases, 1):>6.2f}")
    print("\ntask                 test accuracy of the plan that ends best on validation (mean)")
    for task, accuracies in sorted(ceiling.items()):
        print(f"{task:20} {sum(accuracies) / len(accuracies):>6.2f}")
    one_standard_error(plans)


def one_standard_error(plans):
    """Mean test accuracy of the plan picked by validation alone and by the one-SE rule."""
    sizes = block_sizes()
    by_task = defaultdict(list)
    for (task, _), candidates in plans.items():
        by_task[task] += list(candidates.values())
    items = {task: validation_items(rows) for task, rows in by_task.items()}
    scores = {"after 3 epochs": lambda row: float(row["validation_by_epoch"].split()[2]),
              "after 10 epochs": lambda row: float(row["validation_accuracy"])}
    picks = defaultdict(list)  # (task, score, rule) -> test accuracy per seed
    for (task, _), candidates in sorted(plans.items()):
        rows = list(candidates.values())
        for name, score in scores.items():
            values = [score(row) for row in rows]
            best = max(range(len(rows)), key=lambda i: values[i])
            p = values[best] / 100
            error = 100 * math.sqrt(p * (1 - p) / items[task])
            close = [i for i in range(len(rows)) if values[i] >= values[best] - error]
            smallest = min(close, key=lambda i: (trained_parameters(rows[i]["plan"], sizes),
                                                 -values[i]))
            picks[task, name, "best"].append(float(rows[best]["test_accuracy"]))
            picks[task, name, "1-SE"].append(float(rows[smallest]["test_accuracy"]))
    print("\nthe one-standard-error rule: mean test accuracy of the pick, by validation alone / by the"
          " rule")
    print("task                 validation   after 3 epochs     after 10 epochs")
    for task in sorted(by_task):
        cells = []
        for name in scores:
            best, rule = (picks[task, name, r] for r in ("best", "1-SE"))
            cells.append(f"{sum(best) / len(best):6.2f} / {sum(rule) / len(rule):6.2f}")
        print(f"{task:20} {items[task]:>10}   {cells[0]}    {cells[1]}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/sweep/sweep-runs.csv"])
