#!/usr/bin/python3
"""Writes Scalpel's architecture library: torchvision's classification models as TorchScript.

Run with /usr/bin/python3 (Debian's python3-torch and python3-torchvision); nothing is
downloaded. Each architecture is scripted with torch.jit.script and saved WITHOUT meaningful
weights: every parameter and persistent buffer is a zero-stride view of one shared zero per
dtype, so a file holds the architecture's code and a few bytes of data. The app opens a user's
bare state-dict checkpoint by finding the library entry whose state-dict keys and shapes match
(DIR/index.json lists them), loading that file and putting the checkpoint's tensors in place.

Because the placeholder tensors overlap in memory, whoever fills them must replace them (C++:
`tensor.set_data(value)`, Python: `t.data = value`) rather than copy into them: `copy_` into a
zero-stride tensor raises "more than one element of the written-to tensor refers to a single
memory location".

    make_architectures.py --out DIR               every architecture, then DIR/index.json
    make_architectures.py --out DIR --only resnet18 vit_b_16_384
                                                  only those entries (index.json lists them)
    make_architectures.py --out DIR --check       also loads a few written files back, fills
                                                  them from an eager model's state dict and
                                                  compares their forward with the eager one
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time
import warnings
import zipfile
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torchvision
import torchvision.models as tvm
from torchvision.models import _api as tv_api
from torchvision.models.googlenet import GoogLeNet
from torchvision.models.inception import Inception3

INDEX_FORMAT = 1
INDEX_CLASSES = 1000
# A second build with this many classes shows which state-dict keys form the head.
PROBE_CLASSES = 7

# Sub-packages of torchvision.models whose builders are not image classifiers.
NON_CLASSIFICATION_PACKAGES = ("detection", "segmentation", "video", "quantization",
                               "optical_flow")

# Builder arguments beyond torchvision's defaults. GoogLeNet and Inception v3 cannot script
# with their auxiliary classifiers, and init_weights=False silences their init warning (weights
# are placeholders anyway); transform_input=True is what torchvision's pretrained builders set
# for both, so a checkpoint fine-tuned from the pretrained model computes the same here.
EXTRA_BUILDER_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False, "transform_input": True},
    "inception_v3": {"aux_logits": False, "init_weights": False, "transform_input": True},
}

# Families whose state-dict shapes depend on the input size (ViT's positional embedding): these
# get one entry per distinct image size among their weights.
IMAGE_SIZE_FAMILIES = ("vision_transformer",)

# Models --check loads back and runs: small ones covering the odd cases (Conv2d head, ViT,
# Inception's 299 input and transform_input, Swin's index buffers). Not vit_b_16_384: with
# Debian's reference BLAS one forward of it takes 40 s.
CHECK_MODELS = ("resnet18", "squeezenet1_1", "mobilenet_v3_small", "googlenet",
                "inception_v3", "vit_b_32", "swin_t", "efficientnet_b0")

# Short dtype names as in safetensors headers; float32 is the default and is left out.
DTYPE_NAMES = {
    torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


class GoogLeNetLogits(GoogLeNet):
    """GoogLeNet whose scripted forward returns the logits tensor.

    torchvision's scripted GoogLeNet always returns GoogLeNetOutputs(logits, None, None), where
    every other classifier returns a tensor; the eager model in eval mode returns the logits,
    and so does this. Same modules, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        x, _, _ = self._forward(x)
        return x


