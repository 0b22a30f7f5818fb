"""recgen's default model: a hybrid two-tower network over ids, content and user features.

    score(u, v) = <user_tower(u), video_tower(v)> + video_bias(v) + user_bias(u)

Each tower concatenates an id embedding with embeddings of the categorical features and the numeric
features of its side, then a dense layer (`network`, over the feature tables of `tables`). The video's
vector ends with fixed content descriptors (duration, tags, top-level category) and the user's with their
personal weights over them, so the dot product holds both the latent match and each user's own duration
sensitivity and taste; scoring all users x all videos is one matrix product (`scorer`).

The target is log(watch ratio + 0.05) (ratio capped at 50) under an asymmetric Huber loss (`settings`,
`network.ListLoss`): on the log scale a user's level, duration sensitivity and tastes add up (they multiply
the ratio), and the robust loss keeps skips, zero plays and loops from pulling the estimate. The score is
exp(prediction) - 0.05.

After `model.fit` (`training`), each user's own parameters (their vector and bias beyond what their features
predict) are estimated again in closed form by empirical Bayes, with the videos' outputs fixed (`refit`): a
user with few rows stays near what their features predict, one with many follows their rows. Then what the
model still leaves unexplained is factorised (`factors`: alternating least squares, `residual_rank` factors
a side), and the factors are appended to both towers' vectors: a taste no feature carries. Both fit on every
training row, the rows of the lists that validated `model.fit` included.

The refit and the factors are maps over shards of users (and videos) on the run's engine (recgen.engines):
`solves` holds their numpy arithmetic, which a cluster's workers run without Keras.

Cold start: id embeddings are dropped for a share of the training lists (`id_dropout`), so the towers also
learn to score from features alone; users and videos without training rows get no id embedding at all.
"""

from __future__ import annotations

__all__ = ["ABLATION_GROUPS", "HybridFamily", "HybridSettings", "TowerScorer", "build_hybrid_model", "side_tables"]

_WHERE = {
    "ABLATION_GROUPS": "settings",
    "HybridSettings": "settings",
    "HybridFamily": "family",
    "TowerScorer": "scorer",
    "build_hybrid_model": "network",
    "side_tables": "tables",
}


def __getattr__(name: str):
    """The package's names, imported on first use: a worker that runs only `solves` never loads Keras."""
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"recgen.models.hybrid.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
