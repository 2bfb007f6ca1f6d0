"""RemoteOptimizer(overlap="backward"): gradients streamed during backward, the same trajectory
bit for bit as without overlap (and as local torch), and a correct fallback whenever the streamed
request cannot be the exact step."""

from __future__ import annotations

import copy
import threading

import pytest

torch = pytest.importorskip("torch")

from optimizerd.torch import RemoteOptimizer  # noqa: E402

STEPS = 8


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 3),
    )


def batch(step):
    generator = torch.Generator().manual_seed(100 + step)
    return torch.randn(16, 6, generator=generator), torch.randn(16, 3, generator=generator)


def run(model, opt, steps=STEPS, between=None, backwards=1, scheduler=None):
    """The usual loop; ``between(step, model, opt)`` runs after backward and before step()."""
    for step in range(steps):
        opt.zero_grad()
        for _ in range(backwards):
            x, y = batch(step)
            torch.nn.functional.mse_loss(model(x), y).backward()
        if between is not None:
            between(step, model, opt)
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return [p.detach().clone() for p in model.parameters()]


def three(daemon, hyperparameters, optimizer="adam", torch_class="Adam", **remote_options):
    base = make_model()
    models = [copy.deepcopy(base) for _ in range(3)]
    local = getattr(torch.optim, torch_class)(models[0].parameters(), **hyperparameters)
    plain = RemoteOptimizer(
        models[1].named_parameters(), url=daemon.url, optimizer=optimizer, **hyperparameters, **remote_options
    )
    streamed = RemoteOptimizer(
        models[2].named_parameters(),
        url=daemon.url,
        optimizer=optimizer,
        overlap="backward",
        **hyperparameters,
        **remote_options,
    )
    return models, (local, plain, streamed)


def assert_bitwise(a, b):
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    "optimizer, torch_class, hyperparameters, options",
    [
        ("adam", "Adam", {"lr": 0.01}, {}),
        ("adamw", "AdamW", {"lr": 0.01, "weight_decay": 0.1}, {"wire_dtype": "bf16"}),
        ("sgd", "SGD", {"lr": 0.05, "momentum": 0.9}, {"clip_grad_norm": 0.5}),
    ],
    ids=["adam", "adamw-bf16", "sgd-clipped"],
)
def test_streamed_steps_follow_the_plain_trajectory_bit_for_bit(
    daemon, optimizer, torch_class, hyperparameters, options
):
    models, (local, plain, streamed) = three(daemon, hyperparameters, optimizer, torch_class, **options)
    results = [run(model, opt) for model, opt in zip(models[1:], (plain, streamed))]
    assert_bitwise(results[0], results[1])
    assert streamed._stream.streamed == STEPS - 1  # the first step learns the order
    assert streamed.session.last_step == STEPS and streamed.last_metadata["step"] == STEPS
    if not options:  # local torch on the same gradients
        for x, y in zip(run(models[0], local), results[1]):
            torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)


def clip(step, model, opt):
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)


def change_lr_late(step, model, opt):
    if step % 3 == 2:
        for group in opt.param_groups:
            group["lr"] *= 0.5


def freeze_first_layer_sometimes(step, model, opt):
    if step % 3 == 1:
        model[0].weight.grad = None


@pytest.mark.parametrize(
    "between, backwards",
    [(clip, 1), (change_lr_late, 1), (freeze_first_layer_sometimes, 1), (None, 2)],
    ids=["clipped-after-backward", "lr-changed-after-backward", "missing-grad", "accumulated"],
)
def test_fallbacks_keep_the_trajectory_exact(daemon, between, backwards):
    models, (_, plain, streamed) = three(daemon, {"lr": 0.01})
    results = [
        run(model, opt, between=between, backwards=backwards)
        for model, opt in zip(models[1:], (plain, streamed))
    ]
    assert_bitwise(results[0], results[1])
    assert streamed.session.last_step == STEPS
    if between is clip or backwards == 2:
        assert streamed._stream.streamed == 0
    if between is freeze_first_layer_sometimes:
        assert 0 < streamed._stream.streamed < STEPS - 1


