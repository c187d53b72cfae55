"""A seeded synthetic CT phantom with exact five-organ truth: the built-in default input, the test
workhorse and the training data of the demo model.

>>> from organseglib.phantom import make_phantom
>>> p = make_phantom(seed=0, region="abdomen", size="tiny")
>>> p.ct.array.dtype, p.labels.array.dtype
(dtype('float32'), dtype('uint8'))
"""

from .render import RENDER_VERSION, SIZES, Phantom, make_phantom, phantom_grid

__all__ = ["Phantom", "RENDER_VERSION", "SIZES", "make_phantom", "phantom_grid"]
