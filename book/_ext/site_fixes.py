"""Small Sphinx fixes for a site with no console errors.

sphinx-thebe (loaded by Jupyter Book 1) registers its inline config script twice in
some builds, which makes browsers report "Identifier 'THEBE_JS_URL' has already been
declared". We drop exact duplicate script entries from each page.

The list is edited *in place* and *after* every other handler (priority 900): Sphinx's
MathJax installer and other extensions append to ``context["script_files"]`` during the
same event, and a handler that replaced the list with a new one (as this one once did, at
priority 100) silently dropped every script added after it -- MathJax included.

MathJax is loaded on every page (``html_assets_policy = "always"``), not only on pages
that Sphinx found equations in, so math in a notebook's outputs is typeset too and every
page behaves the same.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts is None:
        return
    seen, unique = set(), []
    for script in scripts:
        # the same inline script may come once with filename None and once with ""
        key = (getattr(script, "filename", None) or "", repr(getattr(script, "attributes", {})))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
