"""Make everything a student wrote inert before a tutor's browser shows it.

A written answer is Markdown, and Markdown may hold HTML; a code cell's
outputs may be HTML, SVG, JavaScript or widgets; a notebook carries metadata
and attachments.  Formgrader, the feedback pages and JupyterLab show these
in pages of the tutor's (or the student's) own server, where a script would
act with their rights.  So every student-authored piece goes through an
allow-list HTML sanitiser, ammonia (Rust) through its Python binding ``nh3``:

* only the tags and attributes of :data:`TAGS` / :data:`ATTRIBUTES` are
  kept: no ``<script>``, ``<style>``, ``<iframe>``, ``<object>``, ``<form>``,
  no event handlers, no ``style`` beyond a few text properties;
* links only to ``http:``, ``https:``, ``mailto:`` and ``#anchors``; images
  only from ``data:`` URLs of PNG, JPEG, GIF or WebP (an image from the web
  would be a request from the tutor's browser) and cell attachments;
* text, maths (``$...$`` stays text for MathJax), tables and images stay.

Two places use it.  Grading (:func:`sanitize_notebook`) rewrites the staged
copy of a submission: offending HTML in a written answer is shown as text,
offending outputs, attachments and metadata are dropped, and each is
reported as an ``html removed`` event with its cell.  Every page that shows
a notebook (:class:`SafeHTMLExporter`: Formgrader, feedback) sanitises again
as it renders, whatever the notebook holds.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from html.parser import HTMLParser

from .events import HTML_REMOVED, Event

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd",
    "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
    "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "u", "ul", "var", "wbr",
})
ATTRIBUTES = {
    "*": {"title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align", "style"},
    "th": {"colspan", "rowspan", "align", "style"},
    "tr": {"style"},
    "table": {"border"},
    "ol": {"start", "type"},
    "col": {"span"},
    "colgroup": {"span"},
}
#: CSS properties a ``style`` attribute may keep (pandas tables align their cells).
STYLE_PROPERTIES = frozenset({"text-align", "vertical-align", "font-weight", "font-style",
                              "white-space"})
CLASSES = {"table": {"dataframe"}, "div": {"dataframe"}}
#: Removed with everything inside them (the rest lose only their tags).
REMOVED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "embed",
                                  "noscript", "title", "textarea", "select", "math", "svg"})
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_DATA_IMAGE = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=\s]*)\Z", re.I)
_SAFE_LINK = re.compile(r"(https?://|mailto:|#)", re.I)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
#: What an image from elsewhere (or a missing attachment) becomes: a transparent pixel.
BLANK_IMAGE = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def _url_ok(tag: str, attr: str, value: str) -> bool:
    plain = _CONTROL.sub("", html.unescape(value))
    if tag == "img" and attr == "src":
        return bool(_DATA_IMAGE.match(plain)) or plain.startswith("attachment:")
    if tag == "a" and attr == "href":
        return bool(_SAFE_LINK.match(plain))
    return True


def _attribute_filter(tag: str, attr: str, value: str):
    return value if _url_ok(tag, attr, value) else None


def clean_html(text: str) -> str:
    """``text`` with everything outside the allow-list removed (nh3/ammonia).

    >>> clean_html('<b>bold</b> <img src=x onerror="alert(1)"><script>alert(2)</script>')
    '<b>bold</b> <img>'
    >>> clean_html('<a href="javascript:alert(1)">link</a> <i>maths: $a &lt; b$</i>')
    '<a rel="noopener noreferrer">link</a> <i>maths: $a &lt; b$</i>'
    """
    import nh3

    return nh3.clean(str(text), tags=set(TAGS), clean_content_tags=set(REMOVED_WITH_CONTENT),
                     attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                     attribute_filter=_attribute_filter, url_schemes={"http", "https", "mailto", "data"},
                     allowed_classes={k: set(v) for k, v in CLASSES.items()},
                     filter_style_properties=set(STYLE_PROPERTIES), strip_comments=True,
                     link_rel="noopener noreferrer")


class _Finder(HTMLParser):
    """Lists what :func:`clean_html` takes out of a piece of HTML (for the report)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def _add(self, what):
        if what not in self.found:
            self.found.append(what)

    def handle_starttag(self, tag, attrs):
        if tag not in TAGS:
            self._add(f"<{tag}>")
            return
        allowed = ATTRIBUTES.get(tag, set()) | ATTRIBUTES["*"]
        for name, value in attrs:
            if name == "class" and value and set(value.split()) <= CLASSES.get(tag, set()):
                continue
            if name not in allowed:
                self._add(f"{name}= on <{tag}>" if not name.startswith("on")
                          else f"event handler {name}= on <{tag}>")
            elif value is not None and not _url_ok(tag, name, value):
                scheme = _CONTROL.sub("", html.unescape(value)).split(":", 1)[0][:20].lower()
                self._add(f"image from {value[:40]!r}" if tag == "img" else
                          f"{scheme}: URL in <{tag} {name}=>" if ":" in value else
                          f"address {value[:40]!r} in <{tag} {name}=>")

    handle_startendtag = handle_starttag


