"""RemoteOptimizer as a drop-in for torch.optim: trajectories match torch step for step."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optimizerd  # noqa: E402
from client_reference import Momo, MTAdam  # noqa: E402
from optimizerd.torch import RemoteOptimizer  # noqa: E402

STEPS = 15


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def make_data(seed=1, n=32):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=generator), torch.randn(n, 3, generator=generator)


def assert_same_parameters(local, remote, rtol=1e-5, atol=1e-6, step=None):
    for (name, a), (_, b) in zip(local.named_parameters(), remote.named_parameters()):
        np.testing.assert_allclose(
            b.detach().numpy(), a.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{name} at step {step}"
        )


def train_both(local_model, local_opt, remote_model, remote_opt, steps=STEPS, scheduler=None):
    x, y = make_data()
    losses = []
    for step in range(steps):
        pair = []
        for model, opt in ((local_model, local_opt), (remote_model, remote_opt)):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            pair.append(loss.item())
        losses.append(pair)
        if scheduler is not None:
            for s in scheduler:
                s.step()
        assert_same_parameters(local_model, remote_model, step=step)
    return losses


def train(model, opt, steps):
    x, y = make_data()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(
    "optimizer, torch_class, hyperparameters",
    [
        ("adam", "Adam", {"lr": 0.01}),
        ("adam", "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01, "amsgrad": True}),
        ("adamw", "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
        ("sgd", "SGD", {"lr": 0.05}),
        ("sgd", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ],
    ids=["adam", "adam-amsgrad-l2", "adamw", "sgd", "sgd-nesterov"],
)
def test_trajectory_matches_torch(daemon, optimizer, torch_class, hyperparameters):
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)
    local_opt = getattr(torch.optim, torch_class)(local_model.parameters(), **hyperparameters)
    remote_opt = RemoteOptimizer(
        remote_model.named_parameters(), url=daemon.url, optimizer=optimizer, **hyperparameters
    )
    losses = train_both(local_model, local_opt, remote_model, remote_opt)
    for local_loss, remote_loss in losses:
        assert remote_loss == pytest.approx(local_loss, rel=1e-5)
    assert losses[-1][1] < losses[0][1]
    assert remote_opt.session.last_step == STEPS and remote_opt.last_metadata["step"] == STEPS


def test_remote_optimizer_is_reachable_from_the_package_root():
    assert optimizerd.RemoteOptimizer is RemoteOptimizer
    assert issubclass(RemoteOptimizer, torch.optim.Optimizer)


def test_parameter_names_and_uploaded_values(daemon):
    model = make_model()
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="adam")
    summary = opt.session.summary()
    assert [p["name"] for p in summary["parameters"]] == [name for name, _ in model.named_parameters()]
    downloaded = opt.session.parameters()
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(downloaded[name], p.detach().numpy())
    plain = RemoteOptimizer(make_model().parameters(), url=daemon.url)
    assert [p["name"] for p in plain.session.summary()["parameters"]] == ["p0", "p1", "p2", "p3"]
    # Defaults filled in from the daemon, as torch's optimizers show them.
    group = plain.param_groups[0]
    assert group["lr"] == 1e-3 and tuple(group["betas"]) == (0.9, 0.999)


def test_param_groups_and_scheduler_match_torch(daemon):
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)

    def groups(model):
        return [
            {"params": [model[0].weight, model[2].weight]},
            {"params": [model[0].bias, model[2].bias], "lr": 0.2, "momentum": 0.5},
        ]

    local_opt = torch.optim.SGD(groups(local_model), lr=0.05, momentum=0.9)
    remote_opt = RemoteOptimizer(groups(remote_model), url=daemon.url, optimizer="sgd", lr=0.05, momentum=0.9)
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (local_opt, remote_opt)]
    train_both(local_model, local_opt, remote_model, remote_opt, steps=8, scheduler=schedulers)
    summary = remote_opt.session.summary()
    # Every local group is a daemon group; the session's own values are the constructor's.
    assert summary["hyperparameters"]["lr"] == pytest.approx(0.05)
    assert summary["groups"][0]["hyperparameters"]["lr"] == pytest.approx(0.05 * 0.5**2)
    assert summary["groups"][0]["members"] == ["p0", "p1"]
    assert summary["groups"][1]["hyperparameters"]["lr"] == pytest.approx(0.2 * 0.5**2)
    assert summary["groups"][1]["members"] == ["p2", "p3"]


def test_a_group_without_a_hyperparameter_takes_the_default_not_the_first_groups(daemon):
    """torch fills a group's missing keys from the constructor's values, else the optimizer's
    defaults: AdamW's weight_decay 0.01 and Adam's lr 1e-3 here, not the first group's."""
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)

    def groups(model, named):
        def entry(name, p):
            return (name, p) if named else p

        return [
            {"params": [entry("0.weight", model[0].weight)], "weight_decay": 0.5},
            {"params": [entry("0.bias", model[0].bias), entry("2.bias", model[2].bias)], "weight_decay": 0.0},
            {"params": [entry("2.weight", model[2].weight)]},
        ]

    local_opt = torch.optim.AdamW(groups(local_model, False), lr=0.05)
    remote_opt = RemoteOptimizer(groups(remote_model, True), url=daemon.url, optimizer="adamw", lr=0.05)
    assert [g["weight_decay"] for g in remote_opt.param_groups] == [0.5, 0.0, 0.01]
    train_both(local_model, local_opt, remote_model, remote_opt, steps=3)
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    remote = RemoteOptimizer([{"params": [("a", a)], "lr": 0.05}, {"params": [("b", b)]}], url=daemon.url)
    assert [g["lr"] for g in remote.param_groups] == [0.05, 0.001]


