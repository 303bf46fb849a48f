"""zsl-scale."""