def removed_parts(text: str) -> list[str]:
    """What :func:`clean_html` would take out of ``text``, as short descriptions.

    >>> for part in removed_parts('<p>fine</p><img src=x onerror="alert(1)"><script>x</script>'):
    ...     print(part)
    image from 'x'
    event handler onerror= on <img>
    <script>
    """
    finder = _Finder()
    try:
        finder.feed(str(text))
        finder.close()
    except Exception:  # noqa: BLE001 - unparseable HTML is removed whole
        return ["HTML the parser could not read"]
    return finder.found


# ---------------------------------------------------------------------------
# Markdown (written answers and text/markdown outputs)
# ---------------------------------------------------------------------------


def _markdown_parser():
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    return MarkdownWithMath(renderer=None)


def render_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown to HTML as nbconvert renders it for Formgrader and feedback (raw HTML kept)."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    renderer = IPythonRenderer(escape=False, attachments=_usable_attachments(attachments))
    try:
        return MarkdownWithMath(renderer=renderer).render(source)
    except Exception:  # noqa: BLE001 - e.g. a missing attachment: show the text instead
        return "<pre>" + html.escape(source) + "</pre>"


def _usable_attachments(attachments) -> dict:
    return attachments if isinstance(attachments, dict) else {}


def _tokens(tokens):
    for tok in tokens:
        yield tok
        if isinstance(tok.get("children"), list):
            yield from _tokens(tok["children"])


def _offending(source: str, attachments) -> list[tuple[str, str, list[str]]]:
    """(raw text in the source, its replacement, what it held) for every unsafe piece."""
    tokens, _ = _markdown_parser().parse(source)
    found = []
    for tok in _tokens(tokens):
        kind = tok.get("type")
        if kind in ("inline_html", "block_html"):
            raw = tok.get("raw", "")
            parts = removed_parts(raw)
            if parts:
                found.append((raw, html.escape(raw, quote=False), parts))
        elif kind in ("link", "image"):
            url = (tok.get("attrs") or {}).get("url", "")
            tag, attr = ("img", "src") if kind == "image" else ("a", "href")
            if kind == "image" and url.startswith("attachment:"):
                if url[len("attachment:"):] not in _usable_attachments(attachments):
                    found.append(("(" + url, "(" + BLANK_IMAGE, [f"missing attachment {url[11:41]!r}"]))
            elif not _url_ok(tag, attr, url):
                what = (f"{url.split(':', 1)[0][:20]}: link" if kind == "link" and ":" in url
                        else f"image from {url[:40]!r}" if kind == "image" else f"link to {url[:40]!r}")
                found.append(("(" + url, "(" + (BLANK_IMAGE if kind == "image" else "#removed"), [what]))
    return found


def _fenced(source: str) -> str:
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", source)), default=0))
    return f"{fence}text\n{source}\n{fence}"


def sanitize_markdown(source: str, attachments=None) -> tuple[str, list[str]]:
    """A written answer with every unsafe piece made inert, and what was found.

    Unsafe HTML is shown as text (its ``<`` escaped), an unsafe link or image
    address is replaced by ``#removed``; everything else of the answer is left
    as it was (an unsafe image becomes a transparent pixel).  If the result
    would still render anything unsafe, the whole
    answer is shown as plain text in a code block.

    >>> sanitize_markdown('A *fine* answer, $x^2$.')
    ('A *fine* answer, $x^2$.', [])
    >>> text, parts = sanitize_markdown('Look <img src=x onerror="alert(1)"> here')
    >>> print(text)
    Look &lt;img src=x onerror="alert(1)"&gt; here
    >>> parts
    ["image from 'x'", 'event handler onerror= on <img>']
    """
    if "<" not in source and "](" not in source and "]:" not in source and "&" not in source:
        return source, []
    found = _offending(source, attachments)
    if not found:
        return source, []
    parts: list[str] = []
    for raw, safe, what in found:
        source = source.replace(raw, safe)
        parts += [p for p in what if p not in parts]
    if removed_parts(render_markdown(source, attachments)) or _offending(source, attachments):
        return _fenced(source), parts
    return source, parts


def clean_attachments(attachments) -> tuple[dict, list[str]]:
    """The attachments of a Markdown cell that are images of an allowed type, and what was dropped."""
    kept, dropped = {}, []
    if not isinstance(attachments, dict):
        return kept, (["attachments that are not a mapping"] if attachments else [])
    for name, bundle in attachments.items():
        if not isinstance(name, str) or not isinstance(bundle, dict):
            dropped.append("a malformed attachment")
            continue
        good = {}
        for mime, data in bundle.items():
            data = "".join(data) if isinstance(data, list) else data
            if mime in IMAGE_TYPES and isinstance(data, str) and _is_base64(data):
                good[mime] = data
            else:
                dropped.append(f"attachment {name[:40]!r} of type {str(mime)[:40]}")
        if good:
            kept[name] = good
    return kept, dropped


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data.replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------
# outputs of code cells
# ---------------------------------------------------------------------------

