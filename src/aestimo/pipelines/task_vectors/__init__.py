"""Task vectors tau[i, l] = theta_i[l] - theta_0[l], their norms and similarities."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
