"""The series as a static site (``make book``): the committed notebooks, not re-executed.

Each chapter is converted with nbconvert's ``lab`` HTML template, its figures (PNG, GIF)
embedded as they are in the notebook. Everything a page would fetch from a CDN is removed, so
the book reads offline: the equations are typeset at build time by matplotlib's mathtext
(TeX ``$…$`` and ``$$…$$`` in markdown become inline SVG), and the pages need no script at all
(RequireJS, MathJax, Mermaid and the widget manager are dropped; a widget shows its text
fallback). An ``index.html`` lists every chapter with its claim, the paper section it
reproduces, and the profile, machine and wall time its outputs came from; every page links to
the index and to its neighbours.

Run ``python -m mil_core.book [--notebooks notebooks] [--out build/book]``.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import DataError

__all__ = ["Chapter", "chapter_info", "tex_to_svg", "render_math", "build_book"]

_CDN_SCRIPT = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>",
                         re.S)
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.S)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", re.S)
_MATHJAX_CONFIG = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->",
                             re.S)
_CODE_SPAN = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)")


@dataclass
class Chapter:
    """One notebook as the index lists it."""
    path: Path           # the notebook
    number: str          # "00", "01", …
    title: str           # its first heading, without the "#"
    claim: str           # the paper's claim, as the chapter states it (plain text)
    section: str         # the paper section(s) it cites, e.g. "Sec. 4.2"
    profile: str         # the profile its committed outputs came from ("cpu"), or "no outputs"
    machine: str         # the machine line of its setup cell
    wall_time: str       # e.g. "8.5 min"

    @property
    def page(self) -> str:
        return self.path.with_suffix(".html").name


def _plain(markdown: str) -> str:
    text = re.sub(r"\*\*|__|`", "", markdown)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"\1", text)   # *italics*
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    return " ".join(text.split())


def _drop_citation(text: str) -> str:
    """``text`` without a leading parenthesised citation ("(Bensadoun et al., …, Sec. 5). …"):
    the index gives the section in a column of its own."""
    if not text.startswith("("):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return text[i + 1:].lstrip(". ").strip() or text
    return text


def chapter_info(path: str | Path) -> Chapter:
    """Read a chapter's title, claim, paper section, and the profile / machine / wall time
    printed by its setup cell (:func:`mil_core.runtime.notebook_setup`)."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:                                       # noqa: BLE001
        raise DataError(f"{path}: not a readable notebook ({exc})") from exc
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = next((line.lstrip("# ").strip() for line in first.splitlines()
                  if line.startswith("# ")), path.stem)
    para = next((p for p in first.split("\n\n") if p.lstrip().startswith("**The claim")),
                first.split("\n\n")[1] if "\n\n" in first else "")
    claim = _drop_citation(_plain(re.sub(r"^\s*\*\*The claim\.?\*\*\.?\s*", "", para)))
    sections = re.findall(r"(?:Sec\.|Section|App\.|Appendix|Table|Fig\.)\s?[A-Z]?[\d.–-]*\d",
                          para)
    section = ", ".join(dict.fromkeys(s.strip() for s in sections)) or "—"
    profile, machine, wall = "no outputs", "—", "—"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                       if o.get("output_type") == "stream")
        m = re.search(r"^profile: (\w+)", text, re.M)
        if m:
            profile = m.group(1)
            machine = (re.search(r"^machine: (.*)$", text, re.M) or [None, "—"])[1]
            wall = (re.search(r"^wall time: ([\d.]+ min)", text, re.M) or [None, "—"])[1]
            break
    number = path.name[:2] if path.name[:2].isdigit() else ""
    return Chapter(path, number, title, claim, section, profile, machine.strip(), wall)


def tex_to_svg(tex: str, fontsize: float = 12.0) -> str | None:
    """``tex`` (without dollars) typeset by matplotlib's mathtext as an SVG data URI, or None
    where mathtext cannot parse it (the caller then shows the TeX source)."""
    import matplotlib
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    matplotlib.use("Agg", force=False)
    buf = io.BytesIO()
    try:
        mathtext.math_to_image(f"${tex}$", buf, prop=FontProperties(size=fontsize), format="svg")
    except (ValueError, RuntimeError):
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _math_html(tex: str, display: bool) -> str:
    uri = tex_to_svg(tex.strip())
    if uri is None:
        return f"<code>{html.escape(tex)}</code>"
    style = "display:block;margin:0.4em auto" if display else "vertical-align:middle"
    return f'<img class="math" alt="{html.escape(tex.strip(), quote=True)}" src="{uri}" ' \
           f'style="{style}"/>'


