"""Detection: Mask R-CNN with Soft-NMS, or precomputed detections read from files."""
