"""Learning to rank over hybrid candidates: features, LambdaRank, calibration, abstention."""

from .abstention import change_abstention_goal
from .calibration import PlattCalibrator, choose_threshold
from .features import FEATURE_NAMES, FeatureExtractor
from .priors import WorkflowPriors
from .reranker import LambdaRankReranker

__all__ = [
    "FEATURE_NAMES",
    "FeatureExtractor",
    "LambdaRankReranker",
    "PlattCalibrator",
    "WorkflowPriors",
    "change_abstention_goal",
    "choose_threshold",
]
