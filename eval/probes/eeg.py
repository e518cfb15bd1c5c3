"""Linear probes on frozen EEG tokens: does what a clinician's classifier needs survive
tokenisation? Features per trial: the bag of its tokens' embeddings (the quantizer's code vectors,
averaged over patches, per channel) against a raw-feature baseline (log band powers per channel);
each feeds the same scikit-learn logistic regression (standardised, C chosen by 5-fold
cross-validation on the training trials), scored by balanced accuracy, Cohen's kappa and
weighted F1 on the test trials.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmtok.data.eeg_montage import unpack_eeg
from mmtok.eval.metrics.eeg import band_powers


@torch.no_grad()
def token_features(tokenizer, x: torch.Tensor, *, num_codebooks: int | None = None, batch_size: int = 64) -> np.ndarray:
    """Prepared trials (B, C, 3 + T) -> (B, C * latent_dim): per channel, the mean over patches of
    the decoded code vectors of its ids (a frozen tokenizer's ids are all the probe sees)."""
    model = getattr(tokenizer, "model", tokenizer)  # a FrozenTokenizer or a Tokenizer
    device = next(model.parameters()).device
    features = []
    for start in range(0, x.shape[0], batch_size):
        ids = model.encode(x[start : start + batch_size].to(device), num_codebooks=num_codebooks)
        embeddings = model.quantizer.decode_ids(ids)  # (b, C, N, latent_dim)
        features.append(embeddings.mean(dim=2).flatten(1).float().cpu())
    return torch.cat(features).numpy()


def band_power_features(x: torch.Tensor, sample_rate: float) -> np.ndarray:
    """Prepared trials (B, C, 3 + T) -> (B, C * 5): log band power of each channel."""
    signal = unpack_eeg(x)[1]
    return np.log(band_powers(signal, sample_rate) + 1e-6).reshape(signal.shape[0], -1)


def linear_probe(train_x: np.ndarray, train_y, test_x: np.ndarray, test_y, seed: int = 0) -> dict[str, float]:
    """Fits on (train_x, train_y) and scores on the test trials."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    probe = GridSearchCV(pipeline, {"logisticregression__C": np.logspace(-3, 3, 13)}, cv=5, scoring="balanced_accuracy")
    probe.fit(train_x, train_y)
    predicted = probe.predict(test_x)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(test_y, predicted)),
        "kappa": float(cohen_kappa_score(test_y, predicted)),
        "weighted_f1": float(f1_score(test_y, predicted, average="weighted")),
    }
