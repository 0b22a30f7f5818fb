"""The default model on data with a known answer (a planted checkerboard of tastes), cold start included."""

from dataclasses import replace

import numpy as np
import pytest

from recgen.evaluation import metrics
from recgen.features import Interactions
from recgen.models import load_model
from recgen.models.baselines import item_means
from recgen.models.hybrid import scorer as hybrid_scorer
from recgen.models.hybrid.factors import FACTORS_LAYER
from recgen.models.hybrid.network import ListLoss, ListTrainer, build_hybrid_model
from recgen.models.hybrid.refit import REFIT_LAYER
from recgen.models.hybrid.scorer import TowerScorer
from recgen.models.hybrid.settings import TRANSFORMS, HybridSettings, inverse_target, target
from recgen.models.hybrid.tables import SideTables
from recgen.models.hybrid.training import make_lists, train_hybrid
from recgen.models.keras_base import predict, save

N_USERS, N_VIDEOS = 80, 120
rng = np.random.default_rng(7)
GROUP = np.arange(N_USERS) % 2  # a user's group is a profile feature (as onehot features are in KuaiRec)
FLAVOUR = np.arange(N_VIDEOS) % 2  # a video's flavour is one of its tags
QUALITY = rng.normal(0, 0.15, N_VIDEOS)
COLD_USER, COLD_VIDEO = 0, 1  # no training rows: scored from features alone
REBEL = 3  # in group 1 by profile, but loves flavour 0: only their own rows tell


def expected_ratio(users, videos):
    """Group g loves flavour g (x2) and shrugs at the other (x0.5), around a small item quality; the rebel
    the other way round."""
    loves = (GROUP[users] == FLAVOUR[videos]) != (users == REBEL)
    return np.exp(np.where(loves, np.log(2.0), np.log(0.5)) + QUALITY[videos])


def side_tables(known_users, known_videos):
    users = SideTables(
        categorical=(GROUP[:, None] + 1).astype(np.int32),
        vocab_sizes=(3,),
        numeric=np.zeros((N_USERS, 1), np.float32),
        known=known_users,
    )
    tags = np.eye(2, dtype=np.float32)[FLAVOUR]
    videos = SideTables(
        categorical=np.ones((N_VIDEOS, 1), np.int32),
        vocab_sizes=(2,),
        numeric=tags,
        known=known_videos,
        content=tags,
    )
    return users, videos


@pytest.fixture(scope="module")
def checkerboard():
    pairs = np.array([(u, v) for u in range(N_USERS) for v in range(N_VIDEOS)])
    train_mask = rng.random(len(pairs)) < 0.6
    train_mask &= (pairs[:, 0] != COLD_USER) & (pairs[:, 1] != COLD_VIDEO)
    train, held_out = pairs[train_mask], pairs[~train_mask]
    noisy = expected_ratio(train[:, 0], train[:, 1]) * rng.lognormal(-0.045, 0.3, len(train))
    rows = Interactions(train[:, 0].astype(np.int32), train[:, 1].astype(np.int32), noisy.astype(np.float32))
    known_users = np.bincount(rows.users, minlength=N_USERS) > 0
    known_videos = np.bincount(rows.videos, minlength=N_VIDEOS) > 0
    settings = replace(HybridSettings(), dim=8, hidden=16, epochs=30, patience=4, list_size=16, batch_lists=32)
    keras_model = build_hybrid_model(*side_tables(known_users, known_videos), settings)
    train_hybrid(keras_model, rows, settings)
    scorer = TowerScorer(keras_model, N_USERS, N_VIDEOS, settings)
    return rows, held_out, keras_model, scorer, settings


def mean_spearman(users, videos, scores):
    truth = expected_ratio(users, videos)
    return np.nanmean(metrics.spearman(users, scores, truth))


def test_the_planted_tastes_are_recovered_where_the_item_mean_sees_nothing(checkerboard):
    rows, held_out, _, scorer, _ = checkerboard
    users, videos = held_out[:, 0], held_out[:, 1]
    warm = (users != COLD_USER) & (videos != COLD_VIDEO)
    model_rho = mean_spearman(users[warm], videos[warm], scorer.score_pairs(users[warm], videos[warm]))
    item_rho = mean_spearman(users[warm], videos[warm], item_means(rows, N_VIDEOS)[videos[warm]])
    assert model_rho > 0.8  # the item quality (which the item mean does see) is a small part of the truth
    assert model_rho > item_rho + 0.3


