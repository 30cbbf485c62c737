"""Shared helper of the sweep CLI tests: override entries of a config dict."""


def with_overrides(cfg: dict, **over) -> dict:
    """``cfg`` with ``table__key=value`` setting ``cfg[table][key]`` and ``table=value`` a table.

    Args:
      cfg: a sweep config as a dict of tables.
      **over: the overrides.

    Returns:
      ``cfg``, changed in place.
    """
    for path, value in over.items():
        table, _, key = path.partition("__")
        if key:
            cfg[table][key] = value
        else:
            cfg[table] = value
    return cfg
