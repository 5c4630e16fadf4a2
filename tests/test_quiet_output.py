"""Known library noise is silenced at its source, one message at a time, and nothing else is."""

from __future__ import annotations

import logging
import warnings

import rrtf_lite  # noqa: F401 (installs the bitsandbytes log filter)
from rrtf_lite.models import quiet_model_libraries


def test_bitsandbytes_cpu_kernel_notice_is_dropped_other_messages_pass(caplog):
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")  # the logger bitsandbytes logs it on
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please ...", "no kernels")
        logger.warning("some other bitsandbytes problem")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes problem"]


def test_only_the_is_gradient_checkpointing_warning_is_ignored():
    peft_reads = "`is_gradient_checkpointing` is deprecated and will be removed in v6."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_model_libraries():
            warnings.warn(peft_reads, FutureWarning, stacklevel=1)
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
        warnings.warn(peft_reads, FutureWarning, stacklevel=1)
    assert [str(w.message)[:30] for w in caught] == [
        "something else is deprecated",
        "`is_gradient_checkpointing` is",  # outside the block it is shown again
    ]