def test_cold_users_and_videos_are_scored_from_their_features(checkerboard):
    _, _, _, scorer, _ = checkerboard
    videos = np.arange(N_VIDEOS)
    cold_user_scores = scorer.score_pairs(np.full(N_VIDEOS, COLD_USER), videos)
    liked = FLAVOUR == GROUP[COLD_USER]
    assert cold_user_scores[liked].min() > cold_user_scores[~liked].max() - 0.2
    assert cold_user_scores[liked].mean() > 1.5 * cold_user_scores[~liked].mean()
    lovers = np.flatnonzero(GROUP == FLAVOUR[COLD_VIDEO])
    others = np.flatnonzero(GROUP != FLAVOUR[COLD_VIDEO])
    cold_video = scorer.score_pairs(np.arange(N_USERS), np.full(N_USERS, COLD_VIDEO))
    assert cold_video[lovers].mean() > 1.5 * cold_video[others].mean()


def test_tower_scores_equal_the_keras_model_alone_in_a_batch_and_in_a_block(checkerboard, monkeypatch):
    rows, _, keras_model, scorer, settings = checkerboard
    users, videos = rows.users[:300], rows.videos[:300]
    keras_scores = inverse_target(predict(keras_model, users, videos), settings)
    np.testing.assert_allclose(scorer.score_pairs(users, videos), keras_scores, rtol=1e-4, atol=1e-5)
    shuffled = np.random.default_rng(0).permutation(300)
    monkeypatch.setattr(hybrid_scorer, "SCORE_BLOCK_USERS", 3)  # pairs of many users, scored three users at a time
    np.testing.assert_allclose(
        scorer.score_pairs(users[shuffled], videos[shuffled]), keras_scores[shuffled], rtol=1e-4, atol=1e-5
    )
    alone = [scorer.score_pairs(users[i : i + 1], videos[i : i + 1])[0] for i in range(10)]
    np.testing.assert_allclose(alone, scorer.score_pairs(users, videos)[:10], rtol=1e-6)
    block = scorer.score_block(np.array([3, 4]))
    np.testing.assert_allclose(block[1], scorer.score_pairs(np.full(N_VIDEOS, 4), np.arange(N_VIDEOS)), rtol=1e-5)


@pytest.mark.parametrize("content", [True, False])
def test_the_training_view_scores_as_the_model_does_and_trains_all_of_its_weights(content):
    """The trainer leaves out the tables fitted after training (zeros until then), and carries only the
    trained part of a video's vector through its batch's rows, its content looked up beside it."""
    settings = replace(HybridSettings(), dim=4, hidden=8, residual_rank=3, list_size=5)
    users_table, videos_table = side_tables(np.ones(N_USERS, bool), np.ones(N_VIDEOS, bool))
    if not content:
        videos_table = replace(videos_table, content=None)
    keras_model = build_hybrid_model(users_table, videos_table, settings)
    trainer = ListTrainer(keras_model, settings.list_size)
    users = np.arange(10, dtype=np.int32)
    videos = np.random.default_rng(3).integers(0, N_VIDEOS, (10, settings.list_size)).astype(np.int32)
    lists = np.asarray(trainer({"user": users, "videos": videos}, training=False))
    pairs = predict(keras_model, np.repeat(users, settings.list_size), videos.ravel())
    np.testing.assert_allclose(lists.ravel(), pairs, rtol=1e-5, atol=1e-6)
    assert {v.path for v in trainer.trainable_variables} == {v.path for v in keras_model.trainable_variables}
    fitted_after = {REFIT_LAYER, f"user_{FACTORS_LAYER}", f"video_{FACTORS_LAYER}"}
    for tower in (trainer.user_tower, trainer.video_tower):
        assert not {layer.name for layer in tower.layers} & fitted_after
    assert trainer.video_tower.outputs[0].shape[-1] == settings.dim
    assert (trainer.content is not None) == content


def test_save_then_load_gives_identical_scores(checkerboard, tmp_path):
    rows, _, keras_model, _, settings = checkerboard
    path, _ = save(keras_model, tmp_path)
    reloaded = load_model(path)
    np.testing.assert_array_equal(
        predict(reloaded, rows.users[:500], rows.videos[:500]),
        predict(keras_model, rows.users[:500], rows.videos[:500]),
    )
    np.testing.assert_array_equal(
        TowerScorer(reloaded, N_USERS, N_VIDEOS, settings).score_block(np.arange(5)),
        TowerScorer(keras_model, N_USERS, N_VIDEOS, settings).score_block(np.arange(5)),
    )


