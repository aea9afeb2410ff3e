"""drift.adapt: MOL meta-init/adaptation, EAR adaptors and routing, trainable exported models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from drift.adapt import (
    AdaptFileError,
    EARModel,
    MetaOODLearner,
    export_ear,
    export_module,
    fine_tune,
    trainable_module,
)


@pytest.fixture(autouse=True)
def one_thread():
    # tiny models: extra threads only contend on a shared 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TwoHeaded(nn.Module):
    """A small MLP whose forward returns (features, logits), like the monitored models."""

    def __init__(self, in_dim: int = 4, n_classes: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU())
        self.classifier = nn.Linear(32, n_classes)

    def forward(self, x):
        features = self.encoder(x)
        return features, self.classifier(features)


CENTRES = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]], dtype=np.float32)


def blobs(n_per_class: int, seed: int, offset: np.ndarray | None = None):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(CENTRES)), n_per_class)
    x = CENTRES[y] + rng.normal(0, 0.7, size=(len(y), 4)).astype(np.float32)
    if offset is not None:
        x = x + offset
    return x.astype(np.float32), y


def offset_shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random covariate shift: the whole task moves by one random offset."""
    return (x + rng.normal(0, 2.0, size=(1, x.shape[1]))).astype(np.float32)


def outputs(module: nn.Module, x: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return module(torch.as_tensor(x))[1]


@pytest.fixture(scope="module")
def learner():
    x, y = blobs(40, seed=0)
    params = dict(meta_iterations=30, tasks_per_iteration=2, shots=5, query_shots=10,
                  inner_lr=0.1, inner_steps=5, meta_lr=3e-3)
    return MetaOODLearner(**params, seed=0).meta_train(TwoHeaded(), x, y, offset_shift)


# -- MOL -------------------------------------------------------------------------------
def test_adapt_returns_a_new_module_and_leaves_theta_untouched(learner):
    theta = learner.state_dict()
    sx, sy = blobs(5, seed=1, offset=np.float32([2.0, -2.0, 1.0, 0.0]))
    adapted = learner.adapt(sx, sy)
    assert adapted is not learner.meta_model_
    for name, value in learner.meta_model_.state_dict().items():
        assert torch.equal(value, theta[name])
    assert any(not torch.equal(v, theta[k]) for k, v in adapted.state_dict().items())


def test_adaptations_always_start_from_theta(learner):
    first = blobs(5, seed=2, offset=np.float32([2.0, 0.0, 0.0, 0.0]))
    other = blobs(5, seed=3, offset=np.float32([-2.0, 2.0, 0.0, 0.0]))
    probe, _ = blobs(3, seed=4)
    a = learner.adapt(*first)
    learner.adapt(*other)
    again = learner.adapt(*first)
    assert torch.equal(outputs(a, probe), outputs(again, probe))


def test_fine_tune_leaves_the_model_untouched():
    model = TwoHeaded()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fine_tune(model, *blobs(5, seed=1), steps=3, lr=0.1)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_save_load_round_trip_gives_identical_outputs(learner, tmp_path):
    learner.save(tmp_path / "mol")
    loaded = MetaOODLearner.load(tmp_path / "mol", TwoHeaded(seed=123))  # template weights differ
    probe, _ = blobs(4, seed=5)
    support = blobs(5, seed=6, offset=np.float32([1.0, 1.0, -1.0, 0.0]))
    assert loaded.get_params() == learner.get_params()
    assert torch.equal(outputs(loaded.meta_model_, probe), outputs(learner.meta_model_, probe))
    assert torch.equal(outputs(loaded.adapt(*support), probe), outputs(learner.adapt(*support), probe))
    with pytest.raises(AdaptFileError):
        EARModel.load(tmp_path / "mol", TwoHeaded())


def test_adaptation_improves_over_the_meta_init(learner):
    gains = []
    for seed, offset in enumerate(([3.0, -3.0, 0, 0], [0, 3.0, 3.0, -2.0], [-3.0, 0, 0, 3.0])):
        shift = np.float32(offset)
        support = blobs(5, seed=10 + seed, offset=shift)
        test_x, test_y = blobs(100, seed=20 + seed, offset=shift)
        before = (outputs(learner.meta_model_, test_x).argmax(1).numpy() == test_y).mean()
        after = (outputs(learner.adapt(*support, steps=20), test_x).argmax(1).numpy() == test_y).mean()
        gains.append(after - before)
    assert np.mean(gains) > 0.1


def test_meta_train_does_not_modify_the_given_model():
    model = TwoHeaded()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = blobs(20, seed=0)
    MetaOODLearner(meta_iterations=2, shots=2, query_shots=3).meta_train(model, x, y, offset_shift)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# -- exported models -------------------------------------------------------------------
def test_exported_model_trains_with_autograd_and_re_exports(tmp_path):
    from drift.config import ModelSpec
    from drift.digits import DigitsNet

    torch.manual_seed(0)
    eager = DigitsNet(n_classes=3).eval()
    path = export_module(eager, torch.zeros(2, 64), tmp_path / "model.pt2")
    module = trainable_module(ModelSpec(format="export", path=path, device="cpu"))
    assert all(p.requires_grad for p in module.parameters())
    assert set(module.state_dict()) == set(eager.state_dict())
    with pytest.raises(NotImplementedError):  # torch 2.13: an exported graph keeps its traced mode
        module.train()
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 64), dtype=np.float32), rng.integers(0, 3, 12)
    tuned = fine_tune(module, x, y, steps=3, lr=0.1)
    assert not torch.equal(outputs(tuned, x), outputs(module, x))
    reexported = export_module(tuned, torch.zeros(2, 64), tmp_path / "adapted.pt2")
    back = torch.export.load(str(reexported)).module()
    assert torch.allclose(outputs(back, x), outputs(tuned, x))


