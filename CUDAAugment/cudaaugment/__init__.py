"""cudaaugment: 3D data augmentation (affine warp, occlusion, noise, window/level) for CT volumes
and their label maps, with a SciPy reference backend, a torch backend and a CUDA kernel
(Rister et al., "CT organ segmentation using GPU data augmentation...", section IV).

Usage::

    rng = np.random.default_rng(0)
    config = AugmentConfig(noise_sigma=(0, 30), image_fill=-1000)
    params = [sample_params(rng, config, img.shape, (160, 120, 120)) for img in images]
    out, lab = augment_batch(images, labels, params, backend="torch")

The coordinate convention is documented once, in ``cudaaugment.params``. CuPy is imported only
when the "cupy" backend or ``Pipeline`` is used.
"""

from .api import BACKENDS, apply, augment_batch
from .config import AugmentConfig
from .errors import AugmentError, BackendUnavailableError
from .params import AugmentParams, sample_params

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("Pipeline", "as_torch"):  # lazy: the pipeline module needs CuPy at use time only
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'cudaaugment' has no attribute {name!r}")


__all__ = ["AugmentConfig", "AugmentParams", "AugmentError", "BackendUnavailableError",
           "BACKENDS", "Pipeline", "apply", "as_torch", "augment_batch", "sample_params"]
