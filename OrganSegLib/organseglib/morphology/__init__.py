"""Exact, fast 3D binary morphology by a ball in mm (paper III-A) and component helpers.

>>> import numpy as np
>>> from organseglib.morphology import closing
>>> bar = np.zeros((9, 9, 9), bool); bar[2:7, 2:7, :] = True; bar[:, :, 4] = False  # a cut bar
>>> bool(closing(bar, 2.0, (1.0, 1.0, 1.0))[4, 4, 4])  # the 1-voxel cut is closed
True
"""

from .ball import Ball, make_ball
from .components import (count_values, fill_holes, fill_holes_per_slice, fill_small_holes_per_slice, label,
                         largest_components, reconstruct, remove_border_connected_per_slice,
                         remove_border_gas_per_slice)
from .coarse import block_factors, closing_on_grid, dilation_on_grid, erosion_on_grid, repeat_blocks
from .enclosure import enclosed_axes, enclosure_bits
from .operations import METHODS, choose_method, closing, dilation, erosion, opening

__all__ = [
    "Ball", "METHODS", "block_factors", "choose_method", "closing", "closing_on_grid", "count_values", "dilation",
    "dilation_on_grid", "enclosed_axes", "enclosure_bits", "erosion", "erosion_on_grid", "fill_holes",
    "fill_holes_per_slice", "fill_small_holes_per_slice", "label", "largest_components", "make_ball",
    "opening", "reconstruct", "remove_border_connected_per_slice", "remove_border_gas_per_slice", "repeat_blocks",
]
