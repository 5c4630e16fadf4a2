"""Child process for the SIGKILL test: runs the sample stage on the tiny profile, slowed down so the parent
can kill it part-way. Usage: python tests/_sampling_child.py RUN_DIR DELAY_SECONDS"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rrtf_lite import backends
from rrtf_lite.config import load_config
from rrtf_lite.sampling import sample

run_dir, delay = Path(sys.argv[1]), float(sys.argv[2])
original = backends.HFGenerator.generate


def slow_generate(self, *args, **kwargs):
    time.sleep(delay)  # only the pace changes; the stage's own code path is untouched
    return original(self, *args, **kwargs)


backends.HFGenerator.generate = slow_generate
config = load_config(
    "tiny", overrides={"run_dir": str(run_dir), "sampling.batch_size": 2, "sampling.max_new_tokens": 16}
)
print(sample(config, run_dir), flush=True)
