"""A Jupyter server extension that guards nbgrader's Formgrader pages.

Enable it next to Formgrader: ``make venv`` writes
``.venv/etc/jupyter/jupyter_server_config.d/coursetools.json`` for the
tutor's ``.venv`` and ``hub/setup.sh`` the same for the hub's instructors::

    {"ServerApp": {"jpserver_extensions": {"coursetools.grading.web": true}}}

It makes Formgrader's exporter a :class:`~.pages.SafeHTMLExporter` (every
piece of student HTML sanitised as it is rendered, the templates' own
scripts carry the page's nonce) and reads Formgrader's own page templates
through the same :class:`~.pages.NonceLoader`.  Every response under
``/formgrader/`` then carries the header ``Content-Security-Policy`` with
that nonce: a script that came from a submission (an inline ``<script>``, an
``onerror=`` handler, a ``javascript:`` link) does not run, whatever the
sanitiser missed, and the page may be framed only by the same server (as
JupyterLab shows Formgrader).
"""

from __future__ import annotations

from .pages import MATHJAX_URL, CspState, SafeHTMLExporter, guard_environment

__all__ = ["guard_formgrader", "csp_transform"]

FRAME_ANCESTORS = "'self'"


def _jupyter_server_extension_points():
    return [{"module": "coursetools.grading.web"}]


def guard_formgrader(settings: dict, state: CspState) -> bool:
    """Put the guarded exporter and templates into Formgrader's tornado ``settings``."""
    exporter = settings.get("nbgrader_exporter")
    if exporter is None:
        return False
    if not isinstance(exporter, SafeHTMLExporter):
        settings["nbgrader_exporter"] = SafeHTMLExporter(config=exporter.config, csp_state=state)
        settings["nbgrader_exporter"].csp_state = state
    if settings.get("nbgrader_jinja2_env") is not None:
        guard_environment(settings["nbgrader_jinja2_env"], state)
    return True


def csp_transform(state: CspState, prefix: str):
    """A tornado output transform that sets the policy on every response under ``prefix``."""
    from tornado.web import OutputTransform

    class FormgraderPolicy(OutputTransform):
        def __init__(self, request):
            super().__init__(request)
            self.guarded = request.path.startswith(prefix)

        def transform_first_chunk(self, status_code, headers, chunk, finishing):
            if self.guarded:
                headers["Content-Security-Policy"] = state.policy(for_meta=False)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                state.reset()
            return status_code, headers, chunk

    return FormgraderPolicy


def _load_jupyter_server_extension(serverapp):
    web_app = serverapp.web_app
    mathjax = web_app.settings.get("mathjax_url") or MATHJAX_URL
    sources = (MATHJAX_URL,) if mathjax.startswith("/") or not mathjax else (mathjax.rsplit("/", 1)[0] + "/",)
    state = CspState(script_sources=sources, frame_ancestors=FRAME_ANCESTORS)
    prefix = web_app.settings.get("base_url", "/").rstrip("/") + "/formgrader"
    web_app.add_transform(csp_transform(state, prefix))
    if guard_formgrader(web_app.settings, state):
        serverapp.log.info("coursetools: Formgrader guarded (sanitised pages, Content-Security-Policy)")
        return
    # Extensions load in alphabetical order: Formgrader's comes after this one.
    # Guard its settings as soon as it has made them.
    try:
        from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension
    except ImportError:
        return
    original = FormgradeExtension.init_tornado_settings
    if getattr(original, "_coursetools_guard", False):
        original = original.__wrapped__

    def init_tornado_settings(self, webapp):
        original(self, webapp)
        guard_formgrader(webapp.settings, state)
        serverapp.log.info("coursetools: Formgrader guarded (sanitised pages, Content-Security-Policy)")

    init_tornado_settings._coursetools_guard = True
    init_tornado_settings.__wrapped__ = original
    FormgradeExtension.init_tornado_settings = init_tornado_settings


load_jupyter_server_extension = _load_jupyter_server_extension
