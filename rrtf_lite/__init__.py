"""rrtf-lite: RRTF (PanGu-Coder2, arXiv 2307.14936) at tutorial size, runnable end to end.

Heavy libraries (torch, transformers) are imported inside the functions that need them, so importing the
package, the CLI's ``--help`` and the sandbox stay fast.
"""

__version__ = "0.1.0"
