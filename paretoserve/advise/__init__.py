"""The advisor: B_opt under a latency SLO, KV memory and what it frees, Pareto frontiers, replica plan, commands.

Public entry point: `advise(sweep_dir, AdviseConfig(...)) -> Advice`; `Advice.model_dump()` is what
`paretoserve advise --json` prints. Bad input raises `AdviseError` with a one-line message.
"""

from paretoserve.advise.advice import Advice, AdviseConfig, advise, advise_table
from paretoserve.advise.table import AdviseError, SweepTable, load_table, sweep_table

__all__ = ["Advice", "AdviseConfig", "AdviseError", "SweepTable", "advise", "advise_table", "load_table", "sweep_table"]