def test_the_refit_is_stored_in_the_model_for_users_with_rows_and_keeps_their_own_taste(checkerboard, tmp_path):
    rows, held_out, keras_model, scorer, _ = checkerboard
    table = keras_model.get_layer("user_tower").get_layer(REFIT_LAYER).table.numpy()
    assert not table[COLD_USER].any()  # no rows: the feature path, as before
    known = np.bincount(rows.users, minlength=N_USERS) > 0
    assert np.abs(table[known]).sum(axis=1).min() > 0
    path, _ = save(keras_model, tmp_path)
    reloaded = load_model(path).get_layer("user_tower").get_layer(REFIT_LAYER).table.numpy()
    np.testing.assert_array_equal(reloaded, table)
    # The rebel's profile says the opposite of their rows: refitted, they are ranked by their rows.
    videos = held_out[held_out[:, 0] == REBEL, 1]
    users = np.full(len(videos), REBEL)
    assert mean_spearman(users, videos, scorer.score_pairs(users, videos)) > 0.7


@pytest.mark.parametrize(("refit", "personal_weights"), [(True, False), (False, True)])
def test_the_refit_sets_the_correction_only_when_asked_with_or_without_personal_weights(refit, personal_weights):
    rows = Interactions(np.array([1, 1, 2, 2], np.int32), np.array([0, 2, 0, 3], np.int32), np.ones(4, np.float32))
    settings = replace(HybridSettings(), dim=2, hidden=4, epochs=1, list_size=2, batch_lists=2, refit=refit)
    users, videos = side_tables(np.arange(N_USERS) < 3, np.arange(N_VIDEOS) < 4)
    if not personal_weights:
        videos = replace(videos, content=None)
    keras_model = build_hybrid_model(users, videos, settings)
    train_hybrid(keras_model, rows, settings)
    table = keras_model.get_layer("user_tower").get_layer(REFIT_LAYER).table.numpy()
    assert table.shape == (N_USERS, settings.dim + (2 if personal_weights else 0) + 1)
    assert table[[1, 2]].any() == refit
    assert not table[[0, 3]].any()  # no rows


def test_lists_hold_every_training_row_once():
    rows = Interactions(
        np.array([2, 0, 2, 2, 1], np.int32), np.array([5, 6, 7, 8, 9], np.int32), np.ones(5, np.float32)
    )
    lists = make_lists(rows, 2, HybridSettings())
    filled = ~np.isnan(lists.targets)
    assert filled.sum() == 5 and len(lists.users) == 4  # user 2 has 3 rows: two lists
    pairs = sorted(zip(np.repeat(lists.users, 2)[filled.ravel()], lists.videos[filled], strict=True))
    assert pairs == [(0, 6), (1, 9), (2, 5), (2, 7), (2, 8)]


def test_the_target_round_trips_below_the_cap_and_unknown_transforms_fail():
    settings = HybridSettings()
    ratios = np.array([0.0, 0.3, 1.0, 7.5, 49.0, 600.0], np.float32)
    for transform in TRANSFORMS:
        chosen = replace(settings, transform=transform)
        back = inverse_target(target(ratios, chosen), chosen)
        np.testing.assert_allclose(back, np.minimum(ratios, settings.ratio_cap), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="transform"):
        target(ratios, replace(settings, transform="sqrt"))


def test_the_row_weighted_loss_weighs_every_row_the_same_and_round_trips_its_config():
    truth = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, np.nan, np.nan, np.nan]], np.float32)
    pred = np.zeros_like(truth)
    per_list = ListLoss(0.0, delta=5.0, reduction=None)(truth, pred)
    per_row = ListLoss(0.0, delta=5.0, row_weighted=True, reduction=None)(truth, pred)
    np.testing.assert_allclose(np.asarray(per_list), [0.5, 0.5])  # a 1-row list counts as much as a full one
    np.testing.assert_allclose(np.asarray(per_row), [0.5, 0.125])  # here it counts as the one row it holds
    assert ListLoss.from_config(ListLoss(row_weighted=True).get_config()).row_weighted


def test_the_expectile_weighs_under_predictions_more_and_0_5_is_the_plain_huber_loss():
    truth = np.array([[1.0, -1.0]], np.float32)  # one row above the prediction (0), one below it
    pred = np.zeros_like(truth)

    def per_row(expectile):
        loss = ListLoss(0.0, delta=5.0, row_weighted=True, expectile=expectile, reduction=None)
        return [float(np.asarray(loss(truth[:, [i]], pred[:, [i]]))[0]) for i in range(2)]

    np.testing.assert_allclose(per_row(0.5), [0.5, 0.5])  # 0.5 x error^2 either side
    np.testing.assert_allclose(per_row(0.7), [0.7, 0.3])  # x 2 x 0.7 under, x 2 x 0.3 over
    assert ListLoss.from_config(ListLoss(expectile=0.7).get_config()).expectile == 0.7
    with pytest.raises(ValueError, match="expectile"):
        ListLoss(expectile=1.0)


