"""ich.train and ich.evaluate on a tiny phantom (32 x 32 slices) with a
small model, one compute thread."""
import csv

import numpy as np
import pytest

import ich

SPEC = ("input 3x32x32, conv 16 3 pad 1, batchnorm, relu, maxpool 2, conv 32 3 pad 1, "
        "batchnorm, relu, maxpool 16, flatten, linear 6")
COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    ich._cdll.ich_set_threads(1)
    folder = tmp_path_factory.mktemp("phantom")
    ich.write_phantom(folder, patients=6, slices=8, size=32, seed=4, prevalence=1.0, threads=2)
    return folder


def dataset(phantom, **kw):
    options = dict(window="blood,brain,bone", size=32, batch_size=8, seed=3, workers=0)
    options.update(kw)
    return ich.Dataset(str(phantom / "labels.csv"), str(phantom / "images"), **options)


def model(seed=1, spec=SPEC):
    m = ich.Model(spec)
    m.init_weights(seed)
    return m


def test_train_learns_and_returns_the_history(phantom, tmp_path):
    m = model()
    opt = ich.Optimizer(m, "adam", lr=0.003)
    reports = []
    with dataset(phantom) as train, dataset(phantom, shuffle=False) as val:
        history = ich.train(m, opt, train, val, epochs=12, schedule=False,
                            checkpoint_dir=tmp_path, progress=reports.append)
        loss, accuracy = ich.evaluate(m, val)
    assert len(history) == 12 and list(history[0]) == COLUMNS
    assert [h["epoch"] for h in history] == list(range(12))
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert loss == pytest.approx(history[-1]["val_loss"], rel=1e-12)
    assert accuracy == pytest.approx(history[-1]["val_accuracy"], rel=1e-12)
    assert all(h["lr"] == pytest.approx(0.003) for h in history)
    # the progress callback saw every batch of both phases and every epoch
    phases = [r["phase"] for r in reports]
    assert phases.count("epoch") == 12
    assert phases.count("train") == 12 * 6 and phases.count("validate") == 12 * 6
    assert reports[-1]["stats"] == history[-1]
    assert all(r["stats"] is None for r in reports if r["phase"] != "epoch")
    # history.csv holds the same rows
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS and len(rows) == 12
    for row, h in zip(rows, history):
        assert float(row["val_loss"]) == h["val_loss"]
    # the loaded best checkpoint gives the best epoch's validation loss
    best = min(history, key=lambda h: h["val_loss"])
    with ich.Model.load(tmp_path / "best.safetensors") as saved, dataset(phantom) as val:
        assert ich.evaluate(saved, val)[0] == pytest.approx(best["val_loss"], rel=1e-6)


def test_resume_is_bit_exact(phantom, tmp_path):
    def run(epochs, out, resume=None, seed=1):
        m = model(seed)
        opt = ich.Optimizer(m, "adam", lr=0.003)
        with dataset(phantom, workers=2) as train:
            history = ich.train(m, opt, train, epochs=epochs, checkpoint_dir=out, resume=resume,
                                balanced=True, clip_norm=5.0)
        return m.state_dict(), history

    straight, h2 = run(2, tmp_path / "a")
    run(1, tmp_path / "b")
    resumed, hr = run(2, tmp_path / "c", resume=tmp_path / "b" / "last.safetensors", seed=7)
    assert list(straight) == list(resumed)
    for name in straight:
        assert np.array_equal(straight[name], resumed[name]), name
    for a, b in zip(h2, hr):
        assert (a["epoch"], a["train_loss"], a["train_accuracy"], a["lr"]) == \
            (b["epoch"], b["train_loss"], b["train_accuracy"], b["lr"])


