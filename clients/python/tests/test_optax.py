"""optimizerd.optax.remote: an optax transformation backed by a live daemon, eager and under jit."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402
import optimizerd  # noqa: E402
from optimizerd.optax import parameters, remote, session  # noqa: E402


def mlp_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "layers": [
            {
                "w": jnp.asarray(rng.standard_normal((5, 4)) * 0.05, jnp.float32),
                "b": jnp.zeros(4, jnp.float32),
            },
            {
                "w": jnp.asarray(rng.standard_normal((4, 2)) * 0.05, jnp.float32),
                "b": jnp.zeros(2, jnp.float32),
            },
        ]
    }


def gradient_sequence(params, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), params)
        for _ in range(steps)
    ]


def bits(tree):
    return [np.asarray(leaf).view(np.uint32) for leaf in jax.tree.leaves(tree)]


def assert_same_bits(a, b):
    for x, y in zip(bits(a), bits(b)):
        np.testing.assert_array_equal(x, y)


def test_parameters_are_named_by_key_path(daemon):
    params = {"layers": [{"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}], "scale": (jnp.ones(()),)}
    state = remote(daemon.url, "adam").init(params)
    names = [entry["name"] for entry in session(state).summary()["parameters"]]
    assert names == ["layers.0.b", "layers.0.w", "scale.0"]
    assert [tuple(e["shape"]) for e in session(state).summary()["parameters"]] == [(3,), (2, 3), ()]
    assert int(state.step) == 0


@pytest.mark.parametrize(
    "optimizer, hyperparameters", [("adamw", {"lr": 0.01}), ("sgd", {"lr": 0.1, "momentum": 0.9})]
)
def test_eager_and_jit_follow_the_plain_session_bit_for_bit(client, optimizer, hyperparameters):
    """The same gradients through Session.step, through remote() eagerly and through remote() in
    a jitted step: the daemon ends with identical bits, and so do the trainers' parameters."""
    start = mlp_params()
    grads = gradient_sequence(start, steps=8)
    names, treedef = ["layers.0.b", "layers.0.w", "layers.1.b", "layers.1.w"], jax.tree.structure(start)
    plain = client.create_session(optimizer, hyperparameters)
    plain.upload_parameters({n: np.asarray(v) for n, v in zip(names, jax.tree.leaves(start))})
    for g in grads:
        plain.step({n: np.asarray(v) for n, v in zip(names, jax.tree.leaves(g))})
    expected = jax.tree.unflatten(treedef, [plain.parameters()[n] for n in names])

    tx = remote(client.url, optimizer, **hyperparameters)
    eager_params, eager_state = start, tx.init(start)
    for g in grads:
        updates, eager_state = tx.update(g, eager_state, eager_params)
        eager_params = optax.apply_updates(eager_params, updates)

    @jax.jit
    def jit_step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    jit_params, jit_state = start, jax.jit(tx.init)(start)
    for g in grads:
        jit_params, jit_state = jit_step(jit_params, jit_state, g)

    assert int(eager_state.step) == int(jit_state.step) == 8
    assert_same_bits(parameters(eager_state), expected)
    assert_same_bits(parameters(jit_state), expected)
    assert_same_bits(jit_params, eager_params)


def test_apply_updates_lands_on_the_daemons_parameters(daemon):
    """updates = new − params: apply_updates gives the daemon's bits wherever new − params is
    exact in float32, and is within one rounding of them where it is not (coordinates that cross
    zero); the difference never grows over steps, since each update is taken from the caller's
    own parameters."""
    start = {"w": jnp.asarray(np.random.default_rng(2).standard_normal(4000) * 0.02, jnp.float32)}
    tx = remote(daemon.url, "adam", lr=0.01)
    params, state = start, tx.init(start)
    inexact_seen = 0
    for g in gradient_sequence(start, steps=12, seed=3):
        before = np.asarray(params["w"])
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        new = np.asarray(parameters(state)["w"])
        landed = np.asarray(params["w"])
        delta = new - before
        exact = delta.astype(np.float64) == new.astype(np.float64) - before.astype(np.float64)
        np.testing.assert_array_equal(landed[exact].view(np.uint32), new[exact].view(np.uint32))
        one_rounding = np.spacing(np.maximum(np.abs(before), np.abs(delta)))
        assert np.all(np.abs(landed - new)[~exact] <= one_rounding[~exact])
        inexact_seen += int((~exact).sum())
    assert inexact_seen > 0, "the test should exercise coordinates where new − params rounds"