def render_math(markdown: str) -> str:
    """Replace ``$$…$$`` and ``$…$`` in ``markdown`` by typeset SVG, leaving code spans and
    fenced code (where a ``$`` is a shell variable) untouched."""
    parts = _CODE_SPAN.split(markdown)
    for i in range(0, len(parts), 2):                                # even parts: prose
        prose = _DISPLAY_MATH.sub(lambda m: _math_html(m.group(1), True), parts[i])
        parts[i] = _INLINE_MATH.sub(lambda m: _math_html(m.group(1), False), prose)
    return "".join(parts)


def _offline(page: str) -> str:
    """Drop everything the page would fetch from the network."""
    page = _MATHJAX_CONFIG.sub("", page)
    page = _REMOTE_SCRIPT.sub("", page)
    page = _CDN_SCRIPT.sub("", page)
    return _REMOTE_LINK.sub("", page)


def _nav(chapters: list[Chapter], i: int) -> str:
    links = ['<a href="index.html">Contents</a>']
    if i > 0:
        links.insert(0, f'<a href="{chapters[i - 1].page}">← {html.escape(chapters[i - 1].title)}</a>')
    if i + 1 < len(chapters):
        links.append(f'<a href="{chapters[i + 1].page}">{html.escape(chapters[i + 1].title)} →</a>')
    c = chapters[i]
    meta = (f"outputs: <b>{html.escape(c.profile)}</b> profile · {html.escape(c.machine)} · "
            f"{html.escape(c.wall_time)}")
    return (f'<nav class="book-nav" style="font:14px sans-serif;padding:8px 16px;'
            f'border-bottom:1px solid #ccc;display:flex;gap:24px;flex-wrap:wrap">'
            f'{" ".join(links)}<span style="color:#666">{meta}</span></nav>')


def _index(chapters: list[Chapter], seconds: float) -> str:
    rows = "\n".join(
        f"<tr><td><a href=\"{c.page}\">{html.escape(c.title)}</a></td>"
        f"<td>{html.escape(c.claim[:400])}{'…' if len(c.claim) > 400 else ''}</td>"
        f"<td>{html.escape(c.section)}</td><td>{html.escape(c.profile)}</td>"
        f"<td>{html.escape(c.machine)}</td><td>{html.escape(c.wall_time)}</td></tr>"
        for c in chapters)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mil-companion: the book</title>
<style>body{{font:15px/1.45 sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:6px 8px;
vertical-align:top;text-align:left}}th{{background:#f4f4f4}}</style></head><body>
<h1>mil-companion</h1>
<p>Meta Internal Learning (Bensadoun et al., NeurIPS 2021) and Generative Invariance Transfer
(Zhou et al., ICLR 2022), reproduced chapter by chapter. These pages show the committed
notebooks as they were executed by a scripted papermill run (the profile and machine are given
per chapter); nothing was re-run to build them. Built offline in {seconds:.1f} s.</p>
<table><tr><th>Chapter</th><th>The claim</th><th>Paper section</th><th>Profile</th>
<th>Machine</th><th>Wall time</th></tr>
{rows}
</table></body></html>
"""


def build_book(notebooks: str | Path = "notebooks", out: str | Path = "build/book") -> Path:
    """Convert every ``NN_*.ipynb`` under ``notebooks`` into ``out`` (created; pages replaced
    atomically) with an ``index.html``; returns the index's path. The notebooks are only
    read."""
    from nbconvert import HTMLExporter

    start = time.perf_counter()
    src = Path(notebooks)
    paths = sorted(p for p in src.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise DataError(f"build_book: no chapter notebooks (NN_*.ipynb) in {src}; pass the "
                        "repository's notebooks/ folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chapters = [chapter_info(p) for p in paths]
    exporter = HTMLExporter(template_name="lab")
    for i, (chapter, path) in enumerate(zip(chapters, paths)):
        nb = nbformat.read(path, as_version=4)                     # a fresh copy to edit
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = render_math(cell.source)
        nb.metadata.pop("widgets", None)                           # no live widgets offline
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": chapter.title}})
        body = _offline(body)
        body = re.sub(r'href="(?:\.\./notebooks/|notebooks/)?(\d\d_[\w-]+)\.ipynb', r'href="\1.html',
                      body)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _nav(chapters, i), body, count=1)
        _write(out / chapter.page, body)
    index = out / "index.html"
    _write(index, _index(chapters, time.perf_counter() - start))
    return index


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="notebooks", help="folder of NN_*.ipynb")
    parser.add_argument("--out", default="build/book", help="output folder (git-ignored)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    index = build_book(args.notebooks, args.out)
    print(f"book: {index} ({len(list(index.parent.glob('*.html'))) - 1} chapters) in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