def test_closure_and_skipped_parameters(daemon):
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)
    local_opt = torch.optim.Adam(local_model.parameters(), lr=0.01)
    remote_opt = RemoteOptimizer(remote_model.named_parameters(), url=daemon.url, optimizer="adam", lr=0.01)
    x, y = make_data()
    for step in range(4):
        for model, opt in ((local_model, local_opt), (remote_model, remote_opt)):
            model[2].bias.requires_grad_(step % 2 == 0)  # no grad on odd steps: skipped by both

            def closure(model=model, opt=opt):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            result = opt.step(closure)
            assert isinstance(result, torch.Tensor)
        assert_same_parameters(local_model, remote_model, step=step)


def test_wire_bf16_matches_torch_fed_rounded_gradients(daemon):
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)
    local_opt = torch.optim.Adam(local_model.parameters(), lr=0.01)
    remote_opt = RemoteOptimizer(
        remote_model.named_parameters(),
        url=daemon.url,
        optimizer="adam",
        lr=0.01,
        wire_dtype="bf16",
        compress=True,
    )
    x, y = make_data()
    for step in range(5):
        for model, opt in ((local_model, local_opt), (remote_model, remote_opt)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            if opt is local_opt:
                for p in model.parameters():
                    p.grad = p.grad.to(torch.bfloat16).to(torch.float32)
            opt.step()
        assert_same_parameters(local_model, remote_model, step=step)


def test_attach_to_existing_session_resumes(daemon):
    model = make_model()
    reference = copy.deepcopy(model)
    x, y = make_data()
    ref_opt = torch.optim.Adam(reference.parameters(), lr=0.01)
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="adam", lr=0.01)
    for m, o in ((reference, ref_opt), (model, opt)):
        for _ in range(3):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    session_id, token = opt.session.id, opt.session.token
    # A new trainer process: fresh model (wrong values), attaches by id and token.
    fresh = make_model(seed=99)
    resumed = RemoteOptimizer(fresh.named_parameters(), url=daemon.url, session=session_id, token=token)
    assert resumed.session.last_step == 3 and resumed.optimizer_name == "adam"
    assert resumed.param_groups[0]["lr"] == 0.01
    assert_same_parameters(model, fresh)  # values came from the daemon
    for m, o in ((reference, ref_opt), (fresh, resumed)):
        for _ in range(2):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    assert_same_parameters(reference, fresh)
    # Session options given when attaching are applied; the number of MTAdam terms cannot change.
    again = RemoteOptimizer(
        fresh.named_parameters(), url=daemon.url, session=resumed.session, clip_grad_norm=5.0
    )
    assert again.session.summary()["hyperparameters"]["clip_grad_norm"] == 5.0
    with pytest.raises(ValueError, match="loss terms"):
        RemoteOptimizer(fresh.named_parameters(), session=resumed.session, terms=2)


