"""Pack what a benchmark needs onto a lent GPU machine, which reaches nothing outside itself and takes
at most 64 MiB with the working tree (see /work/.library/device/README.md).

all-MiniLM-L6-v2's fp32 weights are 91 MB (82 MB compressed), over that limit, so they travel rounded
to fp16 (45 MB) and ``unpack`` turns them back into an fp32 checkpoint named ``all-MiniLM-L6-v2-fp16``.
The rounding (measured: relative error <= 2^-11, except for the 0.1% of weights under fp16's normal range,
6.1e-5, whose absolute error is <= 3e-8; nothing overflows) is finer than the bf16 autocast every recipe
trains in (2^-8), but it is another starting point, so records made from it carry that model name and are compared only
with dense rows of the same model. The GLUE tasks travel as an xz tar (train and dev files only), and
with ``--squad-dir`` SQuAD's two files as another (1.5 MB).

    python scripts/device_pack.py pack --glue-dir ../shared/data/glue --squad-dir ../shared/data/squad --out .dev  # here
    python scripts/device_pack.py unpack --pack .dev --out /tmp/dev                 # there
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
from pathlib import Path

TASK_FOLDERS = ["MRPC", "STS-B", "RTE", "CoLA", "SST-2"]
SQUAD_FILES = ["train-v1.1-first44.json", "dev-v1.1.json"]
MODEL_NAME = "all-MiniLM-L6-v2-fp16"
WEIGHTS = "model.safetensors"


def pack(glue_dir: Path, out: Path, model: str, squad_dir: Path | None = None) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from bertprune.models import resolve_model_path

    src = Path(resolve_model_path(model))
    dst = out / "model16"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():  # tokenizer and config files as they are
        if f.is_file() and f.name != WEIGHTS:
            shutil.copy2(f, dst / f.name)
    weights = load_file(src / WEIGHTS)
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()}, dst / WEIGHTS)
    with tarfile.open(out / "glue.tar.xz", "w:xz") as tar:
        for task in TASK_FOLDERS:
            for split in ("train.tsv", "dev.tsv"):
                tar.add(glue_dir / task / split, arcname=f"glue/{task}/{split}")
    if squad_dir:
        with tarfile.open(out / "squad.tar.xz", "w:xz") as tar:
            for name in SQUAD_FILES:
                tar.add(squad_dir / name, arcname=f"squad/{name}")


def unpack(pack_dir: Path, out: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    model = out / MODEL_NAME
    model.mkdir(parents=True, exist_ok=True)
    for f in (pack_dir / "model16").iterdir():
        if f.name != WEIGHTS:
            shutil.copy2(f, model / f.name)
    weights = load_file(pack_dir / "model16" / WEIGHTS)
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()}, model / WEIGHTS)
    for name in ("glue.tar.xz", "squad.tar.xz"):
        if (pack_dir / name).is_file():
            with tarfile.open(pack_dir / name) as tar:
                tar.extractall(out, filter="data")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["pack", "unpack"])
    p.add_argument("--glue-dir", type=Path, help="pack: GLUE folder in the official layout")
    p.add_argument("--squad-dir", type=Path, help="pack: SQuAD folder holding " + " and ".join(SQUAD_FILES))
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="pack: the model to round")
    p.add_argument("--pack", type=Path, help="unpack: the folder pack wrote")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.action == "pack":
        if not args.glue_dir:
            p.error("pack needs --glue-dir")
        pack(args.glue_dir, args.out, args.model, args.squad_dir)
    else:
        if not args.pack:
            p.error("unpack needs --pack")
        unpack(args.pack, args.out)


if __name__ == "__main__":
    main()
