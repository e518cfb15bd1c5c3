"""Probes on frozen tokens: a small causal LM on the ids (`ar`), linear probes on EEG tokens (`eeg`)."""
