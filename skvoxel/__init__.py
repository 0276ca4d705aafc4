"""skvoxel: one linear model fitted to many voxels at once, scikit-learn style."""

from .linear_model import MassUnivariateOLS
from .masking import VoxelMasker
from .scoring import voxel_r2_score, voxel_r2_scorer
from .stats import ContrastResult, adjust_p_values

__version__ = "0.1.0.dev0"

__all__ = [
    "ContrastResult",
    "MassUnivariateOLS",
    "VoxelMasker",
    "__version__",
    "adjust_p_values",
    "voxel_r2_score",
    "voxel_r2_scorer",
]
