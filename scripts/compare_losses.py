# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Compare training losses over several seeds: train every (arm, seed), evaluate each, test the differences.

The study folder gets results.json, results.md (mean ± std per arm, per-seed values, paired tests and a
paired bootstrap interval against the baseline arm) and curves.png. Killed, the same command continues where it
stopped; a finished run is never redone. Examples and the study folder: docs/loss_study.md, docs/training.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from lavt_hf.cli import ArgumentParser, positive_int
from lavt_hf.training import compare

EPILOG = f"""\
default arms (--arm NAME picks some of them; the first arm is the baseline unless --baseline):
{chr(10).join(f"  {name:<25} {override}" for name, override in compare.DEFAULT_ARMS.items())}

Arms with a perceptual term get --perceptual-network and --perceptual-weights where they leave them unset: by
default ImageNet EfficientNet-Lite0 with no network; the paper-like VGG16 (from the Hugging Face Hub) is
--perceptual-network vgg16 --perceptual-weights timm. Without --launcher each run trains in this process.

example: lavt-compare --config my.yaml --arm ce --arm 'ce_dice_half={{loss: {{dice_weight: 0.5}}}}' --dry-run
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lavt-compare", description=__doc__, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="base training recipe (YAML, as for lavt-train) every arm starts from")
    parser.add_argument("--set", dest="assignments", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="training option for every arm, VALUE as YAML (e.g. 'loss={ce_weight: 1.0}')")
    parser.add_argument("--study-dir", type=Path, default=Path("outputs/loss_study"),
                        help="folder of the study's runs and results (default: %(default)s)")
    parser.add_argument("--arm", dest="arm_specs", action="append", default=[], metavar="NAME[=MAPPING]",
                        help="a default arm's name, or NAME=MAPPING of training options (YAML/JSON); repeatable")
    parser.add_argument("--arms", type=Path, metavar="FILE",
                        help="YAML file mapping arm name -> override mapping (before any --arm)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm, 0..N-1 (>= 2; default: %(default)s)")
    parser.add_argument("--baseline", help="arm every other arm is compared with (default: the first arm)")
    parser.add_argument("--perceptual-network", default=compare.OFFLINE_NETWORK,
                        help="timm CNN of the perceptual loss where an arm leaves it unset (default: %(default)s)")
    parser.add_argument("--perceptual-weights", default="offline",
                        help="its weights: offline (default), timm (Hub download), random, or a weights file")
    parser.add_argument("--protocol", choices=("model_input", "original"), default="model_input",
                        help="evaluation protocol of lavt-evaluate (default: %(default)s, the original's)")
    parser.add_argument("--bootstrap-resamples", type=positive_int, default=10_000,
                        help="paired bootstrap resamples (default: %(default)s)")
    parser.add_argument("--launcher", type=shlex.split, metavar="COMMAND",
                        help="run each run's training and evaluation as `COMMAND -m ...`, e.g. 'accelerate launch'")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything and list the runs with their state; train nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        arms = compare.load_arms_file(args.arms) if args.arms else []
        arms += [compare.parse_arm(spec) for spec in args.arm_specs]
        settings = compare.StudySettings(
            study_dir=args.study_dir, base_recipe=compare.build_base_recipe(args.config, args.assignments),
            arms=arms or [compare.Arm(name, override) for name, override in compare.DEFAULT_ARMS.items()],
            seeds=list(range(args.seeds)), baseline=args.baseline, perceptual_network=args.perceptual_network,
            perceptual_weights=args.perceptual_weights, protocol=args.protocol, launcher=args.launcher,
            bootstrap_resamples=args.bootstrap_resamples)
        runs = compare.plan_study(settings)
    except (ValueError, FileNotFoundError) as error:  # bad input: a message, not a traceback
        parser.error(str(error))
    if args.dry_run:
        for run in runs:
            print(f"{run.arm:<28} seed {run.seed:<4} {compare.run_status(run):<9} {run.directory}")
    else:
        compare.execute_study(settings, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
