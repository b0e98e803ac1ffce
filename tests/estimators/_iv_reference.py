"""Frozen reference values for ``tests/estimators/test_iv.py``: an independent NumPy implementation of the textbook
2SLS / first-stage / Kleibergen–Paap formulas with linearmodels' ``IV2SLS.fit`` covariance conventions.

linearmodels is not installed here (no network), so the reference is computed from its documented formulas
(``linearmodels/iv/covariance.py``: HomoskedasticCovariance s² = ε'ε/n, HeteroskedasticCovariance HC0,
ClusteredCovariance Σ_g ξ_gξ_g' with ``debiased`` → n/(n−k), resp. G/(G−1)(n−1)/(n−k); ``results.py``
FirstStageResults: Wald of the excluded instruments in the full first-stage regression with the same covariance
type) written the long way: explicit n × n projection matrices, ``np.linalg.lstsq`` fits on the full (not
partialled) designs, and Kleibergen & Paap's (2006) A_q⊥ = U₂U₂₂⁻¹(U₂₂U₂₂')^{1/2}, B_q⊥ = (V₂₂V₂₂')^{1/2}V₂₂'⁻¹V₂'.
Run ``python -m tests.estimators._iv_reference`` to rewrite ``iv_reference.json`` (data and numbers).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from scipy.linalg import sqrtm

PATH = pathlib.Path(__file__).with_name("iv_reference.json")
N = 60


def data() -> dict:
    rng = np.random.default_rng(2026)
    w_cov = rng.normal(size=(N, 2))
    z = rng.normal(size=(N, 3))
    u = rng.normal(size=N)
    d1 = 0.8 * z[:, 0] + 0.5 * z[:, 1] + 0.3 * w_cov[:, 0] + u + rng.normal(size=N)
    d2 = 0.6 * z[:, 2] - 0.4 * z[:, 0] + 0.5 * u + rng.normal(size=N)
    y = 1.0 + 2.0 * d1 - 1.0 * d2 + w_cov @ np.array([0.5, -0.3]) + 2 * u + rng.normal(size=N) * (1 + np.abs(z[:, 0]))
    clusters = np.repeat(np.arange(12), 5)
    weights = rng.uniform(0.5, 2.0, size=N)
    return {"y": y, "d": np.c_[d1, d2], "z": z, "w": w_cov, "clusters": clusters, "weights": weights}


def _cov(Xr, eps, bread_inv, kind, clusters, n, k, debiased):
    if kind == "unadjusted":
        c = (eps @ eps / n) * bread_inv
        f = n / (n - k)
    elif kind == "robust":
        c = bread_inv @ (Xr.T @ np.diag(eps**2) @ Xr) @ bread_inv
        f = n / (n - k)
    else:
        groups = np.unique(clusters)
        meat = sum(np.outer(Xr[clusters == g].T @ eps[clusters == g], Xr[clusters == g].T @ eps[clusters == g])
                   for g in groups)
        c = bread_inv @ meat @ bread_inv
        f = len(groups) / (len(groups) - 1) * (n - 1) / (n - k)
    return c * f if debiased else c


def tsls_reference(y, D, Z, W, clusters, weights, kind, debiased):
    n = len(y)
    s = np.sqrt(weights)
    X = s[:, None] * np.c_[np.ones(n), W, D]
    Zf = s[:, None] * np.c_[np.ones(n), W, Z]
    ys = s * y
    P = Zf @ np.linalg.inv(Zf.T @ Zf) @ Zf.T
    beta = np.linalg.solve(X.T @ P @ X, X.T @ P @ ys)
    eps = ys - X @ beta
    cov = _cov(P @ X, eps, np.linalg.inv(X.T @ P @ X), kind, clusters, n, X.shape[1], debiased)
    K, L = D.shape[1], Z.shape[1]
    # first stage: each endogenous column on the full instrument set, Wald of the excluded block / L
    f_stats, r2p = [], []
    Ew = s[:, None] * np.c_[np.ones(n), W]
    M_E = np.eye(n) - Ew @ np.linalg.pinv(Ew)
    for j in range(K):
        dj = s * D[:, j]
        g, *_ = np.linalg.lstsq(Zf, dj, rcond=None)
        v = dj - Zf @ g
        c = _cov(Zf, v, np.linalg.inv(Zf.T @ Zf), kind, clusters, n, Zf.shape[1], debiased)
        pi, cpi = g[-L:], c[-L:, -L:]
        f_stats.append(pi @ np.linalg.solve(cpi, pi) / L)
        r2p.append(1 - v @ v / ((M_E @ dj) @ (M_E @ dj)))
    # Cragg–Donald (Stock–Yogo g_min) with Σ_vv = V'V / (n − L_f)
    Dt, Zt = M_E @ (s[:, None] * D), M_E @ (s[:, None] * Z)
    Pt = Zt @ np.linalg.inv(Zt.T @ Zt) @ Zt.T
    V = Dt - Pt @ Dt
    svv = V.T @ V / (n - Zf.shape[1])
    root = np.linalg.inv(sqrtm(svv).real)
    cd = np.linalg.eigvalsh(root @ Dt.T @ Pt @ Dt @ root)[0] / L
    # Kleibergen–Paap rk Wald for rank K − 1 (paper's construction)
    Pi = np.linalg.solve(Zt.T @ Zt, Zt.T @ Dt)
    Gh = sqrtm(Zt.T @ Zt / n).real
    Fh = np.linalg.inv(sqrtm(V.T @ V / n).real)
    theta = Gh @ Pi @ Fh
    U, _, Vt = np.linalg.svd(theta)
    Vm = Vt.T
    q = K - 1
    U2, U22 = U[:, q:], U[q:, q:]
    V2, V22 = Vm[:, q:], Vm[q:, q:]
    A = U2 @ np.linalg.inv(U22) @ sqrtm(U22 @ U22.T).real
    B = sqrtm(V22 @ V22.T).real @ np.linalg.inv(V22.T) @ V2.T
    T = A.T @ theta @ B.T
    scores = np.stack([np.kron(V[i], Zt[i]) for i in range(n)])
    ginv = np.kron(np.eye(K), np.linalg.inv(Zt.T @ Zt))
    if kind == "unadjusted":
        vpi = np.kron(V.T @ V / n, np.linalg.inv(Zt.T @ Zt))
    else:
        cl = np.arange(n) if kind == "robust" else clusters
        meat = sum(np.outer(scores[cl == g].sum(0), scores[cl == g].sum(0)) for g in np.unique(cl))
        vpi = ginv @ meat @ ginv
    factor = {"unadjusted": n / (n - Zf.shape[1]), "robust": n / (n - Zf.shape[1]),
              "cluster": len(np.unique(clusters)) / (len(np.unique(clusters)) - 1) * (n - 1) / (n - Zf.shape[1])}
    if debiased:
        vpi = vpi * factor[kind]
    vtheta = np.kron(Fh.T, Gh.T) @ vpi @ np.kron(Fh, Gh)
    kron = np.kron(B, A.T)
    omega = kron @ vtheta @ kron.T
    t = T.reshape(-1, order="F")
    rk = t @ np.linalg.solve(omega, t)
    return {"coef": beta.tolist(), "se": np.sqrt(np.diag(cov)).tolist(), "first_stage_f": f_stats,
            "partial_r2": r2p, "cragg_donald_f": cd, "kleibergen_paap_wald": rk}


CASES = {
    "unadjusted": ("unadjusted", False, False),
    "robust": ("robust", False, False),
    "cluster": ("cluster", False, False),
    "cluster_debiased": ("cluster", True, False),
    "robust_weighted": ("robust", False, True),
    "unadjusted_debiased": ("unadjusted", True, False),
}


def main() -> None:
    d = data()
    out = {"data": {k: np.asarray(v).tolist() for k, v in d.items()}, "results": {}}
    for name, (kind, debiased, weighted) in CASES.items():
        w = d["weights"] if weighted else np.ones(N)
        out["results"][name] = {
            "two": tsls_reference(d["y"], d["d"], d["z"], d["w"], d["clusters"], w, kind, debiased),
            "one": tsls_reference(d["y"], d["d"][:, :1], d["z"][:, :2], d["w"], d["clusters"], w, kind, debiased),
        }
    PATH.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
