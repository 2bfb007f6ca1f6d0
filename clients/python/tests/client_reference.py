"""Float64 NumPy references of the optimizers the tests check (shared/docs/algorithms.md)."""

from __future__ import annotations

import numpy as np


class Adam:
    """torch.optim.Adam / AdamW (algorithms.md §1), per tensor."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        self.lr, (self.b1, self.b2), self.eps, self.wd, self.decoupled = (
            lr,
            betas,
            eps,
            weight_decay,
            decoupled,
        )
        self.state = {}

    def step(self, params, grads):
        for name, g in grads.items():
            theta = params[name]
            g = np.asarray(g, np.float64)
            t, m, v = self.state.get(name, (0, np.zeros_like(theta), np.zeros_like(theta)))
            t += 1
            if self.wd:
                if self.decoupled:
                    theta = theta * (1 - self.lr * self.wd)
                else:
                    g = g + self.wd * theta
            m = self.b1 * m + (1 - self.b1) * g
            v = self.b2 * v + (1 - self.b2) * g * g
            bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
            params[name] = theta - (self.lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + self.eps)
            self.state[name] = (t, m, v)
        return params


class MTAdam:
    """MTAdam (algorithms.md §3): K terms, per-layer balancing, shared denominator."""

    def __init__(self, terms, lr=1e-3, betas=(0.9, 0.999, 0.9), eps=1e-8, term_weights=None):
        self.K, self.lr, self.betas, self.eps = terms, lr, betas, eps
        self.term_weights = list(term_weights or [1.0] * terms)
        self.state = {}
        self.last_weights = {}

    def step(self, params, term_grads, term_weights=None):
        """``term_grads[k][name]``; returns params; records ``last_weights[name]`` (w_i per term)."""
        b1, b2, b3 = self.betas
        lam = list(term_weights or self.term_weights)
        for name in params:
            theta = params[name]
            st = self.state.setdefault(
                name,
                {"t": 1, "m": [np.zeros_like(theta) for _ in range(self.K)],
                 "v": [np.zeros_like(theta) for _ in range(self.K)], "n": [1.0] * self.K},
            )  # fmt: skip
            t = st["t"]
            bc1, bc2 = 1 - b1**t, 1 - b2**t
            gs = [np.asarray(term_grads[k][name], np.float64) for k in range(self.K)]
            for i in range(self.K):
                r = float(np.sqrt(np.sum(gs[i] ** 2)))
                st["n"][i] = r if t == 1 else b3 * st["n"][i] + (1 - b3) * r
            weights = []
            dens = []
            for i in range(self.K):
                if st["n"][i] > 1e-10:
                    a = next(j for j in range(self.K) if st["n"][j] > 1e-10)
                    w = lam[i] * st["n"][a] / st["n"][i]
                else:
                    w = 1.0
                weights.append(w)
                g = w * gs[i]
                st["m"][i] = b1 * st["m"][i] + (1 - b1) * g
                st["v"][i] = b2 * st["v"][i] + (1 - b2) * g * g
                dens.append(np.sqrt(st["v"][i]) / np.sqrt(bc2) + self.eps)
            D = np.maximum.reduce(dens)
            update = sum((self.lr / bc1) * st["m"][i] / D for i in range(self.K))
            params[name] = theta - update
            st["t"] = t + 1
            self.last_weights[name] = weights
        return params


class Momo:
    """MoMo (algorithms.md §5.1), defaults lr=1, beta=0.9, lb=0, no weight decay, no bias correction."""

    def __init__(self, lr=1.0, beta=0.9, lb=0.0):
        self.lr, self.beta, self.lb = lr, beta, lb
        self.k = 0
        self.fbar = None
        self.d = {}
        self.gamma = {}
        self.last_tau = None

    def step(self, params, grads, loss):
        beta = self.beta
        self.k += 1
        if self.k == 1:
            self.fbar = loss
            for name, g in grads.items():
                self.d[name] = np.asarray(g, np.float64).copy()
                self.gamma[name] = float(np.sum(params[name] * g))
        self.fbar = beta * self.fbar + (1 - beta) * loss
        for name, g in grads.items():
            g = np.asarray(g, np.float64)
            self.d[name] = beta * self.d[name] + (1 - beta) * g
            self.gamma[name] = beta * self.gamma[name] + (1 - beta) * float(np.sum(params[name] * g))
        s_dot = sum(float(np.sum(params[n] * self.d[n])) for n in params)
        s_gamma = sum(self.gamma[n] for n in params)
        norm = sum(float(np.sum(self.d[n] ** 2)) for n in params)
        nom = self.fbar - self.lb + s_dot - s_gamma
        tau = self.lr if norm == 0 else min(self.lr, max(nom, 0.0) / norm)
        self.last_tau = tau
        for n in params:
            params[n] = params[n] - tau * self.d[n]
        return params
