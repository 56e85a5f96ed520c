"""Cross-camera association configuration (owned by ``mct.associate``)."""

from __future__ import annotations

from pydantic import Field

from mct.schema import StrictModel


class AssociationConfig(StrictModel):
    """FAISS kNN candidates + space-time constraints + clustering."""

    k: int = Field(default=10, gt=0)
    #: cosine-similarity threshold for merging two tracklets into one global id.
    min_similarity: float = Field(default=0.5, ge=-1.0, le=1.0)