def test_an_upload_abandoned_before_its_thread_connects_leaves_the_next_one_working(daemon):
    """abandon() can close the connection before the sender thread opens it; the thread then opens
    a fresh one, writes the request head and stops. That connection must not be kept mid-request
    (the next streamed step's request was refused with CannotSendRequest, falling back)."""
    models, (_, plain, streamed) = three(daemon, {"lr": 0.01})
    run(models[2], streamed, steps=1)  # learns the order
    stream = streamed._stream
    connection = stream.connection
    closed, opened = threading.Event(), connection.open

    def open_after_the_close():
        closed.wait(10)
        return opened()

    def close_and_tell():
        type(connection).close(connection)
        closed.set()

    connection.open, connection.close = open_after_the_close, close_and_tell
    stream._start()
    stream.upload.abandon()
    del connection.open, connection.close
    assert stream.upload.error is not None
    assert connection._http is None  # not kept mid-request
    stream._reset()
    run(models[2], streamed, steps=1)  # step 2 (batch 0 again), streamed
    assert stream.streamed == 1
    for _ in range(2):
        run(models[1], plain, steps=1)
    assert_bitwise(list(models[1].parameters()), list(models[2].parameters()))


def test_a_scheduler_between_steps_is_patched_before_the_stream(daemon):
    models, (local, plain, streamed) = three(daemon, {"lr": 0.02})
    schedulers = [
        torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) for opt in (local, plain, streamed)
    ]
    results = [run(m, o, scheduler=s) for m, o, s in zip(models, (local, plain, streamed), schedulers)]
    assert_bitwise(results[1], results[2])
    assert streamed._stream.streamed == STEPS - 1
    for x, y in zip(results[0], results[2]):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)


def test_overlap_rejects_what_it_cannot_stream(daemon):
    model = make_model()
    with pytest.raises(ValueError, match="overlap"):
        RemoteOptimizer(model.parameters(), url=daemon.url, optimizer="momo", overlap="backward", lr=1.0)
    with pytest.raises(ValueError, match="overlap"):
        RemoteOptimizer(model.parameters(), url=daemon.url, overlap="sideways")


def delayed_reference(model, hyperparameters, steps, gamma):
    """Local torch with the same one-step delay: gradients of iteration t are computed on the
    model (θ_{t-1}); the model then takes the master's θ_t, and the master steps to θ_{t+1}."""
    master = copy.deepcopy(model)
    opt = torch.optim.Adam(master.parameters(), **hyperparameters)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=gamma)
    for step in range(steps):
        model.zero_grad()
        x, y = batch(step)
        torch.nn.functional.mse_loss(model(x), y).backward()
        with torch.no_grad():
            for p, q in zip(model.parameters(), master.parameters()):
                grad = p.grad.clone()
                p.copy_(q)
                q.grad = grad
        opt.step()
        scheduler.step()
    return [p.detach().clone() for p in model.parameters()], master


def test_delayed_update_follows_a_local_one_step_delay(daemon):
    hyperparameters = {"lr": 0.02}
    base = make_model()
    reference, master = delayed_reference(copy.deepcopy(base), hyperparameters, STEPS, gamma=0.5)
    model = copy.deepcopy(base)
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, overlap="delayed", **hyperparameters)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    for step in range(STEPS):
        x, y = batch(step)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=False)  # zeroes the gradients in place while the step is in flight
        scheduler.step()
        assert opt.last_metadata.get("step", 0) == step  # the telemetry of the step collected
    for x, y in zip(reference, (p.detach() for p in model.parameters())):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)
    state = opt.state_dict()  # waits for the step in flight: one step ahead of the model
    assert state["optimizerd"]["step"] == STEPS
    opt.flush()
    assert opt.last_metadata["step"] == STEPS
    for x, y in zip(master.parameters(), model.parameters()):
        torch.testing.assert_close(y.detach(), x.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unscale_first", [False, True], ids=["scaler-step", "unscale-clip-step"])
def test_grad_scaler_with_overlap_follows_torch(daemon, unscale_first):
    """torch.amp.GradScaler unscales gradients in place without bumping their version counters,
    so a streamed request would carry the scaled bytes; the scaler now hands the step its scale
    (or, after `unscale_`, the step sends the unscaled gradients as usual), and skips the step when
    it found infinities. The trajectory is torch's SGD under the same scaler."""
    import time

    def train(model, opt) -> None:
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        for step in range(4):
            x, y = batch(step)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            if step == 2:
                loss = loss * float("inf")  # an overflowing step: skipped, the scale lowered
            scaler.scale(loss).backward()
            time.sleep(0.05)  # work after backward: the streamed bytes are all out by now
            if unscale_first:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            scaler.step(opt)
            scaler.update()

    reference = make_model()
    train(reference, torch.optim.SGD(reference.parameters(), lr=0.1))
    model = make_model()
    opt = RemoteOptimizer(
        model.named_parameters(), url=daemon.url, optimizer="sgd", lr=0.1, overlap="backward"
    )
    train(model, opt)
    for (name, a), b in zip(reference.named_parameters(), model.parameters()):
        assert torch.allclose(b, a, rtol=1e-5, atol=1e-6), name
    assert opt.session.summary()["step"] == 3  # the overflowing step was not sent
