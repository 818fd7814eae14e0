"""Image-quality metrics for single-image GANs (REFERENCE §5).

- :func:`sifid`, :func:`sifid_report`, :func:`sifid_folders`: Single-Image FID on Inception-v3
  spatial features (:class:`InceptionFeatures`; needs a local weights file, see
  :func:`resolve_inception_weights`); SIFID = mean of per-image minima, mSIFID = pooled mean.
- :func:`swd`: weight-free multi-scale sliced Wasserstein distance (ProGAN), works offline; by
  default over every 7×7 patch (an identical copy scores exactly 0).
- :func:`swd_per_sample`: the table protocol, SWD of each sample against the real image and the
  mean over samples (the mSIFID analog); ``mil_core.calibration`` gives its reference points.
- :func:`layout_distance`, :func:`layout_per_sample`: how far a sample's coarse arrangement
  (6×8 average-pooled thumbnail) is from its image's — what patch statistics cannot see.
- :func:`diversity`: SinGAN's pixel-std diversity.
- :func:`patch_nn_distance`, :func:`nearest_reference`: patch nearest neighbours (memorisation,
  leakage between images).
- :func:`leakage`, :func:`leakage_floor`, :func:`patch_owners`: which image's patches the samples
  of each image are made of (MIL Prop. 2), with chance, floor and bootstrap intervals.
- :func:`image_metrics`: one table row per image (SWD, diversity, SIFID/mSIFID when possible);
  :func:`sample_table`: those rows for a set of single-image models.
- :func:`frechet_distance`, :func:`feature_stats`: the Fréchet distance used by SIFID.
- :func:`ekld`, :class:`EKLDResult`, :func:`bootstrap_ci`: GIT's per-class eKLD invariance (§6).
- :func:`fidelity`: how far a MUNIT's style swaps are from GIT's true ROT / BG / DIL transform
  (1-D Wasserstein-1 of :func:`estimated_rotation`, :func:`background_levels`,
  :func:`stroke_stats`); :func:`linear_readout`, :func:`class_readout`: what a style code holds.
"""
from .frechet import feature_stats, frechet_distance
from .inception import (INCEPTION_WEIGHTS_ENV, INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL,
                        InceptionFeatures, InceptionWeightsMissing, download_inception_weights,
                        inception_feature_size, load_inception_state_dict,
                        resolve_inception_weights)
from .sifid import (sifid, sifid_folders, sifid_many, sifid_report, spatial_features,
                    summarize_sifid)
from .swd import MAX_ALL_PATCHES, laplacian_pyramid, sliced_wasserstein, swd, swd_per_sample
from .diversity import diversity
from .layout import LAYOUT_GRID, layout_distance, layout_per_sample
from .patches import extract_patches, nearest_reference, patch_nn_distance
from .leakage import Leakage, leakage, leakage_floor, patch_owners
from .report import image_metrics, sample_table
from .ekld import (CONFIDENCE_COLUMNS, INPUT_KINDS, EKLDResult, bootstrap_ci, ekld,
                   kl_from_logits, predictive_entropy)
from .fidelity import (FIDELITY_TRANSFORMS, STROKE_STATS, ClassReadout, LevelHistogram,
                       angle_targets, background_histogram, background_levels, background_mask,
                       circular_wasserstein_1d, class_readout, estimated_rotation, fidelity,
                       linear_readout, rotation_grid, stroke_stats, wasserstein_1d,
                       wasserstein_to_uniform_levels)

__all__ = [
    "feature_stats", "frechet_distance",
    "INCEPTION_WEIGHTS_ENV", "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL",
    "InceptionFeatures", "InceptionWeightsMissing", "download_inception_weights",
    "inception_feature_size", "load_inception_state_dict", "resolve_inception_weights",
    "Leakage", "leakage", "leakage_floor", "patch_owners",
    "sifid", "sifid_folders", "sifid_many", "sifid_report", "spatial_features", "summarize_sifid",
    "MAX_ALL_PATCHES", "laplacian_pyramid", "sliced_wasserstein", "swd", "swd_per_sample",
    "diversity", "LAYOUT_GRID", "layout_distance", "layout_per_sample",
    "extract_patches", "nearest_reference", "patch_nn_distance",
    "image_metrics", "sample_table",
    "CONFIDENCE_COLUMNS", "INPUT_KINDS", "EKLDResult", "bootstrap_ci", "ekld", "kl_from_logits",
    "predictive_entropy",
    "FIDELITY_TRANSFORMS", "STROKE_STATS", "ClassReadout", "LevelHistogram", "angle_targets",
    "background_histogram", "background_levels", "background_mask", "circular_wasserstein_1d",
    "class_readout", "estimated_rotation", "fidelity", "linear_readout", "rotation_grid",
    "stroke_stats", "wasserstein_1d", "wasserstein_to_uniform_levels",
]
