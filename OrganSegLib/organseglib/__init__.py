"""organseglib: CT organ segmentation after Rister et al. (no Qt, no Slicer)."""

__version__ = "0.1.0"
