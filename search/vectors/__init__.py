"""Vectors: the FAISS index derived from the store, its ANN parameters, and the filtered-search planner."""
