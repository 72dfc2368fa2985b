"""Search side: the SQLite store, the FAISS index, queries, and their commands."""
