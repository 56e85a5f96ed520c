"""Single-camera tracking: Deep SORT and tracklets."""
