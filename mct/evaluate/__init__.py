"""Evaluation: MTMC IDF1 as the AI City evaluation computes it, per-camera MOT metrics."""
