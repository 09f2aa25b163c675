"""ich.optim against PyTorch 1.13 (Debian's python3-torch): BCEWithLogitsLoss,
Adam / AdamW / SGD updates, the three schedulers' lr sequences and
clip_grad_norm_; plus early stopping, config round trips and errors."""

import ctypes
import math

import numpy as np
import pytest

import ich
from ich._lib import lib
from ich.model import _TensorView

torch = pytest.importorskip("torch")

SPEC = "input 1x1x8, flatten, linear 5"


def rng(seed):
    return np.random.default_rng(seed)


def set_grads(model, grads):
    """Write gradients into the model's buffers (ich has no setter: this is
    what backward would leave there)."""
    handle = model._live()
    for i in range(lib.ich_model_tensor_count(handle)):
        view = _TensorView()
        assert lib.ich_model_tensor(handle, i, ctypes.byref(view)) == 0
        name = view.name.decode()
        if name in grads and view.grad:
            array = np.ctypeslib.as_array(view.grad, shape=(view.count,))
            array[:] = np.asarray(grads[name], np.float32).reshape(-1)


def make_pair(seed=0):
    """An ich model and a torch Linear with the same weights."""
    model = ich.Model(SPEC)
    r = rng(seed)
    state = {"fc1.weight": r.uniform(-1, 1, (5, 8)).astype(np.float32),
             "fc1.bias": r.uniform(-1, 1, 5).astype(np.float32)}
    model.load_state_dict(state)
    linear = torch.nn.Linear(8, 5)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(state["fc1.weight"]))
        linear.bias.copy_(torch.from_numpy(state["fc1.bias"]))
    return model, linear


def assert_close_rel(got, want, rtol=1e-6, atol=1e-12):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---- Loss ------------------------------------------------------------------

@pytest.mark.parametrize("use_pw", [False, True])
@pytest.mark.parametrize("use_w", [False, True])
def test_bce_matches_torch(use_pw, use_w):
    r = rng(1)
    x = r.uniform(-10, 10, (7, 6)).astype(np.float32)
    x[0, :4] = [100, -100, 60, -60]
    y = (r.uniform(size=(7, 6)) < 0.4).astype(np.float32)
    y[1] = r.uniform(size=6)  # soft labels
    pw = r.uniform(0.2, 8, 6).astype(np.float32) if use_pw else None
    w = r.uniform(0, 2, (7, 6)).astype(np.float32) if use_w else None
    loss, grad = ich.bce_with_logits(x, y, pos_weight=pw, weight=w)
    tx = torch.from_numpy(x).requires_grad_(True)
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.from_numpy(y), weight=None if w is None else torch.from_numpy(w),
        pos_weight=None if pw is None else torch.from_numpy(pw))
    tloss.backward()
    assert grad.shape == x.shape and grad.dtype == np.float32
    assert math.isfinite(loss)
    assert_close_rel(loss, tloss.item(), rtol=1e-6)
    assert_close_rel(grad, tx.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_bce_errors():
    with pytest.raises(ich.ShapeError):
        ich.bce_with_logits(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ich.ShapeError):
        ich.bce_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=[1, 2])
    with pytest.raises(ich.InvalidArgumentError, match="logits"):
        ich.bce_with_logits(np.array([[np.nan, 0]]), np.zeros((1, 2)))
    loss, grad = ich.bce_with_logits([0.0, 0.0], [1.0, 0.0])  # 1-D: one sample
    assert abs(loss - math.log(2)) < 1e-7 and grad.shape == (2,)


def test_class_weights_balanced():
    labels = ich.Labels(["a", "b"])
    for i, row in enumerate([[1, 0], [0, 1], [0, 1], [0, 0]]):
        labels.add("img%d" % i, row)
    np.testing.assert_array_equal(ich.class_weights_balanced(labels), [3.0, 1.0])
    with pytest.raises(TypeError):
        ich.class_weights_balanced(None)


# ---- Optimizers --------------------------------------------------------------

CASES = [
    ("adam", dict(lr=1e-2), dict(lr=1e-2)),
    ("adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adamw", dict(lr=1e-2), dict(lr=1e-2)),
    ("adamw", dict(lr=5e-2, weight_decay=0.3), dict(lr=5e-2, weight_decay=0.3)),
    ("sgd", dict(lr=0.1), dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01),
     dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
     dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
]
TORCH = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@pytest.mark.parametrize("kind,options,torch_options", CASES)
def test_optimizer_same_gradients_as_torch(kind, options, torch_options):
    """Same weights, same gradients, 5 steps: the same weights (float32
    arithmetic op by op as torch's kernels: equal or within 1e-6)."""
    model, linear = make_pair(2)
    opt = ich.Optimizer(model, kind, **options)
    topt = TORCH[kind](linear.parameters(), **torch_options)
    r = rng(3)
    for step in range(5):
        scale = 10.0 if step == 2 else 0.3
        grads = {"fc1.weight": r.uniform(-scale, scale, (5, 8)).astype(np.float32),
                 "fc1.bias": r.uniform(-scale, scale, 5).astype(np.float32)}
        set_grads(model, grads)
        linear.weight.grad = torch.from_numpy(grads["fc1.weight"].copy())
        linear.bias.grad = torch.from_numpy(grads["fc1.bias"].copy())
        opt.step()
        topt.step()
        state = model.state_dict()
        assert_close_rel(state["fc1.weight"], linear.weight.detach().numpy())
        assert_close_rel(state["fc1.bias"], linear.bias.detach().numpy())
    assert opt.steps == 5
    # the moments equal torch's state
    tstate = topt.state[linear.weight]
    mine = opt.state()
    if kind == "sgd" and "momentum" in options:
        assert_close_rel(mine["optimizer.fc1.weight.momentum_buffer"],
                         tstate["momentum_buffer"].numpy())
    elif kind != "sgd":
        assert_close_rel(mine["optimizer.fc1.weight.exp_avg"], tstate["exp_avg"].numpy())
        assert_close_rel(mine["optimizer.fc1.weight.exp_avg_sq"], tstate["exp_avg_sq"].numpy())
        assert mine["optimizer.fc1.weight.step"][0] == int(tstate["step"].item()) == 5
    else:
        assert mine == {}


