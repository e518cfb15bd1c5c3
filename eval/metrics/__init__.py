"""Reconstruction metrics, one module per modality (and the perceptual and speech-quality models)."""