def test_momo_takes_the_loss_as_value_and_matches_optax_contrib_momo(daemon):
    """MoMo's loss comes as ``value=``, as optax.contrib.momo takes it; eager and jitted remote
    runs follow optax's own MoMo (float rounding apart) on a least-squares problem."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((64, 5)), jnp.float32)
    y = jnp.asarray(rng.standard_normal(64), jnp.float32)
    start = {"w": jnp.asarray(rng.standard_normal(5), jnp.float32), "b": jnp.zeros((), jnp.float32)}
    value_and_grad = jax.value_and_grad(lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2))

    def train(tx, jit):
        def one(params, state):
            loss, grads = value_and_grad(params)
            updates, state = tx.update(grads, state, params, value=loss)
            return optax.apply_updates(params, updates), state, loss

        one = jax.jit(one) if jit else one
        params, state, losses = start, tx.init(start), []
        for _ in range(30):
            params, state, loss = one(params, state)
            losses.append(float(loss))
        return np.array(losses), state

    reference, _ = train(optax.contrib.momo(), jit=False)
    for jit in (False, True):
        losses, state = train(remote(daemon.url, "momo"), jit)
        np.testing.assert_allclose(losses, reference, rtol=1e-5, atol=1e-6)
        history = session(state).history()["records"]
        assert [r["loss"] for r in history] == pytest.approx(losses.tolist(), rel=1e-6)
    assert reference[-1] < 0.5 * reference[0]


def test_refusals_change_nothing(daemon):
    params = mlp_params()
    grads = gradient_sequence(params, steps=1)[0]
    momo = remote(daemon.url, "momo")
    state = momo.init(params)
    with pytest.raises(ValueError, match="momo needs the batch loss"):
        momo.update(grads, state, params)
    with pytest.raises(ValueError, match="needs params"):
        momo.update(grads, state, value=1.0)
    with pytest.raises(ValueError, match="differ in structure"):
        momo.update({"layers": grads["layers"][:1]}, state, params, value=1.0)
    assert session(state).summary()["step"] == 0

    adam = remote(daemon.url, "adam")
    state = adam.init(params)
    _, newer = adam.update(grads, state, params)
    with pytest.raises(ValueError, match="cannot go back"):
        adam.update(grads, state, params)  # the older state again
    assert session(newer).summary()["step"] == 1
    with pytest.raises(jax.errors.JaxRuntimeError, match="cannot go back"):  # raised in the callback
        jax.jit(lambda s: adam.update(grads, s, params)[1].step)(state).block_until_ready()


def test_bad_setup_is_a_clear_error(daemon):
    with pytest.raises(optimizerd.BadRequest, match="betas"):
        remote(daemon.url, "adam", betas=[1.5, 0.9]).init(mlp_params())
    with pytest.raises(TypeError, match="'steps': expected floats"):
        remote(daemon.url, "adam").init({"steps": jnp.arange(3)})
    with pytest.raises(ValueError, match="both be named 'a.b'"):
        remote(daemon.url, "adam").init({"a": {"b": jnp.ones(1)}, "a.b": jnp.ones(1)})
    with pytest.raises(ValueError, match="mtadam"):
        remote(daemon.url, "mtadam", terms=2)
    with pytest.raises(ValueError, match="needs url"):
        remote(optimizer="adam")


def test_a_new_process_resumes_the_session_by_id(daemon):
    """``session=<id>, token=...``: init uploads nothing, parameters() gives the daemon's values,
    and the step counter continues; a different layout is refused by name."""
    params = mlp_params()
    grads = gradient_sequence(params, steps=4)
    tx = remote(daemon.url, "adam", lr=0.01)
    state = tx.init(params)
    for g in grads[:2]:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    first = session(state)

    resumed_tx = remote(daemon.url, session=first.id, token=first.token)
    resumed = resumed_tx.init(mlp_params(seed=9))  # other values, same layout: not uploaded
    assert int(resumed.step) == 2
    resumed_params = parameters(resumed)
    assert_same_bits(resumed_params, params)
    _, resumed = resumed_tx.update(grads[2], resumed, resumed_params)
    assert session(resumed).summary()["step"] == 3

    with pytest.raises(ValueError, match=r"'layers.0.w': the session holds shape \[5, 4\], got \[5, 3\]"):
        other = mlp_params()
        other["layers"][0]["w"] = jnp.ones((5, 3))
        remote(daemon.url, session=first.id, token=first.token).init(other)


def test_composes_with_optax_chain(daemon):
    """remote() as the last link of an optax chain (clipping first, locally) follows the same
    chain with optax.sgd."""
    start = mlp_params()
    grads = gradient_sequence(start, steps=5)
    runs = []
    for last in (optax.sgd(0.1), remote(daemon.url, "sgd", lr=0.1)):
        tx = optax.chain(optax.clip_by_global_norm(0.5), last)
        params, state = start, tx.init(start)
        for g in grads:
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
        runs.append(params)
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1])):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)


def test_multisteps_says_what_to_do_instead_and_accumulating_by_hand_matches_it(daemon):
    """optax.MultiSteps calls the inner update on every micro-step and keeps its result every k-th:
    each call is a daemon step, so the second micro-step fails; its error names the limit and the
    way out (documented), which follows optax.MultiSteps(optax.adam) itself."""
    start = mlp_params()
    grads = gradient_sequence(start, steps=6)
    tx = optax.MultiSteps(remote(daemon.url, "adam", lr=0.01), every_k_schedule=2)
    state = tx.init(start)
    _, state = tx.update(grads[0], state, start)
    with pytest.raises(jax.errors.JaxRuntimeError, match="MultiSteps, do not work; to accumulate"):
        tx.update(grads[1], state, start)

    reference = optax.MultiSteps(optax.adam(0.01), every_k_schedule=2)
    expected, reference_state = start, reference.init(start)
    tx = remote(daemon.url, "adam", lr=0.01)
    params, state = start, tx.init(start)
    accumulated = jax.tree.map(jnp.zeros_like, start)
    for step, g in enumerate(grads):
        updates, reference_state = reference.update(g, reference_state, expected)
        expected = optax.apply_updates(expected, updates)
        accumulated = jax.tree.map(jnp.add, accumulated, g)
        if (step + 1) % 2 == 0:
            updates, state = tx.update(jax.tree.map(lambda a: a / 2, accumulated), state, params)
            params = optax.apply_updates(params, updates)
            accumulated = jax.tree.map(jnp.zeros_like, start)
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(params)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    assert session(state).summary()["step"] == 3