@pytest.mark.parametrize("kind,options,torch_options", CASES[::2])
def test_optimizer_threads_do_not_change_the_result(kind, options, torch_options):
    """A parameter big enough to be updated on several threads (120,000
    values; ranges from 65,536 up are split): bit for bit the same weights
    and moments on 1 and on 2 threads, and torch's."""
    spec = "input 1x1x400, flatten, linear 300"
    results = []
    try:
        for threads in (1, 2):
            ich.set_threads(threads)
            model = ich.Model(spec)
            model.init_weights(0)
            linear = torch.nn.Linear(400, 300)
            with torch.no_grad():
                for name, p in linear.named_parameters():
                    p.copy_(torch.from_numpy(model.state_dict()["fc1." + name]))
            opt = ich.Optimizer(model, kind, **options)
            topt = TORCH[kind](linear.parameters(), **torch_options)
            r = rng(5)
            for step in range(3):
                grads = {"fc1.weight": r.uniform(-1, 1, (300, 400)).astype(np.float32),
                         "fc1.bias": r.uniform(-1, 1, 300).astype(np.float32)}
                set_grads(model, grads)
                linear.weight.grad = torch.from_numpy(grads["fc1.weight"].copy())
                linear.bias.grad = torch.from_numpy(grads["fc1.bias"].copy())
                opt.step()
                topt.step()
            state = model.state_dict()
            assert_close_rel(state["fc1.weight"], linear.weight.detach().numpy())
            results.append((state, opt.state()))
    finally:
        ich.set_threads(0)
    (one, one_opt), (two, two_opt) = results
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    for name in one_opt:
        np.testing.assert_array_equal(two_opt[name], one_opt[name], err_msg=name)