def test_state_dict_round_trip(daemon, checkpoint_routes):
    model = make_model()
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="adam", lr=0.01)
    train(model, opt, 3)
    saved_model = copy.deepcopy(model.state_dict())
    saved = opt.state_dict()
    assert saved["optimizerd"]["session_id"] == opt.session.id and saved["optimizerd"]["step"] == 3
    assert isinstance(saved["optimizerd"]["checkpoint"], bytes)
    train(model, opt, 2)  # the trajectory to reproduce
    # Another model/optimizer (a new session) loads the saved state and makes the same 2 steps.
    other = make_model(seed=5)
    other_opt = RemoteOptimizer(other.named_parameters(), url=daemon.url, optimizer="adam", lr=0.5)
    other_opt.load_state_dict(saved)
    assert other_opt.param_groups[0]["lr"] == 0.01 and other_opt.session.last_step == 3
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved_model[name].numpy())
    train(other, other_opt, 2)
    assert_same_parameters(model, other, rtol=0, atol=0)


def test_momo_step_sends_the_loss(daemon):
    model = make_model()
    start = {name: p.detach().numpy().astype(np.float64) for name, p in model.named_parameters()}
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="momo")
    x, y = make_data()
    reference = Momo()
    expected = start
    sent = []
    for _ in range(4):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
        with pytest.raises(ValueError, match="loss"):
            opt.step()
        opt.step(loss=loss)
        expected = reference.step(expected, grads, loss.item())
        assert opt.last_metadata["lr"] == pytest.approx(reference.last_tau, rel=1e-4)
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.detach().numpy(), expected[name], rtol=1e-4, atol=1e-5)
        sent.append(loss.item())
    assert [r["loss"] for r in opt.session.history()["records"]] == pytest.approx(sent, rel=1e-6)


def test_momo_closure_loss_is_sent(daemon):
    model = make_model()
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="momo")
    x, y = make_data()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert opt.session.history()["records"][0]["loss"] == pytest.approx(loss.item(), rel=1e-6)


def test_step_terms_sends_each_terms_gradients(daemon):
    model = make_model()
    start = {name: p.detach().numpy().astype(np.float64) for name, p in model.named_parameters()}
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="mtadam", lr=0.01, terms=3)
    x, y = make_data()
    reference = MTAdam(terms=3, lr=0.01)
    expected = start
    names = [name for name, _ in model.named_parameters()]
    for _ in range(3):
        out = model(x)
        losses = [
            torch.nn.functional.mse_loss(out, y),
            100.0 * out.abs().mean(),
            0.01 * model[0].weight.pow(2).sum(),  # does not depend on the other parameters
        ]
        terms = []
        for loss in losses:
            grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True, allow_unused=True)
            terms.append(
                {
                    n: (g.numpy() if g is not None else np.zeros(p.shape, np.float32))
                    for n, g, p in zip(names, grads, model.parameters())
                }
            )
        values = opt.step_terms(losses)
        assert values == pytest.approx([loss.item() for loss in losses])
        expected = reference.step(expected, terms)
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.detach().numpy(), expected[name], rtol=1e-5, atol=1e-6)
        for name in names:
            np.testing.assert_allclose(
                opt.last_metadata["term_weights"][name], reference.last_weights[name], rtol=1e-5
            )
    record = opt.session.history()["records"][-1]
    assert record["loss"] == pytest.approx(sum(values), rel=1e-6)
    for p in model.parameters():
        assert p.grad is None  # step_terms does not touch p.grad


def test_usage_errors(daemon):
    model = make_model()
    with pytest.raises(ValueError, match="url"):
        RemoteOptimizer(model.parameters())
    mt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="mtadam", terms=2)
    with pytest.raises(ValueError, match="step_terms"):
        mt.step()
    with pytest.raises(ValueError, match="2 loss terms"):
        mt.step_terms([model[0].weight.sum()])
    adam = RemoteOptimizer(make_model().named_parameters(), url=daemon.url)
    with pytest.raises(ValueError, match="mtadam"):
        adam.step_terms([torch.tensor(1.0)])
    with pytest.raises(optimizerd.BadRequest, match="lr"):
        RemoteOptimizer(make_model().parameters(), url=daemon.url, lr=-1.0)
    momo = RemoteOptimizer(make_model().named_parameters(), url=daemon.url, optimizer="momo")
    with pytest.raises(ValueError, match="every parameter"):
        momo.step(loss=1.0)  # no gradients at all: momo needs all of them


