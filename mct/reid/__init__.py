"""Re-identification: ResNet embedder, training, re-ID metrics."""
