"""Data for both halves of the project.

MIL side: robust image loading (``images``), the offline ``bundled`` photo collection, Places-50 /
LSUN-50 helpers and the multi-scale image pyramid (``pyramid``) used by SinGAN, ConSinGAN and MIL.
GIT side: the long-tailed grayscale digit/character data sets and their nuisance transforms,
and CIFAR-10/100 (colour) from their published python-version files.
Every loader raises :class:`mil_core.errors.DataError` with a clear message for unusable data, and
nothing downloads unless a user calls a ``download_*`` function.
"""

# --- MIL side: images ---
from .images import (IMAGE_EXTENSIONS, MAX_PIXELS, download_lsun50, download_places50,
                     list_images, load_folder, load_image, load_image_uint8, places50_dir)
from .bundled import (BUNDLED, bundled_info, bundled_names, load_bundled,
                      load_bundled_collection, load_collection)
from .pyramid import (PyramidConfig, PyramidPlan, build_pyramid, check_min_size,
                      effective_scale_factor, plan_pyramid, pyramid_shapes, resize_to)
# --- end MIL side: images ---

# --- GIT side ---
from .mnist_like import (ANIMAL_CLASSES, FILE_DATASETS, GIT_DATASETS, ImageSet,
                         download_mnist_like, load_animal_silhouettes, load_digits,
                         load_git_dataset, load_mnist_like)
from .cifar import CIFAR_NAMES, download_cifar, load_cifar
from .longtail import (LONGTAIL_PRESETS, LongTailSpec, class_balanced_sampler,
                       class_balanced_weights, class_rank_permutation, exponential_sizes,
                       get_longtail_spec, make_long_tailed, zipf_sizes)
from .nuisance import (TRANSFORMS, NuisanceTransform, get_transform,
                       make_transformed_test_split, to_float, to_uint8, transform_dataset)
# --- end GIT side ---