@pytest.fixture(scope="module")
def hidden_tastes():
    """The checkerboard with the groups and flavours in no feature: only a collaborative model finds it."""
    rng = np.random.default_rng(11)
    pairs = np.array([(u, v) for u in range(N_USERS) for v in range(N_VIDEOS)])
    train_mask = (rng.random(len(pairs)) < 0.6) & (pairs[:, 0] != COLD_USER) & (pairs[:, 1] != COLD_VIDEO)
    train, held_out = pairs[train_mask], pairs[~train_mask & (pairs[:, 0] != REBEL)]
    ratio = expected_ratio(train[:, 0], train[:, 1]) * rng.lognormal(-0.045, 0.3, len(train))
    rows = Interactions(train[:, 0].astype(np.int32), train[:, 1].astype(np.int32), ratio.astype(np.float32))
    users, videos = side_tables(np.bincount(rows.users, minlength=N_USERS) > 0, np.bincount(rows.videos) > 0)
    users = replace(users, categorical=np.ones_like(users.categorical))  # the group is hidden
    videos = replace(videos, numeric=np.zeros_like(videos.numeric), content=None)  # the flavour too
    return rows, held_out, users, videos


@pytest.mark.parametrize("rank", [0, 2])
def test_residual_factors_find_a_taste_no_feature_carries_and_are_stored_for_known_ids_only(
    hidden_tastes, rank, tmp_path
):
    rows, held_out, users, videos = hidden_tastes
    settings = replace(
        HybridSettings(), dim=2, hidden=8, epochs=1, list_size=16, batch_lists=32, residual_rank=rank,
        residual_ridge=1.0,
    )  # fmt: skip
    keras_model = build_hybrid_model(users, videos, settings)
    train_hybrid(keras_model, rows, settings)  # one epoch: the towers alone learn little of the taste
    scorer = TowerScorer(keras_model, N_USERS, N_VIDEOS, settings)
    found = mean_spearman(held_out[:, 0], held_out[:, 1], scorer.score_pairs(held_out[:, 0], held_out[:, 1]))
    if rank == 0:
        assert found < 0.5
        return
    assert found > 0.7
    for side, cold in (("user", COLD_USER), ("video", COLD_VIDEO)):
        table = keras_model.get_layer(f"{side}_tower").get_layer(f"{side}_residual_factors").table.numpy()
        assert not table[cold].any() and np.abs(table).sum(axis=1).max() > 0
    path, _ = save(keras_model, tmp_path)
    reloaded = TowerScorer(load_model(path), N_USERS, N_VIDEOS, settings)
    np.testing.assert_array_equal(reloaded.score_block(np.arange(N_USERS)), scorer.score_block(np.arange(N_USERS)))


def test_the_per_id_solves_give_the_same_floats_on_any_number_of_threads():
    """Each user's (or video's) regression reads only its own rows: threads split the ids, not the sums."""
    from recgen.models.hybrid.solves import factors_shard, refit_shard, shard_rows

    gen = np.random.default_rng(3)
    n_users, n_videos, n_rows = 300, 400, 60_000
    users, videos = gen.integers(0, n_users, n_rows), gen.integers(0, n_videos, n_rows)
    values = gen.normal(size=n_rows).astype(np.float32)
    (rows,), _ = shard_rows(users, videos, values, n_users, [(0, n_users)])
    owned = gen.random(n_users) > 0.1
    other = gen.normal(size=(n_videos, 8)).astype(np.float32)
    one = factors_shard(rows, owned, other, 0.5, threads=1)
    for user in (0, 7, 299):  # against the regression written out for one user
        x = other[rows.other[rows.bounds[user] : rows.bounds[user + 1]]]
        y = values[np.sort(np.flatnonzero(users == user))]  # shard_rows keeps each user's rows in log order
        expected = np.linalg.solve((x.T @ x).astype(np.float64) + 0.5 * np.eye(8), x.T @ y) if owned[user] else 0
        np.testing.assert_allclose(one[user], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(factors_shard(rows, owned, other, 0.5, threads=3), one)

    design = gen.normal(size=(n_videos, 5)).astype(np.float32)
    trained, prior = (gen.normal(size=(n_users, 5)).astype(np.float32) for _ in range(2))
    fitted = owned & (np.bincount(users, minlength=n_users) > 0)
    args = (rows, trained, prior, fitted, design, np.zeros(n_videos, np.float32), 0.3 * np.eye(5), 1.0, 0.6, 3)
    one = refit_shard(*args, threads=1)
    assert np.abs(one[fitted]).sum() > 0 and not one[~fitted].any()
    np.testing.assert_array_equal(refit_shard(*args, threads=3), one)