def test_add_param_group_after_construction(daemon):
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)
    local_opt = torch.optim.SGD(local_model[0].parameters(), lr=0.1)
    remote_opt = RemoteOptimizer(
        list(remote_model[0].named_parameters()), url=daemon.url, optimizer="sgd", lr=0.1
    )
    local_opt.add_param_group({"params": local_model[2].parameters(), "lr": 0.3})
    remote_opt.add_param_group({"params": list(remote_model[2].named_parameters(prefix="head")), "lr": 0.3})
    summary = remote_opt.session.summary()
    assert [p["name"] for p in summary["parameters"]] == ["weight", "bias", "head.weight", "head.bias"]
    train_both(local_model, local_opt, remote_model, remote_opt, steps=3)
    assert remote_opt.session.summary()["groups"][0]["hyperparameters"]["lr"] == pytest.approx(0.3)


def test_state_dict_plumbing_without_checkpoint_routes(daemon, monkeypatch):
    """What state_dict/load_state_dict send and receive, with the checkpoint calls stubbed (this
    runs even when the daemon has no checkpoint routes yet)."""
    model = make_model()
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="sgd", lr=0.1)
    calls = []
    monkeypatch.setattr(opt.session, "checkpoint", lambda compress=False: b"checkpoint-bytes")

    def restore(blob, compress=False):
        calls.append(blob)
        # As if the checkpoint held parameters of 0.5 and lr 0.25: the daemon now has those.
        opt.session.upload_parameters(
            {name: np.full(p.shape, 0.5, np.float32) for name, p in model.named_parameters()}
        )
        opt.session.patch(lr=0.25)
        return opt.session.summary()

    monkeypatch.setattr(opt.session, "restore", restore)
    opt.param_groups[0]["lr"] = 0.3
    saved = opt.state_dict()
    assert saved["optimizerd"]["checkpoint"] == b"checkpoint-bytes"
    assert saved["param_groups"][0]["lr"] == 0.3 and saved["param_groups"][0]["param_names"][0] == "0.weight"
    assert opt.session.summary()["hyperparameters"]["lr"] == 0.3  # synced before saving
    opt.load_state_dict(saved)
    assert calls == [b"checkpoint-bytes"]
    for p in model.parameters():
        assert torch.all(p == 0.5)  # the checkpoint's values were copied into the model
    # The loaded group says lr 0.3 and the restored daemon 0.25: the group's value is sent.
    assert opt.session.summary()["hyperparameters"]["lr"] == 0.3


def test_a_failed_upload_leaves_no_session_behind(admin_daemon):
    from client_support import ADMIN_TOKEN, SMALL_BODY_LIMIT

    big = torch.nn.Linear(SMALL_BODY_LIMIT // 4, 1, bias=False)  # over the 64 KiB body limit
    client = optimizerd.Client(admin_daemon.url, admin_token=ADMIN_TOKEN)
    before = len(client.list_sessions())
    with pytest.raises(optimizerd.PayloadTooLarge):
        RemoteOptimizer(big.parameters(), client=client)
    assert len(client.list_sessions()) == before


def test_loading_a_plain_torch_state_dict_warns(daemon):
    model = make_model()
    local = torch.optim.Adam(model.parameters(), lr=0.02)
    model(torch.randn(2, 6)).sum().backward()
    local.step()
    remote = RemoteOptimizer(make_model().named_parameters(), url=daemon.url, lr=0.01)
    with pytest.warns(UserWarning, match="no optimizerd checkpoint"):
        remote.load_state_dict(local.state_dict())
    assert remote.param_groups[0]["lr"] == 0.02
    assert remote.session.summary()["hyperparameters"]["lr"] == 0.02


def test_answers_are_read_into_the_parameters_memory(daemon):
    model = make_model()
    addresses = [p.data_ptr() for p in model.parameters()]
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="sgd", lr=0.1)
    x, y = make_data()
    before = [p.detach().clone() for p in model.parameters()]
    versions = [p._version for p in model.parameters()]
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    for p, address, old, version in zip(model.parameters(), addresses, before, versions):
        assert p.data_ptr() == address and p._version > version
        torch.testing.assert_close(p.detach(), old - 0.1 * p.grad, rtol=0, atol=1e-6)


