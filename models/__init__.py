"""Model layer: CLIP and Whisper wrappers, the model registry, tag vocabularies.

A leaf package: it imports nothing else of AssetLens.
"""
