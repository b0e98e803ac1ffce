"""Conformance exemptions of the square-patch locality baseline (merged into the main registry by ``_registry.py``).
Both build inputs of :func:`diffusion.analytic.local_empirical` (registered in ``_registry.py``) from static
shapes; ``tests/diffusion/test_empirical.py`` checks them (mask geometry, exact translation equivariance)."""

CASES = ()

EXEMPT: dict[str, str] = {
    "diffusion.analytic.square_masks": "host-side mask builder of static shapes (NumPy, no data argument)",
    "diffusion.analytic.circular_translates": "a data-augmentation reshuffle (every circular shift) feeding "
                                              "local_empirical; its equivariance is tested in test_empirical.py",
}
