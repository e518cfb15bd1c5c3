"""The classical codecs `mmtok eval` sets beside the tokenizers, and their adapters to the suites (`baselines`)."""