def test_parameters_changed_in_place_after_construction_are_sent_before_the_step(daemon):
    """Weights loaded into the model after the optimizer was made (torch's save/load order), and a
    clamp after every step (WGAN): the daemon steps its own copy, so each change is uploaded before
    the next step, as the torch optimizer sees it."""
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)
    local_opt = torch.optim.Adam(local_model.parameters(), lr=0.01)
    remote_opt = RemoteOptimizer(remote_model.named_parameters(), url=daemon.url, optimizer="adam", lr=0.01)
    pretrained = {name: torch.full_like(p, 0.25) for name, p in local_model.state_dict().items()}
    local_model.load_state_dict(pretrained)
    remote_model.load_state_dict(pretrained)
    x, y = make_data()
    for step in range(3):
        for model, opt in ((local_model, local_opt), (remote_model, remote_opt)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            with torch.no_grad():
                for p in model.parameters():
                    p.clamp_(-0.2, 0.2)
        assert_same_parameters(local_model, remote_model, step=step)


def test_a_refused_param_group_leaves_the_optimizer_as_it_was(daemon, monkeypatch):
    """As torch's add_param_group: when the upload of the new parameters fails, the group is not
    added (before, it stayed, and no retry nor step could get past it)."""
    model = make_model()
    opt = RemoteOptimizer(list(model.named_parameters())[:2], url=daemon.url, optimizer="adam", lr=0.01)
    rest = list(model.named_parameters())[2:]

    def refuse(*args, **kwargs):
        raise optimizerd.InsufficientStorage(507, "Insufficient Storage", "no room")

    monkeypatch.setattr(opt.session, "upload_parameters", refuse)
    with pytest.raises(optimizerd.InsufficientStorage):
        opt.add_param_group({"params": rest, "lr": 0.001})
    assert len(opt.param_groups) == 1
    monkeypatch.undo()
    opt.add_param_group({"params": rest, "lr": 0.001})
    assert len(opt.param_groups) == 2
    x, y = make_data()
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    assert opt.session.summary()["step"] == 1


def test_complex_parameters_are_stepped_as_torch_steps_their_real_view(daemon):
    """torch's Adam and SGD step a complex parameter as its view_as_real (it was stepped as its real
    part, the imaginary part wiped); optimizers torch does not define on them refuse them."""
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(4, 3, dtype=t, generator=generator) for t in (torch.complex64, torch.complex128)]
    for optimizer, torch_class, hyperparameters in (
        ("adam", "Adam", {"lr": 0.1, "amsgrad": True, "weight_decay": 0.1}),
        ("sgd", "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ):
        local, remote = ([w.clone().requires_grad_() for w in start] for _ in range(2))
        local_opt = getattr(torch.optim, torch_class)(local, **hyperparameters)
        remote_opt = RemoteOptimizer(remote, url=daemon.url, optimizer=optimizer, **hyperparameters)
        for _ in range(4):
            grads = [torch.randn(w.shape, dtype=w.dtype, generator=generator) for w in start]
            for params, opt in ((local, local_opt), (remote, remote_opt)):
                for p, grad in zip(params, grads):
                    p.grad = grad.clone()
                opt.step()
            for a, b in zip(local, remote):
                torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-5, atol=1e-6)
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.complex64))
    for optimizer, overlap in (("adafactor", None), ("adam", "backward")):
        with pytest.raises(ValueError, match="'w' is complex"):
            RemoteOptimizer([("w", w)], url=daemon.url, optimizer=optimizer, overlap=overlap)
    momo = RemoteOptimizer([("v", torch.nn.Parameter(torch.ones(2)))], url=daemon.url, optimizer="momo")
    with pytest.raises(ValueError, match="'w' is complex"):
        momo.add_param_group({"params": [("w", w)]})


