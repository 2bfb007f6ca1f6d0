"""MTAdam terms and MoMo's loss reach the daemon correctly: compared with float64 references of
algorithms.md and with the daemon's own telemetry."""

from __future__ import annotations

import numpy as np
import optimizerd
import pytest
from client_reference import Momo, MTAdam

SHAPES = {"enc.weight": (5, 3), "enc.bias": (3,)}


def random_params(rng):
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}


def random_terms(rng, scales):
    return [
        {name: (rng.standard_normal(shape) * scale).astype(np.float32) for name, shape in SHAPES.items()}
        for scale in scales
    ]


@pytest.mark.parametrize("form", ["nested", "list", "flat"])
def test_mtadam_terms_match_reference(client, rng, form):
    params = random_params(rng)
    session = client.create_session("mtadam", lr=0.01, terms=2, term_weights=[1.0, 0.5])
    session.upload_parameters(params)
    reference = MTAdam(terms=2, lr=0.01, term_weights=[1.0, 0.5])
    expected = {name: value.astype(np.float64) for name, value in params.items()}
    for step in range(1, 4):
        terms = random_terms(rng, scales=[1.0, 100.0])
        if form == "nested":
            gradients = {0: terms[0], 1: terms[1]}
        elif form == "list":
            gradients = terms
        else:
            gradients = {f"{k}/{name}": g for k, term in enumerate(terms) for name, g in term.items()}
        values, metadata = session.step(gradients, loss=[1.0, 2.0])
        expected = reference.step(expected, terms)
        assert metadata["step"] == step and metadata["loss"] == 3.0  # per-term losses are summed
        for name in SHAPES:
            np.testing.assert_allclose(values[name], expected[name], rtol=1e-5, atol=1e-6)
        # The per-layer term weights the daemon reports are the reference's w_i.
        for name in SHAPES:
            np.testing.assert_allclose(
                metadata["term_weights"][name], reference.last_weights[name], rtol=1e-5
            )
    record = session.history()["records"][-1]
    for name in SHAPES:
        np.testing.assert_allclose(record["term_weights"][name], reference.last_weights[name], rtol=1e-5)
    assert len(record["term_grad_norms"]) == 2


def test_mtadam_term_weights_override_per_step(client, rng):
    params = random_params(rng)
    session = client.create_session("mtadam", lr=0.01, terms=2)
    session.upload_parameters(params)
    reference = MTAdam(terms=2, lr=0.01)
    expected = {name: value.astype(np.float64) for name, value in params.items()}
    terms = random_terms(rng, scales=[1.0, 0.01])
    values, metadata = session.step(terms, term_weights=[2.0, 0.25])
    expected = reference.step(expected, terms, term_weights=[2.0, 0.25])
    for name in SHAPES:
        np.testing.assert_allclose(values[name], expected[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metadata["term_weights"][name], reference.last_weights[name], rtol=1e-5)


def test_mtadam_needs_every_term(client, rng):
    session = client.create_session("mtadam", terms=2)
    session.upload_parameters(random_params(rng))
    terms = random_terms(rng, scales=[1.0, 1.0])
    with pytest.raises(optimizerd.Unprocessable, match="1/enc"):
        session.step({0: terms[0], 1: {"enc.weight": terms[1]["enc.weight"]}})


def test_mtadam_sparse_term(client, rng):
    params = random_params(rng)
    a = client.create_session("mtadam", lr=0.01, terms=2)
    b = client.create_session("mtadam", lr=0.01, terms=2)
    for s in (a, b):
        s.upload_parameters(params)
    terms = random_terms(rng, scales=[1.0, 3.0])
    dense = np.zeros(15, np.float32)
    dense[[2, 9]] = [0.5, -1.5]
    sparse_values, _ = a.step(
        {0: terms[0], 1: {"enc.bias": terms[1]["enc.bias"]}},
        sparse={1: {"enc.weight": ([2, 9], [0.5, -1.5])}},
    )
    dense_values, _ = b.step(
        {0: terms[0], 1: {"enc.bias": terms[1]["enc.bias"], "enc.weight": dense.reshape(5, 3)}}
    )
    for name in SHAPES:
        np.testing.assert_array_equal(sparse_values[name], dense_values[name])


def test_momo_loss_matches_reference_and_history(client, rng):
    params = random_params(rng)
    session = client.create_session("momo")  # lr = 1 by default: the point of MoMo
    assert session.info["hyperparameters"]["lr"] == 1.0
    session.upload_parameters(params)
    reference = Momo()
    expected = {name: value.astype(np.float64) for name, value in params.items()}
    losses = [2.5, 1.75, 1.5, 0.25]
    taus = []
    for loss in losses:
        grads = {
            name: (rng.standard_normal(shape) * 0.5).astype(np.float32) for name, shape in SHAPES.items()
        }
        values, metadata = session.step(grads, loss=np.float32(loss))
        expected = reference.step(expected, grads, loss)
        taus.append(reference.last_tau)
        assert metadata["loss"] == pytest.approx(loss) and metadata["lr"] == pytest.approx(
            reference.last_tau, rel=1e-5
        )
        for name in SHAPES:
            np.testing.assert_allclose(values[name], expected[name], rtol=1e-5, atol=1e-6)
    records = session.history()["records"]
    assert [r["loss"] for r in records] == pytest.approx(losses)
    assert [r["lr"] for r in records] == pytest.approx(taus, rel=1e-5)
    assert any(tau < 1.0 for tau in taus)  # the loss made τ adapt: it was really used


def test_momo_adam_needs_the_loss_and_uses_it(client, rng):
    params = random_params(rng)
    grads = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    low = client.create_session("momo_adam")
    high = client.create_session("momo_adam")
    for s in (low, high):
        s.upload_parameters(params)
    small, meta_small = low.step(grads, loss=1e-6)
    large, meta_large = high.step(grads, loss=10.0)
    # A loss near its lower bound gives a tiny step; a large one a capped step.
    assert meta_small["lr"] < meta_large["lr"]
    assert (
        np.abs(small["enc.weight"] - params["enc.weight"]).max()
        < np.abs(large["enc.weight"] - params["enc.weight"]).max()
    )
