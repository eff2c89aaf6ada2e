"""Pages that show a student's notebook to a browser: sanitised, with a Content-Security-Policy.

:class:`SafeHTMLExporter` is nbconvert's HTML exporter as Formgrader and the
feedback use it, with three changes:

1. every piece of HTML is sanitised again as it is rendered
   (:func:`.sanitize.clean_html`: Markdown cells, HTML and Markdown
   outputs), JavaScript and widget outputs are not rendered, and a Markdown
   cell that cannot be rendered (a missing attachment) is shown as text;
2. the templates are read through :class:`NonceLoader`, which gives every
   ``<script>`` tag *of the templates* a nonce and puts a
   ``Content-Security-Policy`` ``<meta>`` tag first in ``<head>``.  The
   rewriting happens on the template's source, before any notebook content
   is put in, so a script that came from a notebook never carries the
   nonce, and the browser refuses to run it; so are event-handler
   attributes (``onerror=``) and ``javascript:`` links, except the few
   handlers the templates themselves contain (allowed by their hash);
3. the policy (:meth:`CspState.policy`) allows scripts only with the nonce
   (and MathJax's own files), no plug-ins, no ``<base>`` and, served by a
   Jupyter server (:mod:`.web`), framing only by the same server.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import re
import secrets
from urllib.parse import urlsplit

import jinja2
from nbconvert.exporters import HTMLExporter
from traitlets import default

from . import sanitize

__all__ = ["SafeHTMLExporter", "NonceLoader", "CspState", "MATHJAX_URL"]

MATHJAX_URL = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/"
_SCRIPT = re.compile(r"<script\b(?![^>]*\bnonce=)", re.I)
_HEAD = re.compile(r"<head>", re.I)
_NO_ALT = re.compile(r"<img(?![^>]*\balt=)", re.I)
_HANDLER = re.compile(r"""\son[a-z]+\s*=\s*"([^"{}]*)\"""", re.I)


class CspState:
    """The nonce of the page being rendered, and the policy that goes with it.

    The nonce lives in a context variable: each request a Jupyter server
    handles (each rendered feedback page) gets its own.  ``handler_hashes``
    are the hashes of the event-handler attributes the templates contain.
    """

    def __init__(self, script_sources=(MATHJAX_URL,), frame_ancestors: str | None = None):
        self._nonce = contextvars.ContextVar(f"csp-nonce-{id(self)}", default=None)
        self.handler_hashes: set[str] = set()
        self.script_sources = tuple(script_sources)
        self.frame_ancestors = frame_ancestors

    def current(self) -> str:
        """This page's nonce (made on first use)."""
        nonce = self._nonce.get()
        if nonce is None:
            nonce = secrets.token_urlsafe(18)
            self._nonce.set(nonce)
        return nonce

    def reset(self) -> None:
        self._nonce.set(None)

    def used(self) -> str | None:
        return self._nonce.get()

    def policy(self, for_meta: bool = True) -> str:
        nonce = self.current()
        hashes = " ".join(f"'{h}'" for h in sorted(self.handler_hashes))
        origins = " ".join(sorted({f"{urlsplit(s).scheme}://{urlsplit(s).netloc}"
                                   for s in self.script_sources if urlsplit(s).netloc}))
        script = f"'nonce-{nonce}'" + (f" 'unsafe-hashes' {hashes}" if hashes else "") + \
            "".join(f" {s}" for s in self.script_sources)
        parts = [
            "default-src 'self'",
            f"script-src {script}",
            f"style-src 'self' 'unsafe-inline' {origins}".rstrip(),
            "img-src 'self' data:",
            f"font-src 'self' data: {origins}".rstrip(),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-src 'none'",
        ]
        if not for_meta and self.frame_ancestors:
            parts.append(f"frame-ancestors {self.frame_ancestors}")
        return "; ".join(parts)


class NonceLoader(jinja2.BaseLoader):
    """A template loader that gives the templates' own scripts the page's nonce.

    It rewrites each template's *source*: ``<script`` becomes ``<script
    nonce="{{ csp_nonce() }}"`` and ``<head>`` is followed by the policy's
    ``<meta>`` tag; the hashes of the event-handler attributes written in the
    templates are added to the policy.
    """

    def __init__(self, inner: jinja2.BaseLoader, state: CspState):
        self.inner = inner
        self.state = state

    def get_source(self, environment, template):
        source, filename, uptodate = self.inner.get_source(environment, template)
        if not template.endswith((".j2", ".tpl", ".html")):  # a stylesheet or script put inline
            return source, filename, uptodate
        for code in _HANDLER.findall(source):
            digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
            self.state.handler_hashes.add(f"sha256-{digest}")
        source = _SCRIPT.sub('<script nonce="{{ csp_nonce() }}"', source)
        source = _HEAD.sub('<head>\n<meta http-equiv="Content-Security-Policy" '
                           'content="{{ csp_policy() }}">', source, count=1)
        return source, filename, uptodate

    def list_templates(self):
        return self.inner.list_templates()


def guard_environment(environment: jinja2.Environment, state: CspState) -> jinja2.Environment:
    """Read ``environment``'s templates through :class:`NonceLoader` and give them the nonce."""
    if not isinstance(environment.loader, NonceLoader):
        environment.loader = NonceLoader(environment.loader, state)
        environment.cache = {} if environment.cache is not None else None
    environment.globals["csp_nonce"] = state.current
    environment.globals["csp_policy"] = state.policy
    return environment


class SafeHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter with student HTML sanitised and a nonce-based CSP (module doc)."""

    csp_state = None  # a CspState shared with a Jupyter server (set by coursetools.grading.web)
    bytecode_cache = None  # compiled templates kept by a grading worker

    @default("sanitize_html")
    def _sanitize_default(self):
        return True

    def __init__(self, *args, csp_state: CspState | None = None, **kwargs):
        self._state = csp_state or self.csp_state or CspState(script_sources=(MATHJAX_URL,))
        super().__init__(*args, **kwargs)
        self.sanitize_html = True

    def _create_environment(self):
        environment = super()._create_environment()
        if self.bytecode_cache is not None:
            environment.bytecode_cache = self.bytecode_cache
        return guard_environment(environment, self._state)

    def default_filters(self):
        yield from super().default_filters()
        yield ("clean_html", sanitize.clean_html)

    @jinja2.pass_context
    def markdown2html(self, context, source):
        try:
            rendered = super().markdown2html(context, source)
        except Exception:  # noqa: BLE001 - a missing attachment: show the text
            return "<pre>" + str(jinja2.utils.markupsafe.escape(source)) + "</pre>"
        return sanitize.clean_html(rendered)

    def from_notebook_node(self, nb, resources=None, **kw):
        """HTMLExporter's conversion without its BeautifulSoup pass (a tenth of a second a page).

        That pass only adds alternative text to images without any (done
        here with one substitution) and focus order to JupyterLab-style
        cells, which the classic-based Formgrader and feedback templates do
        not have.
        """
        from nbconvert.exporters.templateexporter import TemplateExporter
        from nbconvert.filters.highlight import Highlight2HTML
        from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

        if self.csp_state is None:  # a page of its own (feedback): a nonce of its own
            self._state.reset()
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        self.register_filter("highlight_code", self.filters.get(
            "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return _NO_ALT.sub('<img alt="No description has been provided for this image"', html), resources
