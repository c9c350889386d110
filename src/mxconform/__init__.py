"""mxconform: evidence-backed conformance checks for Matrix homeserver authentication."""

def __getattr__(name: str) -> str:
    """`__version__`, looked up when asked for: importing `importlib.metadata` here took the
    program's first tenth of a second, before it could keep a stop signal (`cli.stops`)."""
    if name != "__version__":
        raise AttributeError(f"module 'mxconform' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("mxconform")
    except PackageNotFoundError:  # running from a checkout without an install
        found = "0.0.0+checkout"
    globals()["__version__"] = found
    return found