# -- EAR -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_domains():
    """Original blobs, and a clearly different domain: the same blobs moved along feature 3."""
    x, y = blobs(60, seed=0)
    x_new, y_new = blobs(60, seed=1, offset=np.float32([0.0, 0.0, 0.0, 6.0]))
    return (x, y), (x_new, y_new)


@pytest.fixture(scope="module")
def ear(two_domains):
    (x, y), (x_new, y_new) = two_domains
    return EARModel(TwoHeaded(), hdc_dim=512, epochs=100).fit(x, y).add_domain(x_new, y_new, "new")


def test_proxy_ranks_architectures_deterministically(two_domains):
    (x, y), (x_new, _) = two_domains
    model = TwoHeaded()
    features = model(torch.as_tensor(x_new))[0].detach()
    ranks = [EARModel(model, hdc_dim=256).fit(x, y).rank_candidates(features) for _ in range(2)]
    assert ranks[0] == ranks[1]
    specs, scores = ranks[0]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores[0])


def test_routing_sends_a_clearly_different_domain_to_its_adaptor(ear, two_domains):
    (x, _), (x_new, _) = two_domains
    assert (ear.route(x_new) == 1).mean() > 0.9
    assert (ear.route(x) == 0).mean() > 0.9


def test_adding_a_domain_leaves_original_predictions_unchanged(two_domains):
    (x, y), (x_new, y_new) = two_domains
    model = TwoHeaded()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    ear = EARModel(model, hdc_dim=512, epochs=100).fit(x, y)
    before = ear.predict(x)
    ear.add_domain(x_new, y_new, "new")
    kept = ear.route(x) == 0
    assert np.array_equal(ear.predict(x)[kept], before[kept])
    assert np.array_equal(before, outputs(model, x).numpy())
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_new_domain_accuracy_rises(ear, two_domains):
    (_, _), (x_new, y_new) = two_domains
    original = (outputs(ear.model, x_new).argmax(1).numpy() == y_new).mean()
    assert (ear.predict(x_new).argmax(1) == y_new).mean() > max(original + 0.2, 0.9)


def test_ear_save_load_round_trip(ear, two_domains, tmp_path):
    (x, _), (x_new, _) = two_domains
    ear.save(tmp_path / "ear")
    loaded = EARModel.load(tmp_path / "ear", ear.model)
    both = np.concatenate([x, x_new])
    assert loaded.domain_names_ == ["original", "new"]
    assert loaded.adaptor_specs_ == ear.adaptor_specs_
    assert np.array_equal(loaded.route(both), ear.route(both))
    assert np.array_equal(loaded.predict(both), ear.predict(both))


