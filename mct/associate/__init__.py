"""Cross-camera association: FAISS kNN candidates, space-time constraints, clustering."""