_PANDAS_STYLE = re.compile(r"<style scoped>\s*(?:\.dataframe[^<{]*\{[^<}]*\}\s*)+</style>")
_SVG_ACTIVE = re.compile(r"<\s*script|\son\w+\s*=|javascript:|<\s*foreignObject|<\s*iframe|"
                         r"(?:xlink:)?href\s*=\s*[\"']?\s*(?!#)", re.I)


def clean_rich_data(data: dict) -> tuple[dict, list[str]]:
    """The display data of an output with HTML sanitised and active content dropped.

    ``text/html`` and ``text/markdown`` are sanitised; ``image/svg+xml`` is
    kept only without scripts, event handlers or links (pages show it as an
    ``<img>``, where it could not run anyway); JavaScript and widget views are
    dropped.  Returns (the data kept, what was removed).
    """
    kept, removed = {}, []
    for mime, value in data.items():
        if mime == "text/html":
            value = _PANDAS_STYLE.sub("", value)  # a DataFrame's own styling: not worth a report
            parts = removed_parts(value)
            cleaned = clean_html(value) if parts else value
            removed += parts
            if cleaned.strip():
                kept[mime] = cleaned
        elif mime == "text/markdown":
            text, parts = sanitize_markdown(value)
            removed += parts
            kept[mime] = text
        elif mime == "image/svg+xml":
            if _SVG_ACTIVE.search(value):
                removed.append("an SVG image with scripts, event handlers or links")
            else:
                kept[mime] = value
        elif mime in ("application/javascript", "text/javascript") or "widget" in mime:
            removed.append(f"a {mime} output")
        else:
            kept[mime] = value
    return kept, removed


# ---------------------------------------------------------------------------
# a whole staged notebook
# ---------------------------------------------------------------------------

_PLAIN = re.compile(r"[^\w .+()\-]")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def clean_metadata(metadata: dict) -> tuple[dict, list[str]]:
    """The notebook metadata a staged copy keeps: kernelspec and language_info, as plain words.

    Everything else (a title, widget state, anything a page might show) is
    dropped; a kept value with anything but letters, digits and ``. +()-`` is
    dropped too.  Returns (kept metadata, the keys whose values held HTML).
    """
    kept, flagged = {}, []
    for key, value in metadata.items():
        if key not in ("kernelspec", "language_info"):
            if "<" in repr(value):
                flagged.append(f"notebook metadata {str(key)[:30]!r}")
            continue
        if not isinstance(value, dict):
            continue
        section = {}
        for name, item in value.items():
            if isinstance(item, str) and not _PLAIN.search(item) and len(item) < 80:
                section[name] = item
            elif name == "codemirror_mode" and isinstance(item, dict):
                section[name] = {k: v for k, v in item.items()
                                 if isinstance(v, (int, str)) and not _PLAIN.search(str(v))}
            elif "<" in repr(item):
                flagged.append(f"notebook metadata {key}.{str(name)[:30]}")
        kept[key] = section
    if "kernelspec" in kept and not {"name", "display_name"} <= set(kept["kernelspec"]):
        kept["kernelspec"] = dict(KERNELSPEC)  # nbgrader puts the course's own back anyway
    return kept, flagged


def sanitize_notebook(nb, cell_name, trusted=(), tutors=frozenset()) -> list[Event]:
    """Make a staged notebook inert, in place; one ``html removed`` event per cell that held something.

    ``cell_name(index)`` names a cell in the report; cells whose indices are in
    ``trusted`` (restored from the tutor's source) and cells whose source is,
    word for word, one of the tutor's (``tutors``: an instruction cell the
    student left alone) are left as they are.
    """
    events = []

    def report(index, parts):
        if parts:
            name = cell_name(index)
            events.append(Event(HTML_REMOVED, f"{name}: removed {', '.join(parts[:12])}"
                                + (f" and {len(parts) - 12} more" if len(parts) > 12 else ""),
                                cell=name.removeprefix("cell ") if not name.startswith("cell number")
                                else name))

    for index, cell in enumerate(nb.cells):
        if index in trusted or (cell.source.strip() in tutors and "attachments" not in cell
                                and not cell.get("outputs")):
            continue
        parts = []
        if "attachments" in cell:
            kept, dropped = clean_attachments(cell.get("attachments"))
            parts += dropped
            if kept:
                cell["attachments"] = kept
            else:
                del cell["attachments"]
        if cell.cell_type == "markdown":
            cell.source, found = sanitize_markdown(cell.source, cell.get("attachments"))
            parts += found
        elif cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.get("output_type") in ("display_data", "execute_result"):
                    out["data"], found = clean_rich_data(out.get("data", {}))
                    parts += found
        report(index, parts)
    return events
