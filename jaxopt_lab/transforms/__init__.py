"""optax gradient transformations from the research literature.

Each algorithm is a ``scale_by_*`` block plus a lowercase recipe, one file each.
"""

__all__: list[str] = []
