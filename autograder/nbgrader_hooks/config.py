"""The nbgrader configuration file of the hooks: the repo's ``nbgrader_config.py`` loads this
file (``load_subconfig``), which puts them into nbgrader's autograde pipeline
(:func:`autograder.nbgrader_hooks.pipeline.configure`). Imported as a module, it does nothing."""
if "get_config" in globals():  # loaded by nbgrader_config.py
    from autograder.nbgrader_hooks.pipeline import configure

    configure(get_config())  # noqa: F821  (provided by traitlets when it loads this file)