class Inception3Logits(Inception3):
    """Inception v3 whose scripted forward returns the logits tensor, not InceptionOutputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        x, _ = self._forward(x)
        return x


# The scripted type names say where the models come from, however this script is started:
# __torch__.torchvision.models.googlenet.GoogLeNetLogits.
GoogLeNetLogits.__module__ = GoogLeNet.__module__
Inception3Logits.__module__ = Inception3.__module__
LOGITS_CLASSES = {"googlenet": GoogLeNetLogits, "inception_v3": Inception3Logits}


class Entry(NamedTuple):
    """One architecture of the library: a builder and what to pass it."""
    name: str         # the entry's name and file stem (e.g. vit_b_16_384)
    builder: str      # torchvision builder name (e.g. vit_b_16)
    family: str       # torchvision module the builder lives in (e.g. resnet)
    kwargs: Dict      # extra builder keyword arguments
    weights: object   # the torchvision weights whose transforms the entry records


def classification_builders() -> List[str]:
    """Names of torchvision's image-classification builders, sorted.

    torchvision 0.14 registers every builder; the classification ones are those whose module
    is torchvision.models.<name> itself, not one of its task sub-packages. Where the registry
    is missing, falls back to public functions of torchvision.models that take `weights`."""
    if hasattr(tv_api, "list_models"):
        return tv_api.list_models(module=tvm)
    import inspect
    names = []
    for name, fn in vars(tvm).items():
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        if "weights" not in inspect.signature(fn).parameters:
            continue
        sub = fn.__module__.split(".")
        if len(sub) != 3 or sub[2] in NON_CLASSIFICATION_PACKAGES:
            continue
        names.append(name)
    return sorted(names)


def builder_family(builder: str) -> str:
    """The torchvision module a builder is defined in: resnet, vision_transformer, ..."""
    return tv_api.get_model_builder(builder).__module__.rsplit(".", 1)[-1]


def library_entries() -> List[Entry]:
    """Every entry of the library, in builder order.

    One per builder, recording the DEFAULT weights' preprocessing, except for families whose
    shapes depend on the image size (ViT): one per distinct image size among the builder's
    weights, the default size keeping the plain name and the others getting `_SIZE`."""
    entries = []
    for builder in classification_builders():
        family = builder_family(builder)
        weights_enum = tv_api.get_model_weights(builder)
        default = weights_enum.DEFAULT
        kwargs = dict(EXTRA_BUILDER_KWARGS.get(builder, {}))
        if family not in IMAGE_SIZE_FAMILIES:
            entries.append(Entry(builder, builder, family, kwargs, default))
            continue
        default_size = default.meta["min_size"][0]
        by_size = {default_size: default}
        for w in weights_enum:
            by_size.setdefault(w.meta["min_size"][0], w)
        for size, w in by_size.items():
            name = builder if size == default_size else f"{builder}_{size}"
            entries.append(Entry(name, builder, family, dict(kwargs, image_size=size), w))
    return entries


def preprocessing(weights) -> Dict:
    """resize, crop, mean, std and interpolation of the weights' evaluation transforms.

    In 0.14 `weights.transforms` is a partial of ImageClassification; building it is cheap and
    its attributes are the resolved values (defaults included)."""
    t = weights.transforms()
    return {"resize": int(t.resize_size[0]), "crop": int(t.crop_size[0]),
            "mean": [float(v) for v in t.mean], "std": [float(v) for v in t.std],
            "interpolation": t.interpolation.value}


@contextlib.contextmanager
def skipped_init() -> Iterator[None]:
    """Makes torch.nn.init's in-place initialisers no-ops while building.

    The weights are thrown away, and filling hundreds of millions of parameters (regnet_y_128gf,
    vit_h_14) would take longer than scripting everything; torch.empty leaves them unset. Modules
    that imported an initialiser by name (nn.MultiheadAttention's xavier_uniform_) get the no-op
    too."""
    originals = {name: fn for name, fn in vars(nn.init).items()
                 if name.endswith("_") and not name.startswith("_") and callable(fn)}
    by_id = {id(fn): name for name, fn in originals.items()}
    patched = []  # (module, attribute, original)
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not mod_name.startswith(("torch.nn", "torchvision")):
            continue
        for attr, value in list(vars(mod).items()):
            if id(value) in by_id and value is originals[by_id[id(value)]]:
                patched.append((mod, attr, value))
                setattr(mod, attr, _no_init)
    try:
        yield
    finally:
        for mod, attr, value in patched:
            setattr(mod, attr, value)


def _no_init(tensor, *args, **kwargs):
    """Stands in for an nn.init initialiser: leaves the tensor as it is."""
    return tensor


@contextlib.contextmanager
def cached_source_lookup() -> Iterator[None]:
    """Caches TorchScript's source lookups by function while scripting.

    torch.jit.script reads and tokenises a method's source file again for every module instance
    (densenet201 has 400 of them), a quarter of the build time; the source does not change
    while we run. torch 1.13's private helper is patched in the modules that imported it; where
    it is missing nothing changes but the speed."""
    import torch._jit_internal
    import torch._sources
    import torch.jit.annotations
    import torch.jit.frontend
    original = getattr(torch._sources, "get_source_lines_and_file", None)
    if original is None:
        yield
        return
    cache = {}

    def lookup(obj, error_msg=None):
        key = getattr(obj, "__func__", obj)  # a bound method's function
        if key not in cache:
            cache[key] = original(obj, error_msg)
        return cache[key]

    modules = [m for m in (torch._sources, torch._jit_internal, torch.jit.annotations,
                           torch.jit.frontend)
               if getattr(m, "get_source_lines_and_file", None) is original]
    for m in modules:
        m.get_source_lines_and_file = lookup
    try:
        yield
    finally:
        for m in modules:
            m.get_source_lines_and_file = original


def build(entry: Entry, num_classes: int = INDEX_CLASSES) -> nn.Module:
    """The entry's eager model in eval mode, with `num_classes` outputs."""
    builder = tv_api.get_model_builder(entry.builder)
    model = builder(weights=None, num_classes=num_classes, **entry.kwargs).eval()
    if entry.builder in LOGITS_CLASSES:
        model.__class__ = LOGITS_CLASSES[entry.builder]
    return model


def dtype_name(dtype: torch.dtype) -> Optional[str]:
    """safetensors-style name of a dtype, None for float32."""
    if dtype == torch.float32:
        return None
    return DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def state_keys(model: nn.Module) -> List[list]:
    """[key, shape(, dtype)] for every state-dict entry, in state-dict order."""
    keys = []
    for key, t in model.state_dict().items():
        item = [key, list(t.shape)]
        name = dtype_name(t.dtype)
        if name:
            item.append(name)
        keys.append(item)
    return keys


def head_keys(full: nn.Module, probe: nn.Module) -> List[str]:
    """State-dict keys whose shape changes with the number of classes (first dim = classes).

    `probe` is the same architecture built with PROBE_CLASSES outputs; the C++ side reads a
    checkpoint's number of classes from these keys."""
    probe_sd = probe.state_dict()
    head = []
    for key, t in full.state_dict().items():
        p = probe_sd[key]
        if p.shape != t.shape:
            if p.shape[0] != PROBE_CLASSES or t.shape[0] != INDEX_CLASSES:
                raise RuntimeError(f"{key}: {list(t.shape)} vs {list(p.shape)} with "
                                   f"{PROBE_CLASSES} classes is not a class dimension")
            head.append(key)
    if not head:
        raise RuntimeError("no state-dict key depends on num_classes")
    return head


def module_at(root, path: List[str]):
    """The submodule of `root` at a dotted path split into parts."""
    for part in path:
        root = getattr(root, part)
    return root


def replace_with_placeholders(scripted: torch.jit.ScriptModule, eager: nn.Module) -> None:
    """Replaces every parameter and persistent buffer of `scripted` by a zero-stride view.

    All tensors of one dtype view the same single zero, so torch.jit.save writes one storage of
    a few bytes per dtype. Persistent buffers are those in the eager state dict; buffers that
    are not (none in torchvision 0.14's classifiers) keep their real values, as a checkpoint
    would not restore them."""
    shared: Dict[torch.dtype, torch.Tensor] = {}
    param_names = {name for name, _ in eager.named_parameters()}
    for key, t in eager.state_dict().items():
        if t.dtype not in shared:
            shared[t.dtype] = torch.zeros(1, dtype=t.dtype)
        placeholder = shared[t.dtype].expand(t.shape) if t.dim() else shared[t.dtype][0]
        *path, leaf = key.split(".")
        owner = module_at(scripted, path)
        if key in param_names:
            setattr(owner, leaf, nn.Parameter(placeholder, requires_grad=t.requires_grad))
        else:
            setattr(owner, leaf, placeholder)


def save_compact(scripted: torch.jit.ScriptModule, path: str) -> None:
    """torch.jit.save, then rewrites the zip without debug info and with deflate.

    The *.debug_pkl records (source ranges for error messages) are most of a scripted model's
    size; torch.jit.load works without them. TorchScript stores records uncompressed; libtorch's
    reader (miniz) inflates deflated records too."""
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    tmp = path + ".tmp"
    with zipfile.ZipFile(buf) as src, \
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            if info.filename.endswith(".debug_pkl"):
                continue
            dst.writestr(info.filename, src.read(info.filename))
    os.replace(tmp, path)


def index_record(entry: Entry, eager: nn.Module, probe: nn.Module) -> Dict:
    """The entry's object in index.json."""
    pre = preprocessing(entry.weights)
    record = {"name": entry.name, "family": entry.family, "file": entry.name + ".pt",
              "input_shape": [1, 3, pre["crop"], pre["crop"]]}
    record.update(pre)
    record["classes"] = INDEX_CLASSES
    record["head"] = head_keys(eager, probe)
    record["keys"] = state_keys(eager)
    return record


def make_entry(entry: Entry, out: str) -> Dict:
    """Builds, scripts and saves one entry; returns its index record."""
    with skipped_init():
        eager = build(entry)
        probe = build(entry, PROBE_CLASSES)
    record = index_record(entry, eager, probe)
    del probe
    with cached_source_lookup():
        scripted = torch.jit.script(eager)
    replace_with_placeholders(scripted, eager)
    save_compact(scripted, os.path.join(out, record["file"]))
    return record


def duplicate_signatures(records: List[Dict]) -> List[Tuple[str, str]]:
    """Pairs of entries whose (key, shape, dtype) lists are identical.

    The app tells architectures apart by their state-dict signature, so two identical ones
    would make a checkpoint ambiguous."""
    seen: Dict[tuple, str] = {}
    dups = []
    for r in records:
        sig = tuple((k[0], tuple(k[1]), k[2] if len(k) > 2 else "F32") for k in r["keys"])
        if sig in seen:
            dups.append((seen[sig], r["name"]))
        else:
            seen[sig] = r["name"]
    return dups


def random_state(model: nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """A state dict of `model`'s shapes with non-trivial random values (BN variances > 0)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, t in model.state_dict().items():
        if not t.is_floating_point():
            sd[key] = t.clone()
        elif key.endswith("running_var"):
            sd[key] = torch.rand(t.shape, generator=g) + 0.5
        else:
            fan_in = max(1, t[0].numel()) if t.dim() > 1 else 16
            sd[key] = torch.randn(t.shape, generator=g) / fan_in ** 0.5
    return sd


def check_entry(record: Dict, entry: Entry, out: str) -> float:
    """Loads a written file, fills it from an eager state dict and compares forwards.

    Returns the largest absolute difference of the logits relative to the largest logit. The placeholders are replaced
    through `.data` first (copy_ into them is refused, see the module docstring); then a strict
    load_state_dict puts the eager model's values in."""
    with skipped_init():
        eager = build(entry)
    eager.load_state_dict(random_state(eager, seed=0))
    loaded = torch.jit.load(os.path.join(out, record["file"]))
    for _, t in list(loaded.named_parameters()) + list(loaded.named_buffers()):
        t.data = torch.empty(t.shape, dtype=t.dtype)
    loaded.load_state_dict(eager.state_dict(), strict=True)
    loaded.eval()
    x = torch.randn(record["input_shape"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = eager(x)
        got = loaded(x)
    if got.shape != want.shape:
        raise RuntimeError(f"output shape {list(got.shape)} != {list(want.shape)}")
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for the .pt files and index.json")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these entries")
    parser.add_argument("--check", action="store_true",
                        help=f"load back and run {', '.join(CHECK_MODELS)} (those written)")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    entries = library_entries()
    if args.only:
        unknown = sorted(set(args.only) - {e.name for e in entries})
        if unknown:
            parser.error(f"unknown entries: {', '.join(unknown)}")
        entries = [e for e in entries if e.name in args.only]

    start, start_cpu = time.perf_counter(), time.process_time()
    records, failed = [], []
    for i, entry in enumerate(entries, 1):
        t0 = time.perf_counter()
        try:
            record = make_entry(entry, args.out)
        except Exception as e:  # a builder that does not script is left out, with its reason
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            failed.append((entry.name, reason))
            print(f"[{i:2d}/{len(entries)}] {entry.name:20s} FAILED: {reason}", flush=True)
            continue
        records.append(record)
        size = os.path.getsize(os.path.join(args.out, record["file"]))
        print(f"[{i:2d}/{len(entries)}] {entry.name:20s} {time.perf_counter() - t0:5.2f} s "
              f"{size / 1024:6.0f} KiB  {len(record['keys']):4d} keys  "
              f"{record['crop']}px  head {record['head']}", flush=True)

    index = {"format": INDEX_FORMAT, "torchvision": torchvision.__version__,
             "architectures": records}
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu

    dups = duplicate_signatures(records)
    total = sum(os.path.getsize(os.path.join(args.out, r["file"])) for r in records)
    total += os.path.getsize(os.path.join(args.out, "index.json"))
    print(f"{len(records)} architectures in {elapsed:.1f} s ({cpu:.1f} s CPU), "
          f"{total / 2**20:.2f} MiB "
          f"(index.json {os.path.getsize(os.path.join(args.out, 'index.json')) / 2**20:.2f} MiB)")
    if failed:
        print(f"left out {len(failed)}: " + "; ".join(f"{n}: {r}" for n, r in failed))
    if dups:
        print("signature check FAILED, identical (key, shape) lists: "
              + ", ".join(f"{a} = {b}" for a, b in dups))
    else:
        print(f"signature check: all {len(records)} (key, shape) signatures are distinct")

    check_failed = False
    if args.check:
        by_name = {e.name: e for e in entries}
        for record in records:
            if record["name"] not in CHECK_MODELS:
                continue
            t0 = time.perf_counter()
            try:
                diff = check_entry(record, by_name[record["name"]], args.out)
                ok = diff < 1e-4
                print(f"check {record['name']:20s} max |loaded - eager| / max |eager| = {diff:.2e} "
                      f"{'ok' if ok else 'MISMATCH'} ({time.perf_counter() - t0:.1f} s)",
                      flush=True)
            except Exception as e:
                ok = False
                print(f"check {record['name']:20s} FAILED: {e}")
            check_failed |= not ok
    # A builder that does not script is left out (printed above) without failing the build;
    # ambiguous signatures or a file that computes differently do fail it.
    return 1 if dups or check_failed else 0


if __name__ == "__main__":
    sys.exit(main())
