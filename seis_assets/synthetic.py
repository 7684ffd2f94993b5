"""CLI shim: ``python -m seis_assets.synthetic --out data``; the generator lives in seis_assets.core.synthetic."""

from seis_assets.core.synthetic import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