def test_schedule_cancel_and_errors(phantom):
    m = model()
    opt = ich.Optimizer(m, "sgd", lr=0.1)
    with dataset(phantom) as train:
        history = ich.train(m, opt, train, epochs=3,
                            schedule={"kind": "step", "step_size": 1, "gamma": 0.5})
        assert [h["lr"] for h in history] == pytest.approx([0.1, 0.05, 0.025])
        assert all(h["val_loss"] is None and h["val_accuracy"] is None for h in history)

        with pytest.raises(ich.CancelledError, match="cancelled"):
            ich.train(m, opt, train, epochs=2, progress=lambda p: p["batch"] == 2)

        class Boom(Exception):
            pass

        def explode(report):
            raise Boom()

        with pytest.raises(Boom):
            ich.train(m, opt, train, epochs=1, progress=explode)

        with pytest.raises(ich.ShapeError, match="1x32x32"):
            gray = model(spec="input 1x32x32, conv 4 3, relu, gap, linear 6")
            ich.train(gray, ich.Optimizer(gray, "sgd"), train, epochs=1)
        with pytest.raises(ich.ShapeError):
            ich.train(m, opt, train, pos_weight=[1.0, 2.0])
        with pytest.raises(ich.NotFoundError):
            ich.train(m, opt, train, epochs=1, resume="/nonexistent/last.safetensors")
        with pytest.raises(ich.InvalidArgumentError):
            ich.train(m, opt, train, epochs=-1)
        with pytest.raises(TypeError):
            ich.train(m, opt, "not a dataset")
        with pytest.raises(TypeError):
            ich.train(m, opt, train, schedule="plateau")


def test_history_extras(phantom):
    """ich.train's result also says the best epoch, whether early stopping
    ended the run, and gives the history as the CSV text of history.csv."""
    m = model()
    opt = ich.Optimizer(m, "adam", lr=0.003)
    with dataset(phantom) as train, dataset(phantom, shuffle=False) as val:
        assert train.batch_size == 8
        history = ich.train(m, opt, train, val, epochs=3, schedule=False)
    assert isinstance(history, ich.History) and len(history) == 3
    best = min(range(3), key=lambda i: history[i]["val_loss"])
    assert history.best_epoch == best and history.stopped_early is False
    rows = list(csv.DictReader(history.csv.splitlines()))
    assert list(rows[0]) == COLUMNS and len(rows) == 3
    assert [float(r["train_loss"]) for r in rows] == [h["train_loss"] for h in history]


def test_accuracy_uses_the_metrics_rule(phantom):
    """Training accuracy predicts 1 when the float32 probability is > 0.5,
    as ich.Metrics does: a logit of 1e-8 (probability exactly 0.5) is 0."""
    m = ich.Model("input 3x32x32, flatten, linear 6")
    m.init_weights(1)
    state = m.state_dict()
    state["fc1.weight"][...] = 0
    state["fc1.bias"][...] = np.float32(1e-8)
    m.load_state_dict(state)
    with dataset(phantom) as ds:
        y = np.concatenate([batch[1] for batch in ds.batches(epoch=0)])
        _, accuracy = ich.evaluate(m, ds)
        x, _ = ds.get(0)
    probs = m.predict(x[None])
    assert np.all(probs == 0.5)
    metrics = ich.Metrics(logits=True, bootstrap=0)
    metrics.update(np.full(y.shape, 1e-8, dtype=np.float32), y)
    expected = np.mean(y < 0.5)  # every element predicted 0
    assert 0 < expected < 1  # so "logit > 0" would give a different number
    assert accuracy == pytest.approx(expected, abs=1e-12)
    assert metrics.compute()["accuracy_overall"] == pytest.approx(expected, abs=1e-12)


CASCADE = ("input 3x32x32, cascade(any: conv 4 3 pad 1, batchnorm, relu, maxpool 2, gap, "
           "linear 1 | subtype: conv 4 3 pad 1, batchnorm, relu, maxpool 2, gap, linear 5)")


