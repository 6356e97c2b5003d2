"""Small Sphinx fixes for a site with no console errors.

sphinx-thebe (loaded by Jupyter Book 1) registers its inline config script twice in
some builds, which makes browsers report "Identifier 'THEBE_JS_URL' has already been
declared". We drop exact duplicate script entries from each page.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the same inline script may come once with filename None and once with ""
        key = (getattr(script, "filename", None) or "", repr(getattr(script, "attributes", {})))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