def test_group_keys_that_are_no_hyperparameters_stay_in_the_groups_unsent(daemon):
    """torch keeps and ignores other keys of a group (timm's "lr_scale", a "name", a scheduler's
    "initial_lr", "foreach"); they were sent to the daemon, which refused them (400)."""
    local_model = make_model()
    remote_model = copy.deepcopy(local_model)

    def groups(model, named):
        def entries(prefix):
            return [(f"{prefix}.{n}", p) if named else p for n, p in model[int(prefix)].named_parameters()]

        return [
            {"params": entries("0"), "lr_scale": 0.5, "name": "body", "weight_decay": 0.0, "initial_lr": 0.1},
            {"params": entries("2"), "lr_scale": 1.0, "name": "head", "foreach": False},
        ]

    local_opt = torch.optim.AdamW(groups(local_model, False), lr=0.01)
    remote_opt = RemoteOptimizer(groups(remote_model, True), url=daemon.url, optimizer="adamw", lr=0.01)
    assert [(g["name"], g["lr_scale"]) for g in remote_opt.param_groups] == [("body", 0.5), ("head", 1.0)]
    summary = remote_opt.session.summary()
    assert [g["hyperparameters"]["weight_decay"] for g in summary["groups"]] == [0, 0.01]
    train_both(local_model, local_opt, remote_model, remote_opt, steps=3)
    one = RemoteOptimizer([{"params": make_model(), "name": "all", "lr": 0.05}], url=daemon.url)
    assert one.param_groups[0]["name"] == "all" and one.session.summary()["hyperparameters"]["lr"] == 0.05


@pytest.mark.parametrize("saved_on, loaded_on", [(1, 1), (3, 1), (1, 3), (3, 3)])
def test_a_state_dict_saved_under_other_names_loads_by_position(urls, checkpoint_routes, saved_on, loaded_on):
    """As torch: a state dict of torch.compile's model ("_orig_mod." names) or DDP's ("module.")
    loads into the plain model's optimizer by position (it loaded under the old names: the next
    step was refused, the model kept its values); one that does not fit changes nothing."""

    def optimizer(model, prefix, daemons, lr=0.01):
        named = [(prefix + name, p) for name, p in model.named_parameters()]
        place = {"url": urls[0]} if daemons == 1 else {"urls": urls}
        return RemoteOptimizer([{"params": named[:2]}, {"params": named[2:], "lr": 0.02}], lr=lr, **place)

    model = make_model()
    opt = optimizer(model, "_orig_mod.", saved_on)
    train(model, opt, 3)
    saved, saved_model = opt.state_dict(), copy.deepcopy(model.state_dict())
    train(model, opt, 2)
    other = make_model(seed=5)
    other_opt = optimizer(other, "", loaded_on, lr=0.5)
    other_opt.load_state_dict(saved)
    names = [entry["name"] for entry in other_opt.session.summary()["parameters"]]
    assert names == [name for name, _ in other.named_parameters()]
    for name, value in other.state_dict().items():
        torch.testing.assert_close(value, saved_model[name], rtol=0, atol=0)
    train(other, other_opt, 2)
    assert_same_parameters(model, other, rtol=0, atol=0)
    # Other group sizes, or other shapes at the same positions: refused before anything changes.
    wide = torch.nn.Sequential(torch.nn.Linear(6, 17), torch.nn.Tanh(), torch.nn.Linear(17, 3))
    for target_opt, refusal in (
        (RemoteOptimizer(make_model().named_parameters(), url=urls[0], lr=0.3), "by position"),
        (optimizer(wide, "", 1, lr=0.3), "does not fit"),
    ):
        before = [p.detach().clone() for group in target_opt.param_groups for p in group["params"]]
        with pytest.raises(ValueError, match=refusal):
            target_opt.load_state_dict(saved)
        assert target_opt.session.last_step == 0 and target_opt.param_groups[0]["lr"] == 0.3
        after = [p.detach() for group in target_opt.param_groups for p in group["params"]]
        assert all(torch.equal(a, b) for a, b in zip(after, before))


def test_copies_and_pickles_are_refused_and_the_state_dict_is_what_saves(daemon, tmp_path):
    """torch's __getstate__ keeps only param_groups and state: a copy or an unpickled optimizer had
    no session (AttributeError at its first step). torch's own machinery keeps working."""
    model = make_model()
    opt = RemoteOptimizer(model.named_parameters(), url=daemon.url, optimizer="adam", lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hooked = []
    opt.register_step_post_hook(lambda *_: hooked.append(True))
    for make_copy in (copy.copy, copy.deepcopy, pickle.dumps, lambda o: torch.save(o, tmp_path / "opt.pt")):
        with pytest.raises(TypeError, match=r"cannot be copied or pickled.*state_dict\(\)"):
            make_copy(opt)
    train(model, opt, 1)
    scheduler.step()
    torch.save({"optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    other = RemoteOptimizer(make_model().named_parameters(), url=daemon.url, optimizer="adam")
    other.load_state_dict(saved["optimizer"])
    assert other.session.last_step == 1 and other.param_groups[0]["lr"] == 0.005 and hooked == [True]
