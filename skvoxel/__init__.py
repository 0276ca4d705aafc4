"""skvoxel: one linear model fitted to many voxels at once, scikit-learn style."""

from .linear_model import MassUnivariateOLS
from .masking import VoxelMasker
from .scoring import voxel_r2_score, voxel_r2_scorer

__version__ = "0.1.0.dev0"

__all__ = [
    "MassUnivariateOLS",
    "VoxelMasker",
    "__version__",
    "voxel_r2_score",
    "voxel_r2_scorer",
]
