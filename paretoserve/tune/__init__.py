"""`paretoserve tune`: search sweep -> advise -> verify the replica plan -> report."""

from paretoserve.tune.config import TuneConfig, TuneError
from paretoserve.tune.pipeline import TuneResult, run_tune

__all__ = ["TuneConfig", "TuneError", "TuneResult", "run_tune"]
