"""The catalog: DAM metadata (meta fields, their schema, bulk import), export (CSV, JSON Lines, XMP)."""
