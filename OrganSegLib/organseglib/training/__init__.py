"""Training the segmentation network: datasets at 3 mm, batches with staged augmentation,
checkpoints with exact resume, torchrun/DDP, and the training loop (see ``trainer.train``)."""

from .dataset import CaseFiles, TrainingCase, find_cases, load_dataset, phantom_cases
from .trainer import TrainConfig, TrainResult, split_cases, train

__all__ = ["CaseFiles", "TrainingCase", "TrainConfig", "TrainResult", "find_cases", "load_dataset",
           "phantom_cases", "split_cases", "train"]
