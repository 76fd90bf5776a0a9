"""Prune while distilling inside your own Hugging Face ``Trainer``, on your own CSV/JSON files.

The student starts as a copy of a dense model fine-tuned on the same files (the teacher, e.g. a
``bertprune finetune --task text_classification`` run) and is pruned to the recipe's sparsity while it
learns the teacher's logits: bertprune's high-sparsity recipe (``--recipe sparse-kd``: Fisher
criterion, global scope, cubic schedule with a one-shot jump, learning rate rewound at each pruning
step) run by a ``Trainer`` instead of bertprune's loop. Every value comes from the recipe; ``--set
key=value`` overrides it as on bertprune's command line. Works offline on local files::

    python examples/own_trainer.py --teacher runs/own-sst2 --train-file runs/sst2-train.csv \\
        --validation-file runs/sst2-dev.csv --text-columns sentence --label-column label -o runs/own-sst2-trainer-90

What is yours to change is the Trainer part: its arguments, callbacks, logging, data collator.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from datasets import load_dataset
from transformers import AutoTokenizer, DataCollatorWithPadding, TrainingArguments

from bertprune.config import DistillRunConfig, load_config
from bertprune.data.files import _key as label_key  # the label → key rule bertprune's own-data task uses
from bertprune.hf_trainer import PruningTrainer, load_teacher, method_from_config
from bertprune.metrics import own_data_metrics
from bertprune.recipes import recipe_file
from bertprune.masks import MASK_FILE
from bertprune.report import sparsity_report


def read(path: str):
    kind = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}[Path(path).suffix]
    extra = {"delimiter": "\t"} if path.endswith(".tsv") else {}
    return load_dataset(kind, data_files=path, split="train", **extra)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", required=True, help="dense model fine-tuned on these files (run folder or HF folder)")
    p.add_argument("--train-file", required=True)
    p.add_argument("--validation-file", required=True)
    p.add_argument("--text-columns", nargs="+", required=True, help="one column, or two for sentence pairs")
    p.add_argument("--label-column", required=True)
    p.add_argument("-o", "--output-dir", required=True)
    p.add_argument("--recipe", default="sparse-kd")
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="recipe overrides (prune.sparsity=0.8 ...)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: the recipe's epochs)")
    p.add_argument("--train-examples", type=int, help="a seeded subsample of the training file (default: all of it)")
    args = p.parse_args(argv)

    cfg = load_config(recipe_file(args.recipe), [f"distill.teacher={args.teacher}", *args.set], schema=DistillRunConfig)
    teacher = load_teacher(args.teacher)  # checks the folder; the student starts as a copy of it
    student = load_teacher(args.teacher)
    tok = AutoTokenizer.from_pretrained(student.name_or_path)
    label2id = {str(k): v for k, v in student.config.label2id.items()}

    def encode(batch):
        texts = [batch[c] for c in args.text_columns]
        out = tok(*texts, truncation=True, max_length=cfg.data.max_length or 128)
        out["labels"] = [label2id[label_key(v)] for v in batch[args.label_column]]
        return out

    train, dev = (read(f) for f in (args.train_file, args.validation_file))
    if args.train_examples and args.train_examples < len(train):
        train = train.shuffle(seed=cfg.train.seed).select(range(args.train_examples))
    train = train.map(encode, batched=True, remove_columns=train.column_names)
    dev = dev.map(encode, batched=True, remove_columns=dev.column_names)

    method = method_from_config(cfg.prune, cfg.targets, distill=cfg.distill, teacher=teacher)
    t = cfg.train
    training_args = TrainingArguments(
        output_dir=args.output_dir, num_train_epochs=t.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.eval_batch_size,
        learning_rate=t.lr, weight_decay=t.weight_decay, warmup_steps=t.warmup_ratio, max_grad_norm=t.max_grad_norm,
        seed=t.seed, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=2, logging_steps=t.log_every, report_to=[], use_cpu=True,
        bf16=t.mixed_precision == "bf16")  # CPU autocast, as the recipe says

    def metrics(pred):
        return own_data_metrics(False, np.argmax(pred.predictions, axis=-1), pred.label_ids, student.config.num_labels)

    trainer = PruningTrainer(model=student, args=training_args, train_dataset=train, eval_dataset=dev,
                             data_collator=DataCollatorWithPadding(tok), compute_metrics=metrics, method=method,
                             lr_schedule=t.lr_schedule, lr_min_ratio=t.lr_min_ratio)
    trainer.train()
    final = Path(args.output_dir) / "final"
    trainer.save_model(str(final))  # zeros baked in: a plain Hugging Face checkpoint
    tok.save_pretrained(str(final))
    shutil.copy(Path(args.output_dir) / MASK_FILE, final / MASK_FILE)  # the callback wrote it at train end
    counted = sparsity_report(final)  # zeros counted in the saved weights
    result = {"dev": trainer.evaluate(), "sparsity": counted["sparsity"], "params": counted["params"]}
    (Path(args.output_dir) / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
