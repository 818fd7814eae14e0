"""GIT's long-tail classification (REFERENCE §6): losses, schedule, train rules, oracle, resume."""
import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mil_core.classify.trainer as trainer
from mil_core.checkpoint import checkpoint_metadata
from mil_core.classify import (CHECKPOINT_NAME, ClassifierConfig, CrossEntropyLoss, FocalLoss,
                               LDAMLoss, effective_number_weights, epoch_indices, epoch_plan,
                               evaluate, ldam_margins, lr_at_epoch, make_loss, predict_proba,
                               recompute_bn_stats, schedule_phases, step_epochs, switch_epoch,
                               train_classifier, warmup_length)
from mil_core.data.longtail import make_long_tailed
from mil_core.data.mnist_like import ImageSet, load_digits
from mil_core.data.nuisance import to_float
from mil_core.errors import CheckpointError, ConfigError, DataError, TrainingError


@pytest.fixture(scope="module")
def digits_lt():
    """scikit-learn digits cut long-tailed (140 … 5 per class, 276 images) + balanced test."""
    train, test, sizes = make_long_tailed(load_digits(), "digits", 0)
    return train, test, sizes


# a run of a few seconds on one CPU thread: 3 epochs of 5 steps, lr steps at epochs 1 and 2
FAST = ClassifierConfig(model="smallcnn", epochs=3, batch_size=64, warmup_epochs=1,
                        lr_steps=(0.34, 0.67), eval_every=0, seed=3)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def strip_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.fixture(scope="module")
def base_run(digits_lt):
    train, test, _ = digits_lt
    return train_classifier(train, test, FAST, device="cpu")


# -----------------------------------------------------------------------------
# losses

def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    w = torch.rand(5) + 0.1
    torch.testing.assert_close(FocalLoss(0.0)(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(FocalLoss(0.0, 5, w)(logits, y),
                               F.cross_entropy(logits, y, weight=w))
    torch.testing.assert_close(CrossEntropyLoss(5, w)(logits, y),
                               F.cross_entropy(logits, y, weight=w))


def test_focal_closed_form():
    logits, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    p = torch.softmax(logits, 1)[0, 0]
    assert FocalLoss(1.0)(logits, y).item() == pytest.approx(float(-(1 - p) * torch.log(p)))
    assert FocalLoss(2.0)(logits, y).item() == pytest.approx(float(-(1 - p) ** 2 * torch.log(p)))


def test_ldam_without_margin_and_scale_is_cross_entropy():
    torch.manual_seed(1)
    logits, y = torch.randn(16, 4), torch.randint(0, 4, (16,))
    loss = LDAMLoss([100, 10, 5, 1], max_m=0.0, s=1.0)
    torch.testing.assert_close(loss(logits, y), F.cross_entropy(logits, y))


def test_ldam_margins_and_true_class_shift():
    sizes = [1000, 100, 10, 1]
    m = ldam_margins(sizes, max_m=0.5)
    expected = torch.tensor([n ** -0.25 for n in sizes])
    torch.testing.assert_close(m, expected * 0.5 / expected.max())
    assert m.max().item() == pytest.approx(0.5) and m.argmax().item() == 3   # smallest class
    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, 0.3, 0.2, 0.1]])
    y = torch.tensor([1, 3])
    shifted = logits.clone()
    shifted[0, 1] -= m[1]                          # only the true class's logit moves
    shifted[1, 3] -= m[3]
    torch.testing.assert_close(LDAMLoss(sizes, 0.5, 30.0)(logits, y),
                               F.cross_entropy(30.0 * shifted, y))
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(LDAMLoss(sizes, 0.5, 30.0, weight=w)(logits, y),
                               F.cross_entropy(30.0 * shifted, y, weight=w))