def test_adam_training_steps_match_torch():
    """Forward, loss, backward and Adam through the API, 5 steps, beside
    the same steps in torch."""
    model, linear = make_pair(4)
    r = rng(5)
    x = r.normal(size=(6, 8)).astype(np.float32)
    y = (r.uniform(size=(6, 5)) < 0.5).astype(np.float32)
    pw = np.array([1, 2, 3, 0.5, 1], np.float32)
    opt = ich.Optimizer(model, "adam", lr=0.01)
    topt = torch.optim.Adam(linear.parameters(), lr=0.01)
    tloss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(pw))
    model.train()
    for _ in range(5):
        logits = model.forward(x.reshape(6, 1, 1, 8))
        loss, grad = ich.bce_with_logits(logits, y, pos_weight=pw)
        model.zero_grad()
        model.backward(grad)
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(linear(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert_close_rel(loss, tloss.item(), rtol=1e-5)
    state = model.state_dict()
    assert_close_rel(state["fc1.weight"], linear.weight.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert_close_rel(state["fc1.bias"], linear.bias.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_frozen_parameters_are_skipped():
    model, _ = make_pair(6)
    opt = ich.Optimizer(model, "adam", lr=0.1)
    model.freeze("fc1.bias")
    before = model.state_dict()
    set_grads(model, {"fc1.weight": np.ones((5, 8)), "fc1.bias": np.ones(5)})
    opt.step()
    after = model.state_dict()
    np.testing.assert_array_equal(after["fc1.bias"], before["fc1.bias"])
    assert np.all(after["fc1.weight"] < before["fc1.weight"])
    assert opt.state()["optimizer.fc1.bias.step"][0] == 0


def test_optimizer_lr_config_and_errors():
    model, _ = make_pair(7)
    opt = ich.Optimizer(model, "sgd", lr=0.1 / 3, momentum=0.9)
    assert opt.lr == 0.1 / 3
    opt.lr = 0.25
    assert opt.lr == 0.25
    other = ich.Optimizer(model, "sgd", lr=1.0, momentum=0.5)
    other.restore_config(opt.config)
    assert other.config == opt.config and other.lr == 0.25
    with pytest.raises(ich.InvalidArgumentError):
        ich.Optimizer(model, "adam").restore_config(opt.config)
    with pytest.raises(ich.FormatError):
        other.restore_config("kind=sgd lr=oops")
    with pytest.raises(ich.InvalidArgumentError):
        ich.Optimizer(model, "adam", lr=-1)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Optimizer(model, "sgd", nesterov=True)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Optimizer(model, "rmsprop")
    with pytest.raises(TypeError):
        ich.Optimizer("not a model")
    with pytest.raises(ich.InvalidArgumentError):
        opt.lr = -0.5
    assert "sgd" in repr(opt)


def test_clip_grad_norm_matches_torch():
    for max_norm in (0.5, 1e6):
        model, linear = make_pair(8)
        r = rng(9)
        grads = {"fc1.weight": r.normal(size=(5, 8)).astype(np.float32),
                 "fc1.bias": r.normal(size=5).astype(np.float32)}
        set_grads(model, grads)
        linear.weight.grad = torch.from_numpy(grads["fc1.weight"].copy())
        linear.bias.grad = torch.from_numpy(grads["fc1.bias"].copy())
        total = ich.clip_grad_norm(model, max_norm)
        ttotal = torch.nn.utils.clip_grad_norm_(linear.parameters(), max_norm)
        assert_close_rel(total, ttotal.item(), rtol=1e-6)
        mine = model.grads()
        assert_close_rel(mine["fc1.weight"], linear.weight.grad.numpy())
        assert_close_rel(mine["fc1.bias"], linear.bias.grad.numpy())
    with pytest.raises(ich.InvalidArgumentError):
        ich.clip_grad_norm(model, 0)


# ---- Schedules ---------------------------------------------------------------

def torch_lrs(make_scheduler, lr, metrics):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for m in metrics:
        opt.step()
        if m is None:
            sched.step()
        else:
            sched.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


def ich_lrs(kind, lr, metrics, **options):
    model = ich.Model(SPEC)
    opt = ich.Optimizer(model, "sgd", lr=lr)
    sched = ich.Schedule(opt, kind, **options)
    return [sched.step(m) for m in metrics]


def test_plateau_matches_torch():
    r = rng(10)
    metrics = list(np.round(r.uniform(0.5, 1.0, 40), 2).astype(float))
    metrics[:8] = [1.0, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85]
    for mode, factor, patience, threshold, min_lr in [("min", 0.5, 2, 1e-4, 0.0),
                                                       ("min", 0.1, 0, 0.05, 1e-3),
                                                       ("max", 0.3, 1, 1e-3, 1e-4)]:
        want = torch_lrs(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
            o, mode=mode, factor=factor, patience=patience, threshold=threshold,
            min_lr=min_lr), 0.1, metrics)
        got = ich_lrs("plateau", 0.1, metrics, mode=mode, factor=factor, patience=patience,
                      threshold=threshold, min_lr=min_lr)
        assert got == want
        assert len(set(got)) > 2  # the sequence did change


def test_step_and_cosine_match_torch():
    epochs = [None] * 30
    want = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.3),
                     0.2, epochs)
    assert ich_lrs("step", 0.2, epochs, step_size=4, gamma=0.3) == want
    for eta_min in (0.0, 1e-3):
        want = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
            o, T_max=10, eta_min=eta_min), 0.1, epochs)
        got = ich_lrs("cosine", 0.1, epochs, T_max=10, eta_min=eta_min)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_schedule_config_and_errors():
    model = ich.Model(SPEC)
    opt = ich.Optimizer(model, "sgd", lr=0.1)
    sched = ich.Schedule(opt, "plateau", patience=1, factor=0.5)
    for m in (1.0, 1.0, 1.0):
        sched.step(m)
    assert opt.lr == 0.05
    copy = ich.Schedule(ich.Optimizer(model, "sgd", lr=0.1), "plateau")
    copy.restore_config(sched.config)
    assert copy.config == sched.config
    with pytest.raises(ich.InvalidArgumentError):
        sched.step()
    with pytest.raises(ich.InvalidArgumentError):
        ich.Schedule(opt, "plateau", factor=2.0)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Schedule(opt, "linear")
    with pytest.raises(TypeError):
        ich.Schedule(opt, "step", warmup=3)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Schedule(opt, "step").restore_config(sched.config)


# ---- Early stopping -----------------------------------------------------------

def test_early_stopping():
    early = ich.EarlyStopping(patience=2, min_delta=0.01)
    assert math.isnan(early.best) and early.best_epoch == -1
    assert early.update(1.0) == (True, False)
    assert early.update(0.995) == (False, False)
    resumed = ich.EarlyStopping(patience=5)
    resumed.restore_config(early.config)
    for e in (early, resumed):
        assert e.update(0.9) == (True, False)
        assert e.update(0.95) == (False, False)
        assert e.update(0.91) == (False, True)
        assert e.best == 0.9 and e.best_epoch == 2
    high = ich.EarlyStopping(patience=1, maximize=True)
    assert high.update(0.5) == (True, False)
    assert high.update(0.4) == (False, True)
    with pytest.raises(ich.InvalidArgumentError):
        ich.EarlyStopping(patience=-1)
    with pytest.raises(ich.FormatError):
        high.restore_config("patience=x")
