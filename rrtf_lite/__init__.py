"""rrtf-lite: RRTF (PanGu-Coder2, arXiv 2307.14936) at tutorial size, runnable end to end.

Heavy libraries (torch, transformers) are imported inside the functions that need them, so importing the
package, the CLI's ``--help`` and the sandbox stay fast.
"""

import logging as _logging

__version__ = "0.1.0"


def _drop_bitsandbytes_cpu_kernel_notice(record: _logging.LogRecord) -> bool:
    """bitsandbytes (0.50) logs "Failed to load CPU gemm_4bit_forward from kernels-community" whenever it is
    imported on a CPU with AVX512-BF16 (``transformers.Trainer`` and ``peft`` import it). It then uses its own CPU
    kernel, as we want: the optional ``kernels`` package would fetch code from the Hub. Only this message is
    dropped; the logger exists before bitsandbytes is imported, so the filter is in place wherever it is."""
    return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward")


_logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_drop_bitsandbytes_cpu_kernel_notice)
