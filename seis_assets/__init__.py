"""seis_assets: group seismic image patches without labels, score the groups against labels, rank odd patches.

The science lives in :mod:`seis_assets.core` (no Dagster imports); the Dagster layer in the other modules.
``seis_assets.defs`` is resolved lazily, so importing a science module never loads Dagster.
"""


def __getattr__(name):
    if name == "defs":
        from seis_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'seis_assets' has no attribute {name!r}")