def test_ear_exports_as_one_model_the_nightly_path_loads(two_domains, tmp_path):
    """Deployed .pt2 → EAR → one .pt2 → drift.embed: features unchanged, logits = EAR's own."""
    from drift.config import ModelSpec
    from drift.embed import Embedder, load_module

    (x, y), (x_new, y_new) = two_domains
    original = TwoHeaded()
    deployed_path = export_module(original, torch.zeros(2, 4), tmp_path / "deployed.pt2")
    deployed = load_module(ModelSpec(format="export", path=deployed_path, device="cpu"))
    ear = EARModel(deployed, hdc_dim=512, epochs=100).fit(x, y).add_domain(x_new, y_new, "new")
    path = export_ear(ear, tmp_path / "ear.pt2")
    both = np.concatenate([x, x_new])
    spec = ModelSpec(format="export", path=path, device="cpu", batch_size=50)
    batch = Embedder(spec, input_columns=[]).embed_array(both)
    routes = ear.route(both)
    assert set(routes) == {0, 1}  # both heads are exercised
    np.testing.assert_allclose(batch.logits, ear.predict(both), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch.features, outputs_and_features(original, both)[0], rtol=1e-5, atol=1e-6)
    kept = routes == 0  # the original head, untouched, serves the original domain
    np.testing.assert_allclose(batch.logits[kept], outputs(original, both[kept]).numpy(), rtol=1e-5, atol=1e-6)


def outputs_and_features(module: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        features, logits = module(torch.as_tensor(x))
    return features.numpy(), logits.numpy()


def test_removing_a_domain_rolls_back_its_adaptor(tmp_path):
    """Three domains; dropping the middle one sends its rows home and keeps the others."""
    (x, y), (x_a, y_a) = blobs(60, seed=0), blobs(60, seed=1, offset=np.float32([0, 0, 0, 6.0]))
    x_b, y_b = blobs(60, seed=2, offset=np.float32([0, 0, 0, -6.0]))
    ear = EARModel(TwoHeaded(), hdc_dim=512, epochs=100).fit(x, y)
    ear.add_domain(x_a, y_a, "a").add_domain(x_b, y_b, "b")
    adaptor_b = ear.adaptors_[1]
    assert (ear.route(x_a) == 1).mean() > 0.9 and (ear.route(x_b) == 2).mean() > 0.9
    ear.remove_domain("a")
    assert ear.domain_names_ == ["original", "b"] and ear.adaptors_ == [adaptor_b]
    assert (ear.route(x_a) == 0).mean() > 0.9  # a's rows are back on the original head
    assert (ear.route(x_b) == 1).mean() > 0.9 and (ear.route(x) == 0).mean() > 0.9
    exported = torch.export.load(str(export_ear(ear, tmp_path / "rolled.pt2", torch.zeros(2, 4)))).module()
    np.testing.assert_allclose(outputs(exported, x_b).numpy(), ear.predict(x_b), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no added domain named 'a'"):
        ear.remove_domain("a")
    with pytest.raises(ValueError, match="no added domain named 'original'"):
        ear.remove_domain("original")


def test_routing_on_digits_keeps_every_domain_on_its_own_head():
    """The digits setting, two successive corruptions: each domain ≥ 90 % routed home,
    the original ≥ 97 %, and the first domain's routing does not fade when the second arrives."""
    from drift.digits import corrupt, load_digits_split, train_digits_model

    split = load_digits_split(seed=0)
    deployed = train_digits_model(split.x_train, split.y_train, split.n_classes, seed=0, epochs=10)
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(split.y_calib == c), 20, replace=False)
                           for c in range(split.n_classes)])
    ear = EARModel(deployed, epochs=100).fit(split.x_train, split.y_train)
    tests = [split.x_test]
    first_after_adding = []
    for kind, severity in (("rotation", 4), ("occlusion", 4)):
        ear.add_domain(corrupt(split.x_calib[rows], kind, severity, rng), split.y_calib[rows], kind)
        tests.append(corrupt(split.x_test, kind, severity, rng))
        first_after_adding.append((ear.route(tests[1]) == 1).mean())
    routing = [(ear.route(x_test) == d).mean() for d, x_test in enumerate(tests)]
    assert routing[0] >= 0.97 and min(routing[1:]) >= 0.9, routing
    assert first_after_adding[1] >= first_after_adding[0] - 0.03, first_after_adding


def test_hdc_routing_ablation_saves_loads_and_exports(two_domains, tmp_path):
    (x, y), (x_new, y_new) = two_domains
    ear = EARModel(TwoHeaded(), routing="class", hdc_dim=512, epochs=50).fit(x, y)
    ear.add_domain(x_new, y_new, "new")
    both = np.concatenate([x, x_new])
    loaded = EARModel.load(ear.save(tmp_path / "ear"), ear.model)
    assert isinstance(loaded.router_, type(ear.router_)) and loaded.routing == "class"
    assert np.array_equal(loaded.route(both), ear.route(both))
    exported = torch.export.load(str(export_ear(loaded, tmp_path / "ear.pt2"))).module()
    np.testing.assert_allclose(outputs(exported, both).numpy(), ear.predict(both), rtol=1e-5, atol=1e-5)
