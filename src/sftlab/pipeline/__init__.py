"""``sftlab run``: curate → preview → train → evaluate → report, in one run folder, restartable."""

from sftlab.pipeline.run import STAGES, run_pipeline

__all__ = ["STAGES", "run_pipeline"]
