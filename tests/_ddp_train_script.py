"""Run by tests/test_train.py under ``accelerate launch`` with 2 CPU processes: a few RRTF steps, then report.

Each process writes ``world_<rank>.json`` with the world size it saw, so the test can check that two
processes really trained together (``accelerate launch --cpu`` silently starts one).
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from rrtf_lite.config import load_config
from rrtf_lite.train import train


def main(run_dir: Path, finetune: str) -> None:
    config = load_config("tiny", overrides={"train.finetune": finetune, "train.max_steps": 2, "train.save_steps": 100})
    summary = train(config, run_dir, force=True)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    (run_dir / f"world_{rank}.json").write_text(json.dumps({"rank": rank, "world_size": world, "summary": summary}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "qlora")
