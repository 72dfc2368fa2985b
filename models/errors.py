"""Errors raised by the model layer. Each names what is at fault and how to fix it.

:class:`AssetLensError` is the one base of every AssetLens error (``assetlens.AssetLensError``).
It lives here because ``models`` is the leaf package that the others import.
"""


class AssetLensError(Exception):
    """Base class of every error AssetLens raises on purpose; the message says what to do."""


class SettingsError(AssetLensError):
    """An ``ASSETLENS_*`` setting out of range; one line per bad setting, naming the variable."""


class ModelError(AssetLensError):
    """Base class for model-layer errors."""


class UnknownModelError(ModelError):
    """A model name that the registry does not know."""


class WeightsMissingError(ModelError):
    """Pretrained weights are neither cached nor reachable."""


class CheckpointError(ModelError):
    """A local checkpoint file is missing, unreadable or does not fit the architecture."""


class PrecisionError(ModelError):
    """The requested precision is not supported on this device."""


class VocabularyError(ModelError):
    """A tag vocabulary file is malformed."""


class TranscriberError(ModelError):
    """A Whisper model that cannot be loaded (missing directory, unreachable hub name, bad files)."""


class OcrError(ModelError):
    """The OCR engine is missing or cannot be loaded, a setting is invalid, or a picture failed."""
