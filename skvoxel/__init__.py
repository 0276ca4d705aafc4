"""skvoxel: one linear model fitted to many voxels at once, scikit-learn style."""

from .linear_model import MassUnivariateOLS
from .masking import VoxelMasker

__version__ = "0.1.0.dev0"

__all__ = [
    "MassUnivariateOLS",
    "VoxelMasker",
    "__version__",
]
