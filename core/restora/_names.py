"""Names shared by every layer: the degradations Restora knows and the segmentation classes."""

DEGRADATIONS: tuple[str, ...] = ("noise", "blur", "rain", "haze", "low_light", "jpeg")
"""Degradations, in the order of the model's degradation outputs."""

SEGMENT_CLASSES: tuple[str, ...] = ("clean",) + DEGRADATIONS
"""Per-pixel classes of the segmentation map; label ``i`` is ``SEGMENT_CLASSES[i]``."""
