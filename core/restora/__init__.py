"""Restora: blind all-in-one image restoration, quality assessment and degradation segmentation."""
__version__ = "0.1.0"
