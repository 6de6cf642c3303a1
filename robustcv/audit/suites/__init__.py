"""The built-in audit suites, one module each (listed in :mod:`robustcv.audit.registry`)."""
