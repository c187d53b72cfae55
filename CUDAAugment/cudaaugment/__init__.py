"""cudaaugment: 3D data augmentation (affine warp, occlusion, noise, window/level) for CT volumes
and their label maps, with a SciPy reference backend, a torch backend and a CUDA kernel."""

__version__ = "0.1.0"
