"""Enrichment pipelines: scan -> decode -> embed/tag -> write; the CLI root."""