def changed(before, after, prefix):
    return any(not np.array_equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_cascade_trains_in_stages(phantom, tmp_path):
    """A cascade trains stage one ("any", every image) then stage two (the
    subtypes, any-positive images only): warm-up moves only the stage's
    head, fine-tuning runs at factor x the lr; the history, progress and
    history.csv say the stage; Dataset.set_positive_only restricts the same
    way; staged=False trains jointly."""
    m = model(2, CASCADE)
    start = {k: v.copy() for k, v in m.state_dict().items()}
    opt = ich.Optimizer(m, "adam", lr=0.01)
    reports = []
    with dataset(phantom) as train:
        positives = int((train.labels.values[:, 0] >= 0.5).sum())
        history = ich.train(m, opt, train, epochs=2, warmup_epochs=1, schedule=False,
                            finetune_lr_factor=0.25, checkpoint_dir=tmp_path,
                            progress=reports.append)
        assert train.positive_only is None and len(train) == 48
    assert [h["stage"] for h in history] == [0, 0, 1, 1]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.0025, 0.01, 0.0025])
    train_reports = [r for r in reports if r["phase"] == "train"]
    assert {r["stages"] for r in reports} == {2}
    assert max(r["batches"] for r in train_reports if r["stage"] == 0) == 6
    assert max(r["batches"] for r in train_reports if r["stage"] == 1) == (positives + 7) // 8
    assert 0 < positives < 48
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS + ["stage"]
    assert [r["stage"] for r in rows] == ["0", "0", "1", "1"]
    after = m.state_dict()
    assert changed(start, after, "any.") and changed(start, after, "subtype.")

    # stage one alone, warm-up only: of the parameters only the "any" head
    # moves (the frozen backbone's batch-norm running statistics follow the
    # data, as with PyTorch's requires_grad=False in training mode)
    m = model(2, CASCADE)
    opt = ich.Optimizer(m, "adam", lr=0.01)
    with dataset(phantom) as train:
        ich.train(m, opt, train, epochs=1, warmup_epochs=1, stage_epochs=(1, -1))
    after = m.state_dict()
    assert changed(start, after, "any.fc1.")
    assert not changed(start, after, "any.conv1.")
    assert not changed(start, after, "any.bn1.weight") and not changed(start, after, "any.bn1.bias")
    assert changed(start, after, "any.bn1.running_mean")
    assert not changed(start, after, "subtype.")
    # then stage two alone: only "subtype." moves
    mid = {k: v.copy() for k, v in after.items()}
    with dataset(phantom) as train:
        history = ich.train(m, opt, train, epochs=1, stage_epochs=(-1, 1), staged=True)
    after = m.state_dict()
    assert history[0]["stage"] == 1
    assert not changed(mid, after, "any.") and changed(mid, after, "subtype.conv1.")

    # joint training: no stage, both heads warm up
    m = model(2, CASCADE)
    opt = ich.Optimizer(m, "adam", lr=0.01)
    with dataset(phantom) as train:
        history = ich.train(m, opt, train, epochs=1, warmup_epochs=1, staged=False)
    after = m.state_dict()
    assert "stage" not in history[0]
    assert changed(start, after, "any.fc1.") and changed(start, after, "subtype.fc1.")
    assert not changed(start, after, "any.conv1.") and not changed(start, after, "subtype.conv1.")

    # bad options
    with dataset(phantom) as train:
        with pytest.raises(ich.InvalidArgumentError):
            ich.train(model(), ich.Optimizer(model(), "sgd"), train, staged=True, epochs=1)
        with pytest.raises(ich.InvalidArgumentError, match="stage_epochs"):
            ich.train(m, opt, train, stage_epochs=(1, 2, 3))
        with pytest.raises(ich.InvalidArgumentError, match="stage_epochs"):
            ich.train(m, opt, train, stage_epochs=(1, -2))
        with pytest.raises(ich.InvalidArgumentError, match="finetune_lr_factor"):
            ich.train(m, opt, train, finetune_lr_factor=0.0)
