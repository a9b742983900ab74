"""Classification and metric losses for re-id training, and the criterion combining them."""

from pipeline.losses.center import CenterLoss
from pipeline.losses.centroid_triplet import CentroidTripletLoss
from pipeline.losses.criterion import LossConfig, ReIDCriterion
from pipeline.losses.triplet import BatchHardTripletLoss
from pipeline.losses.xbm import XBMLoss

__all__ = [
    "BatchHardTripletLoss",
    "CenterLoss",
    "CentroidTripletLoss",
    "LossConfig",
    "ReIDCriterion",
    "XBMLoss",
]
