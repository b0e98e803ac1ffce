"""The DataFrame entry point: name the columns once, get checked arrays, call any estimator on them, and read a
summary indexed by the treatment's name (as DoubleML's ``DoubleMLData``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from estimators.estimate import Estimate

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CausalData", "from_dataframe"]

# the contract's array arguments that a column (or list of columns) can fill
_ROLES = ("y", "treatment", "covariates", "instruments", "weights", "clusters", "units", "times")
_LABELS = ("clusters", "units", "times")  # labels: any dtype, but no missing values


class CausalData(NamedTuple):
    """Arrays read from a DataFrame by :func:`from_dataframe`, with the column names they came from.

    Attributes:
      arrays: role → NumPy array (``y``, ``treatment``, ``covariates`` (n, p), ``instruments``, ``weights``,
        ``clusters``, ``units``, ``times``); only the roles that were given.
      names: role → the column name (or tuple of names for ``treatment`` / ``covariates`` / ``instruments``).
    """

    arrays: dict[str, np.ndarray]
    names: dict[str, Any]

    def fit(self, estimator: Callable[..., Estimate], key: Any = None, **options: Any) -> Estimate:
        """Call ``estimator`` with the arrays it takes (by the argument contract's names) and ``options``.

        ``key`` is passed first to estimators that need randomness. An argument the estimator requires but the
        data lack raises ``ValueError`` naming it.

        Example::

            est = data.fit(estimators.plr, jax.random.key(0), n_folds=5)
        """
        params = inspect.signature(estimator).parameters
        kwargs = {k: v for k, v in self.arrays.items() if k in params}
        for name, p in params.items():
            required = p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if required and name != "key" and name not in kwargs and name not in options:
                raise ValueError(f"`{name}` is required by {estimator.__name__} but was not given to from_dataframe")
        if "key" in params:
            if key is None:
                raise ValueError(f"`key` is required by {estimator.__name__}: pass a jax.random.key")
            return estimator(key, **kwargs, **options)
        return estimator(**kwargs, **options)

    def summary(self, estimate: Estimate) -> pd.DataFrame:
        """``estimate.summary()`` indexed by the treatment column name(s)."""
        names = self.names["treatment"]
        return estimate.summary(names=[names] if isinstance(names, str) else list(names))


def _column(df: pd.DataFrame, role: str, name: Any, *, label: bool) -> np.ndarray:
    if name not in df.columns:
        raise ValueError(f"`{role}`: column {name!r} is not in the DataFrame (columns: {list(df.columns)[:12]})")
    col = df[name]
    missing = int(col.isna().sum())
    if missing:
        raise ValueError(f"`{role}`: column {name!r} has {missing} missing value(s) (NaN / None); drop or impute them")
    if label:
        return col.to_numpy()
    import pandas as pd  # loaded on use: `import estimators` stays free of pandas

    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise ValueError(f"`{role}`: column {name!r} is not numeric (dtype {col.dtype}, e.g. {col.iloc[0]!r}); "
                         "encode it first (pd.get_dummies for categories)")
    values = col.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{role}`: column {name!r} has non-finite values (inf)")
    return values


def from_dataframe(df: pd.DataFrame, *, y: str, treatment: str | Sequence[str],
                   covariates: Sequence[str] | None = None, instruments: str | Sequence[str] | None = None,
                   weights: str | None = None, clusters: str | None = None, units: str | None = None,
                   times: str | None = None) -> CausalData:
    """Read the named columns of a pandas DataFrame into checked arrays for the estimators.

    Every numeric role must be a numeric (or bool) column without missing or infinite values, and treatment,
    covariate and instrument columns must vary; ``clusters`` / ``units`` / ``times`` are labels of any dtype
    (strings too) without missing values. A bad column raises ``ValueError`` naming the role and the column.

    Args:
      df: the data, one row per unit (or unit-period).
      y: the outcome column.
      treatment: the treatment column (a list for several: ``tsls`` / ``fixed_effects`` then estimate each).
      covariates: covariate columns (an (n, p) array).
      instruments: instrument column(s) (``tsls``, ``anchor_regression`` takes them as ``anchors``,
        ``invalid_iv``).
      weights, clusters, units, times: single columns.

    Returns:
      A :class:`CausalData`; ``data.fit(estimator, key, **options)`` runs an estimator, ``data.summary(est)`` gives
      its table indexed by the treatment's name.

    Example::

        data = from_dataframe(df, y="earnings", treatment="training", covariates=["age", "educ"], clusters="site")
        est = data.fit(estimators.regression_adjustment)
        print(data.summary(est))
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"`df` must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("`df` has no rows")
    given = {"y": y, "treatment": treatment, "covariates": covariates, "instruments": instruments,
             "weights": weights, "clusters": clusters, "units": units, "times": times}
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, Any] = {}
    for role in _ROLES:
        spec = given[role]
        if spec is None:
            continue
        many = not isinstance(spec, str) and isinstance(spec, Sequence)
        if role == "covariates" and not many:
            raise ValueError(f"`covariates` must be a list of column names, got {spec!r}")
        if role in ("y", "weights", *_LABELS) and many:
            raise ValueError(f"`{role}` must be one column name, got {spec!r}")
        cols = list(spec) if many else [spec]
        if many and not cols:
            raise ValueError(f"`{role}` is an empty list of columns")
        values = [_column(df, role, c, label=role in _LABELS) for c in cols]
        if role in ("treatment", "covariates", "instruments"):
            for c, v in zip(cols, values, strict=True):
                if np.ptp(v) == 0:
                    raise ValueError(f"`{role}`: column {c!r} is constant (every value {v[0]:.6g}): nothing "
                                     "varies to estimate from")
        arrays[role] = np.stack(values, axis=-1) if many or role == "covariates" else values[0]
        names[role] = tuple(cols) if many else spec
    if "instruments" in arrays:
        arrays["anchors"] = arrays["instruments"]
    return CausalData(arrays, names)
