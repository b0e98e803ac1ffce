"""Conformance entries for the option objects of ``fit_image_cate`` (frozen dataclasses and a NamedTuple: types,
not functions of data; their checks are tested in ``tests/image_cate/test_model.py``)."""

CASES: tuple = ()

_P = "estimators.image_cate."
EXEMPT: dict[str, str] = {
    _P + "ImageCATEModel": "fit_image_cate's model options (a frozen dataclass checked when built)",
    _P + "SVIOptions": "fit_image_cate's SVI options (a frozen dataclass checked when built)",
    _P + "NUTSOptions": "fit_image_cate's NUTS options (a frozen dataclass checked when built)",
    _P + "Prior": "the data-derived prior scales of a fit (a NamedTuple)",
}