def test_effective_number_weights_closed_form():
    sizes = [4800, 1200, 533, 5]
    beta = 0.9999
    raw = torch.tensor([(1 - beta) / (1 - beta ** n) for n in sizes], dtype=torch.float64)
    w = effective_number_weights(sizes, beta)
    torch.testing.assert_close(w, (raw / raw.sum() * 4).float())
    assert w.sum().item() == pytest.approx(4.0)
    assert torch.all(w[:-1] < w[1:])                                       # rarer → heavier
    torch.testing.assert_close(effective_number_weights(sizes, 0.0), torch.ones(4))
    torch.testing.assert_close(effective_number_weights(sizes, 1e-12), torch.ones(4))
    inv = torch.tensor([1.0 / n for n in sizes])                           # β → 1: ∝ 1/n
    torch.testing.assert_close(effective_number_weights(sizes, 1 - 1e-9), inv / inv.sum() * 4,
                               rtol=1e-3, atol=1e-4)


def test_make_loss_factory():
    sizes = [10, 5, 1]
    assert isinstance(make_loss("ce", sizes), CrossEntropyLoss)
    assert isinstance(make_loss("focal", sizes), FocalLoss) and make_loss("focal", sizes).gamma == 1
    ldam = make_loss("ldam", sizes, weight=torch.ones(3))
    assert isinstance(ldam, LDAMLoss) and ldam.s == 30.0
    assert ldam.margins.max().item() == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        make_loss("hinge", sizes)
    with pytest.raises(DataError, match="logits have 4 classes"):
        make_loss("ce", sizes)(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(DataError, match="weight must be"):
        make_loss("focal", sizes, weight=torch.ones(2))
    with pytest.raises(DataError, match="at least one training image"):
        make_loss("ldam", [10, 0, 3])
    with pytest.raises(DataError, match="at least one training image"):
        effective_number_weights([10, 0, 3])
    with pytest.raises(ConfigError, match="beta"):
        effective_number_weights(sizes, 1.0)
    with pytest.raises(ConfigError, match="gamma"):
        FocalLoss(-1.0)


# -----------------------------------------------------------------------------
# schedule and rules

def test_lr_schedule_k49_and_cifar():
    k49 = ClassifierConfig()                       # 50 epochs, warm-up 5, steps 30 / 40
    assert step_epochs(k49) == (30, 40) and warmup_length(k49) == 5
    lrs = [lr_at_epoch(k49, e) for e in range(50)]
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert lrs[5:30] == pytest.approx([0.1] * 25)
    assert lrs[30:40] == pytest.approx([1e-3] * 10)
    assert lrs[40:] == pytest.approx([1e-5] * 10)
    cifar = ClassifierConfig(model="resnet32", epochs=200, lr_steps=(0.8, 0.9))
    assert step_epochs(cifar) == (160, 180)
    assert lr_at_epoch(cifar, 159) == pytest.approx(0.1)
    assert lr_at_epoch(cifar, 160) == pytest.approx(1e-3)
    assert lr_at_epoch(cifar, 199) == pytest.approx(1e-5)
    short = ClassifierConfig(epochs=4)             # steps 2, 3; warm-up clipped to epoch 2
    assert step_epochs(short) == (2, 3) and warmup_length(short) == 2
    assert [lr_at_epoch(short, e) for e in range(4)] == pytest.approx([0.05, 0.1, 1e-3, 1e-5])
    one = ClassifierConfig(epochs=1)
    assert lr_at_epoch(one, 0) == pytest.approx(0.1)   # warm-up over one epoch ends at lr


@pytest.mark.parametrize("rule, sampling, weights", [
    ("erm", [0, 0, 0, 0], [0, 0, 0, 0]),
    ("resample", [1, 1, 1, 1], [0, 0, 0, 0]),
    ("drs", [0, 0, 1, 1], [0, 0, 0, 0]),
    ("reweight", [0, 0, 0, 0], [1, 1, 1, 1]),
    ("drw", [0, 0, 0, 0], [0, 0, 1, 1]),
])
def test_epoch_plan_switches_at_the_first_lr_step(rule, sampling, weights):
    cfg = ClassifierConfig(epochs=4, lr_steps=(0.5, 0.75), rule=rule)
    plans = [epoch_plan(cfg, e) for e in range(4)]
    assert [int(p["balanced_sampling"]) for p in plans] == sampling
    assert [int(p["class_weights"]) for p in plans] == weights


def test_epoch_indices_class_frequencies():
    labels = torch.tensor([0] * 1000 + [1] * 100 + [2] * 10)         # (1110,)
    gen = torch.Generator().manual_seed(0)
    plain = epoch_indices(labels, False, gen)
    assert torch.equal(plain.sort().values, torch.arange(1110))     # a permutation: each once
    counts = torch.bincount(labels[epoch_indices(labels, True, gen)], minlength=3)
    assert counts.sum() == 1110
    # class-balanced: 370 expected per class, binomial sd ≈ 15.7
    assert torch.all((counts - 370).abs() < 80), counts


def test_rules_switch_inside_the_training_loop(digits_lt, monkeypatch):
    """The trainer really builds the sampler / the weighted loss in exactly the planned epochs."""
    train, test, sizes = digits_lt
    calls = {"sampler": [], "weight": []}
    real_sampler, real_loss = trainer.class_balanced_sampler, trainer.make_loss

    def spy_sampler(*args, **kw):
        calls["sampler"].append(epoch[0])
        return real_sampler(*args, **kw)

    def spy_loss(name, class_sizes, weight=None, **kw):
        epoch[0] += 1
        calls["weight"].append(weight)
        return real_loss(name, class_sizes, weight, **kw)

    monkeypatch.setattr(trainer, "class_balanced_sampler", spy_sampler)
    monkeypatch.setattr(trainer, "make_loss", spy_loss)
    w = effective_number_weights(sizes, 0.9999)
    for rule, sampled, weighted in [("drs", [1, 2], []), ("drw", [], [1, 2]),
                                    ("resample", [0, 1, 2], []), ("reweight", [], [0, 1, 2])]:
        epoch = [-1]                                 # make_loss runs first in every epoch
        calls["sampler"].clear()
        calls["weight"].clear()
        cfg = dataclasses.replace(FAST, rule=rule, batch_size=128)
        train_classifier(train, None, cfg, device="cpu")
        assert calls["sampler"] == sampled, rule
        assert [e for e, wt in enumerate(calls["weight"]) if wt is not None] == weighted, rule
        for e in weighted:
            torch.testing.assert_close(calls["weight"][e], w)


@pytest.mark.parametrize("epochs, lr_steps", [(2, (0.6, 0.8)), (4, (0.6, 0.8)),
                                             (5, (0.6, 0.8)), (10, (0.6, 0.8)),
                                             (15, (0.6, 0.8)), (30, (0.6, 0.8)),
                                             (50, (0.6, 0.8)), (200, (0.8, 0.9))])
def test_deferred_switch_is_the_first_lr_step(epochs, lr_steps):
    """DRS / DRW switch exactly where the lr first drops to lr·0.01, for any epoch count, and
    the schedule runs on through the switch (Cao et al.: deferred re-balancing)."""
    cfgs = {r: ClassifierConfig(epochs=epochs, lr_steps=lr_steps, rule=r) for r in ("drs", "drw")}
    cfg = cfgs["drs"]
    first = step_epochs(cfg)[0]
    assert switch_epoch(cfg) == first == int(round(lr_steps[0] * epochs))
    assert lr_at_epoch(cfg, first) == pytest.approx(cfg.lr * 0.01)
    assert lr_at_epoch(cfg, first - 1) == pytest.approx(cfg.lr)     # end of warm-up or full lr
    for rule, key in (("drs", "balanced_sampling"), ("drw", "class_weights")):
        on = [e for e in range(epochs) if epoch_plan(cfgs[rule], e)[key]]
        assert on == list(range(first, epochs)), rule
    # the other rule's switch is off, and no rule resets the lr: same lr curve as ERM
    erm = ClassifierConfig(epochs=epochs, lr_steps=lr_steps)
    for rule in ("drs", "drw", "resample", "reweight"):
        other = dataclasses.replace(erm, rule=rule)
        assert [epoch_plan(other, e)["lr"] for e in range(epochs)] == \
            [lr_at_epoch(erm, e) for e in range(epochs)]


def test_no_switch_without_an_lr_step_and_merged_steps_refused():
    one = ClassifierConfig(epochs=1, rule="drs")           # smoke: the step would be epoch 1
    assert switch_epoch(one) is None and not epoch_plan(one, 0)["balanced_sampling"]
    assert switch_epoch(ClassifierConfig(epochs=5, lr_steps=(), lr_factors=())) is None
    with pytest.raises(ConfigError, match="both round to epoch 2"):
        ClassifierConfig(epochs=3)                         # 1.8 and 2.4: no lr·0.01 phase
    assert step_epochs(ClassifierConfig(epochs=2)) == (1, 2)   # the second step never happens


def test_schedule_phases_of_the_cpu_profile():
    """What the cpu profile leaves DRS: 3 epochs at lr 1e-3 (27 steps on the 276 digits, 117 on
    the 1,237 animal silhouettes at batch 32; at the former batch 128: 9 and 30), then 3 epochs
    at 1e-5."""
    cfg = ClassifierConfig.from_profile("cpu", rule="drs")
    assert (cfg.epochs, cfg.batch_size, switch_epoch(cfg)) == (15, 32, 9)
    phases = schedule_phases(cfg, 276)
    got = [(p["first_epoch"], p["last_epoch"], p["warmup"], p["balanced_sampling"], p["steps"])
           for p in phases]
    assert got == [(0, 4, True, False, 45), (5, 8, False, False, 36), (9, 11, False, True, 27),
                   (12, 14, False, True, 27)]
    assert [p["lr"] for p in phases] == pytest.approx([0.02, 0.1, 1e-3, 1e-5])
    assert [p["steps"] for p in schedule_phases(cfg, 1237)] == [195, 156, 117, 117]
    assert sum(p["steps"] for p in schedule_phases(cfg, 1237)) == 15 * 39
    old = ClassifierConfig.from_profile("cpu", rule="drs", batch_size=128)
    assert [p["steps"] for p in schedule_phases(old, 276)] == [15, 12, 9, 9]
    k49 = schedule_phases(ClassifierConfig(rule="drs"), 7822)       # the paper: 62 steps/epoch
    assert [(p["epochs"], p["steps"]) for p in k49] == [(5, 310), (25, 1550), (10, 620),
                                                        (10, 620)]
    with pytest.raises(ConfigError, match="n_train"):
        schedule_phases(cfg, 0)


def test_drs_sampler_frequencies_and_epoch_length(digits_lt, monkeypatch):
    """Inside the loop: before the switch each image once per epoch (ERM's class sizes), from
    it on N class-balanced draws with replacement; every epoch feeds N images; one optimizer
    for the whole run, its lr the schedule's in every step."""
    train, _, sizes = digits_lt
    n, n_classes = len(train), len(sizes)
    orders, seen, lrs, optimizers = [], [], [], []
    real_indices, real_sgd = trainer.epoch_indices, torch.optim.SGD

    def spy_indices(labels, balanced, generator):
        out = real_indices(labels, balanced, generator)
        orders.append((balanced, out.clone()))
        seen.append(0)
        return out

    class SpySGD(real_sgd):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            optimizers.append(self)

        def step(self, closure=None):
            lrs.append((len(orders) - 1, self.param_groups[0]["lr"]))
            return super().step(closure)

    real_make = trainer.make_classifier

    def make(*args, **kw):
        model = real_make(*args, **kw)
        model.register_forward_pre_hook(lambda m, inp: seen.__setitem__(-1, seen[-1]
                                                                         + inp[0].shape[0]))
        return model

    monkeypatch.setattr(trainer, "epoch_indices", spy_indices)
    monkeypatch.setattr(trainer, "make_classifier", make)
    monkeypatch.setattr(torch.optim, "SGD", SpySGD)
    cfg = ClassifierConfig(model="smallcnn", epochs=10, batch_size=32, warmup_epochs=2,
                           lr_steps=(0.4, 0.8), rule="drs", eval_every=0)
    train_classifier(train, None, cfg, device="cpu")
    first = switch_epoch(cfg)
    assert first == 4 and len(orders) == 10 and len(optimizers) == 1
    assert seen == [n] * 10                                  # N images through the model per epoch
    balanced_counts = torch.zeros(n_classes, dtype=torch.int64)
    for epoch, (balanced, order) in enumerate(orders):
        assert balanced == (epoch >= first) and len(order) == n
        counts = torch.bincount(train.labels[order], minlength=n_classes)
        if not balanced:
            assert torch.equal(order.sort().values, torch.arange(n))   # a permutation
            assert counts.tolist() == sizes
        else:
            balanced_counts += counts
            assert len(set(order.tolist())) < n              # with replacement: repeats
    # 6 balanced epochs: 6·276/10 = 165.6 draws expected per class, binomial sd ≈ 12.2
    expected = 6 * n / n_classes
    assert torch.all((balanced_counts - expected).abs() < 5 * 12.2), balanced_counts
    assert balanced_counts[torch.tensor(sizes).argmin()] > 10 * min(sizes)   # tail oversampled
    steps_per_epoch = math.ceil(n / 32)
    assert len(lrs) == 10 * steps_per_epoch
    assert [lr for _, lr in lrs] == pytest.approx([lr_at_epoch(cfg, e) for e, _ in lrs])


class _BNFirst(nn.Module):
    """BatchNorm on the raw input, so its exact statistics are those of the images."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.fc = nn.Linear(1, 2)

    def forward(self, x):
        return self.fc(self.bn(x).mean(dim=(2, 3)))


def test_recompute_bn_stats_matches_the_stream():
    images = torch.randint(0, 256, (12, 6, 6), dtype=torch.uint8)
    images[:, :3] = 0                                                  # a background for BG
    labels = torch.tensor([0] * 9 + [1] * 3)
    data = ImageSet(images, labels, ["a", "b"], "toy")
    x = to_float(images)                                               # (12, 1, 6, 6)
    model = _BNFirst().eval()
    model.bn.momentum = 0.3
    fc_before = model.fc.weight.clone()
    recompute_bn_stats(model, data, batch_size=12)                     # one batch: exact
    torch.testing.assert_close(model.bn.running_mean, x.mean().reshape(1))
    torch.testing.assert_close(model.bn.running_var, x.var().reshape(1))   # unbiased, as BN
    assert not model.training and model.bn.momentum == 0.3
    assert torch.equal(model.fc.weight, fc_before)
    # the class-balanced stream: the statistics of the drawn images, repeats counted
    recompute_bn_stats(model, data, balanced=True, batch_size=12,
                       generator=torch.Generator().manual_seed(5))
    order = epoch_indices(labels, True, torch.Generator().manual_seed(5))
    torch.testing.assert_close(model.bn.running_mean, x[order].mean().reshape(1))
    # several batches: the mean of the per-batch means (equal batches: the overall mean)
    recompute_bn_stats(model, data, batch_size=4)
    torch.testing.assert_close(model.bn.running_mean, x.mean().reshape(1))
    assert int(model.bn.num_batches_tracked) == 3
    # a transform on the fly changes them (identity does not)
    before = model.bn.running_mean.clone()
    recompute_bn_stats(model, data, batch_size=4, transform="identity")
    torch.testing.assert_close(model.bn.running_mean, before)
    recompute_bn_stats(model, data, batch_size=4, transform="bg")
    assert not torch.allclose(model.bn.running_mean, before)
    with pytest.raises(ConfigError, match="batch_size"):
        recompute_bn_stats(model, data, batch_size=0)


# -----------------------------------------------------------------------------
# training

@pytest.mark.parametrize("rule, loss", [("erm", "ce"), ("resample", "ce"), ("drs", "ce"),
                                        ("reweight", "ce"), ("drw", "ce"), ("erm", "focal"),
                                        ("drw", "ldam")])
def test_each_rule_trains(digits_lt, rule, loss):
    train, test, _ = digits_lt
    cfg = ClassifierConfig(model="smallcnn", epochs=4, batch_size=32, warmup_epochs=1,
                           lr_steps=(0.5, 0.75), rule=rule, loss=loss, eval_every=0)
    run = train_classifier(train, test, cfg, device="cpu")
    losses = [row["train_loss"] for row in run.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[1] < losses[0]                          # falls before any deferred switch
    if rule not in ("drs", "drw"):                        # same objective all along
        assert losses[-1] < losses[0]
    assert run.balanced_acc > 0.2                         # chance: 0.1 (10 balanced classes)
    assert run.history[-1]["acc"] == run.acc and run.history[0]["acc"] is None   # eval_every=0
    assert len(run.per_class_acc) == 10 and run.class_sizes == train.class_counts().tolist()
    assert not run.model.training


def test_seeded_runs_are_identical(digits_lt, base_run):
    train, test, _ = digits_lt
    again = train_classifier(train, test, FAST, device="cpu")
    assert same_weights(base_run.model, again.model)
    assert strip_seconds(again.history) == strip_seconds(base_run.history)
    other = train_classifier(train, test, dataclasses.replace(FAST, seed=4), device="cpu")
    assert not same_weights(base_run.model, other.model)
    t = base_run.timings
    assert t["device"] == "cpu" and t["steps_per_second"] > 0 and t["epochs_per_second"] > 0


class _Stop(Exception):
    pass


def test_resume_equals_uninterrupted(digits_lt, tmp_path):
    """DRS + a ROT oracle: the batch order, the sampler and the oracle draws all resume exactly."""
    train, test, _ = digits_lt
    cfg = dataclasses.replace(FAST, rule="drs", oracle="rot")
    full = train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path / "a")
    assert checkpoint_metadata(tmp_path / "a" / CHECKPOINT_NAME)["epoch"] == 3

    def stop_after_first_epoch(row):
        if row["epoch"] == 0:
            raise _Stop
    with pytest.raises(_Stop):
        train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path / "b",
                         callback=stop_after_first_epoch)
    assert checkpoint_metadata(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == 1
    resumed = train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path / "b",
                               resume=True)
    assert same_weights(full.model, resumed.model)
    assert strip_seconds(resumed.history) == strip_seconds(full.history)
    assert resumed.per_class_acc == full.per_class_acc

    with pytest.raises(CheckpointError, match="another ClassifierConfig"):
        train_classifier(train, test, dataclasses.replace(cfg, lr=0.05), device="cpu",
                         checkpoint_dir=tmp_path / "b", resume=True)
    with pytest.raises(CheckpointError, match="other data"):
        train_classifier(train.subset(torch.arange(1, len(train))), test, cfg, device="cpu",
                         checkpoint_dir=tmp_path / "b", resume=True)


def _sha256(path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_second_run_into_a_checkpoint_dir_needs_resume_or_overwrite(digits_lt, tmp_path,
                                                                     monkeypatch):
    from mil_core.checkpoint import load_checkpoint

    train, test, _ = digits_lt
    cfg = dataclasses.replace(FAST, epochs=1)
    train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    before = _sha256(path)
    assert load_checkpoint(path)["version"] == 1
    with pytest.raises(CheckpointError) as info:
        train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path)
    assert all(w in str(info.value) for w in (str(path), "resume", "overwrite"))
    assert _sha256(path) == before
    with pytest.raises(ConfigError, match="resume=True and overwrite=True"):
        train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path, resume=True,
                         overwrite=True)
    assert _sha256(path) == before

    # overwrite=True: a run that diverges before its first checkpoint keeps the old file and
    # does not call it its own last good checkpoint
    class NanLoss(nn.Module):
        def forward(self, logits, y):
            return logits.sum() * float("nan")
    with monkeypatch.context() as m:
        m.setattr(trainer, "make_loss", lambda *a, **k: NanLoss())
        with pytest.raises(TrainingError, match="no checkpoint was written"):
            train_classifier(train, test, cfg, device="cpu", checkpoint_dir=tmp_path,
                             overwrite=True)
    assert _sha256(path) == before
    other = dataclasses.replace(cfg, seed=4)
    train_classifier(train, test, other, device="cpu", checkpoint_dir=tmp_path, overwrite=True)
    assert _sha256(path) != before and load_checkpoint(path)["config"]["seed"] == 4


class _StubTransform:
    """Records what the oracle is given; ``1 - x`` (detectable) or the identity."""

    def __init__(self, invert: bool):
        self.invert, self.batches, self.generators = invert, [], []

    def sample_params(self, n, generator=None):
        self.generators.append(generator)
        return {"u": torch.rand(n, generator=generator)}

    def apply(self, x, params):
        assert params["u"].shape == (x.shape[0],)
        self.batches.append(x.clone())
        return 1.0 - x if self.invert else x


def test_oracle_transforms_every_training_batch(digits_lt, base_run, monkeypatch):
    train, test, _ = digits_lt
    stored = train.images.clone()
    cfg = dataclasses.replace(FAST, oracle="rot")
    for invert in (False, True):
        stub = _StubTransform(invert)
        monkeypatch.setattr(trainer, "get_transform", lambda name: stub)
        run = train_classifier(train, test, cfg, device="cpu")
        assert len(stub.batches) == 3 * 5                    # every step of 3 epochs × 5 batches
        assert sum(len(b) for b in stub.batches) == 3 * len(train)
        assert len({id(g) for g in stub.generators}) == 1 and stub.generators[0] is not None
        pool = to_float(train.images)                        # the oracle sees the raw images
        first = stub.batches[0]
        assert all(any(torch.equal(img, p) for p in pool) for img in first[:4])
        # identity oracle: same batches and init as without it (its draws use their own stream)
        assert same_weights(run.model, base_run.model) == (not invert)
    assert torch.equal(train.images, stored)                 # stored images never modified


def test_real_oracle_changes_training(digits_lt, base_run):
    train, test, _ = digits_lt
    run = train_classifier(train, test, dataclasses.replace(FAST, oracle="bg"), device="cpu")
    assert not same_weights(run.model, base_run.model)
    assert all(math.isfinite(r["train_loss"]) for r in run.history)


def test_nan_loss_raises_training_error(digits_lt, monkeypatch):
    train, test, _ = digits_lt

    class NanLoss(nn.Module):
        def forward(self, logits, y):
            return logits.sum() * float("nan")
    monkeypatch.setattr(trainer, "make_loss", lambda *a, **k: NanLoss())
    with pytest.raises(TrainingError, match="diverged: loss nan at epoch 0, step 0"):
        train_classifier(train, test, FAST, device="cpu")


# -----------------------------------------------------------------------------
# evaluation

class _ConstantModel(nn.Module):
    """Always predicts class ``k``."""

    def __init__(self, n_classes: int, k: int):
        super().__init__()
        self.n_classes = n_classes
        self.bias = nn.Parameter(torch.zeros(n_classes))
        with torch.no_grad():
            self.bias[k] = 5.0

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0 * x.mean()


def test_evaluate_accuracy_and_balanced_accuracy():
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 2)                # class 3 has no image
    data = ImageSet(torch.zeros(10, 28, 28, dtype=torch.uint8), labels, list("abcd"), "toy")
    out = evaluate(_ConstantModel(4, 1), data, batch_size=3)
    assert out["acc"] == pytest.approx(0.2)
    assert out["balanced_acc"] == pytest.approx(1 / 3)                # mean over present classes
    assert out["per_class_acc"][:3] == [0.0, 1.0, 0.0] and math.isnan(out["per_class_acc"][3])
    assert out["n_per_class"] == [6, 2, 2, 0]
    with pytest.raises(DataError, match="predicts 3 classes"):
        evaluate(_ConstantModel(3, 0), data)


def test_predict_proba(base_run, digits_lt):
    _, test, _ = digits_lt
    model = base_run.model
    model.train()
    p8 = predict_proba(model, test.images[:37], batch_size=16)
    assert model.training                                             # mode restored
    pf = predict_proba(model, to_float(test.images[:37]), batch_size=64)
    assert p8.shape == (37, 10) and p8.dtype == torch.float32
    torch.testing.assert_close(p8, pf)
    torch.testing.assert_close(p8.sum(1), torch.ones(37))
    torch.testing.assert_close(predict_proba(model, test.images[:37], log=True).exp(), p8)
    model.eval()
    with pytest.raises(DataError, match="images must be"):
        predict_proba(model, test.images[:4].numpy())
    with pytest.raises(DataError, match="uint8 images must be"):
        predict_proba(model, test.images[0])
    with pytest.raises(ConfigError, match="batch_size"):
        predict_proba(model, test.images[:4], batch_size=0)


# -----------------------------------------------------------------------------
# configuration and bad input

def test_from_profile():
    smoke = ClassifierConfig.from_profile("smoke")
    assert (smoke.model, smoke.epochs, smoke.batch_size) == ("smallcnn", 2, 64)
    paper = ClassifierConfig.from_profile("paper", rule="drs", seed=7)
    assert (paper.model, paper.epochs, paper.batch_size, paper.rule) == ("resnet20", 50, 128,
                                                                         "drs")
    with pytest.raises(ConfigError, match="unknown setting"):
        ClassifierConfig.from_profile("cpu", learning_rate=0.1)
    with pytest.raises(ConfigError, match="unknown profile"):
        ClassifierConfig.from_profile("huge")


@pytest.mark.parametrize("field, value, match", [
    ("model", "resnet18", "ClassifierConfig.model"),
    ("epochs", 0, "ClassifierConfig.epochs"),
    ("batch_size", 2.0, "ClassifierConfig.batch_size"),
    ("lr", -0.1, "ClassifierConfig.lr"),
    ("momentum", 1.0, "ClassifierConfig.momentum"),
    ("lr_steps", (0.8, 0.6), "lr_steps must be increasing"),
    ("lr_factors", (0.01,), "lr_steps must be increasing"),
    ("rule", "smote", "ClassifierConfig.rule"),
    ("loss", "hinge", "ClassifierConfig.loss"),
    ("beta", 1.0, "ClassifierConfig.beta"),
    ("oracle", "blur", "ClassifierConfig.oracle"),
    ("seed", -1, "ClassifierConfig.seed"),
])
def test_bad_config_raises(field, value, match):
    with pytest.raises(ConfigError, match=match):
        ClassifierConfig(**{field: value})


def test_bad_data_raises_before_training(digits_lt):
    train, test, _ = digits_lt
    with pytest.raises(DataError, match="train must be an ImageSet"):
        train_classifier(train.images, test, FAST)
    with pytest.raises(ConfigError, match="cfg must be a ClassifierConfig"):
        train_classifier(train, test, {"epochs": 1})
    other = ImageSet(test.images[:, :20, :20].contiguous(), test.labels, test.classes, "small")
    with pytest.raises(DataError, match="does not match the training set"):
        train_classifier(train, other, FAST)
    no_class_9 = train.subset(torch.nonzero(train.labels != 9).flatten())
    with pytest.raises(DataError, match=r"classes \[9\]"):
        train_classifier(no_class_9, test, dataclasses.replace(FAST, rule="resample"))
